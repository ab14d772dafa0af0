//! Fresh output buffers. The first write to a large new buffer faults its
//! pages in one at a time: a 64 MiB result on 4 KiB pages takes 16,384
//! faults, which cost more than computing it (measured on 2 cores, 2^24
//! f32: 34 ms to fault the pages in, 8 ms for relu into memory already
//! mapped). On Linux a large buffer is advised onto transparent huge pages
//! (2 MiB, 512 times fewer faults) before anything touches it, as
//! PyTorch's `THP_MEM_ALLOC_ENABLE` does; elsewhere, or where the kernel
//! declines, it stays on ordinary pages.

use crate::ops::dtype::Float;

/// Buffers smaller than this keep ordinary pages (a huge page would hold
/// most of such a buffer and save few faults).
#[cfg(target_os = "linux")]
const HUGE_FROM: usize = 4 << 20;

/// `n` values of `O`, each written once by `fill`, in memory that nothing
/// zeroed first: a zeroing pass costs as much as a cheap activation, and
/// glibc hands a freed block of this size back to the next call with its
/// pages already mapped, where calloc's would be zeroed again or faulted
/// in anew (2^20 values: 0.14 ms zeroed, 0.06 ms written into fresh memory
/// for relu on 2 cores). Large buffers are advised onto huge pages.
///
/// # Safety
/// `fill` must write every element of the slice it is given (on return or
/// by panicking; a panic leaves nothing for the caller to read).
pub(crate) unsafe fn written<O: Float>(
    n: usize,
    fill: impl FnOnce(&mut [std::mem::MaybeUninit<O>]),
) -> Vec<O> {
    let mut v: Vec<O> = Vec::with_capacity(n);
    let spare = &mut v.spare_capacity_mut()[..n];
    // SAFETY: the advice reads no contents; only the address range is used.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(
            spare.as_mut_ptr().cast::<u8>(),
            std::mem::size_of_val(spare),
        )
    };
    advise_huge(bytes);
    fill(spare);
    // SAFETY: `fill` wrote all n values (the caller's contract).
    unsafe { v.set_len(n) };
    v
}

/// `n` zeros of `O`, from zeroed memory (calloc: the pages are not yet
/// touched), advised onto huge pages where it is large.
pub(crate) fn zeroed<O: Float>(n: usize) -> Vec<O> {
    let mut v: Vec<O> = bytemuck::zeroed_vec(n);
    advise_huge(bytemuck::cast_slice_mut(&mut v));
    v
}

#[cfg(target_os = "linux")]
fn advise_huge(bytes: &mut [u8]) {
    const PAGE: usize = 2 << 20;
    if bytes.len() < HUGE_FROM {
        return;
    }
    let at = bytes.as_mut_ptr() as usize;
    let (start, end) = (at.next_multiple_of(PAGE), (at + bytes.len()) / PAGE * PAGE);
    if end > start {
        // SAFETY: [start, end) lies inside `bytes`, which we hold mutably;
        // the advice changes no contents (zero pages stay zero), and a
        // refusal (THP off, an old kernel) leaves ordinary pages.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: &mut [u8]) {}

#[cfg(test)]
mod tests {
    /// Large and small buffers come back zeroed and of the right length,
    /// and writes through them land (the advice changed no contents).
    #[test]
    fn zeroed_buffers_are_zero_and_writable() {
        for n in [0, 1, 7, (4 << 20) / 4 - 1, (8 << 20) / 4 + 3] {
            let mut v = super::zeroed::<f32>(n);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 0.0));
            v.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32);
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
            let h = super::zeroed::<half::bf16>(n);
            assert!(h.iter().all(|x| x.to_f32() == 0.0) && h.len() == n);
        }
    }

    /// A written buffer holds exactly what `fill` wrote, at sizes on both
    /// sides of the huge-page threshold.
    #[test]
    fn written_buffers_hold_what_was_written() {
        for n in [0, 1, 7, (4 << 20) / 4, (8 << 20) / 4 + 3] {
            // SAFETY: the loop writes every element.
            let v = unsafe {
                super::written::<f32>(n, |out| {
                    for (i, o) in out.iter_mut().enumerate() {
                        o.write(i as f32 * 0.5);
                    }
                })
            };
            assert_eq!(v.len(), n);
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32 * 0.5));
        }
    }
}
