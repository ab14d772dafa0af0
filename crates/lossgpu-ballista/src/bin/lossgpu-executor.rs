//! `lossgpu-executor`: a Ballista executor that runs lossgpu's SQL
//! aggregates, large batches on this machine's GPU where it measured
//! faster. Serves until stopped.

use clap::{Parser, ValueEnum};
use lossgpu::Engine;
use std::process::ExitCode;
use std::sync::Arc;

/// A Ballista executor with lossgpu's SQL aggregates.
#[derive(Debug, Parser)]
#[command(name = "lossgpu-executor", version)]
struct Args {
    /// The scheduler, HOST:PORT.
    #[arg(long, default_value = "localhost:50050")]
    scheduler: String,
    /// The address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_host: String,
    /// The host name the scheduler and clients use to reach this executor
    /// (default: the address the scheduler sees it connect from).
    #[arg(long)]
    host: Option<String>,
    /// The Arrow Flight port (shuffle and results).
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// The gRPC port the scheduler sends tasks to.
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    /// Tasks run at once (default: the CPU's threads).
    #[arg(long)]
    vcores: Option<usize>,
    /// Where shuffle files go (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<String>,
    /// This executor's name in the scheduler (default: a random id).
    #[arg(long)]
    id: Option<String>,
    /// Seconds between heartbeats to the scheduler.
    #[arg(long, default_value_t = 60)]
    heartbeat: u64,
    /// Where large batches are evaluated: the GPU where it measured faster
    /// (auto), only the GPU, or the CPU.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Auto,
    Gpu,
    Cpu,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let Some((host, port)) = args.scheduler.rsplit_once(':') else {
        return fail(&format!(
            "--scheduler takes HOST:PORT, got {:?}",
            args.scheduler
        ));
    };
    let Ok(port) = port.parse::<u16>() else {
        return fail(&format!("--scheduler: {port:?} is not a port"));
    };
    let engine = match args.backend {
        Backend::Auto => Engine::auto(),
        Backend::Gpu => match Engine::gpu() {
            Ok(e) => e,
            Err(e) => return fail(&e.to_string()),
        },
        Backend::Cpu => Engine::cpu(),
    };
    let large = match (args.backend, engine.backend()) {
        (Backend::Auto, lossgpu::Backend::Gpu) => format!(
            "on {} where it measures faster than the CPU",
            engine.device_name()
        ),
        _ => format!("on {}", engine.device_name()),
    };
    eprintln!("lossgpu-executor: large batches {large}; scheduler {host}:{port}");
    lossgpu_datafusion::set_large_batch_engine(engine);
    let mut config = lossgpu_ballista::executor_config(host, port);
    config.bind_host = args.bind_host;
    config.external_host = args.host;
    config.port = args.port;
    config.grpc_port = args.grpc_port;
    config.work_dir = args.work_dir;
    config.executor_heartbeat_interval_seconds = args.heartbeat;
    // Wait for a scheduler that starts at the same time.
    config.scheduler_connect_timeout_seconds = 30;
    if let Some(v) = args.vcores {
        config.vcores = v;
    }
    if let Some(id) = args.id {
        config.executor_id = id;
    }
    match ballista_executor::executor_process::start_executor_process(Arc::new(config)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("lossgpu-executor: error: {message}");
    ExitCode::from(2)
}
