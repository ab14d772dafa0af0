//! Losses, metrics, gradient statistics and clipping over `.npy` files
//! larger than one chunk: the inputs are read a chunk at a time, each chunk
//! reduced by the engine into partial sums that merge, and elementwise
//! outputs written a chunk at a time, so memory stays bounded whatever the
//! files' size. Headers and lengths are checked before a device is opened;
//! values are checked chunk by chunk, and an offender is named at its index
//! in the whole file.

use super::chunks::{chunk_len, NpyChunks, NpyOut};
use super::io::file_error;
use super::loss::name_file;
use super::{add_engine, add_underflow, open_engine, output, BackendChoice};
use lossgpu::ops::gradient::{clip_coefficient, Clip, GradStats};
use lossgpu::{Engine, Loss, LossInput, LossSums, MetricSums, Reduction, Result};
use output::Report;

/// The inputs of a loss or the metrics, opened and checked to be equally
/// long (weights: one per value).
struct Inputs {
    pred: NpyChunks,
    target: NpyChunks,
    weights: Option<NpyChunks>,
}

impl Inputs {
    fn open(pred: &str, target: &str, weights: Option<&str>) -> Result<Inputs> {
        let pred = NpyChunks::open(pred)?;
        let target = NpyChunks::open(target)?;
        let weights = weights.map(NpyChunks::open).transpose()?;
        for other in std::iter::once(&target).chain(&weights) {
            if other.len() != pred.len() {
                return Err(file_error(
                    &other.path,
                    format!(
                        "{} values, but {} has {}",
                        other.len(),
                        pred.path,
                        pred.len()
                    ),
                ));
            }
        }
        Ok(Inputs {
            pred,
            target,
            weights,
        })
    }

    fn underflowed(&self) -> usize {
        self.pred.underflowed
            + self.target.underflowed
            + self.weights.as_ref().map_or(0, |w| w.underflowed)
    }

    /// Calls `f` on each chunk with its offset in the files.
    fn each(&mut self, mut f: impl FnMut(usize, &LossInput) -> Result<()>) -> Result<()> {
        let (mut p, mut t, mut w) = (Vec::new(), Vec::new(), Vec::new());
        let chunk = chunk_len();
        loop {
            let at = self.pred.position();
            let k = self.pred.next_chunk(chunk, &mut p)?;
            if k == 0 {
                return Ok(());
            }
            self.target.next_chunk(chunk, &mut t)?;
            let mut input = LossInput::new(&p, &t);
            if let Some(weights) = &mut self.weights {
                weights.next_chunk(chunk, &mut w)?;
                input = input.with_weights(&w);
            }
            f(at, &input)?;
        }
    }
}

fn files<'a>(
    pred: &'a String,
    target: &'a String,
    weights: Option<&'a String>,
) -> [Option<&'a String>; 3] {
    [Some(pred), Some(target), weights]
}

/// A pointwise loss's mean or sum over files read in chunks.
pub fn loss(
    loss: &Loss,
    reduction: Reduction,
    (pred, target, weights): (&String, &String, Option<&String>),
    backend: BackendChoice,
) -> Result<Report> {
    let mut inputs = Inputs::open(pred, target, weights.map(String::as_str))?;
    let engine = open_engine(backend)?;
    let names = files(pred, target, weights);
    let mut sums = LossSums::default();
    inputs.each(|at, input| {
        let part = engine
            .loss_sums(loss, input)
            .map_err(|e| name_file(e.offset(at), names))?;
        sums = sums.merge(part);
        Ok(())
    })?;
    let value = sums.finish(loss, reduction)?;
    let mut report = Report::new();
    report.str("loss", loss.name());
    report.str("reduction", reduction.name());
    report.num("value", value);
    report.int("n", sums.count as usize);
    add_underflow(&mut report, inputs.underflowed());
    add_engine(&mut report, &engine);
    Ok(report)
}

/// The regression metrics over files read in chunks.
pub fn metrics(
    (pred, target, weights): (&String, &String, Option<&String>),
    (delta, gamma): (f32, f32),
    backend: BackendChoice,
) -> Result<Report> {
    let mut inputs = Inputs::open(pred, target, weights.map(String::as_str))?;
    let engine = open_engine(backend)?;
    let names = files(pred, target, weights);
    let mut sums = MetricSums::default();
    inputs.each(|at, input| {
        let part = engine
            .metric_sums(input, delta, gamma)
            .map_err(|e| name_file(e.offset(at), names))?;
        sums = sums.merge(part);
        Ok(())
    })?;
    let m = sums.finish()?;
    let mut report = Report::new();
    for (key, v) in [
        ("mse", m.mse),
        ("rmse", m.rmse),
        ("mae", m.mae),
        ("mape", m.mape),
        ("smape", m.smape),
        ("huber", m.huber),
        ("log_cosh", m.log_cosh),
        ("quantile", m.quantile),
    ] {
        report.num(key, v);
    }
    report.int("n", m.n);
    add_underflow(&mut report, inputs.underflowed());
    add_engine(&mut report, &engine);
    Ok(report)
}

/// The statistics of a gradient file, read in chunks.
fn stats_of(engine: &Engine, file: &mut NpyChunks, eps: f32) -> Result<GradStats> {
    let mut g = Vec::new();
    let mut stats: Option<GradStats> = None;
    while file.next_chunk(chunk_len(), &mut g)? > 0 {
        let part = engine.grad_stats(&g, eps)?;
        stats = Some(match stats {
            Some(s) => s.merge(&part),
            None => part,
        });
    }
    stats.ok_or_else(|| file_error(&file.path, "has no values"))
}

/// grad-stats over a file read in chunks: the statistics, the values that
/// underflowed f32, and the engine.
pub fn grad_stats(
    path: &str,
    eps: f32,
    backend: BackendChoice,
) -> Result<(GradStats, usize, Engine)> {
    let mut file = NpyChunks::open(path)?;
    let engine = open_engine(backend)?;
    let stats = stats_of(&engine, &mut file, eps)?;
    Ok((stats, file.underflowed, engine))
}

/// clip over a file read in chunks, the output written in chunks: by value
/// in one pass; by norm in two, the first for the norm of the whole file.
/// Returns the statistics before clipping, the engine, and underflows.
pub fn clip(
    input: &str,
    out: &str,
    clip: Clip,
    backend: BackendChoice,
) -> Result<(GradStats, Engine, usize)> {
    let mut file = NpyChunks::open(input)?;
    let dims = file.dims.clone();
    let engine = open_engine(backend)?;
    let before = stats_of(&engine, &mut file, 0.0)?;
    let scale = match clip {
        Clip::Norm(c) => clip_coefficient(before.l2_norm, c) as f32,
        Clip::Value(_) => 1.0,
    };
    let mut file = NpyChunks::open(input)?;
    let mut writer = NpyOut::create(out, &dims)?;
    let mut g = Vec::new();
    while file.next_chunk(chunk_len(), &mut g)? > 0 {
        match clip {
            Clip::Value(_) => writer.write(&engine.clip(&g, clip)?.0)?,
            Clip::Norm(_) => {
                g.iter_mut().for_each(|v| *v *= scale);
                writer.write(&g)?;
            }
        }
    }
    writer.finish()?;
    let underflowed = file.underflowed;
    Ok((before, engine, underflowed))
}
