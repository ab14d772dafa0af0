//! Host side of `shaders/reduce.wgsl`: every reduction's second pass, and
//! the two-pass reductions built from `reduce_terms` (loss.rs) and it.

use super::buffers::{error_slots, output, submit_and_read, to_f32, to_u32, uniform, upload};
use super::dispatch::{chunks, grid, partials_for, reduce_chunk_elements, Chunk};
use super::loss::{Dtypes, Inputs, PointOp};
use super::memory::Buffer;
use super::params::ReduceParams;
use super::pipelines::Family;
use super::stream::{ChunkInputs, HostInputs};
use super::Gpu;
use crate::error::Result;

/// Σ w·l from a reduction's (S, Σ w, M): S·e^M in f64 (M = 0 except for the
/// exponential loss).
pub(super) fn scaled_sum(s: &[f32]) -> f64 {
    if s[2] == 0.0 {
        s[0] as f64
    } else {
        s[0] as f64 * (s[2] as f64).exp()
    }
}

impl Gpu {
    /// Both passes of a reduction over `n` elements; returns the buffer whose
    /// first vec4 holds (Σ w·l, Σ w).
    pub(super) fn reduce(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        op: PointOp,
        inputs: &Inputs,
        n: usize,
    ) -> Result<Buffer> {
        let parts = chunks(n, reduce_chunk_elements(&self.ctx));
        let partials = self.partials_for_chunks(&parts)?;
        let mut base = 0;
        for c in &parts {
            let chunk = ChunkInputs {
                pred: inputs.pred,
                target: inputs.target,
                weights: inputs.weights,
                per_class: inputs.per_class,
                dtypes: inputs.dtypes,
                at: c.start,
            };
            base += self.reduce_chunk(encoder, op, &chunk, inputs.errors, *c, &partials, base)?;
        }
        let result = output(&self.ctx, 4, "result")?;
        self.fold_partials(encoder, &partials, base, &result, None)?;
        Ok(result)
    }

    /// [`Gpu::reduce`] over host slices longer than one chunk, streamed
    /// (stream.rs); returns the unsubmitted last encoder and the result.
    pub(super) fn reduce_streamed<F: crate::ops::dtype::Float>(
        &self,
        op: PointOp,
        host: HostInputs<F>,
        errors: &Buffer,
    ) -> Result<(wgpu::CommandEncoder, Buffer)> {
        let chunk = reduce_chunk_elements(&self.ctx);
        let parts = chunks(host.pred.len(), chunk);
        let partials = self.partials_for_chunks(&parts)?;
        let mut base = 0;
        let mut encoder = self.stream(host, chunk, |encoder, inputs, c| {
            base += self.reduce_chunk(encoder, op, inputs, errors, c, &partials, base)?;
            Ok(())
        })?;
        let result = output(&self.ctx, 4, "result")?;
        self.fold_partials(&mut encoder, &partials, base, &result, None)?;
        Ok((encoder, result))
    }

    /// [`Gpu::reduce`] over host slices, streamed past one chunk (with the
    /// resident path's bits either way), submitted and read back: its
    /// (S, Σ w, M) and its error slots.
    pub(super) fn reduce_host<F: crate::ops::dtype::Float>(
        &self,
        op: PointOp,
        host: HostInputs<F>,
    ) -> Result<(Vec<f32>, Vec<u32>)> {
        let ctx = &self.ctx;
        let errors = error_slots(ctx);
        let n = host.pred.len();
        let (encoder, result) = if n > reduce_chunk_elements(ctx) {
            self.reduce_streamed(op, host, &errors)?
        } else {
            let pred = upload(ctx, host.pred, "input")?;
            let up = |v: Option<&[F]>, what| v.map(|v| upload(ctx, v, what)).transpose();
            let target = up(host.target, "second input")?;
            let weights = up(host.weights, "weights")?;
            let per_class = host.per_class.map(|v| upload(ctx, v, "per class"));
            let per_class = per_class.transpose()?;
            let inputs = Inputs {
                pred: &pred,
                target: target.as_ref(),
                weights: weights.as_ref(),
                errors: &errors,
                per_class: per_class.as_ref(),
                dtypes: Dtypes::all(F::DTYPE),
                spare: None,
            };
            let mut encoder = self.encoder();
            let result = self.reduce(&mut encoder, op, &inputs, n)?;
            (encoder, result)
        };
        let bytes = submit_and_read(ctx, encoder, &[(&result, 16), (&errors, 16)])?;
        Ok((to_f32(&bytes[0], 3), to_u32(&bytes[1])))
    }

    pub(super) fn partials_for_chunks(&self, parts: &[Chunk]) -> Result<Buffer> {
        let total: usize = parts.iter().map(|c| partials_for(c.len)).sum();
        output(&self.ctx, total * 4, "partials")
    }

    /// The second pass of every reduction: `count` partials into `result`;
    /// with a batch's segment table, one fold per packed loss (`count` of
    /// them), each into its own slot of `result`.
    pub(super) fn fold_partials(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        partials: &Buffer,
        count: usize,
        result: &Buffer,
        segments: Option<&Buffer>,
    ) -> Result<()> {
        let params = uniform(
            &self.ctx,
            &ReduceParams {
                count: count as u32,
                ..Default::default()
            },
        );
        let resources = vec![
            params.as_entire_binding(),
            partials.as_entire_binding(),
            result.as_entire_binding(),
            segments.unwrap_or(partials).as_entire_binding(),
        ];
        let (entry, groups) = match segments {
            Some(_) => ("reduce_segments", grid(&self.ctx, count)?),
            None => ("reduce_partials", (1, 1)),
        };
        self.run(encoder, Family::Reduce, entry, &[], resources, groups)
    }
}
