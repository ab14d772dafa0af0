//! The report: a short summary first, then the ceilings, the results, the
//! fractions of the ceilings and the batch row, as text and as JSON.

use super::ceilings::Ceilings;
use super::ops::Batch;
use super::summary::summary;
use super::timing::Timing;
use super::{Results, BATCH, BATCH_N, BUDGET, MAX_REPS, MIN_REPS};
use crate::cli::output::{Report, Value};
use lossgpu::Engine;

/// One operation at one size.
pub(super) struct Row {
    pub(super) op: String,
    pub(super) n: usize,
    pub(super) bytes: usize,
    pub(super) inputs: usize,
    pub(super) e2e: Option<Timing>,
    pub(super) resident: Option<Timing>,
    pub(super) cpu: Timing,
    pub(super) auto: Option<Timing>,
    pub(super) max_err: Option<f64>,
    /// The f32 row of a bf16 row.
    pub(super) f32_twin: Option<String>,
}

impl Row {
    /// auto / min(gpu e2e, cpu): above 1 the auto engine lost time.
    pub(super) fn auto_over_best(&self) -> Option<f64> {
        let best = self
            .e2e
            .map_or(self.cpu.seconds, |g| g.seconds.min(self.cpu.seconds));
        self.auto.map(|a| a.seconds / best)
    }
}

/// ceiling time / op time: 1 means the op runs at the ceiling.
pub(super) fn fraction(ceiling: Option<Timing>, op: Option<Timing>) -> Option<f64> {
    Some(ceiling?.seconds / op?.seconds)
}

pub(super) fn gbps(bytes: usize, t: Option<Timing>) -> Option<f64> {
    t.map(|t| bytes as f64 / t.seconds / 1e9)
}

/// The fractions of a row against the ceilings at its size.
pub(super) struct Fractions {
    pub(super) resident_read: Option<f64>,
    pub(super) resident_copy: Option<f64>,
    pub(super) e2e_read: Option<f64>,
    pub(super) e2e_copy: Option<f64>,
    pub(super) cpu_host_one: Option<f64>,
    pub(super) cpu_host_all: Option<f64>,
}

pub(super) fn fractions(r: &Row, c: &Ceilings) -> Fractions {
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

pub(super) fn build_report(res: &Results) -> Report {
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
        &format!(
            "rayon on {} threads (f32 SIMD loops, f64 where noted in docs/reference.md)",
            rayon::current_num_threads()
        ),
    );
    let (json, text) = summary(res);
    report.field("summary", json, text);
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
    let lm = &res.lm_head;
    let largest = res.ceilings.iter().max_by_key(|c| c.n);
    let gbs =
        |t: Option<super::timing::Timing>, n: usize| t.map(|t| (n * 4) as f64 / t.seconds / 1e9);
    let ceilings = super::lm_head::ReadCeilings {
        gpu: largest.and_then(|c| gbs(c.read[0], c.n)),
        host: largest.and_then(|c| gbs(Some(c.host_all[0]), c.n)),
    };
    report.field(
        "lm_head",
        super::lm_head::json(lm, ceilings),
        super::lm_head::text(lm, ceilings),
    );
    report
}

/// The calibrating engine's choices: op family, size class, side, timings.
pub(super) fn auto_json(a: &Engine) -> Value {
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

pub(super) fn auto_description(a: &Engine) -> String {
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

pub(super) fn opt(v: Option<f64>) -> Value {
    v.map_or(Value::Null, Value::Num)
}

pub(super) fn secs(t: Option<Timing>) -> Value {
    opt(t.map(|t| t.seconds))
}

pub(super) fn ceiling_json(c: &Ceilings) -> Value {
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

pub(super) fn row_json(r: &Row, c: Option<&Ceilings>) -> Value {
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

pub(super) fn batch_json(b: &Batch) -> Value {
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

pub(super) fn ms(t: Option<Timing>) -> String {
    t.map_or("-".into(), |t| format!("{:.3}", t.seconds * 1e3))
}

pub(super) fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

pub(super) fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.0}%", v * 100.0))
}

pub(super) fn ceiling_table(cs: &[Ceilings]) -> String {
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

pub(super) fn results_table(rows: &[Row]) -> String {
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

pub(super) fn fraction_table(res: &Results) -> String {
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

pub(super) fn batch_text(b: &Batch) -> String {
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
