//! Losses and metrics: the single source of truth for their names,
//! parameters, input rules and shader specialisation. The CPU formulas live in
//! `src/cpu/loss.rs` and `src/cpu/rows.rs`, the WGSL in `shaders/loss.wgsl`
//! and `shaders/rows.wgsl`.

use crate::error::{invalid, Result};

/// A loss or metric with its parameters (SPEC §1). `p` is the prediction,
/// `t` the target, `e = t − p`.
///
/// Pointwise losses take 1-D `pred`/`target` of equal length; the multi-class
/// ones ([`Loss::CrossEntropy`], [`Loss::KlDiv`], [`Loss::Entropy`] and
/// [`Loss::ZeroOne`] with class targets) take n×m row-major scores and give
/// one loss per row.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Loss {
    /// 1 if t·p ≤ 0 else 0 (t ∈ {−1, +1}). With n×m scores and class targets:
    /// 1 if argmax_j p_j ≠ t (first max wins). Derivative 0.
    ZeroOne,
    /// max(0, 1 − t·p); d/dp = −t if t·p < 1 else 0.
    Hinge,
    /// max(0, 1 − t·p)²; d/dp = −2t·max(0, 1 − t·p).
    SquaredHinge,
    /// exp(−t·p); d/dp = −t·exp(−t·p). Saturates to +inf where −t·p > 88.72
    /// (the f32 range).
    Exponential,
    /// log(1 + exp(−t·p)) = softplus(−t·p); d/dp = −t·σ(−t·p).
    Logistic,
    /// −[t·logσ(p) + (1−t)·logσ(−p)] = t·softplus(−p) + (1−t)·softplus(p),
    /// t ∈ [0, 1]; d/dp = σ(p) − t.
    BceLogits,
    /// −[t·max(log p, −100) + (1−t)·max(log(1−p), −100)], p, t ∈ [0, 1]
    /// (PyTorch's clamp); d/dp = (p − t)/max(p(1−p), 1e-12).
    Bce,
    /// Multi-class: class targets give logsumexp(p) − p_t; probability
    /// targets give −Σ_j t_j·log softmax(p)_j. d/dp_j = softmax(p)_j − t_j.
    CrossEntropy,
    /// Σ_j t_j·(log t_j − log q_j) with q = pred, 0·log 0 = 0; d/dq_j = −t_j/q_j.
    KlDiv,
    /// −Σ_j p_j log p_j of each row of `pred` (no target); d/dp_j = −(log p_j + 1).
    Entropy,
    /// ½e²; d/dp = −e.
    Squared,
    /// e²; d/dp = −2e.
    Mse,
    /// sqrt(Σwᵢeᵢ²/Σwᵢ), a metric: reduction mean only; d/dpᵢ = −wᵢeᵢ/(Σw·rmse)
    /// (0 where rmse = 0).
    Rmse,
    /// |e|; d/dp = −sign(e).
    Mae,
    /// 100·|e|/max(|t|, ε), ε = 1.1920929e-7; d/dp = −100·sign(e)/max(|t|, ε).
    Mape,
    /// 100·|e|/((|t|+|p|)/2), 0 where t = p = 0;
    /// d/dp = 200·[−sign(e)(|t|+|p|) − |e|·sign(p)]/(|t|+|p|)², evaluated in
    /// the equal, cancellation-free form −200·sign(e)·(|t| + t·sign(p))/(|t|+|p|)².
    Smape,
    /// ½e² if |e| ≤ δ else δ(|e| − ½δ); d/dp = −e or −δ·sign(e). δ > 0, default 1.
    Huber {
        /// The threshold δ.
        delta: f32,
    },
    /// log(cosh(e)) = |e| + softplus(−2|e|) − log 2; d/dp = −tanh(e).
    LogCosh,
    /// Pinball: γe if e ≥ 0 else (γ − 1)e; d/dp = −γ or 1 − γ. γ ∈ (0, 1),
    /// default 0.5.
    Quantile {
        /// The quantile γ.
        gamma: f32,
    },
}

/// Every CLI name, in SPEC order.
pub const LOSS_NAMES: [&str; 19] = [
    "zero-one",
    "hinge",
    "squared-hinge",
    "exponential",
    "logistic",
    "bce-logits",
    "bce",
    "cross-entropy",
    "kl-div",
    "entropy",
    "squared",
    "mse",
    "rmse",
    "mae",
    "mape",
    "smape",
    "huber",
    "log-cosh",
    "quantile",
];

/// ε of `mape`: the f32 machine epsilon.
pub const MAPE_EPS: f32 = f32::EPSILON;

/// The allowed values of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Domain {
    Any,
    /// exactly −1 or +1
    Sign,
    /// [0, 1]
    Unit,
}

impl Domain {
    pub(crate) fn shader_id(self) -> u32 {
        match self {
            Domain::Any => 0,
            Domain::Sign => 1,
            Domain::Unit => 2,
        }
    }

    /// NaN is allowed everywhere: it propagates to the result.
    pub(crate) fn contains(self, v: f32) -> bool {
        v.is_nan()
            || match self {
                Domain::Any => true,
                Domain::Sign => v == 1.0 || v == -1.0,
                Domain::Unit => (0.0..=1.0).contains(&v),
            }
    }

    fn describe(self) -> &'static str {
        match self {
            Domain::Any => "any value",
            Domain::Sign => "-1 or +1",
            Domain::Unit => "in [0, 1]",
        }
    }
}

/// The target of a loss.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// No target (`entropy`).
    None,
    /// Real targets: one per element of `pred` (labels, values or
    /// probabilities).
    Values(&'a [f32]),
    /// One class index in [0, m) per row of n×m `pred` (`cross-entropy`,
    /// `zero-one`).
    Classes(&'a [u32]),
}

/// The data a loss is evaluated on.
#[derive(Debug, Clone, Copy)]
pub struct LossInput<'a> {
    /// Predictions: n values, or n×m row-major scores.
    pub pred: &'a [f32],
    /// Columns m of `pred` (1 for pointwise losses).
    pub cols: usize,
    /// The target.
    pub target: Target<'a>,
    /// Optional per-sample (per-row) weights, each ≥ 0.
    pub weights: Option<&'a [f32]>,
}

impl<'a> LossInput<'a> {
    /// 1-D predictions and targets of equal length.
    pub fn new(pred: &'a [f32], target: &'a [f32]) -> Self {
        LossInput {
            pred,
            cols: 1,
            target: Target::Values(target),
            weights: None,
        }
    }

    /// n×m scores with one class index per row.
    pub fn classes(pred: &'a [f32], cols: usize, classes: &'a [u32]) -> Self {
        LossInput {
            pred,
            cols,
            target: Target::Classes(classes),
            weights: None,
        }
    }

    /// n×m scores (or distributions) with an n×m target.
    pub fn rows(pred: &'a [f32], cols: usize, target: &'a [f32]) -> Self {
        LossInput {
            pred,
            cols,
            target: Target::Values(target),
            weights: None,
        }
    }

    /// n×m distributions, no target (`entropy`).
    pub fn unlabelled(pred: &'a [f32], cols: usize) -> Self {
        LossInput {
            pred,
            cols,
            target: Target::None,
            weights: None,
        }
    }

    /// The same input with per-sample weights.
    pub fn with_weights(self, weights: &'a [f32]) -> Self {
        LossInput {
            weights: Some(weights),
            ..self
        }
    }
}

/// How a loss walks its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// One term per element: `shaders/loss.wgsl` op id.
    Pointwise(u32),
    /// One term per row of n×m: `shaders/rows.wgsl` op id.
    Rows(u32),
}

/// Row ops of `shaders/rows.wgsl`.
pub(crate) const ROW_ARGMAX: u32 = 0;
pub(crate) const ROW_CE_CLASS: u32 = 1;
pub(crate) const ROW_CE_PROB: u32 = 2;
pub(crate) const ROW_KL: u32 = 3;
pub(crate) const ROW_ENTROPY: u32 = 4;

/// Internal pointwise ops of `shaders/loss.wgsl` beyond the named losses.
pub(crate) const OP_IDENTITY: u32 = 16;
/// The exponential loss's pointwise id: its reduction keeps a scaled sum.
pub(crate) const OP_EXPONENTIAL: u32 = 3;
pub(crate) const OP_PRELU_DALPHA: u32 = 17;

/// What a loss's target holds, without the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetKind {
    None,
    Values,
    Classes,
}

/// The validated shape of a [`LossInput`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub rows: usize,
    pub cols: usize,
    pub form: Form,
}

/// Optional loss parameters as given on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossParams {
    /// `--delta` for huber.
    pub delta: Option<f32>,
    /// `--quantile` for quantile.
    pub quantile: Option<f32>,
}

impl Loss {
    /// Builds a loss from its CLI name and parameters (SPEC defaults for
    /// those not given) and validates it.
    pub fn from_name(name: &str, p: LossParams) -> Result<Self> {
        let loss = match name {
            "zero-one" => Loss::ZeroOne,
            "hinge" => Loss::Hinge,
            "squared-hinge" => Loss::SquaredHinge,
            "exponential" => Loss::Exponential,
            "logistic" => Loss::Logistic,
            "bce-logits" => Loss::BceLogits,
            "bce" => Loss::Bce,
            "cross-entropy" => Loss::CrossEntropy,
            "kl-div" => Loss::KlDiv,
            "entropy" => Loss::Entropy,
            "squared" => Loss::Squared,
            "mse" => Loss::Mse,
            "rmse" => Loss::Rmse,
            "mae" => Loss::Mae,
            "mape" => Loss::Mape,
            "smape" => Loss::Smape,
            "huber" => Loss::Huber {
                delta: p.delta.unwrap_or(1.0),
            },
            "log-cosh" => Loss::LogCosh,
            "quantile" => Loss::Quantile {
                gamma: p.quantile.unwrap_or(0.5),
            },
            _ => {
                return Err(invalid!(
                    "unknown loss '{name}' (expected one of: {})",
                    LOSS_NAMES.join(", ")
                ))
            }
        };
        loss.validate()?;
        Ok(loss)
    }

    /// The CLI name.
    pub fn name(&self) -> &'static str {
        LOSS_NAMES[self.index()]
    }

    fn index(&self) -> usize {
        match self {
            Loss::ZeroOne => 0,
            Loss::Hinge => 1,
            Loss::SquaredHinge => 2,
            Loss::Exponential => 3,
            Loss::Logistic => 4,
            Loss::BceLogits => 5,
            Loss::Bce => 6,
            Loss::CrossEntropy => 7,
            Loss::KlDiv => 8,
            Loss::Entropy => 9,
            Loss::Squared => 10,
            Loss::Mse => 11,
            Loss::Rmse => 12,
            Loss::Mae => 13,
            Loss::Mape => 14,
            Loss::Smape => 15,
            Loss::Huber { .. } => 16,
            Loss::LogCosh => 17,
            Loss::Quantile { .. } => 18,
        }
    }

    /// The `shaders/loss.wgsl` op of a pointwise loss (None for the row
    /// losses cross-entropy, kl-div and entropy).
    pub(crate) fn pointwise_id(&self) -> Option<u32> {
        match self {
            Loss::CrossEntropy | Loss::KlDiv | Loss::Entropy => None,
            _ => Some(self.index() as u32 - pointwise_offset(self.index())),
        }
    }

    /// Checks the parameters: δ > 0 (finite) for huber, γ ∈ (0, 1) for quantile.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Loss::Huber { delta } if !(delta > 0.0 && delta.is_finite()) => Err(invalid!(
                "huber: --delta must be a finite number > 0, got {delta}"
            )),
            Loss::Quantile { gamma } if !(gamma > 0.0 && gamma < 1.0) => Err(invalid!(
                "quantile: --quantile must be in (0, 1), got {gamma}"
            )),
            _ => Ok(()),
        }
    }

    /// The one f32 parameter the shaders read (δ or γ).
    pub(crate) fn param(&self) -> f32 {
        match *self {
            Loss::Huber { delta } => delta,
            Loss::Quantile { gamma } => gamma,
            _ => 0.0,
        }
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

    /// Checks lengths and shapes (values are checked during the pass) and
    /// says which kernel family evaluates the input.
    pub(crate) fn shape(&self, input: &LossInput) -> Result<Shape> {
        let name = self.name();
        let len = input.pred.len();
        if len == 0 {
            return Err(invalid!("{name}: the prediction is empty"));
        }
        let cols = input.cols;
        if cols == 0 || !len.is_multiple_of(cols) {
            return Err(invalid!(
                "{name}: the prediction has {len} values, not a multiple of {cols} columns"
            ));
        }
        let rows = len / cols;
        let kind = match input.target {
            Target::None => TargetKind::None,
            Target::Values(_) => TargetKind::Values,
            Target::Classes(_) => TargetKind::Classes,
        };
        let form = self.form(kind, cols)?;
        match input.target {
            Target::Values(t) if t.len() != len => {
                return Err(invalid!(
                    "{name}: the target has {} values but the prediction has {len}",
                    t.len()
                ))
            }
            Target::Classes(c) if c.len() != rows => {
                return Err(invalid!(
                    "{name}: {} class indices for {rows} rows of predictions",
                    c.len()
                ))
            }
            _ => {}
        }
        if let Some(w) = input.weights {
            if w.len() != rows {
                return Err(invalid!("{name}: {} weights for {rows} samples", w.len()));
            }
        }
        Ok(Shape { rows, cols, form })
    }

    /// How the kernels evaluate this loss with a target of `kind` and rows
    /// of `cols` values.
    pub(crate) fn form(&self, kind: TargetKind, cols: usize) -> Result<Form> {
        let name = self.name();
        Ok(match (self, kind) {
            (Loss::Entropy, TargetKind::None) => Form::Rows(ROW_ENTROPY),
            (Loss::Entropy, _) => {
                return Err(invalid!("entropy takes no target (only --pred)"));
            }
            (_, TargetKind::None) => return Err(invalid!("{name} needs a target")),
            (Loss::ZeroOne, TargetKind::Classes) => Form::Rows(ROW_ARGMAX),
            (Loss::CrossEntropy, TargetKind::Classes) => Form::Rows(ROW_CE_CLASS),
            (Loss::CrossEntropy, TargetKind::Values) => Form::Rows(ROW_CE_PROB),
            (Loss::KlDiv, TargetKind::Values) => Form::Rows(ROW_KL),
            (Loss::KlDiv, TargetKind::Classes) => {
                return Err(invalid!(
                    "kl-div needs a target distribution, not class indices"
                ))
            }
            (_, TargetKind::Classes) => {
                return Err(invalid!("{name} needs real targets, not class indices"))
            }
            (_, TargetKind::Values) => {
                if cols != 1 {
                    return Err(invalid!(
                        "{name} is pointwise: give 1-D predictions (cols = 1), got {cols} columns"
                    ));
                }
                Form::Pointwise(self.pointwise_id().unwrap_or(u32::MAX))
            }
        })
    }

    /// The message for a value outside its domain found at `index`.
    pub(crate) fn domain_error(
        &self,
        what: &str,
        domain: Domain,
        index: usize,
        value: f32,
    ) -> crate::Error {
        invalid!(
            "{}: {what}[{index}] = {value} is outside the allowed values ({})",
            self.name(),
            domain.describe()
        )
    }
}

/// Pointwise shader ids are the loss indices with the three row losses
/// (cross-entropy, kl-div, entropy) skipped.
fn pointwise_offset(index: usize) -> u32 {
    if index > 9 {
        3
    } else {
        0
    }
}

/// The message for a class index ≥ m found at row `index`.
pub(crate) fn class_error(loss: &Loss, index: usize, value: u32, cols: usize) -> crate::Error {
    invalid!(
        "{}: target[{index}] = {value} is not a class index in [0, {cols})",
        loss.name()
    )
}

/// The message for a negative weight at `index`.
pub(crate) fn weight_error(loss: &Loss, index: usize, value: f32) -> crate::Error {
    invalid!(
        "{}: weights[{index}] = {value} is negative (weights must be >= 0)",
        loss.name()
    )
}
