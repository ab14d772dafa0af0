//! lossgpu's losses and regression metrics as Apache DataFusion aggregate
//! functions: SQL over Arrow and Parquet, each batch evaluated by a
//! [`lossgpu::Engine`] (the GPU where there is one and it is the faster).
//!
//! ```no_run
//! # async fn run() -> datafusion::error::Result<()> {
//! use datafusion::prelude::*;
//!
//! let ctx = SessionContext::new();
//! lossgpu_datafusion::register(&ctx);
//! ctx.register_parquet("preds", "preds/", ParquetReadOptions::default()).await?;
//! let df = ctx
//!     .sql("SELECT model, loss_mse(p, y), loss_huber(p, y, 2.0), regression_metrics(p, y) \
//!           FROM preds GROUP BY model")
//!     .await?;
//! df.show().await?;
//! # Ok(()) }
//! ```
//!
//! The functions (SPEC §4):
//! - `loss_NAME(pred, target [, weight] [, parameter])` for every pointwise
//!   loss (NAME its CLI name with '-' as '_': `loss_mse`, `loss_bce_logits`,
//!   `loss_huber(p, y, 2.0)`, `loss_quantile(p, y, w, 0.9)`): the weighted
//!   mean Σ w·l / Σ w (rmse its root). A column after the target is the
//!   weight; literals are the loss's parameter (huber's δ, quantile's γ,
//!   smooth-l1's β).
//! - `regression_metrics(pred, target [, weight] [, δ, γ])`: a struct of
//!   mse, rmse, mae, mape, smape, huber, log_cosh, quantile (δ = 1 and
//!   γ = 0.5 unless given) and n, from one fused pass.
//! - `cross_entropy(logits, label [, weight] [, label_smoothing])`: the
//!   mean cross-entropy of rows of logits in a list column (List, LargeList
//!   or FixedSizeList of Float16/32/64), with an integer class label per
//!   row or a list of target probabilities as long as the logits; the
//!   weight is per row. As PyTorch's default, a label of −100
//!   ([`IGNORE_INDEX`]) is ignored: it adds nothing and leaves the mean's
//!   denominator (a mean over only ignored rows is NaN); any other label
//!   outside [0, m) is an error. A literal after the columns is the label
//!   smoothing ε. Rows may differ in length: each run of equal lengths is
//!   one engine call. Arrow has no bfloat16 type, so bf16 logits reach SQL
//!   as Float16 or Float32.
//!
//! Rows where any argument is NULL (or, for a list, any element) are
//! skipped, as SQL's AVG skips them; over no rows the result is NULL. NaN
//! propagates, as in the library. A value outside a loss's domain (a
//! hinge target of 0.5) is an execution error naming it. Float16 and
//! Float32 values are read as they are (borrowed where no NULL is in the
//! way); other numbers are cast to Float64 and narrowed to f32.
//!
//! Each aggregate's partial state is the library's [`lossgpu::LossSums`] or
//! [`lossgpu::MetricSums`]: sums in f64 that merge exactly across
//! partitions and machines. Without GROUP BY, where the large-batch engine
//! may run a GPU, rows (for cross_entropy, logits) are gathered to
//! [`GATHER`] before an engine call (smaller remainders go to the CPU
//! backend); where it has none, or `Engine::auto()` timed the CPU faster
//! for that family at gathered sizes, each batch goes to the CPU backend
//! as it comes, without a copy. With GROUP BY, a native
//! `GroupsAccumulator` makes one engine call per batch (per-row values,
//! reduction none) and adds each row to its group in f64.

mod aggregate;
mod args;
mod columns;
mod cross_entropy;
mod engines;
mod lists;
mod loss;
mod metrics;
mod state;

pub use cross_entropy::{CrossEntropyUdaf, IGNORE_INDEX};
pub use engines::{large_batch_engine, set_large_batch_engine, GATHER};
pub use loss::LossUdaf;
pub use metrics::MetricsUdaf;

use datafusion::logical_expr::AggregateUDF;
use datafusion::prelude::SessionContext;

/// Every aggregate of this crate: `loss_NAME` for each pointwise loss,
/// `regression_metrics` and `cross_entropy`.
pub fn udafs() -> Vec<AggregateUDF> {
    let mut all: Vec<AggregateUDF> = lossgpu::LOSS_NAMES
        .iter()
        .filter(|name| {
            lossgpu::Loss::from_name(name, lossgpu::LossParams::default())
                .is_ok_and(|l| l.is_pointwise())
        })
        .map(|name| AggregateUDF::from(LossUdaf::new(name)))
        .collect();
    all.push(AggregateUDF::from(MetricsUdaf::default()));
    all.push(AggregateUDF::from(CrossEntropyUdaf::default()));
    all
}

/// Registers every aggregate on `ctx`.
pub fn register(ctx: &SessionContext) {
    for udaf in udafs() {
        ctx.register_udaf(udaf);
    }
}
