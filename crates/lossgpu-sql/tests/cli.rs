//! The lossgpu-sql program end to end (what `lossgpu sql` runs): tables
//! from --table and from a quoted glob in FROM, Parquet and CSV, text and
//! JSON output (SPEC §4's fields, NaN as "NaN"), GROUP BY with the loss,
//! the metrics struct and cross_entropy, and errors as one line with
//! status 2.

use datafusion::arrow::array::{
    ArrayRef, Float32Array, Float64Array, Int64Array, ListArray, RecordBatch,
};
use datafusion::arrow::datatypes::{Field, Float32Type, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn sql(args: &[&str]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_lossgpu-sql"))
        .args(args)
        .args(["--backend", "cpu"])
        .output()
        .unwrap();
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let o = sql(&all);
    assert_eq!(o.code, Some(0), "{args:?}: {}", o.stderr);
    assert_eq!(o.stdout.trim().lines().count(), 1, "{}", o.stdout);
    serde_json::from_str(&o.stdout).unwrap()
}

/// model, p, y and a list of 3 logits per row, with the row's class in y3.
struct Rows {
    model: Vec<i64>,
    p: Vec<f32>,
    y: Vec<f64>,
    logits: Vec<[f32; 3]>,
    y3: Vec<i64>,
}

fn rows(n: usize, start: usize) -> Rows {
    let f = |i: usize, k: f32| (i as f32 * 0.37 + k).sin() * 3.0;
    let idx: Vec<usize> = (start..start + n).collect();
    Rows {
        model: idx.iter().map(|&i| (i % 3) as i64).collect(),
        p: idx.iter().map(|&i| f(i, 0.0)).collect(),
        y: idx.iter().map(|&i| f(i, 1.0) as f64).collect(),
        logits: idx
            .iter()
            .map(|&i| [f(i, 2.0), f(i, 3.0), f(i, 4.0)])
            .collect(),
        y3: idx.iter().map(|&i| (i % 3) as i64).collect(),
    }
}

fn write_parquet(path: &Path, r: &Rows) {
    let logits = ListArray::from_iter_primitive::<Float32Type, _, _>(
        r.logits
            .iter()
            .map(|l| Some(l.iter().map(|&v| Some(v)).collect::<Vec<_>>())),
    );
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(r.model.clone())),
        Arc::new(Float32Array::from(r.p.clone())),
        Arc::new(Float64Array::from(r.y.clone())),
        Arc::new(logits),
        Arc::new(Int64Array::from(r.y3.clone())),
    ];
    let names = ["model", "p", "y", "logits", "y3"];
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .zip(&columns)
            .map(|(n, c)| Field::new(*n, c.data_type().clone(), false))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Two Parquet files (1,001 and 2,002 rows) and a CSV of the first.
fn data() -> (tempfile::TempDir, Rows) {
    let dir = tempfile::tempdir().unwrap();
    let a = rows(1001, 0);
    let b = rows(2002, 1001);
    std::fs::create_dir(dir.path().join("preds")).unwrap();
    write_parquet(&dir.path().join("preds/a.parquet"), &a);
    write_parquet(&dir.path().join("preds/b.parquet"), &b);
    let mut csv = String::from("model,p,y\n");
    for i in 0..a.p.len() {
        csv += &format!("{},{},{}\n", a.model[i], a.p[i], a.y[i]);
    }
    std::fs::write(dir.path().join("a.csv"), csv).unwrap();
    let mut all = a;
    all.model.extend(b.model);
    all.p.extend(b.p);
    all.y.extend(b.y);
    all.logits.extend(b.logits);
    all.y3.extend(b.y3);
    (dir, all)
}

fn mse(r: &Rows, model: Option<i64>) -> f64 {
    let (mut s, mut n) = (0.0, 0.0);
    for i in 0..r.p.len() {
        if model.is_none_or(|m| r.model[i] == m) {
            s += (r.p[i] as f64 - r.y[i] as f32 as f64).powi(2);
            n += 1.0;
        }
    }
    s / n
}

fn cross_entropy(r: &Rows, model: i64) -> f64 {
    let (mut s, mut n) = (0.0, 0.0);
    for i in (0..r.p.len()).filter(|&i| r.model[i] == model) {
        let z = r.logits[i].map(|v| v as f64);
        let max = z.iter().cloned().fold(f64::MIN, f64::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        s += lse - z[r.y3[i] as usize];
        n += 1.0;
    }
    s / n
}

fn close(what: &str, got: &Value, want: f64) {
    let g = got.as_f64().unwrap_or_else(|| panic!("{what}: {got}"));
    assert!(
        (g - want).abs() <= 1e-5 * want.abs(),
        "{what}: got {g}, want {want}"
    );
}

#[test]
fn group_by_query_over_a_table_gives_spec_json() {
    let (dir, r) = data();
    let table = format!("t={}", dir.path().join("preds").display());
    let v = json(&[
        "SELECT model, loss_mse(p, y) AS mse, regression_metrics(p, y) AS m, \
         cross_entropy(logits, y3) AS ce FROM t GROUP BY model ORDER BY model",
        "--table",
        &table,
    ]);
    assert_eq!(v["columns"], serde_json::json!(["model", "mse", "m", "ce"]));
    assert_eq!(v["backend"], "cpu");
    assert!(v["device"].is_string());
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (m, row) in rows.iter().enumerate() {
        let m = m as i64;
        assert_eq!(row[0], m);
        close("mse", &row[1], mse(&r, Some(m)));
        close("struct mse", &row[2]["mse"], mse(&r, Some(m)));
        let keys: Vec<&String> = row[2].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["mse", "rmse", "mae", "mape", "smape", "huber", "log_cosh", "quantile", "n"]
        );
        close("cross_entropy", &row[3], cross_entropy(&r, m));
    }
}

#[test]
fn a_quoted_glob_and_a_csv_are_tables() {
    let (dir, r) = data();
    let glob = dir.path().join("preds/*.parquet");
    let v = json(&[&format!("SELECT loss_mse(p, y) FROM '{}'", glob.display())]);
    close("glob", &v["rows"][0][0], mse(&r, None));
    let csv = format!("c={}", dir.path().join("a.csv").display());
    let v = json(&["SELECT loss_mse(p, y) FROM c", "--table", &csv]);
    let first = rows(1001, 0);
    close("csv", &v["rows"][0][0], mse(&first, None));
    // NaN is the string "NaN", as in every lossgpu report.
    let v = json(&["SELECT loss_mse(p, 'NaN'::double) FROM c", "--table", &csv]);
    assert_eq!(v["rows"][0][0], "NaN");
    // Text: the table, then the backend.
    let o = sql(&["SELECT loss_mse(p, y) AS mse FROM c", "--table", &csv]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.stdout.contains("| mse"), "{}", o.stdout);
    assert!(o.stdout.contains("backend: cpu"), "{}", o.stdout);
}

#[test]
fn errors_are_one_line_with_status_two() {
    let (dir, _) = data();
    let table = format!("t={}", dir.path().join("preds").display());
    for (args, needle) in [
        (vec!["SELECT loss_mse(p, y) FROM nowhere"], "nowhere"),
        (
            vec!["SELECT loss_mse(p) FROM t", "--table", &table],
            "loss_mse",
        ),
        (
            vec!["SELECT loss_hinge(p, y) FROM t", "--table", &table],
            "hinge",
        ),
        (vec!["SELECT 1", "--table", "no-equals-sign"], "NAME=PATH"),
        (
            vec!["SELECT * FROM t", "--table", "t=/nonexistent/x.parquet"],
            "nonexistent",
        ),
    ] {
        let o = sql(&args);
        assert_eq!(o.code, Some(2), "{args:?}: {}", o.stdout);
        assert_eq!(o.stderr.lines().count(), 1, "{args:?}: {}", o.stderr);
        assert!(o.stderr.starts_with("lossgpu: error: "), "{}", o.stderr);
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    }
}

/// `--cluster`: the query runs on a Ballista scheduler and executor started
/// here on localhost (lossgpu's configurations; the executor in this
/// process), and gives the values of the local run; a scheduler that is not
/// there is one line and status 2.
#[cfg(feature = "cluster")]
#[test]
fn cluster_runs_the_query_on_ballista() {
    use ballista_executor::executor_process::start_executor_process;
    let (dir, r) = data();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let work = tempfile::tempdir().unwrap();
    let port = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = lossgpu_ballista::scheduler_config("127.0.0.1", "127.0.0.1", port);
        let (scheduler, _) = lossgpu_ballista::start_scheduler(listener, config)
            .await
            .unwrap();
        let mut executor = lossgpu_ballista::executor_config("127.0.0.1", port);
        executor.bind_host = "127.0.0.1".into();
        executor.external_host = Some("127.0.0.1".into());
        (executor.port, executor.grpc_port) = (free(), free());
        executor.vcores = 2;
        executor.work_dir = Some(work.path().to_str().unwrap().into());
        executor.executor_heartbeat_interval_seconds = 1;
        tokio::spawn(start_executor_process(Arc::new(executor)));
        let start = std::time::Instant::now();
        while !scheduler.is_ready() {
            assert!(start.elapsed().as_secs() < 120, "no executor in 120 s");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        port
    });
    let url = format!("df://127.0.0.1:{port}");
    let table = format!("t={}", dir.path().join("preds").display());
    let query = "SELECT model, loss_mse(p, y) AS mse, cross_entropy(logits, y3) AS ce \
                 FROM t GROUP BY model ORDER BY model";
    let o = Command::new(env!("CARGO_BIN_EXE_lossgpu-sql"))
        .args([
            query,
            "--table",
            &table,
            "--cluster",
            &url,
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["backend"], "cluster");
    assert_eq!(v["device"], url.as_str());
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (m, row) in rows.iter().enumerate() {
        assert_eq!(row[0], m as i64);
        close("cluster mse", &row[1], mse(&r, Some(m as i64)));
        close(
            "cluster cross_entropy",
            &row[2],
            cross_entropy(&r, m as i64),
        );
    }
    // Nothing listens on the scheduler's port once the runtime is gone.
    drop(runtime);
    for args in [
        vec!["SELECT 1", "--cluster", url.as_str()],
        vec!["SELECT 1", "--cluster", url.as_str(), "--backend", "gpu"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_lossgpu-sql"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("lossgpu: error: "), "{stderr}");
    }
}
