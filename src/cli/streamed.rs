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

/// How a streamed loss's target file is read.
pub enum TargetFile<'a> {
    /// entropy: no target.
    None,
    /// Values or distributions, one per prediction.
    Values(&'a str),
    /// One class index per row of the predictions.
    Classes(&'a str),
}

enum Target {
    None,
    Values(NpyChunks),
    Classes(NpyChunks),
}

/// The inputs of a loss or the metrics: predictions in rows of `cols`
/// (1 for pointwise losses), opened and checked to be of matching lengths.
struct Inputs {
    pred: NpyChunks,
    cols: usize,
    target: Target,
    weights: Option<NpyChunks>,
}

fn mismatch(other: &NpyChunks, what: String, pred: &NpyChunks) -> lossgpu::Error {
    file_error(
        &other.path,
        format!("{} values, but {} has {what}", other.len(), pred.path),
    )
}

/// Moves an engine error of a chunk to its index in the files: values of
/// pred (and of a distribution target) count by value, class indices and
/// weights by row.
#[derive(Clone, Copy)]
struct Shift {
    cols: usize,
    target_per_value: bool,
}

impl Shift {
    fn apply(self, e: lossgpu::Error, row: usize) -> lossgpu::Error {
        let per_value = match &e {
            lossgpu::Error::Value { input, .. } => match *input {
                "pred" => true,
                "target" => self.target_per_value,
                _ => false,
            },
            _ => false,
        };
        e.offset(if per_value { row * self.cols } else { row })
    }
}

impl Inputs {
    fn open(pred: &str, cols: usize, target: &TargetFile, weights: Option<&str>) -> Result<Inputs> {
        let pred = NpyChunks::open(pred)?;
        let rows = pred.len() / cols;
        let target = match *target {
            TargetFile::None => Target::None,
            TargetFile::Values(t) => Target::Values(NpyChunks::open(t)?),
            TargetFile::Classes(t) => Target::Classes(NpyChunks::open(t)?),
        };
        match &target {
            Target::Values(t) if t.len() != pred.len() => {
                return Err(mismatch(t, pred.len().to_string(), &pred))
            }
            Target::Classes(t) if t.len() != rows => {
                return Err(mismatch(t, format!("{rows} rows"), &pred))
            }
            _ => {}
        }
        let weights = weights.map(NpyChunks::open).transpose()?;
        if let Some(w) = weights.as_ref().filter(|w| w.len() != rows) {
            return Err(mismatch(w, format!("{rows} samples"), &pred));
        }
        Ok(Inputs {
            pred,
            cols,
            target,
            weights,
        })
    }

    fn rows(&self) -> usize {
        self.pred.len() / self.cols
    }

    fn shift(&self) -> Shift {
        Shift {
            cols: self.cols,
            target_per_value: matches!(self.target, Target::Values(_)),
        }
    }

    fn underflowed(&self) -> usize {
        let target = match &self.target {
            Target::Values(t) | Target::Classes(t) => t.underflowed,
            Target::None => 0,
        };
        self.pred.underflowed + target + self.weights.as_ref().map_or(0, |w| w.underflowed)
    }

    /// Calls `f` on each chunk of whole rows with its first row's index.
    fn each(&mut self, mut f: impl FnMut(usize, &LossInput) -> Result<()>) -> Result<()> {
        let (mut p, mut t, mut w, mut c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let cols = self.cols;
        let rows = (chunk_len() / cols).max(1);
        loop {
            let at = self.pred.position() / cols;
            if self.pred.next_chunk(rows * cols, &mut p)? == 0 {
                return Ok(());
            }
            let target = match &mut self.target {
                Target::None => lossgpu::Target::None,
                Target::Values(file) => {
                    file.next_chunk(rows * cols, &mut t)?;
                    lossgpu::Target::Values(&t)
                }
                Target::Classes(file) => {
                    file.next_chunk(rows, &mut t)?;
                    c.clear();
                    for (i, &v) in t.iter().enumerate() {
                        if !(v >= 0.0 && v.fract() == 0.0 && v < u32::MAX as f32) {
                            return Err(file_error(
                                &file.path,
                                format!(
                                    "[{}] = {v:?} is not a class index (a non-negative integer)",
                                    at + i
                                ),
                            ));
                        }
                        c.push(v as u32);
                    }
                    lossgpu::Target::Classes(&c)
                }
            };
            let mut input = LossInput {
                pred: &p,
                cols,
                target,
                weights: None,
                options: Default::default(),
            };
            if let Some(weights) = &mut self.weights {
                weights.next_chunk(rows, &mut w)?;
                input = input.with_weights(&w);
            }
            f(at, &input)?;
        }
    }
}

/// A text line saying the inputs were read in chunks.
fn add_chunked(report: &mut Report) {
    report.text_only("input", format!("read in chunks of {} values", chunk_len()));
}

fn files<'a>(
    pred: &'a String,
    target: &'a String,
    weights: Option<&'a String>,
) -> [Option<&'a String>; 3] {
    [Some(pred), Some(target), weights]
}

/// Where a streamed loss writes: the per-sample values (reduction none)
/// and the gradient.
pub struct LossOutputs<'a> {
    pub out: Option<&'a str>,
    pub grad_out: Option<&'a str>,
}

/// A pointwise loss over files read in chunks: its mean or sum from merged
/// partial sums, its per-sample values and its gradient written chunk by
/// chunk. A gradient of a reduced loss takes a second pass: the first gives
/// the sums its coefficient needs (1/Σw, or rmse's 1/(2·Σw·rmse)).
pub fn loss(
    loss: &Loss,
    reduction: Reduction,
    (pred, cols, target, weights): (&String, usize, TargetFile, Option<&String>),
    outputs: LossOutputs,
    backend: BackendChoice,
) -> Result<Report> {
    if loss.is_pointwise() && matches!(target, TargetFile::Values(_)) {
        // The library's own message for a reduction a 1-D loss lacks
        // (rmse's sum or none, batchmean), from one valid sample.
        lossgpu::cpu::validate_call(loss, &LossInput::new(&[0.5], &[1.0]), reduction)?;
    }
    let target_name = match target {
        TargetFile::Values(t) | TargetFile::Classes(t) => Some(t.to_string()),
        TargetFile::None => None,
    };
    let open = || Inputs::open(pred, cols, &target, weights.map(String::as_str));
    let mut inputs = open()?;
    let dims = inputs.pred.dims.clone();
    let n = inputs.rows();
    let shift = inputs.shift();
    let engine = open_engine(backend)?;
    let names = [Some(pred), target_name.as_ref(), weights];
    let named = |at: usize| move |e: lossgpu::Error| name_file(shift.apply(e, at), names);
    let mut value = None;
    let mut coefficient = 1.0f64;
    if reduction != Reduction::None {
        let mut sums = LossSums::default();
        inputs.each(|at, input| {
            sums = sums.merge(engine.loss_sums(loss, input).map_err(named(at))?);
            Ok(())
        })?;
        let v = sums.finish(loss, reduction)?;
        coefficient = match reduction {
            Reduction::Mean if *loss == Loss::Rmse && v == 0.0 => 0.0,
            Reduction::Mean if *loss == Loss::Rmse => 1.0 / (2.0 * sums.weight_sum * v),
            Reduction::Mean => 1.0 / sums.weight_sum,
            Reduction::BatchMean => 1.0 / sums.count as f64,
            Reduction::Sum | Reduction::None => 1.0,
        };
        value = Some(v);
    }
    let per_sample = outputs.out.filter(|_| reduction == Reduction::None);
    if per_sample.is_some() || outputs.grad_out.is_some() {
        if reduction != Reduction::None {
            inputs = open()?; // the second pass
        }
        // Multi-label bce-logits keeps its n×m shape (SPEC §1b).
        let out_dims = match loss {
            Loss::BceLogits => dims.clone(),
            _ => vec![n],
        };
        let mut out = per_sample
            .map(|o| NpyOut::create(o, &out_dims))
            .transpose()?;
        let mut grad_out = outputs
            .grad_out
            .map(|g| NpyOut::create(g, &dims))
            .transpose()?;
        // The gradient of each chunk's sum (rmse: of its e² sum), scaled.
        let (grad_loss, grad_reduction) = match (loss, reduction) {
            (_, Reduction::None) => (*loss, Reduction::None),
            (Loss::Rmse, _) => (Loss::Mse, Reduction::Sum),
            _ => (*loss, Reduction::Sum),
        };
        inputs.each(|at, input| {
            if let Some(out) = &mut out {
                let v = engine
                    .loss(loss, input, Reduction::None)
                    .map_err(named(at))?;
                out.write(v.per_sample().unwrap_or_default())?;
            }
            if let Some(grad_out) = &mut grad_out {
                let mut g = engine
                    .loss_grad(&grad_loss, input, grad_reduction)
                    .map_err(named(at))?;
                if coefficient != 1.0 {
                    g.iter_mut()
                        .for_each(|v| *v = (*v as f64 * coefficient) as f32);
                }
                grad_out.write(&g)?;
            }
            Ok(())
        })?;
        out.map(NpyOut::finish).transpose()?;
        grad_out.map(NpyOut::finish).transpose()?;
    }
    let mut report = Report::new();
    report.str("loss", loss.name());
    report.str("reduction", reduction.name());
    match value {
        Some(v) => report.num("value", v),
        None => report.field(
            "value",
            output::Value::Null,
            "none (per-sample values in --out)".into(),
        ),
    }
    report.int("n", n);
    add_chunked(&mut report);
    add_underflow(&mut report, inputs.underflowed());
    add_engine(&mut report, &engine);
    for (key, path) in [("out", outputs.out), ("grad_out", outputs.grad_out)] {
        if let Some(p) = path {
            report.text_only(key, p.to_string());
        }
    }
    Ok(report)
}

/// The regression metrics over files read in chunks.
pub fn metrics(
    (pred, target, weights): (&String, &String, Option<&String>),
    (delta, gamma): (f32, f32),
    backend: BackendChoice,
) -> Result<Report> {
    let mut inputs = Inputs::open(
        pred,
        1,
        &TargetFile::Values(target),
        weights.map(String::as_str),
    )?;
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
    add_chunked(&mut report);
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
    error_if_nonfinite: bool,
    backend: BackendChoice,
) -> Result<(GradStats, Engine, usize)> {
    let mut file = NpyChunks::open(input)?;
    let dims = file.dims.clone();
    let engine = open_engine(backend)?;
    let before = stats_of(&engine, &mut file, 0.0)?;
    if error_if_nonfinite {
        super::gradient::check_finite_norm(&before)?;
    }
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
