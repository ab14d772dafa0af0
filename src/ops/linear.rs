//! Fused linear + cross-entropy (SPEC §4 `linear-ce`): the cross-entropy of
//! the logits z = H·Wᵀ + b of a language-model head, computed without ever
//! holding the N×V logits. Its input, its one validation, and its result.

use super::dtype::Float;
use super::reduction::{LossValue, Reduction};
use crate::error::{invalid, Result};

/// The input of [`crate::Engine::linear_cross_entropy`]: hidden states H
/// (N×d, row-major), the classifier W (V×d, row-major: one row per class,
/// as `torch.nn.Linear(d, V).weight` stores it), an optional bias b (V) and
/// one class index per row of H. H, W and b share a float type `F` (f32,
/// [`crate::f16`] or [`crate::bf16`], widened as read).
///
/// Row n's loss is cross-entropy's with class target yₙ over its logits
/// z_{nv} = Σₖ H_{nk}·W_{vk} + b_v, namely
/// lseₙ − (1−ε)·z_{n,yₙ} − (ε/V)·Σᵥ z_{nv} + λ·lseₙ², with
/// lseₙ = log Σᵥ e^{z_{nv}}, ε the label smoothing and λ the z-loss
/// (both 0 by default). A row whose label is the ignore index adds 0 and
/// leaves the mean's denominator; `mean` divides by the rows kept (NaN
/// when none is), `sum` adds, `none` gives every row's loss.
#[derive(Debug, Clone, Copy)]
pub struct LinearInput<'a, F: Float = f32> {
    /// H, N×d.
    pub hidden: &'a [F],
    /// W, V×d.
    pub classifier: &'a [F],
    /// b, V values.
    pub bias: Option<&'a [F]>,
    /// yₙ ∈ [0, V) (or the ignore index), N values.
    pub labels: &'a [u32],
    /// d, the columns of H and W.
    pub dim: usize,
    /// A label whose rows are left out (PyTorch's `ignore_index`, −100 as
    /// its u32 bits), if any.
    pub ignore_index: Option<i64>,
    /// ε ∈ [0, 1].
    pub label_smoothing: f32,
    /// λ ≥ 0.
    pub z_loss: f32,
    /// Hold the N×V logits whole on the GPU (PyTorch's unfused path: one
    /// chunk, three matrix products instead of four, N×V values of memory):
    /// faster where memory allows, and the baseline the fused path is
    /// measured against. The CPU backend computes the same either way.
    pub materialise: bool,
}

impl<'a, F: Float> LinearInput<'a, F> {
    /// H (N×`dim`), W (V×`dim`) and N labels, without options.
    pub fn new(hidden: &'a [F], classifier: &'a [F], dim: usize, labels: &'a [u32]) -> Self {
        LinearInput {
            hidden,
            classifier,
            bias: None,
            labels,
            dim,
            ignore_index: None,
            label_smoothing: 0.0,
            z_loss: 0.0,
            materialise: false,
        }
    }

    /// The same with a bias of V values.
    pub fn with_bias(self, bias: &'a [F]) -> Self {
        LinearInput {
            bias: Some(bias),
            ..self
        }
    }

    /// The same with an ignore index (as
    /// [`crate::LossInput::with_ignore_index`]).
    pub fn with_ignore_index(self, ignore_index: i64) -> Self {
        LinearInput {
            ignore_index: Some(ignore_index),
            ..self
        }
    }

    /// The same with label smoothing ε ∈ [0, 1].
    pub fn with_label_smoothing(self, epsilon: f32) -> Self {
        LinearInput {
            label_smoothing: epsilon,
            ..self
        }
    }

    /// The same with a z-loss λ·lse² per row.
    pub fn with_z_loss(self, lambda: f32) -> Self {
        LinearInput {
            z_loss: lambda,
            ..self
        }
    }

    /// The same, holding the logits whole ([`LinearInput::materialise`]).
    pub fn with_materialised_logits(self) -> Self {
        LinearInput {
            materialise: true,
            ..self
        }
    }

    /// The ignored label as class targets hold it.
    pub(crate) fn ignored(&self) -> Option<u32> {
        self.ignore_index.map(|i| i as u32)
    }

    /// Validates the call once: its shape, options and labels.
    pub(crate) fn check(&self, reduction: Reduction) -> Result<LinearShape> {
        const OP: &str = "linear-ce";
        let d = self.dim;
        if d == 0 {
            return Err(invalid!("{OP}: the dimension d must be at least 1"));
        }
        let (h, w) = (self.hidden.len(), self.classifier.len());
        if h == 0 || h % d != 0 {
            return Err(invalid!(
                "{OP}: hidden holds {h} values, not a positive multiple of d = {d} (N×d)"
            ));
        }
        if w == 0 || w % d != 0 {
            return Err(invalid!(
                "{OP}: classifier holds {w} values, not a positive multiple of d = {d} (V×d)"
            ));
        }
        let (rows, classes) = (h / d, w / d);
        if self.labels.len() != rows {
            return Err(invalid!(
                "{OP}: {} labels for {rows} rows of hidden",
                self.labels.len()
            ));
        }
        if let Some(b) = self.bias.filter(|b| b.len() != classes) {
            return Err(invalid!(
                "{OP}: the bias holds {} values for {classes} classes",
                b.len()
            ));
        }
        if let Some(ig) = self.ignore_index {
            if !(-(1i64 << 31)..(1i64 << 32)).contains(&ig) {
                return Err(invalid!(
                    "{OP}: the ignore index {ig} is outside [-2^31, 2^32) (labels are u32)"
                ));
            }
        }
        let e = self.label_smoothing;
        if !(0.0..=1.0).contains(&e) {
            return Err(invalid!(
                "{OP}: label smoothing must be in [0, 1], got {e:?}"
            ));
        }
        let z = self.z_loss;
        if !(z >= 0.0 && z.is_finite()) {
            return Err(invalid!(
                "{OP}: the z-loss must be a finite number >= 0, got {z:?}"
            ));
        }
        if reduction == Reduction::BatchMean {
            return Err(invalid!("{OP}: reduction batchmean is kl-div's; use mean"));
        }
        let ignored = self.ignored();
        if let Some(n) = (0..rows).find(|&n| {
            let y = self.labels[n];
            y as usize >= classes && Some(y) != ignored
        }) {
            return Err(crate::Error::Value {
                op: OP,
                input: "labels",
                index: n,
                value: self.labels[n].to_string(),
                rule: format!("is not a class index in [0, {classes})"),
            });
        }
        let kept = (0..rows)
            .filter(|&n| Some(self.labels[n]) != ignored)
            .count();
        Ok(LinearShape {
            rows,
            classes,
            dim: d,
            reduction,
            kept,
        })
    }
}

/// A checked [`LinearInput`]'s shape and reduction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinearShape {
    /// N.
    pub rows: usize,
    /// V.
    pub classes: usize,
    /// d.
    pub dim: usize,
    pub reduction: Reduction,
    /// Rows whose label is not the ignore index.
    pub kept: usize,
}

impl LinearShape {
    /// The factor of every row's loss in the result: 1/kept for mean (NaN
    /// when no row is kept), else 1.
    pub fn scale(&self) -> f64 {
        match self.reduction {
            Reduction::Mean => 1.0 / self.kept as f64,
            _ => 1.0,
        }
    }

    /// The result from the rows' losses (f64, row order).
    pub fn finish<O: Float>(&self, row_losses: &[f64]) -> LossValue<O> {
        match self.reduction {
            Reduction::None => {
                LossValue::PerSample(row_losses.iter().map(|&l| O::from_f32(l as f32)).collect())
            }
            _ => {
                let sum: f64 = row_losses.iter().sum();
                LossValue::Scalar(match self.kept {
                    0 if self.reduction == Reduction::Mean => f64::NAN,
                    _ => sum * self.scale(),
                })
            }
        }
    }
}

/// What [`crate::Engine::linear_cross_entropy_and_grad`] returns: the value
/// and the gradients of the reduced loss with respect to H (N×d), W (V×d)
/// and b (V, when a bias was given), as f32 or as `O`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearGrads<O: Float = f32> {
    /// The loss, as [`crate::Engine::linear_cross_entropy`] gives it.
    pub value: LossValue<O>,
    /// ∂/∂H = G·W, G the N×V gradient of the logits.
    pub hidden: Vec<O>,
    /// ∂/∂W = Gᵀ·H.
    pub classifier: Vec<O>,
    /// ∂/∂b = Σₙ G[n, ·], when there is a bias.
    pub bias: Option<Vec<O>>,
}
