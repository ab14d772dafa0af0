//! Losses and metrics: the single source of truth for their names,
//! parameters, input rules and shader specialisation. The CPU formulas live in
//! `src/cpu/loss.rs` and `src/cpu/rows.rs`, the WGSL in `shaders/loss.wgsl`
//! and `shaders/rows.wgsl`.

use super::ids::{kernel_ids, op_enum};
use crate::error::{invalid, Result};

op_enum! {
    /// A loss or metric with its parameters (SPEC §1). `p` is the prediction,
    /// `t` the target, `e = t − p`.
    ///
    /// Pointwise losses take 1-D `pred`/`target` of equal length; the multi-class
    /// ones ([`Loss::CrossEntropy`], [`Loss::KlDiv`], [`Loss::Entropy`],
    /// [`Loss::Nll`], [`Loss::MultiMargin`] and [`Loss::ZeroOne`] with
    /// class targets) take n×m row-major scores and give
    /// one loss per row. [`Loss::ALL`] lists every loss with its default
    /// parameters, [`Loss::NAMES`] their CLI names.
    #[derive(Debug, Clone, Copy, PartialEq)]
    #[non_exhaustive]
    pub enum Loss {
        /// 1 if t·p ≤ 0 else 0 (t ∈ {−1, +1}). With n×m scores and class targets:
        /// 1 if argmax_j p_j ≠ t (first max wins). Derivative 0.
        ZeroOne => "zero-one",
        /// max(0, 1 − t·p); d/dp = −t if t·p < 1 else 0.
        Hinge => "hinge",
        /// max(0, 1 − t·p)²; d/dp = −2t·max(0, 1 − t·p).
        SquaredHinge => "squared-hinge",
        /// exp(−t·p); d/dp = −t·exp(−t·p). Saturates to +inf where −t·p > 88.72
        /// (the f32 range).
        Exponential => "exponential",
        /// log(1 + exp(−t·p)) = softplus(−t·p); d/dp = −t·σ(−t·p).
        Logistic => "logistic",
        /// −[t·logσ(p) + (1−t)·logσ(−p)] = t·softplus(−p) + (1−t)·softplus(p),
        /// t ∈ [0, 1]; d/dp = σ(p) − t. Also n×m multi-label logits
        /// ([`crate::LossInput::rows`], pointwise over the n·m values), with
        /// PyTorch's `pos_weight` ([`crate::LossInput::with_pos_weight`]).
        BceLogits => "bce-logits",
        /// −[t·max(log p, −100) + (1−t)·max(log(1−p), −100)], p, t ∈ [0, 1]
        /// (PyTorch's clamp); d/dp = (p − t)/max(p(1−p), 1e-12).
        Bce => "bce",
        /// Multi-class: class targets give logsumexp(p) − p_t; probability
        /// targets give −Σ_j t_j·log softmax(p)_j. d/dp_j = softmax(p)_j − t_j.
        /// It takes PyTorch's `weight=`, `ignore_index` (class targets) and
        /// `label_smoothing`, and PaLM's z-loss
        /// ([`crate::LossInput::with_class_weights`],
        /// [`crate::LossInput::with_ignore_index`],
        /// [`crate::LossInput::with_label_smoothing`],
        /// [`crate::LossInput::with_z_loss`]).
        CrossEntropy => "cross-entropy",
        /// Σ_j t_j·(log t_j − log q_j) with q = pred, 0·log 0 = 0; d/dq_j = −t_j/q_j.
        /// PyTorch's `kl_div` takes log q: give it with
        /// [`crate::LossInput::with_log_input`] (then d/dp_j = −t_j), and a
        /// log target with [`crate::LossInput::with_log_target`].
        KlDiv => "kl-div",
        /// −Σ_j p_j log p_j of each row of `pred` (no target); d/dp_j = −(log p_j + 1).
        Entropy => "entropy",
        /// PyTorch's NLLLoss: rows of `pred` are log-probabilities and the
        /// target one class index per row; the row's loss is −p_t and
        /// d/dp_j = −[j = t]. Only p_t is read, so a NaN elsewhere in the row
        /// does not reach the loss (as in PyTorch). nll of log_softmax(z)
        /// equals cross-entropy of z. Takes class weights and an ignore
        /// index ([`crate::LossInput::with_class_weights`],
        /// [`crate::LossInput::with_ignore_index`]).
        Nll => "nll",
        /// PyTorch's MultiMarginLoss (multi-class hinge): rows of `pred` are
        /// scores, the target one class index t per row; the row's loss is
        /// w\[t\]·Σ_{j≠t} max(0, M − p_t + p_j)^P / m with margin M (default
        /// 1, finite) and power P ∈ {1, 2} (default 1), w the class weights
        /// (1 without). With h_j = max(0, M − p_t + p_j):
        /// d/dp_j = w\[t\]·P·h_j^(P−1)/m for j ≠ t where h_j > 0 (0 at the
        /// kink), d/dp_t = −Σ_{j≠t} of those. `mean` divides by Σ aᵢ (the
        /// rows, as PyTorch), not by the class weights. A NaN in a row
        /// makes its loss NaN (PyTorch's kernel skips it).
        MultiMargin {
            /// The margin M.
            margin: f32 = 1.0,
            /// The power P, 1 or 2.
            power: u32 = 1,
        } => "multi-margin",
        /// ½e²; d/dp = −e.
        Squared => "squared",
        /// e²; d/dp = −2e.
        Mse => "mse",
        /// sqrt(Σwᵢeᵢ²/Σwᵢ), a metric: reduction mean only; d/dpᵢ = −wᵢeᵢ/(Σw·rmse)
        /// (0 where rmse = 0).
        Rmse => "rmse",
        /// |e|; d/dp = −sign(e).
        Mae => "mae",
        /// 100·|e|/max(|t|, ε), ε = 1.1920929e-7; d/dp = −100·sign(e)/max(|t|, ε).
        Mape => "mape",
        /// 100·|e|/((|t|+|p|)/2), 0 where t = p = 0;
        /// d/dp = 200·[−sign(e)(|t|+|p|) − |e|·sign(p)]/(|t|+|p|)², evaluated in
        /// the equal, cancellation-free form −200·sign(e)·(|t| + t·sign(p))/(|t|+|p|)².
        Smape => "smape",
        /// ½e² if |e| ≤ δ else δ(|e| − ½δ); d/dp = −e or −δ·sign(e). δ > 0, default 1.
        Huber {
            /// The threshold δ.
            delta: f32 = 1.0,
        } => "huber",
        /// log(cosh(e)) = |e| + softplus(−2|e|) − log 2; d/dp = −tanh(e).
        LogCosh => "log-cosh",
        /// Pinball: γe if e ≥ 0 else (γ − 1)e; d/dp = −γ or 1 − γ. γ ∈ (0, 1),
        /// default 0.5.
        Quantile {
            /// The quantile γ.
            gamma: f32 = 0.5,
        } => "quantile",
        /// PyTorch's SmoothL1Loss: ½e²/β if |e| < β else |e| − ½β;
        /// d/dp = −e/β or −sign(e). β ≥ 0, default 1; β = 0 is plain L1 (mae),
        /// as in PyTorch. Huber with δ = β is β times smooth-l1.
        SmoothL1 {
            /// The threshold β.
            beta: f32 = 1.0,
        } => "smooth-l1",
    }
}

/// Every CLI name, in SPEC order ([`Loss::NAMES`]).
pub const LOSS_NAMES: &[&str] = Loss::NAMES;

kernel_ids! {
    /// The per-element terms of `shaders/terms.wgsl` (`loss_term`,
    /// `loss_term_grad`) and of their f64 twins: the pointwise losses, then
    /// two internal terms.
    pub(crate) enum Term("TERM") {
        ZeroOne,
        Hinge,
        SquaredHinge,
        Exponential,
        Logistic,
        BceLogits,
        Bce,
        Squared,
        Mse,
        Mae,
        Mape,
        Smape,
        Huber,
        LogCosh,
        Quantile,
        SmoothL1,
        /// l = p: sums row losses already evaluated.
        Identity,
        /// l = t·p where p ≤ 0: prelu's dα with t the upstream gradient.
        PreluDalpha,
    }
}

kernel_ids! {
    /// The row ops of `shaders/rows.wgsl`.
    pub(crate) enum RowOp("ROW") {
        /// zero-one on class targets: argmax ≠ t.
        Argmax,
        /// cross-entropy on class targets.
        CeClass,
        /// cross-entropy on probability targets.
        CeProb,
        /// kl-div.
        Kl,
        /// entropy.
        Entropy,
        /// nll: −p_t of log-probabilities.
        Nll,
        /// multi-margin: the multi-class hinge.
        MultiMargin,
    }
}

impl RowOp {
    /// Whether the target holds one class index per row.
    pub(crate) fn class_target(self) -> bool {
        matches!(
            self,
            RowOp::Argmax | RowOp::CeClass | RowOp::Nll | RowOp::MultiMargin
        )
    }
}

/// ε of `mape`: the f32 machine epsilon.
pub const MAPE_EPS: f32 = f32::EPSILON;

/// Optional loss parameters as given on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossParams {
    /// `--delta` for huber.
    pub delta: Option<f32>,
    /// `--quantile` for quantile.
    pub quantile: Option<f32>,
    /// `--beta` for smooth-l1.
    pub beta: Option<f32>,
    /// `--margin` for multi-margin.
    pub margin: Option<f32>,
    /// `--power` for multi-margin (1 or 2).
    pub power: Option<u32>,
}

impl Loss {
    /// Builds a loss from its CLI name and parameters (defaults for those
    /// not given) and validates it. A parameter the loss does not have is an
    /// error, not silently ignored.
    pub fn from_name(name: &str, p: LossParams) -> Result<Self> {
        let mut loss = Loss::with_defaults(name).ok_or_else(|| {
            invalid!(
                "unknown loss '{name}' (expected one of: {})",
                Loss::NAMES.join(", ")
            )
        })?;
        let given = [
            ("--delta", p.delta),
            ("--quantile", p.quantile),
            ("--beta", p.beta),
            ("--margin", p.margin),
        ];
        match (&mut loss, p.power) {
            (Loss::MultiMargin { power, .. }, Some(p)) => *power = p,
            (_, Some(_)) => return Err(invalid!("{name} takes no --power")),
            _ => {}
        }
        let own = match &mut loss {
            Loss::Huber { delta } => Some(("--delta", delta)),
            Loss::Quantile { gamma } => Some(("--quantile", gamma)),
            Loss::SmoothL1 { beta } => Some(("--beta", beta)),
            Loss::MultiMargin { margin, .. } => Some(("--margin", margin)),
            _ => None,
        };
        for (flag, value) in given {
            match (&own, value) {
                (_, None) => {}
                (Some((own_flag, _)), Some(_)) if *own_flag == flag => {}
                _ => return Err(invalid!("{name} takes no {flag}")),
            }
        }
        if let Some((flag, field)) = own {
            let value = given.iter().find(|(f, _)| *f == flag).and_then(|g| g.1);
            *field = value.unwrap_or(*field);
        }
        loss.validate()?;
        Ok(loss)
    }

    /// Whether the loss has a per-element form on 1-D predictions and
    /// targets: every loss but cross-entropy, kl-div, entropy, nll and
    /// multi-margin.
    pub fn is_pointwise(&self) -> bool {
        self.term().is_some()
    }

    /// The term of `shaders/terms.wgsl` a pointwise loss sums (None for the
    /// row losses cross-entropy, kl-div, entropy, nll and multi-margin).
    pub(crate) fn term(&self) -> Option<Term> {
        Some(match self {
            Loss::ZeroOne => Term::ZeroOne,
            Loss::Hinge => Term::Hinge,
            Loss::SquaredHinge => Term::SquaredHinge,
            Loss::Exponential => Term::Exponential,
            Loss::Logistic => Term::Logistic,
            Loss::BceLogits => Term::BceLogits,
            Loss::Bce => Term::Bce,
            Loss::CrossEntropy
            | Loss::KlDiv
            | Loss::Entropy
            | Loss::Nll
            | Loss::MultiMargin { .. } => return None,
            Loss::Squared => Term::Squared,
            // rmse sums e² and takes the root on the host.
            Loss::Mse | Loss::Rmse => Term::Mse,
            Loss::Mae => Term::Mae,
            Loss::Mape => Term::Mape,
            Loss::Smape => Term::Smape,
            Loss::Huber { .. } => Term::Huber,
            Loss::LogCosh => Term::LogCosh,
            Loss::Quantile { .. } => Term::Quantile,
            Loss::SmoothL1 { .. } => Term::SmoothL1,
        })
    }

    /// Checks the parameters: δ > 0 (finite) for huber, γ ∈ (0, 1) for quantile.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Loss::Huber { delta } if !(delta > 0.0 && delta.is_finite()) => Err(invalid!(
                "huber: --delta must be a finite number > 0, got {delta:?}"
            )),
            Loss::Quantile { gamma } if !(gamma > 0.0 && gamma < 1.0) => Err(invalid!(
                "quantile: --quantile must be in (0, 1), got {gamma:?}"
            )),
            Loss::SmoothL1 { beta } if !(beta >= 0.0 && beta.is_finite()) => Err(invalid!(
                "smooth-l1: --beta must be a finite number >= 0, got {beta:?}"
            )),
            Loss::MultiMargin { margin, .. } if !margin.is_finite() => Err(invalid!(
                "multi-margin: --margin must be a finite number, got {margin:?}"
            )),
            Loss::MultiMargin { power, .. } if power != 1 && power != 2 => Err(invalid!(
                "multi-margin: --power must be 1 or 2, got {power}"
            )),
            _ => Ok(()),
        }
    }

    /// The one f32 parameter the shaders read (δ, γ or β).
    pub(crate) fn param(&self) -> f32 {
        match *self {
            Loss::Huber { delta } => delta,
            Loss::Quantile { gamma } => gamma,
            Loss::SmoothL1 { beta } => beta,
            // The neutral pos_weight.
            Loss::BceLogits => 1.0,
            _ => 0.0,
        }
    }

    /// Whether class weights also weigh the mean's denominator
    /// (cross-entropy and nll, as PyTorch; multi-margin divides by rows).
    pub(crate) fn mean_by_class_weight(&self) -> bool {
        matches!(self, Loss::CrossEntropy | Loss::Nll)
    }

    /// Allowed values of the prediction.
    pub(crate) fn pred_domain(&self) -> Domain {
        match self {
            Loss::Bce | Loss::KlDiv | Loss::Entropy => Domain::Unit,
            _ => Domain::Any,
        }
    }

    /// Allowed values of a real target.
    pub(crate) fn target_domain(&self) -> Domain {
        match self {
            Loss::ZeroOne
            | Loss::Hinge
            | Loss::SquaredHinge
            | Loss::Exponential
            | Loss::Logistic => Domain::Sign,
            Loss::BceLogits | Loss::Bce | Loss::CrossEntropy | Loss::KlDiv => Domain::Unit,
            _ => Domain::Any,
        }
    }
}

kernel_ids! {
    /// The allowed values of an input (override `PRED_DOMAIN`,
    /// `TARGET_DOMAIN` of `shaders/loss.wgsl`).
    pub(crate) enum Domain("DOMAIN") {
        Any,
        /// exactly −1 or +1
        Sign,
        /// [0, 1]
        Unit,
        /// ≤ 0: the log of a probability
        NonPositive,
    }
}

impl Domain {
    /// NaN is allowed everywhere: it propagates to the result.
    #[inline]
    pub(crate) fn contains(self, v: f32) -> bool {
        v.is_nan()
            || match self {
                Domain::Any => true,
                Domain::Sign => v == 1.0 || v == -1.0,
                Domain::Unit => (0.0..=1.0).contains(&v),
                Domain::NonPositive => v <= 0.0,
            }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Domain::Any => "any value",
            Domain::Sign => "-1 or +1",
            Domain::Unit => "in [0, 1]",
            Domain::NonPositive => "<= 0, a log-probability",
        }
    }
}
