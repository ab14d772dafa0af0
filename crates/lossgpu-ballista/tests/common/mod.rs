//! What the cluster tests share: Parquet data, a scheduler in this process
//! on a free port, executors as child processes (the `lossgpu-executor`
//! program) that a test can kill, and what the scheduler recorded.

#![allow(dead_code)] // each test file uses its own part

use ballista::prelude::SessionConfigExt;
use ballista_core::serde::protobuf::task_status;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::state::execution_stage::ExecutionStage;
use datafusion::arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::displayable;
use datafusion::prelude::*;
use lossgpu_ballista::Scheduler;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Classes of the logits column.
pub const CLASSES: i32 = 8;

/// LOSSGPU_TEST_SEED, or a fresh seed, printed so a failure can be rerun.
pub fn seed(label: &str) -> u64 {
    let seed = std::env::var("LOSSGPU_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("{label}: LOSSGPU_TEST_SEED={seed}");
    seed
}

/// `files` Parquet files in `dir` of odd row counts (row groups of 4,000):
/// model (0..7), p and y (p NULL every 101st row), logits (8 per row) and a
/// label.
pub fn write_data(dir: &Path, files: usize, rows: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for f in 0..files {
        let n = rows + 2 * f + 1;
        let model = Int64Array::from_iter_values((0..n).map(|i| (i % 7) as i64));
        let p = Float32Array::from_iter(
            (0..n).map(|i| (i % 101 != 5).then(|| rng.random::<f32>() * 4.0 - 2.0)),
        );
        let y = Float32Array::from_iter_values((0..n).map(|_| rng.random::<f32>() * 4.0 - 2.0));
        let values = Float32Array::from_iter_values(
            (0..n * CLASSES as usize).map(|_| rng.random::<f32>() * 6.0 - 3.0),
        );
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let logits = FixedSizeListArray::new(item, CLASSES, Arc::new(values), None);
        let label =
            Int64Array::from_iter_values((0..n).map(|_| rng.random_range(0..CLASSES as i64)));
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("model", Arc::new(model)),
            ("p", Arc::new(p)),
            ("y", Arc::new(y)),
            ("logits", Arc::new(logits)),
            ("label", Arc::new(label)),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(4000))
            .build();
        let file = std::fs::File::create(dir.join(format!("part-{f}.parquet"))).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
}

/// A free TCP port on localhost (Ballista's executors advertise the ports
/// they are given, so port 0 cannot be passed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The scheduler's settings for the tests: tasks dealt to executors in
/// turn, and an executor lost after 5 s without a heartbeat.
pub fn test_config(config: SchedulerConfig, executors: usize) -> SchedulerConfig {
    SchedulerConfig {
        task_distribution: TaskDistributionPolicy::RoundRobin,
        executor_timeout_seconds: 5,
        expire_dead_executor_interval_seconds: 1,
        no_executors_grace_period_seconds: 5,
        min_ready_executors: executors,
        ..config
    }
}

/// A scheduler in this process on a free port.
pub async fn scheduler(config: SchedulerConfig) -> (Scheduler, BallistaCluster, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = SchedulerConfig {
        bind_port: port,
        ..config
    };
    let (scheduler, cluster) = lossgpu_ballista::start_scheduler(listener, config)
        .await
        .unwrap();
    (scheduler, cluster, port)
}

/// The scheduler's config with lossgpu's aggregates, for the tests.
pub fn lossgpu_config(executors: usize) -> SchedulerConfig {
    test_config(
        lossgpu_ballista::scheduler_config("127.0.0.1", "127.0.0.1", 0),
        executors,
    )
}

/// A `lossgpu-executor` process, killed when dropped.
pub struct Executor {
    pub id: String,
    child: Child,
    _work: tempfile::TempDir,
}

impl Executor {
    /// Starts `lossgpu-executor` as `id` with one task slot and a heartbeat
    /// a second, large batches on `backend`.
    pub fn start(id: &str, scheduler_port: u16, backend: &str) -> Executor {
        let work = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lossgpu-executor"))
            .args(["--scheduler", &format!("127.0.0.1:{scheduler_port}")])
            .args(["--bind-host", "127.0.0.1", "--host", "127.0.0.1"])
            .args(["--port", &free_port().to_string()])
            .args(["--grpc-port", &free_port().to_string()])
            .args(["--vcores", "1", "--heartbeat", "1", "--id", id])
            .args(["--backend", backend])
            .arg("--work-dir")
            .arg(work.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Executor {
            id: id.to_string(),
            child,
            _work: work,
        }
    }

    /// SIGKILL: no goodbye to the scheduler.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (at most 120 s) until `executors` executors are registered.
pub async fn wait_ready(scheduler: &Scheduler) {
    let start = Instant::now();
    while !scheduler.is_ready() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the executors did not register within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client of the scheduler on `port` with table `t` over `dir` read in
/// `partitions` partitions, whose tasks take one partition each (so both
/// executors get some) and whose shuffle reads give up quickly.
pub async fn client(port: u16, dir: &Path, partitions: usize) -> SessionContext {
    let config = SessionConfig::new_with_ballista()
        .with_target_partitions(partitions)
        .set_usize("ballista.scheduler.max_partitions_per_task", 1)
        .set_usize("ballista.client.io_retries_times", 1)
        .set_usize("ballista.client.io_retry_wait_time_ms", 200);
    let ctx = lossgpu_ballista::connect_with(&format!("df://127.0.0.1:{port}"), config)
        .await
        .unwrap();
    ctx.register_parquet("t", dir.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    ctx
}

/// The same table in one process, without Ballista, every batch on the
/// CPU backend.
pub async fn single_node(dir: &Path) -> SessionContext {
    lossgpu_datafusion::set_large_batch_engine(lossgpu::Engine::cpu());
    let engine = lossgpu_datafusion::large_batch_engine();
    assert_eq!(
        engine.backend(),
        lossgpu::Backend::Cpu,
        "the reference's engine"
    );
    let ctx = SessionContext::new();
    lossgpu_datafusion::register(&ctx);
    ctx.register_parquet("t", dir.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    ctx
}

/// Every number of a query's result, row by row, as f64 (integers too).
pub async fn numbers(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<Vec<Vec<f64>>> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::Float64Type;
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut rows = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let mut row = Vec::new();
            for c in b.columns() {
                let c = cast(c, &DataType::Float64)?;
                row.push(c.as_primitive::<Float64Type>().value(r));
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Each value within `rtol` of the other (the f64 sums of partial states
/// add in another order on a cluster).
pub fn assert_close(what: &str, got: &[Vec<f64>], want: &[Vec<f64>], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: rows");
    for (r, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: columns");
        for (c, (&a, &b)) in g.iter().zip(w).enumerate() {
            assert!(
                a.is_finite() && (a - b).abs() <= rtol * b.abs(),
                "{what} row {r} column {c}: {a} vs {b}"
            );
        }
    }
}

/// For every job the scheduler knows: its id, the executors that ran a
/// task of a stage whose plan computes partial aggregate states, and its
/// number of stages.
pub async fn partial_state_executors(
    cluster: &BallistaCluster,
) -> Vec<(String, BTreeSet<String>, usize)> {
    let jobs = cluster.job_state();
    let mut out = Vec::new();
    for id in jobs.get_all_jobs().await.unwrap() {
        let Some(graph) = jobs.get_execution_graph(&id).await.unwrap() else {
            continue;
        };
        let mut executors = BTreeSet::new();
        for stage in graph.stages().values() {
            let ExecutionStage::Successful(s) = stage else {
                continue;
            };
            let plan = displayable(s.plan.as_ref()).indent(false).to_string();
            if !plan.contains("mode=Partial") {
                continue;
            }
            for t in &s.task_infos {
                if let task_status::Status::Successful(done) = &t.task_status {
                    executors.insert(done.executor_id.clone());
                }
            }
        }
        out.push((id.to_string(), executors, graph.stage_count()));
    }
    out
}
