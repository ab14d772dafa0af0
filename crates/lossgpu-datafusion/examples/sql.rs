//! Writes predictions of two models to Parquet (two files, some NULLs) and
//! evaluates them with lossgpu's aggregates in SQL:
//! `cargo run --release -p lossgpu-datafusion --example sql`.

use datafusion::arrow::array::{ArrayRef, Float32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::*;
use std::sync::Arc;

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    let dir = std::env::temp_dir().join("lossgpu-sql-example");
    std::fs::create_dir_all(&dir)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("p", DataType::Float32, true),
        Field::new("y", DataType::Float32, true),
    ]));
    for (k, (model, scale)) in [("a", 0.1f32), ("b", 0.3f32)].into_iter().enumerate() {
        let n = 100_000;
        // A deterministic target and a prediction off by a model's noise.
        let y: Vec<Option<f32>> = (0..n).map(|i| Some((i as f32 * 0.001).sin())).collect();
        let p: Vec<Option<f32>> = (0..n)
            .map(|i| {
                (i % 1000 != 7).then(|| {
                    (i as f32 * 0.001).sin() + scale * ((i * 7919 % 1000) as f32 / 500.0 - 1.0)
                })
            })
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![model; n])),
            Arc::new(Float32Array::from(p)),
            Arc::new(Float32Array::from(y)),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        let file = std::fs::File::create(dir.join(format!("part{k}.parquet")))?;
        let mut writer = ArrowWriter::try_new(file, schema.clone(), None)?;
        writer.write(&batch)?;
        writer.close()?;
    }
    let ctx = SessionContext::new();
    lossgpu_datafusion::register(&ctx);
    ctx.register_parquet(
        "preds",
        dir.to_str().unwrap_or("."),
        ParquetReadOptions::default(),
    )
    .await?;
    let sql =
        "SELECT model, count(p) AS n, loss_mse(p, y) AS mse, loss_huber(p, y, 0.1) AS huber, \
               regression_metrics(p, y)['mae'] AS mae FROM preds GROUP BY model ORDER BY model";
    println!("{sql}");
    ctx.sql(sql).await?.show().await?;
    println!(
        "large batches on: {}",
        lossgpu_datafusion::large_batch_engine().device_name()
    );
    Ok(())
}
