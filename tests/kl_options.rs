//! kl-div in log space (`with_log_input`: pred is log q, PyTorch's
//! `kl_div` convention; `with_log_target`: target is log t) and the
//! `batchmean` reduction (SPEC §1b): PyTorch's own values and gradients
//! (tests/data/torch_kl_div.json, made by the script beside it) on every
//! backend and the reference; an f64 formula with per-sample weights and its
//! central finite differences; the identities (log forms of the same
//! distributions agree with the plain form, a log target of −inf is a t of
//! 0); many rows; and the errors.

mod common;

use common::{
    assert_all_close_with, assert_err, assert_scalar_close, check_torch_case, engines, floats, rng,
    to_f32,
};
use lossgpu::{cpu, Engine, Loss, LossInput, Reduction};
use rand::Rng;

fn with_logs<'a>(input: LossInput<'a>, log_input: bool, log_target: bool) -> LossInput<'a> {
    let input = if log_input {
        input.with_log_input()
    } else {
        input
    };
    if log_target {
        input.with_log_target()
    } else {
        input
    }
}

/// Every backend against PyTorch for sum, batchmean and none (a row's loss
/// is PyTorch's `none` summed over the row), and `mean`, which averages the
/// rows' losses: PyTorch's batchmean (its own `mean` divides by n·m).
#[test]
fn pytorch_values_and_gradients_on_every_backend() {
    let text = std::fs::read_to_string("tests/data/torch_kl_div.json").unwrap();
    let data: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert!(cases.len() >= 8, "the generated cases are missing");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let m = case["m"].as_u64().unwrap() as usize;
        let pred = to_f32(&floats(&case["pred"]));
        let target = to_f32(&floats(&case["target"]));
        let input = with_logs(
            LossInput::rows(&pred, m, &target),
            case["log_input"].as_bool().unwrap(),
            case["log_target"].as_bool().unwrap(),
        );
        let reductions = [
            (Reduction::Sum, "sum"),
            (Reduction::BatchMean, "batchmean"),
            (Reduction::Mean, "batchmean"),
            (Reduction::None, "none"),
        ];
        for (reduction, torch_name) in reductions {
            let want = &case["reductions"][torch_name];
            let (value, grad) = (floats(&want["value"]), floats(&want["grad"]));
            let label = format!("{name} {}", reduction.name());
            check_torch_case(
                &label,
                &Loss::KlDiv,
                &input,
                reduction,
                (&value, &grad),
                1e-7,
            );
        }
    }
}

/// Row i's Σⱼ tⱼ·(log tⱼ − log qⱼ) from pred x and target y as given (logs
/// or not), in f64.
fn kl_rows(x: &[f64], y: &[f64], m: usize, log_input: bool, log_target: bool) -> Vec<f64> {
    x.chunks(m)
        .zip(y.chunks(m))
        .map(|(xr, yr)| {
            xr.iter()
                .zip(yr)
                .map(|(&x, &y)| {
                    let (t, log_t) = if log_target {
                        (y.exp(), y)
                    } else {
                        (y, y.ln())
                    };
                    let log_q = if log_input { x } else { x.ln() };
                    if t == 0.0 {
                        0.0
                    } else {
                        t * (log_t - log_q)
                    }
                })
                .sum()
        })
        .collect()
}

/// With per-sample weights aᵢ: mean = Σaᵢlᵢ/Σaᵢ, batchmean = Σaᵢlᵢ/n, sum;
/// each value and gradient against the f64 formula and its central finite
/// differences, on every backend.
#[test]
fn sample_weights_combine_and_gradients_match_finite_differences() {
    let mut rng = rng("kl options fd");
    let cpu_engine = Engine::cpu();
    for (rows, m, log_input, log_target) in [
        (11, 5, true, false),
        (9, 7, true, true),
        (13, 4, false, true),
        (6, 3, false, false),
        (3, 260, true, true),
    ] {
        let dist = |rng: &mut rand::rngs::StdRng| -> Vec<f64> {
            let raw: Vec<f64> = (0..m).map(|_| rng.random_range(0.05..1.0)).collect();
            let s: f64 = raw.iter().sum();
            raw.iter().map(|v| v / s).collect()
        };
        let (mut q, mut t) = (vec![], vec![]);
        for _ in 0..rows {
            q.extend(dist(&mut rng));
            t.extend(dist(&mut rng));
        }
        let x: Vec<f32> = q
            .iter()
            .map(|&v| if log_input { v.ln() as f32 } else { v as f32 })
            .collect();
        let y: Vec<f32> = t
            .iter()
            .map(|&v| if log_target { v.ln() as f32 } else { v as f32 })
            .collect();
        let a: Vec<f32> = (0..rows).map(|_| rng.random_range(0.0..2.0)).collect();
        let input = with_logs(
            LossInput::rows(&x, m, &y).with_weights(&a),
            log_input,
            log_target,
        );
        let wide = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let (xd, yd, ad) = (wide(&x), wide(&y), wide(&a));
        let asum: f64 = ad.iter().sum();
        for reduction in [Reduction::Mean, Reduction::BatchMean, Reduction::Sum] {
            let reduce = |x: &[f64]| {
                let s: f64 = kl_rows(x, &yd, m, log_input, log_target)
                    .iter()
                    .zip(&ad)
                    .map(|(l, a)| a * l)
                    .sum();
                match reduction {
                    Reduction::Mean => s / asum,
                    Reduction::BatchMean => s / rows as f64,
                    _ => s,
                }
            };
            let want = reduce(&xd);
            let h = 1e-7;
            let fd: Vec<f64> = (0..xd.len())
                .map(|k| {
                    let (mut up, mut down) = (xd.clone(), xd.clone());
                    up[k] += h;
                    down[k] -= h;
                    (reduce(&up) - reduce(&down)) / (2.0 * h)
                })
                .collect();
            let label = format!(
                "{rows}x{m} log {log_input}/{log_target} {}",
                reduction.name()
            );
            assert_scalar_close(
                &label,
                cpu::loss_scalar(&Loss::KlDiv, &input, reduction).unwrap(),
                want,
                1e-12,
            );
            let g = cpu::loss_grad(&Loss::KlDiv, &input, reduction).unwrap();
            assert_all_close_with(&format!("{label} reference fd"), &to_f32(&g), &fd, |_| {
                (1e-5, 1e-7)
            });
            for engine in engines(&cpu_engine) {
                let at = format!("{label} {}", engine.device_name());
                let v = engine.loss(&Loss::KlDiv, &input, reduction).unwrap();
                assert_scalar_close(&at, v.scalar().unwrap(), want, 1e-5);
                let g = engine.loss_grad(&Loss::KlDiv, &input, reduction).unwrap();
                assert_all_close_with(&format!("{at} fd"), &g, &fd, |_| (1e-5, 1e-6));
            }
        }
    }
}

/// The log forms of the same distributions give the plain form's value and
/// per-row losses; a log target of −inf is a t of 0 (term 0, gradient 0,
/// where PyTorch's e^t·(t − x) gives NaN); a log prediction's gradient is
/// −t; batchmean of an unweighted row loss is its mean.
#[test]
fn identities_hold_on_every_backend() {
    let mut rng = rng("kl identities");
    let cpu_engine = Engine::cpu();
    let (rows, m) = (300, 9);
    let mut q = vec![];
    let mut t = vec![];
    for i in 0..rows {
        let raw: Vec<f32> = (0..m).map(|_| rng.random_range(0.01f32..1.0)).collect();
        let s: f32 = raw.iter().sum();
        q.extend(raw.iter().map(|v| v / s));
        let mut raw: Vec<f32> = (0..m).map(|_| rng.random_range(0.01f32..1.0)).collect();
        raw[i % m] = 0.0; // one t of 0 per row
        let s: f32 = raw.iter().sum();
        t.extend(raw.iter().map(|v| v / s));
    }
    let log_q: Vec<f32> = q.iter().map(|v| v.ln()).collect();
    let log_t: Vec<f32> = t.iter().map(|v| v.ln()).collect(); // −inf where t = 0
    assert!(log_t.contains(&f32::NEG_INFINITY));
    for engine in engines(&cpu_engine) {
        let name = engine.device_name();
        let plain = LossInput::rows(&q, m, &t);
        let want = engine.loss(&Loss::KlDiv, &plain, Reduction::None).unwrap();
        let want: Vec<f64> = want
            .per_sample()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        for (log_input, log_target) in [(true, false), (false, true), (true, true)] {
            let x = if log_input { &log_q } else { &q };
            let y = if log_target { &log_t } else { &t };
            let input = with_logs(LossInput::rows(x, m, y), log_input, log_target);
            let label = format!("{name} log {log_input}/{log_target}");
            let got = engine.loss(&Loss::KlDiv, &input, Reduction::None).unwrap();
            assert_all_close_with(&label, got.per_sample().unwrap(), &want, |_| (1e-5, 1e-6));
            let g = engine
                .loss_grad(&Loss::KlDiv, &input, Reduction::Sum)
                .unwrap();
            for (k, &gk) in g.iter().enumerate() {
                let want = if log_input {
                    -(t[k] as f64)
                } else {
                    -(t[k] as f64) / q[k] as f64
                };
                assert!(
                    common::agrees(gk, want, 1e-5, 1e-7),
                    "{label} grad[{k}] = {gk}, want {want}"
                );
            }
            let mean = engine.loss(&Loss::KlDiv, &input, Reduction::Mean).unwrap();
            let batchmean = engine.loss(&Loss::KlDiv, &input, Reduction::BatchMean);
            assert_scalar_close(
                &label,
                batchmean.unwrap().scalar().unwrap(),
                mean.scalar().unwrap(),
                1e-6,
            );
        }
    }
}

/// Rows past one dispatch (and the small engines' chunks) agree with the
/// reference, value and gradient, in both log forms.
#[test]
fn many_rows_agree_with_the_reference() {
    let mut rng = rng("kl many rows");
    let cpu_engine = Engine::cpu();
    for (rows, m) in [(70_001, 3), (257, 500)] {
        let x: Vec<f32> = (0..rows * m)
            .map(|_| rng.random_range(-30.0f32..0.0))
            .collect();
        let y: Vec<f32> = (0..rows * m)
            .map(|_| rng.random_range(-30.0f32..0.0))
            .collect();
        let input = LossInput::rows(&x, m, &y)
            .with_log_input()
            .with_log_target();
        for reduction in [Reduction::BatchMean, Reduction::Sum] {
            let want = cpu::loss_scalar(&Loss::KlDiv, &input, reduction).unwrap();
            let want_grad = cpu::loss_grad(&Loss::KlDiv, &input, reduction).unwrap();
            for engine in engines(&cpu_engine) {
                let at = format!("{} {rows}x{m} {}", engine.device_name(), reduction.name());
                let (v, g) = engine
                    .loss_and_grad(&Loss::KlDiv, &input, reduction)
                    .unwrap();
                assert_scalar_close(&at, v.scalar().unwrap(), want, 1e-5);
                assert_all_close_with(&at, &g, &want_grad, |_| (1e-5, 1e-9));
            }
        }
    }
}

/// A log-probability above 0, a flag on another loss, and batchmean of a
/// 1-D loss are errors that name the problem; batchmean divides a weighted
/// sum by the rows.
#[test]
fn bad_options_name_the_problem() {
    let cpu_engine = Engine::cpu();
    let good = [-0.5f32, -1.0, -2.0, -0.1];
    let bad = [-0.5f32, -1.0, 0.25, -0.1];
    for engine in engines(&cpu_engine) {
        let kl = |input: LossInput| engine.loss(&Loss::KlDiv, &input, Reduction::Sum);
        assert_err(
            kl(LossInput::rows(&bad, 2, &[0.5, 0.5, 0.5, 0.5]).with_log_input()),
            "pred[2] = 0.25",
        );
        assert_err(
            kl(LossInput::rows(&bad, 2, &[0.5, 0.5, 0.5, 0.5]).with_log_input()),
            "log-probability",
        );
        assert_err(
            kl(LossInput::rows(&[0.5; 4], 2, &bad).with_log_target()),
            "target[2] = 0.25",
        );
        // Without the flag a log q is out of [0, 1].
        assert_err(kl(LossInput::rows(&good, 2, &[0.5; 4])), "pred[0]");
        assert_err(
            engine.loss(
                &Loss::CrossEntropy,
                &LossInput::rows(&good, 2, &[0.5; 4]).with_log_input(),
                Reduction::Mean,
            ),
            "cross-entropy takes no log input",
        );
        assert_err(
            engine.loss(
                &Loss::Mse,
                &LossInput::new(&good, &good).with_log_target(),
                Reduction::Mean,
            ),
            "mse takes no log target",
        );
        assert_err(
            engine.loss(
                &Loss::Mse,
                &LossInput::new(&good, &good),
                Reduction::BatchMean,
            ),
            "mse: batchmean is for losses over n×m rows",
        );
        // batchmean of row losses: Σ aᵢ·ℓᵢ / n, here with weights.
        let (w, classes) = ([1.0f32, 3.0], [0u32, 1]);
        let input = LossInput::classes(&good, 2, &classes).with_weights(&w);
        let ce = |r| {
            engine
                .loss(&Loss::CrossEntropy, &input, r)
                .unwrap()
                .scalar()
                .unwrap()
        };
        assert_scalar_close(
            "batchmean",
            ce(Reduction::BatchMean),
            ce(Reduction::Sum) / 2.0,
            1e-6,
        );
    }
}
