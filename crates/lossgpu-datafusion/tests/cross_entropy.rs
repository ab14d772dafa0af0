//! `cross_entropy` over list columns of logits in multi-file Parquet (odd
//! row counts, several row groups, NULL rows and elements, ignored labels,
//! f16 FixedSizeList and f32 List logits, probability targets, rows of
//! several lengths) against an f64 reference, with and without GROUP BY,
//! and its errors.

use datafusion::arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float16Array, Float32Array, Float64Array, Int64Array,
    ListArray, RecordBatch,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;

mod common;
use common::{close, grouped, scalar};

const M: usize = 10;

/// One row; None is NULL.
#[derive(Clone)]
struct Row {
    model: i64,
    /// M logits, or NULL; an element may be NULL.
    logits: Option<Vec<Option<f32>>>,
    /// A class in [0, M), −100 (ignored) or NULL.
    label: Option<i64>,
    /// M probabilities.
    probs: Vec<f64>,
    w: Option<f32>,
    /// 3 or 5 logits, lengths in runs.
    varied: Vec<f32>,
}

fn rows(rng: &mut StdRng, n: usize, groups: i64) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let logits = (rng.random::<f32>() > 0.02).then(|| {
                (0..M)
                    .map(|_| (rng.random::<f32>() > 0.001).then(|| rng.random_range(-8.0..8.0)))
                    .collect()
            });
            let label = match rng.random::<f32>() {
                u if u < 0.02 => None,
                u if u < 0.05 => Some(-100),
                _ => Some(rng.random_range(0..M as i64)),
            };
            let raw: Vec<f64> = (0..M).map(|_| rng.random::<f64>()).collect();
            let total: f64 = raw.iter().sum();
            let len = if (i / 37) % 2 == 0 { 3 } else { 5 };
            Row {
                model: rng.random_range(0..groups),
                logits,
                label,
                probs: raw.iter().map(|v| v / total).collect(),
                w: (rng.random::<f32>() > 0.02).then(|| rng.random_range(0.0..2.0)),
                varied: (0..len).map(|_| rng.random_range(-4.0..4.0)).collect(),
            }
        })
        .collect()
}

/// Writes `rows` as Parquet in row groups of `group_rows`: logits as a List
/// of Float32, h (the same logits) as a FixedSizeList of M Float16, probs
/// as a List of Float64, varied as a List of Float32.
fn write(path: &std::path::Path, rows: &[Row], group_rows: usize) {
    let item = |t: DataType| Arc::new(Field::new("item", t, true));
    let logits = ListArray::from_iter_primitive::<datafusion::arrow::datatypes::Float32Type, _, _>(
        rows.iter().map(|r| r.logits.clone()),
    );
    let halves = Float16Array::from_iter(rows.iter().flat_map(|r| match &r.logits {
        Some(l) => l.iter().map(|v| v.map(f16::from_f32)).collect::<Vec<_>>(),
        None => vec![Some(f16::ZERO); M],
    }));
    let h_valid = rows.iter().map(|r| r.logits.is_some()).collect::<Vec<_>>();
    let h = FixedSizeListArray::new(
        item(DataType::Float16),
        M as i32,
        Arc::new(halves),
        Some(h_valid.into()),
    );
    let probs = ListArray::new(
        item(DataType::Float64),
        OffsetBuffer::from_lengths(rows.iter().map(|_| M)),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().flat_map(|r| r.probs.clone()),
        )),
        None,
    );
    let varied = ListArray::new(
        item(DataType::Float32),
        OffsetBuffer::from_lengths(rows.iter().map(|r| r.varied.len())),
        Arc::new(Float32Array::from_iter_values(
            rows.iter().flat_map(|r| r.varied.clone()),
        )),
        None,
    );
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.model))),
        Arc::new(logits),
        Arc::new(h),
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.label))),
        Arc::new(probs),
        Arc::new(Float32Array::from_iter(rows.iter().map(|r| r.w))),
        Arc::new(varied),
    ];
    let names = ["model", "logits", "h", "label", "probs", "w", "varied"];
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .zip(&columns)
            .map(|(n, c)| Field::new(*n, c.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    common::write_parquet(path, &batch, group_rows);
}

/// How the reference reads a row.
#[derive(Clone, Copy)]
struct Case {
    half: bool,
    weighted: bool,
    smoothing: f64,
    probabilities: bool,
    varied: bool,
}

/// A row's logits as the call reads them; None where the row is skipped.
fn logits_of(r: &Row, case: Case) -> Option<Vec<f64>> {
    if case.varied {
        return Some(r.varied.iter().map(|&v| v as f64).collect());
    }
    let l = r.logits.as_ref()?;
    l.iter()
        .map(|v| {
            v.map(|v| match case.half {
                true => f16::from_f32(v).to_f64(),
                false => v as f64,
            })
        })
        .collect()
}

/// The f64 reference: Σ w·l / Σ w over the rows kept and not ignored, NaN
/// if every kept row is ignored, None over no rows.
fn reference(rows: &[&Row], case: Case) -> Option<f64> {
    let (mut sum, mut wsum, mut kept) = (0.0, 0.0, 0);
    for r in rows {
        let Some(z) = logits_of(r, case) else {
            continue;
        };
        let w = match (case.weighted, r.w) {
            (false, _) => 1.0,
            (true, Some(w)) => w as f64,
            (true, None) => continue,
        };
        let m = z.len();
        let q: Vec<f64> = if case.probabilities {
            r.probs.clone()
        } else {
            match r.label {
                None => continue,
                Some(-100) => {
                    kept += 1;
                    continue;
                }
                Some(y) => (0..m).map(|j| (j as i64 == y) as u8 as f64).collect(),
            }
        };
        kept += 1;
        let max = z.iter().cloned().fold(f64::MIN, f64::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let e = case.smoothing;
        let l: f64 = (0..m)
            .map(|j| ((1.0 - e) * q[j] + e / m as f64) * (lse - z[j]))
            .sum();
        sum += w * l;
        wsum += w;
    }
    match (kept, wsum) {
        (0, _) => None,
        (_, 0.0) => Some(f64::NAN),
        _ => Some(sum / wsum),
    }
}

/// Three files of 20,001, 1 and 3,007 rows in row groups of 4,000, in 97
/// models.
struct Data {
    dir: tempfile::TempDir,
    rows: Vec<Row>,
}

fn data(label: &str) -> Data {
    let seed = common::seed(label);
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for (k, n) in [20_001, 1, 3_007].into_iter().enumerate() {
        let part = rows(&mut rng, n, 97);
        write(&dir.path().join(format!("part{k}.parquet")), &part, 4_000);
        all.extend(part);
    }
    Data { dir, rows: all }
}

const PLAIN: Case = Case {
    half: false,
    weighted: false,
    smoothing: 0.0,
    probabilities: false,
    varied: false,
};

/// The calls checked: SQL arguments and how the reference reads them.
fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("logits, label", PLAIN),
        (
            "h, label",
            Case {
                half: true,
                ..PLAIN
            },
        ),
        (
            "logits, label, w",
            Case {
                weighted: true,
                ..PLAIN
            },
        ),
        (
            "logits, label, w, 0.1",
            Case {
                weighted: true,
                smoothing: 0.1,
                ..PLAIN
            },
        ),
        (
            "logits, probs",
            Case {
                probabilities: true,
                ..PLAIN
            },
        ),
        (
            "h, probs, w, 0.2",
            Case {
                half: true,
                weighted: true,
                smoothing: 0.2,
                probabilities: true,
                ..PLAIN
            },
        ),
        (
            "varied, CASE WHEN label = -100 THEN -100 ELSE label % 3 END",
            Case {
                varied: true,
                ..PLAIN
            },
        ),
    ]
}

/// The labels the reference reads for the varied rows: mod 3 (−100 stays).
fn rows_for(d: &Data, case: Case) -> Vec<Row> {
    d.rows
        .iter()
        .map(|r| Row {
            label: if case.varied {
                r.label.map(|l| if l == -100 { l } else { l % 3 })
            } else {
                r.label
            },
            ..r.clone()
        })
        .collect()
}

#[tokio::test]
async fn cross_entropy_matches_the_reference() {
    let d = data("sql cross_entropy");
    let ctx = common::context(d.dir.path(), false).await;
    for (args, case) in cases() {
        let rows = rows_for(&d, case);
        let all: Vec<&Row> = rows.iter().collect();
        let sql = format!("SELECT cross_entropy({args}) FROM t");
        close(&sql, scalar(&ctx, &sql).await, reference(&all, case));
    }
}

#[tokio::test]
async fn cross_entropy_group_by_matches_the_reference() {
    let d = data("sql cross_entropy group by");
    for skipping in [false, true] {
        let ctx = common::context(d.dir.path(), skipping).await;
        for (args, case) in cases() {
            let rows = rows_for(&d, case);
            let mut by_model: BTreeMap<i64, Vec<&Row>> = BTreeMap::new();
            for r in &rows {
                by_model.entry(r.model).or_default().push(r);
            }
            let sql = format!("SELECT model, cross_entropy({args}) FROM t GROUP BY model");
            let got = grouped(&ctx, &sql).await;
            assert_eq!(got.len(), by_model.len(), "{sql}: groups");
            for (model, rows) in &by_model {
                close(
                    &format!("{sql} (skipping {skipping}) model {model}"),
                    got[model],
                    reference(rows, case),
                );
            }
        }
    }
}

#[tokio::test]
async fn cross_entropy_edges_and_errors() {
    let d = data("sql cross_entropy edges");
    let ctx = common::context(d.dir.path(), false).await;
    // Only ignored rows: NaN, as PyTorch; no rows: NULL.
    let got = scalar(
        &ctx,
        "SELECT cross_entropy(logits, label) FROM t WHERE label = -100",
    )
    .await;
    assert!(got.is_some_and(f64::is_nan), "{got:?}");
    let got = scalar(
        &ctx,
        "SELECT cross_entropy(logits, label) FROM t WHERE model < 0",
    )
    .await;
    assert_eq!(got, None);
    // Logits of ±1e4 stay finite: the loss of a row [1e4, −1e4, …] labelled 1 is 2e4.
    let got = scalar(
        &ctx,
        "SELECT cross_entropy(make_array(10000.0, -10000.0, 0.0), 1) FROM t WHERE model = 3",
    )
    .await
    .unwrap();
    assert!((got - 2e4).abs() <= 1e-5 * 2e4, "{got}");
    // NaN propagates.
    let got = scalar(
        &ctx,
        "SELECT cross_entropy(make_array(CASE WHEN model = 5 THEN 'NaN'::double ELSE 1.0 END, 0.0), 0) FROM t",
    )
    .await;
    assert!(got.is_some_and(f64::is_nan), "{got:?}");
    // Errors name the problem.
    for (sql, needle) in [
        (
            "SELECT cross_entropy(logits, label + 10) FROM t",
            "outside [0, 10)",
        ),
        (
            "SELECT cross_entropy(logits, varied) FROM t",
            "target probabilities",
        ),
        ("SELECT cross_entropy(w, label) FROM t", "list of logits"),
        ("SELECT cross_entropy(logits, 'a') FROM t", "class label"),
        (
            "SELECT cross_entropy(logits, label, w, 0.1, 2.0) FROM t",
            "at most one parameter",
        ),
        (
            "SELECT cross_entropy(logits, label, 2.0) FROM t",
            "smoothing",
        ),
    ] {
        let err = match ctx.sql(sql).await {
            Ok(df) => df
                .collect()
                .await
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string()),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(needle), "{sql}: {err}");
    }
}
