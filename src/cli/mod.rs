//! Argument definitions and dispatch. Each subcommand is one variant of
//! [`Command`] plus one `run` function in its own module that returns a
//! [`Report`]; printing (text or JSON) is shared.

mod activation;
mod bench;
mod chunks;
mod devices;
mod dtypes;
mod gradient;
mod io;
mod linear;
mod loss;
mod metrics;
mod npy;
mod output;
mod plot;
mod sql;
mod streamed;

use clap::{Parser, Subcommand, ValueEnum};
use lossgpu::{Engine, Result};
use output::{Format, Report};

/// Losses, metrics and activations on the GPU (wgpu), with an f64 CPU reference.
#[derive(Debug, Parser)]
#[command(name = "lossgpu", version, about, propagate_version = true)]
// Without a subcommand clap would print the whole help as an error; a
// one-line "requires a subcommand" error keeps stderr to one line.
#[command(arg_required_else_help = false)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Where to compute: the GPU if an adapter exists (auto), only the GPU, or the CPU reference.
    #[arg(long, global = true, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,

    /// Output on stdout: readable lines, or exactly one JSON object.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// How every 2-byte float input is read (default: <f2 is f16, <V2 and |V2 bf16).
    #[arg(long, global = true, value_enum)]
    dtype: Option<dtypes::Half>,

    /// The dtype of every array written (f16 as <f2, bf16 as <V2; rounded to nearest even).
    #[arg(long, global = true, value_enum, default_value_t = dtypes::Out::F32)]
    out_dtype: dtypes::Out,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the GPU adapter the engine would use and the CPU reference.
    Devices,
    /// Apply an activation (or its derivative) elementwise and write the result.
    Activation(activation::Args),
    /// Evaluate a loss (and optionally its gradient).
    Loss(loss::Args),
    /// Cross-entropy of a language-model head's logits H·Wᵀ + b without materialising them.
    LinearCe(linear::Args),
    /// All regression metrics in one pass over the data.
    Metrics(metrics::Args),
    /// Time activations, losses and the fused metrics on the GPU (end to end, resident), the CPU and auto, against the adapter's and host's ceilings.
    Bench(bench::Args),
    /// Gradient statistics in one pass: L2 norm, max |g|, NaN and inf counts, vanishing share.
    GradStats(gradient::StatsArgs),
    /// Clip a gradient by value or by its L2 norm.
    Clip(gradient::ClipArgs),
    /// Draw the losses and activations (SVG, PNG and an index.html gallery).
    Plot(plot::Args),
    /// SQL over Parquet/CSV with the losses and metrics as aggregates (runs the lossgpu-sql program).
    Sql(sql::Args),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Auto,
    Gpu,
    Cpu,
}

/// Runs the parsed command and prints its report; the exit status.
pub fn run(cli: Cli) -> Result<u8> {
    let backend = cli.backend;
    dtypes::set(cli.dtype, cli.out_dtype);
    let report = match cli.command {
        Command::Sql(args) => return sql::run(args, backend, cli.format),
        Command::Devices => devices::run(backend)?,
        Command::Activation(args) => activation::run(args, backend)?,
        Command::Loss(args) => loss::run(args, backend)?,
        Command::LinearCe(args) => linear::run(args, backend)?,
        Command::Metrics(args) => metrics::run(args, backend)?,
        Command::Bench(args) => bench::run(args, backend)?,
        Command::GradStats(args) => gradient::run_stats(args, backend)?,
        Command::Clip(args) => gradient::run_clip(args, backend)?,
        Command::Plot(args) => plot::run(args, backend)?,
    };
    report.print(cli.format)?;
    Ok(0)
}

/// Opens the engine the user asked for. Commands call this after reading
/// their inputs, so bad files fail fast without initialising a GPU.
fn open_engine(choice: BackendChoice) -> Result<Engine> {
    match choice {
        BackendChoice::Auto => Ok(Engine::new()),
        BackendChoice::Gpu => Engine::gpu(),
        BackendChoice::Cpu => Ok(Engine::cpu()),
    }
}

/// Reports how many input values underflowed to 0 in f32, where any did.
fn add_underflow(report: &mut Report, k: usize) {
    if k > 0 {
        report.field(
            "underflowed",
            output::Value::Int(k as u64),
            format!("{k} input value(s) below the f32 range, read as 0"),
        );
    }
}

/// Appends the "backend" and "device" fields every command reports; in text
/// a CPU fallback says why the GPU was not used.
fn add_engine(report: &mut Report, engine: &Engine) {
    let backend = engine.backend().name();
    let text = match engine.fallback_reason() {
        Some(reason) => format!("{backend} ({reason})"),
        None => backend.to_string(),
    };
    report.field("backend", output::Value::Str(backend.to_string()), text);
    if let Some(reason) = engine.fallback_reason() {
        report.field(
            "fallback_reason",
            output::Value::Str(reason.clone()),
            reason,
        );
    }
    report.str("device", &engine.device_name());
}
