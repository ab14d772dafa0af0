//! `lossgpu bench`: every activation (forward and derivative) and a set of
//! losses (value and gradient), timed on the GPU and on the CPU in one run,
//! with the GPU/CPU time ratio, the achieved bandwidth and the largest
//! GPU-vs-CPU difference. Times are medians; the machine may be shared, so
//! compare the ratios, not the seconds.

use super::output::{Report, Value};
use super::{open_engine, BackendChoice};
use lossgpu::{
    Activation, ActivationParams, Engine, Error, Loss, LossInput, Reduction, Result,
    ACTIVATION_NAMES,
};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Element counts to time, comma-separated (default 65536,1048576,4194304).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Small sizes and fewer repetitions, for CI.
    #[arg(long)]
    quick: bool,
    /// Also write every row as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
}

/// One timed operation at one size.
struct Row {
    op: String,
    n: usize,
    bytes: usize,
    gpu: Option<f64>,
    cpu: f64,
    max_err: Option<f64>,
}

enum Op {
    Act(Activation, bool),
    Loss(Loss, bool),
}

impl Op {
    fn name(&self) -> String {
        match self {
            Op::Act(a, d) => format!("{}{}", a.name(), if *d { "'" } else { "" }),
            Op::Loss(l, g) => format!("{}{}", l.name(), if *g { " grad(sum)" } else { "" }),
        }
    }

    /// Input data for n elements (n/10 rows of 10 for cross-entropy).
    fn run(&self, engine: &Engine, x: &[f32], t: &[f32], classes: &[u32]) -> Result<Vec<f32>> {
        match self {
            Op::Act(a, false) => engine.activation(a, x),
            Op::Act(a, true) => engine.activation_derivative(a, x),
            Op::Loss(l, grad) => {
                let input = match l {
                    Loss::CrossEntropy => LossInput::classes(x, 10, classes),
                    _ => LossInput::new(x, t),
                };
                // The gradient of the sum: O(1) values, so max err means something.
                if *grad {
                    engine.loss_grad(l, &input, Reduction::Sum)
                } else {
                    Ok(vec![engine
                        .loss(l, &input, Reduction::Mean)?
                        .scalar()
                        .unwrap_or(f64::NAN) as f32])
                }
            }
        }
    }

    /// Bytes read and written once each.
    fn bytes(&self, n: usize) -> usize {
        match self {
            Op::Act(..) => 8 * n,
            Op::Loss(Loss::CrossEntropy, g) => 4 * n + 4 * n / 10 + if *g { 4 * n } else { 0 },
            Op::Loss(_, g) => 8 * n + if *g { 4 * n } else { 0 },
        }
    }
}

fn ops() -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    for name in ACTIVATION_NAMES {
        let act = Activation::from_name(name, ActivationParams::default())?;
        ops.push(Op::Act(act, false));
        ops.push(Op::Act(act, true));
    }
    for loss in [
        Loss::Mse,
        Loss::Huber { delta: 1.0 },
        Loss::BceLogits,
        Loss::CrossEntropy,
    ] {
        ops.push(Op::Loss(loss, false));
        ops.push(Op::Loss(loss, true));
    }
    Ok(ops)
}

fn median_time(reps: usize, mut f: impl FnMut() -> Result<Vec<f32>>) -> Result<(f64, Vec<f32>)> {
    let mut out = f()?; // warm-up: pipelines compile, pages fault in
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        out = f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((times[times.len() / 2], out))
}

/// max |gpu − cpu| / max(1, |cpu|): absolute error near zero, relative
/// error for large values. NaN in either side counts only if not in both.
fn max_err(gpu: &[f32], cpu: &[f32]) -> f64 {
    gpu.iter()
        .zip(cpu)
        .map(|(&g, &c)| {
            if g.is_nan() && c.is_nan() || g == c {
                0.0
            } else {
                ((g as f64 - c as f64).abs() / (c as f64).abs().max(1.0)).max(
                    if g.is_nan() || c.is_nan() {
                        f64::INFINITY
                    } else {
                        0.0
                    },
                )
            }
        })
        .fold(0.0, f64::max)
}

fn data(n: usize) -> (Vec<f32>, Vec<f32>, Vec<u32>) {
    // A fixed generator: the benchmark's inputs are the same every run.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let x: Vec<f32> = (0..n).map(|_| (next() - 0.5) * 8.0).collect();
    let t: Vec<f32> = (0..n).map(|_| next()).collect();
    let classes: Vec<u32> = (0..n / 10).map(|_| (next() * 10.0) as u32 % 10).collect();
    (x, t, classes)
}

pub fn run(args: Args, backend: BackendChoice) -> Result<Report> {
    let sizes = match (&args.sizes, args.quick) {
        (Some(s), _) => s.clone(),
        (None, true) => vec![1 << 12, 1 << 16],
        (None, false) => vec![1 << 16, 1 << 20, 1 << 22],
    };
    if sizes.iter().any(|&n| n < 10) {
        return Err(Error::InvalidInput(
            "bench: every size must be at least 10".into(),
        ));
    }
    let reps = if args.quick { 3 } else { 5 };
    let gpu = match backend {
        BackendChoice::Cpu => None,
        _ => {
            let engine = open_engine(backend)?;
            (engine.backend() == lossgpu::Backend::Gpu).then_some(engine)
        }
    };
    let cpu = Engine::cpu();
    let ops = ops()?;
    let bar = indicatif::ProgressBar::new((ops.len() * sizes.len()) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .map_err(|e| Error::InvalidInput(e.to_string()))?,
    );
    let mut rows = Vec::new();
    for &n in &sizes {
        let n = n / 10 * 10;
        let (x, t, classes) = data(n);
        for op in &ops {
            bar.set_message(format!("{} n={n}", op.name()));
            let (cpu_time, cpu_out) = median_time(reps, || op.run(&cpu, &x, &t, &classes))?;
            let (gpu_time, err) = match &gpu {
                Some(g) => {
                    let (time, out) = median_time(reps, || op.run(g, &x, &t, &classes))?;
                    (Some(time), Some(max_err(&out, &cpu_out)))
                }
                None => (None, None),
            };
            rows.push(Row {
                op: op.name(),
                n,
                bytes: op.bytes(n),
                gpu: gpu_time,
                cpu: cpu_time,
                max_err: err,
            });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    let mut report = Report::new();
    let device = match &gpu {
        Some(g) => g.device_name(),
        None => {
            let why = open_engine(backend)
                .ok()
                .and_then(|e| e.fallback_reason())
                .unwrap_or_else(|| "--backend cpu".into());
            format!("none: timing the CPU only ({why})")
        }
    };
    report.str("gpu", &device);
    report.str(
        "cpu",
        &format!("f64, rayon on {} threads", rayon::current_num_threads()),
    );
    report.int("repetitions", reps);
    report.field(
        "results",
        Value::List(rows.iter().map(row_json).collect()),
        table(&rows),
    );
    if let Some(path) = &args.json {
        let mut json = String::new();
        Value::List(rows.iter().map(row_json).collect()).write_json(&mut json);
        std::fs::write(path, json).map_err(|e| Error::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
    }
    Ok(report)
}

fn row_json(r: &Row) -> Value {
    let opt = |v: Option<f64>| v.map_or(Value::Null, Value::Num);
    Value::Object(vec![
        ("op".into(), Value::Str(r.op.clone())),
        ("n".into(), Value::Int(r.n as u64)),
        ("gpu_seconds".into(), opt(r.gpu)),
        ("cpu_seconds".into(), Value::Num(r.cpu)),
        ("gpu_over_cpu".into(), opt(r.gpu.map(|g| g / r.cpu))),
        (
            "gpu_gbps".into(),
            opt(r.gpu.map(|g| r.bytes as f64 / g / 1e9)),
        ),
        ("cpu_gbps".into(), Value::Num(r.bytes as f64 / r.cpu / 1e9)),
        ("max_err".into(), opt(r.max_err)),
    ])
}

fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "\n{:<24} {:>9} {:>11} {:>11} {:>9} {:>8} {:>8} {:>10}\n",
        "op", "n", "gpu ms", "cpu ms", "gpu/cpu", "gpu GB/s", "cpu GB/s", "max err"
    );
    for r in rows {
        let gpu_ms = r.gpu.map_or("-".into(), |g| format!("{:.3}", g * 1e3));
        let ratio = r.gpu.map_or("-".into(), |g| format!("{:.2}", g / r.cpu));
        let gbps = r
            .gpu
            .map_or("-".into(), |g| format!("{:.2}", r.bytes as f64 / g / 1e9));
        let err = r.max_err.map_or("-".into(), |e| format!("{e:.1e}"));
        s.push_str(&format!(
            "{:<24} {:>9} {:>11} {:>11.3} {:>9} {:>8} {:>8.2} {:>10}\n",
            r.op,
            r.n,
            gpu_ms,
            r.cpu * 1e3,
            ratio,
            gbps,
            r.bytes as f64 / r.cpu / 1e9,
            err
        ));
    }
    s.push_str("gpu/cpu < 1 means the GPU was faster; max err = max |gpu − cpu| / max(1, |cpu|).");
    s
}
