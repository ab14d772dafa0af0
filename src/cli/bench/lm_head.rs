//! The language-model head rows of `lossgpu bench`: cross-entropy value and
//! gradient at vocabularies of 32,000 and 128,256 (GPU resident, in place,
//! end to end, and the CPU), in logit bytes a second; and fused linear +
//! cross-entropy against the same with the logits held whole, by time and
//! by the device memory each takes at its peak.

use super::timing::{time, Timing};
use crate::cli::output::Value;
use lossgpu::{Engine, LinearInput, Loss, LossInput, Reduction, Result, Tensor};
use std::time::Instant;

/// Logits per cross-entropy row of the bench: N = LOGITS / V rows.
const LOGITS: usize = 1 << 22;
/// Vocabularies of the cross-entropy rows: Llama-2's and Llama-3's.
const VOCABS: [usize; 2] = [32_000, 128_256];

/// A deterministic stream of values in [-0.5, 0.5).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// One vocabulary's cross-entropy timings.
pub(super) struct VocabRow {
    rows: usize,
    classes: usize,
    e2e: Option<Timing>,
    resident: Option<Timing>,
    in_place: Option<Timing>,
    cpu: Timing,
    /// Device bytes above the resident logits and labels at the peak of a
    /// step: a new gradient, and in place.
    peak_new: u64,
    peak_in_place: u64,
}

/// Fused against materialised linear + cross-entropy, one run each.
pub(super) struct LinearRow {
    shape: (usize, usize, usize),
    /// (fused, materialised): seconds and peak device bytes above nothing.
    gpu: Option<((f64, u64), (f64, u64))>,
    cpu: f64,
    /// H and W, ∂H and ∂W, and the staging buffer they are read back
    /// through: what any path from host slices holds.
    inputs_outputs: u64,
}

pub(super) struct LmHead {
    vocab: Vec<VocabRow>,
    linear: LinearRow,
}

impl LmHead {
    pub(super) fn measure(
        quick: bool,
        gpu: Option<&Engine>,
        cpu: &Engine,
        shape: (usize, usize, usize),
    ) -> Result<LmHead> {
        let logits = if quick { LOGITS >> 5 } else { LOGITS };
        let mut vocab = Vec::new();
        for v in VOCABS {
            let rows = (logits / v).max(1);
            let z: Vec<f32> = values(rows * v, 7).iter().map(|x| x * 8.0).collect();
            let labels: Vec<u32> = (0..rows).map(|i| ((i * 7919) % v) as u32).collect();
            let input = LossInput::classes(&z, v, &labels);
            let ce = Loss::CrossEntropy;
            let step = |e: &Engine| e.loss_and_grad(&ce, &input, Reduction::Mean);
            let cpu_t = time(quick, || step(cpu))?.0;
            let (mut e2e, mut resident, mut in_place) = (None, None, None);
            let (mut peak_new, mut peak_in_place) = (0, 0);
            if let Some(g) = gpu {
                e2e = Some(time(quick, || step(g))?.0);
                let zt = g.upload_rows(&z, v)?;
                let yt = g.upload_classes(&labels)?;
                let new = || -> Result<Tensor> {
                    Ok(g.loss_and_grad_tensor(&ce, &zt, &yt, Reduction::Mean)?.1)
                };
                resident = Some(time(quick, new)?.0);
                peak_new = peak_above(g, || new().map(drop))?;
                let mut zi = g.upload_rows(&z, v)?;
                let mut place = || g.loss_and_grad_in_place(&ce, &mut zi, &yt, Reduction::Mean);
                in_place = Some(time(quick, &mut place)?.0);
                peak_in_place = peak_above(g, || place().map(drop))?;
            }
            vocab.push(VocabRow {
                rows,
                classes: v,
                e2e,
                resident,
                in_place,
                cpu: cpu_t,
                peak_new,
                peak_in_place,
            });
        }
        let shape = if quick { (128, 64, 4_000) } else { shape };
        let linear = LinearRow::measure(gpu, cpu, shape)?;
        Ok(LmHead { vocab, linear })
    }
}

/// The device bytes `f` holds at its peak above what was held before it.
fn peak_above(g: &Engine, f: impl FnOnce() -> Result<()>) -> Result<u64> {
    let base = g.device_memory().current_bytes;
    g.reset_peak_device_memory();
    f()?;
    Ok(g.device_memory().peak_bytes.saturating_sub(base))
}

impl LinearRow {
    fn measure(
        gpu: Option<&Engine>,
        cpu: &Engine,
        (n, d, v): (usize, usize, usize),
    ) -> Result<LinearRow> {
        let h = values(n * d, 11);
        let w: Vec<f32> = values(v * d, 13).iter().map(|x| x * 0.2).collect();
        let labels: Vec<u32> = (0..n).map(|i| ((i * 7919) % v) as u32).collect();
        let input = LinearInput::new(&h, &w, d, &labels);
        // One run each after a small one compiles the pipelines: at these
        // sizes a run is seconds to minutes, and the median of one is it.
        let warm = LinearInput::new(&h[..d], &w[..d * v.min(64)], d, &[0]);
        let once = |e: &Engine, i: &LinearInput| -> Result<f64> {
            e.linear_cross_entropy_and_grad(&warm, Reduction::Mean)?;
            let start = Instant::now();
            e.linear_cross_entropy_and_grad(i, Reduction::Mean)?;
            Ok(start.elapsed().as_secs_f64())
        };
        let gpu = match gpu {
            Some(g) => {
                let run = |i: &LinearInput| -> Result<(f64, u64)> {
                    let mut t = 0.0;
                    let peak = peak_above(g, || {
                        t = once(g, i)?;
                        Ok(())
                    })?;
                    Ok((t, peak))
                };
                Some((run(&input)?, run(&input.with_materialised_logits())?))
            }
            None => None,
        };
        Ok(LinearRow {
            shape: (n, d, v),
            gpu,
            cpu: once(cpu, &input)?,
            inputs_outputs: (3 * (n * d + v * d) * 4) as u64,
        })
    }
}

fn gbs(bytes: usize, t: Option<Timing>) -> Value {
    t.map_or(Value::Null, |t| Value::Num(bytes as f64 / t.seconds / 1e9))
}

fn secs(t: Option<Timing>) -> Value {
    t.map_or(Value::Null, |t| Value::Num(t.seconds))
}

/// The read ceilings (GB/s) a step's rate is set against: the GPU's minimal
/// read kernel over one tensor and the all-core host read, at the run's
/// largest size.
#[derive(Clone, Copy, Default)]
pub(super) struct ReadCeilings {
    pub gpu: Option<f64>,
    pub host: Option<f64>,
}

/// A step's logit bytes a second as a fraction of `ceiling`: a step moves
/// three times its logits' bytes (two reads, the gradient's write), so a
/// third is the most it can reach.
fn fraction(bytes: usize, t: Option<Timing>, ceiling: Option<f64>) -> Option<f64> {
    Some(bytes as f64 / t?.seconds / 1e9 / ceiling?)
}

fn num(v: Option<f64>) -> Value {
    v.map_or(Value::Null, Value::Num)
}

pub(super) fn json(l: &LmHead, c: ReadCeilings) -> Value {
    let vocab = l
        .vocab
        .iter()
        .map(|r| {
            let bytes = r.rows * r.classes * 4;
            Value::Object(vec![
                ("rows".into(), Value::Int(r.rows as u64)),
                ("classes".into(), Value::Int(r.classes as u64)),
                ("gpu_e2e_seconds".into(), secs(r.e2e)),
                ("gpu_resident_seconds".into(), secs(r.resident)),
                ("gpu_in_place_seconds".into(), secs(r.in_place)),
                ("cpu_seconds".into(), Value::Num(r.cpu.seconds)),
                ("gpu_resident_logit_gb_per_s".into(), gbs(bytes, r.resident)),
                ("gpu_in_place_logit_gb_per_s".into(), gbs(bytes, r.in_place)),
                ("cpu_logit_gb_per_s".into(), gbs(bytes, Some(r.cpu))),
                (
                    "gpu_resident_of_read_ceiling".into(),
                    num(fraction(bytes, r.resident, c.gpu)),
                ),
                (
                    "cpu_of_read_ceiling".into(),
                    num(fraction(bytes, Some(r.cpu), c.host)),
                ),
                ("peak_bytes_new_gradient".into(), Value::Int(r.peak_new)),
                ("peak_bytes_in_place".into(), Value::Int(r.peak_in_place)),
            ])
        })
        .collect();
    let r = &l.linear;
    let (n, d, v) = r.shape;
    let mut linear = vec![
        ("n".into(), Value::Int(n as u64)),
        ("d".into(), Value::Int(d as u64)),
        ("v".into(), Value::Int(v as u64)),
        ("cpu_fused_seconds".into(), Value::Num(r.cpu)),
        (
            "inputs_and_outputs_bytes".into(),
            Value::Int(r.inputs_outputs),
        ),
    ];
    if let Some(((tf, pf), (tm, pm))) = r.gpu {
        let extra = |p: u64| p.saturating_sub(r.inputs_outputs);
        linear.extend([
            ("gpu_fused_seconds".into(), Value::Num(tf)),
            ("gpu_materialised_seconds".into(), Value::Num(tm)),
            ("fused_over_materialised_time".into(), Value::Num(tf / tm)),
            ("gpu_fused_peak_bytes".into(), Value::Int(pf)),
            ("gpu_materialised_peak_bytes".into(), Value::Int(pm)),
            (
                "fused_over_materialised_peak".into(),
                Value::Num(pf as f64 / pm as f64),
            ),
            (
                "fused_over_materialised_extra".into(),
                Value::Num(extra(pf) as f64 / extra(pm).max(1) as f64),
            ),
        ]);
    }
    Value::Object(vec![
        ("cross_entropy".into(), Value::List(vocab)),
        ("linear_cross_entropy".into(), Value::Object(linear)),
    ])
}

pub(super) fn text(l: &LmHead, c: ReadCeilings) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let ms =
        |t: Option<Timing>| t.map_or("-".to_string(), |t| format!("{:.2} ms", t.seconds * 1e3));
    let mut s =
        String::from("cross-entropy value + gradient (mean), logits N×V f32; GB/s of logits, and as a fraction of the read ceiling (a step moves 3× its logits' bytes: at most 1/3):");
    for r in &l.vocab {
        let bytes = r.rows * r.classes * 4;
        let rate = |t: Option<Timing>| {
            t.map_or("-".into(), |t| {
                format!("{:.2}", bytes as f64 / t.seconds / 1e9)
            })
        };
        let of = |t: Option<Timing>, ceiling| {
            fraction(bytes, t, ceiling).map_or(String::new(), |f| format!(", {f:.3} of read"))
        };
        s.push_str(&format!(
            "\n  V={:<7} N={:<5} gpu resident {} ({} GB/s{}), in place {} ({} GB/s), e2e {}, cpu {} ({} GB/s{}); peak above the logits {:.1} MB new, {:.1} MB in place",
            r.classes,
            r.rows,
            ms(r.resident),
            rate(r.resident),
            of(r.resident, c.gpu),
            ms(r.in_place),
            rate(r.in_place),
            ms(r.e2e),
            ms(Some(r.cpu)),
            rate(Some(r.cpu)),
            of(Some(r.cpu), c.host),
            mb(r.peak_new),
            mb(r.peak_in_place),
        ));
    }
    let r = &l.linear;
    let (n, d, v) = r.shape;
    s.push_str(&format!(
        "\nlinear + cross-entropy, value and 3 gradients, N={n} d={d} V={v} (one run each): cpu fused {:.2} s",
        r.cpu
    ));
    if let Some(((tf, pf), (tm, pm))) = r.gpu {
        let extra = |p: u64| p.saturating_sub(r.inputs_outputs);
        s.push_str(&format!(
            "\n  gpu fused {tf:.2} s, peak {:.1} MB; logits materialised {tm:.2} s, peak {:.1} MB\n  fused/materialised: time {:.2}, peak {:.3}, peak beyond H, W, ∂H, ∂W and their readback ({:.1} MB) {:.3}",
            mb(pf),
            mb(pm),
            tf / tm,
            pf as f64 / pm as f64,
            mb(r.inputs_outputs),
            extra(pf) as f64 / extra(pm).max(1) as f64,
        ));
    }
    s
}
