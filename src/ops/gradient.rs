//! Gradient health (SPEC §3): statistics, clipping, and a per-layer report
//! that names exploding and vanishing gradients.

use crate::error::{invalid, Result};

/// Default `--vanish-eps`: |g| below this counts as vanished.
pub const VANISH_EPS: f32 = 1e-7;

/// One pass over a gradient vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradStats {
    /// ‖g‖₂ = sqrt(Σ g²), summed with scaling so finite |g| up to 1e30 never
    /// overflows; NaN if any g is NaN, +inf if any is ±inf.
    pub l2_norm: f64,
    /// max |g| (NaN or inf as for the norm).
    pub max_abs: f64,
    /// How many g are NaN.
    pub nan_count: u64,
    /// How many g are ±inf.
    pub inf_count: u64,
    /// Share of g with |g| < eps (NaN counts as not vanished).
    pub vanishing_fraction: f64,
    /// Number of values.
    pub n: u64,
}

impl GradStats {
    /// The statistics of two parts of one gradient together: norms combine
    /// as sqrt(a² + b²) (scaled so neither overflows), the maxima and counts
    /// as they are, the vanishing shares weighted by their parts' sizes.
    pub fn merge(&self, other: &GradStats) -> GradStats {
        let (a, b) = (self.l2_norm, other.l2_norm);
        let big = a.abs().max(b.abs());
        let l2_norm = if big == 0.0 || !big.is_finite() || a.is_nan() || b.is_nan() {
            a + b // 0, or NaN/inf propagated
        } else {
            big * ((a / big).powi(2) + (b / big).powi(2)).sqrt()
        };
        let n = self.n + other.n;
        let vanishing = |g: &GradStats| g.vanishing_fraction * g.n as f64;
        GradStats {
            l2_norm,
            max_abs: if self.max_abs.is_nan() || other.max_abs.is_nan() {
                f64::NAN
            } else {
                self.max_abs.max(other.max_abs)
            },
            nan_count: self.nan_count + other.nan_count,
            inf_count: self.inf_count + other.inf_count,
            vanishing_fraction: if n == 0 {
                0.0
            } else {
                (vanishing(self) + vanishing(other)) / n as f64
            },
            n,
        }
    }

    /// Whether every value was finite.
    pub fn is_finite(&self) -> bool {
        self.nan_count == 0 && self.inf_count == 0
    }

    /// Applies the NaN/inf rule to the norm and max of the finite values.
    pub(crate) fn from_parts(
        norm: f64,
        max: f64,
        nan: u64,
        inf: u64,
        small: u64,
        n: u64,
    ) -> GradStats {
        let poison = |v: f64| match (nan, inf) {
            (0, 0) => v,
            (0, _) => f64::INFINITY,
            _ => f64::NAN,
        };
        GradStats {
            l2_norm: poison(norm),
            max_abs: poison(max),
            nan_count: nan,
            inf_count: inf,
            vanishing_fraction: small as f64 / n as f64,
            n,
        }
    }
}

/// How to clip a gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clip {
    /// Clamp every value to [−c, c] (NaN stays NaN).
    Value(f32),
    /// Scale by min(1, c/(‖g‖ + 1e-6)) (PyTorch's clip_grad_norm_ rule).
    Norm(f32),
}

impl Clip {
    /// c must be finite and > 0.
    pub fn validate(self) -> Result<()> {
        let (name, c) = match self {
            Clip::Value(c) => ("--max-value", c),
            Clip::Norm(c) => ("--max-norm", c),
        };
        if !(c > 0.0 && c.is_finite()) {
            return Err(invalid!(
                "clip: {name} must be a finite number > 0, got {c:?}"
            ));
        }
        Ok(())
    }
}

/// The factor clip-by-norm multiplies by: min(1, c/(‖g‖ + 1e-6)), as
/// PyTorch's `clip_grad_norm_` computes it: NaN for a NaN norm (every value
/// becomes NaN), 0 for an infinite one (finite values become 0, infinite
/// ones NaN).
pub fn clip_coefficient(norm: f64, max_norm: f32) -> f64 {
    if norm.is_nan() {
        return f64::NAN;
    }
    (max_norm as f64 / (norm + 1e-6)).min(1.0)
}

/// Thresholds of the health report; the defaults follow the usual symptoms
/// (a loss turning NaN, gradients growing fast from layer to layer, large
/// per-layer norms, gradients near 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthThresholds {
    /// |g| below this counts as vanished (default 1e-7).
    pub vanish_eps: f32,
    /// A layer whose share of vanished values is at least this is vanishing
    /// (default 0.9).
    pub vanish_fraction: f64,
    /// A layer whose norm is below this is vanishing (default 1e-6).
    pub vanish_norm: f64,
    /// A layer whose norm is above this is exploding (default 1e3).
    pub explode_norm: f64,
    /// A layer whose norm is more than this many times the next layer's
    /// (towards the output) is exploding; less than its inverse, vanishing
    /// (default 10).
    pub growth: f64,
    /// A layer whose norm is more than this many times the last layer's (the
    /// output, where backpropagation starts) is exploding; less than its
    /// inverse, vanishing (default 1e3: ten sigmoid layers, each scaling by
    /// at most 0.25, shrink the gradient by ~1e-6).
    pub depth_ratio: f64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            vanish_eps: VANISH_EPS,
            vanish_fraction: 0.9,
            vanish_norm: 1e-6,
            explode_norm: 1e3,
            growth: 10.0,
            depth_ratio: 1e3,
        }
    }
}

/// A layer's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing above a threshold.
    Healthy,
    /// Norm above `explode_norm`, growing more than `growth`× per layer, or
    /// more than `depth_ratio`× the output layer's.
    Exploding,
    /// Norm below `vanish_norm`, mostly vanished values, shrinking more than
    /// `growth`× per layer, or below 1/`depth_ratio` of the output layer's.
    Vanishing,
    /// NaN or ±inf present.
    NonFinite,
}

impl Verdict {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Exploding => "exploding",
            Verdict::Vanishing => "vanishing",
            Verdict::NonFinite => "non-finite",
        }
    }
}

/// One layer of a [`HealthReport`].
#[derive(Debug, Clone, PartialEq)]
pub struct LayerHealth {
    /// The layer's statistics.
    pub stats: GradStats,
    /// ‖g_i‖ / ‖g_{i+1}‖: how much the gradient grew flowing back into this
    /// layer from the next (None for the last layer).
    pub ratio: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
}

/// Per-layer gradient health, layers in network order (input first).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// One entry per layer.
    pub layers: Vec<LayerHealth>,
    /// The worst verdict: non-finite, then exploding, then vanishing.
    pub verdict: Verdict,
}

impl HealthReport {
    /// Judges per-layer statistics with the thresholds.
    pub fn judge(stats: Vec<GradStats>, t: &HealthThresholds) -> HealthReport {
        let norms: Vec<f64> = stats.iter().map(|s| s.l2_norm).collect();
        let last = norms.last().copied().unwrap_or(f64::NAN);
        let layers: Vec<LayerHealth> = stats
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let ratio = norms.get(i + 1).map(|next| s.l2_norm / next);
                let depth = s.l2_norm / last;
                let verdict = if !s.is_finite() {
                    Verdict::NonFinite
                } else if s.l2_norm > t.explode_norm
                    || ratio.is_some_and(|r| r > t.growth)
                    || depth > t.depth_ratio
                {
                    Verdict::Exploding
                } else if s.l2_norm < t.vanish_norm
                    || s.vanishing_fraction >= t.vanish_fraction
                    || ratio.is_some_and(|r| r < 1.0 / t.growth)
                    || depth < 1.0 / t.depth_ratio
                {
                    Verdict::Vanishing
                } else {
                    Verdict::Healthy
                };
                LayerHealth {
                    stats: s,
                    ratio,
                    verdict,
                }
            })
            .collect();
        let worst = [Verdict::NonFinite, Verdict::Exploding, Verdict::Vanishing]
            .into_iter()
            .find(|v| layers.iter().any(|l| l.verdict == *v))
            .unwrap_or(Verdict::Healthy);
        HealthReport {
            layers,
            verdict: worst,
        }
    }
}

/// The vanishing threshold of [`crate::Engine::grad_stats`] must be a finite
/// number ≥ 0.
pub fn check_vanish_eps(eps: f32) -> Result<()> {
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(invalid!(
            "--vanish-eps must be a finite number >= 0, got {eps:?}"
        ));
    }
    Ok(())
}
