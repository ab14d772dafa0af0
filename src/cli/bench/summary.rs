//! The report's opening lines: the headline ratios of this run at its
//! largest size, each a measurement (ceiling or peer time / op time, or op
//! time / op time), none a verdict.

use super::report::{fractions, Row};
use super::timing::Timing;
use super::{Results, BATCH, BATCH_N};
use crate::cli::output::Value;

/// The value losses whose resident reductions are compared with the read
/// ceiling.
const LOSSES: [&str; 4] = ["mse", "huber", "bce-logits", "cross-entropy m=10"];

fn ratio(a: Option<Timing>, b: Option<Timing>) -> Option<f64> {
    Some(a?.seconds / b?.seconds)
}

fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// (JSON, text) of the summary.
pub(super) fn summary(res: &Results) -> (Value, String) {
    let n = res.ceilings.iter().map(|c| c.n).max().unwrap_or(0);
    let at_n: Vec<&Row> = res
        .rows
        .iter()
        .filter(|r| res.ceilings_at(r.n).map(|c| c.n) == Some(n))
        .collect();
    let row = |op: &str| at_n.iter().copied().find(|r| r.op == op);
    let frac = |r: &Row| res.ceilings_at(r.n).map(|c| fractions(r, c));
    let mut json = vec![("n".to_string(), Value::Int(n as u64))];
    let mut text = vec![format!("at n={n} (ratios of this run):")];

    // Resident losses against the adapter's minimal read kernel.
    let resident: Vec<(&str, f64)> = LOSSES
        .iter()
        .filter_map(|&op| Some((op, frac(row(op)?)?.resident_read?)))
        .collect();
    if !resident.is_empty() {
        json.push((
            "gpu_resident_read_fraction".into(),
            Value::Object(
                resident
                    .iter()
                    .map(|&(op, f)| (op.to_string(), Value::Num(f)))
                    .collect(),
            ),
        ));
        let list: Vec<String> = resident
            .iter()
            .map(|(op, f)| format!("{op} {}", pct(*f)))
            .collect();
        text.push(format!(
            "  GPU resident losses run at {} of the adapter's read ceiling (read kernel time / loss time)",
            list.join(", ")
        ));
    }

    // End to end GPU against the CPU backend, over every op.
    let e2e: Vec<(&str, f64)> = at_n
        .iter()
        .filter_map(|r| Some((r.op.as_str(), ratio(r.e2e, Some(r.cpu))?)))
        .collect();
    if !e2e.is_empty() {
        let geo = (e2e.iter().map(|(_, v)| v.ln()).sum::<f64>() / e2e.len() as f64).exp();
        let best = e2e.iter().min_by(|a, b| a.1.total_cmp(&b.1)).copied();
        let worst = e2e.iter().max_by(|a, b| a.1.total_cmp(&b.1)).copied();
        json.push(("gpu_e2e_over_cpu_geomean".into(), Value::Num(geo)));
        if let (Some(b), Some(w)) = (best, worst) {
            text.push(format!(
                "  GPU end to end takes {geo:.2}× the CPU's time (geometric mean of {} ops; {:.2}× for {}, {:.2}× for {})",
                e2e.len(), b.1, b.0, w.1, w.0
            ));
        }
    }

    // Eight metrics in one pass against mse alone, same backend.
    if let (Some(m), Some(mse)) = (row("metrics (fused)"), row("mse")) {
        let gpu = ratio(m.e2e, mse.e2e);
        let cpu = ratio(Some(m.cpu), Some(mse.cpu));
        json.push((
            "metrics_over_mse".into(),
            Value::Object(vec![
                ("gpu_e2e".into(), gpu.map_or(Value::Null, Value::Num)),
                ("cpu".into(), cpu.map_or(Value::Null, Value::Num)),
            ]),
        ));
        let gpu = gpu.map_or(String::new(), |g| format!("{g:.2}× on the GPU, "));
        text.push(format!(
            "  the fused metrics (eight in one pass) take {gpu}{:.2}× on the CPU the time of mse alone",
            cpu.unwrap_or(f64::NAN)
        ));
    }

    // bf16 inputs against the same loss on f32 inputs: half the bytes read.
    let mut halves = Vec::new();
    for r in &at_n {
        let Some(f32_row) = r.f32_twin.as_deref().and_then(row) else {
            continue;
        };
        let bytes = r.bytes as f64 / f32_row.bytes as f64;
        let times = [
            ("gpu_resident", ratio(r.resident, f32_row.resident)),
            ("gpu_e2e", ratio(r.e2e, f32_row.e2e)),
            ("cpu", ratio(Some(r.cpu), Some(f32_row.cpu))),
        ];
        let mut fields = vec![("bytes_read".to_string(), Value::Num(bytes))];
        fields.extend(
            times
                .iter()
                .map(|(k, v)| (k.to_string(), v.map_or(Value::Null, Value::Num))),
        );
        halves.push((f32_row.op.clone(), Value::Object(fields)));
        let shown: Vec<String> = times
            .iter()
            .filter_map(|(k, v)| Some(format!("{:.2}× {}", (*v)?, k.replace('_', " "))))
            .collect();
        text.push(format!(
            "  {} on bf16 reads {bytes:.2}× the bytes of f32 and takes {}",
            f32_row.op,
            shown.join(", ")
        ));
    }
    if !halves.is_empty() {
        json.push(("bf16_over_f32".into(), Value::Object(halves)));
    }

    // The CPU backend against the host's plain read of the same slices.
    if let Some(f) = row("mse").and_then(frac) {
        if let (Some(one), Some(all)) = (f.cpu_host_one, f.cpu_host_all) {
            json.push((
                "cpu_mse_host_read_fraction_one_thread".into(),
                Value::Num(one),
            ));
            json.push((
                "cpu_mse_host_read_fraction_all_cores".into(),
                Value::Num(all),
            ));
            text.push(format!(
                "  CPU mse runs at {} of a one-thread host read ({} of an all-core one)",
                pct(one),
                pct(all)
            ));
        }
    }

    // One submission for many losses against a call each.
    for (label, batched, separate) in &res.batch.times {
        let r = separate.seconds / batched.seconds;
        json.push((
            format!("batch_{label}_separate_over_batched"),
            Value::Num(r),
        ));
        text.push(format!(
            "  {BATCH} losses of n={BATCH_N} ({label}): separate calls take {r:.1}× one loss_batch"
        ));
    }

    // The calibrating engine against the better of the two backends.
    let worst = res
        .rows
        .iter()
        .filter_map(|r| r.auto_over_best().map(|v| (v, r)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((v, r)) = worst {
        json.push(("auto_over_best_worst".into(), Value::Num(v)));
        text.push(format!(
            "  Engine::auto() takes at most {v:.2}× the better backend's time ({} n={})",
            r.op, r.n
        ));
    }

    let err = res
        .rows
        .iter()
        .filter_map(|r| r.max_err)
        .fold(None, |m: Option<f64>, e| Some(m.map_or(e, |m| m.max(e))));
    if let Some(e) = err {
        json.push(("max_err".into(), Value::Num(e)));
        text.push(format!(
            "  largest GPU−CPU difference {e:.1e} (relative, or absolute below 1)"
        ));
    }
    (Value::Object(json), text.join("\n"))
}
