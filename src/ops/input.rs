//! A loss call's input and its one validation. `Loss::check` turns the
//! lengths of a call (host slices or resident tensors alike) into a
//! `Call`: the shape, the kernel family and the reduction rule that the
//! CPU and the GPU backends both evaluate, without checking again.

use super::dtype::Float;
use super::loss::{Domain, Loss, RowOp, Term};
pub use super::options::LossOptions;
use super::reduction::Reduction;
use crate::error::{invalid, Result};
use std::borrow::Cow;

/// The target of a loss; real targets hold values of `F` (f32, f16 or
/// bf16).
#[derive(Debug, Clone, Copy)]
pub enum Target<'a, F: Float = f32> {
    /// No target (`entropy`).
    None,
    /// Real targets: one per element of `pred` (labels, values or
    /// probabilities).
    Values(&'a [F]),
    /// One class index in [0, m) per row of n×m `pred` (`cross-entropy`,
    /// `zero-one`).
    Classes(&'a [u32]),
}

/// The data a loss is evaluated on: predictions, real targets and weights
/// of one float type `F` (f32, [`crate::f16`] or [`crate::bf16`]; SPEC §1c),
/// class targets as u32. Half values are widened to f32 where they are read;
/// the per-class options stay f32.
#[derive(Debug, Clone, Copy)]
pub struct LossInput<'a, F: Float = f32> {
    /// Predictions: n values, or n×m row-major scores.
    pub pred: &'a [F],
    /// Columns m of `pred` (1 for pointwise losses).
    pub cols: usize,
    /// The target.
    pub target: Target<'a, F>,
    /// Optional per-sample (per-row) weights, each ≥ 0.
    pub weights: Option<&'a [F]>,
    /// PyTorch's options of the classification losses, each off by
    /// default (set them with the `with_` methods).
    pub options: LossOptions<'a>,
}

impl<'a, F: Float> LossInput<'a, F> {
    /// 1-D predictions and targets of equal length.
    pub fn new(pred: &'a [F], target: &'a [F]) -> Self {
        LossInput {
            pred,
            cols: 1,
            target: Target::Values(target),
            weights: None,
            options: LossOptions::default(),
        }
    }

    /// n×m scores with one class index per row.
    pub fn classes(pred: &'a [F], cols: usize, classes: &'a [u32]) -> Self {
        LossInput {
            pred,
            cols,
            target: Target::Classes(classes),
            weights: None,
            options: LossOptions::default(),
        }
    }

    /// n×m scores (or distributions) with an n×m target; for bce-logits,
    /// n×m multi-label logits and 0/1 (or soft) labels, pointwise over the
    /// n·m values (one weight per value).
    pub fn rows(pred: &'a [F], cols: usize, target: &'a [F]) -> Self {
        LossInput {
            pred,
            cols,
            target: Target::Values(target),
            weights: None,
            options: LossOptions::default(),
        }
    }

    /// n×m distributions, no target (`entropy`).
    pub fn unlabelled(pred: &'a [F], cols: usize) -> Self {
        LossInput {
            pred,
            cols,
            target: Target::None,
            weights: None,
            options: LossOptions::default(),
        }
    }

    /// The same input with per-sample weights.
    pub fn with_weights(self, weights: &'a [F]) -> Self {
        LossInput {
            weights: Some(weights),
            ..self
        }
    }

    /// The same input with per-class weights w (m values, each ≥ 0; NaN is
    /// an error), PyTorch's `weight=` for cross-entropy and nll with class
    /// targets: row i's loss is scaled by w\[tᵢ\] and `mean` divides by
    /// Σ aᵢ·w\[tᵢ\] over the rows kept (aᵢ the per-sample weight, default 1),
    /// so the effective weight of a row is aᵢ·w\[tᵢ\].
    pub fn with_class_weights(self, class_weights: &'a [f32]) -> Self {
        LossInput {
            options: LossOptions {
                class_weights: Some(class_weights),
                ..self.options
            },
            ..self
        }
    }

    /// The same input with an ignore index I (PyTorch's `ignore_index`) for
    /// cross-entropy and nll with class targets: a row whose target is I
    /// adds nothing to the sum, leaves the mean's denominator, is not
    /// checked, and gets a zero gradient; if every row is ignored the mean
    /// is NaN (and the gradient 0), as in PyTorch. Class targets are u32, so
    /// a negative I names the target with I's two's-complement bits: −100
    /// matches an i32 −100 reinterpreted as u32 (4294967196). I must lie in
    /// [−2³¹, 2³²).
    pub fn with_ignore_index(self, ignore_index: i64) -> Self {
        LossInput {
            options: LossOptions {
                ignore_index: Some(ignore_index),
                ..self.options
            },
            ..self
        }
    }

    /// The same input with label smoothing ε ∈ [0, 1] for cross-entropy
    /// (PyTorch's `label_smoothing`): with class targets row i's loss is
    /// (1−ε)·w\[tᵢ\]·(−log s_{tᵢ}) + (ε/m)·Σⱼ wⱼ·(−log sⱼ), s = softmax(pᵢ),
    /// w the class weights (1 without); with probability targets the target
    /// becomes (1−ε)·t + ε/m. The mean's denominator is unchanged
    /// (Σ aᵢ·w\[tᵢ\] over the kept rows, or Σ aᵢ for probabilities).
    pub fn with_label_smoothing(self, epsilon: f32) -> Self {
        LossInput {
            options: LossOptions {
                label_smoothing: epsilon,
                ..self.options
            },
            ..self
        }
    }

    /// The same input with a z-loss of coefficient λ ≥ 0 for cross-entropy
    /// (PaLM): λ·logsumexp(pᵢ)² is added to row i's loss, scaled by w\[tᵢ\]
    /// with class targets and class weights (as the row's unsmoothed term
    /// is), by 1 with probability targets. Its gradient adds
    /// 2λ·lse·softmax(pᵢ)ⱼ (times that scale).
    pub fn with_z_loss(self, lambda: f32) -> Self {
        LossInput {
            options: LossOptions {
                z_loss: lambda,
                ..self.options
            },
            ..self
        }
    }

    /// The same input with kl-div's prediction given as log q (each ≤ 0),
    /// PyTorch's `kl_div` convention: row i's loss is
    /// Σⱼ tⱼ·(log tⱼ − pⱼ) and d/dpⱼ = −tⱼ.
    pub fn with_log_input(self) -> Self {
        LossInput {
            options: LossOptions {
                log_input: true,
                ..self.options
            },
            ..self
        }
    }

    /// The same input with kl-div's target given as log t (each ≤ 0),
    /// PyTorch's `log_target=True`: tⱼ = e^(target), and a target of −inf
    /// is a t of 0, whose term is 0.
    pub fn with_log_target(self) -> Self {
        LossInput {
            options: LossOptions {
                log_target: true,
                ..self.options
            },
            ..self
        }
    }

    /// The same input with bce-logits' positive weight (PyTorch's
    /// `pos_weight`): one value pw, or m values for n×m multi-label input
    /// ([`LossInput::rows`]), each finite and ≥ 0, value k taking
    /// pw[k mod m]. The loss of a value is
    /// pw·t·softplus(−p) + (1−t)·softplus(p) = −[pw·t·log σ(p) + (1−t)·log σ(−p)]
    /// and its derivative σ(p)·(1−t) − pw·t·σ(−p); pw = 1 is plain bce-logits.
    pub fn with_pos_weight(self, pos_weight: &'a [f32]) -> Self {
        LossInput {
            options: LossOptions {
                pos_weight: Some(pos_weight),
                ..self.options
            },
            ..self
        }
    }

    /// bce-logits' pos_weight of each column, where it has one per column
    /// (the kernels bind it; one value is their param).
    pub(crate) fn pos_weight_columns(&self) -> Option<&'a [f32]> {
        self.options.pos_weight.filter(|pw| pw.len() > 1)
    }

    /// bce-logits' positive weight of value i (None without the option).
    pub(crate) fn pos_weight_at(&self, i: usize) -> Option<f64> {
        self.options.pos_weight.map(|pw| pw[i % pw.len()] as f64)
    }

    /// Whether any option applies (class weights, ignore index, label
    /// smoothing, z-loss, log input or target, pos_weight): the CPU backend
    /// then takes the reference formulas, but for cross-entropy's class
    /// options and a single bce-logits pos_weight, which its f32 loops
    /// compute.
    pub(crate) fn has_class_options(&self) -> bool {
        self.options.any()
    }

    /// Row i's weight in the sum: the per-sample weight aᵢ (1 without), 0
    /// for an ignored row. Class weights are part of the row's loss.
    pub(crate) fn weight(&self, i: usize) -> f64 {
        if self.is_ignored(i) {
            return 0.0;
        }
        self.weights.map_or(1.0, |w| w[i].to_f32() as f64)
    }

    /// Row i's weight in the mean's denominator: aᵢ·w[tᵢ] for class
    /// targets with class weights where the loss's mean is `by_class`
    /// (cross-entropy, nll: PyTorch), else [`Self::weight`].
    pub(crate) fn mean_weight(&self, i: usize, by_class: bool) -> f64 {
        let a = self.weight(i);
        match (self.options.class_weights, self.target) {
            // A class out of range is reported by the checks; it weighs 0 here.
            (Some(cw), Target::Classes(c)) if by_class => {
                a * cw.get(c[i] as usize).map_or(0.0, |&w| w as f64)
            }
            _ => a,
        }
    }

    /// The ignored class target as u32 bits, if any (validated range).
    pub(crate) fn ignored(&self) -> Option<u32> {
        self.options.ignore_index.map(|i| i as u32)
    }

    /// Whether row i's class target is the ignored one.
    pub(crate) fn is_ignored(&self, i: usize) -> bool {
        match (self.ignored(), self.target) {
            (Some(ig), Target::Classes(c)) => c[i] == ig,
            _ => false,
        }
    }

    /// [`Self::weight`] of every row in f32 where an ignore index applies
    /// (the GPU's weights for the call); None without one.
    pub(crate) fn row_weights(&self) -> Option<Vec<f32>> {
        self.options.ignore_index?;
        let Target::Classes(c) = self.target else {
            return None;
        };
        Some((0..c.len()).map(|i| self.weight(i) as f32).collect())
    }

    /// Σ [`Self::mean_weight`] over the rows in f64, in row order: the
    /// mean's denominator of a call with class options.
    pub(crate) fn mean_weight_sum(&self, rows: usize, by_class: bool) -> f64 {
        self.mean_weight_sum_of(0..rows, by_class)
    }

    /// Σ [`Self::mean_weight`] over `rows`, in row order; with class
    /// targets the per-row matches are hoisted out of the loop (the same
    /// terms, the same bits).
    pub(crate) fn mean_weight_sum_of(&self, rows: std::ops::Range<usize>, by_class: bool) -> f64 {
        let Target::Classes(c) = self.target else {
            return rows.map(|i| self.mean_weight(i, by_class)).sum();
        };
        let (ignored, cw) = (self.ignored(), self.options.class_weights);
        let cw = cw.filter(|_| by_class);
        let class_weight =
            |y: u32| cw.map_or(1.0, |cw| cw.get(y as usize).map_or(0.0, |&w| w as f64));
        let a = |i: usize| self.weights.map_or(1.0, |w| w[i].to_f32() as f64);
        (rows.start..)
            .zip(&c[rows])
            .map(|(i, &y)| {
                if Some(y) == ignored {
                    0.0
                } else {
                    a(i) * class_weight(y)
                }
            })
            .sum()
    }
}

/// An input's values as f32: borrowed for f32 data, widened copies of half
/// data (the CPU backend reads f32).
pub(crate) struct Widened<'a> {
    pred: Cow<'a, [f32]>,
    target: Option<Cow<'a, [f32]>>,
    classes: Option<&'a [u32]>,
    weights: Option<Cow<'a, [f32]>>,
    cols: usize,
    options: LossOptions<'a>,
}

impl<'a, F: Float> LossInput<'a, F> {
    /// The same input in f32.
    pub(crate) fn widen(&self) -> Widened<'a> {
        let (target, classes) = match self.target {
            Target::Values(t) => (Some(F::widen(t)), None),
            Target::Classes(c) => (None, Some(c)),
            Target::None => (None, None),
        };
        Widened {
            pred: F::widen(self.pred),
            target,
            classes,
            weights: self.weights.map(F::widen),
            cols: self.cols,
            options: self.options,
        }
    }
}

impl Widened<'_> {
    pub(crate) fn input(&self) -> LossInput<'_> {
        LossInput {
            pred: &self.pred,
            cols: self.cols,
            target: match (&self.target, self.classes) {
                (Some(t), _) => Target::Values(t),
                (None, Some(c)) => Target::Classes(c),
                (None, None) => Target::None,
            },
            weights: self.weights.as_deref(),
            options: self.options,
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
    /// Class weights, an ignore index, label smoothing or a z-loss apply:
    /// a mean over no weight is NaN (PyTorch) rather than an error.
    pub class_options: bool,
    /// kl-div's prediction and target given as logs.
    pub log_input: bool,
    pub log_target: bool,
}

impl Call {
    /// The allowed values of the prediction (a log-probability with
    /// `log_input`).
    pub fn pred_domain(&self) -> Domain {
        match self.log_input {
            true => Domain::NonPositive,
            false => self.loss.pred_domain(),
        }
    }

    /// The allowed values of a real target.
    pub fn target_domain(&self) -> Domain {
        match self.log_target {
            true => Domain::NonPositive,
            false => self.loss.target_domain(),
        }
    }

    /// The reduced value from (Σ wᵢlᵢ, Σ wᵢ); see [`super::reduction::finish`].
    /// `batchmean` divides the sum by the rows.
    pub fn finish(&self, sum: f64, wsum: f64) -> Result<f64> {
        if self.reduction == Reduction::BatchMean {
            return Ok(sum / self.shape.rows as f64);
        }
        if self.class_options && self.reduction == Reduction::Mean && wsum == 0.0 {
            return Ok(f64::NAN);
        }
        super::reduction::finish(self.reduction, sum, wsum, self.rmse())
    }

    /// The values each error slot of the call's kernels covers: row
    /// kernels flag a row of `cols` (its n·m elements may pass 2^32),
    /// pointwise kernels a value.
    pub fn flagged_cols(&self) -> usize {
        match self.shape.form {
            Form::Rows(_) => self.shape.cols,
            Form::Pointwise(_) => 1,
        }
    }

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
    pub class_weights: Option<usize>,
    /// The first class weight that is negative or NaN.
    pub bad_class_weight: Option<(usize, f32)>,
    pub ignore_index: Option<i64>,
    pub label_smoothing: f32,
    pub z_loss: f32,
    pub log_input: bool,
    pub log_target: bool,
    pub pos_weight: Option<usize>,
    /// The first pos_weight that is negative, infinite or NaN.
    pub bad_pos_weight: Option<(usize, f32)>,
}

impl<F: Float> LossInput<'_, F> {
    pub(crate) fn lengths(&self) -> Lengths {
        let (target, target_len) = match self.target {
            Target::None => (TargetKind::None, 0),
            Target::Values(t) => (TargetKind::Values, t.len()),
            Target::Classes(c) => (TargetKind::Classes, c.len()),
        };
        self.options.lengths(
            self.pred.len(),
            self.cols,
            (target, target_len),
            self.weights.map(<[F]>::len),
        )
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
        let form = self.form(n.target, cols)?;
        // n×m multi-label bce-logits is pointwise over its n·m values.
        let (rows, cols) = match form {
            Form::Pointwise(_) => (len, 1),
            Form::Rows(_) => (len / cols, cols),
        };
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
                return Err(match n.cols {
                    1 => invalid!("{name}: {w} weights for {rows} samples"),
                    m => invalid!(
                        "{name}: {w} weights for {rows} values ({} rows of {m}): n×m multi-label input takes one weight per value",
                        rows / m
                    ),
                });
            }
        }
        self.check_pos_weight(&n)?;
        let class_options = n.class_weights.is_some()
            || n.ignore_index.is_some()
            || n.label_smoothing != 0.0
            || n.z_loss != 0.0;
        if class_options {
            self.check_class_options(&n, form)?;
        }
        if (n.log_input || n.log_target) && form != Form::Rows(RowOp::Kl) {
            let flag = if n.log_input {
                "log input"
            } else {
                "log target"
            };
            return Err(invalid!("{name} takes no {flag} (only kl-div does)"));
        }
        if reduction == Reduction::BatchMean && !matches!(form, Form::Rows(_)) {
            return Err(invalid!(
                "{name}: batchmean is for losses over n×m rows; a 1-D loss takes mean"
            ));
        }
        Ok(Call {
            loss: *self,
            reduction,
            shape: Shape { rows, cols, form },
            target: n.target,
            weighted: n.weights.is_some(),
            class_options,
            log_input: n.log_input,
            log_target: n.log_target,
        })
    }

    /// The options of cross-entropy and nll (SPEC §1b): class weights
    /// (m values ≥ 0) for cross-entropy and nll, an ignore index
    /// (in [−2³¹, 2³²)) with class targets only, label smoothing
    /// (ε ∈ [0, 1]) and z-loss (λ ≥ 0, finite) for cross-entropy only.
    fn check_class_options(&self, n: &Lengths, form: Form) -> Result<()> {
        let name = self.name();
        let given = [
            ("class weights", n.class_weights.is_some()),
            ("ignore index", n.ignore_index.is_some()),
            ("label smoothing", n.label_smoothing != 0.0),
            ("z-loss", n.z_loss != 0.0),
        ];
        let takes: [bool; 4] = match form {
            Form::Rows(RowOp::CeClass) => [true, true, true, true],
            Form::Rows(RowOp::CeProb) => [true, false, true, true],
            Form::Rows(RowOp::Nll) => [true, true, false, false],
            Form::Rows(RowOp::MultiMargin) => [true, false, false, false],
            _ => [false; 4],
        };
        for ((what, on), ok) in given.into_iter().zip(takes) {
            if on && !ok {
                return Err(match form {
                    Form::Rows(RowOp::CeProb) => invalid!(
                        "cross-entropy takes an {what} only with class-index targets, not probabilities"
                    ),
                    Form::Rows(RowOp::Nll | RowOp::MultiMargin) => {
                        invalid!("{name} takes no {what} (cross-entropy does)")
                    }
                    _ => invalid!(
                        "{name} takes no {what} (only cross-entropy, nll and multi-margin do)"
                    ),
                });
            }
        }
        if let Some(w) = n.class_weights {
            if w != n.cols {
                return Err(invalid!("{name}: {w} class weights for {} classes", n.cols));
            }
        }
        if let Some((i, v)) = n.bad_class_weight {
            return Err(value_error(
                name,
                "class weights",
                i,
                v,
                "is not a number >= 0",
            ));
        }
        if let Some(ig) = n.ignore_index {
            if !(-(1i64 << 31)..(1i64 << 32)).contains(&ig) {
                return Err(invalid!(
                    "{name}: the ignore index {ig} is outside [-2^31, 2^32) (class targets are u32)"
                ));
            }
        }
        let e = n.label_smoothing;
        if !(0.0..=1.0).contains(&e) {
            return Err(invalid!(
                "{name}: label smoothing must be in [0, 1], got {e:?}"
            ));
        }
        let z = n.z_loss;
        if !(z >= 0.0 && z.is_finite()) {
            return Err(invalid!(
                "{name}: the z-loss must be a finite number >= 0, got {z:?}"
            ));
        }
        Ok(())
    }

    /// bce-logits' pos_weight: one value, or one per column of n×m input,
    /// each finite and ≥ 0.
    fn check_pos_weight(&self, n: &Lengths) -> Result<()> {
        let Some(k) = n.pos_weight else {
            return Ok(());
        };
        let name = self.name();
        if *self != Loss::BceLogits {
            return Err(invalid!(
                "{name} takes no pos weight (only bce-logits does)"
            ));
        }
        if k != 1 && k != n.cols {
            return Err(invalid!(
                "{name}: {k} pos weights for {} columns (give one, or one per column)",
                n.cols
            ));
        }
        if let Some((i, v)) = n.bad_pos_weight {
            return Err(value_error(
                name,
                "pos weight",
                i,
                v,
                "is not a finite number >= 0",
            ));
        }
        Ok(())
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
            (Loss::Nll, TargetKind::Classes) => Form::Rows(RowOp::Nll),
            (Loss::MultiMargin { .. }, TargetKind::Classes) => Form::Rows(RowOp::MultiMargin),
            (Loss::MultiMargin { .. }, TargetKind::Values) => {
                return Err(invalid!(
                    "multi-margin needs one class index per row (PyTorch's multi_margin_loss)"
                ))
            }
            (Loss::Nll, TargetKind::Values) => {
                return Err(invalid!(
                    "nll needs one class index per row (PyTorch's nll_loss), not probabilities"
                ))
            }
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
                // bce-logits also takes n×m multi-label input.
                if cols != 1 && *self != Loss::BceLogits {
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
        let rule = format!("is outside the allowed values ({})", domain.describe());
        value_error(self.name(), what, index, value, rule)
    }
}

/// The error for `value` at `index` of `input` of `op`, which breaks `rule`.
fn value_error(
    op: &'static str,
    input: &'static str,
    index: usize,
    value: f32,
    rule: impl Into<String>,
) -> crate::Error {
    crate::Error::Value {
        op,
        input,
        index,
        value: format!("{value:?}"),
        rule: rule.into(),
    }
}

/// The first value of an option's values that is `bad`, with its index.
pub(super) fn first_bad(values: Option<&[f32]>, bad: impl Fn(f32) -> bool) -> Option<(usize, f32)> {
    let values = values?;
    let i = values.iter().position(|&v| bad(v))?;
    Some((i, values[i]))
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
    value_error(
        loss.name(),
        "weights",
        index,
        value,
        "is negative (weights must be >= 0)",
    )
}
