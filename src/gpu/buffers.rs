//! Buffers: upload from host slices, device-side outputs, and readback with
//! map_async + poll.

use super::context::Context;
pub(crate) use super::memory::Buffer;
use crate::error::{Error, Result};
use crate::ops::dtype::{DType, Float};
use wgpu::util::DeviceExt;

/// Bytes padded to a whole vec4, so the kernels can load 16 bytes at a time
/// and bindings never end inside an element.
pub(crate) fn padded_bytes(elements: usize) -> u64 {
    (elements.div_ceil(4).max(1) * 16) as u64
}

fn check_size(ctx: &Context, bytes: u64, what: &str) -> Result<()> {
    if bytes > ctx.info.max_buffer_bytes {
        return Err(Error::Gpu(format!(
            "{what} needs a buffer of {bytes} bytes, beyond this adapter's max_buffer_size of {} bytes",
            ctx.info.max_buffer_bytes
        )));
    }
    Ok(())
}

/// Uploads values (f32, f16 or bf16, or u32 class indices) into a
/// read-only storage buffer, zero-padded to a whole vec4.
pub(crate) fn upload<T: bytemuck::Pod>(ctx: &Context, data: &[T], what: &str) -> Result<Buffer> {
    packed(
        ctx,
        &[(data, 0)],
        std::mem::size_of_val(data).div_ceil(16),
        what,
    )
}

/// A read-write storage buffer for `elements` 32-bit values, readable back.
pub(crate) fn output(ctx: &Context, elements: usize, what: &str) -> Result<Buffer> {
    output_of(ctx, elements, DType::F32, what)
}

/// A read-write storage buffer for `elements` values of `dtype` (the
/// halves two a word), padded to a whole vec4 of words, readable back.
pub(crate) fn output_of(
    ctx: &Context,
    elements: usize,
    dtype: DType,
    what: &str,
) -> Result<Buffer> {
    let bytes = ((elements * dtype.size()).div_ceil(16).max(1) * 16) as u64;
    check_size(ctx, bytes, what)?;
    Ok(
        ctx.counted(ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })),
    )
}

/// The four error slots (first bad index of pred, target, weights), all
/// u32::MAX until a kernel finds an offender.
pub(crate) fn error_slots(ctx: &Context) -> Buffer {
    error_slots_for(ctx, 1)
}

/// Four error slots for each of `losses` packed losses.
pub(crate) fn error_slots_for(ctx: &Context, losses: usize) -> Buffer {
    ctx.counted(
        ctx.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("errors"),
                contents: bytemuck::cast_slice(&vec![u32::MAX; 4 * losses.max(1)]),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            }),
    )
}

/// Several slices in one zero-padded storage buffer of `vec4s` vec4s, each
/// starting at its given vec4 offset.
pub(crate) fn packed<T: bytemuck::Pod>(
    ctx: &Context,
    parts: &[(&[T], usize)],
    vec4s: usize,
    what: &str,
) -> Result<Buffer> {
    let bytes = (vec4s.max(1) * 16) as u64;
    check_size(ctx, bytes, what)?;
    let buffer = ctx.counted(ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(what),
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: true,
    }));
    {
        let mut view = buffer
            .slice(..)
            .get_mapped_range_mut()
            .map_err(|e| Error::Gpu(format!("mapping {what}: {e}")))?;
        for (data, off4) in parts {
            let src: &[u8] = bytemuck::cast_slice(data);
            view.slice(off4 * 16..off4 * 16 + src.len())
                .copy_from_slice(src);
        }
    }
    buffer.unmap();
    Ok(buffer)
}

/// Writes `data` at the start of `buffer`: copies are whole 4-byte words,
/// so an odd count of half values is padded with a zero half.
pub(crate) fn write_padded<T: bytemuck::Pod>(ctx: &Context, buffer: &Buffer, data: &[T]) {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    let whole = bytes.len() & !3;
    ctx.queue.write_buffer(buffer, 0, &bytes[..whole]);
    if whole < bytes.len() {
        let mut last = [0u8; 4];
        last[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
        ctx.queue.write_buffer(buffer, whole as u64, &last);
    }
}

pub(crate) fn uniform<T: bytemuck::Pod>(ctx: &Context, value: &T) -> Buffer {
    ctx.counted(
        ctx.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::bytes_of(value),
                usage: wgpu::BufferUsages::UNIFORM,
            }),
    )
}

/// Copies `parts` (buffer, bytes from its start) into one staging buffer at
/// the end of `encoder`, submits, waits, and returns each part's bytes.
pub(crate) fn submit_and_read(
    ctx: &Context,
    mut encoder: wgpu::CommandEncoder,
    parts: &[(&Buffer, u64)],
) -> Result<Vec<Vec<u8>>> {
    let total: u64 = parts.iter().map(|p| p.1).sum();
    check_size(ctx, total, "readback")?;
    let staging = ctx.counted(ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("staging"),
        size: total.max(4),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    }));
    let mut offset = 0;
    for (buffer, bytes) in parts {
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, offset, *bytes);
        offset += bytes;
    }
    ctx.queue.submit([encoder.finish()]);
    let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
    staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        sender.send(r).ok();
    });
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
    ctx.check()?;
    match pollster::block_on(receiver.receive()) {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(Error::Gpu(format!("reading results back: {e}"))),
        None => {
            return Err(Error::Gpu(
                "reading results back: the map callback never ran".into(),
            ))
        }
    }
    let view = staging
        .slice(..)
        .get_mapped_range()
        .map_err(|e| Error::Gpu(format!("reading results back: {e}")))?;
    let mut out = Vec::with_capacity(parts.len());
    let mut offset = 0usize;
    for (_, bytes) in parts {
        out.push(view[offset..offset + *bytes as usize].to_vec());
        offset += *bytes as usize;
    }
    drop(view);
    staging.unmap();
    Ok(out)
}

/// f32 values from readback bytes, cut to `n`.
pub(crate) fn to_f32(bytes: &[u8], n: usize) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .take(n)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Bytes to read back for `n` values of `dtype`: whole words, as copies
/// need.
pub(crate) fn read_bytes(n: usize, dtype: DType) -> u64 {
    (n * dtype.size()).next_multiple_of(4) as u64
}

/// `n` values of type `O` from readback bytes (its own dtype's layout).
pub(crate) fn to_values<O: Float>(bytes: &[u8], n: usize) -> Vec<O> {
    let mut out = crate::output::zeroed::<O>(n);
    bytemuck::cast_slice_mut::<O, u8>(&mut out).copy_from_slice(&bytes[..n * O::DTYPE.size()]);
    out
}

/// u32 values from readback bytes.
pub(crate) fn to_u32(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
