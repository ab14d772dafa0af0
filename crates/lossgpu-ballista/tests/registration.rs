//! A cluster where lossgpu's aggregates are missing in one place gives a
//! clear error, not a hang or a value: a plain Ballista scheduler names the
//! function; for a plain Ballista executor (DataFusion's built-ins only)
//! Ballista says a task was rejected and `clarify` names the cause.

mod common;

use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use common::{client, free_port, lossgpu_config, scheduler, test_config, wait_ready, write_data};
use common::{numbers, Executor};
use datafusion::error::DataFusionError;
use std::sync::Arc;
use std::time::Duration;

/// The query's error, within 120 s.
async fn error_of(port: u16, dir: &std::path::Path) -> String {
    let ctx = client(port, dir, 2).await;
    let query = numbers(&ctx, "SELECT loss_mse(p, y) FROM t");
    match tokio::time::timeout(Duration::from_secs(120), query).await {
        Ok(Ok(rows)) => panic!("a value without the aggregate registered: {rows:?}"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => panic!("the query hung"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduler_without_the_aggregates_names_the_function() {
    let data = tempfile::tempdir().unwrap();
    write_data(data.path(), 2, 1000, 1);
    let plain = ballista_scheduler::config::SchedulerConfig {
        bind_host: "127.0.0.1".into(),
        external_host: "127.0.0.1".into(),
        ..Default::default()
    };
    let (scheduler, _cluster, port) = scheduler(test_config(plain, 1)).await;
    let _a = Executor::start("exec-a", port, "cpu");
    wait_ready(&scheduler).await;
    let message = error_of(port, data.path()).await;
    assert!(message.contains("loss_mse"), "{message}");
    let same = lossgpu_ballista::clarify(DataFusionError::Execution(message.clone()));
    assert_eq!(same.to_string(), format!("Execution error: {message}"));
    println!("plain scheduler: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_executor_without_the_aggregates_names_the_function() {
    let data = tempfile::tempdir().unwrap();
    write_data(data.path(), 2, 1000, 2);
    let (scheduler, _cluster, port) = scheduler(lossgpu_config(1)).await;
    // Ballista's own executor, in this process on its own runtime: no
    // override_function_registry.
    let work = tempfile::tempdir().unwrap();
    let config = ExecutorProcessConfig {
        executor_id: "plain".into(),
        bind_host: "127.0.0.1".into(),
        external_host: Some("127.0.0.1".into()),
        port: free_port(),
        grpc_port: free_port(),
        scheduler_host: "127.0.0.1".into(),
        scheduler_port: port,
        scheduler_connect_timeout_seconds: 10,
        vcores: 1,
        work_dir: Some(work.path().to_str().unwrap().into()),
        executor_heartbeat_interval_seconds: 1,
        ..Default::default()
    };
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let _ = runtime.block_on(start_executor_process(Arc::new(config)));
    });
    wait_ready(&scheduler).await;
    // Ballista's push scheduling drops the executor's reason;
    // lossgpu_ballista::clarify (which lossgpu sql applies) names the cause.
    let message = error_of(port, data.path()).await;
    assert!(message.contains("rejected by executor"), "{message}");
    let clear = lossgpu_ballista::clarify(DataFusionError::Execution(message)).to_string();
    assert!(
        clear.contains("lossgpu's aggregates") && clear.contains("lossgpu-executor"),
        "{clear}"
    );
    println!("plain executor: {clear}");
}
