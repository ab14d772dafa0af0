//! Host side of `shaders/loss.wgsl`: the pointwise passes. `reduce_terms`
//! is the first pass of a reduction (per-workgroup partials of Σ w·l and
//! Σ w), `terms` the per-sample values, `grad` the gradient.

use super::buffers::{output_of, uniform};
use super::dispatch::{
    binding_of, chunks, grid, groups_for, head, max_chunk_elements, partials_for, Chunk,
};
use super::memory::Buffer;
use super::params::Coef;
use super::params::LossParams;
use super::pipelines::Family;
use super::stream::ChunkInputs;
use super::Gpu;
use crate::error::Result;
use crate::ops::dtype::DType;
use crate::ops::input::TargetKind;
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
    /// How `terms` and `grad` store their output.
    pub out: DType,
    /// `grad` writes over pred (bound as `out`, pred's slot unbound).
    pub in_place: bool,
}

impl PointOp {
    /// An internal op's sum (no parameter, no domain, f32 out): row losses'
    /// reduction, prelu's dα, the penalties.
    pub fn internal(op: Term) -> PointOp {
        PointOp {
            op,
            param: 0.0,
            pred_domain: Domain::Any,
            target_domain: Domain::Any,
            pos_weight_cols: 0,
            out: DType::F32,
            in_place: false,
        }
    }

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

/// How the bound pred, target and weights are stored (overrides
/// `*_DTYPE` of loss.wgsl and rows.wgsl).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Dtypes {
    pub pred: DType,
    pub target: DType,
    pub weights: DType,
}

impl Dtypes {
    /// Every input of one type.
    pub const fn all(d: DType) -> Dtypes {
        Dtypes {
            pred: d,
            target: d,
            weights: d,
        }
    }

    /// Values of `values`, but class indices, which are u32 and read as
    /// they are.
    pub fn of(target: TargetKind, values: DType) -> Dtypes {
        match target {
            TargetKind::Classes => Dtypes {
                target: DType::F32,
                ..Dtypes::all(values)
            },
            _ => Dtypes::all(values),
        }
    }

    pub(super) fn constants(self) -> [(&'static str, u32); 3] {
        [
            ("PRED_DTYPE", self.pred.id()),
            ("TARGET_DTYPE", self.target.id()),
            ("WEIGHTS_DTYPE", self.weights.id()),
        ]
    }
}

/// Device buffers of one loss evaluation.
#[derive(Clone, Copy)]
pub(super) struct Inputs<'b> {
    pub pred: &'b Buffer,
    pub target: Option<&'b Buffer>,
    pub weights: Option<&'b Buffer>,
    pub errors: &'b Buffer,
    /// Per-class values: the class weights of rows.wgsl, bce-logits'
    /// pos_weight per column in loss.wgsl.
    pub per_class: Option<&'b Buffer>,
    pub dtypes: Dtypes,
    /// What an absent input's slot binds when pred may not be bound (its
    /// gradient is written over it); None: pred.
    pub spare: Option<&'b Buffer>,
}

impl Inputs<'_> {
    /// The buffer an unused slot binds.
    pub fn unbound(&self) -> &Buffer {
        self.spare.unwrap_or(self.pred)
    }
}

impl Gpu {
    pub(super) fn point_constants(op: PointOp, inputs: &Inputs) -> [(&'static str, u32); 11] {
        let [p, t, w] = inputs.dtypes.constants();
        [
            ("OP", op.op.id()),
            ("HAS_TARGET", inputs.target.is_some() as u32),
            ("HAS_WEIGHTS", inputs.weights.is_some() as u32),
            ("PRED_DOMAIN", op.pred_domain.id()),
            ("TARGET_DOMAIN", op.target_domain.id()),
            ("POS_WEIGHT_COLS", op.pos_weight_cols),
            ("OUT_DTYPE", op.out.id()),
            ("IN_PLACE", op.in_place as u32),
            p,
            t,
            w,
        ]
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn point_resources<'b>(
        &self,
        params: &'b Buffer,
        inputs: &'b Inputs<'b>,
        out: wgpu::BindingResource<'b>,
        stats: Option<&'b Buffer>,
        start: usize,
        len: usize,
    ) -> Vec<wgpu::BindingResource<'b>> {
        let ctx = &self.ctx;
        let d = inputs.dtypes;
        // An absent input (or pred, in place) binds the unbound slot.
        let bind = |b: Option<&'b Buffer>, dtype| match (b, inputs.spare) {
            (Some(b), _) => binding_of(ctx, b, start, len, dtype).0,
            (None, Some(spare)) => head(spare),
            (None, None) => binding_of(ctx, inputs.pred, start, len, d.pred).0,
        };
        let pred = inputs.spare.is_none().then_some(inputs.pred);
        vec![
            params.as_entire_binding(),
            bind(pred, d.pred),
            bind(inputs.target, d.target),
            bind(inputs.weights, d.weights),
            out,
            inputs.errors.as_entire_binding(),
            head(stats.unwrap_or(inputs.unbound())),
            head(inputs.unbound()), // segments: reduce_segments only
            inputs
                .per_class
                .map_or_else(|| head(inputs.unbound()), |w| w.as_entire_binding()),
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
        errors: &Buffer,
        c: Chunk,
        partials: &Buffer,
        base: usize,
    ) -> Result<usize> {
        let inputs = Inputs {
            pred: chunk.pred,
            target: chunk.target,
            weights: chunk.weights,
            errors,
            per_class: chunk.per_class,
            dtypes: chunk.dtypes,
            spare: None,
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

    /// `terms` (w·l per element) or `grad` (w·c·dl/dp per element), stored
    /// as `op.out` in a new buffer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn elementwise(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        entry: PointEntry,
        op: PointOp,
        inputs: &Inputs,
        n: usize,
        coef: Coef,
        stats: Option<&Buffer>,
    ) -> Result<Buffer> {
        let out = output_of(&self.ctx, n, op.out, entry.name())?;
        self.elementwise_into(encoder, entry, op, inputs, n, coef, stats, &out)?;
        Ok(out)
    }

    /// [`Gpu::elementwise`] into `out` (pred itself for a grad in place).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn elementwise_into(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        entry: PointEntry,
        op: PointOp,
        inputs: &Inputs,
        n: usize,
        coef: Coef,
        stats: Option<&Buffer>,
        out: &Buffer,
    ) -> Result<()> {
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
            let out_binding = binding_of(&self.ctx, out, c.start, c.len, op.out).0;
            let resources =
                self.point_resources(&params, inputs, out_binding, stats, c.start, c.len);
            let groups = grid(&self.ctx, groups_for(c.len.div_ceil(4)))?;
            let entry = entry.name();
            self.run(encoder, Family::Loss, entry, &constants, resources, groups)?;
        }
        Ok(())
    }
}
