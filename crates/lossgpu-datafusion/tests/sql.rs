//! SQL over multi-file Parquet (odd row counts, several row groups, NULLs,
//! f16/f32/f64 columns) against the library and the f64 reference: every
//! pointwise loss, parameters and weights, GROUP BY with many groups, the
//! struct of regression metrics, NULL and NaN handling, and errors.

use datafusion::arrow::array::{
    ArrayRef, AsArray, Float16Array, Float32Array, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, UInt64Type};
use datafusion::prelude::*;
use half::f16;
use lossgpu::{cpu, Loss, LossInput, Reduction};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;

mod common;
use common::{close, grouped, scalar};

/// One row of the test data; None is NULL.
#[derive(Clone, Copy)]
struct Row {
    model: i64,
    p: Option<f32>,
    y: Option<f32>,
    w: Option<f32>,
}

/// Rows of `n` with NULLs sprinkled in, in `groups` models.
fn rows(rng: &mut StdRng, n: usize, groups: i64) -> Vec<Row> {
    (0..n)
        .map(|_| {
            let maybe = |rng: &mut StdRng, v: f32| (rng.random::<f32>() > 0.02).then_some(v);
            let p = rng.random_range(-3.0f32..3.0);
            let y = rng.random_range(-3.0f32..3.0);
            let w = rng.random_range(0.0f32..2.0);
            Row {
                model: rng.random_range(0..groups),
                p: maybe(rng, p),
                y: maybe(rng, y),
                w: maybe(rng, w),
            }
        })
        .collect()
}

/// Writes `rows` as Parquet with row groups of `group_rows`: p as f32, y as
/// f64, w as f32, h (= p) as f16, and y16 (= y) as f16.
fn write(path: &std::path::Path, rows: &[Row], group_rows: usize) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Int64, false),
        Field::new("p", DataType::Float32, true),
        Field::new("y", DataType::Float64, true),
        Field::new("w", DataType::Float32, true),
        Field::new("h", DataType::Float16, true),
        Field::new("y16", DataType::Float16, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.model))),
        Arc::new(Float32Array::from_iter(rows.iter().map(|r| r.p))),
        Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| r.y.map(f64::from)),
        )),
        Arc::new(Float32Array::from_iter(rows.iter().map(|r| r.w))),
        Arc::new(Float16Array::from_iter(
            rows.iter().map(|r| r.p.map(f16::from_f32)),
        )),
        Arc::new(Float16Array::from_iter(
            rows.iter().map(|r| r.y.map(f16::from_f32)),
        )),
    ];
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    common::write_parquet(path, &batch, group_rows);
}

/// The f64 reference of `loss`'s weighted mean over the rows where p, y (and
/// w, if weighted) are all given; None over no rows.
fn reference(loss: &Loss, rows: &[&Row], weighted: bool) -> Option<f64> {
    let kept: Vec<&&Row> = rows
        .iter()
        .filter(|r| r.p.is_some() && r.y.is_some() && (!weighted || r.w.is_some()))
        .collect();
    if kept.is_empty() {
        return None;
    }
    let p: Vec<f32> = kept.iter().map(|r| r.p.unwrap()).collect();
    let y: Vec<f32> = kept.iter().map(|r| r.y.unwrap()).collect();
    let w: Vec<f32> = kept.iter().map(|r| r.w.unwrap_or(1.0)).collect();
    let input = LossInput::new(&p, &y);
    let input = if weighted {
        input.with_weights(&w)
    } else {
        input
    };
    Some(cpu::loss_scalar(loss, &input, Reduction::Mean).unwrap())
}

/// The data: three files of 70,001, 1 and 5,003 rows in row groups of
/// 10,000, in 997 models.
struct Data {
    _dir: tempfile::TempDir,
    rows: Vec<Row>,
    ctx: SessionContext,
}

async fn data(label: &str) -> Data {
    let seed = common::seed(label);
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for (k, n) in [70_001, 1, 5_003].into_iter().enumerate() {
        let part = rows(&mut rng, n, 997);
        write(&dir.path().join(format!("part{k}.parquet")), &part, 10_000);
        all.extend(part);
    }
    let ctx = common::context(dir.path(), false).await;
    Data {
        _dir: dir,
        rows: all,
        ctx,
    }
}

#[tokio::test]
async fn every_pointwise_loss_matches_the_reference() {
    let d = data("sql losses").await;
    let all: Vec<&Row> = d.rows.iter().collect();
    for name in lossgpu::LOSS_NAMES {
        let loss = Loss::from_name(name, Default::default()).unwrap();
        if !loss.is_pointwise() {
            continue;
        }
        // Targets in each loss's domain: signs, [0, 1], or the values.
        let target = match *name {
            "zero-one" | "hinge" | "squared-hinge" | "exponential" | "logistic" => {
                "CASE WHEN y < 0 THEN -1.0 WHEN y >= 0 THEN 1.0 END"
            }
            "bce-logits" => "(y + 3.0) / 6.0",
            "bce" => "(y + 3.0) / 6.0",
            _ => "y",
        };
        let pred = if *name == "bce" {
            "(p + 3.0) / 6.0"
        } else {
            "p"
        };
        let f = format!("loss_{}", name.replace('-', "_"));
        let sql = format!("SELECT {f}({pred}, {target}) FROM t");
        let got = scalar(&d.ctx, &sql).await;
        let mapped: Vec<Row> = all
            .iter()
            .map(|r| Row {
                p: r.p.map(|p| {
                    if *name == "bce" {
                        (p as f64 + 3.0) as f32 / 6.0
                    } else {
                        p
                    }
                }),
                y: r.y.map(|y| match target {
                    "y" => y,
                    "(y + 3.0) / 6.0" => ((y as f64 + 3.0) / 6.0) as f32,
                    _ => {
                        if y < 0.0 {
                            -1.0
                        } else {
                            1.0
                        }
                    }
                }),
                ..**r
            })
            .collect();
        let refs: Vec<&Row> = mapped.iter().collect();
        close(&sql, got, reference(&loss, &refs, false));
    }
    // A parameter literal, and a weight column with one.
    let got = scalar(&d.ctx, "SELECT loss_huber(p, y, 0.5) FROM t").await;
    close(
        "huber 0.5",
        got,
        reference(&Loss::Huber { delta: 0.5 }, &all, false),
    );
    let got = scalar(&d.ctx, "SELECT loss_quantile(p, y, w, 0.9) FROM t").await;
    close(
        "weighted quantile 0.9",
        got,
        reference(&Loss::Quantile { gamma: 0.9 }, &all, true),
    );
    let got = scalar(&d.ctx, "SELECT loss_rmse(p, y, w) FROM t").await;
    close("weighted rmse", got, reference(&Loss::Rmse, &all, true));
}

#[tokio::test]
async fn group_by_many_groups_matches_the_reference() {
    let d = data("sql group by").await;
    let mut by_model: BTreeMap<i64, Vec<&Row>> = BTreeMap::new();
    for r in &d.rows {
        by_model.entry(r.model).or_default().push(r);
    }
    for (sql, loss, weighted) in [
        (
            "SELECT model, loss_mse(p, y) FROM t GROUP BY model",
            Loss::Mse,
            false,
        ),
        (
            "SELECT model, loss_huber(p, y, w, 2.0) FROM t GROUP BY model",
            Loss::Huber { delta: 2.0 },
            true,
        ),
        (
            "SELECT model, loss_rmse(p, y) FROM t GROUP BY model",
            Loss::Rmse,
            false,
        ),
    ] {
        let got = grouped(&d.ctx, sql).await;
        assert_eq!(got.len(), by_model.len(), "{sql}: groups");
        for (model, rows) in &by_model {
            close(
                &format!("{sql} model {model}"),
                got[model],
                reference(&loss, rows, weighted),
            );
        }
        // Partial aggregation skipped at once (each row turned into its own
        // state by convert_to_state), over four partitions of small batches.
        let got = grouped(&common::context(d._dir.path(), true).await, sql).await;
        for (model, rows) in &by_model {
            close(
                &format!("{sql} skipping model {model}"),
                got[model],
                reference(&loss, rows, weighted),
            );
        }
    }
}

#[tokio::test]
async fn regression_metrics_is_a_struct_of_the_fused_pass() {
    let d = data("sql metrics").await;
    let kept: Vec<&Row> = d
        .rows
        .iter()
        .filter(|r| r.p.is_some() && r.y.is_some())
        .collect();
    let p: Vec<f32> = kept.iter().map(|r| r.p.unwrap()).collect();
    let y: Vec<f32> = kept.iter().map(|r| r.y.unwrap()).collect();
    let want = lossgpu::Engine::cpu()
        .regression_metrics(&LossInput::new(&p, &y), 1.0, 0.5)
        .unwrap();
    for sql in [
        "SELECT regression_metrics(p, y) FROM t",
        "SELECT regression_metrics(p, y) FROM t GROUP BY 1 = 1",
    ] {
        let batches = d.ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let b = batches.iter().find(|b| b.num_rows() > 0).unwrap();
        let s = b.column(b.num_columns() - 1).as_struct();
        let field = |name: &str| {
            s.column_by_name(name)
                .unwrap()
                .as_primitive::<Float64Type>()
                .value(0)
        };
        for (name, w) in [
            ("mse", want.mse),
            ("rmse", want.rmse),
            ("mae", want.mae),
            ("mape", want.mape),
            ("smape", want.smape),
            ("huber", want.huber),
            ("log_cosh", want.log_cosh),
            ("quantile", want.quantile),
        ] {
            close(&format!("{sql} {name}"), Some(field(name)), Some(w));
        }
        let n = s
            .column_by_name("n")
            .unwrap()
            .as_primitive::<UInt64Type>()
            .value(0);
        assert_eq!(n as usize, kept.len(), "{sql}: n");
    }
}

#[tokio::test]
async fn nulls_half_columns_nan_and_errors() {
    let d = data("sql nulls").await;
    let all: Vec<&Row> = d.rows.iter().collect();
    // Float16 columns are read as f16: the library's value on the same halves.
    let got = scalar(&d.ctx, "SELECT loss_mse(h, y16) FROM t").await;
    let halves: Vec<Row> = d
        .rows
        .iter()
        .map(|r| Row {
            p: r.p.map(|v| f16::from_f32(v).to_f32()),
            y: r.y.map(|v| f16::from_f32(v).to_f32()),
            ..*r
        })
        .collect();
    close(
        "f16 columns",
        got,
        reference(&Loss::Mse, &halves.iter().collect::<Vec<_>>(), false),
    );
    // Over no rows: NULL, as AVG.
    let got = scalar(&d.ctx, "SELECT loss_mse(p, y) FROM t WHERE model < 0").await;
    assert_eq!(got, None);
    // NaN propagates.
    let got = scalar(
        &d.ctx,
        "SELECT loss_mae(CASE WHEN model = 5 THEN 'NaN'::double ELSE p END, y) FROM t",
    )
    .await;
    assert!(got.is_some_and(f64::is_nan), "{got:?}");
    // A value outside the domain is an error that names it.
    let err = d
        .ctx
        .sql("SELECT loss_hinge(p, y) FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("hinge") && err.contains("target"), "{err}");
    // A bad parameter, and a parameter the loss does not take.
    let bad = d.ctx.sql("SELECT loss_huber(p, y, -1.0) FROM t").await;
    let err = match bad {
        Ok(df) => df.collect().await.unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("delta"), "{err}");
    let bad = d.ctx.sql("SELECT loss_mse(p, y, 2.0) FROM t").await;
    let err = match bad {
        Ok(df) => df.collect().await.unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("no parameter"), "{err}");
    // Without registration the function is unknown.
    let bare = SessionContext::new();
    let err = bare
        .sql("SELECT loss_mse(1.0, 2.0)")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("loss_mse"), "{err}");
    drop(all);
}
