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
}
