//! `lossgpu linear-ce` (SPEC §4): fused linear + cross-entropy over H, W
//! and labels files, writing the gradients asked for.

use super::output::{Report, Value};
use super::{add_engine, add_underflow, io, open_engine, BackendChoice};
use lossgpu::{
    bf16, f16, DType, Engine, Error, Float, LinearGrads, LinearInput, Reduction, Result,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Hidden states H (.npy or .csv): N×d.
    #[arg(long, value_name = "FILE")]
    hidden: String,
    /// The classifier W: V×d, one row per class (torch.nn.Linear(d, V).weight).
    #[arg(long, value_name = "FILE")]
    classifier: String,
    /// N class indices in [0, V) (or the ignore index).
    #[arg(long, value_name = "FILE")]
    labels: String,
    /// A bias of V values.
    #[arg(long, value_name = "FILE")]
    bias: Option<String>,
    /// A label whose rows are left out (PyTorch's ignore_index; -100 is its default).
    #[arg(long, value_name = "I", allow_negative_numbers = true)]
    ignore_index: Option<i64>,
    /// Label smoothing ε in [0, 1].
    #[arg(long, value_name = "E", allow_negative_numbers = true)]
    label_smoothing: Option<f32>,
    /// z-loss coefficient λ >= 0: adds λ·logsumexp(z)² per row.
    #[arg(long, value_name = "L", allow_negative_numbers = true)]
    z_loss: Option<f32>,
    /// How the rows' losses are combined.
    #[arg(long, value_name = "R", default_value = "mean", value_parser = ["mean", "sum", "none"])]
    reduction: String,
    /// Where to write the N row losses (reduction none only).
    #[arg(long, value_name = "FILE.npy")]
    out: Option<String>,
    /// Where to write ∂loss/∂H (N×d).
    #[arg(long, value_name = "FILE.npy")]
    grad_hidden_out: Option<String>,
    /// Where to write ∂loss/∂W (V×d).
    #[arg(long, value_name = "FILE.npy")]
    grad_classifier_out: Option<String>,
    /// Where to write ∂loss/∂b (V values; needs --bias).
    #[arg(long, value_name = "FILE.npy", requires = "bias")]
    grad_bias_out: Option<String>,
}

pub fn run(args: Args, backend: BackendChoice) -> Result<Report> {
    let reduction = Reduction::from_name(&args.reduction)?;
    if args.out.is_some() != (reduction == Reduction::None) {
        return Err(Error::InvalidInput(
            "linear-ce: --out takes the row losses of --reduction none, and none needs --out"
                .into(),
        ));
    }
    let outputs: Vec<(&str, &str)> = [
        ("--out", &args.out),
        ("--grad-hidden-out", &args.grad_hidden_out),
        ("--grad-classifier-out", &args.grad_classifier_out),
        ("--grad-bias-out", &args.grad_bias_out),
    ]
    .iter()
    .filter_map(|(flag, path)| path.as_deref().map(|p| (*flag, p)))
    .collect();
    let mut inputs = vec![
        ("--hidden", args.hidden.as_str()),
        ("--classifier", args.classifier.as_str()),
        ("--labels", args.labels.as_str()),
    ];
    if let Some(b) = &args.bias {
        inputs.push(("--bias", b));
    }
    io::check_outputs(&outputs, &inputs, false)?;
    let hidden = io::read(&args.hidden)?;
    let classifier = io::read(&args.classifier)?;
    let labels = io::read(&args.labels)?;
    let bias = args.bias.as_deref().map(io::read).transpose()?;
    let d = match (hidden.is_2d(), classifier.is_2d()) {
        (true, true) if hidden.cols() == classifier.cols() => hidden.cols(),
        (true, true) => {
            return Err(io::file_error(
                &args.classifier,
                format!(
                    "W has {} columns and H {}: both are ×d",
                    classifier.cols(),
                    hidden.cols()
                ),
            ))
        }
        (false, _) => return Err(hidden.error("H must be 2-D (N×d)")),
        (_, false) => return Err(classifier.error("W must be 2-D (V×d)")),
    };
    let ys = super::loss::class_indices(&labels, args.ignore_index)?;
    let (h, w) = (hidden.to_f32()?, classifier.to_f32()?);
    let b = bias.as_ref().map(|b| b.to_f32()).transpose()?;
    let mut input = LinearInput::new(&h, &w, d, &ys)
        .with_label_smoothing(args.label_smoothing.unwrap_or(0.0))
        .with_z_loss(args.z_loss.unwrap_or(0.0));
    if let Some(b) = &b {
        input = input.with_bias(b);
    }
    if let Some(ig) = args.ignore_index {
        input = input.with_ignore_index(ig);
    }
    let name = |e: Error| match &e {
        Error::Value {
            input: "labels", ..
        } => io::file_error(&args.labels, e),
        _ => e,
    };
    // Every input is checked before a device is opened.
    lossgpu::cpu::linear::validate(&input, reduction).map_err(name)?;
    let grads = args.grad_hidden_out.is_some()
        || args.grad_classifier_out.is_some()
        || args.grad_bias_out.is_some();
    let engine = open_engine(backend)?;
    // Half files of one type are read as they are.
    let halves = [Some(&hidden), Some(&classifier), bias.as_ref()];
    let half = halves
        .iter()
        .flatten()
        .map(|a| a.half)
        .reduce(|a, b| if a == b { a } else { None })
        .flatten();
    let result = match half {
        Some(DType::F16) => evaluate::<f16>(&engine, &input, reduction, grads),
        Some(DType::Bf16) => evaluate::<bf16>(&engine, &input, reduction, grads),
        _ => evaluate::<f32>(&engine, &input, reduction, grads),
    }
    .map_err(name)?;
    let (n, v) = (ys.len(), w.len() / d);
    if let (Some(out), Some(rows)) = (&args.out, result.value.per_sample()) {
        io::write_npy(out, rows, &[n])?;
    }
    for (path, values, dims) in [
        (&args.grad_hidden_out, Some(&result.hidden), [n, d]),
        (&args.grad_classifier_out, Some(&result.classifier), [v, d]),
        (&args.grad_bias_out, result.bias.as_ref(), [v, 1]),
    ] {
        if let (Some(path), Some(values)) = (path, values) {
            let dims: &[usize] = if dims[1] == 1 { &dims[..1] } else { &dims };
            io::write_npy(path, values, dims)?;
        }
    }
    let mut report = Report::new();
    report.str("loss", "linear-ce");
    report.str("reduction", reduction.name());
    match result.value.scalar() {
        Some(x) => report.num("value", x),
        None => report.field("value", Value::Null, "none (row losses in --out)".into()),
    }
    report.int("n", n);
    report.int("d", d);
    report.int("v", v);
    if let Some(h) = half {
        report.str("dtype", h.name());
    }
    let underflowed = [Some(&hidden), Some(&classifier), bias.as_ref()]
        .iter()
        .flatten()
        .map(|a| a.underflowed())
        .sum();
    add_underflow(&mut report, underflowed);
    add_engine(&mut report, &engine);
    Ok(report)
}

/// The call on the values as `H` (exact: they were read from `H` files, or
/// `H` is f32), with gradients when asked for.
fn evaluate<H: Float>(
    engine: &Engine,
    input: &LinearInput,
    reduction: Reduction,
    grads: bool,
) -> Result<LinearGrads> {
    let narrow = |v: &[f32]| super::dtypes::narrow::<H>(v);
    let (h, w) = (narrow(input.hidden), narrow(input.classifier));
    let b = input.bias.map(narrow);
    let mut typed = LinearInput::new(&h, &w, input.dim, input.labels)
        .with_label_smoothing(input.label_smoothing)
        .with_z_loss(input.z_loss);
    typed.ignore_index = input.ignore_index;
    if let Some(b) = &b {
        typed = typed.with_bias(b);
    }
    if grads {
        return engine.linear_cross_entropy_and_grad(&typed, reduction);
    }
    Ok(LinearGrads {
        value: engine.linear_cross_entropy(&typed, reduction)?,
        hidden: Vec::new(),
        classifier: Vec::new(),
        bias: None,
    })
}
