//! The options of the classification losses and kl-div (SPEC §1b), as a
//! [`LossInput`](super::input::LossInput) or a resident call takes them.

use super::input::{first_bad, Lengths, TargetKind};

/// The options of cross-entropy and nll (SPEC §1b), each off by default:
/// set with [`LossInput::with_class_weights`](super::input::LossInput::with_class_weights),
/// [`LossInput::with_ignore_index`](super::input::LossInput::with_ignore_index), [`LossInput::with_label_smoothing`](super::input::LossInput::with_label_smoothing)
/// and [`LossInput::with_z_loss`](super::input::LossInput::with_z_loss), where their formulas are.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossOptions<'a> {
    /// Per-class weights (m values, each ≥ 0), PyTorch's `weight=`:
    /// cross-entropy and nll.
    pub class_weights: Option<&'a [f32]>,
    /// A class target whose rows are left out (PyTorch's `ignore_index`):
    /// cross-entropy and nll with class targets.
    pub ignore_index: Option<i64>,
    /// Label smoothing ε ∈ [0, 1] of cross-entropy (PyTorch's
    /// `label_smoothing`; 0 is none).
    pub label_smoothing: f32,
    /// The z-loss coefficient λ ≥ 0 of cross-entropy (PaLM; 0 is none).
    pub z_loss: f32,
    /// kl-div's prediction holds log q (PyTorch's `kl_div` convention).
    pub log_input: bool,
    /// kl-div's target holds log t (PyTorch's `log_target`).
    pub log_target: bool,
    /// bce-logits' weight of the positive term (PyTorch's `pos_weight`):
    /// one value, or one per column of n×m multi-label input.
    pub pos_weight: Option<&'a [f32]>,
}

impl LossOptions<'_> {
    /// Whether any option is set.
    pub(crate) fn any(&self) -> bool {
        self.class() || self.log_input || self.log_target || self.pos_weight.is_some()
    }

    /// Whether an option of the class losses is set (they make a mean
    /// over no weight NaN, as PyTorch).
    pub(crate) fn class(&self) -> bool {
        self.class_weights.is_some()
            || self.ignore_index.is_some()
            || self.label_smoothing != 0.0
            || self.z_loss != 0.0
    }
}

impl LossOptions<'_> {
    /// The lengths of a call with these options: pred's length and columns,
    /// the target's kind and length, the weights' length.
    pub(crate) fn lengths(
        &self,
        pred: usize,
        cols: usize,
        (target, target_len): (TargetKind, usize),
        weights: Option<usize>,
    ) -> Lengths {
        Lengths {
            pred,
            cols,
            target,
            target_len,
            weights,
            class_weights: self.class_weights.map(<[f32]>::len),
            bad_class_weight: first_bad(self.class_weights, |v| v.is_nan() || v < 0.0),
            ignore_index: self.ignore_index,
            label_smoothing: self.label_smoothing,
            z_loss: self.z_loss,
            log_input: self.log_input,
            log_target: self.log_target,
            pos_weight: self.pos_weight.map(<[f32]>::len),
            bad_pos_weight: first_bad(self.pos_weight, |v| !(v.is_finite() && v >= 0.0)),
        }
    }
}
