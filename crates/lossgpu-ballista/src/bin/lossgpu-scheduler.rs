//! `lossgpu-scheduler`: a Ballista scheduler whose client sessions have
//! lossgpu's SQL aggregates. Serves until stopped.

use clap::Parser;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

/// A Ballista scheduler with lossgpu's SQL aggregates.
#[derive(Debug, Parser)]
#[command(name = "lossgpu-scheduler", version)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_host: String,
    /// The host name executors use to reach this scheduler.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// The gRPC port clients (`df://host:port`) and executors connect to.
    #[arg(long, default_value_t = 50050)]
    port: u16,
    /// Seconds without a heartbeat after which an executor is lost and its
    /// tasks run elsewhere.
    #[arg(long, default_value_t = 180)]
    executor_timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = lossgpu_ballista::scheduler_config(&args.bind_host, &args.host, args.port);
    config.executor_timeout_seconds = args.executor_timeout;
    config.expire_dead_executor_interval_seconds = args.executor_timeout.clamp(1, 15);
    let address: SocketAddr = match format!("{}:{}", args.bind_host, args.port).parse() {
        Ok(a) => a,
        Err(e) => return fail(&format!("--bind-host {}: {e}", args.bind_host)),
    };
    let cluster = match ballista_scheduler::cluster::BallistaCluster::new_from_config(&config).await
    {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    eprintln!(
        "lossgpu-scheduler: listening on {address}, executors reach it as {}:{}",
        args.host, args.port
    );
    match ballista_scheduler::scheduler_process::start_server(cluster, address, Arc::new(config))
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("lossgpu-scheduler: error: {message}");
    ExitCode::from(2)
}
