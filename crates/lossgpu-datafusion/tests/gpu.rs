//! The aggregates with their large batches on the GPU (set for this test
//! binary's process): without an adapter this fails under
//! LOSSGPU_REQUIRE_GPU=1 (as in CI, on lavapipe) and is skipped otherwise.

use datafusion::arrow::array::{
    ArrayRef, AsArray, FixedSizeListArray, Float32Array, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::prelude::*;
use lossgpu::{Backend, Engine};
use std::sync::Arc;

const N: usize = 100_003;
const M: usize = 33;

fn gpu() -> Option<Engine> {
    match Engine::gpu() {
        Ok(e) => Some(e),
        Err(e) if std::env::var_os("LOSSGPU_REQUIRE_GPU").is_some() => {
            panic!("LOSSGPU_REQUIRE_GPU is set and no adapter opened: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no GPU adapter ({e})");
            None
        }
    }
}

async fn value(ctx: &SessionContext, sql: &str) -> f64 {
    let b = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let c = b[0].column(0);
    let c = match c.data_type() {
        DataType::Struct(_) => c.as_struct().column(0).clone(),
        _ => c.clone(),
    };
    c.as_primitive::<Float64Type>().value(0)
}

fn close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-5 * want.abs(),
        "{what}: got {got}, want {want}"
    );
}

#[tokio::test]
async fn large_batches_run_on_the_gpu() {
    let Some(engine) = gpu() else { return };
    assert!(lossgpu_datafusion::set_large_batch_engine(engine));
    assert_eq!(
        lossgpu_datafusion::large_batch_engine().backend(),
        Backend::Gpu
    );
    let f = |i: usize, k: f32| ((i as f32) * 0.731 + k).sin() * 4.0;
    let p: Vec<f32> = (0..N).map(|i| f(i, 0.0)).collect();
    let y: Vec<f32> = (0..N).map(|i| f(i, 1.0)).collect();
    let z: Vec<f32> = (0..N * M).map(|k| f(k, 2.0) * 2.0).collect();
    let label: Vec<i64> = (0..N).map(|i| (i * 7 % M) as i64).collect();
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Float32Array::from(p.clone())),
        Arc::new(Float32Array::from(y.clone())),
        Arc::new(FixedSizeListArray::new(
            item,
            M as i32,
            Arc::new(Float32Array::from(z.clone())),
            None,
        )),
        Arc::new(Int64Array::from(label.clone())),
    ];
    let schema = Arc::new(Schema::new(
        ["p", "y", "logits", "label"]
            .iter()
            .zip(&columns)
            .map(|(n, c)| Field::new(*n, c.data_type().clone(), false))
            .collect::<Vec<_>>(),
    ));
    let ctx = SessionContext::new();
    lossgpu_datafusion::register(&ctx);
    ctx.register_batch("t", RecordBatch::try_new(schema, columns).unwrap())
        .unwrap();

    let mse = p
        .iter()
        .zip(&y)
        .map(|(&p, &y)| (p as f64 - y as f64).powi(2))
        .sum::<f64>()
        / N as f64;
    let mae = p
        .iter()
        .zip(&y)
        .map(|(&p, &y)| (p as f64 - y as f64).abs())
        .sum::<f64>()
        / N as f64;
    let ce = (0..N)
        .map(|i| {
            let row: Vec<f64> = z[i * M..(i + 1) * M].iter().map(|&v| v as f64).collect();
            let max = row.iter().cloned().fold(f64::MIN, f64::max);
            max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln() - row[label[i] as usize]
        })
        .sum::<f64>()
        / N as f64;
    close(
        "loss_mse",
        value(&ctx, "SELECT loss_mse(p, y) FROM t").await,
        mse,
    );
    close(
        "regression_metrics mse",
        value(&ctx, "SELECT regression_metrics(p, y) FROM t").await,
        mse,
    );
    close(
        "regression_metrics mae",
        value(&ctx, "SELECT regression_metrics(p, y)['mae'] FROM t").await,
        mae,
    );
    close(
        "cross_entropy",
        value(&ctx, "SELECT cross_entropy(logits, label) FROM t").await,
        ce,
    );
    close(
        "cross_entropy by group",
        value(
            &ctx,
            "SELECT cross_entropy(logits, label) FROM t GROUP BY 1 = 1",
        )
        .await,
        ce,
    );
}
