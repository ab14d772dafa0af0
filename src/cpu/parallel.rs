//! The CPU backend of [`crate::Engine::cpu`] on all cores with rayon.
//! Activations, the common pointwise losses and the fused metrics run as
//! f32 SIMD loops ([`super::lanes`]), the row losses too
//! ([`super::rows32`]), the gradient statistics and clipping too; the
//! exponential loss (whose terms pass f32's range) uses the reference's
//! f64 formula in parallel blocks. Work
//! is cut into blocks of a fixed size and block sums are added in block
//! order, so a result does not depend on the number of threads.

use super::lanes::{self, Act32, Metrics32, Term32, Uninit};
use super::rows32;
use super::{alone, check_values, grad_coefficient, sample_grad, sample_term, weight, weighted};
use crate::error::Result;
use crate::ops::activation::{Activation, Pass};
use crate::ops::dtype::{DType, Float};
use crate::ops::gradient::GradStats;
use crate::ops::input::{Call, Form, LossInput, Target};
use crate::ops::loss::{Loss, RowOp};
use crate::ops::options::LossOptions;
use crate::ops::reduction::{LossValue, Reduction};
use rayon::prelude::*;
use std::borrow::Cow;
use std::mem::MaybeUninit;

/// Samples per task.
const BLOCK: usize = 1 << 14;

/// Evaluates `$run` with `$term` bound to a closure computing the term of
/// `$loss`, whose variant is a constant in each arm: once inlined, the match
/// inside `Loss::term_f64` folds away and the loop over samples is
/// specialised to one formula.
macro_rules! with_term {
    ($loss:expr, |$term:ident| $run:expr) => {
        match *$loss {
            Loss::Mse | Loss::Rmse => {
                let $term = |p, t| Loss::Mse.term_f64(p, t);
                $run
            }
            Loss::Huber { delta } => {
                let $term = move |p, t| Loss::Huber { delta }.term_f64(p, t);
                $run
            }
            Loss::Quantile { gamma } => {
                let $term = move |p, t| Loss::Quantile { gamma }.term_f64(p, t);
                $run
            }
            Loss::BceLogits => {
                let $term = |p, t| Loss::BceLogits.term_f64(p, t);
                $run
            }
            Loss::Mae => {
                let $term = |p, t| Loss::Mae.term_f64(p, t);
                $run
            }
            Loss::LogCosh => {
                let $term = |p, t| Loss::LogCosh.term_f64(p, t);
                $run
            }
            Loss::Hinge => {
                let $term = |p, t| Loss::Hinge.term_f64(p, t);
                $run
            }
            Loss::Logistic => {
                let $term = |p, t| Loss::Logistic.term_f64(p, t);
                $run
            }
            other => {
                let $term = move |p, t| other.term_f64(p, t);
                $run
            }
        }
    };
}

/// f(x), f'(x) or upstream ⊙ f'(x), rounded to f32.
/// Half inputs are widened a block at a time.
pub fn activation<F: Float, O: Float>(
    act: &Activation,
    pass: Pass,
    x: &[F],
    upstream: Option<&[F]>,
) -> Vec<O> {
    if let Activation::Rrelu {
        lower,
        upper,
        training: true,
        seed,
    } = *act
    {
        return filled(x.len(), |at, o| {
            let up = upstream.map(|u| block(u, at.clone()));
            let (start, x) = (at.start, block(x, at));
            lanes::rrelu_training((lower, upper, seed), start, pass, &x, up.as_deref(), o);
        });
    }
    if let Some(a) = Act32::of(act) {
        return filled(x.len(), |at, o| {
            let up = upstream.map(|u| block(u, at.clone()));
            lanes::activation(a, pass, &block(x, at), up.as_deref(), o);
        });
    }
    let (x, upstream) = (F::widen(x), upstream.map(F::widen));
    let upstream = upstream.as_deref();
    filled(x.len(), |at, block| {
        for (i, o) in at.zip(block) {
            let v = x[i] as f64;
            o.write(match pass {
                Pass::Forward => act.forward_f64(v, i),
                Pass::Derivative => act.derivative_f64(v, i),
                Pass::Backward => upstream.map_or(1.0, |u| u[i] as f64) * act.derivative_f64(v, i),
            } as f32);
        }
    })
}

/// (Σ wᵢlᵢ, Σ wᵢ) of a checked call, after its values are checked.
pub fn loss_sums<F: Float>(call: &Call, input: &LossInput<F>) -> Result<(f64, f64)> {
    check_values(call, input)?;
    Ok(sums(call, input))
}

/// (Σ wᵢlᵢ, Σ wᵢ) of values already checked.
fn sums<F: Float>(call: &Call, input: &LossInput<F>) -> (f64, f64) {
    (loss_sum(call, input), weight_sum(call, input))
}

/// The f32 values of `v[at]`: the slice itself for f32, a widened block
/// (a small buffer, not the whole input) for halves.
fn block<F: Float>(v: &[F], at: std::ops::Range<usize>) -> Cow<'_, [f32]> {
    F::widen(&v[at])
}

/// Σ wᵢlᵢ of values already checked, added in block order. The f32 loops
/// (pointwise and rows) read half inputs a block at a time, widened as they
/// go (the same blocks, so the same bits as the input widened whole); the
/// reference formulas see the input widened whole.
fn loss_sum<F: Float>(call: &Call, input: &LossInput<F>) -> f64 {
    if let Some(pointwise) = Pointwise32::of(call, input) {
        return block_sums(input.pred.len(), BLOCK, |at| pointwise.sums(at));
    }
    if let Some(op) = row_op(call) {
        let m = call.shape.cols;
        return block_sums(call.shape.rows, rows_per_block(m), |rows| {
            let b = RowBlock::of(&call.loss, input, rows.clone(), m);
            let mut l = vec![0.0f32; rows.len()];
            rows32::losses(op, &b.pred, m, b.targets(), &b.opts, &mut l);
            match (input.weights, b.opts.ignore) {
                // An ignored row's weight is 0 ([`LossInput::weight`]).
                (None, None) => l.iter().map(|&l| l as f64).sum(),
                _ => l
                    .iter()
                    .zip(rows)
                    .map(|(&l, i)| weighted(input.weight(i), l as f64))
                    .sum(),
            }
        });
    }
    let wide = input.widen();
    let input = &wide.input();
    let (loss, shape) = (&call.loss, call.shape);
    let plain = !input.has_class_options();
    if let (Form::Pointwise(_), Target::Values(t), true) = (shape.form, input.target, plain) {
        let (p, w) = (input.pred, input.weights);
        return with_term!(loss, |term| block_sums(p.len(), BLOCK, |at| {
            let (p, t) = (&p[at.clone()], &t[at.clone()]);
            match w {
                None => p
                    .iter()
                    .zip(t)
                    .map(|(&p, &t)| term(p as f64, t as f64))
                    .sum(),
                Some(w) => p
                    .iter()
                    .zip(t)
                    .zip(&w[at])
                    .map(|((&p, &t), &w)| weighted(w as f64, term(p as f64, t as f64)))
                    .sum(),
            }
        }));
    }
    block_sums(shape.rows, BLOCK, |rows| {
        rows.map(|i| weighted(weight(input, i), sample_term(loss, input, &shape, i)))
            .sum()
    })
}

/// Σ wᵢ over the n samples (n without weights), added in block order: the
/// one Σw of the backend, so a value and a gradient computed by different
/// calls share their mean's divisor to the bit.
fn weight_sum<F: Float>(call: &Call, input: &LossInput<F>) -> f64 {
    let n = call.shape.rows;
    // Without a class option the mean's weight of a row is its weight.
    if input.options.class() {
        let by_class = call.loss.mean_by_class_weight();
        return block_sums(n, BLOCK, |rows| input.mean_weight_sum_of(rows, by_class));
    }
    match input.weights {
        None => n as f64,
        Some(w) => block_sums(w.len(), BLOCK, |at| {
            w[at].iter().map(|&v| v.to_f32() as f64).sum()
        }),
    }
}

/// `fill(range, block)` for each block of a fresh output of n values and
/// its range of indices, on all cores; `fill` writes every value of its
/// block. A half output is filled through one f32 block per task and
/// narrowed from it.
fn filled<O: Float>(
    n: usize,
    fill: impl Fn(std::ops::Range<usize>, &mut [Uninit]) + Sync,
) -> Vec<O> {
    let blocks = |out: &mut [MaybeUninit<O>]| {
        if n <= BLOCK {
            return fill_uninit_as(out, |wide| fill(0..n, wide));
        }
        each_chunk(out, BLOCK, |b, block| {
            let at = b * BLOCK..b * BLOCK + block.len();
            fill_uninit_as(block, |wide| fill(at, wide));
        });
    };
    // SAFETY: the blocks cover the output, and each is written whole by
    // fill_uninit_as (whose `fill` writes every value, as this one's does).
    unsafe { crate::output::written(n, blocks) }
}

/// `fill` writes every value of `out` as f32: in place for f32, else into
/// a fresh f32 block that is then narrowed.
fn fill_uninit_as<O: Float>(out: &mut [MaybeUninit<O>], fill: impl FnOnce(&mut [Uninit])) {
    if O::DTYPE == DType::F32 {
        // SAFETY: O is f32 (its dtype says so): the same layout.
        return fill(unsafe { &mut *(out as *mut [MaybeUninit<O>] as *mut [Uninit]) });
    }
    // SAFETY: `fill` writes every value (this function's contract).
    let wide = unsafe { crate::output::written::<f32>(out.len(), fill) };
    out.fill(MaybeUninit::new(O::zeroed()));
    // SAFETY: every value was written on the line above.
    O::narrow_into(&wide, unsafe {
        &mut *(out as *mut [MaybeUninit<O>] as *mut [O])
    });
}

/// A fresh output of n values in blocks of `per` (the last shorter),
/// block k filled by `fill(k, block)` as f32 on all cores. The row loops
/// take `&mut [f32]`, which memory nothing wrote may not be, so each block
/// is zeroed right before its loop writes it, in cache: one pass over the
/// output, where zeroing it whole first (calloc reusing a freed block) was
/// a second one, on the calling thread.
fn zero_filled<O: Float>(n: usize, per: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Vec<O> {
    let blocks = |out: &mut [MaybeUninit<O>]| {
        each_chunk(out, per.max(1), |k, block| {
            block.fill(MaybeUninit::new(O::zeroed()));
            // SAFETY: every value was written on the line above.
            let block = unsafe { &mut *(block as *mut [MaybeUninit<O>] as *mut [O]) };
            fill_as(block, |o| fill(k, o));
        });
    };
    // SAFETY: the blocks cover the output and each is zeroed whole.
    unsafe { crate::output::written(n, blocks) }
}

/// `fill` writes `out`, already initialised, as f32: in place for f32,
/// else into an f32 copy that is then narrowed.
fn fill_as<O: Float>(out: &mut [O], fill: impl FnOnce(&mut [f32])) {
    if O::DTYPE == DType::F32 {
        return fill(bytemuck::cast_slice_mut(out));
    }
    let mut wide = vec![0.0f32; out.len()];
    fill(&mut wide);
    O::narrow_into(&wide, out);
}

/// Σ of `sum` over the blocks of `per` of n items, on all cores, added in
/// block order.
fn block_sums(n: usize, per: usize, sum: impl Fn(std::ops::Range<usize>) -> f64 + Sync) -> f64 {
    // One block on the calling thread: a hop to the pool would cost more
    // than a small call (SQL's batches) computes. The same bits.
    if n > 0 && n <= per {
        return [sum(0..n)].iter().sum();
    }
    let blocks = map_blocks(n.div_ceil(per), |b| sum(b * per..((b + 1) * per).min(n)));
    blocks.iter().sum()
}

/// `f(b)` for each block b < n, on all cores, in the order of b.
fn map_blocks<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    if alone() {
        return (0..n).map(f).collect();
    }
    (0..n).into_par_iter().map(f).collect()
}

/// `f(k, chunk)` for each chunk k of `per` values of `out`, on all cores.
fn each_chunk<T: Send>(out: &mut [T], per: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if alone() {
        return out.chunks_mut(per).enumerate().for_each(|(k, c)| f(k, c));
    }
    out.par_chunks_mut(per)
        .enumerate()
        .for_each(|(k, c)| f(k, c));
}

/// Rows per task for rows of m values: about [`BLOCK`] values, whole rows.
fn rows_per_block(m: usize) -> usize {
    (BLOCK / m.max(1)).max(1)
}

/// The op of a row loss: the f32 row loops compute every one, with each
/// of its options.
fn row_op(call: &Call) -> Option<RowOp> {
    match call.shape.form {
        Form::Rows(op) => Some(op),
        Form::Pointwise(_) => None,
    }
}

/// Rows `rows` of an input for the row loops, in f32: borrowed for f32
/// data, widened for halves (one block, not the whole input).
struct RowBlock<'a> {
    pred: std::borrow::Cow<'a, [f32]>,
    dist: Option<std::borrow::Cow<'a, [f32]>>,
    classes: Option<&'a [u32]>,
    opts: rows32::Options<'a>,
}

impl<'a> RowBlock<'a> {
    fn of<F: Float>(
        loss: &Loss,
        input: &LossInput<'a, F>,
        rows: std::ops::Range<usize>,
        m: usize,
    ) -> Self {
        let values = rows.start * m..rows.end * m;
        let (margin, power) = match *loss {
            Loss::MultiMargin { margin, power } => (margin, power),
            _ => (0.0, 1),
        };
        RowBlock {
            pred: block(input.pred, values.clone()),
            dist: match input.target {
                Target::Values(t) => Some(block(t, values)),
                _ => None,
            },
            classes: match input.target {
                Target::Classes(c) => Some(&c[rows]),
                _ => None,
            },
            opts: rows32::Options {
                class_weights: input.options.class_weights,
                smoothing: input.options.label_smoothing,
                z_loss: input.options.z_loss,
                ignore: input.ignored(),
                log_input: input.options.log_input,
                log_target: input.options.log_target,
                margin,
                power,
            },
        }
    }

    fn targets(&self) -> rows32::Targets<'_> {
        match (&self.dist, self.classes) {
            (Some(d), _) => rows32::Targets::Dist(d),
            (None, Some(c)) => rows32::Targets::Classes(c),
            (None, None) => rows32::Targets::None,
        }
    }
}

/// The seven metric sums of [`crate::cpu::metric_sums`] and Σw in one pass
/// (the twin of metrics.wgsl) of a checked mse call.
pub fn metric_sums<F: Float>(
    call: &Call,
    input: &LossInput<F>,
    delta: f32,
    gamma: f32,
) -> Result<([f64; 7], f64)> {
    check_values(call, input)?;
    let Target::Values(t) = input.target else {
        return Err(crate::error::invalid!("metrics need real targets"));
    };
    let (p, w, m) = (input.pred, input.weights, Metrics32 { delta, gamma });
    let blocks = map_blocks(p.len().div_ceil(BLOCK), |b| {
        let at = b * BLOCK..((b + 1) * BLOCK).min(p.len());
        let wb = w.map(|w| block(w, at.clone()));
        lanes::metric_sums(m, &block(p, at.clone()), &block(t, at), wb.as_deref())
    });
    let mut s = [0.0; 7];
    for b in &blocks {
        for k in 0..7 {
            s[k] += b[k];
        }
    }
    Ok((s, weight_sum(call, input)))
}

/// The value of a checked call: the reduced loss, or the per-sample wᵢ·lᵢ
/// rounded to f32 (then to `O`) for reduction none.
pub fn loss_value<F: Float, O: Float>(call: &Call, input: &LossInput<F>) -> Result<LossValue<O>> {
    Ok(match call.reduction {
        Reduction::None => {
            check_values(call, input)?;
            LossValue::PerSample(per_sample(call, input))
        }
        _ => {
            let (sum, wsum) = loss_sums(call, input)?;
            LossValue::Scalar(call.finish(sum, wsum)?)
        }
    })
}

/// Below this many values in all, a batch runs on the calling thread: a
/// hop to the pool costs more than the losses compute (64 losses of 1024
/// values: 0.011 ms in turn on one thread, 0.018 ms spread over 2 cores).
const BATCH_ALONE: usize = 1 << 17;

/// [`loss_value`] of each call, in order; the first error in call order.
/// Small losses are many: one per core beats cores per loss.
pub fn loss_batch<F: Float>(
    calls: &[(Call, LossInput<F>)],
    total: usize,
) -> Result<Vec<LossValue>> {
    if total <= BATCH_ALONE || alone() {
        return calls.iter().map(|(c, i)| loss_value(c, i)).collect();
    }
    let values: Vec<Result<LossValue>> = calls.par_iter().map(|(c, i)| loss_value(c, i)).collect();
    values.into_iter().collect()
}

/// The per-sample wᵢ·lᵢ, rounded to f32 (then to `O`), of values already
/// checked.
fn per_sample<F: Float, O: Float>(call: &Call, input: &LossInput<F>) -> Vec<O> {
    if let Some(pointwise) = Pointwise32::of(call, input) {
        return filled(call.shape.rows, |at, o| pointwise.values(None, at, o));
    }
    if let Some(op) = row_op(call) {
        let m = call.shape.cols;
        let per = rows_per_block(m);
        return zero_filled(call.shape.rows, per, |k, o| {
            let rows = k * per..k * per + o.len();
            let b = RowBlock::of(&call.loss, input, rows.clone(), m);
            rows32::losses(op, &b.pred, m, b.targets(), &b.opts, o);
            for (o, i) in o.iter_mut().zip(rows) {
                *o = weighted(input.weight(i), *o as f64) as f32;
            }
        });
    }
    let wide = input.widen();
    let input = &wide.input();
    let (loss, shape) = (&call.loss, call.shape);
    filled(call.shape.rows, |at, block| {
        for (i, o) in at.zip(block) {
            o.write(weighted(weight(input, i), sample_term(loss, input, &shape, i)) as f32);
        }
    })
}

/// The gradient of the reduced loss, rounded to f32 (then to `O`).
pub fn loss_grad<F: Float, O: Float>(call: &Call, input: &LossInput<F>) -> Result<Vec<O>> {
    Ok(loss_and_grad(call, input, false)?.1)
}

/// The gradient of the reduced loss, rounded to f32 (then to `O`), and
/// with `value` the loss's value from the same sums (NaN without).
pub fn loss_and_grad<F: Float, O: Float>(
    call: &Call,
    input: &LossInput<F>,
    value: bool,
) -> Result<(LossValue<O>, Vec<O>)> {
    let reduction = call.reduction;
    check_values(call, input)?;
    // The loss's sums only where the value or the coefficient needs them
    // (mean needs Σw only, which costs no pass without weights).
    let (sum, wsum) = if (value && reduction != Reduction::None) || call.rmse() {
        sums(call, input)
    } else {
        (f64::NAN, weight_sum(call, input))
    };
    let coef = grad_coefficient(call, sum, wsum)?;
    let grad = grad(call, input, coef);
    let value = match reduction {
        _ if !value => LossValue::Scalar(f64::NAN),
        Reduction::None => LossValue::PerSample(per_sample(call, input)),
        _ => LossValue::Scalar(call.finish(sum, wsum)?),
    };
    Ok((value, grad))
}

/// c·wᵢ·∂lᵢ/∂p of values already checked, rounded to f32 (then to `O`).
fn grad<F: Float, O: Float>(call: &Call, input: &LossInput<F>, coef: f64) -> Vec<O> {
    if let Some(pointwise) = Pointwise32::of(call, input) {
        let c = Some(coef as f32);
        return filled(call.shape.rows, |at, o| pointwise.values(c, at, o));
    }
    if let Some(op) = row_op(call) {
        let m = call.shape.cols;
        let per = rows_per_block(m);
        return zero_filled(call.shape.rows * m, per * m, |k, o| {
            let rows = k * per..k * per + o.len() / m;
            let w = input.weights.map(|w| block(w, rows.clone()));
            let b = RowBlock::of(&call.loss, input, rows, m);
            let (targets, c) = (b.targets(), coef as f32);
            rows32::grads(op, c, &b.pred, m, targets, &b.opts, w.as_deref(), o);
        });
    }
    let wide = input.widen();
    let input = &wide.input();
    let (loss, shape) = (&call.loss, call.shape);
    let blocks: Vec<Vec<O>> = map_blocks(shape.rows.div_ceil(BLOCK), |b| {
        let mut g = Vec::with_capacity(BLOCK * shape.cols);
        for i in b * BLOCK..((b + 1) * BLOCK).min(shape.rows) {
            sample_grad(loss, input, &shape, i, coef, &mut g);
        }
        g.into_iter().map(|v| O::from_f32(v as f32)).collect()
    });
    blocks.concat()
}

/// A pointwise call the f32 loops compute, a block of values at a time:
/// one term, or bce-logits with a pos_weight per column, which they read
/// value by value ([`columns`]).
struct Pointwise32<'a, F> {
    kind: Kind32<'a>,
    pred: &'a [F],
    target: &'a [F],
    weights: Option<&'a [F]>,
}

#[derive(Clone, Copy)]
enum Kind32<'a> {
    Term(Term32),
    Columns(&'a [f32]),
}

impl<'a, F: Float> Pointwise32<'a, F> {
    /// The f32 loops' twin of a call, if they have one: a pointwise loss
    /// with real targets and no option but bce-logits' pos_weight.
    fn of(call: &Call, input: &LossInput<'a, F>) -> Option<Self> {
        let (Form::Pointwise(_), Target::Values(target)) = (call.shape.form, input.target) else {
            return None;
        };
        let kind = match bce_pos_weight(call, input) {
            _ if !input.options.any() => Kind32::Term(Term32::of(&call.loss)?),
            Some(&[pw]) => Kind32::Term(Term32::BceLogitsPos(pw)),
            Some(pw) => Kind32::Columns(pw),
            None => return None,
        };
        let (pred, weights) = (input.pred, input.weights);
        Some(Pointwise32 {
            kind,
            pred,
            target,
            weights,
        })
    }

    /// Σ wᵢlᵢ over the values `at`.
    fn sums(&self, at: std::ops::Range<usize>) -> f64 {
        let (p, t, w) = self.block(at.clone());
        match self.kind {
            Kind32::Term(term) => lanes::sums(term, &p, &t, w.as_deref()),
            Kind32::Columns(pw) => lanes::pos_weight_sums(&p, &t, &columns(pw, at), w.as_deref()),
        }
    }

    /// wᵢlᵢ (`grad` None) or c·wᵢ·l'ᵢ (`grad` Some(c)) of the values `at`
    /// into `out`.
    fn values(&self, grad: Option<f32>, at: std::ops::Range<usize>, out: &mut [Uninit]) {
        let (p, t, w) = self.block(at.clone());
        let w = w.as_deref();
        match (self.kind, grad) {
            (Kind32::Term(term), None) => lanes::per_sample(term, &p, &t, w, out),
            (Kind32::Term(term), Some(c)) => lanes::grad(term, c, &p, &t, w, out),
            (Kind32::Columns(pw), _) => {
                lanes::pos_weight_values(grad, &p, &t, &columns(pw, at), w, out)
            }
        }
    }

    /// The f32 predictions, targets and weights of the values `at`.
    #[allow(clippy::type_complexity)]
    fn block(
        &self,
        at: std::ops::Range<usize>,
    ) -> (Cow<'a, [f32]>, Cow<'a, [f32]>, Option<Cow<'a, [f32]>>) {
        let w = self.weights.map(|w| block(w, at.clone()));
        (block(self.pred, at.clone()), block(self.target, at), w)
    }
}

/// bce-logits' pos_weight (one value or one per column) of a pointwise
/// call that has no other option.
fn bce_pos_weight<'a, F: Float>(call: &Call, input: &LossInput<'a, F>) -> Option<&'a [f32]> {
    let others = LossOptions {
        pos_weight: None,
        ..input.options
    };
    let pointwise = matches!(call.shape.form, Form::Pointwise(_));
    let bce = matches!(call.loss, Loss::BceLogits) && pointwise && !others.any();
    input.options.pos_weight.filter(|_| bce)
}

/// pw[k mod m] for each value k of `at`: per-column weights laid out as
/// the values of n×m input, copied a row's run at a time.
fn columns(pw: &[f32], at: std::ops::Range<usize>) -> Vec<f32> {
    let m = pw.len();
    let mut v = Vec::with_capacity(at.len());
    let mut j = at.start % m;
    while v.len() < at.len() {
        let take = (m - j).min(at.len() - v.len());
        v.extend_from_slice(&pw[j..j + take]);
        j = 0;
    }
    v
}

/// [`crate::cpu::stats::grad_stats`] on all cores.
pub fn grad_stats<F: Float>(g: &[F], vanish_eps: f32) -> GradStats {
    grad_stats_of(&[g], vanish_eps)
}

/// The statistics of several tensors taken as one: per-block sums of
/// squares (f64), maxima and counts ([`lanes::grad_sums`]), combined in
/// tensor and block order, so the bits do not depend on the thread count.
pub fn grad_stats_of<F: Float>(tensors: &[&[F]], vanish_eps: f32) -> GradStats {
    let (mut ssq, mut max, mut counts) = (0.0f64, 0.0f32, [0u64; 3]);
    for g in tensors {
        let blocks = map_blocks(g.len().div_ceil(BLOCK), |b| {
            let chunk = &g[b * BLOCK..((b + 1) * BLOCK).min(g.len())];
            lanes::grad_sums(&F::widen(chunk), vanish_eps)
        });
        for (s, m, c) in blocks {
            ssq += s;
            max = max.max(m);
            for k in 0..3 {
                counts[k] += c[k];
            }
        }
    }
    let n = tensors.iter().map(|g| g.len() as u64).sum();
    GradStats::from_parts(ssq.sqrt(), max as f64, counts[0], counts[1], counts[2], n)
}

/// Clips `g` in place on all cores by `clip`, `norm` being the L2 norm of
/// everything clipped together: the reference's rules
/// ([`crate::cpu::stats::clip_value`], [`crate::cpu::stats::scale_by_norm`])
/// in f32, halves widened a block at a time and rounded back.
pub fn clip_in_place<F: Float>(g: &mut [F], clip: crate::ops::gradient::Clip, norm: f64) {
    use crate::ops::gradient::Clip;
    let apply = |v: &mut [f32]| match clip {
        Clip::Norm(c) => super::stats::scale_by_norm(v, norm, c),
        Clip::Value(c) => v.iter_mut().for_each(|x| *x = super::stats::clamp(*x, c)),
    };
    each_chunk(g, BLOCK, |_, block| {
        if F::DTYPE == DType::F32 {
            return apply(bytemuck::cast_slice_mut(block));
        }
        let mut wide = F::widen(block).into_owned();
        apply(&mut wide);
        F::narrow_into(&wide, block);
    });
}
