//! What the SQL tests share: the seed, Parquet writing, contexts over a
//! directory, query results and the comparison with the reference.

#![allow(dead_code)] // each test file uses its own part

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::*;
use rand::Rng;
use std::collections::BTreeMap;
use std::path::Path;

/// LOSSGPU_TEST_SEED, or a fresh seed, printed so a failure can be rerun.
pub fn seed(label: &str) -> u64 {
    let seed = std::env::var("LOSSGPU_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("{label}: LOSSGPU_TEST_SEED={seed}");
    seed
}

/// Writes `batch` as Parquet in row groups of `group_rows`.
pub fn write_parquet(path: &Path, batch: &RecordBatch, group_rows: usize) {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

/// A context with the aggregates and table `t` over the Parquet files in
/// `dir`. `skipping` skips partial aggregation from the first batch (so
/// GROUP BY's convert_to_state runs), over four partitions of small
/// batches.
pub async fn context(dir: &Path, skipping: bool) -> SessionContext {
    let config = if skipping {
        SessionConfig::new()
            .with_target_partitions(4)
            .with_batch_size(1000)
            .set_usize(
                "datafusion.execution.skip_partial_aggregation_probe_rows_threshold",
                1,
            )
            .set_str(
                "datafusion.execution.skip_partial_aggregation_probe_ratio_threshold",
                "0.0",
            )
    } else {
        SessionConfig::new()
    };
    let ctx = SessionContext::new_with_config(config);
    lossgpu_datafusion::register(&ctx);
    ctx.register_parquet("t", dir.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    ctx
}

/// The one Float64 value of a query.
pub async fn scalar(ctx: &SessionContext, sql: &str) -> Option<f64> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let b = batches.iter().find(|b| b.num_rows() > 0).unwrap();
    let col = b.column(0).as_primitive::<Float64Type>();
    col.is_valid(0).then(|| col.value(0))
}

/// (model, value) of a GROUP BY query.
pub async fn grouped(ctx: &SessionContext, sql: &str) -> BTreeMap<i64, Option<f64>> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = BTreeMap::new();
    for b in batches {
        let models = b.column(0).as_primitive::<Int64Type>();
        let values = b.column(1).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.insert(models.value(i), values.is_valid(i).then(|| values.value(i)));
        }
    }
    out
}

/// Within 1e-5 relative (SPEC §5); NaN only where NaN is wanted; NULL
/// where NULL is.
pub fn close(what: &str, got: Option<f64>, want: Option<f64>) {
    match (got, want) {
        (Some(g), Some(w)) if w.is_nan() => assert!(g.is_nan(), "{what}: got {g}, want NaN"),
        (Some(g), Some(w)) => assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1e-6),
            "{what}: got {g}, want {w}"
        ),
        (None, None) => {}
        (g, w) => panic!("{what}: got {g:?}, want {w:?}"),
    }
}
