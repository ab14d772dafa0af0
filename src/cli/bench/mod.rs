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
//! minimal read kernel (`lossgpu::probe::Probe`), and the host's
//! single-pass read, on one thread and on all cores. A batch row times 64
//! small losses as one `loss_batch` against 64 `loss` calls; three bf16
//! rows (mse, bce-logits, cross-entropy on bf16 inputs, 2 bytes a value)
//! are set against their f32 rows in the summary. The language-model head
//! rows time cross-entropy at vocabularies of 32,000 and 128,256 and fused
//! linear + cross-entropy against the logits held whole. The report
//! opens with a short summary of ratios at the largest size; it measures and
//! compares, it does not judge.
//!
//! Repetitions: one warm-up run (pipelines compile, pages fault in), then as
//! many timed runs as fit a 0.25 s budget, at least 3 and at most 15; the
//! median is reported. The default sizes (2^12, 2^16, 2^20, 2^24) take about
//! two minutes on lavapipe with two cores; `--full` is every other power of
//! two from 2^10 to 2^26 (about ten minutes, most of it at 2^26); `--quick`
//! times exactly 3 runs at 2^10, 2^14 and 2^16 (seconds). The machine may be
//! shared: compare ratios within one run, not seconds.

mod ceilings;
mod lm_head;
mod ops;
mod report;
mod summary;
mod timing;

use super::output::Report;
use super::BackendChoice;
use ceilings::Ceilings;
use lossgpu::{Engine, Error, Result};
use ops::{data, max_err, ops, Batch, Resident};
use report::{build_report, Row};
use timing::{no_timing, time, time_in_turns};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Element counts to time, comma-separated (default 4096, 65536,
    /// 1048576, 16777216: about two minutes on a 2-core machine).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// The full sweep: every other power of two from 2^10 to 2^26 (about ten
    /// minutes on a 2-core machine).
    #[arg(long, conflicts_with_all = ["sizes", "quick"])]
    full: bool,
    /// 2^10, 2^14 and 2^16 with 3 repetitions each, for CI.
    #[arg(long)]
    quick: bool,
    /// Also write the whole report as one JSON object to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// The shape N,d,V of the fused linear + cross-entropy row (timed once
    /// against the logits held whole; 4096,512,32000 takes minutes on a
    /// software adapter).
    #[arg(
        long,
        value_name = "N,d,V",
        value_delimiter = ',',
        default_value = "1024,256,32000"
    )]
    lm_head: Vec<usize>,
}

/// Timed runs fill this many seconds per figure...
const BUDGET: f64 = 0.25;
/// ...but are at least this many...
const MIN_REPS: usize = 3;
/// ...and at most this many.
const MAX_REPS: usize = 15;
/// Each host-slice column is first called untimed for this many seconds
/// (not with `--quick`): on a 2-vCPU VM the first op after the ceilings
/// otherwise ran at up to half speed (sigmoid at 2^20 0.50–0.52 ms in
/// three of four runs of `benches/peers.py`, swish 0.35–0.39; 0.31–0.33
/// with this warm-up).
const WARM_UP: f64 = 0.05;
/// Columns of the cross-entropy rows.
const CLASSES: usize = 10;
/// The shortest timed sample of a host-slice column, in seconds: quicker
/// calls are repeated within a sample.
const SAMPLE: f64 = 2e-4;
/// The batch row: this many losses...
const BATCH: usize = 64;
/// ...of this many values each.
const BATCH_N: usize = 1024;

// ---- the run -----------------------------------------------------------

pub fn run(args: Args, backend: BackendChoice) -> Result<Report> {
    let sizes = match (&args.sizes, args.quick, args.full) {
        (Some(s), _, _) => s.clone(),
        (None, true, _) => vec![1 << 10, 1 << 14, 1 << 16],
        (None, false, true) => (10..=26).step_by(2).map(|k| 1usize << k).collect(),
        (None, false, false) => vec![1 << 12, 1 << 16, 1 << 20, 1 << 24],
    };
    if sizes.is_empty() || sizes.iter().any(|&n| n < CLASSES) {
        return Err(Error::InvalidInput(format!(
            "bench: every size must be at least {CLASSES}"
        )));
    }
    check_memory(*sizes.iter().max().unwrap_or(&0))?;
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
        let d = data(n)?;
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
                f32_twin: op.f32_twin(),
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
    bar.set_message("language-model head");
    let &[ln, ld, lv] = &args.lm_head[..] else {
        return Err(Error::InvalidInput(
            "bench: --lm-head takes three sizes, N,d,V".into(),
        ));
    };
    if ln == 0 || ld == 0 || lv == 0 {
        return Err(Error::InvalidInput(
            "bench: --lm-head sizes must be positive".into(),
        ));
    }
    let lm_head = lm_head::LmHead::measure(quick, gpu.as_ref(), &cpu, (ln, ld, lv))?;
    bar.finish_and_clear();

    let report = build_report(&Results {
        gpu: gpu.as_ref(),
        no_gpu,
        auto: auto.as_ref(),
        quick,
        rows,
        ceilings,
        batch,
        lm_head,
    });
    if let Some(path) = &args.json {
        let json = report.to_json();
        crate::cli::io::write_durably(path, json.as_bytes())?;
    }
    Ok(report)
}

struct Results<'a> {
    lm_head: lm_head::LmHead,
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

/// Host bytes per element at the peak of a size: the inputs (x, t and the
/// class indices, and their bf16 copies), the CPU's and the GPU's outputs,
/// the f64 comparison copies, and lavapipe's device memory, which is host
/// memory.
const BYTES_PER_ELEMENT: u64 = 72;

/// Refuses, before anything is allocated, a size this machine's memory
/// cannot hold: one line instead of an aborted allocation.
fn check_memory(n: usize) -> Result<()> {
    let need = (n as u64).saturating_mul(BYTES_PER_ELEMENT);
    let Some(available) = crate::cli::io::available_memory() else {
        return Ok(()); // unknown here: the allocations themselves are checked
    };
    if need > available {
        return Err(Error::InvalidInput(format!(
            "bench: n={n} needs about {} of memory, more than the {} available",
            crate::cli::io::bytes_text(need),
            crate::cli::io::bytes_text(available)
        )));
    }
    Ok(())
}
