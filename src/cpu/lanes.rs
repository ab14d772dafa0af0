//! The CPU backend's f32 loops: activations and pointwise losses (value
//! sums, per-sample values, gradients) over one block of a slice, compiled
//! for AVX-512, AVX2+FMA and NEON besides the portable baseline and chosen
//! at run time (`multiversion`). Each loop is branch-free over
//! [`super::math32`], so the compiler turns it into vector instructions.
//!
//! Sums add f32 terms into lane accumulators (32 for one loss, 16 for the
//! fused metrics), flushed into an f64 total every 32 values per lane, the
//! lanes added pairwise: the order is fixed by the code, not by the vector
//! width, so a block's sum has the same bits on every run.

use super::math32::{
    exp, expm1_to_80, ln, ln_1p, ln_1p_unit, log_cosh, select, sigmoid, sigmoid_grad, softplus,
    tanh,
};
use crate::ops::activation::{Activation, Pass};
use crate::ops::loss::Loss;
use multiversion::multiversion;

/// An output value not yet written: the writers below fill fresh memory
/// (see [`crate::output::written`]), writing every element of `out`.
pub(super) type Uninit = std::mem::MaybeUninit<f32>;

/// Accumulator lanes of a single loss's sum: two or more independent
/// vector chains at any width, so a cheap term waits on memory rather than
/// on add latency.
const LANES: usize = 32;
/// Accumulator lanes of the fused metrics: their terms take long enough
/// that add latency is hidden at one vector, and 7 × 32 accumulators
/// would not fit in the registers.
const METRIC_LANES: usize = 16;
/// Values per lane accumulator before it is flushed into f64.
const FLUSH: usize = 32;

#[inline(always)]
fn sign(x: f32) -> f32 {
    select(x > 0.0, 1.0, select(x < 0.0, -1.0, 0.0))
}

/// w·l with a zero weight removing its sample even where l is infinite;
/// NaN in l still propagates (as the reference and the GPU).
#[inline(always)]
pub(super) fn weighted(w: f32, l: f32) -> f32 {
    select((w == 0.0) & !l.is_nan(), 0.0, w * l)
}

/// A pointwise loss the f32 loops compute (the exponential loss, whose
/// terms pass f32's range, uses the f64 reference formula).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Term32 {
    Squared,
    Mse,
    Mae,
    Mape,
    Smape,
    Huber(f32),
    LogCosh,
    Quantile(f32),
    SmoothL1(f32),
    Hinge,
    SquaredHinge,
    Logistic,
    BceLogits,
    /// bce-logits with one positive weight pw (PyTorch's `pos_weight`).
    BceLogitsPos(f32),
    /// bce on probabilities.
    Bce,
    ZeroOne,
}

impl Term32 {
    /// The f32 twin of a pointwise loss, if it has one (`rmse` is `mse`'s
    /// sums).
    pub(crate) fn of(loss: &Loss) -> Option<Term32> {
        Some(match *loss {
            Loss::Squared => Term32::Squared,
            Loss::Mse | Loss::Rmse => Term32::Mse,
            Loss::Mae => Term32::Mae,
            Loss::Mape => Term32::Mape,
            Loss::Smape => Term32::Smape,
            Loss::Huber { delta } => Term32::Huber(delta),
            Loss::LogCosh => Term32::LogCosh,
            Loss::Quantile { gamma } => Term32::Quantile(gamma),
            Loss::SmoothL1 { beta } => Term32::SmoothL1(beta),
            Loss::Hinge => Term32::Hinge,
            Loss::SquaredHinge => Term32::SquaredHinge,
            Loss::Logistic => Term32::Logistic,
            Loss::BceLogits => Term32::BceLogits,
            Loss::Bce => Term32::Bce,
            Loss::ZeroOne => Term32::ZeroOne,
            _ => return None,
        })
    }

    /// l(p, t), NaN when p or t is.
    #[inline(always)]
    fn value(self, p: f32, t: f32) -> f32 {
        select(p.is_nan() | t.is_nan(), f32::NAN, self.formula(p, t))
    }

    /// l(p, t) by its formula alone: a term of e = t − p keeps a NaN of p
    /// or t by itself, the others need [`Term32::value`]'s select.
    #[inline(always)]
    fn formula(self, p: f32, t: f32) -> f32 {
        let e = t - p;
        let a = e.abs();
        match self {
            Term32::Squared => 0.5 * e * e,
            Term32::Mse => e * e,
            Term32::Mae => a,
            Term32::Mape => 100.0 * a / t.abs().max(f32::EPSILON),
            Term32::Smape => {
                let d = t.abs() + p.abs();
                select(d == 0.0, 0.0, 200.0 * a / d)
            }
            Term32::Huber(d) => select(a <= d, 0.5 * e * e, d * (a - 0.5 * d)),
            Term32::LogCosh => log_cosh(e),
            Term32::Quantile(g) => select(e >= 0.0, g * e, (g - 1.0) * e),
            Term32::SmoothL1(b) => select(a < b, 0.5 * e * e / b, a - 0.5 * b),
            Term32::Hinge => (1.0 - t * p).max(0.0),
            Term32::SquaredHinge => {
                let h = (1.0 - t * p).max(0.0);
                h * h
            }
            Term32::Logistic => softplus(-(t * p)),
            // t·softplus(−p) + (1 − t)·softplus(p) = max(p, 0) − t·p +
            // ln(1 + e^−|p|), with max(p, 0) − t·p as one product so that
            // a large |p| leaves no cancellation.
            Term32::BceLogits => select(p > 0.0, p * (1.0 - t), -t * p) + ln_1p_unit(exp(-p.abs())),
            // pw·t·softplus(−p) + (1 − t)·softplus(p), the two softplus
            // sharing ln(1 + e^−|p|).
            Term32::BceLogitsPos(pw) => {
                let l = ln_1p_unit(exp(-p.abs()));
                (pw * t) * ((-p).max(0.0) + l) + (1.0 - t) * (p.max(0.0) + l)
            }
            // −(t·ln p + (1 − t)·ln(1 − p)), each ln at least −100
            // (PyTorch's clamp); ln(1 − p) as ln_1p(−p), so a small p keeps
            // its digits, and −inf (p = 1) or NaN there becomes −100.
            Term32::Bce => {
                let floor = |l: f32| select(l > -100.0, l, -100.0);
                -(t * floor(ln(p)) + (1.0 - t) * floor(ln_1p(-p)))
            }
            Term32::ZeroOne => select(t * p <= 0.0, 1.0, 0.0),
        }
    }

    /// d l(p, t) / d p, NaN when p or t is.
    #[inline(always)]
    fn grad(self, p: f32, t: f32) -> f32 {
        let e = t - p;
        let a = e.abs();
        let g = match self {
            Term32::Squared => -e,
            Term32::Mse => -2.0 * e,
            Term32::Mae => -sign(e),
            Term32::Mape => -100.0 * sign(e) / t.abs().max(f32::EPSILON),
            Term32::Smape => {
                let d = t.abs() + p.abs();
                let g = -200.0 * sign(e) * (t.abs() + t * sign(p)) / (d * d);
                select(d == 0.0, 0.0, g)
            }
            Term32::Huber(d) => select(a <= d, -e, -d * sign(e)),
            Term32::LogCosh => -tanh(e),
            Term32::Quantile(g) => select(e >= 0.0, -g, 1.0 - g),
            Term32::SmoothL1(b) => select(a < b, -e / b, -sign(e)),
            Term32::Hinge => select(t * p < 1.0, -t, 0.0),
            Term32::SquaredHinge => -2.0 * t * (1.0 - t * p).max(0.0),
            Term32::Logistic => -t * sigmoid(-(t * p)),
            Term32::BceLogits => sigmoid(p) - t,
            // (1 − t)·σ(p) − pw·t·σ(−p), both from e^−|p|.
            Term32::BceLogitsPos(pw) => {
                let e = exp(-p.abs());
                let d = 1.0 + e;
                let (up, down) = (select(p >= 0.0, 1.0, e), select(p >= 0.0, e, 1.0));
                ((1.0 - t) * up - (pw * t) * down) / d
            }
            Term32::Bce => (p - t) / (p * (1.0 - p)).max(1e-12),
            Term32::ZeroOne => 0.0,
        };
        select(p.is_nan() | t.is_nan(), f32::NAN, g)
    }
}

/// Expands `$run` once per variant of `$value` (an enum of unit variants
/// and one-field variants), with `$v` bound to that variant as a constant:
/// each loop is then compiled for one formula, with no match inside it.
macro_rules! specialise {
    ($value:expr, $E:ident { $($unit:ident),* ; $($one:ident($x:ident)),* }, |$v:ident| $run:expr) => {
        match $value {
            $($E::$unit => {
                let $v = $E::$unit;
                $run
            })*
            $($E::$one($x) => {
                let $v = $E::$one($x);
                $run
            })*
        }
    };
}

/// [`specialise`] over [`Term32`].
macro_rules! each_term {
    ($term:expr, |$t:ident| $run:expr) => {
        specialise!($term, Term32 {
            Squared, Mse, Mae, Mape, Smape, LogCosh, Hinge, SquaredHinge, Logistic, BceLogits, Bce,
            ZeroOne;
            Huber(d), Quantile(g), SmoothL1(b), BceLogitsPos(pw)
        }, |$t| $run)
    };
}

/// K pointwise terms of one sample, computed together so that they share
/// their common parts (e = t − p, |e|); `a` is a third value read beside
/// p and t where the terms take one (0 where they do not).
pub(crate) trait Terms<const K: usize>: Copy {
    fn values(self, p: f32, t: f32, a: f32) -> [f32; K];
}

impl Terms<1> for Term32 {
    #[inline(always)]
    fn values(self, p: f32, t: f32, _: f32) -> [f32; 1] {
        [self.value(p, t)]
    }
}

/// bce-logits with a positive weight per value, read as `a` (a pos_weight
/// per column of n×m input, laid out as the values).
#[derive(Clone, Copy)]
pub(crate) struct PosWeights;

impl Terms<1> for PosWeights {
    #[inline(always)]
    fn values(self, p: f32, t: f32, pw: f32) -> [f32; 1] {
        [Term32::BceLogitsPos(pw).value(p, t)]
    }
}

/// The seven terms of the fused metrics (twin of metrics.wgsl): mse, mae,
/// mape, smape, huber(δ), log-cosh, pinball(γ), with mape and smape
/// without their factors 100 and 200 ([`METRIC_SCALE`], applied to the
/// sums) and no NaN selects ([`Term32::formula`]): every term is a
/// function of e = t − p that keeps a NaN in e, and a NaN in p or t is
/// one in e. The pass is
/// compute-bound, so each instruction saved here is time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Metrics32 {
    pub(crate) delta: f32,
    pub(crate) gamma: f32,
}

/// The factor of each of [`Metrics32`]'s sums.
const METRIC_SCALE: [f64; 7] = [1.0, 1.0, 100.0, 200.0, 1.0, 1.0, 1.0];

impl Terms<7> for Metrics32 {
    #[inline(always)]
    fn values(self, p: f32, t: f32, _: f32) -> [f32; 7] {
        let (a, at) = ((t - p).abs(), t.abs());
        [
            Term32::Mse.formula(p, t),
            Term32::Mae.formula(p, t),
            a / at.max(f32::EPSILON),
            // |t| + |p| = 0 only where a = 0: 0 over the least subnormal.
            a / (at + p.abs()).max(f32::from_bits(1)),
            Term32::Huber(self.delta).formula(p, t),
            Term32::LogCosh.formula(p, t),
            Term32::Quantile(self.gamma).formula(p, t),
        ]
    }
}

/// Σ of the lanes in f64, added pairwise (lane j + lane j + L/2, and so
/// on): log₂ L dependent vector adds where adding them in order was a
/// chain of L scalar adds per run of a memory-bound loss.
#[inline(always)]
fn pairwise<const L: usize>(lanes: &[f32; L]) -> f64 {
    const { assert!(L.is_power_of_two()) };
    let mut v = lanes.map(|a| a as f64);
    let mut half = L;
    while half > 1 {
        half /= 2;
        for j in 0..half {
            v[j] += v[j + half];
        }
    }
    v[0]
}

/// Σ wᵢ·lᵢ for each of the K terms: L f32 accumulators per term over
/// each run of `L × FLUSH` values, then added into f64 pairwise; the tail
/// of a run that is not a whole number of lanes is added in f64 after its
/// lanes. `WEIGHTED` false reads no weights (wᵢ = 1),
/// `AUX` false no third values (aᵢ = 0).
#[inline(always)]
fn lane_sums<const K: usize, const L: usize, const WEIGHTED: bool, const AUX: bool, T: Terms<K>>(
    terms: T,
    p: &[f32],
    t: &[f32],
    w: &[f32],
    a: &[f32],
) -> [f64; K] {
    // `terms` rather than a closure: a closure this large is left a call,
    // which keeps the loop scalar.
    let mut total = [0.0f64; K];
    let run = L * FLUSH;
    let (ones, zeros) = ([1.0f32; L], [0.0f32; L]);
    for (k, (p, t)) in p.chunks(run).zip(t.chunks(run)).enumerate() {
        let w = if WEIGHTED {
            &w[k * run..k * run + p.len()]
        } else {
            &ones[..0]
        };
        let a = if AUX {
            &a[k * run..k * run + p.len()]
        } else {
            &zeros[..0]
        };
        let mut acc = [[0.0f32; L]; K];
        let (pc, tc) = (p.chunks_exact(L), t.chunks_exact(L));
        let tail = pc.remainder().len();
        for (i, (pl, tl)) in pc.zip(tc).enumerate() {
            let wl = if WEIGHTED {
                &w[i * L..(i + 1) * L]
            } else {
                &ones[..]
            };
            let al = if AUX {
                &a[i * L..(i + 1) * L]
            } else {
                &zeros[..]
            };
            let (pl, tl, wl, al): (&[f32; L], &[f32; L], &[f32; L], &[f32; L]) =
                match (pl.try_into(), tl.try_into(), wl.try_into(), al.try_into()) {
                    (Ok(pl), Ok(tl), Ok(wl), Ok(al)) => (pl, tl, wl, al),
                    _ => unreachable!("chunks_exact gives whole lanes"),
                };
            for j in 0..L {
                let l = terms.values(pl[j], tl[j], al[j]);
                for (a, l) in acc.iter_mut().zip(l) {
                    a[j] += if WEIGHTED { weighted(wl[j], l) } else { l };
                }
            }
        }
        for (total, acc) in total.iter_mut().zip(&acc) {
            *total += pairwise(acc);
        }
        let at = p.len() - tail;
        for i in at..p.len() {
            let wi = if WEIGHTED { w[i] } else { 1.0 };
            let ai = if AUX { a[i] } else { 0.0 };
            for (total, l) in total.iter_mut().zip(terms.values(p[i], t[i], ai)) {
                *total += weighted(wi, l) as f64;
            }
        }
    }
    total
}

/// Σ wᵢ·l(pᵢ, tᵢ) over one block.
#[multiversion(targets = "simd")]
pub(crate) fn sums(term: Term32, p: &[f32], t: &[f32], w: Option<&[f32]>) -> f64 {
    let [s] = each_term!(term, |term| match w {
        None => lane_sums::<1, LANES, false, false, _>(term, p, t, &[], &[]),
        Some(w) => lane_sums::<1, LANES, true, false, _>(term, p, t, w, &[]),
    });
    s
}

/// Σ wᵢ·lᵢ of bce-logits with a positive weight per value (`pw`, laid
/// out as p) over one block.
#[multiversion(targets = "simd")]
pub(crate) fn pos_weight_sums(p: &[f32], t: &[f32], pw: &[f32], w: Option<&[f32]>) -> f64 {
    let [s] = match w {
        None => lane_sums::<1, LANES, false, true, _>(PosWeights, p, t, &[], pw),
        Some(w) => lane_sums::<1, LANES, true, true, _>(PosWeights, p, t, w, pw),
    };
    s
}

/// out = wᵢ·lᵢ (`grad` None) or c·wᵢ·l'ᵢ (`grad` Some(c)) of bce-logits
/// with a positive weight per value (`pw`, laid out as p) over one block.
#[multiversion(targets = "simd")]
pub(crate) fn pos_weight_values(
    grad: Option<f32>,
    p: &[f32],
    t: &[f32],
    pw: &[f32],
    w: Option<&[f32]>,
    out: &mut [Uninit],
) {
    let n = out.len();
    let (p, t, pw) = (&p[..n], &t[..n], &pw[..n]);
    let inputs = out.iter_mut().zip(p).zip(t).zip(pw);
    match (grad, w) {
        (None, None) => inputs.for_each(|(((o, &p), &t), &pw)| {
            o.write(Term32::BceLogitsPos(pw).value(p, t));
        }),
        (None, Some(w)) => inputs.zip(&w[..n]).for_each(|((((o, &p), &t), &pw), &w)| {
            o.write(weighted(w, Term32::BceLogitsPos(pw).value(p, t)));
        }),
        (Some(c), None) => inputs.for_each(|(((o, &p), &t), &pw)| {
            o.write(c * Term32::BceLogitsPos(pw).grad(p, t));
        }),
        (Some(c), Some(w)) => inputs.zip(&w[..n]).for_each(|((((o, &p), &t), &pw), &w)| {
            o.write(weighted(c * w, Term32::BceLogitsPos(pw).grad(p, t)));
        }),
    }
}

/// The seven metric sums over one block.
#[multiversion(targets = "simd")]
pub(crate) fn metric_sums(m: Metrics32, p: &[f32], t: &[f32], w: Option<&[f32]>) -> [f64; 7] {
    let s = match w {
        None => lane_sums::<7, METRIC_LANES, false, false, _>(m, p, t, &[], &[]),
        Some(w) => lane_sums::<7, METRIC_LANES, true, false, _>(m, p, t, w, &[]),
    };
    std::array::from_fn(|k| s[k] * METRIC_SCALE[k])
}

/// out = wᵢ·l(pᵢ, tᵢ) over one block.
#[multiversion(targets = "simd")]
pub(crate) fn per_sample(
    term: Term32,
    p: &[f32],
    t: &[f32],
    w: Option<&[f32]>,
    out: &mut [Uninit],
) {
    let n = out.len();
    let (p, t) = (&p[..n], &t[..n]);
    each_term!(term, |term| match w {
        None => {
            for ((o, &p), &t) in out.iter_mut().zip(p).zip(t) {
                o.write(term.value(p, t));
            }
        }
        Some(w) => {
            let w = &w[..n];
            for (((o, &p), &t), &w) in out.iter_mut().zip(p).zip(t).zip(w) {
                o.write(weighted(w, term.value(p, t)));
            }
        }
    })
}

/// out = c·wᵢ·l'(pᵢ, tᵢ) over one block (c the reduction's coefficient).
#[multiversion(targets = "simd")]
pub(crate) fn grad(
    term: Term32,
    c: f32,
    p: &[f32],
    t: &[f32],
    w: Option<&[f32]>,
    out: &mut [Uninit],
) {
    let n = out.len();
    let (p, t) = (&p[..n], &t[..n]);
    each_term!(term, |term| match w {
        None => {
            for ((o, &p), &t) in out.iter_mut().zip(p).zip(t) {
                o.write(c * term.grad(p, t));
            }
        }
        Some(w) => {
            let w = &w[..n];
            for (((o, &p), &t), &w) in out.iter_mut().zip(p).zip(t).zip(w) {
                o.write(weighted(c * w, term.grad(p, t)));
            }
        }
    })
}

/// An activation the f32 loops compute elementwise (rrelu in training
/// draws its slope per index: [`rrelu_training`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Act32 {
    Sigmoid,
    Tanh,
    Relu,
    Leaky(f32),
    Elu(f32),
    Swish(f32),
    Softplus,
}

impl Act32 {
    pub(crate) fn of(act: &Activation) -> Option<Act32> {
        Some(match *act {
            Activation::Sigmoid => Act32::Sigmoid,
            Activation::Tanh => Act32::Tanh,
            Activation::Relu => Act32::Relu,
            Activation::LeakyRelu { alpha } | Activation::Prelu { alpha } => Act32::Leaky(alpha),
            Activation::Elu { alpha } => Act32::Elu(alpha),
            Activation::Swish { beta } => Act32::Swish(beta),
            Activation::Softplus => Act32::Softplus,
            // In evaluation rrelu is leaky-relu with α = (lower + upper)/2,
            // as `rrelu_alpha` computes it; in training α is drawn per
            // element ([`rrelu_training`]).
            Activation::Rrelu {
                lower,
                upper,
                training: false,
                ..
            } => Act32::Leaky((lower + upper) * 0.5),
            Activation::Rrelu { .. } => return None,
        })
    }

    #[inline(always)]
    fn forward(self, x: f32) -> f32 {
        match self {
            Act32::Sigmoid => sigmoid(x),
            Act32::Tanh => tanh(x),
            // NaN fails x <= 0 and is kept.
            Act32::Relu => select(x <= 0.0, 0.0, x),
            Act32::Leaky(a) => select(x > 0.0, x, a * x),
            // Above 0 the expm1 lane is discarded: finite, and no e^x.
            Act32::Elu(a) => select(x > 0.0, x, a * expm1_to_80(x)),
            Act32::Swish(b) => x * sigmoid(b * x),
            Act32::Softplus => softplus(x),
        }
    }

    #[inline(always)]
    fn derivative(self, x: f32) -> f32 {
        let d = match self {
            Act32::Sigmoid => sigmoid_grad(x),
            Act32::Tanh => 4.0 * sigmoid_grad(2.0 * x),
            Act32::Relu => select(x > 0.0, 1.0, 0.0),
            Act32::Leaky(a) => select(x > 0.0, 1.0, a),
            Act32::Elu(a) => select(x > 0.0, 1.0, a * exp(x)),
            Act32::Swish(b) => {
                let s = sigmoid(b * x);
                let f = x * s;
                b * f + s * (1.0 - b * f)
            }
            Act32::Softplus => sigmoid(x),
        };
        select(x.is_nan(), x, d)
    }
}

/// [`specialise`] over [`Act32`].
macro_rules! each_act {
    ($act:expr, |$a:ident| $run:expr) => {
        specialise!($act, Act32 { Sigmoid, Tanh, Relu, Softplus; Leaky(s), Elu(s), Swish(s) }, |$a| $run)
    };
}

/// out = f(x), f'(x) or upstream ⊙ f'(x) over one block.
#[multiversion(targets = "simd")]
pub(crate) fn activation(
    act: Act32,
    pass: Pass,
    x: &[f32],
    upstream: Option<&[f32]>,
    out: &mut [Uninit],
) {
    let n = out.len();
    let x = &x[..n];
    each_act!(act, |act| match (pass, upstream) {
        (Pass::Forward, _) => {
            for (o, &x) in out.iter_mut().zip(x) {
                o.write(act.forward(x));
            }
        }
        (Pass::Derivative, _) | (Pass::Backward, None) => {
            for (o, &x) in out.iter_mut().zip(x) {
                o.write(act.derivative(x));
            }
        }
        (Pass::Backward, Some(u)) => {
            let u = &u[..n];
            for ((o, &x), &u) in out.iter_mut().zip(x).zip(u) {
                o.write(u * act.derivative(x));
            }
        }
    })
}

/// Σg² (f64) and max |g| over the finite values of one block, and its
/// counts of NaN, ±inf and |g| < eps: the raw parts of
/// [`crate::GradStats`]. Squares are taken in f64 (no overflow up to
/// f32::MAX) in 16 lanes, added in lane order; the maximum and the counts
/// are exact.
#[multiversion(targets = "simd")]
pub(crate) fn grad_sums(g: &[f32], eps: f32) -> (f64, f32, [u64; 3]) {
    const L: usize = 16;
    // u32 counters per lane flush into u64 every run.
    const RUN: usize = L << 20;
    let (mut total, mut max, mut counts) = (0.0f64, 0.0f32, [0u64; 3]);
    for run in g.chunks(RUN) {
        let (mut ssq, mut top) = ([0.0f64; L], [0.0f32; L]);
        let mut c = [[0u32; L]; 3];
        let lanes = run.chunks_exact(L);
        let tail = lanes.remainder();
        for v in lanes {
            let v: &[f32; L] = v.try_into().expect("chunks_exact gives whole lanes");
            for j in 0..L {
                let a = v[j].abs();
                // NaN and ±inf add nothing here; they are counted instead.
                let f = select(a < f32::INFINITY, a, 0.0);
                ssq[j] += f as f64 * f as f64;
                top[j] = select(f > top[j], f, top[j]);
                c[0][j] += v[j].is_nan() as u32;
                c[1][j] += (a == f32::INFINITY) as u32;
                c[2][j] += (a < eps) as u32;
            }
        }
        total += ssq.iter().sum::<f64>();
        max = top.iter().fold(max, |m, &t| select(t > m, t, m));
        for (k, c) in c.iter().enumerate() {
            counts[k] += c.iter().map(|&c| c as u64).sum::<u64>();
        }
        for &v in tail {
            let a = v.abs();
            let f = select(a < f32::INFINITY, a, 0.0);
            total += f as f64 * f as f64;
            max = select(f > max, f, max);
            counts[0] += v.is_nan() as u64;
            counts[1] += (a == f32::INFINITY) as u64;
            counts[2] += (a < eps) as u64;
        }
    }
    (total, max, counts)
}

/// rrelu in training over one block whose first element has index
/// `start`: f(x) = x above 0, else α·x with α = lower + (upper − lower)·u
/// and u from [`crate::ops::activation::uniform01`]'s hash of (seed,
/// index), in u32 lanes (the same bits as the reference and the shader);
/// f'(x) = 1 or α, NaN at NaN.
#[allow(clippy::too_many_arguments)]
#[multiversion(targets = "simd")]
pub(crate) fn rrelu_training(
    (lower, upper, seed): (f32, f32, u64),
    start: usize,
    pass: Pass,
    x: &[f32],
    upstream: Option<&[f32]>,
    out: &mut [Uninit],
) {
    use crate::ops::activation::pcg_hash;
    let key = pcg_hash((seed as u32) ^ pcg_hash((seed >> 32) as u32));
    let alpha = |k: usize| {
        // The index as the reference takes it: u32, wrapping past 2^32.
        let h = pcg_hash(((start + k) as u32) ^ key);
        lower + (upper - lower) * ((h >> 8) as f32 * (1.0 / 16_777_216.0))
    };
    let n = out.len();
    let x = &x[..n];
    match (pass, upstream) {
        (Pass::Forward, _) => {
            for (k, (o, &x)) in out.iter_mut().zip(x).enumerate() {
                o.write(select(x > 0.0, x, alpha(k) * x));
            }
        }
        (Pass::Derivative, _) | (Pass::Backward, None) => {
            for (k, (o, &x)) in out.iter_mut().zip(x).enumerate() {
                o.write(select(x.is_nan(), x, select(x > 0.0, 1.0, alpha(k))));
            }
        }
        (Pass::Backward, Some(u)) => {
            let u = &u[..n];
            for (k, ((o, &x), &u)) in out.iter_mut().zip(x).zip(u).enumerate() {
                o.write(u * select(x.is_nan(), x, select(x > 0.0, 1.0, alpha(k))));
            }
        }
    }
}
