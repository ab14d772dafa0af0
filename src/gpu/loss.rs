//! Host side of `shaders/loss.wgsl`: the pointwise passes. `reduce_terms`
//! is the first pass of a reduction (per-workgroup partials of Σ w·l and
//! Σ w), `terms` the per-sample values, `grad` the gradient.

use super::buffers::{output, uniform};
use super::dispatch::{
    binding, chunks, grid, groups_for, head, max_chunk_elements, partials_for, Chunk,
};
use super::params::Coef;
use super::params::LossParams;
use super::pipelines::Family;
use super::stream::ChunkInputs;
use super::Gpu;
use crate::error::Result;
use crate::ops::loss::{Domain, Term};
use crate::ops::reduction::CoefMode;

/// A pointwise kernel's specialisation.
#[derive(Clone, Copy)]
pub(super) struct PointOp {
    pub op: Term,
    pub param: f32,
    pub pred_domain: Domain,
    pub target_domain: Domain,
    /// bce-logits' columns with a pos_weight each (0: `param` is the one pw).
    pub pos_weight_cols: u32,
}

impl PointOp {
    /// The column of value `start` for a per-column pos_weight.
    fn col0(self, start: usize) -> u32 {
        match self.pos_weight_cols {
            0 => 0,
            m => (start % m as usize) as u32,
        }
    }
}

/// The elementwise entry points of `shaders/loss.wgsl`.
#[derive(Clone, Copy)]
pub(super) enum PointEntry {
    /// w·l per element (reduction none).
    Terms,
    /// w·c·dl/dp per element.
    Grad,
}

impl PointEntry {
    fn name(self) -> &'static str {
        match self {
            PointEntry::Terms => "terms",
            PointEntry::Grad => "grad",
        }
    }
}

/// Device buffers of one loss evaluation.
pub(super) struct Inputs<'b> {
    pub pred: &'b wgpu::Buffer,
    pub target: Option<&'b wgpu::Buffer>,
    pub weights: Option<&'b wgpu::Buffer>,
    pub errors: &'b wgpu::Buffer,
    /// Per-class values: the class weights of rows.wgsl, bce-logits'
    /// pos_weight per column in loss.wgsl.
    pub per_class: Option<&'b wgpu::Buffer>,
}

impl Gpu {
    pub(super) fn point_constants(op: PointOp, inputs: &Inputs) -> [(&'static str, u32); 6] {
        [
            ("OP", op.op.id()),
            ("HAS_TARGET", inputs.target.is_some() as u32),
            ("HAS_WEIGHTS", inputs.weights.is_some() as u32),
            ("PRED_DOMAIN", op.pred_domain.id()),
            ("TARGET_DOMAIN", op.target_domain.id()),
            ("POS_WEIGHT_COLS", op.pos_weight_cols),
        ]
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn point_resources<'b>(
        &self,
        params: &'b wgpu::Buffer,
        inputs: &Inputs<'b>,
        out: wgpu::BindingResource<'b>,
        stats: Option<&'b wgpu::Buffer>,
        start: usize,
        len: usize,
    ) -> Vec<wgpu::BindingResource<'b>> {
        let ctx = &self.ctx;
        vec![
            params.as_entire_binding(),
            binding(ctx, inputs.pred, start, len).0,
            binding(ctx, inputs.target.unwrap_or(inputs.pred), start, len).0,
            binding(ctx, inputs.weights.unwrap_or(inputs.pred), start, len).0,
            out,
            inputs.errors.as_entire_binding(),
            head(stats.unwrap_or(inputs.pred)),
            head(inputs.pred), // segments: reduce_segments only
            inputs
                .per_class
                .map_or_else(|| head(inputs.pred), |w| w.as_entire_binding()),
        ]
    }

    /// The first pass over one chunk into partials from `base`; returns the
    /// number of partials written.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reduce_chunk(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        op: PointOp,
        chunk: &ChunkInputs,
        errors: &wgpu::Buffer,
        c: Chunk,
        partials: &wgpu::Buffer,
        base: usize,
    ) -> Result<usize> {
        let inputs = Inputs {
            pred: chunk.pred,
            target: chunk.target,
            weights: chunk.weights,
            errors,
            per_class: chunk.per_class,
        };
        let groups = partials_for(c.len);
        let params = uniform(
            &self.ctx,
            &LossParams {
                n: c.len as u32,
                base: c.start as u32,
                partial_base: base as u32,
                coef_mode: CoefMode::Scale.id(),
                param: op.param,
                scale: 1.0,
                col0: op.col0(c.start),
                ..Default::default()
            },
        );
        let resources = self.point_resources(
            &params,
            &inputs,
            partials.as_entire_binding(),
            None,
            chunk.at,
            c.len,
        );
        let constants = Self::point_constants(op, &inputs);
        self.run(
            encoder,
            Family::Loss,
            "reduce_terms",
            &constants,
            resources,
            (groups as u32, 1),
        )?;
        Ok(groups)
    }

    /// `terms` (w·l per element) or `grad` (w·c·dl/dp per element).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn elementwise(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        entry: PointEntry,
        op: PointOp,
        inputs: &Inputs,
        n: usize,
        coef: Coef,
        stats: Option<&wgpu::Buffer>,
    ) -> Result<wgpu::Buffer> {
        let out = output(&self.ctx, n, entry.name())?;
        let constants = Self::point_constants(op, inputs);
        let (coef_mode, scale) = coef.mode();
        for c in chunks(n, max_chunk_elements(&self.ctx)) {
            let params = uniform(
                &self.ctx,
                &LossParams {
                    n: c.len as u32,
                    base: c.start as u32,
                    partial_base: 0,
                    coef_mode,
                    param: op.param,
                    scale,
                    col0: op.col0(c.start),
                    ..Default::default()
                },
            );
            let out_binding = binding(&self.ctx, &out, c.start, c.len).0;
            let resources =
                self.point_resources(&params, inputs, out_binding, stats, c.start, c.len);
            let groups = grid(&self.ctx, groups_for(c.len.div_ceil(4)))?;
            let entry = entry.name();
            self.run(encoder, Family::Loss, entry, &constants, resources, groups)?;
        }
        Ok(out)
    }
}
