//! `lossgpu bench`: for each op family (a few activations, four losses with
//! their gradients, the fused metrics pass) and each size, the median time
//!
//! - on the GPU end to end from host slices (upload, kernels, readback),
//! - on the GPU with the inputs resident (uploaded once; `loss_tensor`,
//!   `loss_grad_tensor`, `activation_tensor` + `synchronize`),
//! - on the CPU backend (`Engine::cpu()`), and
//! - on the calibrating auto engine (`Engine::auto()`), from host slices,
//!
//! with the achieved bandwidth, and in the same run the ceilings those
//! figures are shown as fractions of: the adapter's buffer-to-buffer copy and
//! minimal read kernel (`Engine::probe_copy`, `Engine::probe_read`), and the
//! host's single-pass read, on one thread and on all cores. A batch row
//! times 64 small losses as one `loss_batch` against 64 `loss` calls, and a
//! closing "targets" section checks the figures of issue #4 (reported, never
//! asserted).
//!
//! Repetitions: one warm-up run (pipelines compile, pages fault in), then as
//! many timed runs as fit a 0.25 s budget, at least 3 and at most 15 (so
//! 3 for every GPU figure from about 2^22 on lavapipe); the median is
//! reported. The default run takes about ten minutes on lavapipe with two
//! cores, most of it at 2^26. `--quick` times exactly 3 runs at 2^10, 2^14
//! and 2^16 (seconds). The machine may be shared: compare ratios within one
//! run, not seconds.

use super::output::{Report, Value};
use super::BackendChoice;
use lossgpu::probe::Probe;
use lossgpu::{
    Activation, ActivationParams, ClassTensor, Engine, Error, Loss, LossInput, Pass, Reduction,
    Result, Tensor,
};
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Element counts to time, comma-separated (default every other power of
    /// two from 2^10 to 2^26: 1024, 4096, …, 67108864).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// 2^10, 2^14 and 2^16 with 3 repetitions each, for CI.
    #[arg(long)]
    quick: bool,
    /// Also write the whole report as one JSON object to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
}

/// Timed runs fill this many seconds per figure...
const BUDGET: f64 = 0.25;
/// ...but are at least this many...
const MIN_REPS: usize = 3;
/// ...and at most this many.
const MAX_REPS: usize = 15;
/// Columns of the cross-entropy rows.
const CLASSES: usize = 10;
/// The shortest timed sample of a host-slice column, in seconds: quicker
/// calls are repeated within a sample.
const SAMPLE: f64 = 2e-4;
/// The batch row: this many losses...
const BATCH: usize = 64;
/// ...of this many values each.
const BATCH_N: usize = 1024;
/// Where the GPU and metrics targets are stated.
const TARGET_N: usize = 1 << 24;
/// Where the CPU target is stated.
const CPU_TARGET_N: usize = 1 << 26;

/// A median and how many timed runs it came from.
#[derive(Clone, Copy)]
struct Timing {
    seconds: f64,
    reps: usize,
}

/// Times `f`: a warm-up, then MIN_REPS..=MAX_REPS runs (exactly MIN_REPS
/// with `quick`); returns the median and the last result.
fn time<T>(quick: bool, mut f: impl FnMut() -> Result<T>) -> Result<(Timing, T)> {
    black_box(f()?);
    let mut times = Vec::new();
    let mut reps = MIN_REPS;
    loop {
        let start = Instant::now();
        let out = black_box(f()?);
        times.push(start.elapsed().as_secs_f64());
        if times.len() == 1 && !quick {
            reps = ((BUDGET / times[0].max(1e-9)).ceil() as usize).clamp(MIN_REPS, MAX_REPS);
        }
        if times.len() >= reps {
            return Ok((
                Timing {
                    seconds: median(times),
                    reps,
                },
                out,
            ));
        }
    }
}

/// Times `f` on each engine in turns (a warm-up each, then one sample of
/// each per round in a rotating order, a sample being as many calls as fill
/// SAMPLE, as many rounds as [`time`] would give the slowest); returns
/// each engine's median and last result, in order.
fn time_in_turns<T>(
    quick: bool,
    engines: &[&Engine],
    f: impl Fn(&Engine) -> Result<T>,
) -> Result<Vec<(Timing, T)>> {
    let mut outs = Vec::with_capacity(engines.len());
    // Calls per sample: enough for SAMPLE seconds, so that a call of a few
    // microseconds is not timed alone.
    let mut inner = Vec::with_capacity(engines.len());
    for e in engines {
        outs.push(black_box(f(e)?));
        let start = Instant::now();
        black_box(f(e)?);
        let once = start.elapsed().as_secs_f64().max(1e-9);
        inner.push(((SAMPLE / once).ceil() as usize).clamp(1, 1000));
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); engines.len()];
    let mut reps = MIN_REPS;
    for round in 0.. {
        // Each round starts one column later: a run right after the GPU's
        // shares the cores with the driver's threads winding down, so no
        // column may always come second.
        for i in 0..engines.len() {
            let k = (round + i) % engines.len();
            let start = Instant::now();
            for _ in 0..inner[k] {
                outs[k] = black_box(f(engines[k])?);
            }
            times[k].push(start.elapsed().as_secs_f64() / inner[k] as f64);
        }
        if round == 0 && !quick {
            let slowest = (times.iter().zip(&inner))
                .map(|(t, &k)| t[0] * k as f64)
                .fold(1e-9, f64::max);
            reps = ((BUDGET / slowest).ceil() as usize).clamp(MIN_REPS, MAX_REPS);
        }
        if round + 1 >= reps {
            break;
        }
    }
    Ok(times
        .into_iter()
        .zip(outs)
        .map(|(t, out)| {
            (
                Timing {
                    seconds: median(t),
                    reps,
                },
                out,
            )
        })
        .collect())
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(|a, b| a.total_cmp(b));
    let mid = times.len() / 2;
    if times.len() % 2 == 1 {
        times[mid]
    } else {
        (times[mid - 1] + times[mid]) / 2.0
    }
}

fn no_timing() -> Error {
    Error::InvalidInput("bench: a column was not timed".into())
}

/// The benchmark's inputs at one size; the same every run.
struct Data {
    x: Vec<f32>,
    t: Vec<f32>,
    classes: Vec<u32>,
}

fn data(n: usize) -> Data {
    // A fixed xorshift generator.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let x: Vec<f32> = (0..n).map(|_| (next() - 0.5) * 8.0).collect();
    let t: Vec<f32> = (0..n).map(|_| next()).collect();
    let classes: Vec<u32> = (0..n / CLASSES)
        .map(|_| (next() * CLASSES as f32) as u32 % CLASSES as u32)
        .collect();
    Data { x, t, classes }
}

/// What an operation returns, compared GPU against CPU after the timing.
enum Out {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Out {
    fn values(&self) -> Vec<f64> {
        match self {
            Out::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Out::F64(v) => v.clone(),
        }
    }
}

#[derive(Clone, Copy)]
enum Op {
    Act(Activation, Pass),
    /// The mean loss, or with `true` the gradient of the sum (O(1) values,
    /// so the max err means something).
    Loss(Loss, bool),
    /// `Engine::regression_metrics`: eight metrics in one pass.
    Metrics,
}

impl Op {
    fn name(&self) -> String {
        match self {
            Op::Act(a, Pass::Forward) => a.name().to_string(),
            Op::Act(a, _) => format!("{}'", a.name()),
            Op::Loss(Loss::CrossEntropy, g) => {
                format!("cross-entropy m={CLASSES}{}", if *g { " grad" } else { "" })
            }
            Op::Loss(l, g) => format!("{}{}", l.name(), if *g { " grad" } else { "" }),
            Op::Metrics => "metrics (fused)".to_string(),
        }
    }

    /// Elements processed at size n (whole rows for cross-entropy).
    fn elements(&self, n: usize) -> usize {
        match self {
            Op::Loss(Loss::CrossEntropy, _) => n / CLASSES * CLASSES,
            _ => n,
        }
    }

    /// Input tensors of n values read, for the ceilings: cross-entropy reads
    /// its scores and n/10 class indices, counted as one tensor.
    fn inputs(&self) -> usize {
        match self {
            Op::Act(..) | Op::Loss(Loss::CrossEntropy, _) => 1,
            _ => 2,
        }
    }

    /// Bytes read and written once each.
    fn bytes(&self, n: usize) -> usize {
        match self {
            Op::Act(..) => 8 * n,
            Op::Loss(Loss::CrossEntropy, g) => {
                let n = self.elements(n);
                4 * n + 4 * n / CLASSES + if *g { 4 * n } else { 0 }
            }
            Op::Loss(_, g) => 8 * n + if *g { 4 * n } else { 0 },
            Op::Metrics => 8 * n,
        }
    }

    /// End to end from host slices.
    fn host(&self, engine: &Engine, d: &Data) -> Result<Out> {
        Ok(match self {
            Op::Act(a, Pass::Forward) => Out::F32(engine.activation(a, &d.x)?),
            Op::Act(a, _) => Out::F32(engine.activation_derivative(a, &d.x)?),
            Op::Loss(l, grad) => {
                let rows = d.classes.len();
                let input = match l {
                    Loss::CrossEntropy => {
                        LossInput::classes(&d.x[..rows * CLASSES], CLASSES, &d.classes)
                    }
                    _ => LossInput::new(&d.x, &d.t),
                };
                if *grad {
                    Out::F32(engine.loss_grad(l, &input, Reduction::Sum)?)
                } else {
                    let v = engine.loss(l, &input, Reduction::Mean)?;
                    Out::F64(vec![v.scalar().unwrap_or(f64::NAN)])
                }
            }
            Op::Metrics => {
                let m = engine.regression_metrics(&LossInput::new(&d.x, &d.t), 1.0, 0.5)?;
                Out::F64(vec![
                    m.mse, m.rmse, m.mae, m.mape, m.smape, m.huber, m.log_cosh, m.quantile,
                ])
            }
        })
    }

    /// Whether the library has a path on resident tensors: activations and
    /// losses do; the metrics do not.
    fn has_resident(&self) -> bool {
        !matches!(self, Op::Metrics)
    }

    /// On resident tensors (see [`Op::has_resident`]); waits for the result.
    fn resident(&self, engine: &Engine, r: &Resident) -> Result<()> {
        let (x, t) = (&r.x, &r.t);
        match self {
            Op::Act(a, pass) => {
                let y = engine.activation_tensor(a, *pass, x, None)?;
                engine.synchronize()?;
                drop(black_box(y));
            }
            Op::Loss(l @ Loss::CrossEntropy, false) => drop(black_box(engine.loss_tensor(
                l,
                &r.logits,
                &r.classes,
                Reduction::Mean,
            )?)),
            Op::Loss(l @ Loss::CrossEntropy, true) => {
                let g = engine.loss_grad_tensor(l, &r.logits, &r.classes, Reduction::Sum)?;
                engine.synchronize()?;
                drop(black_box(g));
            }
            Op::Loss(l, false) => drop(black_box(engine.loss_tensor(l, x, t, Reduction::Mean)?)),
            Op::Loss(l, true) => {
                let g = engine.loss_grad_tensor(l, x, t, Reduction::Sum)?;
                engine.synchronize()?;
                drop(black_box(g));
            }
            Op::Metrics => {
                return Err(Error::InvalidInput(
                    "the metrics have no resident path".into(),
                ))
            }
        }
        Ok(())
    }
}

/// The inputs uploaded once per size: x and t, and cross-entropy's whole
/// rows of logits with their class indices.
struct Resident {
    x: Tensor,
    t: Tensor,
    logits: Tensor,
    classes: ClassTensor,
}

impl Resident {
    fn upload(g: &Engine, d: &Data) -> Result<Resident> {
        Ok(Resident {
            x: g.upload(&d.x)?,
            t: g.upload(&d.t)?,
            logits: g.upload_rows(&d.x[..d.classes.len() * CLASSES], CLASSES)?,
            classes: g.upload_classes(&d.classes)?,
        })
    }
}

/// The value losses the GPU-resident target is stated for.
const TARGET_LOSSES: [&str; 4] = ["mse", "huber", "bce-logits", "cross-entropy m=10"];

fn ops() -> Result<Vec<Op>> {
    let act = |name| Activation::from_name(name, ActivationParams::default());
    let mut ops = vec![
        Op::Act(act("sigmoid")?, Pass::Forward),
        Op::Act(act("tanh")?, Pass::Forward),
        Op::Act(act("swish")?, Pass::Forward),
        Op::Act(act("sigmoid")?, Pass::Derivative),
    ];
    for loss in [
        Loss::Mse,
        Loss::Huber { delta: 1.0 },
        Loss::BceLogits,
        Loss::CrossEntropy,
    ] {
        ops.push(Op::Loss(loss, false));
        ops.push(Op::Loss(loss, true));
    }
    ops.push(Op::Metrics);
    Ok(ops)
}

/// max |gpu − cpu| / max(1, |cpu|): absolute error near zero, relative
/// error for large values. NaN in either side counts only if not in both.
fn max_err(gpu: &[f64], cpu: &[f64]) -> f64 {
    if gpu.len() != cpu.len() {
        return f64::INFINITY;
    }
    gpu.iter()
        .zip(cpu)
        .map(|(&g, &c)| {
            if g.is_nan() && c.is_nan() || g == c {
                0.0
            } else if g.is_nan() || c.is_nan() {
                f64::INFINITY
            } else {
                (g - c).abs() / c.abs().max(1.0)
            }
        })
        .fold(0.0, f64::max)
}

// ---- host read ceiling -------------------------------------------------

/// Σ x (and Σ y) in one pass with eight independent f32 lanes, so the loop
/// runs at memory speed rather than at the latency of one dependent add.
fn lanes_sum(x: &[f32], y: Option<&[f32]>) -> f32 {
    let mut acc = [0.0f32; 8];
    match y {
        None => {
            let chunks = x.chunks_exact(8);
            let rest: f32 = chunks.remainder().iter().sum();
            for c in chunks {
                for k in 0..8 {
                    acc[k] += c[k];
                }
            }
            acc.iter().sum::<f32>() + rest
        }
        Some(y) => {
            let (cx, cy) = (x.chunks_exact(8), y.chunks_exact(8));
            let rest: f32 = cx.remainder().iter().chain(cy.remainder()).sum();
            for (a, b) in cx.zip(cy) {
                for k in 0..8 {
                    acc[k] += a[k] + b[k];
                }
            }
            acc.iter().sum::<f32>() + rest
        }
    }
}

/// [`lanes_sum`] over blocks of 64 Ki values on every rayon thread.
fn lanes_sum_all_cores(x: &[f32], y: Option<&[f32]>) -> f32 {
    const BLOCK: usize = 1 << 16;
    match y {
        None => x.par_chunks(BLOCK).map(|a| lanes_sum(a, None)).sum(),
        Some(y) => x
            .par_chunks(BLOCK)
            .zip(y.par_chunks(BLOCK))
            .map(|(a, b)| lanes_sum(a, Some(b)))
            .sum(),
    }
}

/// The ceilings at one size; index k − 1 is for k input tensors.
struct Ceilings {
    n: usize,
    /// GPU buffer-to-buffer copy of 1 or 2 tensors.
    copy: [Option<Timing>; 2],
    /// GPU minimal read kernel over 1 or 2 tensors.
    read: [Option<Timing>; 2],
    /// Host single-pass read on one thread.
    host_one: [Timing; 2],
    /// Host single-pass read on all cores.
    host_all: [Timing; 2],
}

impl Ceilings {
    fn measure(
        quick: bool,
        n: usize,
        d: &Data,
        gpu: Option<(&Engine, &Tensor, &Tensor)>,
    ) -> Result<Ceilings> {
        let (mut copy, mut read) = ([None; 2], [None; 2]);
        if let Some((g, x, t)) = gpu {
            let probe = Probe::new(g)?;
            copy[0] = Some(time(quick, || probe.copy(&[x]))?.0);
            copy[1] = Some(time(quick, || probe.copy(&[x, t]))?.0);
            read[0] = Some(time(quick, || probe.read(&[x]))?.0);
            read[1] = Some(time(quick, || probe.read(&[x, t]))?.0);
        }
        let (x, t) = (&d.x[..], Some(&d.t[..]));
        Ok(Ceilings {
            n,
            copy,
            read,
            host_one: [
                time(quick, || Ok(lanes_sum(x, None)))?.0,
                time(quick, || Ok(lanes_sum(x, t)))?.0,
            ],
            host_all: [
                time(quick, || Ok(lanes_sum_all_cores(x, None)))?.0,
                time(quick, || Ok(lanes_sum_all_cores(x, t)))?.0,
            ],
        })
    }
}

// ---- rows --------------------------------------------------------------

/// One operation at one size.
struct Row {
    op: String,
    n: usize,
    bytes: usize,
    inputs: usize,
    e2e: Option<Timing>,
    resident: Option<Timing>,
    cpu: Timing,
    auto: Option<Timing>,
    max_err: Option<f64>,
}

impl Row {
    /// auto / min(gpu e2e, cpu): above 1 the auto engine lost time.
    fn auto_over_best(&self) -> Option<f64> {
        let best = self
            .e2e
            .map_or(self.cpu.seconds, |g| g.seconds.min(self.cpu.seconds));
        self.auto.map(|a| a.seconds / best)
    }
}

/// ceiling time / op time: 1 means the op runs at the ceiling.
fn fraction(ceiling: Option<Timing>, op: Option<Timing>) -> Option<f64> {
    Some(ceiling?.seconds / op?.seconds)
}

fn gbps(bytes: usize, t: Option<Timing>) -> Option<f64> {
    t.map(|t| bytes as f64 / t.seconds / 1e9)
}

/// The fractions of a row against the ceilings at its size.
struct Fractions {
    resident_read: Option<f64>,
    resident_copy: Option<f64>,
    e2e_read: Option<f64>,
    e2e_copy: Option<f64>,
    cpu_host_one: Option<f64>,
    cpu_host_all: Option<f64>,
}

fn fractions(r: &Row, c: &Ceilings) -> Fractions {
    let k = r.inputs - 1;
    Fractions {
        resident_read: fraction(c.read[k], r.resident),
        resident_copy: fraction(c.copy[k], r.resident),
        e2e_read: fraction(c.read[k], r.e2e),
        e2e_copy: fraction(c.copy[k], r.e2e),
        cpu_host_one: fraction(Some(c.host_one[k]), Some(r.cpu)),
        cpu_host_all: fraction(Some(c.host_all[k]), Some(r.cpu)),
    }
}

/// The batch row: BATCH losses of BATCH_N values.
struct Batch {
    /// (engine label, batched, separate)
    times: Vec<(&'static str, Timing, Timing)>,
}

impl Batch {
    fn measure(quick: bool, engines: &[(&'static str, &Engine)]) -> Result<Batch> {
        let sets: Vec<Data> = (0..BATCH).map(|k| data(BATCH_N + k % 2)).collect();
        let items: Vec<(Loss, LossInput)> = sets
            .iter()
            .map(|d| (Loss::Mse, LossInput::new(&d.x[..BATCH_N], &d.t[..BATCH_N])))
            .collect();
        let mut times = Vec::new();
        for &(label, engine) in engines {
            let batched = time(quick, || engine.loss_batch(&items, Reduction::Mean))?.0;
            let separate = time(quick, || {
                items
                    .iter()
                    .map(|(l, i)| engine.loss(l, i, Reduction::Mean))
                    .collect::<Result<Vec<_>>>()
            })?
            .0;
            times.push((label, batched, separate));
        }
        Ok(Batch { times })
    }

    fn ratio(&self, label: &str) -> Option<f64> {
        self.times
            .iter()
            .find(|t| t.0 == label)
            .map(|(_, b, s)| s.seconds / b.seconds)
    }
}

// ---- the run -----------------------------------------------------------

pub fn run(args: Args, backend: BackendChoice) -> Result<Report> {
    let sizes = match (&args.sizes, args.quick) {
        (Some(s), _) => s.clone(),
        (None, true) => vec![1 << 10, 1 << 14, 1 << 16],
        (None, false) => (10..=26).step_by(2).map(|k| 1usize << k).collect(),
    };
    if sizes.is_empty() || sizes.iter().any(|&n| n < CLASSES) {
        return Err(Error::InvalidInput(format!(
            "bench: every size must be at least {CLASSES}"
        )));
    }
    let quick = args.quick;
    // The GPU column is a plain GPU engine; the auto column is Engine::auto(),
    // which calibrates per op family and size on its first call of each.
    let (gpu, no_gpu) = match backend {
        BackendChoice::Cpu => (None, Some("--backend cpu".to_string())),
        BackendChoice::Gpu => (Some(Engine::gpu()?), None),
        BackendChoice::Auto => match Engine::gpu() {
            Ok(g) => (Some(g), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    let auto = (backend != BackendChoice::Cpu).then(Engine::auto);
    let cpu = Engine::cpu();
    let ops = ops()?;

    let bar = indicatif::ProgressBar::new((sizes.len() * (ops.len() + 1) + 1) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {msg}")
            .map_err(|e| Error::InvalidInput(e.to_string()))?,
    );
    let mut rows = Vec::new();
    let mut ceilings = Vec::new();
    for &n in &sizes {
        bar.set_message(format!("ceilings n={n}"));
        let d = data(n);
        let resident = match &gpu {
            Some(g) => Some((g, Resident::upload(g, &d)?)),
            None => None,
        };
        let c = Ceilings::measure(
            quick,
            n,
            &d,
            resident.as_ref().map(|(g, r)| (*g, &r.x, &r.t)),
        )?;
        ceilings.push(c);
        bar.inc(1);
        for op in &ops {
            bar.set_message(format!("{} n={n}", op.name()));
            // The host-slice columns run in turns, so that a moment of
            // contention falls on all of them alike and auto/best is fair.
            let host_engines: Vec<&Engine> = [Some(&cpu), gpu.as_ref(), auto.as_ref()]
                .into_iter()
                .flatten()
                .collect();
            let mut timed = time_in_turns(quick, &host_engines, |e| op.host(e, &d))?.into_iter();
            let (cpu_time, cpu_out) = timed.next().ok_or_else(no_timing)?;
            let (e2e, err) = match &gpu {
                Some(_) => {
                    let (t, out) = timed.next().ok_or_else(no_timing)?;
                    (Some(t), Some(max_err(&out.values(), &cpu_out.values())))
                }
                None => (None, None),
            };
            let auto_time = timed.next().map(|(t, _)| t);
            let resident_time = match &resident {
                Some((g, r)) if op.has_resident() => Some(time(quick, || op.resident(g, r))?.0),
                _ => None,
            };
            rows.push(Row {
                op: op.name(),
                n: op.elements(n),
                bytes: op.bytes(n),
                inputs: op.inputs(),
                e2e,
                resident: resident_time,
                cpu: cpu_time,
                auto: auto_time,
                max_err: err,
            });
            bar.inc(1);
        }
    }
    bar.set_message(format!("{BATCH} losses of n={BATCH_N}"));
    let mut engines: Vec<(&'static str, &Engine)> = Vec::new();
    if let Some(g) = &gpu {
        engines.push(("gpu", g));
    }
    engines.push(("cpu", &cpu));
    if let Some(a) = &auto {
        engines.push(("auto", a));
    }
    let batch = Batch::measure(quick, &engines)?;
    bar.finish_and_clear();

    let report = build_report(&Results {
        gpu: gpu.as_ref(),
        no_gpu,
        auto: auto.as_ref(),
        quick,
        rows,
        ceilings,
        batch,
    });
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json()).map_err(|e| Error::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
    }
    Ok(report)
}

struct Results<'a> {
    gpu: Option<&'a Engine>,
    no_gpu: Option<String>,
    auto: Option<&'a Engine>,
    quick: bool,
    rows: Vec<Row>,
    ceilings: Vec<Ceilings>,
    batch: Batch,
}

impl Results<'_> {
    fn ceilings_at(&self, n: usize) -> Option<&Ceilings> {
        // Cross-entropy rows have n rounded down to whole rows of 10.
        self.ceilings
            .iter()
            .find(|c| c.n == n)
            .or_else(|| self.ceilings.iter().find(|c| c.n / CLASSES * CLASSES == n))
    }
}

fn build_report(res: &Results) -> Report {
    let mut report = Report::new();
    let device = match (res.gpu, &res.no_gpu) {
        (Some(g), _) => g.device_name(),
        (None, why) => format!(
            "none: timing the CPU only ({})",
            why.as_deref().unwrap_or("no adapter")
        ),
    };
    report.str("gpu", &device);
    report.str(
        "cpu",
        &format!("f64, rayon on {} threads", rayon::current_num_threads()),
    );
    match res.auto {
        Some(a) => report.field("auto", auto_json(a), auto_description(a)),
        None => report.field("auto", Value::Null, "not timed (--backend cpu)".into()),
    }
    report.str(
        "repetitions",
        &if res.quick {
            format!("median of {MIN_REPS} after a warm-up (--quick)")
        } else {
            format!(
                "median after a warm-up, as many runs as fit {BUDGET} s, at least {MIN_REPS}, at most {MAX_REPS}"
            )
        },
    );
    report.field(
        "ceilings",
        Value::List(res.ceilings.iter().map(ceiling_json).collect()),
        ceiling_table(&res.ceilings),
    );
    let rows_json: Vec<Value> = res
        .rows
        .iter()
        .map(|r| row_json(r, res.ceilings_at(r.n)))
        .collect();
    report.field("results", Value::List(rows_json), results_table(&res.rows));
    report.text_only("fractions", fraction_table(res));
    report.field("batch", batch_json(&res.batch), batch_text(&res.batch));
    let targets = targets(res);
    report.field(
        "targets",
        Value::List(targets.iter().map(Target::json).collect()),
        target_table(&targets),
    );
    report
}

/// The calibrating engine's choices: op family, size class, side, timings.
fn auto_json(a: &Engine) -> Value {
    let choices = a.auto_choices().into_iter().map(|c| {
        Value::Object(vec![
            ("work".into(), Value::Str(c.work.name().into())),
            ("op".into(), Value::Str(c.op.clone())),
            ("size_class".into(), Value::Int(c.size_class as u64)),
            ("backend".into(), Value::Str(c.backend.name().into())),
            ("gpu_seconds".into(), Value::Num(c.gpu_seconds)),
            ("cpu_seconds".into(), Value::Num(c.cpu_seconds)),
        ])
    });
    Value::Object(vec![
        ("device".into(), Value::Str(a.device_name())),
        ("choices".into(), Value::List(choices.collect())),
    ])
}

fn auto_description(a: &Engine) -> String {
    let side = a.backend().name();
    let mut s = match a.fallback_reason() {
        Some(why) => format!("Engine::auto() on the {side} ({why})"),
        None => format!("Engine::auto() with {}; it chose", a.device_name()),
    };
    let mut last = String::new();
    for c in a.auto_choices() {
        let what = format!("{} {}", c.work.name(), c.op);
        if what != last {
            s.push_str(&format!("\n  {what:<28}"));
            last = what;
        }
        s.push_str(&format!(" 2^{}:{}", c.size_class, c.backend.name()));
    }
    s
}

// ---- JSON --------------------------------------------------------------

fn opt(v: Option<f64>) -> Value {
    v.map_or(Value::Null, Value::Num)
}

fn secs(t: Option<Timing>) -> Value {
    opt(t.map(|t| t.seconds))
}

fn ceiling_json(c: &Ceilings) -> Value {
    let bytes = |k: usize| 4 * c.n * (k + 1);
    let mut fields = vec![("n".to_string(), Value::Int(c.n as u64))];
    for k in 0..2 {
        let s = if k == 0 { "1" } else { "2" };
        // A copy reads and writes each byte.
        fields.extend([
            (format!("gpu_copy{s}_seconds"), secs(c.copy[k])),
            (
                format!("gpu_copy{s}_gbps"),
                opt(gbps(2 * bytes(k), c.copy[k])),
            ),
            (format!("gpu_read{s}_seconds"), secs(c.read[k])),
            (format!("gpu_read{s}_gbps"), opt(gbps(bytes(k), c.read[k]))),
            (
                format!("host_read{s}_one_thread_seconds"),
                secs(Some(c.host_one[k])),
            ),
            (
                format!("host_read{s}_one_thread_gbps"),
                opt(gbps(bytes(k), Some(c.host_one[k]))),
            ),
            (
                format!("host_read{s}_all_cores_seconds"),
                secs(Some(c.host_all[k])),
            ),
            (
                format!("host_read{s}_all_cores_gbps"),
                opt(gbps(bytes(k), Some(c.host_all[k]))),
            ),
        ]);
    }
    Value::Object(fields)
}

fn row_json(r: &Row, c: Option<&Ceilings>) -> Value {
    let f = c.map(|c| fractions(r, c));
    let frac = |get: fn(&Fractions) -> Option<f64>| opt(f.as_ref().and_then(get));
    Value::Object(vec![
        ("op".into(), Value::Str(r.op.clone())),
        ("n".into(), Value::Int(r.n as u64)),
        ("bytes".into(), Value::Int(r.bytes as u64)),
        ("inputs".into(), Value::Int(r.inputs as u64)),
        ("gpu_e2e_seconds".into(), secs(r.e2e)),
        ("gpu_resident_seconds".into(), secs(r.resident)),
        ("cpu_seconds".into(), secs(Some(r.cpu))),
        ("auto_seconds".into(), secs(r.auto)),
        ("gpu_e2e_gbps".into(), opt(gbps(r.bytes, r.e2e))),
        ("gpu_resident_gbps".into(), opt(gbps(r.bytes, r.resident))),
        ("cpu_gbps".into(), opt(gbps(r.bytes, Some(r.cpu)))),
        ("auto_gbps".into(), opt(gbps(r.bytes, r.auto))),
        (
            "gpu_e2e_over_cpu".into(),
            opt(r.e2e.map(|g| g.seconds / r.cpu.seconds)),
        ),
        ("auto_over_best".into(), opt(r.auto_over_best())),
        ("resident_read_fraction".into(), frac(|f| f.resident_read)),
        ("resident_copy_fraction".into(), frac(|f| f.resident_copy)),
        ("e2e_read_fraction".into(), frac(|f| f.e2e_read)),
        ("e2e_copy_fraction".into(), frac(|f| f.e2e_copy)),
        (
            "cpu_host_one_thread_fraction".into(),
            frac(|f| f.cpu_host_one),
        ),
        (
            "cpu_host_all_cores_fraction".into(),
            frac(|f| f.cpu_host_all),
        ),
        ("max_err".into(), opt(r.max_err)),
        (
            "repetitions".into(),
            Value::Object(
                [
                    ("gpu_e2e", r.e2e),
                    ("gpu_resident", r.resident),
                    ("cpu", Some(r.cpu)),
                    ("auto", r.auto),
                ]
                .into_iter()
                .map(|(k, t)| {
                    (
                        k.to_string(),
                        t.map_or(Value::Null, |t| Value::Int(t.reps as u64)),
                    )
                })
                .collect(),
            ),
        ),
    ])
}

fn batch_json(b: &Batch) -> Value {
    let mut fields = vec![
        ("losses".to_string(), Value::Int(BATCH as u64)),
        ("n".to_string(), Value::Int(BATCH_N as u64)),
    ];
    for (label, batched, separate) in &b.times {
        fields.extend([
            (
                format!("{label}_batched_seconds"),
                Value::Num(batched.seconds),
            ),
            (
                format!("{label}_separate_seconds"),
                Value::Num(separate.seconds),
            ),
            (
                format!("{label}_separate_over_batched"),
                Value::Num(separate.seconds / batched.seconds),
            ),
        ]);
    }
    Value::Object(fields)
}

// ---- text --------------------------------------------------------------

fn ms(t: Option<Timing>) -> String {
    t.map_or("-".into(), |t| format!("{:.3}", t.seconds * 1e3))
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.0}%", v * 100.0))
}

fn ceiling_table(cs: &[Ceilings]) -> String {
    let mut s = format!(
        "\n{:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}   (ms, then GB/s)\n",
        "n", "gpu copy1", "gpu copy2", "gpu read1", "gpu read2", "host 1t", "host all"
    );
    for c in cs {
        let b = |k: usize| 4 * c.n * (k + 1);
        s.push_str(&format!(
            "{:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
            c.n,
            ms(c.copy[0]),
            ms(c.copy[1]),
            ms(c.read[0]),
            ms(c.read[1]),
            ms(Some(c.host_one[1])),
            ms(Some(c.host_all[1])),
        ));
        s.push_str(&format!(
            "{:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
            "",
            num(gbps(2 * b(0), c.copy[0]), 2),
            num(gbps(2 * b(1), c.copy[1]), 2),
            num(gbps(b(0), c.read[0]), 2),
            num(gbps(b(1), c.read[1]), 2),
            num(gbps(b(1), Some(c.host_one[1])), 2),
            num(gbps(b(1), Some(c.host_all[1])), 2),
        ));
    }
    s.push_str(
        "copyK/readK: buffer-to-buffer copy / minimal read kernel over K resident tensors of n \
         f32 (copy GB/s counts read + write); host: one pass summing two slices of n f32, on one \
         thread (1t) and on all cores.",
    );
    s
}

fn results_table(rows: &[Row]) -> String {
    let mut s = format!(
        "\n{:<24} {:>9} {:>10} {:>10} {:>10} {:>10} {:>7} {:>7} {:>7} {:>9} {:>8}\n",
        "op",
        "n",
        "e2e ms",
        "res ms",
        "cpu ms",
        "auto ms",
        "e2e GB/s",
        "res GB/s",
        "cpu GB/s",
        "auto/best",
        "max err"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<24} {:>9} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>8}\n",
            r.op,
            r.n,
            ms(r.e2e),
            ms(r.resident),
            ms(Some(r.cpu)),
            ms(r.auto),
            num(gbps(r.bytes, r.e2e), 2),
            num(gbps(r.bytes, r.resident), 2),
            num(gbps(r.bytes, Some(r.cpu)), 2),
            num(r.auto_over_best(), 2),
            r.max_err.map_or("-".into(), |e| format!("{e:.1e}")),
        ));
    }
    s.push_str(
        "e2e: GPU from host slices; res: GPU on resident tensors (- where the library has no \
         resident path); auto: Engine::auto() from host slices, auto/best = auto / min(e2e, cpu); \
         max err = max |gpu − cpu| / max(1, |cpu|).",
    );
    s
}

fn fraction_table(res: &Results) -> String {
    let mut s = format!(
        "\n{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "op", "n", "res/read", "res/copy", "e2e/read", "e2e/copy", "cpu/1t", "cpu/all"
    );
    for r in &res.rows {
        let Some(f) = res.ceilings_at(r.n).map(|c| fractions(r, c)) else {
            continue;
        };
        s.push_str(&format!(
            "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            r.op,
            r.n,
            pct(f.resident_read),
            pct(f.resident_copy),
            pct(f.e2e_read),
            pct(f.e2e_copy),
            pct(f.cpu_host_one),
            pct(f.cpu_host_all),
        ));
    }
    s.push_str(
        "ceiling time / op time at the same n over the same number of input tensors (100% = \
         at the ceiling): GPU figures against the read kernel and the copy, CPU figures against \
         the host read on one thread and on all cores.",
    );
    s
}

fn batch_text(b: &Batch) -> String {
    let mut s = format!("{BATCH} mse losses of n={BATCH_N}, one loss_batch vs {BATCH} loss calls");
    for (label, batched, separate) in &b.times {
        s.push_str(&format!(
            "\n  {label:<5} batched {:>9.3} ms   separate {:>9.3} ms   separate/batched {:.1}",
            batched.seconds * 1e3,
            separate.seconds * 1e3,
            separate.seconds / batched.seconds
        ));
    }
    s
}

// ---- targets -----------------------------------------------------------

/// One checkable figure of issue #4: measured, the goal, pass or fail.
struct Target {
    name: String,
    /// Where it was measured.
    n: Option<usize>,
    measured: Option<f64>,
    /// ">= 0.8" or "<= 1.5".
    at_least: bool,
    goal: f64,
    /// None: not judged (the size was not run, or no such figure).
    pass: Option<bool>,
    note: String,
}

impl Target {
    fn new(name: String, at_least: bool, goal: f64) -> Target {
        Target {
            name,
            n: None,
            measured: None,
            at_least,
            goal,
            pass: None,
            note: String::new(),
        }
    }

    /// Judges `measured` at `n`; `exact` says whether n is the stated size.
    fn judge(mut self, n: usize, measured: Option<f64>, exact: bool, stated: usize) -> Target {
        self.n = Some(n);
        self.measured = measured;
        if exact {
            self.pass = measured.map(|v| {
                if self.at_least {
                    v >= self.goal
                } else {
                    v <= self.goal
                }
            });
        } else {
            let note = format!("n={stated} not in this run: shown at n={n}, not judged");
            self.note = if self.note.is_empty() {
                note
            } else {
                format!("{note}; {}", self.note)
            };
        }
        self
    }

    fn note(mut self, note: String) -> Target {
        self.note = if self.note.is_empty() {
            note
        } else {
            format!("{}; {note}", self.note)
        };
        self
    }

    fn goal_text(&self) -> String {
        format!("{} {}", if self.at_least { ">=" } else { "<=" }, self.goal)
    }

    fn json(&self) -> Value {
        Value::Object(vec![
            ("target".into(), Value::Str(self.name.clone())),
            (
                "n".into(),
                self.n.map_or(Value::Null, |n| Value::Int(n as u64)),
            ),
            ("measured".into(), opt(self.measured)),
            ("goal".into(), Value::Str(self.goal_text())),
            ("pass".into(), self.pass.map_or(Value::Null, Value::Bool)),
            ("note".into(), Value::Str(self.note.clone())),
        ])
    }
}

/// The row of `op` at `n`, or failing that at the largest size run; with
/// whether it is at `n` (up to the rounding of cross-entropy rows).
fn row_at<'r>(rows: &'r [Row], op: &str, n: usize) -> Option<(&'r Row, bool)> {
    let mine = rows.iter().filter(|r| r.op == op);
    match mine
        .clone()
        .find(|r| r.n == n / CLASSES * CLASSES || r.n == n)
    {
        Some(r) => Some((r, true)),
        None => mine.max_by_key(|r| r.n).map(|r| (r, false)),
    }
}

fn targets(res: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    let rows = &res.rows;
    // GPU resident reductions against the read kernel.
    for op in TARGET_LOSSES {
        let t = Target::new(format!("gpu resident {op} / read ceiling"), true, 0.8);
        let Some((r, exact)) = row_at(rows, op, TARGET_N) else {
            out.push(t.note("not measured".into()));
            continue;
        };
        let f = res.ceilings_at(r.n).map(|c| fractions(r, c));
        let read = f.as_ref().and_then(|f| f.resident_read);
        let mut t = t.judge(r.n, read, exact, TARGET_N);
        if r.resident.is_none() {
            t = t.note("no resident path in the library for this loss".into());
        }
        if let Some(copy) = f.as_ref().and_then(|f| f.resident_copy) {
            t = t.note(format!("copy-ceiling fraction {copy:.2}"));
        }
        out.push(t);
    }
    // The fused metrics pass against mse alone, same backend.
    for (label, get) in [
        ("gpu e2e", (|r: &Row| r.e2e) as fn(&Row) -> Option<Timing>),
        ("cpu", |r: &Row| Some(r.cpu)),
    ] {
        let t = Target::new(format!("metrics / mse, {label}"), false, 1.5);
        match (
            row_at(rows, "metrics (fused)", TARGET_N),
            row_at(rows, "mse", TARGET_N),
        ) {
            (Some((m, exact)), Some((mse, _))) => {
                let ratio = get(m).zip(get(mse)).map(|(a, b)| a.seconds / b.seconds);
                out.push(t.judge(m.n, ratio, exact, TARGET_N));
            }
            _ => out.push(t.note("not measured".into())),
        }
    }
    // CPU mse against the host read of both slices.
    let t = Target::new("cpu mse / host read, one thread".into(), true, 0.5);
    match row_at(rows, "mse", CPU_TARGET_N) {
        Some((r, exact)) => {
            let f = res.ceilings_at(r.n).map(|c| fractions(r, c));
            let mut t = t.judge(
                r.n,
                f.as_ref().and_then(|f| f.cpu_host_one),
                exact,
                CPU_TARGET_N,
            );
            if let Some(all) = f.as_ref().and_then(|f| f.cpu_host_all) {
                t = t.note(format!("against all cores {all:.2}"));
            }
            out.push(t);
        }
        None => out.push(t.note("not measured".into())),
    }
    // The auto engine against the better backend, worst row.
    let t = Target::new("auto / min(gpu, cpu), worst row".into(), false, 1.1);
    let worst = rows
        .iter()
        .filter_map(|r| r.auto_over_best().map(|v| (v, r)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match worst {
        Some((v, r)) => {
            let n = r.n;
            let mut t = t.judge(n, Some(v), true, n);
            t = t.note(format!("at {} n={n}", r.op));
            out.push(t);
        }
        None => out.push(t.note("not measured (--backend cpu)".into())),
    }
    // One batched submission against separate calls.
    let t = Target::new(
        format!("{BATCH} losses n={BATCH_N}: separate / batched, gpu"),
        true,
        10.0,
    );
    match res.batch.ratio("gpu") {
        Some(v) => {
            let mut t = t.judge(BATCH_N, Some(v), true, BATCH_N);
            if let Some(c) = res.batch.ratio("cpu") {
                t = t.note(format!("cpu {c:.1}"));
            }
            out.push(t);
        }
        None => out.push(t.note("no GPU".into())),
    }
    out
}

fn target_table(ts: &[Target]) -> String {
    let mut s = format!(
        "\n{:<48} {:>9} {:>9} {:>8} {:>6}  note\n",
        "target", "n", "measured", "goal", "result"
    );
    for t in ts {
        s.push_str(&format!(
            "{:<48} {:>9} {:>9} {:>8} {:>6}  {}\n",
            t.name,
            t.n.map_or("-".into(), |n| n.to_string()),
            num(t.measured, 2),
            t.goal_text(),
            match t.pass {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "n/a",
            },
            t.note
        ));
    }
    s.push_str("Reported, never asserted: the machine may be shared.");
    s
}
