//! One loss evaluation on the GPU: the passes of a checked [`Call`]
//! recorded into one encoder (pointwise terms or row losses, the reduction,
//! the per-sample values, the gradient), one submission, one readback.

use super::buffers::{
    error_slots, output, output_of, read_bytes, submit_and_read, to_f32, to_u32, to_values, upload,
};
use super::dispatch::reduce_chunk_elements;
use super::loss::{Dtypes, Inputs, PointEntry, PointOp};
use super::memory::Buffer;
use super::offenders::first_outside;
use super::params::Coef;
use super::reduce::scaled_sum;
use super::rows::{RowEntry, RowKernel, RowOut, SMALL_ROW};
use super::stream::HostInputs;
use super::Gpu;
use crate::error::{Error, Result};
use crate::ops::dtype::{DType, Float};
use crate::ops::input::{class_error, Call, Form, LossInput, Target, TargetKind};
use crate::ops::loss::{Domain, Loss, Term};
use crate::ops::reduction::{LossValue, Reduction};

/// What an evaluation returns: the value, the gradient, or both from one
/// set of passes; the per-sample values and the gradient stored as `out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Want {
    pub value: bool,
    pub grad: bool,
    pub out: DType,
    /// The gradient is written over pred, which must be of type `out`.
    pub in_place: bool,
}

impl Want {
    pub const VALUE: Want = Want {
        value: true,
        grad: false,
        out: DType::F32,
        in_place: false,
    };
    pub const GRAD: Want = Want {
        value: false,
        grad: true,
        out: DType::F32,
        in_place: false,
    };
    pub const BOTH: Want = Want {
        value: true,
        grad: true,
        out: DType::F32,
        in_place: false,
    };

    /// The same, with the gradient written over pred.
    pub fn in_place(self) -> Want {
        Want {
            in_place: true,
            ..self
        }
    }

    /// The same, with outputs of type `O`.
    pub fn of<O: Float>(self) -> Want {
        Want {
            out: O::DTYPE,
            ..self
        }
    }
}

/// An evaluation's pred, target and weights on the device.
type DeviceInputs<'b> = (&'b Buffer, Option<&'b Buffer>, Option<&'b Buffer>);

/// What one recorded loss evaluation leaves to read back.
pub(super) struct Pending {
    errors: Buffer,
    /// (Σ w·l, Σ w, M) of the reduction.
    sums: Option<Buffer>,
    /// The per-sample values w·l (reduction none).
    terms: Option<Buffer>,
    /// The gradient, one value per prediction.
    grad: Option<Buffer>,
    /// A slab's per-row losses, unweighted f32, for the whole call's
    /// reduction (slabs.rs).
    row_values: Option<Buffer>,
    rows: usize,
    cols: usize,
    /// How the per-sample values and the gradient are stored.
    out: DType,
    weighted: bool,
    /// The mean's denominator computed on the host (class options).
    mean_weights: Option<f64>,
}

/// Cross-entropy's and nll's options as a row call's passes take them.
#[derive(Default)]
pub(super) struct ClassOptions<'b> {
    ignore: Option<u32>,
    /// Class weights, or bce-logits' pos_weight per column.
    per_class: Option<&'b Buffer>,
    /// bce-logits' one pos_weight, or its columns with one each.
    pos_weight: Option<f32>,
    pos_weight_cols: u32,
    smoothing: f32,
    z_loss: f32,
    /// Σ of the rows' mean weights (the host's f64), where options apply.
    mean_weight_sum: Option<f64>,
    /// The whole call, where this one is a slab of its rows (slabs.rs).
    slab_of: Option<SlabOf>,
}

/// What a slab's passes take from the whole call (slabs.rs).
#[derive(Clone, Copy)]
pub(super) struct SlabOf {
    /// The gradient's factor: the whole call's 1/denominator, which the
    /// slab's own reduction does not know.
    pub grad_scale: f32,
    /// The whole call's rows, which decide whether wide rows are split,
    /// so that a slab's rows get the bits of the one-buffer path.
    pub rows: usize,
}

/// The read-back bytes of a [`Pending`], by part.
pub(super) struct Read<'b> {
    pub errors: &'b [u8],
    pub sums: Option<&'b [u8]>,
    pub terms: Option<&'b [u8]>,
    pub grad: Option<&'b [u8]>,
    pub row_values: Option<&'b [u8]>,
}

impl Pending {
    /// (buffer, bytes) to read: the error slots, then the sums, the
    /// per-sample values and the gradient where they were recorded.
    pub(super) fn parts(&self) -> Vec<(&Buffer, u64)> {
        let mut parts = vec![(&self.errors, 16)];
        if let Some(s) = &self.sums {
            parts.push((s, 16));
        }
        if let Some(t) = &self.terms {
            parts.push((t, read_bytes(self.rows, self.out)));
        }
        if let Some(g) = &self.grad {
            parts.push((g, read_bytes(self.rows * self.cols, self.out)));
        }
        if let Some(v) = &self.row_values {
            parts.push((v, 4 * self.rows as u64));
        }
        parts
    }

    pub(super) fn read<'b>(&self, bytes: &'b [Vec<u8>]) -> Read<'b> {
        let mut parts = bytes.iter().map(Vec::as_slice);
        let mut next = |recorded: bool| if recorded { parts.next() } else { None };
        Read {
            errors: next(true).unwrap_or(&[]),
            sums: next(self.sums.is_some()),
            terms: next(self.terms.is_some()),
            grad: next(self.grad.is_some()),
            row_values: next(self.row_values.is_some()),
        }
    }

    /// The value from the read-back sums or per-sample values (NaN when it
    /// was not asked for), per-sample values as `O` (the recorded dtype).
    fn value<O: Float>(&self, call: &Call, read: &Read) -> Result<LossValue<O>> {
        Ok(match (self.sums(read), read.terms) {
            (Some((sum, wsum)), _) => LossValue::Scalar(call.finish(sum, wsum)?),
            (None, Some(terms)) => LossValue::PerSample(to_values(terms, self.rows)),
            (None, None) => LossValue::Scalar(f64::NAN),
        })
    }

    /// (Σ w·l, Σ w) from the read-back reduction (Σ w is the count when
    /// unweighted).
    pub(super) fn sums(&self, read: &Read) -> Option<(f64, f64)> {
        let s = to_f32(read.sums?, 3);
        let wsum = if let Some(w) = self.mean_weights {
            w
        } else if self.weighted {
            s[1] as f64
        } else {
            self.rows as f64
        };
        Some((scaled_sum(&s), wsum))
    }
}

impl Gpu {
    /// A checked call on host slices: its value and/or gradient as `want`
    /// says (the value is NaN when not asked for).
    pub(crate) fn loss<F: Float, O: Float>(
        &self,
        call: &Call,
        input: &LossInput<F>,
        want: Want,
    ) -> Result<(LossValue<O>, Option<Vec<O>>)> {
        let want = want.of::<O>();
        self.ctx.scoped(|| {
            if want == Want::VALUE.of::<O>() {
                if let Some(value) = self.loss_streamed(call, input)? {
                    return Ok((value, None));
                }
            }
            if let Some(joined) = self.rows_by_slab::<F, O>(call, input, want)? {
                let value = match joined.terms {
                    Some(terms) => LossValue::PerSample(terms),
                    None if want.value => {
                        LossValue::Scalar(call.finish(joined.sum, joined.weight_sum)?)
                    }
                    None => LossValue::Scalar(f64::NAN),
                };
                return Ok((value, joined.grad));
            }
            let mut encoder = self.encoder();
            let pending = self.encode_loss(&mut encoder, call, input, want, None)?;
            let bytes = submit_and_read(&self.ctx, encoder, &pending.parts())?;
            self.finish_loss(call, input, &pending, &bytes)
        })
    }

    /// The value of a pointwise loss over host slices longer than one
    /// reduction chunk, streamed with bounded device memory (stream.rs);
    /// None when the evaluation is not such a reduction.
    fn loss_streamed<F: Float, O: Float>(
        &self,
        call: &Call,
        input: &LossInput<F>,
    ) -> Result<Option<LossValue<O>>> {
        let Some((pending, bytes)) = self.stream_reduction(call, input)? else {
            return Ok(None);
        };
        Ok(Some(self.finish_loss(call, input, &pending, &bytes)?.0))
    }

    /// (Σ w·l, Σ w) of a checked call whose reduction is mean or sum: the
    /// state of a reduction over data that arrives in parts.
    pub(crate) fn loss_sums<F: Float>(
        &self,
        call: &Call,
        input: &LossInput<F>,
    ) -> Result<(f64, f64)> {
        self.ctx.scoped(|| {
            if let Some(joined) = self.rows_by_slab::<F, f32>(call, input, Want::VALUE)? {
                return Ok((joined.sum, joined.weight_sum));
            }
            let (pending, bytes) = match self.stream_reduction(call, input)? {
                Some(streamed) => streamed,
                None => {
                    let mut encoder = self.encoder();
                    let pending = self.encode_loss(&mut encoder, call, input, Want::VALUE, None)?;
                    let bytes = submit_and_read(&self.ctx, encoder, &pending.parts())?;
                    (pending, bytes)
                }
            };
            let read = pending.read(&bytes);
            self.raise_value_errors(call, input, &to_u32(read.errors))?;
            pending
                .sums(&read)
                .ok_or_else(|| Error::Gpu("no sums came back".into()))
        })
    }

    /// The reduction of a pointwise loss over host slices longer than one
    /// chunk, streamed, submitted and read back; None for other calls.
    fn stream_reduction<F: Float>(
        &self,
        call: &Call,
        input: &LossInput<F>,
    ) -> Result<Option<(Pending, Vec<Vec<u8>>)>> {
        let (Form::Pointwise(op), Target::Values(target)) = (call.shape.form, input.target) else {
            return Ok(None);
        };
        if call.reduction == Reduction::None || call.shape.rows <= reduce_chunk_elements(&self.ctx)
        {
            return Ok(None);
        }
        let host = HostInputs {
            pred: input.pred,
            target: Some(target),
            weights: input.weights,
            per_class: input.pos_weight_columns(),
        };
        let errors = error_slots(&self.ctx);
        let op = Self::point_op(call, op, &Self::pos_weight(input), DType::F32);
        let (encoder, result) = self.reduce_streamed(op, host, &errors)?;
        let pending = Pending {
            errors,
            sums: Some(result),
            terms: None,
            grad: None,
            row_values: None,
            rows: call.shape.rows,
            cols: 1,
            out: DType::F32,
            weighted: call.weighted,
            mean_weights: None,
        };
        let bytes = submit_and_read(&self.ctx, encoder, &pending.parts())?;
        Ok(Some((pending, bytes)))
    }

    /// The pointwise kernel of a call, its outputs stored as `out`.
    fn point_op(call: &Call, op: Term, options: &ClassOptions, out: DType) -> PointOp {
        PointOp {
            op,
            param: options.pos_weight.unwrap_or(call.loss.param()),
            pred_domain: call.loss.pred_domain(),
            target_domain: call.loss.target_domain(),
            pos_weight_cols: options.pos_weight_cols,
            out,
            in_place: false,
        }
    }

    /// bce-logits' pos_weight as the kernels take it: one value as the
    /// param, m values as a per-class buffer (bound by the caller).
    fn pos_weight<F: Float>(input: &LossInput<F>) -> ClassOptions<'static> {
        match (input.options.pos_weight, input.pos_weight_columns()) {
            (_, Some(pw)) => ClassOptions {
                pos_weight_cols: pw.len() as u32,
                ..Default::default()
            },
            (Some(&[pw]), None) => ClassOptions {
                pos_weight: Some(pw),
                ..Default::default()
            },
            _ => ClassOptions::default(),
        }
    }

    /// Uploads a call's host slices and records its passes into `encoder`
    /// (as a slab of a whole call's rows, where `slab_of` says).
    pub(super) fn encode_loss<F: Float>(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        call: &Call,
        input: &LossInput<F>,
        want: Want,
        slab_of: Option<SlabOf>,
    ) -> Result<Pending> {
        let ctx = &self.ctx;
        let pred = upload(ctx, input.pred, "pred")?;
        let target = match input.target {
            Target::Values(t) => Some(upload(ctx, t, "target")?),
            Target::Classes(c) => Some(upload(ctx, c, "target")?),
            Target::None => None,
        };
        let (weights, weights_dtype, per_class) = self.option_buffers(input)?;
        let dtypes = Dtypes {
            weights: weights_dtype,
            ..Dtypes::of(call.target, F::DTYPE)
        };
        let options = ClassOptions {
            slab_of,
            ..Self::class_options(call, input, per_class.as_ref())
        };
        let buffers = (&pred, target.as_ref(), weights.as_ref());
        self.encode_on(encoder, call, (buffers, dtypes), want, &options)
    }

    /// The weights a call binds and their dtype (with an ignore index the
    /// weights are 0 on the ignored rows, whose kernels also skip them, and
    /// f32), and its per-class buffer: class weights, or a pos_weight per
    /// column (never both). Reads the input's target classes, weights and
    /// options, not its predictions.
    fn option_buffers<F: Float>(
        &self,
        input: &LossInput<F>,
    ) -> Result<(Option<Buffer>, DType, Option<Buffer>)> {
        let ctx = &self.ctx;
        let (weights, dtype) = match (input.row_weights(), input.weights) {
            (Some(w), _) => (Some(upload(ctx, &w, "weights")?), DType::F32),
            (None, Some(w)) => (Some(upload(ctx, w, "weights")?), F::DTYPE),
            (None, None) => (None, F::DTYPE),
        };
        let per_class = input
            .options
            .class_weights
            .or(input.pos_weight_columns())
            .map(|w| upload(ctx, w, "per class"))
            .transpose()?;
        Ok((weights, dtype, per_class))
    }

    /// A call's options as its passes take them.
    fn class_options<'b, F: Float>(
        call: &Call,
        input: &LossInput<F>,
        per_class: Option<&'b Buffer>,
    ) -> ClassOptions<'b> {
        ClassOptions {
            ignore: input.ignored(),
            per_class,
            smoothing: input.options.label_smoothing,
            z_loss: input.options.z_loss,
            mean_weight_sum: call
                .class_options
                .then(|| input.mean_weight_sum(call.shape.rows, call.loss.mean_by_class_weight())),
            ..Self::pos_weight(input)
        }
    }

    /// Records every pass of one evaluation on device buffers (pred,
    /// target, weights) of the call's shape, stored as `dtypes` say.
    fn encode_on(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        call: &Call,
        (buffers, dtypes): (DeviceInputs, Dtypes),
        want: Want,
        options: &ClassOptions,
    ) -> Result<Pending> {
        let ctx = &self.ctx;
        let (pred, target, weights) = buffers;
        let (loss, reduction) = (&call.loss, call.reduction);
        let (rows, cols) = (call.shape.rows, call.shape.cols);
        let errors = error_slots(ctx);
        // In place, pred is bound only as the gradient's output.
        let spare = want
            .in_place
            .then(|| output(ctx, 4, "unbound slot"))
            .transpose()?;
        let inputs = Inputs {
            pred,
            target,
            weights,
            errors: &errors,
            per_class: options.per_class,
            dtypes,
            spare: None,
        };
        let weighted = weights.is_some();
        let rmse = call.rmse();
        // With class options the host knows the mean's denominator.
        let mean_weights = options.mean_weight_sum;
        let pointwise = matches!(call.shape.form, Form::Pointwise(_));
        // In place, a pass before the gradient checks every input (for rows,
        // row_loss), so that the gradient is written only over valid logits.
        // A slab's value is reduced with the whole call's rows (slabs.rs).
        let slab_values = options.slab_of.is_some() && want.value && reduction != Reduction::None;
        let needs_sums = (want.value && reduction != Reduction::None && !slab_values)
            || (want.in_place && pointwise)
            || (want.grad
                && reduction == Reduction::Mean
                && (weighted || rmse)
                && mean_weights.is_none());
        // Narrow rows whose gradient needs nothing else skip the row_loss
        // pass: row_grad_small finds each row's logsumexp itself.
        // (It writes a row's values alone, so f32 only: halves pack two a word.)
        let fused_grad = want.grad
            && !want.value
            && !needs_sums
            && cols <= SMALL_ROW
            && want.out == DType::F32
            && !want.in_place;
        // The per-sample values and how to reduce them.
        let (point_op, point_inputs, row_state);
        match call.shape.form {
            Form::Pointwise(op) => {
                point_op = Self::point_op(call, op, options, want.out);
                point_inputs = None;
                row_state = None;
            }
            Form::Rows(op) => {
                let kernel = RowKernel {
                    op,
                    weighted,
                    pred_domain: call.pred_domain(),
                    target_domain: match call.target {
                        TargetKind::Values => call.target_domain(),
                        _ => Domain::Any,
                    },
                    ignore: options.ignore,
                    ce_options: options.per_class.is_some()
                        || options.smoothing != 0.0
                        || options.z_loss != 0.0,
                    class_weights: options.per_class.is_some(),
                    smoothing: options.smoothing,
                    z_loss: options.z_loss,
                    margin: match *loss {
                        Loss::MultiMargin { margin, .. } => margin,
                        _ => 0.0,
                    },
                    power: match *loss {
                        Loss::MultiMargin { power, .. } => power,
                        _ => 1,
                    },
                    split_rows: options.slab_of.map_or(rows, |s| s.rows),
                };
                point_op = PointOp {
                    op: Term::Identity,
                    param: 0.0,
                    pred_domain: Domain::Any,
                    target_domain: Domain::Any,
                    pos_weight_cols: 0,
                    out: want.out,
                    in_place: false,
                };
                if fused_grad {
                    point_inputs = None;
                    row_state = Some((kernel, output(ctx, 4 * rows, "row logsumexp")?));
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
            per_class: inputs.per_class,
            // Row losses are reduced from their f32 outputs.
            dtypes: match point_inputs {
                Some(_) => Dtypes {
                    pred: DType::F32,
                    ..dtypes
                },
                None => dtypes,
            },
            spare: None,
        };
        // (Reduction none in place reduces only to check the inputs.)
        let sums = if needs_sums && (reduction != Reduction::None || want.in_place) {
            Some(self.reduce(encoder, point_op, &reduce_inputs, rows)?)
        } else {
            None
        };
        let coef = match reduction {
            _ if options.slab_of.is_some() => {
                Coef::Scale(options.slab_of.map_or(1.0, |s| s.grad_scale))
            }
            Reduction::Mean if mean_weights.is_some() => {
                Coef::Scale((1.0 / mean_weights.unwrap_or(1.0)) as f32)
            }
            Reduction::Mean if rmse => Coef::Rmse,
            Reduction::Mean if weighted => Coef::InverseWeightSum,
            Reduction::Mean | Reduction::BatchMean => Coef::Scale((1.0 / rows as f64) as f32),
            Reduction::Sum | Reduction::None => Coef::Scale(1.0),
        };
        // The per-sample values before the gradient, which may overwrite pred.
        let terms = if want.value && reduction == Reduction::None {
            let entry = PointEntry::Terms;
            Some(self.elementwise(encoder, entry, point_op, &reduce_inputs, rows, coef, None)?)
        } else {
            None
        };
        let grad_inputs = Inputs {
            spare: spare.as_ref(),
            ..inputs
        };
        let grad = match (&row_state, want.grad) {
            (_, false) => None,
            (None, true) if want.in_place => {
                let op = PointOp {
                    in_place: true,
                    ..point_op
                };
                let (entry, stats) = (PointEntry::Grad, sums.as_ref());
                self.elementwise_into(encoder, entry, op, &grad_inputs, rows, coef, stats, pred)?;
                None
            }
            (None, true) => Some(self.elementwise(
                encoder,
                PointEntry::Grad,
                point_op,
                &inputs,
                rows,
                coef,
                sums.as_ref(),
            )?),
            (Some((kernel, lse)), true) => {
                let g = (!want.in_place)
                    .then(|| output_of(ctx, rows * cols, want.out, "grad"))
                    .transpose()?;
                let entry = if fused_grad {
                    RowEntry::GradSmall
                } else {
                    RowEntry::Grad
                };
                let stats = sums.as_ref();
                let out = RowOut {
                    buffer: g.as_ref().unwrap_or(pred),
                    dtype: want.out,
                    in_place: want.in_place,
                };
                self.row_pass(
                    encoder,
                    entry,
                    *kernel,
                    &grad_inputs,
                    rows,
                    cols,
                    out,
                    lse,
                    stats,
                    coef,
                )?;
                g
            }
        };
        let sums = sums.filter(|_| reduction != Reduction::None);
        Ok(Pending {
            errors,
            sums,
            terms,
            grad,
            row_values: point_inputs.filter(|_| slab_values),
            rows,
            cols,
            out: want.out,
            weighted,
            mean_weights,
        })
    }

    /// Turns the read-back bytes of one evaluation into its value and
    /// gradient, after naming any offending input value.
    pub(super) fn finish_loss<F: Float, O: Float>(
        &self,
        call: &Call,
        input: &LossInput<F>,
        p: &Pending,
        bytes: &[Vec<u8>],
    ) -> Result<(LossValue<O>, Option<Vec<O>>)> {
        let read = p.read(bytes);
        self.raise_value_errors(call, input, &to_u32(read.errors))?;
        let value = p.value(call, &read)?;
        let grad = read.grad.map(|g| to_values(g, p.rows * p.cols));
        Ok((value, grad))
    }

    /// A checked call on resident buffers (a target of class indices or
    /// values as the call says): the value read back and/or the gradient
    /// as a new resident buffer. An offending input value is read from its
    /// buffer to be named.
    /// `options`, where given, is a view of the call's target classes and
    /// options on the host (its predictions empty), for the weights and the
    /// mean's denominator its options need.
    pub(crate) fn loss_on_device<F: Float, O: Float>(
        &self,
        call: &Call,
        (pred, target): (&Buffer, Option<&Buffer>),
        options: Option<&LossInput<F>>,
        want: Want,
    ) -> Result<(LossValue<O>, Option<Buffer>)> {
        let want = want.of::<O>();
        let dtype = F::DTYPE;
        self.ctx.scoped(|| {
            let mut encoder = self.encoder();
            let (weights, weights_dtype, per_class) = match options {
                Some(view) => self.option_buffers(view)?,
                None => (None, dtype, None),
            };
            let plain = match options {
                Some(view) => Self::class_options(call, view, per_class.as_ref()),
                None => ClassOptions::default(),
            };
            let dtypes = Dtypes {
                weights: weights_dtype,
                ..Dtypes::of(call.target, dtype)
            };
            let mut p = self.encode_on(
                &mut encoder,
                call,
                ((pred, target, weights.as_ref()), dtypes),
                want,
                &plain,
            )?;
            let grad = p.grad.take();
            let bytes = submit_and_read(&self.ctx, encoder, &p.parts())?;
            let read = p.read(&bytes);
            let slots = to_u32(read.errors);
            let loss = &call.loss;
            // The offender of a flagged row: read the row back, name its value.
            let offender = |buffer, i: usize, dtype, domain| -> Result<(usize, f32)> {
                let cols = call.flagged_cols();
                let values = self.read_offenders(buffer, i * cols, cols, dtype)?;
                Ok(first_outside(i, cols, values, domain))
            };
            if slots[0] != u32::MAX {
                let domain = call.pred_domain();
                let (i, v) = offender(pred, slots[0] as usize, dtypes.pred, domain)?;
                return Err(loss.domain_error("pred", domain, i, v));
            }
            if let (Some(t), true) = (target, slots[1] != u32::MAX) {
                let i = slots[1] as usize;
                return Err(match call.target {
                    TargetKind::Classes => {
                        let v = self.read_offenders(t, i, 1, DType::F32)?[0];
                        class_error(loss, i, v.to_bits(), call.shape.cols)
                    }
                    _ => {
                        let domain = call.target_domain();
                        let (i, v) = offender(t, i, dtypes.target, domain)?;
                        loss.domain_error("target", domain, i, v)
                    }
                });
            }
            Ok((p.value(call, &read)?, grad))
        })
    }

    /// Σ term(x, t) of an internal pointwise op (prelu's dα, the penalties).
    pub(crate) fn sum_of_terms<F: Float>(&self, op: Term, x: &[F], t: Option<&[F]>) -> Result<f64> {
        let op = PointOp::internal(op);
        self.ctx.scoped(|| {
            let host = HostInputs {
                pred: x,
                target: t,
                weights: None,
                per_class: None,
            };
            Ok(scaled_sum(&self.reduce_host(op, host)?.0))
        })
    }
}
