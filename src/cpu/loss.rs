//! f64 twin of `shaders/loss.wgsl`: one term per element and its derivative.

use super::common::{log_cosh, propagate_nan, sigmoid, sign, softplus};
use crate::ops::loss::{Loss, MAPE_EPS};

impl Loss {
    /// The per-sample loss l(p, t) of a pointwise loss, in f64 (for `rmse`
    /// the squared error e², rooted after the mean).
    #[inline]
    pub fn term_f64(&self, p: f64, t: f64) -> f64 {
        let e = t - p;
        let m = t * p;
        let l = match *self {
            Loss::ZeroOne => {
                if m <= 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Loss::Hinge => (1.0 - m).max(0.0),
            Loss::SquaredHinge => (1.0 - m).max(0.0).powi(2),
            Loss::Exponential => (-m).exp(),
            Loss::Logistic => softplus(-m),
            Loss::BceLogits => t * softplus(-p) + (1.0 - t) * softplus(p),
            Loss::Bce => -(t * p.ln().max(-100.0) + (1.0 - t) * (1.0 - p).ln().max(-100.0)),
            Loss::Squared => 0.5 * e * e,
            Loss::Mse | Loss::Rmse => e * e,
            Loss::Mae => e.abs(),
            Loss::Mape => 100.0 * e.abs() / t.abs().max(MAPE_EPS as f64),
            Loss::Smape => {
                let d = t.abs() + p.abs();
                if d == 0.0 {
                    0.0
                } else {
                    200.0 * e.abs() / d
                }
            }
            Loss::Huber { delta } => {
                let d = delta as f64;
                if e.abs() <= d {
                    0.5 * e * e
                } else {
                    d * (e.abs() - 0.5 * d)
                }
            }
            Loss::LogCosh => log_cosh(e),
            Loss::Quantile { gamma } => {
                let g = gamma as f64;
                if e >= 0.0 {
                    g * e
                } else {
                    (g - 1.0) * e
                }
            }
            Loss::SmoothL1 { beta } => {
                let b = beta as f64;
                if e.abs() < b {
                    0.5 * e * e / b
                } else {
                    e.abs() - 0.5 * b
                }
            }
            Loss::CrossEntropy
            | Loss::KlDiv
            | Loss::Entropy
            | Loss::Nll
            | Loss::MultiMargin { .. } => f64::NAN,
        };
        propagate_nan(&[p, t], l)
    }

    /// d l(p, t) / d p of a pointwise loss (for `rmse` the derivative of e²,
    /// −2e; the engine applies the metric's chain rule).
    pub fn term_grad_f64(&self, p: f64, t: f64) -> f64 {
        let e = t - p;
        let m = t * p;
        let g = match *self {
            Loss::ZeroOne => 0.0,
            Loss::Hinge => {
                if m < 1.0 {
                    -t
                } else {
                    0.0
                }
            }
            Loss::SquaredHinge => -2.0 * t * (1.0 - m).max(0.0),
            Loss::Exponential => -t * (-m).exp(),
            Loss::Logistic => -t * sigmoid(-m),
            Loss::BceLogits => sigmoid(p) - t,
            Loss::Bce => (p - t) / (p * (1.0 - p)).max(1e-12),
            Loss::Squared => -e,
            Loss::Mse | Loss::Rmse => -2.0 * e,
            Loss::Mae => -sign(e),
            Loss::Mape => -100.0 * sign(e) / t.abs().max(MAPE_EPS as f64),
            Loss::Smape => {
                let d = t.abs() + p.abs();
                if d == 0.0 {
                    0.0
                } else {
                    -200.0 * sign(e) * (t.abs() + t * sign(p)) / (d * d)
                }
            }
            Loss::Huber { delta } => {
                let d = delta as f64;
                if e.abs() <= d {
                    -e
                } else {
                    -d * sign(e)
                }
            }
            Loss::LogCosh => -e.tanh(),
            Loss::Quantile { gamma } => {
                let g = gamma as f64;
                if e >= 0.0 {
                    -g
                } else {
                    1.0 - g
                }
            }
            Loss::SmoothL1 { beta } => {
                let b = beta as f64;
                if e.abs() < b {
                    -e / b
                } else {
                    -sign(e)
                }
            }
            Loss::CrossEntropy
            | Loss::KlDiv
            | Loss::Entropy
            | Loss::Nll
            | Loss::MultiMargin { .. } => f64::NAN,
        };
        propagate_nan(&[p, t], g)
    }
}

/// bce-logits with a positive weight pw (PyTorch's `pos_weight`):
/// pw·t·softplus(−p) + (1−t)·softplus(p).
pub(crate) fn bce_logits_pos(p: f64, t: f64, pw: f64) -> f64 {
    propagate_nan(&[p, t], pw * t * softplus(-p) + (1.0 - t) * softplus(p))
}

/// d/dp of [`bce_logits_pos`]: (1−t)·σ(p) − pw·t·σ(−p).
pub(crate) fn bce_logits_pos_grad(p: f64, t: f64, pw: f64) -> f64 {
    propagate_nan(&[p, t], (1.0 - t) * sigmoid(p) - pw * t * sigmoid(-p))
}
