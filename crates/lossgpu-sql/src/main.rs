//! `lossgpu-sql`: SQL (DataFusion) over Parquet and CSV with lossgpu's
//! aggregates registered; `lossgpu sql` (SPEC §4) runs this program.
//!
//! Exit status: 0 on success, 2 on any error, with one line on stderr.

mod json;

use clap::{Parser, ValueEnum};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use lossgpu::Engine;
use std::process::ExitCode;

/// SQL over Parquet/CSV with lossgpu's losses and metrics as aggregates.
#[derive(Debug, Parser)]
#[command(name = "lossgpu-sql", version)]
struct Args {
    /// The query. A quoted path or glob in FROM is a table
    /// (`FROM 'preds/*.parquet'`).
    query: String,
    /// A table: NAME=PATH, a Parquet or CSV file (by its extension), a
    /// directory of them, or a glob.
    #[arg(long = "table", value_name = "NAME=PATH")]
    tables: Vec<String>,
    /// Readable lines, or exactly one JSON object.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Where large batches are evaluated: the GPU if an adapter exists
    /// (auto), only the GPU, or the CPU.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
    /// Run the query on the Ballista scheduler at df://HOST:PORT (its
    /// executors choose their backend; table paths must be the same on
    /// every machine).
    #[cfg(feature = "cluster")]
    #[arg(long, value_name = "df://HOST:PORT")]
    cluster: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Auto,
    Gpu,
    Cpu,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            return fail(
                e.render()
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or("bad arguments"),
            )
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

/// One line on stderr and status 2.
fn fail(message: &str) -> ExitCode {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = line.trim_start_matches("error: ");
    eprintln!("lossgpu: error: {line}");
    ExitCode::from(2)
}

async fn run(args: Args) -> Result<()> {
    #[cfg(feature = "cluster")]
    if let Some(url) = &args.cluster {
        if args.backend != Backend::Auto {
            return Err(DataFusionError::Plan(
                "--backend with --cluster: each executor chooses its own (lossgpu-executor --backend)"
                    .into(),
            ));
        }
        let ctx = lossgpu_ballista::connect(url).await?.enable_url_table();
        let (columns, batches) = query(&ctx, &args)
            .await
            .map_err(lossgpu_ballista::clarify)?;
        match args.format {
            Format::Text => println!(
                "{}\nbackend: cluster\ndevice: {url}",
                pretty_format_batches(&batches)?
            ),
            Format::Json => println!("{}", json::report(&columns, &batches, "cluster", url)?),
        }
        return Ok(());
    }
    let engine = match args.backend {
        Backend::Auto => Engine::new(),
        Backend::Gpu => Engine::gpu().map_err(|e| DataFusionError::Execution(e.to_string()))?,
        Backend::Cpu => Engine::cpu(),
    };
    lossgpu_datafusion::set_large_batch_engine(engine);
    let ctx = SessionContext::new().enable_url_table();
    lossgpu_datafusion::register(&ctx);
    let (columns, batches) = query(&ctx, &args).await?;
    let engine = lossgpu_datafusion::large_batch_engine();
    let backend = backend_name(args.backend, engine);
    match args.format {
        Format::Text => print_text(&batches, engine, backend)?,
        Format::Json => println!(
            "{}",
            json::report(&columns, &batches, backend, &engine.device_name())?
        ),
    }
    Ok(())
}

/// Registers the tables and runs the query: its column names and batches.
async fn query(ctx: &SessionContext, args: &Args) -> Result<(Vec<String>, Vec<RecordBatch>)> {
    for table in &args.tables {
        register(ctx, table).await?;
    }
    let df = ctx.sql(&args.query).await?;
    let columns: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    Ok((columns, df.collect().await?))
}

/// "auto" where large batches go to whichever side measured faster, else
/// the engine's backend ("gpu" or "cpu"; "cpu" for auto without an
/// adapter).
fn backend_name(choice: Backend, engine: &Engine) -> &'static str {
    match (choice, engine.backend()) {
        (Backend::Auto, lossgpu::Backend::Gpu) => "auto",
        (_, b) => b.name(),
    }
}

/// Registers `NAME=PATH`: CSV where the path ends in .csv, else Parquet.
async fn register(ctx: &SessionContext, table: &str) -> Result<()> {
    let Some((name, path)) = table.split_once('=') else {
        return Err(DataFusionError::Plan(format!(
            "--table takes NAME=PATH, got {table:?}"
        )));
    };
    if path.ends_with(".csv") {
        ctx.register_csv(name, path, CsvReadOptions::new()).await
    } else {
        ctx.register_parquet(name, path, ParquetReadOptions::default())
            .await
    }
}

/// The table, the backend (for auto, which side each kind of batch ran
/// on, as measured) and the device.
fn print_text(batches: &[RecordBatch], engine: &Engine, backend: &str) -> Result<()> {
    println!("{}", pretty_format_batches(batches)?);
    match engine.fallback_reason() {
        Some(reason) => println!("backend: {backend} ({reason})"),
        None => println!("backend: {backend}"),
    }
    for c in engine.auto_choices() {
        println!(
            "  {} on n ≤ 2^{}: {} (gpu {:.3} ms, cpu {:.3} ms)",
            c.op,
            c.size_class,
            c.backend.name(),
            c.gpu_seconds * 1e3,
            c.cpu_seconds * 1e3
        );
    }
    println!("device: {}", engine.device_name());
    Ok(())
}
