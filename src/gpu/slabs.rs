//! Row losses over host slices of more than one slab (2^24 values, or four
//! bindings on a small adapter), evaluated slab by slab: each slab of whole
//! rows is uploaded, evaluated and read back before the next, so the device
//! holds one slab's inputs and gradient whatever n×m is, past the
//! adapter's largest buffer and past 2^32 values.
//!
//! A slab is a call of its own over its rows: its per-row losses, per-sample
//! values and gradient are read back to their rows, its gradient scaled by
//! the whole call's denominator, and the per-row losses of all the slabs
//! reduced as the one-buffer path reduces its rows (streamed past one
//! chunk). The value, the per-sample values and the gradient then have the
//! bits of the one-buffer path, a weighted mean's gradient excepted (its
//! Σ w is the host's f64 here, the device's f32 there).

use super::buffers::{submit_and_read, to_f32, to_u32, to_values};
use super::dispatch::reduce_chunk_elements;
use super::evaluate::{SlabOf, Want};
use super::loss::PointOp;
use super::reduce::scaled_sum;
use super::stream::HostInputs;
use super::Gpu;
use crate::error::Result;
use crate::ops::dtype::Float;
use crate::ops::input::{Call, Form, LossInput, Shape, Target};
use crate::ops::loss::Term;
use crate::ops::reduction::Reduction;

/// Values of one slab of an adapter's rows.
fn slab_values(gpu: &Gpu) -> usize {
    4 * reduce_chunk_elements(&gpu.ctx)
}

/// What the slabs of one call add up to.
pub(super) struct Joined<O> {
    /// Σ w·l and the mean's denominator Σ w (the rows unweighted).
    pub sum: f64,
    pub weight_sum: f64,
    /// The per-sample values (reduction none) and the gradient.
    pub terms: Option<Vec<O>>,
    pub grad: Option<Vec<O>>,
}

impl Gpu {
    /// A row call over host slices of more than one slab, slab by slab;
    /// None for other calls.
    pub(super) fn rows_by_slab<F: Float, O: Float>(
        &self,
        call: &Call,
        input: &LossInput<F>,
        want: Want,
    ) -> Result<Option<Joined<O>>> {
        let Shape { rows, cols, form } = call.shape;
        if !matches!(form, Form::Rows(_)) || input.pred.len() <= slab_values(self) {
            return Ok(None);
        }
        let per_slab = (slab_values(self) / cols).max(1);
        let slab_call = Call {
            reduction: match call.reduction {
                Reduction::None => Reduction::None,
                _ => Reduction::Sum,
            },
            ..*call
        };
        let slab_of = SlabOf {
            grad_scale: (1.0 / self.denominator(call, input)) as f32,
            rows,
        };
        let reduced = want.value && call.reduction != Reduction::None;
        let mut losses = Vec::with_capacity(if reduced { rows } else { 0 });
        let mut joined = Joined {
            sum: 0.0,
            weight_sum: 0.0,
            terms: (want.value && call.reduction == Reduction::None)
                .then(|| Vec::with_capacity(rows)),
            grad: want.grad.then(|| Vec::with_capacity(rows * cols)),
        };
        for r0 in (0..rows).step_by(per_slab) {
            let r1 = (r0 + per_slab).min(rows);
            let slab = slab_input(input, r0, r1);
            let slab_call = Call {
                shape: Shape {
                    rows: r1 - r0,
                    ..call.shape
                },
                ..slab_call
            };
            let mut encoder = self.encoder();
            let pending = self.encode_loss(&mut encoder, &slab_call, &slab, want, Some(slab_of))?;
            let bytes = submit_and_read(&self.ctx, encoder, &pending.parts())?;
            let read = pending.read(&bytes);
            // The slab's flagged rows, as rows of the whole call.
            let slots = to_u32(read.errors);
            let slots: Vec<u32> = slots
                .iter()
                .map(|&s| if s == u32::MAX { s } else { s + r0 as u32 })
                .collect();
            self.raise_value_errors(call, input, &slots)?;
            if let Some(bytes) = read.row_values {
                losses.extend(to_f32(bytes, r1 - r0));
            }
            if let (Some(terms), Some(bytes)) = (&mut joined.terms, read.terms) {
                terms.extend(to_values::<O>(bytes, r1 - r0));
            }
            if let (Some(grad), Some(bytes)) = (&mut joined.grad, read.grad) {
                grad.extend(to_values::<O>(bytes, (r1 - r0) * cols));
            }
        }
        if reduced {
            (joined.sum, joined.weight_sum) = self.reduce_rows(call, input, &losses)?;
        }
        Ok(Some(joined))
    }

    /// (Σ w·l, the mean's Σ w) of the whole call from its per-row losses,
    /// reduced with its weights as the one-buffer path reduces its rows
    /// (half weights widened, which is exact).
    fn reduce_rows<F: Float>(
        &self,
        call: &Call,
        input: &LossInput<F>,
        losses: &[f32],
    ) -> Result<(f64, f64)> {
        let weights = input.row_weights().or_else(|| {
            input
                .weights
                .map(|w| w.iter().map(|v| v.to_f32()).collect())
        });
        let host = HostInputs {
            pred: losses,
            target: None,
            weights: weights.as_deref(),
            per_class: None,
        };
        let (s, slots) = self.reduce_host(PointOp::internal(Term::Identity), host)?;
        self.raise_value_errors(call, input, &slots)?;
        let rows = call.shape.rows;
        let weight_sum = if call.class_options {
            input.mean_weight_sum(rows, call.loss.mean_by_class_weight())
        } else if weights.is_some() {
            s[1] as f64
        } else {
            rows as f64
        };
        Ok((scaled_sum(&s), weight_sum))
    }

    /// The divisor of the call's gradient: the mean's Σ w (its class
    /// options' weights, its per-row weights, or the rows), batchmean's rows;
    /// 1 for sum and none.
    fn denominator<F: Float>(&self, call: &Call, input: &LossInput<F>) -> f64 {
        let rows = call.shape.rows;
        match call.reduction {
            Reduction::Mean if call.class_options => {
                input.mean_weight_sum(rows, call.loss.mean_by_class_weight())
            }
            Reduction::Mean => match input.weights {
                Some(w) => w.iter().map(|v| v.to_f32() as f64).sum(),
                None => rows as f64,
            },
            Reduction::BatchMean => rows as f64,
            Reduction::Sum | Reduction::None => 1.0,
        }
    }
}

/// Rows [r0, r1) of an input, with its options.
fn slab_input<'a, F: Float>(input: &LossInput<'a, F>, r0: usize, r1: usize) -> LossInput<'a, F> {
    let cols = input.cols;
    LossInput {
        pred: &input.pred[r0 * cols..r1 * cols],
        target: match input.target {
            Target::Classes(c) => Target::Classes(&c[r0..r1]),
            Target::Values(t) => Target::Values(&t[r0 * cols..r1 * cols]),
            Target::None => Target::None,
        },
        weights: input.weights.map(|w| &w[r0..r1]),
        ..*input
    }
}
