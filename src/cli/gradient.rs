//! `lossgpu grad-stats` and `lossgpu clip` (SPEC §3).

use super::output::Report;
use super::{add_engine, add_underflow, chunks, io, open_engine, streamed, BackendChoice};
use lossgpu::{Clip, GradStats, Result, VANISH_EPS};

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// The gradient (.npy or .csv; a 2-D file counts as flat).
    #[arg(long, value_name = "FILE")]
    input: String,
    /// |g| below this counts as vanished.
    #[arg(long, value_name = "F", default_value_t = VANISH_EPS, allow_negative_numbers = true)]
    vanish_eps: f32,
}

pub fn run_stats(args: StatsArgs, backend: BackendChoice) -> Result<Report> {
    lossgpu::ops::gradient::check_vanish_eps(args.vanish_eps)?;
    let (s, underflowed, engine);
    let chunked = chunks::is_large_npy(&args.input);
    if chunked {
        (s, underflowed, engine) = streamed::grad_stats(&args.input, args.vanish_eps, backend)?;
    } else {
        let input = io::read(&args.input)?;
        let g = input.to_f32()?;
        engine = open_engine(backend)?;
        s = engine.grad_stats(&g, args.vanish_eps)?;
        underflowed = input.underflowed();
    }
    let mut report = Report::new();
    report.num("l2_norm", s.l2_norm);
    report.num("max_abs", s.max_abs);
    report.int("nan_count", s.nan_count as usize);
    report.int("inf_count", s.inf_count as usize);
    report.num("vanishing_fraction", s.vanishing_fraction);
    report.int("n", s.n as usize);
    if chunked {
        report.text_only(
            "input",
            format!("read in chunks of {} values", chunks::chunk_len()),
        );
    }
    add_underflow(&mut report, underflowed);
    add_engine(&mut report, &engine);
    Ok(report)
}

#[derive(Debug, clap::Args)]
pub struct ClipArgs {
    /// The gradient (.npy or .csv).
    #[arg(long, value_name = "FILE")]
    input: String,
    /// Where to write the clipped gradient (f32, the input's shape).
    #[arg(long, value_name = "FILE.npy")]
    out: String,
    /// Allow an output to replace an input file (written durably: the input
    /// is read whole first, and replaced only once the output is complete).
    #[arg(long)]
    in_place: bool,
    /// Scale by min(1, c/(‖g‖ + 1e-6)) (PyTorch's clip_grad_norm_).
    #[arg(
        long,
        value_name = "F",
        required_unless_present = "max_value",
        conflicts_with = "max_value",
        allow_negative_numbers = true
    )]
    max_norm: Option<f32>,
    /// With --max-norm, fail (exit 2, nothing written) when the gradient's
    /// norm is NaN or infinite, as PyTorch's error_if_nonfinite; without it
    /// such a norm makes the output NaN (finite values 0 for an infinite
    /// norm), as in PyTorch.
    #[arg(long, requires = "max_norm")]
    error_if_nonfinite: bool,
    /// Clamp every value to [−c, c].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    max_value: Option<f32>,
}

pub fn run_clip(args: ClipArgs, backend: BackendChoice) -> Result<Report> {
    let clip = match (args.max_norm, args.max_value) {
        (Some(c), _) => Clip::Norm(c),
        (_, Some(c)) => Clip::Value(c),
        (None, None) => unreachable!("clap requires one of --max-norm and --max-value"),
    };
    clip.validate()?;
    io::check_outputs(
        &[("--out", &args.out)],
        &[("--input", &args.input)],
        args.in_place,
    )?;
    let (before, engine, underflowed);
    let chunked = chunks::is_large_npy(&args.input);
    if chunked {
        (before, engine, underflowed) = streamed::clip(
            &args.input,
            &args.out,
            clip,
            args.error_if_nonfinite,
            backend,
        )?;
    } else {
        let input = io::read(&args.input)?;
        let g = input.to_f32()?;
        engine = open_engine(backend)?;
        let clipped;
        (clipped, before) = engine.clip(&g, clip)?;
        if args.error_if_nonfinite {
            check_finite_norm(&before)?;
        }
        io::write_npy(&args.out, &clipped, &input.dims)?;
        underflowed = input.underflowed();
    }
    let scale = match clip {
        Clip::Norm(c) => lossgpu::ops::gradient::clip_coefficient(before.l2_norm, c),
        Clip::Value(_) => 1.0,
    };
    let mut report = Report::new();
    report.num("l2_norm_before", before.l2_norm);
    report.num("scale", scale);
    report.int("n", before.n as usize);
    report.str("out", &args.out);
    if chunked {
        report.text_only(
            "input",
            format!("read in chunks of {} values", chunks::chunk_len()),
        );
    }
    add_underflow(&mut report, underflowed);
    add_engine(&mut report, &engine);
    Ok(report)
}

/// `--error-if-nonfinite`: a NaN or infinite norm is an error naming it.
pub(super) fn check_finite_norm(before: &GradStats) -> Result<()> {
    if before.l2_norm.is_finite() {
        return Ok(());
    }
    Err(lossgpu::Error::InvalidInput(format!(
        "clip: the gradient's L2 norm is {:?} ({} NaN, {} inf values) and --error-if-nonfinite is set; nothing was written",
        before.l2_norm, before.nan_count, before.inf_count
    )))
}
