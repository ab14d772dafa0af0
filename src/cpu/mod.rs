//! The CPU reference: f64 accumulation, written for clarity. It is both the
//! fallback backend of [`crate::Engine::cpu`] and the oracle the GPU is tested
//! against. Each file mirrors a shader of `shaders/`.

pub mod activation;
pub mod common;
mod lanes;
pub mod linear;
pub mod loss;
mod math32;
pub(crate) mod parallel;
pub mod rows;
mod rows32;
pub mod stats;

pub use activation::{activation, prelu_alpha_grad};

use crate::error::Result;
use crate::ops::dtype::Float;
use crate::ops::input::{class_error, weight_error, Call, Form, LossInput, Shape, Target};
use crate::ops::loss::{Domain, Loss};
use crate::ops::reduction::Reduction;
use common::weighted;
use rows::RowTarget;

/// Checks the call (lengths, parameters) and every value against its
/// domain, in the order the GPU reports: prediction, then target, then
/// weights, each at its first offender.
pub fn validate(loss: &Loss, input: &LossInput) -> Result<()> {
    check_values(&check(loss, input, Reduction::Mean)?, input)
}

/// [`validate`] for a call with `reduction` (rmse is mean only): what a
/// program can check before it opens any device.
pub fn validate_call(loss: &Loss, input: &LossInput, reduction: Reduction) -> Result<()> {
    check_values(&check(loss, input, reduction)?, input)
}

/// The call's one validation; the sums and per-sample terms do not depend
/// on the reduction, so those entry points check as for `mean`.
fn check(loss: &Loss, input: &LossInput, reduction: Reduction) -> Result<Call> {
    loss.check(input.lengths(), reduction)
}

/// Every value against its domain (the lengths are checked in `call`).
pub(crate) fn check_values<F: Float>(call: &Call, input: &LossInput<F>) -> Result<()> {
    let (loss, shape) = (&call.loss, call.shape);
    check_domain(loss, "pred", call.pred_domain(), input.pred)?;
    match input.target {
        Target::Values(t) => check_domain(loss, "target", call.target_domain(), t)?,
        Target::Classes(c) => {
            // An ignored row's target is no class; it is not checked.
            let ignored = input.ignored();
            if let Some(i) = first_offender(c, |v| v as usize >= shape.cols && Some(v) != ignored) {
                return Err(class_error(loss, i, c[i], shape.cols));
            }
        }
        Target::None => {}
    }
    if let Some(w) = input.weights {
        if let Some(i) = first_offender(w, |v| v.to_f32() < 0.0) {
            return Err(weight_error(loss, i, w[i].to_f32()));
        }
    }
    Ok(())
}

fn check_domain<F: Float>(loss: &Loss, what: &'static str, domain: Domain, v: &[F]) -> Result<()> {
    let found = match domain {
        Domain::Any => None,
        Domain::Sign => first_offender(v, |x| !Domain::Sign.contains(x.to_f32())),
        Domain::Unit => first_offender(v, |x| !Domain::Unit.contains(x.to_f32())),
        Domain::NonPositive => first_offender(v, |x| !Domain::NonPositive.contains(x.to_f32())),
    };
    match found {
        Some(i) => Err(loss.domain_error(what, domain, i, v[i].to_f32())),
        None => Ok(()),
    }
}

/// Whether the pool has one thread: blocks then run in order on the
/// calling thread, with no hop to the pool's worker and back (a futex wake
/// each way, 17% of a 2^20 relu on one thread under perf). The same bits.
fn alone() -> bool {
    rayon::current_num_threads() == 1
}

/// The index of the first value that is `bad`, on all cores: each block
/// is scanned whole without an early exit (a loop the compiler vectorises),
/// and only a block that holds an offender is searched for it.
fn first_offender<T: Copy + Sync>(v: &[T], bad: impl Fn(T) -> bool + Sync) -> Option<usize> {
    use rayon::prelude::*;
    const BLOCK: usize = 1 << 14;
    let any = |c: &[T]| c.iter().fold(false, |any, &x| any | bad(x));
    let block = match alone() {
        true => v.chunks(BLOCK).position(any),
        false => v.par_chunks(BLOCK).position_first(any),
    }?;
    let start = block * BLOCK;
    v[start..].iter().position(|&x| bad(x)).map(|i| start + i)
}

fn row_target<'a>(input: &LossInput<'a>, shape: &Shape, i: usize) -> RowTarget<'a> {
    match input.target {
        Target::None => RowTarget::None,
        Target::Classes(c) => RowTarget::Class(c[i]),
        Target::Values(t) => RowTarget::Dist(&t[i * shape.cols..(i + 1) * shape.cols]),
    }
}

fn target_value(input: &LossInput, i: usize) -> f64 {
    match input.target {
        Target::Values(t) => t[i] as f64,
        _ => 0.0,
    }
}

/// The unweighted loss lᵢ of sample (row) i (0 for an ignored row).
pub(crate) fn sample_term(loss: &Loss, input: &LossInput, shape: &Shape, i: usize) -> f64 {
    if input.is_ignored(i) {
        return 0.0;
    }
    match shape.form {
        Form::Pointwise(_) => {
            let (p, t) = (input.pred[i] as f64, target_value(input, i));
            match input.pos_weight_at(i) {
                Some(pw) => loss::bce_logits_pos(p, t, pw),
                None => loss.term_f64(p, t),
            }
        }
        Form::Rows(op) => rows::row_loss_with(
            op,
            &input.pred[i * shape.cols..(i + 1) * shape.cols],
            row_target(input, shape, i),
            &row_options(loss, input),
        ),
    }
}

/// Appends wᵢ·c·d lᵢ/d p for every prediction of sample (row) i.
pub(crate) fn sample_grad(
    loss: &Loss,
    input: &LossInput,
    shape: &Shape,
    i: usize,
    coef: f64,
    out: &mut Vec<f64>,
) {
    if input.is_ignored(i) {
        out.extend(std::iter::repeat_n(0.0, shape.cols));
        return;
    }
    let w = weight(input, i) * coef;
    match shape.form {
        Form::Pointwise(_) => {
            let (p, t) = (input.pred[i] as f64, target_value(input, i));
            let d = match input.pos_weight_at(i) {
                Some(pw) => loss::bce_logits_pos_grad(p, t, pw),
                None => loss.term_grad_f64(p, t),
            };
            out.push(weighted(w, d));
        }
        Form::Rows(op) => {
            let row = &input.pred[i * shape.cols..(i + 1) * shape.cols];
            out.extend(
                rows::row_grad_with(
                    op,
                    row,
                    row_target(input, shape, i),
                    &row_options(loss, input),
                )
                .iter()
                .map(|&d| weighted(w, d)),
            );
        }
    }
}

/// The unweighted per-sample losses lᵢ (validated input).
pub fn loss_terms(loss: &Loss, input: &LossInput) -> Result<Vec<f64>> {
    let call = check(loss, input, Reduction::Mean)?;
    check_values(&call, input)?;
    let shape = call.shape;
    Ok((0..shape.rows)
        .map(|i| sample_term(loss, input, &shape, i))
        .collect())
}

/// Row i's weight in the sum (see [`LossInput::weight`]).
pub(crate) fn weight(input: &LossInput, i: usize) -> f64 {
    input.weight(i)
}

fn row_options<'a>(loss: &Loss, input: &LossInput<'a>) -> rows::RowOptions<'a> {
    let (margin, power) = match *loss {
        Loss::MultiMargin { margin, power } => (margin as f64, power),
        _ => (0.0, 1),
    };
    rows::RowOptions {
        class_weights: input.options.class_weights,
        smoothing: input.options.label_smoothing as f64,
        z_loss: input.options.z_loss as f64,
        margin,
        power,
        log_input: input.options.log_input,
        log_target: input.options.log_target,
    }
}

/// The weighted per-sample values wᵢ·lᵢ (reduction `none`).
pub fn loss_per_sample(loss: &Loss, input: &LossInput) -> Result<Vec<f64>> {
    check(loss, input, Reduction::None)?;
    let terms = loss_terms(loss, input)?;
    Ok(terms
        .iter()
        .enumerate()
        .map(|(i, &l)| weighted(weight(input, i), l))
        .collect())
}

/// (Σ wᵢlᵢ, Σ wᵢ) in f64.
pub fn loss_sums(loss: &Loss, input: &LossInput) -> Result<(f64, f64)> {
    let terms = loss_terms(loss, input)?;
    let mut sum = 0.0;
    let mut wsum = 0.0;
    for (i, l) in terms.iter().enumerate() {
        sum += weighted(weight(input, i), *l);
        wsum += input.mean_weight(i, loss.mean_by_class_weight());
    }
    Ok((sum, wsum))
}

/// The reduced loss (`mean` or `sum`).
pub fn loss_scalar(loss: &Loss, input: &LossInput, reduction: Reduction) -> Result<f64> {
    let call = check(loss, input, reduction)?;
    let (sum, wsum) = loss_sums(loss, input)?;
    call.finish(sum, wsum)
}

/// The gradient of the reduced loss with respect to every element of
/// `pred`: wᵢ·(d lᵢ/d p)·c with c = 1/Σw for `mean`, 1 for `sum` and `none`,
/// and for `rmse` the metric's own chain rule.
pub fn loss_grad(loss: &Loss, input: &LossInput, reduction: Reduction) -> Result<Vec<f64>> {
    let call = check(loss, input, reduction)?;
    let shape = call.shape;
    let (sum, wsum) = loss_sums(loss, input)?;
    let coef = grad_coefficient(&call, sum, wsum)?;
    let mut g = Vec::with_capacity(input.pred.len());
    for i in 0..shape.rows {
        sample_grad(loss, input, &shape, i, coef, &mut g);
    }
    Ok(g)
}

/// The factor c that turns wᵢ·dlᵢ into the gradient of the reduced loss.
/// For rmse = sqrt(S/W) with S = Σwe²: d rmse = dS/(2·W·rmse); zero when
/// rmse is 0 (the subgradient PyTorch's sqrt would make NaN). With class
/// options a mean over no weight gives 1/0 = inf: ignored rows still get
/// 0, a kept row of class weight 0 gets NaN (0·inf), as on the GPU.
pub(crate) fn grad_coefficient(call: &Call, sum: f64, wsum: f64) -> Result<f64> {
    match call.reduction {
        Reduction::Sum | Reduction::None => Ok(1.0),
        Reduction::BatchMean => Ok(1.0 / call.shape.rows as f64),
        Reduction::Mean => {
            let value = call.finish(sum, wsum)?;
            if call.rmse() {
                Ok(if value == 0.0 {
                    0.0
                } else {
                    1.0 / (2.0 * wsum * value)
                })
            } else {
                Ok(1.0 / wsum)
            }
        }
    }
}

/// The seven metric sums (mse, mae, mape, smape, huber, log-cosh, pinball)
/// and Σw, each from its loss's f64 reference.
pub fn metric_sums(input: &LossInput, delta: f32, gamma: f32) -> Result<([f64; 7], f64)> {
    let losses = crate::ops::metrics::metric_losses(delta, gamma)?;
    let mut sums = [0.0; 7];
    let mut wsum = 0.0;
    for (k, loss) in losses.iter().enumerate() {
        let (s, w) = loss_sums(loss, input)?;
        sums[k] = s;
        wsum = w;
    }
    Ok((sums, wsum))
}
