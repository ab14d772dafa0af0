//! `lossgpu sql`: runs the `lossgpu-sql` program (crates/lossgpu-sql),
//! which holds DataFusion, so that this crate and its main job build
//! without it. The program is found through `LOSSGPU_SQL`, else next to
//! this executable, else on PATH; its output and exit status are passed
//! through.

use super::output::Format;
use super::BackendChoice;
use lossgpu::{Error, Result};
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The query: loss_NAME(pred, target [, weight] [, parameters]),
    /// regression_metrics(pred, target [, weight]) and
    /// cross_entropy(logits_list, label [, weight]) are aggregates; a quoted
    /// path or glob in FROM is a table.
    query: String,
    /// A table: NAME=PATH (a Parquet or CSV file, a directory of them, or a glob).
    #[arg(long = "table", value_name = "NAME=PATH")]
    tables: Vec<String>,
    /// Run the query on the Ballista scheduler at df://HOST:PORT (a cluster
    /// of `lossgpu-scheduler` and `lossgpu-executor`).
    #[arg(long, value_name = "df://HOST:PORT")]
    cluster: Option<String>,
}

/// The program and how it was found.
fn program() -> PathBuf {
    if let Some(p) = std::env::var_os("LOSSGPU_SQL") {
        return PathBuf::from(p);
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("lossgpu-sql")))
        .filter(|p| p.is_file());
    sibling.unwrap_or_else(|| PathBuf::from("lossgpu-sql"))
}

/// Runs the query; the exit status is the program's.
pub fn run(args: Args, backend: BackendChoice, format: Format) -> Result<u8> {
    let program = program();
    let mut cmd = Command::new(&program);
    cmd.arg(&args.query)
        .arg("--format")
        .arg(match format {
            Format::Text => "text",
            Format::Json => "json",
        })
        .arg("--backend")
        .arg(match backend {
            BackendChoice::Auto => "auto",
            BackendChoice::Gpu => "gpu",
            BackendChoice::Cpu => "cpu",
        });
    for t in &args.tables {
        cmd.arg("--table").arg(t);
    }
    if let Some(url) = &args.cluster {
        cmd.arg("--cluster").arg(url);
    }
    let status = cmd.status().map_err(|e| {
        Error::InvalidInput(format!(
            "lossgpu sql runs the lossgpu-sql program, which could not be started ({}: {e}); \
             build it with `cargo build --release -p lossgpu-sql` (it lands next to lossgpu) \
             or set LOSSGPU_SQL to its path",
            program.display()
        ))
    })?;
    Ok(status.code().map_or(2, |c| c.clamp(0, 255) as u8))
}
