//! Reductions over host slices of any length with bounded device memory.
//!
//! A reduction whose host inputs span more than one chunk (2^22 values, or
//! one storage binding if that is smaller) streams them: chunk k is written
//! into slot k mod 2 once the submission that last read that slot has
//! finished, and its first pass is submitted at once, so the copy of chunk
//! k+1 on the host overlaps the kernel of chunk k. The device then holds two
//! slots per input (2 × 16 MiB for each of pred, target and weights) plus
//! wgpu's staging copies of the two chunks in flight: at most 192 MiB
//! whatever n is, besides the partials (16 KiB per chunk, 1 MiB at 2^28).
//! The chunks are those of the resident path, so a streamed and a resident
//! reduction give the same bits.

use super::buffers::padded_bytes;
use super::dispatch::{chunks, Chunk};
use super::loss::Dtypes;
use super::memory::Buffer;
use super::Gpu;
use crate::error::{Error, Result};
use crate::ops::dtype::Float;

/// One reduction's inputs on the host.
#[derive(Clone, Copy)]
pub(crate) struct HostInputs<'a, F: Float = f32> {
    pub pred: &'a [F],
    pub target: Option<&'a [F]>,
    pub weights: Option<&'a [F]>,
    /// Per-class values (bce-logits' pos_weight per column), uploaded once.
    pub per_class: Option<&'a [f32]>,
}

/// Device buffers holding one chunk: `at` is the element of the chunk's
/// start inside them (0 in a streaming slot).
pub(crate) struct ChunkInputs<'b> {
    pub pred: &'b Buffer,
    pub target: Option<&'b Buffer>,
    pub weights: Option<&'b Buffer>,
    pub per_class: Option<&'b Buffer>,
    pub dtypes: Dtypes,
    pub at: usize,
}

impl Gpu {
    /// Streams `host` through two slots of `chunk` values per input, calling
    /// `record` for each chunk; returns the encoder of the last chunk, not
    /// yet submitted, for the caller's second pass and readback.
    pub(super) fn stream<F: Float>(
        &self,
        host: HostInputs<F>,
        chunk: usize,
        mut record: impl FnMut(&mut wgpu::CommandEncoder, &ChunkInputs, Chunk) -> Result<()>,
    ) -> Result<wgpu::CommandEncoder> {
        let ctx = &self.ctx;
        let parts = chunks(host.pred.len(), chunk);
        let slot = |what: &str| {
            ctx.counted(ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size: padded_bytes(chunk),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }))
        };
        let slots: Vec<[Option<Buffer>; 3]> = (0..parts.len().min(2))
            .map(|_| {
                [
                    Some(slot("pred slot")),
                    host.target.map(|_| slot("target slot")),
                    host.weights.map(|_| slot("weights slot")),
                ]
            })
            .collect();
        let per_class = host
            .per_class
            .map(|v| super::buffers::upload(ctx, v, "per class"))
            .transpose()?;
        let mut in_flight: [Option<wgpu::SubmissionIndex>; 2] = [None, None];
        for (k, c) in parts.iter().enumerate() {
            let s = k % 2;
            if let Some(index) = in_flight[s].take() {
                ctx.device
                    .poll(wgpu::PollType::Wait {
                        submission_index: Some(index),
                        timeout: None,
                    })
                    .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
                ctx.check()?;
            }
            let sources = [Some(host.pred), host.target, host.weights];
            for (buffer, data) in slots[s].iter().zip(sources) {
                if let (Some(b), Some(d)) = (buffer, data) {
                    super::buffers::write_padded(ctx, b, &d[c.start..c.start + c.len]);
                }
            }
            let [Some(pred), target, weights] = &slots[s] else {
                return Err(Error::Gpu("a streaming slot is missing".into()));
            };
            let inputs = ChunkInputs {
                pred,
                target: target.as_ref(),
                weights: weights.as_ref(),
                per_class: per_class.as_ref(),
                dtypes: Dtypes::all(F::DTYPE),
                at: 0,
            };
            let mut encoder = self.encoder();
            record(&mut encoder, &inputs, *c)?;
            if k + 1 == parts.len() {
                return Ok(encoder);
            }
            in_flight[s] = Some(ctx.queue.submit([encoder.finish()]));
        }
        Err(Error::Gpu("streamed an empty input".into()))
    }
}
