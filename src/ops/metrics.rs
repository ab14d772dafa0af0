//! The regression metrics evaluated together in one pass.

use super::loss::Loss;
use crate::error::Result;

/// mse, rmse, mae, mape, smape, huber, log-cosh and quantile (pinball) of
/// one prediction/target pair, each the weighted mean of its [`Loss`] term
/// (rmse = sqrt(mse)), from one read of the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegressionMetrics {
    /// Σw e² / Σw
    pub mse: f64,
    /// sqrt(mse)
    pub rmse: f64,
    /// Σw |e| / Σw
    pub mae: f64,
    /// Σw·100|e|/max(|t|, ε) / Σw
    pub mape: f64,
    /// Σw·200|e|/(|t|+|p|) / Σw
    pub smape: f64,
    /// mean Huber loss with the given δ
    pub huber: f64,
    /// mean log-cosh
    pub log_cosh: f64,
    /// mean pinball loss with the given γ
    pub quantile: f64,
    /// Number of samples.
    pub n: usize,
}

/// The metric losses, in the order of `shaders/metrics.wgsl`'s sums.
pub fn metric_losses(delta: f32, gamma: f32) -> Result<[Loss; 7]> {
    let huber = Loss::Huber { delta };
    let quantile = Loss::Quantile { gamma };
    huber.validate()?;
    quantile.validate()?;
    Ok([
        Loss::Mse,
        Loss::Mae,
        Loss::Mape,
        Loss::Smape,
        huber,
        Loss::LogCosh,
        quantile,
    ])
}

impl RegressionMetrics {
    /// From the seven weighted sums (metric_losses order), Σw and n.
    fn from_sums(sums: [f64; 7], weight_sum: f64, n: usize) -> Result<RegressionMetrics> {
        let mean = |s: f64| {
            super::reduction::finish(super::reduction::Reduction::Mean, s, weight_sum, false)
        };
        let mse = mean(sums[0])?;
        Ok(RegressionMetrics {
            mse,
            rmse: mse.sqrt(),
            mae: mean(sums[1])?,
            mape: mean(sums[2])?,
            smape: mean(sums[3])?,
            huber: mean(sums[4])?,
            log_cosh: mean(sums[5])?,
            quantile: mean(sums[6])?,
            n,
        })
    }
}

/// The seven weighted metric sums (mse, mae, mape, smape, huber, log-cosh,
/// pinball), Σw and the count over one part of the data
/// ([`crate::Engine::metric_sums`]); parts merge, and
/// [`finish`](MetricSums::finish) gives [`RegressionMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MetricSums {
    /// Σ wᵢ·termᵢ per metric, in the order above.
    pub sums: [f64; 7],
    /// Σ wᵢ (the count unweighted).
    pub weight_sum: f64,
    /// Samples.
    pub count: u64,
}

impl MetricSums {
    /// The sums of both parts.
    pub fn merge(self, other: MetricSums) -> MetricSums {
        let mut sums = self.sums;
        for (s, o) in sums.iter_mut().zip(other.sums) {
            *s += o;
        }
        MetricSums {
            sums,
            weight_sum: self.weight_sum + other.weight_sum,
            count: self.count + other.count,
        }
    }

    /// The metrics: each sum over Σw, rmse the root of mse.
    pub fn finish(&self) -> Result<RegressionMetrics> {
        RegressionMetrics::from_sums(self.sums, self.weight_sum, self.count as usize)
    }
}
