//! Reductions over per-sample losses, and the optional sample weights.

use super::dtype::Float;
use super::ids::kernel_ids;
use crate::error::{invalid, Result};

kernel_ids! {
    /// How the gradient kernels scale w·dl/dp (`grad_factor` in
    /// `shaders/common.wgsl`).
    pub(crate) enum CoefMode("COEF") {
        /// By a constant (1/n for an unweighted mean, 1 for a sum).
        Scale,
        /// By 1/Σw, read from the reduction's sums.
        InverseWeightSum,
        /// rmse's chain rule: 1/(Σw·rmse).
        Rmse,
    }
}

/// How per-sample losses lᵢ with weights wᵢ (default 1) are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// Σ wᵢ lᵢ / Σ wᵢ (an error when Σ wᵢ = 0).
    #[default]
    Mean,
    /// Σ wᵢ lᵢ.
    Sum,
    /// The n values wᵢ·lᵢ.
    None,
    /// Σ wᵢ lᵢ / n over the n rows of a loss over n×m rows (PyTorch
    /// `kl_div`'s `batchmean`; unweighted, the same as `mean`). A 1-D loss
    /// takes `mean`.
    BatchMean,
}

impl Reduction {
    /// Parses `mean`, `sum` or `none`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            "none" => Ok(Reduction::None),
            "batchmean" => Ok(Reduction::BatchMean),
            _ => Err(invalid!(
                "unknown reduction '{name}' (expected mean, sum, none or batchmean)"
            )),
        }
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
            Reduction::None => "none",
            Reduction::BatchMean => "batchmean",
        }
    }
}

/// The value of a loss: one number, or one per sample for [`Reduction::None`]
/// (f32 by default; f16 or bf16 from the `_as` methods such as
/// [`crate::Engine::loss_as`]).
#[derive(Debug, Clone, PartialEq)]
pub enum LossValue<O: Float = f32> {
    /// Mean or sum.
    Scalar(f64),
    /// The n values wᵢ·lᵢ.
    PerSample(Vec<O>),
}

impl<O: Float> LossValue<O> {
    /// The scalar, if this is one.
    pub fn scalar(&self) -> Option<f64> {
        match self {
            LossValue::Scalar(v) => Some(*v),
            LossValue::PerSample(_) => None,
        }
    }

    /// The per-sample values, if reduction was `none`.
    pub fn per_sample(&self) -> Option<&[O]> {
        match self {
            LossValue::Scalar(_) => None,
            LossValue::PerSample(v) => Some(v),
        }
    }
}

/// Turns the two sums (Σ wᵢlᵢ, Σ wᵢ) into the reduced value, shared by both
/// backends so they agree on the edge cases.
pub(crate) fn finish(reduction: Reduction, sum: f64, weight_sum: f64, rmse: bool) -> Result<f64> {
    match reduction {
        Reduction::Sum => Ok(sum),
        Reduction::Mean => {
            if weight_sum == 0.0 {
                return Err(invalid!(
                    "the weights sum to 0, so the weighted mean is undefined"
                ));
            }
            let mean = sum / weight_sum;
            Ok(if rmse { mean.sqrt() } else { mean })
        }
        Reduction::None => Err(invalid!("internal: finish() called for reduction none")),
        Reduction::BatchMean => Err(invalid!("internal: batchmean needs the row count")),
    }
}

/// Σ wᵢlᵢ, Σ wᵢ and the number of samples of a loss over one part of its
/// data ([`crate::Engine::loss_sums`]): the state of a reduction over data
/// that arrives in parts (a file read in chunks, a SQL aggregate's partial
/// state). Parts [`merge`](LossSums::merge) by f64 addition in any order
/// and grouping (which agree within 1e-12 relative; a fixed plan gives the
/// same bits every run, tests/parts.rs); [`finish`](LossSums::finish) gives
/// what [`crate::Engine::loss`] gives for all of them at once, up to the
/// rounding of the partial sums (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LossSums {
    /// Σ wᵢlᵢ (wᵢ = 1 unweighted).
    pub sum: f64,
    /// Σ wᵢ (the count unweighted).
    pub weight_sum: f64,
    /// Samples (rows for row losses).
    pub count: u64,
}

impl LossSums {
    /// The sums of both parts.
    pub fn merge(self, other: LossSums) -> LossSums {
        LossSums {
            sum: self.sum + other.sum,
            weight_sum: self.weight_sum + other.weight_sum,
            count: self.count + other.count,
        }
    }

    /// The reduced loss: Σwl for `sum`, Σwl/Σw for `mean` (rmse takes the
    /// root); `none` has no reduced value and is an error, as is a mean
    /// whose weights sum to 0.
    pub fn finish(&self, loss: &crate::Loss, reduction: Reduction) -> Result<f64> {
        if *loss == crate::Loss::Rmse && reduction != Reduction::Mean {
            return Err(invalid!(
                "rmse is a metric: only --reduction mean is defined, not {}",
                reduction.name()
            ));
        }
        if reduction == Reduction::None {
            return Err(invalid!("reduction none has no reduced value"));
        }
        if reduction == Reduction::BatchMean {
            return Ok(self.sum / self.count as f64);
        }
        finish(
            reduction,
            self.sum,
            self.weight_sum,
            *loss == crate::Loss::Rmse,
        )
    }
}
