//! Workgroup counts and chunking past the binding and dispatch limits.

use super::context::Context;
use super::memory::Buffer;
use crate::error::{Error, Result};
use crate::ops::dtype::DType;

/// Invocations per workgroup (WG in shaders/common.wgsl).
pub(crate) const WG: usize = 256;

/// First-pass workgroups of a reduction at most: enough to fill any GPU, few
/// enough for one second-pass workgroup. Fixed by n, so the combination order
/// (and the result) is too.
pub(crate) const MAX_PARTIALS: usize = 1024;

/// Chunk boundaries fall on 128 elements (256 bytes of halves), a multiple
/// of every adapter's storage offset alignment, so vec4 kernels bind chunks
/// directly whatever the dtype.
const CHUNK_ALIGN: usize = 128;

/// A run of elements (or rows) processed by one dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub start: usize,
    pub len: usize,
}

/// Splits `n` items into chunks of at most `max` (a multiple of CHUNK_ALIGN
/// unless it is the last).
pub(crate) fn chunks(n: usize, max: usize) -> Vec<Chunk> {
    let max = max.max(1);
    (0..n.div_ceil(max))
        .map(|k| Chunk {
            start: k * max,
            len: max.min(n - k * max),
        })
        .collect()
}

/// Elements of 4 bytes that one binding may hold, rounded down to the chunk
/// alignment, and small enough that u32 indices never overflow.
pub(crate) fn max_chunk_elements(ctx: &Context) -> usize {
    let bytes = ctx.info.max_binding_bytes as usize;
    (bytes / 4 / CHUNK_ALIGN * CHUNK_ALIGN).clamp(CHUNK_ALIGN, 1 << 30)
}

/// Elements per chunk of a reduction: at most one binding, and at most
/// 2^22 (16 MiB of f32) so that the partition of n, and with it the result,
/// is the same whether the input is resident or streamed from the host in
/// chunks of this size.
pub(crate) fn reduce_chunk_elements(ctx: &Context) -> usize {
    max_chunk_elements(ctx).min(REDUCE_CHUNK)
}

/// Elements of a reduction chunk on adapters with large bindings.
pub(crate) const REDUCE_CHUNK: usize = 1 << 22;

/// Rows of `cols` values that fit one binding, leaving room for the
/// alignment skip at its start.
pub(crate) fn max_chunk_rows(ctx: &Context, cols: usize) -> Result<usize> {
    let elements = (ctx.info.max_binding_bytes as usize).saturating_sub(272) / 4;
    let rows = (elements / cols).min((1 << 30) / cols);
    if rows == 0 {
        return Err(Error::Gpu(format!(
            "a row of {cols} values exceeds this adapter's storage binding of {} bytes",
            ctx.info.max_binding_bytes
        )));
    }
    Ok(rows)
}

/// A 2-D grid of `workgroups` groups within the per-dimension limit; the
/// kernels recover the linear index with `flat_id`.
pub(crate) fn grid(ctx: &Context, workgroups: usize) -> Result<(u32, u32)> {
    let max = ctx.limits.max_compute_workgroups_per_dimension as usize;
    let workgroups = workgroups.max(1);
    if workgroups <= max {
        return Ok((workgroups as u32, 1));
    }
    let y = workgroups.div_ceil(max);
    if y > max {
        return Err(Error::Gpu(format!(
            "{workgroups} workgroups exceed a {max}×{max} grid"
        )));
    }
    Ok((max as u32, y as u32))
}

/// Workgroups for one invocation per item.
pub(crate) fn groups_for(items: usize) -> usize {
    items.div_ceil(WG)
}

/// First-pass workgroups of a reduction over `n` elements (vec4 loads).
pub(crate) fn partials_for(n: usize) -> usize {
    groups_for(n.div_ceil(4)).clamp(1, MAX_PARTIALS)
}

/// A binding of `len` 4-byte elements from element `start` of `buffer`,
/// starting at the aligned offset at or below it; returns the binding and
/// the elements to skip inside it.
pub(crate) fn binding<'a>(
    ctx: &Context,
    buffer: &'a Buffer,
    start: usize,
    len: usize,
) -> (wgpu::BindingResource<'a>, u32) {
    binding_of(ctx, buffer, start, len, DType::F32)
}

/// [`binding`] for values of `dtype` (2 bytes a value for the halves);
/// the skip counts values.
pub(crate) fn binding_of<'a>(
    ctx: &Context,
    buffer: &'a Buffer,
    start: usize,
    len: usize,
    dtype: DType,
) -> (wgpu::BindingResource<'a>, u32) {
    let bytes = dtype.size() as u64;
    let align = ctx.limits.min_storage_buffer_offset_alignment as u64;
    let begin = start as u64 * bytes;
    let offset = begin / align * align;
    let end = ((start + len) as u64 * bytes).div_ceil(16) * 16;
    let size = (end - offset).min(buffer.size() - offset).max(4);
    let resource = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset,
        size: wgpu::BufferSize::new(size),
    });
    (resource, ((begin - offset) / bytes) as u32)
}

/// The first 16 bytes of `buffer`: a small buffer's whole contents, or what
/// an unused binding gets, so that it stays within the binding limit
/// whatever the buffer's size.
pub(crate) fn head(buffer: &Buffer) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: 0,
        size: wgpu::BufferSize::new(buffer.size().min(16)),
    })
}
