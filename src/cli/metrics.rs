//! `lossgpu metrics --pred FILE --target FILE [--weights FILE] [--delta F] [--quantile F]`

use super::output::Report;
use super::{add_engine, io, loss::name_file, open_engine, BackendChoice};
use lossgpu::{LossInput, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Predictions (.npy or .csv; a 2-D file counts as flat).
    #[arg(long, value_name = "FILE")]
    pred: String,
    /// Targets, as many values as the predictions.
    #[arg(long, value_name = "FILE")]
    target: String,
    /// Per-sample weights, each >= 0.
    #[arg(long, value_name = "FILE")]
    weights: Option<String>,
    /// δ of the Huber loss.
    #[arg(
        long,
        value_name = "F",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    delta: f32,
    /// γ of the quantile (pinball) loss.
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.5,
        allow_negative_numbers = true
    )]
    quantile: f32,
}

pub fn run(args: Args, backend: BackendChoice) -> Result<Report> {
    let p = io::read(&args.pred)?.to_f32()?;
    let t = io::read(&args.target)?.to_f32()?;
    let w = args
        .weights
        .as_deref()
        .map(io::read)
        .transpose()?
        .map(|w| w.to_f32())
        .transpose()?;
    let mut input = LossInput::new(&p, &t);
    if let Some(w) = &w {
        input = input.with_weights(w);
    }
    let engine = open_engine(backend)?;
    let files = [Some(&args.pred), Some(&args.target), args.weights.as_ref()];
    let m = engine
        .regression_metrics(&input, args.delta, args.quantile)
        .map_err(|e| name_file(e, files))?;
    let mut report = Report::new();
    report.num("mse", m.mse);
    report.num("rmse", m.rmse);
    report.num("mae", m.mae);
    report.num("mape", m.mape);
    report.num("smape", m.smape);
    report.num("huber", m.huber);
    report.num("log_cosh", m.log_cosh);
    report.num("quantile", m.quantile);
    report.int("n", m.n);
    add_engine(&mut report, &engine);
    Ok(report)
}
