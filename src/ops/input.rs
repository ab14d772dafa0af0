//! A loss call's input and its one validation. `Loss::check` turns the
//! lengths of a call (host slices or resident tensors alike) into a
//! `Call`: the shape, the kernel family and the reduction rule that the
//! CPU and the GPU backends both evaluate, without checking again.

use super::loss::{Domain, Loss, RowOp, Term};
use super::reduction::Reduction;
use crate::error::{invalid, Result};

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
    /// One term per element (`shaders/loss.wgsl`).
    Pointwise(Term),
    /// One term per row of n×m (`shaders/rows.wgsl`).
    Rows(RowOp),
}

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

/// A loss call after its validation: what each backend evaluates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Call {
    pub loss: Loss,
    pub reduction: Reduction,
    pub shape: Shape,
    pub target: TargetKind,
    pub weighted: bool,
}

impl Call {
    /// Whether the reduced value is rmse's root of a mean.
    pub fn rmse(&self) -> bool {
        self.loss == Loss::Rmse
    }
}

/// The lengths of a call's inputs, whatever holds them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lengths {
    pub pred: usize,
    pub cols: usize,
    pub target: TargetKind,
    pub target_len: usize,
    pub weights: Option<usize>,
}

impl LossInput<'_> {
    pub(crate) fn lengths(&self) -> Lengths {
        let (target, target_len) = match self.target {
            Target::None => (TargetKind::None, 0),
            Target::Values(t) => (TargetKind::Values, t.len()),
            Target::Classes(c) => (TargetKind::Classes, c.len()),
        };
        Lengths {
            pred: self.pred.len(),
            cols: self.cols,
            target,
            target_len,
            weights: self.weights.map(<[f32]>::len),
        }
    }
}

impl Loss {
    /// The one validation of a call: the parameters, the reduction rule
    /// (rmse is mean only), the lengths and which kernel family evaluates
    /// it. Values are checked during the pass itself.
    pub(crate) fn check(&self, n: Lengths, reduction: Reduction) -> Result<Call> {
        self.validate()?;
        let name = self.name();
        if *self == Loss::Rmse && reduction != Reduction::Mean {
            return Err(invalid!(
                "rmse is a metric: only --reduction mean is defined, not {}",
                reduction.name()
            ));
        }
        let len = n.pred;
        if len == 0 {
            return Err(invalid!("{name}: the prediction is empty"));
        }
        let cols = n.cols;
        if cols == 0 || !len.is_multiple_of(cols) {
            return Err(invalid!(
                "{name}: the prediction has {len} values, not a multiple of {cols} columns"
            ));
        }
        let rows = len / cols;
        let form = self.form(n.target, cols)?;
        match n.target {
            TargetKind::Values if n.target_len != len => {
                return Err(invalid!(
                    "{name}: the target has {} values but the prediction has {len}",
                    n.target_len
                ))
            }
            TargetKind::Classes if n.target_len != rows => {
                return Err(invalid!(
                    "{name}: {} class indices for {rows} rows of predictions",
                    n.target_len
                ))
            }
            _ => {}
        }
        if let Some(w) = n.weights {
            if w != rows {
                return Err(invalid!("{name}: {w} weights for {rows} samples"));
            }
        }
        Ok(Call {
            loss: *self,
            reduction,
            shape: Shape { rows, cols, form },
            target: n.target,
            weighted: n.weights.is_some(),
        })
    }

    /// How the kernels evaluate this loss with a target of `kind` and rows
    /// of `cols` values.
    pub(crate) fn form(&self, kind: TargetKind, cols: usize) -> Result<Form> {
        let name = self.name();
        Ok(match (self, kind) {
            (Loss::Entropy, TargetKind::None) => Form::Rows(RowOp::Entropy),
            (Loss::Entropy, _) => {
                return Err(invalid!("entropy takes no target (only --pred)"));
            }
            (_, TargetKind::None) => return Err(invalid!("{name} needs a target")),
            (Loss::ZeroOne, TargetKind::Classes) => Form::Rows(RowOp::Argmax),
            (Loss::CrossEntropy, TargetKind::Classes) => Form::Rows(RowOp::CeClass),
            (Loss::CrossEntropy, TargetKind::Values) => Form::Rows(RowOp::CeProb),
            (Loss::KlDiv, TargetKind::Values) => Form::Rows(RowOp::Kl),
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
                match self.term() {
                    Some(term) => Form::Pointwise(term),
                    None => return Err(invalid!("{name} needs rows of scores")),
                }
            }
        })
    }

    /// The error for a value outside its domain found at `index` of
    /// `what` ("pred" or "target").
    pub(crate) fn domain_error(
        &self,
        what: &'static str,
        domain: Domain,
        index: usize,
        value: f32,
    ) -> crate::Error {
        crate::Error::Value {
            op: self.name(),
            input: what,
            index,
            value: format!("{value:?}"),
            rule: format!("is outside the allowed values ({})", domain.describe()),
        }
    }
}

/// The error for a class index ≥ m found at row `index`.
pub(crate) fn class_error(loss: &Loss, index: usize, value: u32, cols: usize) -> crate::Error {
    crate::Error::Value {
        op: loss.name(),
        input: "target",
        index,
        value: value.to_string(),
        rule: format!("is not a class index in [0, {cols})"),
    }
}

/// The error for a negative weight at `index`.
pub(crate) fn weight_error(loss: &Loss, index: usize, value: f32) -> crate::Error {
    crate::Error::Value {
        op: loss.name(),
        input: "weights",
        index,
        value: format!("{value:?}"),
        rule: "is negative (weights must be >= 0)".to_string(),
    }
}
