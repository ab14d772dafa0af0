//! Rows per second of lossgpu's aggregates against DataFusion's own SQL
//! expression of the same metric, in one run over one Parquet dataset, and
//! the time to merge partial states from N executors:
//! `cargo run --release -p lossgpu-datafusion --example bench_sql [-- --rows N] [--backend cpu|gpu]`.
//!
//! The dataset (2^25 rows unless --rows) is written once to a temporary
//! directory: p and y (f32), a label in [0, 8), its 8 logits as a
//! FixedSizeList and again as columns z0..z7 (so that the built-in
//! expression of cross-entropy can be written in SQL). Each query runs
//! three times; the fastest counts.

use datafusion::arrow::array::{
    ArrayRef, AsArray, FixedSizeListArray, Float32Array, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::*;
use lossgpu::{Engine, LossSums, MetricSums};
use std::sync::Arc;
use std::time::Instant;

const CLASSES: usize = 8;
const FILE_ROWS: usize = 1 << 22;

/// A fast deterministic stream of uniforms in [0, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn write(dir: &std::path::Path, rows: usize) -> datafusion::error::Result<()> {
    let mut rng = Lcg(7);
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let mut fields = vec![
        Field::new("p", DataType::Float32, false),
        Field::new("y", DataType::Float32, false),
        Field::new("label", DataType::Int64, false),
        Field::new(
            "logits",
            DataType::FixedSizeList(item.clone(), CLASSES as i32),
            false,
        ),
    ];
    fields.extend((0..CLASSES).map(|k| Field::new(format!("z{k}"), DataType::Float32, false)));
    let schema = Arc::new(Schema::new(fields));
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let mut start = 0;
    while start < rows {
        let n = FILE_ROWS.min(rows - start);
        let y: Vec<f32> = (0..n).map(|_| rng.next() * 4.0 - 2.0).collect();
        let p: Vec<f32> = y.iter().map(|&y| y + rng.next() - 0.5).collect();
        let label: Vec<i64> = (0..n)
            .map(|_| (rng.next() * CLASSES as f32) as i64)
            .collect();
        let z: Vec<f32> = (0..n * CLASSES).map(|_| rng.next() * 10.0 - 5.0).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Float32Array::from(p)),
            Arc::new(Float32Array::from(y)),
            Arc::new(Int64Array::from(label)),
            Arc::new(FixedSizeListArray::new(
                item.clone(),
                CLASSES as i32,
                Arc::new(Float32Array::from(z.clone())),
                None,
            )),
        ];
        for k in 0..CLASSES {
            let col: Vec<f32> = (0..n).map(|i| z[i * CLASSES + k]).collect();
            columns.push(Arc::new(Float32Array::from(col)));
        }
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        let file =
            std::fs::File::create(dir.join(format!("part{:03}.parquet", start / FILE_ROWS)))?;
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props.clone()))?;
        writer.write(&batch)?;
        writer.close()?;
        start += n;
    }
    Ok(())
}

/// The fastest of three runs of `sql`, and its first value (a struct's
/// first field).
async fn time(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<(f64, f64)> {
    let mut best = f64::INFINITY;
    let mut value = f64::NAN;
    for _ in 0..3 {
        let t = Instant::now();
        let batches = ctx.sql(sql).await?.collect().await?;
        best = best.min(t.elapsed().as_secs_f64());
        let col = batches[0].column(0);
        let col = match col.data_type() {
            DataType::Struct(_) => col.as_struct().column(0).clone(),
            _ => col.clone(),
        };
        let col = datafusion::arrow::compute::cast(&col, &DataType::Float64)?;
        value = col.as_primitive::<Float64Type>().value(0);
    }
    Ok((best, value))
}

/// DataFusion's own SQL for each metric (the eight metrics of
/// regression_metrics with δ = 1, γ = 0.5).
const BUILTIN_METRICS: &str = "SELECT named_struct(
    'mse', avg((p - y) * (p - y)),
    'rmse', sqrt(avg((p - y) * (p - y))),
    'mae', avg(abs(p - y)),
    'mape', avg(abs((p - y) / y)),
    'smape', avg(2 * abs(p - y) / (abs(p) + abs(y))),
    'huber', avg(CASE WHEN abs(p - y) <= 1 THEN 0.5 * (p - y) * (p - y) ELSE abs(p - y) - 0.5 END),
    'log_cosh', avg(ln(cosh(p - y))),
    'quantile', avg(CASE WHEN y >= p THEN 0.5 * (y - p) ELSE 0.5 * (p - y) END)) FROM t";

fn builtin_cross_entropy() -> String {
    let z: Vec<String> = (0..CLASSES).map(|k| format!("z{k}")).collect();
    let sum: Vec<String> = z.iter().map(|z| format!("exp({z} - m)")).collect();
    let pick: Vec<String> = z
        .iter()
        .enumerate()
        .map(|(k, z)| format!("WHEN {k} THEN {z}"))
        .collect();
    format!(
        "SELECT avg(ln({}) + m - CASE label {} END) FROM (SELECT greatest({}) AS m, * FROM t)",
        sum.join(" + "),
        pick.join(" "),
        z.join(", ")
    )
}

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let rows: usize = arg("--rows").map_or(1 << 25, |r| r.parse().expect("--rows N"));
    match arg("--backend").as_deref() {
        Some("cpu") => lossgpu_datafusion::set_large_batch_engine(Engine::cpu()),
        Some("gpu") => lossgpu_datafusion::set_large_batch_engine(Engine::new()),
        _ => false,
    };
    let dir = tempfile_dir()?;
    let t = Instant::now();
    write(&dir, rows)?;
    println!(
        "dataset: {rows} rows in {} (written in {:.1} s)",
        dir.display(),
        t.elapsed().as_secs_f64()
    );

    let ctx = SessionContext::new();
    lossgpu_datafusion::register(&ctx);
    ctx.register_parquet("t", dir.to_str().unwrap(), ParquetReadOptions::default())
        .await?;
    let zs: Vec<String> = (0..CLASSES).map(|k| format!("sum(z{k})")).collect();
    let read_columns = format!("SELECT {}, sum(label) FROM t", zs.join(", "));
    let read_pairs = "SELECT sum(p), sum(y) FROM t".to_string();
    let read_list = "SELECT count(logits), sum(label) FROM t".to_string();
    // (name, ours, built-in, what ours reads, what the built-in reads): the
    // "read" columns time DataFusion decoding and summing the same columns,
    // the ceiling of each side (a list column of logits against eight
    // plain columns).
    let cases = [
        (
            "loss_mse",
            "SELECT loss_mse(p, y) FROM t".to_string(),
            "SELECT avg((p - y) * (p - y)) FROM t".to_string(),
            read_pairs.clone(),
            read_pairs.clone(),
        ),
        (
            "regression_metrics",
            "SELECT regression_metrics(p, y) FROM t".to_string(),
            BUILTIN_METRICS.to_string(),
            read_pairs.clone(),
            read_pairs,
        ),
        (
            "cross_entropy",
            "SELECT cross_entropy(logits, label) FROM t".to_string(),
            builtin_cross_entropy(),
            read_list,
            read_columns,
        ),
    ];
    println!(
        "{:<20} {:>14} {:>15} {:>7} {:>10} {:>14} {:>14} {:>14}",
        "aggregate",
        "lossgpu Mrow/s",
        "built-in Mrow/s",
        "ratio",
        "read ours",
        "read built-in",
        "lossgpu value",
        "built-in value"
    );
    for (name, ours, builtin, read_ours, read_builtin) in cases {
        let (t_ours, v_ours) = time(&ctx, &ours).await?;
        let (t_builtin, v_builtin) = time(&ctx, &builtin).await?;
        let (t_read_ours, _) = time(&ctx, &read_ours).await?;
        let (t_read_builtin, _) = time(&ctx, &read_builtin).await?;
        let rate = |t: f64| rows as f64 / t / 1e6;
        println!(
            "{name:<20} {:>14.1} {:>15.1} {:>7.2} {:>10.1} {:>14.1} {:>14.8} {:>14.8}",
            rate(t_ours),
            rate(t_builtin),
            t_builtin / t_ours,
            rate(t_read_ours),
            rate(t_read_builtin),
            v_ours,
            v_builtin
        );
    }
    let engine = lossgpu_datafusion::large_batch_engine();
    println!(
        "large batches: {} ({}), target partitions {}",
        engine.backend().name(),
        engine.device_name(),
        ctx.copied_config().target_partitions()
    );
    for c in engine.auto_choices() {
        println!("  auto: {c:?}");
    }
    merges();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The time to merge the partial states of N executors (what the final
/// aggregation does with them), per state.
fn merges() {
    for n in [2usize, 64, 4096] {
        let loss: Vec<LossSums> = (0..n)
            .map(|i| LossSums {
                sum: i as f64,
                weight_sum: 1.0,
                count: 1,
            })
            .collect();
        let metrics: Vec<MetricSums> = (0..n)
            .map(|i| MetricSums {
                sums: [i as f64; 7],
                weight_sum: 1.0,
                count: 1,
            })
            .collect();
        let reps = 1_000_000 / n;
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(loss.iter().fold(LossSums::default(), |a, &b| a.merge(b)));
        }
        let t_loss = t.elapsed().as_secs_f64() / reps as f64;
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(
                metrics
                    .iter()
                    .fold(MetricSums::default(), |a, &b| a.merge(b)),
            );
        }
        let t_metrics = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "merge of {n} executors' states: LossSums {:.2} µs, MetricSums {:.2} µs",
            t_loss * 1e6,
            t_metrics * 1e6
        );
    }
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("lossgpu-bench-sql-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
