//! `lossgpu metrics --pred FILE --target FILE [--weights FILE] [--delta F] [--quantile F]`

use super::output::Report;
use super::{
    add_engine, add_underflow, chunks, io, loss::name_file, open_engine, streamed, BackendChoice,
};
use lossgpu::{Loss, LossInput, Reduction, Result};

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
    lossgpu::ops::metrics::metric_losses(args.delta, args.quantile)?;
    let npy = |p: &str| p.to_ascii_lowercase().ends_with(".npy");
    if npy(&args.target)
        && args.weights.as_deref().is_none_or(npy)
        && chunks::is_large_npy(&args.pred)
    {
        let files = (&args.pred, &args.target, args.weights.as_ref());
        return streamed::metrics(files, (args.delta, args.quantile), backend);
    }
    let pred = io::read(&args.pred)?;
    let target = io::read(&args.target)?;
    let weights = args.weights.as_deref().map(io::read).transpose()?;
    for other in std::iter::once(&target).chain(&weights) {
        if other.len() != pred.len() {
            return Err(other.error(format!(
                "{} values, but {} has {}",
                other.len(),
                pred.path,
                pred.len()
            )));
        }
    }
    let (p, t) = (pred.to_f32()?, target.to_f32()?);
    let w = weights.as_ref().map(|w| w.to_f32()).transpose()?;
    let mut input = LossInput::new(&p, &t);
    if let Some(w) = &w {
        input = input.with_weights(w);
    }
    let files = [Some(&args.pred), Some(&args.target), args.weights.as_ref()];
    // Every input is checked before a device is opened.
    lossgpu::cpu::validate_call(&Loss::Mse, &input, Reduction::Mean)
        .map_err(|e| name_file(e, files))?;
    let engine = open_engine(backend)?;
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
    let underflowed: usize = [Some(&pred), Some(&target), weights.as_ref()]
        .iter()
        .flatten()
        .map(|a| a.underflowed())
        .sum();
    add_underflow(&mut report, underflowed);
    add_engine(&mut report, &engine);
    Ok(report)
}
