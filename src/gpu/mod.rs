//! The GPU backend: each public operation records its dispatches into one
//! command encoder, submits once and reads back once.

mod batch;
mod buffers;
pub(crate) mod context;
mod dispatch;
mod gradient;
mod metrics;
mod params;
pub(crate) mod pipelines;
mod probe;
mod stream;

use crate::cpu::reject_rmse_none;
use crate::error::{Error, Result};
use crate::ops::activation::{Activation, Pass};
use crate::ops::loss::{
    class_error, weight_error, Domain, Form, Loss, LossInput, RowOp, Shape, Target, Term,
};
use crate::ops::reduction::{finish, CoefMode, LossValue, Reduction};
use buffers::{error_slots, output, submit_and_read, to_f32, to_u32, uniform, upload};
use context::{Context, GpuOptions};
use dispatch::{
    binding, chunks, grid, groups_for, head, max_chunk_elements, max_chunk_rows, partials_for,
    reduce_chunk_elements, Chunk,
};
use params::{ActParams, LossParams, ReduceParams, RowParams};
use pipelines::{Family, Pipelines};
use stream::{ChunkInputs, HostInputs};

/// A row kernel's specialisation.
#[derive(Clone, Copy)]
struct RowKernel {
    op: RowOp,
    weighted: bool,
    pred_unit: bool,
    target_unit: bool,
}

impl RowKernel {
    fn constants(self) -> [(&'static str, u32); 4] {
        [
            ("OP", self.op.id()),
            ("HAS_WEIGHTS", self.weighted as u32),
            ("PRED_UNIT", self.pred_unit as u32),
            ("TARGET_UNIT", self.target_unit as u32),
        ]
    }
}

/// The entry points of `shaders/rows.wgsl`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RowEntry {
    /// A workgroup per row: the row's loss and logsumexp.
    Loss,
    /// A thread per narrow row: the row's loss and logsumexp.
    LossSmall,
    /// A thread per element: the gradient from the row's logsumexp.
    Grad,
    /// A thread per narrow row: its logsumexp, then its gradient.
    GradSmall,
}

impl RowEntry {
    fn name(self) -> &'static str {
        match self {
            RowEntry::Loss => "row_loss",
            RowEntry::LossSmall => "row_loss_small",
            RowEntry::Grad => "row_grad",
            RowEntry::GradSmall => "row_grad_small",
        }
    }

    /// Whether the output holds one value per element rather than per row.
    fn per_element(self) -> bool {
        matches!(self, RowEntry::Grad | RowEntry::GradSmall)
    }

    /// Threads needed for `rows` rows of `cols`, as (workgroups, or threads
    /// to be grouped by 256).
    fn groups(self, ctx: &Context, rows: usize, cols: usize) -> Result<(u32, u32)> {
        match self {
            RowEntry::Grad => grid(ctx, groups_for(rows * cols)),
            RowEntry::LossSmall | RowEntry::GradSmall => grid(ctx, groups_for(rows)),
            RowEntry::Loss => grid(ctx, rows),
        }
    }
}

/// Rows of at most this many columns get a thread each rather than a
/// workgroup: a workgroup would leave most of its 256 invocations idle.
const SMALL_ROW: usize = 64;

/// How the gradient kernels scale w·dl/dp (grad_factor in common.wgsl).
#[derive(Clone, Copy)]
enum Coef {
    Scale(f32),
    InverseWeightSum,
    Rmse,
}

impl Coef {
    fn mode(self) -> (u32, f32) {
        match self {
            Coef::Scale(s) => (CoefMode::Scale.id(), s),
            Coef::InverseWeightSum => (CoefMode::InverseWeightSum.id(), 0.0),
            Coef::Rmse => (CoefMode::Rmse.id(), 0.0),
        }
    }
}

/// What one recorded loss evaluation leaves to read back.
struct Pending {
    errors: wgpu::Buffer,
    sums: Option<wgpu::Buffer>,
    main: Option<wgpu::Buffer>,
    main_len: usize,
    rows: usize,
    cols: usize,
    weighted: bool,
    with_grad: bool,
}

impl Pending {
    /// (buffer, bytes) to read: the error slots, the sums, the main output.
    fn parts(&self) -> Vec<(&wgpu::Buffer, u64)> {
        let mut parts = vec![(&self.errors, 16)];
        if let Some(s) = &self.sums {
            parts.push((s, 16));
        }
        if let Some(m) = &self.main {
            parts.push((m, self.main_len as u64 * 4));
        }
        parts
    }
}

/// A pointwise kernel's specialisation.
#[derive(Clone, Copy)]
struct PointOp {
    op: Term,
    param: f32,
    pred_domain: Domain,
    target_domain: Domain,
}

/// Device buffers of one loss evaluation.
struct Inputs<'b> {
    pred: &'b wgpu::Buffer,
    target: Option<&'b wgpu::Buffer>,
    weights: Option<&'b wgpu::Buffer>,
    errors: &'b wgpu::Buffer,
}

/// Σ w·l from a reduction's (S, Σ w, M): S·e^M in f64 (M = 0 except for the
/// exponential loss).
fn scaled_sum(s: &[f32]) -> f64 {
    if s[2] == 0.0 {
        s[0] as f64
    } else {
        s[0] as f64 * (s[2] as f64).exp()
    }
}

pub(crate) struct Gpu {
    ctx: Context,
    pipelines: Pipelines,
}

impl Gpu {
    pub async fn new(options: &GpuOptions) -> Result<Gpu> {
        let ctx = Context::new(options).await?;
        let pipelines = Pipelines::new(&ctx)?;
        Ok(Gpu { ctx, pipelines })
    }

    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        options: &GpuOptions,
    ) -> Result<Gpu> {
        let subgroups =
            !options.disable_subgroups && device.features().contains(wgpu::Features::SUBGROUP);
        let ctx = Context::from_device(device, queue, info, subgroups, options);
        let pipelines = Pipelines::new(&ctx)?;
        Ok(Gpu { ctx, pipelines })
    }

    pub fn info(&self) -> &context::DeviceInfo {
        &self.ctx.info
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.ctx.device
    }

    /// Whether the device-lost callback has fired.
    pub fn is_lost(&self) -> bool {
        self.ctx.is_lost()
    }

    pub fn pipeline_count(&self) -> usize {
        self.pipelines.len()
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("lossgpu"),
            })
    }

    fn run(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        family: Family,
        entry: &'static str,
        constants: &[(&'static str, u32)],
        resources: Vec<wgpu::BindingResource>,
        groups: (u32, u32),
    ) -> Result<()> {
        let pipeline = self.pipelines.get(&self.ctx, family, entry, constants)?;
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .into_iter()
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        let bind_group = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: self.pipelines.layout(family),
                entries: &entries,
            });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(entry),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, 1);
        Ok(())
    }

    // ---- activations -------------------------------------------------

    pub fn activation(
        &self,
        act: &Activation,
        pass: Pass,
        x: &[f32],
        upstream: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        let n = x.len();
        self.ctx.scoped(|| {
            let xb = upload(&self.ctx, x, "input")?;
            let ub = match upstream {
                Some(u) if pass == Pass::Backward => Some(upload(&self.ctx, u, "upstream")?),
                _ => None,
            };
            let out = output(&self.ctx, n, "activation output")?;
            let mut encoder = self.encoder();
            self.encode_activation(&mut encoder, act, pass, &xb, ub.as_ref(), &out, n)?;
            let bytes = submit_and_read(&self.ctx, encoder, &[(&out, n as u64 * 4)])?;
            Ok(to_f32(&bytes[0], n))
        })
    }

    /// The activation of a resident buffer into a new resident buffer.
    pub fn activation_resident(
        &self,
        act: &Activation,
        pass: Pass,
        x: &wgpu::Buffer,
        upstream: Option<&wgpu::Buffer>,
        n: usize,
    ) -> Result<wgpu::Buffer> {
        self.ctx.scoped(|| {
            let out = output(&self.ctx, n, "activation output")?;
            let mut encoder = self.encoder();
            self.encode_activation(&mut encoder, act, pass, x, upstream, &out, n)?;
            self.ctx.queue.submit([encoder.finish()]);
            Ok(out)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn encode_activation(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: &Activation,
        pass: Pass,
        xb: &wgpu::Buffer,
        ub: Option<&wgpu::Buffer>,
        out: &wgpu::Buffer,
        n: usize,
    ) -> Result<()> {
        let [a, _, lower, upper] = act.shader_params();
        let [training, seed_lo, seed_hi] = act.shader_rng();
        let constants = [("OP", act.kernel().id()), ("PASS", pass.id())];
        for c in chunks(n, max_chunk_elements(&self.ctx)) {
            let params = uniform(
                &self.ctx,
                &ActParams {
                    n4: c.len.div_ceil(4) as u32,
                    base: c.start as u32,
                    seed_lo,
                    seed_hi,
                    a,
                    training,
                    lower,
                    upper,
                },
            );
            let resources = vec![
                params.as_entire_binding(),
                binding(&self.ctx, xb, c.start, c.len).0,
                binding(&self.ctx, ub.unwrap_or(xb), c.start, c.len).0,
                binding(&self.ctx, out, c.start, c.len).0,
            ];
            let groups = grid(&self.ctx, groups_for(c.len.div_ceil(4)))?;
            self.run(
                encoder,
                Family::Activation,
                "activation",
                &constants,
                resources,
                groups,
            )?;
        }
        Ok(())
    }

    /// A pointwise loss on resident prediction and target buffers of `n`
    /// values, as [`Gpu::loss_on_device`] evaluates it.
    pub fn loss_resident(
        &self,
        loss: &Loss,
        pred: &wgpu::Buffer,
        target: &wgpu::Buffer,
        n: usize,
        reduction: Reduction,
        with_grad: bool,
    ) -> Result<(LossValue, Option<wgpu::Buffer>)> {
        reject_rmse_none(loss, reduction)?;
        let op = loss.term().ok_or_else(|| {
            crate::error::invalid!(
                "{} is not pointwise: resident tensors take pointwise losses",
                loss.name()
            )
        })?;
        let shape = Shape {
            rows: n,
            cols: 1,
            form: Form::Pointwise(op),
        };
        self.loss_on_device(loss, pred, shape, Some(target), true, reduction, with_grad)
    }

    /// One value of a resident buffer (to name an offender in an error).
    fn read_resident_at(&self, buffer: &wgpu::Buffer, i: usize) -> Result<f32> {
        let one = output(&self.ctx, 1, "offender")?;
        let mut encoder = self.encoder();
        encoder.copy_buffer_to_buffer(buffer, i as u64 * 4, &one, 0, 4);
        let bytes = submit_and_read(&self.ctx, encoder, &[(&one, 4)])?;
        Ok(to_f32(&bytes[0], 1)[0])
    }

    /// Σ term(x, t) of an internal pointwise op (prelu's dα, the penalties).
    pub fn sum_of_terms(&self, op: Term, x: &[f32], t: Option<&[f32]>) -> Result<f64> {
        let op = PointOp {
            op,
            param: 0.0,
            pred_domain: Domain::Any,
            target_domain: Domain::Any,
        };
        self.ctx.scoped(|| {
            if x.len() > reduce_chunk_elements(&self.ctx) {
                let host = HostInputs {
                    pred: x,
                    target: t,
                    weights: None,
                };
                let errors = error_slots(&self.ctx);
                let (encoder, result) = self.reduce_streamed(op, host, &errors)?;
                let bytes = submit_and_read(&self.ctx, encoder, &[(&result, 16)])?;
                return Ok(scaled_sum(&to_f32(&bytes[0], 3)));
            }
            let xb = upload(&self.ctx, x, "input")?;
            let tb = t
                .map(|t| upload(&self.ctx, t, "second input"))
                .transpose()?;
            let errors = error_slots(&self.ctx);
            let inputs = Inputs {
                pred: &xb,
                target: tb.as_ref(),
                weights: None,
                errors: &errors,
            };
            let mut encoder = self.encoder();
            let result = self.reduce(&mut encoder, op, &inputs, x.len())?;
            let bytes = submit_and_read(&self.ctx, encoder, &[(&result, 16)])?;
            Ok(scaled_sum(&to_f32(&bytes[0], 3)))
        })
    }

    // ---- pointwise passes ---------------------------------------------

    fn point_constants(op: PointOp, inputs: &Inputs) -> [(&'static str, u32); 5] {
        [
            ("OP", op.op.id()),
            ("HAS_TARGET", inputs.target.is_some() as u32),
            ("HAS_WEIGHTS", inputs.weights.is_some() as u32),
            ("PRED_DOMAIN", op.pred_domain.id()),
            ("TARGET_DOMAIN", op.target_domain.id()),
        ]
    }

    #[allow(clippy::too_many_arguments)]
    fn point_resources<'b>(
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
        ]
    }

    /// Both passes of a reduction over `n` elements; returns the buffer whose
    /// first vec4 holds (Σ w·l, Σ w).
    fn reduce(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        op: PointOp,
        inputs: &Inputs,
        n: usize,
    ) -> Result<wgpu::Buffer> {
        let parts = chunks(n, reduce_chunk_elements(&self.ctx));
        let partials = self.partials_for_chunks(&parts)?;
        let mut base = 0;
        for c in &parts {
            let chunk = ChunkInputs {
                pred: inputs.pred,
                target: inputs.target,
                weights: inputs.weights,
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
    fn reduce_streamed(
        &self,
        op: PointOp,
        host: HostInputs,
        errors: &wgpu::Buffer,
    ) -> Result<(wgpu::CommandEncoder, wgpu::Buffer)> {
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

    fn partials_for_chunks(&self, parts: &[Chunk]) -> Result<wgpu::Buffer> {
        let total: usize = parts.iter().map(|c| partials_for(c.len)).sum();
        output(&self.ctx, total * 4, "partials")
    }

    /// The first pass over one chunk into partials from `base`; returns the
    /// number of partials written.
    #[allow(clippy::too_many_arguments)]
    fn reduce_chunk(
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

    /// The second pass of every reduction: `count` partials into `result`;
    /// with a batch's segment table, one fold per packed loss (`count` of
    /// them), each into its own slot of `result`.
    fn fold_partials(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        partials: &wgpu::Buffer,
        count: usize,
        result: &wgpu::Buffer,
        segments: Option<&wgpu::Buffer>,
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

    /// `terms` (w·l per element) or `grad` (w·c·dl/dp per element).
    #[allow(clippy::too_many_arguments)]
    fn elementwise(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        entry: &'static str,
        op: PointOp,
        inputs: &Inputs,
        n: usize,
        coef: Coef,
        stats: Option<&wgpu::Buffer>,
    ) -> Result<wgpu::Buffer> {
        let out = output(&self.ctx, n, entry)?;
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
                    ..Default::default()
                },
            );
            let out_binding = binding(&self.ctx, &out, c.start, c.len).0;
            let resources =
                self.point_resources(&params, inputs, out_binding, stats, c.start, c.len);
            let groups = grid(&self.ctx, groups_for(c.len.div_ceil(4)))?;
            self.run(encoder, Family::Loss, entry, &constants, resources, groups)?;
        }
        Ok(out)
    }

    // ---- row passes ----------------------------------------------------

    /// row_loss over all rows: per-row losses and logsumexps.
    fn row_losses(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: RowKernel,
        inputs: &Inputs,
        rows: usize,
        cols: usize,
    ) -> Result<(wgpu::Buffer, wgpu::Buffer)> {
        let out = output(&self.ctx, rows, "row losses")?;
        let lse = output(&self.ctx, 2 * rows, "row logsumexp")?;
        // Narrow rows: a thread per row; wide rows: a workgroup per row.
        let entry = if cols <= SMALL_ROW {
            RowEntry::LossSmall
        } else {
            RowEntry::Loss
        };
        self.row_pass(
            encoder,
            entry,
            kernel,
            inputs,
            rows,
            cols,
            &out,
            &lse,
            None,
            Coef::Scale(1.0),
        )?;
        Ok((out, lse))
    }

    #[allow(clippy::too_many_arguments)]
    fn row_pass(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        entry: RowEntry,
        kernel: RowKernel,
        inputs: &Inputs,
        rows: usize,
        cols: usize,
        out: &wgpu::Buffer,
        lse: &wgpu::Buffer,
        stats: Option<&wgpu::Buffer>,
        coef: Coef,
    ) -> Result<()> {
        let ctx = &self.ctx;
        let classes = kernel.op.class_target();
        let (coef_mode, scale) = coef.mode();
        for c in chunks(rows, max_chunk_rows(ctx, cols)?) {
            let (pred, pred_skip) = binding(ctx, inputs.pred, c.start * cols, c.len * cols);
            let (target, target_skip) = match inputs.target {
                Some(t) if classes => binding(ctx, t, c.start, c.len),
                Some(t) => binding(ctx, t, c.start * cols, c.len * cols),
                None => binding(ctx, inputs.pred, c.start * cols, c.len * cols),
            };
            let (weights, weight_skip) =
                binding(ctx, inputs.weights.unwrap_or(inputs.pred), c.start, c.len);
            let (out_binding, out_skip) = if entry.per_element() {
                binding(ctx, out, c.start * cols, c.len * cols)
            } else {
                binding(ctx, out, c.start, c.len)
            };
            let (lse_binding, lse_skip) = binding(ctx, lse, 2 * c.start, 2 * c.len);
            let params = uniform(
                ctx,
                &RowParams {
                    rows: c.len as u32,
                    cols: cols as u32,
                    base_row: c.start as u32,
                    pred_skip,
                    target_skip,
                    weight_skip,
                    out_skip,
                    lse_skip,
                    coef_mode,
                    scale,
                    ..Default::default()
                },
            );
            let resources = vec![
                params.as_entire_binding(),
                pred,
                target,
                weights,
                out_binding,
                lse_binding,
                inputs.errors.as_entire_binding(),
                head(stats.unwrap_or(inputs.pred)),
            ];
            let groups = entry.groups(ctx, c.len, cols)?;
            let constants = kernel.constants();
            self.run(
                encoder,
                Family::Rows,
                entry.name(),
                &constants,
                resources,
                groups,
            )?;
        }
        Ok(())
    }

    // ---- losses ----------------------------------------------------------

    /// Evaluates the loss value, or with `with_grad` its gradient; returns
    /// (value or per-sample values, gradient).
    /// Evaluates the loss value, or with `with_grad` its gradient; returns
    /// (value or per-sample values, gradient).
    pub fn loss(
        &self,
        loss: &Loss,
        input: &LossInput,
        reduction: Reduction,
        with_grad: bool,
    ) -> Result<(LossValue, Option<Vec<f32>>)> {
        self.ctx.scoped(|| {
            if let Some(value) = self.loss_streamed(loss, input, reduction, with_grad)? {
                return Ok((value, None));
            }
            let mut encoder = self.encoder();
            let pending = self.encode_loss(&mut encoder, loss, input, reduction, with_grad)?;
            let bytes = submit_and_read(&self.ctx, encoder, &pending.parts())?;
            self.finish_loss(loss, input, reduction, &pending, &bytes)
        })
    }

    /// The value of a pointwise loss over host slices longer than one
    /// reduction chunk, streamed with bounded device memory (stream.rs);
    /// None when the evaluation is not such a reduction.
    fn loss_streamed(
        &self,
        loss: &Loss,
        input: &LossInput,
        reduction: Reduction,
        with_grad: bool,
    ) -> Result<Option<LossValue>> {
        reject_rmse_none(loss, reduction)?;
        let shape = loss.shape(input)?;
        let (Form::Pointwise(op), Target::Values(target)) = (shape.form, input.target) else {
            return Ok(None);
        };
        if with_grad
            || reduction == Reduction::None
            || shape.rows <= reduce_chunk_elements(&self.ctx)
        {
            return Ok(None);
        }
        let point_op = PointOp {
            op,
            param: loss.param(),
            pred_domain: loss.pred_domain(),
            target_domain: loss.target_domain(),
        };
        let host = HostInputs {
            pred: input.pred,
            target: Some(target),
            weights: input.weights,
        };
        let errors = error_slots(&self.ctx);
        let (encoder, result) = self.reduce_streamed(point_op, host, &errors)?;
        let pending = Pending {
            errors,
            sums: Some(result),
            main: None,
            main_len: 0,
            rows: shape.rows,
            cols: 1,
            weighted: input.weights.is_some(),
            with_grad: false,
        };
        let bytes = submit_and_read(&self.ctx, encoder, &pending.parts())?;
        Ok(Some(
            self.finish_loss(loss, input, reduction, &pending, &bytes)?
                .0,
        ))
    }

    /// Records every pass of one loss evaluation into `encoder`.
    fn encode_loss(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        loss: &Loss,
        input: &LossInput,
        reduction: Reduction,
        with_grad: bool,
    ) -> Result<Pending> {
        reject_rmse_none(loss, reduction)?;
        let shape = loss.shape(input)?;
        let ctx = &self.ctx;
        let pred = upload(ctx, input.pred, "pred")?;
        let target = match input.target {
            Target::Values(t) => Some(upload(ctx, t, "target")?),
            Target::Classes(c) => Some(upload(ctx, c, "target")?),
            Target::None => None,
        };
        let weights = input
            .weights
            .map(|w| upload(ctx, w, "weights"))
            .transpose()?;
        let target_values = matches!(input.target, Target::Values(_));
        let buffers = (&pred, target.as_ref(), weights.as_ref());
        self.encode_on(
            encoder,
            loss,
            shape,
            buffers,
            target_values,
            reduction,
            with_grad,
        )
    }

    /// Records every pass of one loss evaluation on device buffers (pred,
    /// target, weights) of the given shape; `target_values` tells real
    /// targets from class indices.
    #[allow(clippy::too_many_arguments)]
    fn encode_on(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        loss: &Loss,
        shape: Shape,
        (pred, target, weights): (&wgpu::Buffer, Option<&wgpu::Buffer>, Option<&wgpu::Buffer>),
        target_values: bool,
        reduction: Reduction,
        with_grad: bool,
    ) -> Result<Pending> {
        let ctx = &self.ctx;
        let (rows, cols) = (shape.rows, shape.cols);
        let errors = error_slots(ctx);
        let inputs = Inputs {
            pred,
            target,
            weights,
            errors: &errors,
        };
        let weighted = weights.is_some();
        let rmse = *loss == Loss::Rmse;
        let needs_sums = !with_grad || (reduction == Reduction::Mean && (weighted || rmse));
        // Narrow rows whose gradient needs no sums skip the row_loss pass:
        // row_grad_small finds each row's logsumexp itself.
        let fused_grad = with_grad && !needs_sums && cols <= SMALL_ROW;
        // The per-sample values and how to reduce them.
        let (point_op, point_inputs, row_state);
        match shape.form {
            Form::Pointwise(op) => {
                point_op = PointOp {
                    op,
                    param: loss.param(),
                    pred_domain: loss.pred_domain(),
                    target_domain: loss.target_domain(),
                };
                point_inputs = None;
                row_state = None;
            }
            Form::Rows(op) => {
                let kernel = RowKernel {
                    op,
                    weighted,
                    pred_unit: loss.pred_domain() == Domain::Unit,
                    target_unit: target_values && loss.target_domain() == Domain::Unit,
                };
                point_op = PointOp {
                    op: Term::Identity,
                    param: 0.0,
                    pred_domain: Domain::Any,
                    target_domain: Domain::Any,
                };
                if fused_grad {
                    point_inputs = None;
                    row_state = Some((kernel, output(ctx, 2 * rows, "row logsumexp")?));
                } else {
                    let (row_out, lse) = self.row_losses(encoder, kernel, &inputs, rows, cols)?;
                    point_inputs = Some(row_out);
                    row_state = Some((kernel, lse));
                }
            }
        }
        let reduce_inputs = Inputs {
            pred: point_inputs.as_ref().unwrap_or(pred),
            target: if point_inputs.is_some() {
                None
            } else {
                inputs.target
            },
            weights: inputs.weights,
            errors: &errors,
        };
        let sums = if reduction != Reduction::None && needs_sums {
            Some(self.reduce(encoder, point_op, &reduce_inputs, rows)?)
        } else {
            None
        };
        let coef = match reduction {
            Reduction::Mean if rmse => Coef::Rmse,
            Reduction::Mean if weighted => Coef::InverseWeightSum,
            Reduction::Mean => Coef::Scale((1.0 / rows as f64) as f32),
            _ => Coef::Scale(1.0),
        };
        let main = if with_grad {
            match &row_state {
                None => Some(self.elementwise(
                    encoder,
                    "grad",
                    point_op,
                    &inputs,
                    rows,
                    coef,
                    sums.as_ref(),
                )?),
                Some((kernel, lse)) => {
                    let g = output(ctx, rows * cols, "grad")?;
                    self.row_pass(
                        encoder,
                        if fused_grad {
                            RowEntry::GradSmall
                        } else {
                            RowEntry::Grad
                        },
                        *kernel,
                        &inputs,
                        rows,
                        cols,
                        &g,
                        lse,
                        sums.as_ref(),
                        coef,
                    )?;
                    Some(g)
                }
            }
        } else if reduction == Reduction::None {
            Some(self.elementwise(encoder, "terms", point_op, &reduce_inputs, rows, coef, None)?)
        } else {
            None
        };
        Ok(Pending {
            errors,
            sums,
            main,
            main_len: if with_grad { rows * cols } else { rows },
            rows,
            cols,
            weighted,
            with_grad,
        })
    }

    /// Turns the read-back bytes of one evaluation into its value and
    /// gradient, after naming any offending input value.
    fn finish_loss(
        &self,
        loss: &Loss,
        input: &LossInput,
        reduction: Reduction,
        p: &Pending,
        bytes: &[Vec<u8>],
    ) -> Result<(LossValue, Option<Vec<f32>>)> {
        self.raise_value_errors(loss, input, p.cols, &to_u32(&bytes[0]))?;
        let value = Self::value_of(loss, reduction, p, bytes)?;
        let grad = p
            .with_grad
            .then(|| to_f32(&bytes[bytes.len() - 1], p.main_len));
        Ok((value, grad))
    }

    /// The value from the read-back sums or per-sample values (NaN when
    /// only a gradient was computed).
    fn value_of(
        loss: &Loss,
        reduction: Reduction,
        p: &Pending,
        bytes: &[Vec<u8>],
    ) -> Result<LossValue> {
        let rmse = *loss == Loss::Rmse;
        Ok(match (&p.sums, reduction) {
            (Some(_), Reduction::Mean | Reduction::Sum) => {
                let s = to_f32(&bytes[1], 3);
                let wsum = if p.weighted {
                    s[1] as f64
                } else {
                    p.rows as f64
                };
                LossValue::Scalar(finish(reduction, scaled_sum(&s), wsum, rmse)?)
            }
            (_, Reduction::None) if !p.with_grad => LossValue::PerSample(to_f32(&bytes[1], p.rows)),
            _ => LossValue::Scalar(f64::NAN),
        })
    }

    /// A loss on resident predictions of `shape` and a resident target
    /// (class indices unless `target_values`): the value read back (a
    /// scalar, or the per-sample values for reduction none), or with
    /// `with_grad` the gradient as a new resident buffer. An offending input
    /// value is read from its buffer to be named.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_on_device(
        &self,
        loss: &Loss,
        pred: &wgpu::Buffer,
        shape: Shape,
        target: Option<&wgpu::Buffer>,
        target_values: bool,
        reduction: Reduction,
        with_grad: bool,
    ) -> Result<(LossValue, Option<wgpu::Buffer>)> {
        self.ctx.scoped(|| {
            let mut encoder = self.encoder();
            let buffers = (pred, target, None);
            let mut p = self.encode_on(
                &mut encoder,
                loss,
                shape,
                buffers,
                target_values,
                reduction,
                with_grad,
            )?;
            let grad = if with_grad { p.main.take() } else { None };
            let bytes = submit_and_read(&self.ctx, encoder, &p.parts())?;
            let slots = to_u32(&bytes[0]);
            if slots[0] != u32::MAX {
                let i = slots[0] as usize;
                let v = self.read_resident_at(pred, i)?;
                return Err(loss.domain_error("pred", loss.pred_domain(), i, v));
            }
            if let (Some(t), true) = (target, slots[1] != u32::MAX) {
                let i = slots[1] as usize;
                let v = self.read_resident_at(t, i)?;
                return Err(if target_values {
                    loss.domain_error("target", loss.target_domain(), i, v)
                } else {
                    class_error(loss, i, v.to_bits(), shape.cols)
                });
            }
            p.with_grad = false; // the gradient stays on the device
            let value = if with_grad {
                LossValue::Scalar(f64::NAN)
            } else {
                Self::value_of(loss, reduction, &p, &bytes)?
            };
            Ok((value, grad))
        })
    }

    /// Turns the first offending index found by the kernels into the same
    /// error the CPU reference gives.
    fn raise_value_errors(
        &self,
        loss: &Loss,
        input: &LossInput,
        cols: usize,
        slots: &[u32],
    ) -> Result<()> {
        if let Some(&i) = slots.first().filter(|&&i| i != u32::MAX) {
            let i = i as usize;
            return Err(loss.domain_error("pred", loss.pred_domain(), i, input.pred[i]));
        }
        if let Some(&i) = slots.get(1).filter(|&&i| i != u32::MAX) {
            let i = i as usize;
            return Err(match input.target {
                Target::Classes(c) => class_error(loss, i, c[i], cols),
                Target::Values(t) => loss.domain_error("target", loss.target_domain(), i, t[i]),
                Target::None => Error::Gpu("a kernel flagged a target that does not exist".into()),
            });
        }
        if let (Some(&i), Some(w)) = (slots.get(2).filter(|&&i| i != u32::MAX), input.weights) {
            return Err(weight_error(loss, i as usize, w[i as usize]));
        }
        Ok(())
    }
}
