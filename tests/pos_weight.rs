//! bce-logits' pos_weight (SPEC §1b, PyTorch's `pos_weight`), one value or
//! one per column of n×m multi-label logits: PyTorch's own values and
//! gradients (tests/data/torch_pos_weight.json, made by the script beside
//! it) on every backend and the reference; an f64 formula and its central
//! finite differences; pw = 1 is plain bce-logits; columns across chunk
//! and vec4 boundaries; batches; and the errors.

mod common;

use common::{
    assert_all_close_with, assert_err, assert_scalar_close, check_torch_case, engines, floats, rng,
    to_f32,
};
use lossgpu::{cpu, Engine, Loss, LossInput, Reduction};
use rand::Rng;

const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

/// The input of m columns (1-D when m is 1).
fn input<'a>(x: &'a [f32], m: usize, t: &'a [f32]) -> LossInput<'a> {
    match m {
        1 => LossInput::new(x, t),
        m => LossInput::rows(x, m, t),
    }
}

/// Every backend's value and gradient against PyTorch's for every
/// reduction: rtol 1e-5 (SPEC §5), the gradient within atol 1e-6.
#[test]
fn pytorch_values_and_gradients_on_every_backend() {
    let text = std::fs::read_to_string("tests/data/torch_pos_weight.json").unwrap();
    let data: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert!(cases.len() >= 11, "the generated cases are missing");
    let bce = Loss::BceLogits;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let m = case["m"].as_u64().unwrap_or(1) as usize;
        let x = to_f32(&floats(&case["pred"]));
        let t = to_f32(&floats(&case["target"]));
        let pw = to_f32(&floats(&case["pos_weight"]));
        // A weight per row is broadcast over its columns.
        let w: Option<Vec<f32>> = case["weights"].as_array().map(|_| {
            let w = to_f32(&floats(&case["weights"]));
            match case["weights_per_row"].as_bool().unwrap() {
                true => w.iter().flat_map(|&v| std::iter::repeat_n(v, m)).collect(),
                false => w,
            }
        });
        let mut input = input(&x, m, &t).with_pos_weight(&pw);
        if let Some(w) = &w {
            input = input.with_weights(w);
        }
        for reduction in REDUCTIONS {
            let want = &case["reductions"][reduction.name()];
            let (value, grad) = (floats(&want["value"]), floats(&want["grad"]));
            let label = format!("{name} {}", reduction.name());
            check_torch_case(&label, &bce, &input, reduction, (&value, &grad), 1e-6);
        }
    }
}

/// pw·t·softplus(−p) + (1−t)·softplus(p) in f64.
fn term(p: f64, t: f64, pw: f64) -> f64 {
    let softplus = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
    pw * t * softplus(-p) + (1.0 - t) * softplus(p)
}

/// The weighted mean against the f64 formula, and its gradient against
/// central finite differences, on every backend.
#[test]
fn gradients_match_finite_differences() {
    let mut rng = rng("pos weight fd");
    let cpu_engine = Engine::cpu();
    for (n, m, per_column) in [(41, 1, false), (9, 6, true), (7, 11, true), (5, 3, false)] {
        let len = n * m;
        let x: Vec<f32> = (0..len).map(|_| rng.random_range(-6.0..6.0)).collect();
        let t: Vec<f32> = (0..len).map(|_| rng.random_range(0.0..1.0)).collect();
        let a: Vec<f32> = (0..len).map(|_| rng.random_range(0.0..2.0)).collect();
        let pw: Vec<f32> = (0..if per_column { m } else { 1 })
            .map(|_| rng.random_range(0.0..4.0))
            .collect();
        let inp = input(&x, m, &t).with_weights(&a).with_pos_weight(&pw);
        let asum: f64 = a.iter().map(|&v| v as f64).sum();
        let mean = |x: &[f64]| {
            x.iter()
                .enumerate()
                .map(|(k, &p)| a[k] as f64 * term(p, t[k] as f64, pw[k % pw.len()] as f64))
                .sum::<f64>()
                / asum
        };
        let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let want = mean(&xd);
        let h = 1e-6;
        let fd: Vec<f64> = (0..len)
            .map(|k| {
                let (mut up, mut down) = (xd.clone(), xd.clone());
                up[k] += h;
                down[k] -= h;
                (mean(&up) - mean(&down)) / (2.0 * h)
            })
            .collect();
        let label = format!("{n}x{m} per column {per_column}");
        for engine in engines(&cpu_engine) {
            let at = format!("{label} {}", engine.device_name());
            let (v, g) = engine
                .loss_and_grad(&Loss::BceLogits, &inp, Reduction::Mean)
                .unwrap();
            assert_scalar_close(&at, v.scalar().unwrap(), want, 1e-5);
            assert_all_close_with(&format!("{at} fd"), &g, &fd, |_| (1e-5, 1e-7));
        }
    }
}

/// pw = 1 (one, or one per column) is plain bce-logits; on the GPU the
/// same bits, since the kernel's term is then exactly the plain one.
#[test]
fn a_pos_weight_of_one_is_plain_bce_logits() {
    let mut rng = rng("pos weight one");
    let cpu_engine = Engine::cpu();
    let (n, m) = (1001, 5);
    let x: Vec<f32> = (0..n * m).map(|_| rng.random_range(-20.0..20.0)).collect();
    let t: Vec<f32> = (0..n * m).map(|_| rng.random_range(0..2) as f32).collect();
    let ones = [1.0f32; 5];
    for engine in engines(&cpu_engine) {
        let name = engine.device_name();
        let plain = LossInput::new(&x, &t);
        let (v0, g0) = engine
            .loss_and_grad(&Loss::BceLogits, &plain, Reduction::Mean)
            .unwrap();
        let g0: Vec<f64> = g0.iter().map(|&v| v as f64).collect();
        for pw in [&ones[..1], &ones[..]] {
            let inp = LossInput::rows(&x, m, &t).with_pos_weight(pw);
            let (v, g) = engine
                .loss_and_grad(&Loss::BceLogits, &inp, Reduction::Mean)
                .unwrap();
            let label = format!("{name} {} ones", pw.len());
            assert_scalar_close(&label, v.scalar().unwrap(), v0.scalar().unwrap(), 1e-6);
            assert_all_close_with(&label, &g, &g0, |_| (1e-6, 1e-9));
            if !name.starts_with("cpu") {
                assert_eq!(v.scalar().unwrap(), v0.scalar().unwrap(), "{label}");
            }
        }
    }
}

/// Past one chunk and across the small engines' bindings, with 7 columns
/// (a chunk's first value is rarely column 0): value, per-value and
/// gradient against the reference; in a batch too.
#[test]
fn many_values_and_batches_agree_with_the_reference() {
    let mut rng = rng("pos weight many");
    let cpu_engine = Engine::cpu();
    let (n, m) = (214_287, 7); // 1 500 009 values
    let x: Vec<f32> = (0..n * m).map(|_| rng.random_range(-8.0..8.0)).collect();
    let t: Vec<f32> = (0..n * m).map(|_| rng.random_range(0..2) as f32).collect();
    let pw: Vec<f32> = (0..m).map(|j| 0.5 + j as f32).collect();
    let inp = LossInput::rows(&x, m, &t).with_pos_weight(&pw);
    let bce = Loss::BceLogits;
    let want = cpu::loss_scalar(&bce, &inp, Reduction::Sum).unwrap();
    let want_grad = cpu::loss_grad(&bce, &inp, Reduction::Mean).unwrap();
    let want_each = cpu::loss_per_sample(&bce, &inp).unwrap();
    let small_x = &x[..700];
    let small = LossInput::rows(small_x, m, &t[..700]).with_pos_weight(&pw);
    let plain = LossInput::new(small_x, &t[..700]);
    let want_small = cpu::loss_scalar(&bce, &small, Reduction::Mean).unwrap();
    let want_plain = cpu::loss_scalar(&bce, &plain, Reduction::Mean).unwrap();
    for engine in engines(&cpu_engine) {
        let at = engine.device_name();
        let v = engine.loss(&bce, &inp, Reduction::Sum).unwrap();
        assert_scalar_close(&at, v.scalar().unwrap(), want, 1e-5);
        let g = engine.loss_grad(&bce, &inp, Reduction::Mean).unwrap();
        assert_all_close_with(&format!("{at} grad"), &g, &want_grad, |_| (1e-5, 1e-12));
        let each = engine.loss(&bce, &inp, Reduction::None).unwrap();
        assert_all_close_with(
            &format!("{at} none"),
            each.per_sample().unwrap(),
            &want_each,
            |_| (1e-5, 1e-7),
        );
        let batch = engine
            .loss_batch(&[(bce, plain), (bce, small), (bce, plain)], Reduction::Mean)
            .unwrap();
        for (k, want) in [want_plain, want_small, want_plain].into_iter().enumerate() {
            assert_scalar_close(
                &format!("{at} batch {k}"),
                batch[k].scalar().unwrap(),
                want,
                1e-5,
            );
        }
    }
}

/// A pos_weight of the wrong length, below 0, NaN or infinite, on another
/// loss, and multi-label weights of the wrong length are errors that name
/// the problem; only bce-logits takes n×m values pointwise.
#[test]
fn bad_pos_weights_name_the_problem() {
    let cpu_engine = Engine::cpu();
    let x = [0.5f32, -1.0, 2.0, 0.0, 1.5, -0.5];
    let t = [1.0f32, 0.0, 1.0, 1.0, 0.0, 0.0];
    for engine in engines(&cpu_engine) {
        let bce = |inp: LossInput| engine.loss(&Loss::BceLogits, &inp, Reduction::Mean);
        assert_err(
            bce(LossInput::rows(&x, 3, &t).with_pos_weight(&[1.0, 2.0])),
            "bce-logits: 2 pos weights for 3 columns",
        );
        assert_err(
            bce(LossInput::new(&x, &t).with_pos_weight(&[1.0, 2.0])),
            "2 pos weights for 1 columns",
        );
        assert_err(
            bce(LossInput::rows(&x, 3, &t).with_pos_weight(&[1.0, -2.0, 1.0])),
            "pos weight[1] = -2.0",
        );
        assert_err(
            bce(LossInput::new(&x, &t).with_pos_weight(&[f32::NAN])),
            "pos weight[0] = NaN",
        );
        assert_err(
            bce(LossInput::new(&x, &t).with_pos_weight(&[f32::INFINITY])),
            "is not a finite number >= 0",
        );
        assert_err(
            engine.loss(
                &Loss::Mse,
                &LossInput::new(&x, &t).with_pos_weight(&[2.0]),
                Reduction::Mean,
            ),
            "mse takes no pos weight",
        );
        assert_err(
            bce(LossInput::rows(&x, 3, &t).with_weights(&[1.0, 1.0])),
            "2 weights for 6 values (2 rows of 3)",
        );
        assert_err(
            engine.loss(&Loss::Mse, &LossInput::rows(&x, 3, &t), Reduction::Mean),
            "mse is pointwise",
        );
    }
}

/// One pos_weight (the CPU backend's own f32 term) at odd lengths, on
/// fresh random data with the extremes mixed in (±1e4 logits, exact and
/// fractional targets, pw 0 and 1e3), with and without weights: value,
/// per-value and gradient against the f64 reference on every backend.
/// The f32 loops take one pos_weight and a pos_weight per column: values
/// at odd lengths and shapes (a block of the CPU starts mid-row), with
/// logits of ±1e4 and ±88, hard and soft targets, weighted or not; sum,
/// mean, per value and gradient against the reference on every backend.
#[test]
fn pos_weights_on_odd_shapes_and_extremes() {
    let mut rng = rng("one pos weight");
    let cpu_engine = Engine::cpu();
    let extremes = [1e4f32, -1e4, 0.0, 30.0, -30.0, 1e-4, -88.0, 88.0];
    let mut shapes: Vec<(usize, Vec<f32>)> = Vec::new();
    for n in [1usize, 7, 255, 257, 65_537] {
        for pw in [0.0f32, 0.3, 1.0, 7.5, 1e3] {
            shapes.push((n, vec![pw]));
        }
    }
    for (rows, m) in [(1usize, 2usize), (7, 3), (257, 10), (6_553, 17), (3, 1000)] {
        let pw: Vec<f32> = (0..m).map(|k| [0.0, 0.3, 1.0, 7.5, 1e3][k % 5]).collect();
        shapes.push((rows * m, pw));
    }
    for (n, pws) in shapes {
        let m = if pws.len() > 1 { pws.len() } else { 1 };
        let x: Vec<f32> = (0..n)
            .map(|i| match i % 5 {
                0 => extremes[rng.random_range(0..extremes.len())],
                _ => rng.random_range(-12.0..12.0),
            })
            .collect();
        let t: Vec<f32> = (0..n)
            .map(|i| match i % 3 {
                0 => rng.random_range(0.0..1.0),
                _ => rng.random_range(0..2) as f32,
            })
            .collect();
        let w: Vec<f32> = (0..n).map(|_| rng.random_range(0.0..2.0)).collect();
        for weighted in [false, true] {
            let mut inp = input(&x, m, &t).with_pos_weight(&pws);
            if weighted {
                inp = inp.with_weights(&w);
            }
            let label = format!(
                "n={n} m={m} pw={:?} weighted={weighted}",
                &pws[..pws.len().min(3)]
            );
            check_against_reference(&cpu_engine, &label, &inp);
        }
    }
}

fn check_against_reference(cpu_engine: &Engine, label: &str, inp: &LossInput) {
    let bce = Loss::BceLogits;
    let want_sum = cpu::loss_scalar(&bce, inp, Reduction::Sum).unwrap();
    let want_mean = cpu::loss_scalar(&bce, inp, Reduction::Mean).unwrap();
    let want_each = cpu::loss_per_sample(&bce, inp).unwrap();
    let want_grad = cpu::loss_grad(&bce, inp, Reduction::Sum).unwrap();
    let scale = want_grad.iter().fold(1.0f64, |m, g| m.max(g.abs()));
    for engine in engines(cpu_engine) {
        let at = format!("{} {label}", engine.device_name());
        let v = engine.loss(&bce, inp, Reduction::Sum).unwrap();
        assert_scalar_close(&at, v.scalar().unwrap(), want_sum, 1e-5);
        let v = engine.loss(&bce, inp, Reduction::Mean).unwrap();
        assert_scalar_close(&format!("{at} mean"), v.scalar().unwrap(), want_mean, 1e-5);
        let each = engine.loss(&bce, inp, Reduction::None).unwrap();
        assert_all_close_with(
            &format!("{at} none"),
            each.per_sample().unwrap(),
            &want_each,
            |_| (1e-5, 1e-6),
        );
        let g = engine.loss_grad(&bce, inp, Reduction::Sum).unwrap();
        assert_all_close_with(&format!("{at} grad"), &g, &want_grad, |_| {
            (1e-5, 1e-6 * scale)
        });
    }
}
