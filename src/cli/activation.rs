//! `lossgpu activation NAME --input FILE --out FILE.npy [--derivative] ...`

use super::dtypes::narrow;
use super::output::Report;
use super::{add_engine, add_underflow, io, open_engine, BackendChoice};
use lossgpu::{
    bf16, f16, Activation, ActivationParams, DType, Engine, Error, Result, ACTIVATION_NAMES,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The activation.
    #[arg(value_name = "NAME", help = format!("One of: {}", ACTIVATION_NAMES.join(", ")))]
    name: String,
    /// Input values (.npy or .csv).
    #[arg(long, value_name = "FILE")]
    input: String,
    /// Where to write f(x) (or f'(x)) as f32, with the input's shape.
    #[arg(long, value_name = "FILE.npy")]
    out: String,
    /// Allow an output to replace an input file (written durably: the input
    /// is read whole first, and replaced only once the output is complete).
    #[arg(long)]
    in_place: bool,
    /// Write the derivative f'(x) instead of f(x).
    #[arg(long)]
    derivative: bool,
    /// Slope for x <= 0 (leaky-relu 0.01, prelu 0.25) or scale (elu 1.0).
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    alpha: Option<f32>,
    /// β of swish (default 1.0).
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    beta: Option<f32>,
    /// Lower bound of rrelu's α (default 1/8).
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    lower: Option<f32>,
    /// Upper bound of rrelu's α (default 1/3).
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    upper: Option<f32>,
    /// rrelu in training mode: a random α per element.
    #[arg(long)]
    train: bool,
    /// Key of rrelu's generator (default 0).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

pub fn run(args: Args, backend: BackendChoice) -> Result<Report> {
    let params = ActivationParams {
        alpha: args.alpha,
        beta: args.beta,
        lower: args.lower,
        upper: args.upper,
        training: args.train,
        seed: args.seed,
    };
    let act = Activation::from_name(&args.name, params)?;
    reject_unused(&args, &act)?;
    io::check_outputs(
        &[("--out", &args.out)],
        &[("--input", &args.input)],
        args.in_place,
    )?;
    let input = io::read(&args.input)?;
    let x = input.to_f32()?;

    let engine = open_engine(backend)?;
    // A half file is read by the engine as it is (2 bytes a value on the GPU).
    let y = match input.half {
        Some(DType::F16) => apply(&engine, &act, &narrow::<f16>(&x), args.derivative)?,
        Some(DType::Bf16) => apply(&engine, &act, &narrow::<bf16>(&x), args.derivative)?,
        _ => apply(&engine, &act, &x, args.derivative)?,
    };
    io::write_npy(&args.out, &y, &input.dims)?;

    let mut report = Report::new();
    report.str("activation", act.name());
    report.bool("derivative", args.derivative);
    report.int("n", x.len());
    if let Some(h) = input.half {
        report.str("dtype", h.name());
    }
    report.str("out", &args.out);
    add_underflow(&mut report, input.underflowed());
    add_engine(&mut report, &engine);
    Ok(report)
}

/// f(x), or f'(x) with `derivative`.
fn apply<F: lossgpu::Float>(
    engine: &Engine,
    act: &Activation,
    x: &[F],
    derivative: bool,
) -> Result<Vec<f32>> {
    match derivative {
        true => engine.activation_derivative(act, x),
        false => engine.activation(act, x),
    }
}

/// A parameter the activation does not have would be silently ignored;
/// saying so catches typos such as `--alpha` for swish.
fn reject_unused(args: &Args, act: &Activation) -> Result<()> {
    let alpha = matches!(
        act,
        Activation::LeakyRelu { .. } | Activation::Prelu { .. } | Activation::Elu { .. }
    );
    let beta = matches!(act, Activation::Swish { .. });
    let rrelu = matches!(act, Activation::Rrelu { .. });
    let given = [
        ("--alpha", args.alpha.is_some(), alpha),
        ("--beta", args.beta.is_some(), beta),
        ("--lower", args.lower.is_some(), rrelu),
        ("--upper", args.upper.is_some(), rrelu),
        ("--train", args.train, rrelu),
        ("--seed", args.seed.is_some(), rrelu),
    ];
    match given.iter().find(|(_, set, applies)| *set && !applies) {
        Some((flag, _, _)) => Err(Error::InvalidInput(format!(
            "{} takes no {flag}",
            act.name()
        ))),
        None => Ok(()),
    }
}
