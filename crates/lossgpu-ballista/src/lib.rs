//! lossgpu's SQL aggregates (`lossgpu-datafusion`) on an
//! [Apache Ballista](https://datafusion.apache.org/ballista/) cluster.
//!
//! A distributed query splits each aggregate in two stages: every executor
//! reads its share of the files and computes partial states (a loss's
//! `Σ w·l`, `Σ w`; the fused metrics' sums), and one task merges them and
//! finishes. The states merge exactly, so the value is the single-node one
//! up to the order of f64 additions.
//!
//! Ballista finds an aggregate by name, in three places, and each needs
//! lossgpu's functions registered:
//! - the scheduler decodes the client's logical plan with the session
//!   [`session_state`] builds (the `lossgpu-scheduler` program);
//! - each executor decodes its tasks' physical plans with the functions of
//!   [`function_registry`] (the `lossgpu-executor` program);
//! - the client plans the query; [`connect`] registers them again on the
//!   context Ballista returns, because Ballista resets a client's aggregate
//!   functions.
//!
//! Files are read by the executors: a table's path must be the same on every
//! machine (a shared file system or an object store).
//!
//! ```no_run
//! # async fn run() -> datafusion::error::Result<()> {
//! let ctx = lossgpu_ballista::connect("df://scheduler-host:50050").await?;
//! ctx.register_parquet("preds", "/data/preds/", Default::default()).await?;
//! ctx.sql("SELECT model, loss_mse(p, y) FROM preds GROUP BY model")
//!     .await?
//!     .show()
//!     .await?;
//! # Ok(()) }
//! ```

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::ExecutorProcessConfig;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{FunctionRegistry, SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use std::sync::Arc;

/// The scheduler's service, as [`start_scheduler`] returns it.
pub type Scheduler = SchedulerServer<LogicalPlanNode, PhysicalPlanNode>;

/// A client session's state on the scheduler: Ballista's defaults with
/// lossgpu's aggregates. `SchedulerConfig::override_session_builder`.
pub fn session_state(config: SessionConfig) -> Result<SessionState> {
    let mut state = ballista_core::utils::default_session_builder(config)?;
    for udaf in lossgpu_datafusion::udafs() {
        state.register_udaf(Arc::new(udaf))?;
    }
    Ok(state)
}

/// An executor's functions: DataFusion's built-ins and lossgpu's
/// aggregates, under their names and aliases.
/// `ExecutorProcessConfig::override_function_registry`.
pub fn function_registry() -> Arc<BallistaFunctionRegistry> {
    let mut registry = BallistaFunctionRegistry::default();
    for udaf in lossgpu_datafusion::udafs() {
        let udaf = Arc::new(udaf);
        for alias in udaf.aliases() {
            registry
                .aggregate_functions
                .insert(alias.clone(), udaf.clone());
        }
        registry
            .aggregate_functions
            .insert(udaf.name().to_string(), udaf);
    }
    Arc::new(registry)
}

/// Ballista's scheduler configuration with lossgpu's session builder.
pub fn scheduler_config(bind_host: &str, external_host: &str, port: u16) -> SchedulerConfig {
    SchedulerConfig {
        bind_host: bind_host.to_string(),
        external_host: external_host.to_string(),
        bind_port: port,
        override_session_builder: Some(Arc::new(session_state)),
        ..Default::default()
    }
}

/// Ballista's executor configuration with lossgpu's functions, connecting
/// to the scheduler at `scheduler_host:scheduler_port`.
pub fn executor_config(scheduler_host: &str, scheduler_port: u16) -> ExecutorProcessConfig {
    ExecutorProcessConfig {
        scheduler_host: scheduler_host.to_string(),
        scheduler_port,
        override_function_registry: Some(function_registry()),
        ..Default::default()
    }
}

/// Starts a scheduler with `config` on an already bound listener (port 0
/// in tests) and returns its service and cluster state; the service runs
/// on the current tokio runtime until it ends.
pub async fn start_scheduler(
    listener: tokio::net::TcpListener,
    config: SchedulerConfig,
) -> ballista_core::error::Result<(Scheduler, BallistaCluster)> {
    let cluster = BallistaCluster::new_from_config(&config).await?;
    let scheduler = create_scheduler(cluster.clone(), Arc::new(config)).await?;
    tokio::spawn(start_grpc_service_with_listener(
        listener,
        scheduler.clone(),
    ));
    Ok((scheduler, cluster))
}

/// A client context whose queries run on the Ballista scheduler at `url`
/// (`df://host:port`), with lossgpu's aggregates registered.
pub async fn connect(url: &str) -> Result<SessionContext> {
    connect_with(url, SessionConfig::new_with_ballista()).await
}

/// [`connect`] with a session configuration (Ballista's settings such as
/// `ballista.scheduler.max_partitions_per_task` travel with it).
pub async fn connect_with(url: &str, config: SessionConfig) -> Result<SessionContext> {
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build();
    let ctx = SessionContext::remote_with_state(url, state).await?;
    // Ballista replaces the client's aggregates with its own list.
    lossgpu_datafusion::register(&ctx);
    Ok(ctx)
}

/// What Ballista says when an executor rejects a task it cannot decode
/// (push scheduling loses the executor's reason).
const REJECTED: &str = "rejected by executor";

/// `error` with the likely cause added where Ballista reports only that
/// an executor rejected a task: an executor without lossgpu's aggregates
/// (Ballista's own `ballista-executor`) rejects every task that uses one.
/// Other errors are returned as they are.
pub fn clarify(error: DataFusionError) -> DataFusionError {
    let text = error.to_string();
    if !text.contains(REJECTED) {
        return error;
    }
    let mut message = text.as_str();
    while let Some(rest) = message.strip_prefix("Execution error: ") {
        message = rest;
    }
    DataFusionError::Execution(format!(
        "{message} (an executor without lossgpu's aggregates rejects every task that \
         uses one: run lossgpu-executor, or give Ballista's executor \
         lossgpu_ballista::function_registry())"
    ))
}
