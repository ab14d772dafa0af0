//! `lossgpu loss NAME --pred FILE [--target FILE] [--weights FILE] ...`
//!
//! The CLI's one real decision is how files map onto a [`LossInput`]:
//! - cross-entropy, nll, multi-margin, kl-div, entropy take n×m rows (a 1-D pred is one row of
//!   m, as PyTorch treats an unbatched input);
//! - cross-entropy's target is either pred's shape (probabilities) or n
//!   integers (class indices); zero-one with n integers for n×m scores is
//!   the argmax form, with a target of pred's size the sign form;
//! - every other loss is pointwise: pred is flattened and the target must
//!   have as many values.

use super::io::{self, Array};
use super::output::{Report, Value};
use super::streamed::TargetFile;
use super::{add_engine, add_underflow, chunks, open_engine, streamed, BackendChoice};
use lossgpu::{
    bf16, f16, DType, Error, Float, Loss, LossInput, LossOptions, LossParams, LossValue, Reduction,
    Result, Target, LOSS_NAMES,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The loss.
    #[arg(value_name = "NAME", help = format!("One of: {}", LOSS_NAMES.join(", ")))]
    name: String,
    /// Predictions (.npy or .csv): n values, or n×m scores for the multi-class losses.
    #[arg(long, value_name = "FILE")]
    pred: String,
    /// Targets: as many values as --pred, or n class indices (cross-entropy, nll,
    /// multi-margin, zero-one).
    #[arg(long, value_name = "FILE")]
    target: Option<String>,
    /// Per-sample (per-row) weights, each >= 0.
    #[arg(long, value_name = "FILE")]
    weights: Option<String>,
    /// How per-sample losses are combined (batchmean: the sum over the rows
    /// of a row loss divided by the rows, PyTorch's kl_div batchmean).
    #[arg(long, value_name = "R", default_value = "mean",
          value_parser = ["mean", "sum", "none", "batchmean"])]
    reduction: String,
    /// δ of huber (default 1.0, > 0).
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    delta: Option<f32>,
    /// γ of quantile (default 0.5, in (0, 1)).
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    quantile: Option<f32>,
    /// β of smooth-l1 (default 1.0, >= 0; 0 is mae).
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    beta: Option<f32>,
    /// The margin M of multi-margin (default 1).
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    margin: Option<f32>,
    /// The power P of multi-margin: 1 (default) or 2.
    #[arg(long, value_name = "P")]
    power: Option<u32>,
    /// Per-class weights (m values, each >= 0) of cross-entropy or nll with
    /// class-index targets (PyTorch's weight=).
    #[arg(long, value_name = "FILE")]
    class_weights: Option<String>,
    /// A class target whose rows are left out (PyTorch's ignore_index; -100
    /// for PyTorch's default): cross-entropy or nll with class-index targets.
    #[arg(long, value_name = "I", allow_negative_numbers = true)]
    ignore_index: Option<i64>,
    /// Label smoothing ε in [0, 1] of cross-entropy (PyTorch's label_smoothing).
    #[arg(long, value_name = "E", allow_negative_numbers = true)]
    label_smoothing: Option<f32>,
    /// z-loss coefficient λ >= 0 of cross-entropy: adds λ·logsumexp(p)² per row (PaLM).
    #[arg(long, value_name = "L", allow_negative_numbers = true)]
    z_loss: Option<f32>,
    /// bce-logits' weight of positive labels (PyTorch's pos_weight): one
    /// number, or a file of m values, one per column of n×m multi-label input.
    #[arg(long, value_name = "F|FILE", allow_negative_numbers = true)]
    pos_weight: Option<String>,
    /// kl-div's --pred holds log q, each <= 0 (PyTorch's kl_div convention).
    #[arg(long)]
    log_input: bool,
    /// kl-div's --target holds log t, each <= 0 (PyTorch's log_target).
    #[arg(long)]
    log_target: bool,
    /// Allow an output to replace an input file (written durably: the input
    /// is read whole first, and replaced only once the output is complete).
    #[arg(long)]
    in_place: bool,
    /// Where to write the n per-sample losses (with --reduction none).
    #[arg(long, value_name = "FILE.npy")]
    out: Option<String>,
    /// Where to write d loss / d pred (same reduction), with pred's shape.
    #[arg(long, value_name = "FILE.npy")]
    grad_out: Option<String>,
}

/// The target in the owned form the engine's borrowed [`Target`] points into.
enum Owned {
    None,
    Values(Vec<f32>),
    Classes(Vec<u32>),
}

pub fn run(args: Args, backend: BackendChoice) -> Result<Report> {
    let params = LossParams {
        delta: args.delta,
        quantile: args.quantile,
        beta: args.beta,
        margin: args.margin,
        power: args.power,
    };
    let loss = Loss::from_name(&args.name, params)?;
    let reduction = Reduction::from_name(&args.reduction)?;
    match (reduction, &args.out) {
        (Reduction::None, None) => {
            return Err(Error::InvalidInput(
                "--reduction none needs --out FILE.npy".into(),
            ))
        }
        (Reduction::Mean | Reduction::Sum | Reduction::BatchMean, Some(_)) => {
            return Err(Error::InvalidInput(format!(
            "--out takes the per-sample losses of --reduction none; with {} the value is printed",
            reduction.name()
        )))
        }
        _ => {}
    }
    let outputs: Vec<(&str, &str)> = [("--out", &args.out), ("--grad-out", &args.grad_out)]
        .into_iter()
        .filter_map(|(flag, path)| Some((flag, path.as_deref()?)))
        .collect();
    let inputs: Vec<(&str, &str)> = [
        ("--pred", Some(&args.pred)),
        ("--target", args.target.as_ref()),
        ("--weights", args.weights.as_ref()),
        ("--class-weights", args.class_weights.as_ref()),
    ]
    .into_iter()
    .filter_map(|(flag, path)| Some((flag, path?.as_str())))
    .collect();
    io::check_outputs(&outputs, &inputs, args.in_place)?;
    if let Some((cols, target)) = streams(&loss, &args) {
        let files = (&args.pred, cols, target, args.weights.as_ref());
        let outputs = streamed::LossOutputs {
            out: args.out.as_deref(),
            grad_out: args.grad_out.as_deref(),
        };
        return streamed::loss(&loss, reduction, files, outputs, backend);
    }

    let pred = io::read(&args.pred)?;
    let target = match (&loss, &args.target) {
        (Loss::Entropy, Some(_)) => {
            return Err(Error::InvalidInput(
                "entropy takes only --pred (no --target)".into(),
            ))
        }
        (Loss::Entropy, None) => None,
        (_, None) => {
            return Err(Error::InvalidInput(format!(
                "{} needs --target FILE",
                loss.name()
            )))
        }
        (_, Some(path)) => Some(io::read(path)?),
    };
    let weights = args.weights.as_deref().map(io::read).transpose()?;
    let class_weights = args.class_weights.as_deref().map(io::read).transpose()?;

    let p = pred.to_f32()?;
    let (cols, owned) = arrange(&loss, &pred, target.as_ref(), args.ignore_index)?;
    // n×m multi-label bce-logits is pointwise: each of its values a sample.
    let multi_label = loss.is_pointwise() && cols > 1;
    let n = if multi_label { p.len() } else { p.len() / cols };
    let w = match &weights {
        // One weight per row of multi-label input, broadcast over its columns.
        Some(w) if multi_label && w.len() == n / cols => Some(
            w.to_f32()?
                .iter()
                .flat_map(|&v| std::iter::repeat_n(v, cols))
                .collect(),
        ),
        Some(w) if w.len() != n => {
            return Err(w.error(match multi_label {
                true => format!(
                    "{} weights for {} rows of {cols} ({n} values) in {}",
                    w.len(),
                    n / cols,
                    pred.path
                ),
                false => format!("{} weights for {n} samples in {}", w.len(), pred.path),
            }))
        }
        Some(w) => Some(w.to_f32()?),
        None => None,
    };
    let cw = class_weights.as_ref().map(|c| c.to_f32()).transpose()?;
    let pos_weight = match &args.pos_weight {
        None => None,
        Some(v) => match v.parse::<f32>() {
            Ok(pw) => Some(vec![pw]),
            Err(_) => Some(io::read(v)?.to_f32()?),
        },
    };
    let input = LossInput {
        pred: &p,
        cols,
        target: match &owned {
            Owned::None => Target::None,
            Owned::Values(t) => Target::Values(t),
            Owned::Classes(c) => Target::Classes(c),
        },
        weights: w.as_deref(),
        options: LossOptions {
            pos_weight: pos_weight.as_deref(),
            class_weights: cw.as_deref(),
            ignore_index: args.ignore_index,
            label_smoothing: args.label_smoothing.unwrap_or(0.0),
            z_loss: args.z_loss.unwrap_or(0.0),
            log_input: args.log_input,
            log_target: args.log_target,
        },
    };

    let files = [
        Some(&args.pred),
        args.target.as_ref(),
        args.weights.as_ref(),
    ];
    let name_file = |e| match e {
        Error::Value {
            input: "class weights",
            ..
        } => match &args.class_weights {
            Some(path) => io::file_error(path, e),
            None => e,
        },
        Error::Value {
            input: "pos weight",
            ..
        } => match &args.pos_weight {
            Some(path) if path.parse::<f32>().is_err() => io::file_error(path, e),
            _ => e,
        },
        e => name_file(e, files),
    };
    // Every input is checked before a device is opened.
    lossgpu::cpu::validate_call(&loss, &input, reduction).map_err(name_file)?;
    let engine = open_engine(backend)?;
    // Half files the engine reads as they are (2 bytes a value on the GPU):
    // the same values as the f32 input just checked.
    let float_inputs = [
        Some(&pred),
        target
            .as_ref()
            .filter(|_| matches!(owned, Owned::Values(_))),
        weights.as_ref(),
    ];
    let grad = args.grad_out.is_some();
    let half = shared_half(&float_inputs);
    let (value, grad) = match half {
        Some(DType::F16) => {
            let halves = Narrowed::<f16>::of(&input);
            evaluate(&engine, &loss, &halves.input(&input), reduction, grad)
        }
        Some(DType::Bf16) => {
            let halves = Narrowed::<bf16>::of(&input);
            evaluate(&engine, &loss, &halves.input(&input), reduction, grad)
        }
        _ => evaluate(&engine, &loss, &input, reduction, grad),
    }
    .map_err(name_file)?;
    if let (Some(out), Some(per_sample)) = (&args.out, value.per_sample()) {
        let dims = match multi_label {
            true => pred.dims.clone(),
            false => vec![per_sample.len()],
        };
        io::write_npy(out, per_sample, &dims)?;
    }
    if let (Some(grad_out), Some(grad)) = (&args.grad_out, grad) {
        io::write_npy(grad_out, &grad, &pred.dims)?;
    }

    let mut report = Report::new();
    report.str("loss", loss.name());
    report.str("reduction", reduction.name());
    match value.scalar() {
        Some(v) => report.num("value", v),
        None => report.field(
            "value",
            Value::Null,
            "none (per-sample values in --out)".into(),
        ),
    }
    report.int("n", n);
    if let Some(h) = half {
        report.str("dtype", h.name());
    }
    let underflowed: usize = [Some(&pred), target.as_ref(), weights.as_ref()]
        .iter()
        .flatten()
        .map(|a| a.underflowed())
        .sum();
    add_underflow(&mut report, underflowed);
    add_engine(&mut report, &engine);
    if let Some(out) = &args.out {
        report.text_only("out", out.clone());
    }
    if let Some(grad_out) = &args.grad_out {
        report.text_only("grad_out", grad_out.clone());
    }
    Ok(report)
}

/// The half type every given float file shares, if each is one.
fn shared_half(arrays: &[Option<&Array>]) -> Option<DType> {
    let mut given = arrays.iter().flatten().map(|a| a.half);
    let first = given.next()??;
    given.all(|h| h == Some(first)).then_some(first)
}

/// An input's values in `H`, exactly (they were read from `H` files).
struct Narrowed<H> {
    pred: Vec<H>,
    target: Option<Vec<H>>,
    weights: Option<Vec<H>>,
}

impl<H: Float> Narrowed<H> {
    fn of(input: &LossInput) -> Self {
        let to = |v: &[f32]| super::dtypes::narrow::<H>(v);
        Narrowed {
            pred: to(input.pred),
            target: match input.target {
                Target::Values(t) => Some(to(t)),
                _ => None,
            },
            weights: input.weights.map(to),
        }
    }

    /// `base` with these values.
    fn input<'a>(&'a self, base: &LossInput<'a>) -> LossInput<'a, H> {
        LossInput {
            pred: &self.pred,
            cols: base.cols,
            target: match (base.target, &self.target) {
                (Target::Values(_), Some(t)) => Target::Values(t),
                (Target::Classes(c), _) => Target::Classes(c),
                _ => Target::None,
            },
            weights: self.weights.as_deref(),
            options: base.options,
        }
    }
}

/// The loss and, with `grad`, its gradient from one set of passes.
fn evaluate<F: Float>(
    engine: &lossgpu::Engine,
    loss: &Loss,
    input: &LossInput<F>,
    reduction: Reduction,
    grad: bool,
) -> Result<(LossValue, Option<Vec<f32>>)> {
    match grad {
        true => engine
            .loss_and_grad(loss, input, reduction)
            .map(|(value, grad)| (value, Some(grad))),
        false => engine
            .loss(loss, input, reduction)
            .map(|value| (value, None)),
    }
}

/// How this call reads its inputs in chunks, where it does: `.npy` files
/// longer than one chunk, for a pointwise loss on values of equal length,
/// or a row loss on 2-D predictions with a distribution of the same shape,
/// one class index per row, or (entropy) no target. Anything else is read
/// whole, where the usual checks name what does not fit.
fn streams<'a>(loss: &Loss, args: &'a Args) -> Option<(usize, TargetFile<'a>)> {
    let npy = |p: &str| p.to_ascii_lowercase().ends_with(".npy");
    // Options are read whole.
    if args.class_weights.is_some()
        || args.ignore_index.is_some()
        || args.label_smoothing.is_some()
        || args.z_loss.is_some()
        || args.log_input
        || args.log_target
        || args.pos_weight.is_some()
    {
        return None;
    }
    if !npy(&args.pred)
        || !args.weights.as_deref().is_none_or(npy)
        || !chunks::is_large_npy(&args.pred)
    {
        return None;
    }
    let pred = chunks::NpyChunks::open(&args.pred).ok()?;
    // One weight per row of multi-label bce-logits is broadcast, whole.
    if let Some(w) = &args.weights {
        if loss.is_pointwise() && chunks::NpyChunks::open(w).ok()?.len() != pred.len() {
            return None;
        }
    }
    let target = match &args.target {
        Some(t) if npy(t) => Some((t.as_str(), chunks::NpyChunks::open(t).ok()?.dims)),
        Some(_) => return None,
        None => None,
    };
    let rows_of = |cols: usize| pred.len() / cols;
    match (loss, &pred.dims[..], target) {
        (Loss::Entropy, &[_, cols], None) => Some((cols, TargetFile::None)),
        (_, _, None) => None,
        (_, &[_, cols], Some((t, dims))) if !loss.is_pointwise() && dims == pred.dims => {
            Some((cols, TargetFile::Values(t)))
        }
        (
            Loss::CrossEntropy | Loss::ZeroOne | Loss::Nll | Loss::MultiMargin { .. },
            &[_, cols],
            Some((t, dims)),
        ) if dims == [rows_of(cols)] => Some((cols, TargetFile::Classes(t))),
        (_, _, Some((t, dims)))
            if loss.is_pointwise() && dims.iter().product::<usize>() == pred.len() =>
        {
            Some((1, TargetFile::Values(t)))
        }
        _ => None,
    }
}

/// Columns of pred and the target in the form the loss takes (see the
/// module comment).
fn arrange(
    loss: &Loss,
    pred: &Array,
    target: Option<&Array>,
    ignore: Option<i64>,
) -> Result<(usize, Owned)> {
    let row_loss = matches!(
        loss,
        Loss::CrossEntropy | Loss::KlDiv | Loss::Entropy | Loss::Nll | Loss::MultiMargin { .. }
    );
    let Some(t) = target else {
        // Only entropy gets here; a 1-D pred is one distribution.
        return Ok((row_cols(pred), Owned::None));
    };
    let argmax = matches!(loss, Loss::ZeroOne) && pred.is_2d() && t.len() != pred.len();
    // n×m multi-label logits: pointwise, with columns for pos_weight.
    if matches!(loss, Loss::BceLogits) && pred.is_2d() && t.dims == pred.dims {
        return Ok((row_cols(pred), Owned::Values(t.to_f32()?)));
    }
    if !row_loss && !argmax {
        if t.len() != pred.len() {
            return Err(t.error(format!(
                "{} values, but {} has {}",
                t.len(),
                pred.path,
                pred.len()
            )));
        }
        return Ok((1, Owned::Values(t.to_f32()?)));
    }
    let cols = row_cols(pred);
    let rows = pred.len() / cols;
    if t.dims == pred.dims && !argmax {
        return Ok((cols, Owned::Values(t.to_f32()?)));
    }
    let one_per_row = t.len() == rows && t.cols() == 1;
    if one_per_row
        && matches!(
            loss,
            Loss::CrossEntropy | Loss::ZeroOne | Loss::Nll | Loss::MultiMargin { .. }
        )
    {
        return Ok((cols, Owned::Classes(class_indices(t, ignore)?)));
    }
    let wanted = if matches!(loss, Loss::KlDiv) {
        format!("a distribution of {}", pred.shape_text())
    } else {
        format!(
            "{rows} class indices or probabilities of {}",
            pred.shape_text()
        )
    };
    Err(t.error(format!(
        "has {} but {} has {}: give {wanted}",
        t.shape_text(),
        pred.path,
        pred.shape_text()
    )))
}

/// m for an n×m pred; a 1-D pred is a single row.
fn row_cols(pred: &Array) -> usize {
    if pred.is_2d() {
        pred.cols()
    } else {
        pred.len()
    }
}

/// Class indices must be integers in u32 (the engine checks < m); the
/// ignore index, negative or not, becomes its u32 bits as the engine
/// compares it.
pub(super) fn class_indices(t: &Array, ignore: Option<i64>) -> Result<Vec<u32>> {
    t.data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if ignore.is_some_and(|ig| ig as f64 == v) {
                Ok(ignore.unwrap_or(0) as u32)
            } else if v.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&v) {
                Ok(v as u32)
            } else {
                Err(t.error(format!(
                    "target{} = {v} is not a class index (a non-negative integer)",
                    t.locate(i)
                )))
            }
        })
        .collect()
}

/// The engine names the argument ("target[2] = 0.5 ..."); the user thinks in
/// files, so prefix the file that argument came from.
pub(super) fn name_file(e: Error, files: [Option<&String>; 3]) -> Error {
    let Error::Value { input, .. } = &e else {
        return e;
    };
    let file = match *input {
        "pred" => files[0],
        "target" => files[1],
        _ => files[2],
    };
    match file {
        Some(path) => io::file_error(path, e),
        None => e,
    }
}
