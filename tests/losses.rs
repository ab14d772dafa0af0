//! Every loss × reduction × weights × length on the GPU against the f64
//! reference, on random data and the extremes; the seed's identities;
//! gradients against finite differences; value checks; reproducibility.

mod common;

use common::{
    agrees, assert_all_close_with, assert_err, assert_grad_close, assert_scalar_close, data,
    exp_arg, exp_rtol, gpu, gpu_narrow, gpu_small, rng, NARROW_GRID,
};
use lossgpu::{cpu, Engine, Loss, LossInput, LossValue, Reduction, Regularizer, Target};
use rand::rngs::StdRng;
use rand::Rng;

/// Every pointwise loss of [`Loss::ALL`] (classification first, as listed),
/// then more parameters of the parametrised ones.
fn pointwise() -> Vec<Loss> {
    let mut losses: Vec<Loss> = Loss::ALL
        .iter()
        .copied()
        .filter(Loss::is_pointwise)
        .collect();
    losses.extend([
        Loss::Huber { delta: 0.3 },
        Loss::Quantile { gamma: 0.1 },
        Loss::Quantile { gamma: 0.9 },
        Loss::SmoothL1 { beta: 0.3 },
        Loss::SmoothL1 { beta: 0.0 },
    ]);
    losses
}

/// Predictions and targets in the loss's domain, with its edge cases.
fn pointwise_data(loss: &Loss, rng: &mut StdRng, n: usize) -> (Vec<f32>, Vec<f32>) {
    let mut p = data(rng, n);
    let t: Vec<f32> = match loss {
        Loss::ZeroOne | Loss::Hinge | Loss::SquaredHinge | Loss::Exponential | Loss::Logistic => (0
            ..n)
            .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
            .collect(),
        Loss::BceLogits | Loss::Bce => (0..n)
            .map(|i| match i % 7 {
                0 => 0.0,
                1 => 1.0,
                _ => rng.random::<f32>(),
            })
            .collect(),
        _ => {
            let mut t = data(rng, n);
            for i in (0..n).step_by(11) {
                t[i] = if i % 2 == 0 { 0.0 } else { p[i] };
            }
            t
        }
    };
    if *loss == Loss::Bce {
        let edges = [0.0, 1.0, 1e-30, 1.0 - 1e-7, 0.5, 1e-45];
        p = (0..n)
            .map(|i| {
                if i % 13 < edges.len() {
                    edges[i % 13]
                } else {
                    rng.random::<f32>()
                }
            })
            .collect();
    }
    if matches!(loss, Loss::ZeroOne | Loss::Hinge) {
        // Exact margins: the kinks at t·p = 0 and 1.
        for i in (3..n).step_by(17) {
            p[i] = t[i] * (i % 2) as f32;
        }
    }
    (p, t)
}

fn weights(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            if i % 9 == 0 {
                0.0
            } else {
                rng.random::<f32>() * 3.0
            }
        })
        .collect()
}

fn reductions(loss: &Loss) -> Vec<Reduction> {
    if *loss == Loss::Rmse {
        vec![Reduction::Mean]
    } else {
        vec![Reduction::Mean, Reduction::Sum, Reduction::None]
    }
}

/// Value (every reduction) and gradient of `loss` on `input`, GPU vs reference.
fn compare(
    engine: &Engine,
    label: &str,
    loss: &Loss,
    input: &LossInput,
    rtol_at: &dyn Fn(usize) -> f64,
) {
    for reduction in reductions(loss) {
        let what = format!("{label} {} {}", loss.name(), reduction.name());
        let got = engine
            .loss(loss, input, reduction)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        match got {
            LossValue::Scalar(v) => {
                let want = cpu::loss_scalar(loss, input, reduction).unwrap();
                assert_scalar_close(&what, v, want, 1e-5);
            }
            LossValue::PerSample(v) => {
                let want = cpu::loss_per_sample(loss, input).unwrap();
                assert_all_close_with(&what, &v, &want, |i| (rtol_at(i * input.cols), 1e-6));
            }
        }
        let grad = engine
            .loss_grad(loss, input, reduction)
            .unwrap_or_else(|e| panic!("{what} grad: {e}"));
        assert_grad_close(&what, loss, input, reduction, &grad, rtol_at);
    }
}

fn check_pointwise(engine: &Engine, label: &str, lengths: &[usize]) {
    let mut rng = rng(label);
    for loss in pointwise() {
        for &n in lengths {
            let (p, t) = pointwise_data(&loss, &mut rng, n);
            let w = weights(&mut rng, n);
            let rtol = |i: usize| exp_rtol(exp_arg(&loss, p[i], t[i]));
            compare(engine, label, &loss, &LossInput::new(&p, &t), &rtol);
            if w.iter().any(|&v| v > 0.0) {
                compare(
                    engine,
                    &format!("{label} weighted"),
                    &loss,
                    &LossInput::new(&p, &t).with_weights(&w),
                    &rtol,
                );
            }
        }
    }
}

/// Softmax rows (distributions) with exact zeros.
fn distributions(rng: &mut StdRng, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        let raw: Vec<f64> = (0..cols)
            .map(|j| {
                if cols > 2 && j % 3 == 0 {
                    0.0
                } else {
                    rng.random::<f64>() + 0.01
                }
            })
            .collect();
        let s: f64 = raw.iter().sum();
        out.extend(raw.iter().map(|v| (v / s) as f32));
    }
    out
}

fn check_rows(engine: &Engine, label: &str, shapes: &[(usize, usize)]) {
    let mut rng = rng(label);
    for &(rows, cols) in shapes {
        let logits: Vec<f32> = data(&mut rng, rows * cols);
        let classes: Vec<u32> = (0..rows)
            .map(|_| rng.random_range(0..cols as u32))
            .collect();
        let t = distributions(&mut rng, rows, cols);
        let q = distributions(&mut rng, rows, cols);
        let w = weights(&mut rng, rows);
        let rtol = |_: usize| 1e-5;
        let cases = [
            (
                Loss::CrossEntropy,
                LossInput::classes(&logits, cols, &classes),
            ),
            (Loss::CrossEntropy, LossInput::rows(&logits, cols, &t)),
            (Loss::ZeroOne, LossInput::classes(&logits, cols, &classes)),
            (Loss::KlDiv, LossInput::rows(&q, cols, &t)),
            (Loss::Entropy, LossInput::unlabelled(&q, cols)),
        ];
        for (loss, input) in cases {
            let shape = format!("{label} {rows}x{cols}");
            compare(engine, &shape, &loss, &input, &rtol);
            if w.iter().any(|&v| v > 0.0) {
                compare(
                    engine,
                    &format!("{shape} weighted"),
                    &loss,
                    &input.with_weights(&w),
                    &rtol,
                );
            }
        }
    }
}

#[test]
fn pointwise_losses_match_reference() {
    let Some(engine) = gpu() else { return };
    check_pointwise(engine, "pointwise", &[1, 7, 257, 65_537, 1_000_003]);
}

#[test]
fn row_losses_match_reference() {
    let Some(engine) = gpu() else { return };
    check_rows(
        engine,
        "rows",
        &[
            (1, 1),
            (7, 3),
            (257, 10),
            (65_537, 10),
            (1000, 257),
            (3, 100_000),
            // Gemma's vocabulary: a row of 262,144 logits.
            (2, 262_144),
        ],
    );
}

/// A few wide rows are cut into parts, a workgroup each, merged exactly
/// in a second pass: every row op that sums over its columns (with the
/// class options, probability targets, kl-div's log forms, multi-margin) as
/// well as cross-entropy's and zero-one's maxima, against the reference,
/// at the threshold width and past it.
#[test]
fn split_wide_rows_match_reference() {
    let Some(engine) = gpu() else { return };
    let mut rng = rng("split rows");
    for (rows, cols) in [(1, 8192), (3, 50_001)] {
        let z: Vec<f32> = (0..rows * cols)
            .map(|_| rng.random_range(-8.0..8.0))
            .collect();
        let classes: Vec<u32> = (0..rows)
            .map(|_| rng.random_range(0..cols as u32))
            .collect();
        let mut ignoring = classes.clone();
        if rows > 1 {
            ignoring[rows / 2] = -100i32 as u32;
        }
        let cw: Vec<f32> = (0..cols).map(|_| rng.random_range(0.0..2.0)).collect();
        let (t, q) = (
            distributions(&mut rng, rows, cols),
            distributions(&mut rng, rows, cols),
        );
        let log_q: Vec<f32> = q.iter().map(|v| v.ln()).collect();
        let w: Vec<f32> = (0..rows).map(|_| rng.random_range(0.5..2.0)).collect();
        let ce = LossInput::classes(&z, cols, &ignoring)
            .with_class_weights(&cw)
            .with_ignore_index(-100);
        let cases = [
            (
                Loss::CrossEntropy,
                ce.with_label_smoothing(0.1).with_z_loss(1e-3),
            ),
            (
                Loss::CrossEntropy,
                LossInput::classes(&z, cols, &classes).with_label_smoothing(0.2),
            ),
            (
                Loss::CrossEntropy,
                LossInput::rows(&z, cols, &t).with_weights(&w),
            ),
            (Loss::ZeroOne, LossInput::classes(&z, cols, &classes)),
            (Loss::KlDiv, LossInput::rows(&q, cols, &t)),
            (
                Loss::KlDiv,
                LossInput::rows(&log_q, cols, &t).with_log_input(),
            ),
            (
                Loss::Entropy,
                LossInput::unlabelled(&q, cols).with_weights(&w),
            ),
            (
                Loss::MultiMargin {
                    margin: 1.0,
                    power: 2,
                },
                LossInput::classes(&z, cols, &classes),
            ),
        ];
        for (loss, input) in cases {
            compare(
                engine,
                &format!("split {rows}x{cols}"),
                &loss,
                &input,
                &|_| 1e-5,
            );
        }
    }
}

#[test]
fn chunked_paths_match_reference() {
    // 4 KiB bindings: 1024 elements or 3 rows of 300 per dispatch, and the
    // shared-memory reduction tree instead of subgroups.
    let Some(engine) = gpu_small() else { return };
    check_pointwise(engine, "pointwise (4 KiB bindings)", &[1, 1025, 65_537]);
    check_rows(
        engine,
        "rows (4 KiB bindings)",
        &[(7, 3), (100, 300), (2049, 10)],
    );
    let wide = vec![0.0f32; 2000];
    let err = engine
        .loss(
            &Loss::CrossEntropy,
            &LossInput::classes(&wide, 2000, &[0]),
            Reduction::Mean,
        )
        .unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");
}

#[test]
fn the_2d_dispatch_grid_matches_reference() {
    // 1024 workgroups per dimension: elementwise outputs past 2^20 values
    // (vec4 per invocation) and row kernels past 1024 rows take the 2-D
    // grid (`grid()`, `flat_id`) that real adapters use past 65 535.
    let Some(engine) = gpu_narrow() else { return };
    let info = engine.device_info().unwrap();
    assert_eq!(info.max_workgroups_per_dimension, NARROW_GRID);
    check_pointwise(engine, "pointwise (2-D grid)", &[1_500_007]);
    check_rows(
        engine,
        "rows (2-D grid)",
        &[(65_537, 10), (1000, 257), (3, 100_000)],
    );
}

#[test]
fn logits_of_1e4_and_large_errors_do_not_overflow() {
    let Some(engine) = gpu() else { return };
    let p = [1e4f32, -1e4, 1e4, -1e4];
    let t = [1.0f32, 1.0, -1.0, -1.0];
    let logistic = engine
        .loss(&Loss::Logistic, &LossInput::new(&p, &t), Reduction::None)
        .unwrap();
    assert_eq!(logistic.per_sample().unwrap(), &[0.0, 1e4, 1e4, 0.0]);
    let t01 = [1.0f32, 1.0, 0.0, 0.0];
    let bce = engine
        .loss(&Loss::BceLogits, &LossInput::new(&p, &t01), Reduction::None)
        .unwrap();
    assert_eq!(bce.per_sample().unwrap(), &[0.0, 1e4, 1e4, 0.0]);
    let e = [1e4f32, -1e4, 30.0, 1e-3];
    let zero = [0.0f32; 4];
    let lc = engine
        .loss(&Loss::LogCosh, &LossInput::new(&e, &zero), Reduction::None)
        .unwrap();
    let want: Vec<f64> = e.iter().map(|&v| cpu::common::log_cosh(v as f64)).collect();
    for (g, w) in lc.per_sample().unwrap().iter().zip(&want) {
        assert!(agrees(*g, *w, 1e-5, 1e-9), "log-cosh {g} vs {w}");
    }
}

/// Per-sample exponential loss w·e^(−t·p) with t = 1 on the GPU.
fn exponential(engine: &Engine, p: &[f32], w: Option<&[f32]>) -> (Vec<f32>, Vec<f64>) {
    let one = vec![1.0f32; p.len()];
    let input = LossInput {
        weights: w,
        ..LossInput::new(p, &one)
    };
    let got = engine
        .loss(&Loss::Exponential, &input, Reduction::None)
        .unwrap();
    let want = cpu::loss_per_sample(&Loss::Exponential, &input).unwrap();
    (got.per_sample().unwrap().to_vec(), want)
}

#[test]
fn exponential_terms_are_inf_exactly_past_the_f32_range() {
    let Some(engine) = gpu() else { return };
    let (ex, _) = exponential(engine, &[-88.0, -89.0, -1e4, 80.0], None);
    assert!(ex[0].is_finite() && ex[1].is_infinite() && ex[2].is_infinite() && ex[3] > 0.0);
    // Just inside the range exp's few-ULP error must not round up to inf:
    // the last 64 f32 arguments whose exact exp is finite.
    let edge = (f32::MAX as f64).ln() as f32;
    let edge = if (edge as f64).exp() > f32::MAX as f64 {
        f32::from_bits(edge.to_bits() - 1)
    } else {
        edge
    };
    let pe: Vec<f32> = (0..64)
        .map(|k| -f32::from_bits(edge.to_bits() - k))
        .collect();
    // Weighted: w·exp(−p) between 1e-6 and 1e-5 below f32::MAX (exactly,
    // after p is rounded to f32), where folding log w into the exponent
    // crossed the edge for a quarter of them.
    let mut r = rng("exponential-edge");
    let (mut w, mut pw) = (vec![], vec![]);
    while w.len() < 4097 {
        let wi = r.random_range(1e-3f32..3.0);
        let below = 1.0 - r.random_range(1e-6f64..1e-5);
        let pi = -((f32::MAX as f64 * below / wi as f64).ln() as f32);
        let exact = wi as f64 * (-pi as f64).exp() / f32::MAX as f64;
        if (1.0 - 1e-5..=1.0 - 1e-6).contains(&exact) {
            w.push(wi);
            pw.push(pi);
        }
    }
    for (p, w) in [(&pe, None), (&pw, Some(&w[..]))] {
        let (got, want) = exponential(engine, p, w);
        for i in 0..p.len() {
            assert!(
                got[i].is_finite() && agrees(got[i], want[i], exp_rtol(p[i]), 0.0),
                "w={:?} p={}: got {} want {}",
                w.map(|w| w[i]),
                p[i],
                got[i],
                want[i]
            );
        }
    }
}

#[test]
fn seed_identities_hold_on_every_backend() {
    let mut rng = rng("identities");
    let n = 10_001;
    let p = data(&mut rng, n);
    let t: Vec<f32> = (0..n)
        .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
        .collect();
    let t01: Vec<f32> = t.iter().map(|&v| (1.0 + v) / 2.0).collect();
    let sig: Vec<f32> = p
        .iter()
        .map(|&v| cpu::common::sigmoid(v as f64) as f32)
        .collect();
    let cols = 5;
    let logits = data(&mut rng, 2000 * cols);
    let dist = distributions(&mut rng, 2000, cols);
    let q = distributions(&mut rng, 2000, cols)
        .iter()
        .map(|&v| v.max(1e-6))
        .collect::<Vec<f32>>();
    let log_q: Vec<f32> = q.iter().map(|&v| v.ln()).collect();
    let _ = logits;
    for engine in [Some(&Engine::cpu()), gpu()].into_iter().flatten() {
        let v = |loss: Loss, input: LossInput| {
            engine
                .loss(&loss, &input, Reduction::Mean)
                .unwrap()
                .scalar()
                .unwrap()
        };
        // (4.1) logistic at t = ±1 = (4.2) bce-logits at (1+t)/2 = (4.3) bce on σ(p),
        // where σ(p) is not clamped (|p| < 16 keeps σ(p) off 0 and 1 in f32).
        let small: Vec<usize> = (0..n).filter(|&i| p[i].abs() < 16.0).collect();
        let pick = |v: &[f32]| small.iter().map(|&i| v[i]).collect::<Vec<f32>>();
        let (ps, ts, t01s, sigs) = (pick(&p), pick(&t), pick(&t01), pick(&sig));
        let a = v(Loss::Logistic, LossInput::new(&ps, &ts));
        let b = v(Loss::BceLogits, LossInput::new(&ps, &t01s));
        let c = v(Loss::Bce, LossInput::new(&sigs, &t01s));
        assert_scalar_close("logistic = bce-logits", a, b, 1e-5);
        assert_scalar_close("bce-logits = bce(σ)", b, c, 1e-4);
        // ...and over all p, logistic = bce-logits exactly as formulas.
        assert_scalar_close(
            "logistic = bce-logits (all)",
            v(Loss::Logistic, LossInput::new(&p, &t)),
            v(Loss::BceLogits, LossInput::new(&p, &t01)),
            1e-5,
        );
        // KL(t, q) = cross-entropy(t, log q) − entropy(t)
        let kl = v(Loss::KlDiv, LossInput::rows(&q, cols, &dist));
        let ce = v(Loss::CrossEntropy, LossInput::rows(&log_q, cols, &dist));
        let h = v(Loss::Entropy, LossInput::unlabelled(&dist, cols));
        // log q is rounded to f32 and renormalised by softmax: compare at 1e-5 of CE.
        assert!(
            (kl - (ce - h)).abs() <= 1e-5 * ce.abs(),
            "{:?}: kl {kl} vs ce−h {}",
            engine.backend(),
            ce - h
        );
    }
}

#[test]
fn smooth_l1_is_pytorchs_smooth_l1_loss() {
    // Values of torch.nn.functional.smooth_l1_loss(p, t, beta=β, reduction="none")
    // and of its gradient, worked by hand: ½e²/β inside |e| < β, |e| − ½β outside.
    let p = [0.0f32, 0.0, 0.0, 2.0, -1.0, 3.0];
    let t = [0.5f32, 2.0, -1.0, 2.0, -0.25, 0.0];
    let want_b1 = [0.125f32, 1.5, 0.5, 0.0, 0.28125, 2.5];
    let grad_b1 = [-0.5f32, -1.0, 1.0, 0.0, -0.75, 1.0];
    let mut rng = rng("smooth-l1");
    let n = 4099;
    let (pr, tr) = (data(&mut rng, n), data(&mut rng, n));
    for engine in [Some(&Engine::cpu()), gpu(), gpu_small()]
        .into_iter()
        .flatten()
    {
        let what = format!("{:?}", engine.backend());
        let input = LossInput::new(&p, &t);
        let l1 = Loss::SmoothL1 { beta: 1.0 };
        let got = engine.loss(&l1, &input, Reduction::None).unwrap();
        assert_eq!(got.per_sample().unwrap(), want_b1, "{what}");
        let g = engine.loss_grad(&l1, &input, Reduction::Sum).unwrap();
        assert_eq!(g, grad_b1, "{what}");
        // β = 0 is plain L1, value and gradient, as in PyTorch.
        let random = LossInput::new(&pr, &tr);
        let zero = Loss::SmoothL1 { beta: 0.0 };
        for reduction in [Reduction::None, Reduction::Sum] {
            assert_eq!(
                engine.loss(&zero, &random, reduction).unwrap(),
                engine.loss(&Loss::Mae, &random, reduction).unwrap(),
                "{what}"
            );
        }
        assert_eq!(
            engine.loss_grad(&zero, &random, Reduction::Mean).unwrap(),
            engine
                .loss_grad(&Loss::Mae, &random, Reduction::Mean)
                .unwrap(),
            "{what}"
        );
        // huber with δ = β is β times smooth-l1.
        let beta = 0.7;
        let s = engine
            .loss(&Loss::SmoothL1 { beta }, &random, Reduction::Mean)
            .unwrap()
            .scalar()
            .unwrap();
        let h = engine
            .loss(&Loss::Huber { delta: beta }, &random, Reduction::Mean)
            .unwrap()
            .scalar()
            .unwrap();
        assert_scalar_close("huber = β·smooth-l1", h, beta as f64 * s, 1e-5);
    }
    for bad in [-1.0, f32::NAN, f32::INFINITY] {
        assert_err(
            Loss::SmoothL1 { beta: bad }.validate(),
            "beta must be a finite number >= 0",
        );
    }
}

/// The same value bit for bit, NaN equal to NaN.
fn same_value(a: &LossValue, b: &LossValue) -> bool {
    match (a, b) {
        (LossValue::Scalar(x), LossValue::Scalar(y)) => x.to_bits() == y.to_bits(),
        (LossValue::PerSample(x), LossValue::PerSample(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        }
        _ => false,
    }
}

#[test]
fn value_and_gradient_come_from_one_call() {
    let mut rng = rng("loss and grad");
    let cpu_engine = Engine::cpu();
    for engine in [Some(&cpu_engine), gpu(), gpu_small()]
        .into_iter()
        .flatten()
    {
        let what = format!("{:?}", engine.backend());
        for loss in pointwise() {
            let n = [1, 7, 1031][rng.random_range(0..3)];
            let (p, t) = pointwise_data(&loss, &mut rng, n);
            let w = weights(&mut rng, n);
            for input in [
                LossInput::new(&p, &t),
                LossInput::new(&p, &t).with_weights(&w),
            ] {
                for reduction in reductions(&loss) {
                    let value = engine.loss(&loss, &input, reduction);
                    let grad = engine.loss_grad(&loss, &input, reduction);
                    match (engine.loss_and_grad(&loss, &input, reduction), value, grad) {
                        (Ok((v, g)), Ok(value), Ok(grad)) => {
                            assert!(same_value(&v, &value), "{what} {loss:?} {reduction:?}");
                            let bits =
                                |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                            assert_eq!(bits(&g), bits(&grad), "{what} {loss:?} {reduction:?}");
                        }
                        // Weights that sum to 0 fail the mean either way.
                        (Err(a), Err(b), _) => assert_eq!(a.to_string(), b.to_string()),
                        (both, value, grad) => {
                            panic!("{what} {loss:?} {reduction:?}: {both:?} vs {value:?}, {grad:?}")
                        }
                    }
                }
            }
        }
        // Row losses: the value is the same; the gradient of narrow rows may
        // come from another pass (row_grad_small) and agrees within 1 ulp-ish.
        let (rows, cols) = (129, 5);
        let z = data(&mut rng, rows * cols);
        let classes: Vec<u32> = (0..rows).map(|i| (i % cols) as u32).collect();
        let dist = distributions(&mut rng, rows, cols);
        let inputs = [
            (Loss::CrossEntropy, LossInput::classes(&z, cols, &classes)),
            (Loss::CrossEntropy, LossInput::rows(&z, cols, &dist)),
            (Loss::Entropy, LossInput::unlabelled(&dist, cols)),
            (Loss::KlDiv, LossInput::rows(&dist, cols, &dist)),
        ];
        for (loss, input) in inputs {
            for reduction in reductions(&loss) {
                let (v, g) = engine.loss_and_grad(&loss, &input, reduction).unwrap();
                let value = engine.loss(&loss, &input, reduction).unwrap();
                assert!(same_value(&v, &value), "{what} {loss:?} {reduction:?}");
                let grad = engine.loss_grad(&loss, &input, reduction).unwrap();
                assert_all_close_with(&format!("{what} {loss:?}"), &g, &grad_as_f64(&grad), |_| {
                    (1e-6, 1e-7)
                });
            }
        }
    }
}

fn grad_as_f64(g: &[f32]) -> Vec<f64> {
    g.iter().map(|&v| v as f64).collect()
}

#[test]
fn gradients_match_finite_differences() {
    let mut rng = rng("finite differences");
    for loss in pointwise() {
        for _ in 0..200 {
            let (p, t) = pointwise_data(&loss, &mut rng, 1);
            let (p, t) = (p[0] as f64, t[0] as f64);
            let h = 1e-6 * p.abs().max(1.0);
            let e = t - p;
            let near_kink = match loss {
                Loss::Hinge | Loss::SquaredHinge | Loss::ZeroOne => {
                    (t * p - 1.0).abs() < 1e-3 || (t * p).abs() < 1e-3
                }
                Loss::Bce => !(0.01..=0.99).contains(&p),
                Loss::Huber { delta: k } | Loss::SmoothL1 { beta: k } => {
                    (e.abs() - k as f64).abs() < 1e-3 || e.abs() < 1e-3
                }
                Loss::Mae | Loss::Mape | Loss::Smape | Loss::Quantile { .. } => {
                    e.abs() < 1e-3 || p.abs() < 1e-3
                }
                Loss::Exponential => -t * p > 80.0,
                _ => false,
            };
            if near_kink || p.abs() > 1e3 {
                continue;
            }
            let fd = (loss.term_f64(p + h, t) - loss.term_f64(p - h, t)) / (2.0 * h);
            let g = loss.term_grad_f64(p, t);
            assert!(
                (fd - g).abs() <= 1e-5 * g.abs().max(1.0),
                "{} at p={p} t={t}: grad {g}, fd {fd}",
                loss.name()
            );
        }
    }
    // Row losses and the rmse chain rule, through the public gradient.
    let cols = 6;
    let logits = data(&mut rng, 4 * cols);
    let logits: Vec<f32> = logits.iter().map(|v| v.clamp(-5.0, 5.0)).collect();
    let classes = [0u32, 5, 2, 3];
    let dist = distributions(&mut rng, 4, cols);
    let q: Vec<f32> = distributions(&mut rng, 4, cols)
        .iter()
        .map(|v| v.max(0.05))
        .collect();
    let w = [0.5f32, 2.0, 1.0, 0.0];
    let pr = data(&mut rng, 24)
        .iter()
        .map(|v| v.clamp(-5.0, 5.0))
        .collect::<Vec<f32>>();
    let tr = data(&mut rng, 24)
        .iter()
        .map(|v| v.clamp(-5.0, 5.0))
        .collect::<Vec<f32>>();
    let w24: Vec<f32> = (0..24).map(|i| 0.5 + (i % 3) as f32).collect();
    let cases: Vec<(Loss, LossInput)> = vec![
        (
            Loss::CrossEntropy,
            LossInput::classes(&logits, cols, &classes).with_weights(&w),
        ),
        (
            Loss::CrossEntropy,
            LossInput::rows(&logits, cols, &dist).with_weights(&w),
        ),
        (
            Loss::KlDiv,
            LossInput::rows(&q, cols, &dist).with_weights(&w),
        ),
        (
            Loss::Entropy,
            LossInput::unlabelled(&q, cols).with_weights(&w),
        ),
        (Loss::Rmse, LossInput::new(&pr, &tr).with_weights(&w24)),
    ];
    for (loss, input) in cases {
        let g = cpu::loss_grad(&loss, &input, Reduction::Mean).unwrap();
        for i in 0..input.pred.len() {
            // f32 inputs: a step of 2^-10 is exact, and the f64 reference keeps
            // the difference quotient to about 1e-6.
            let h = 1.0 / 1024.0;
            let mut up = input.pred.to_vec();
            let mut down = input.pred.to_vec();
            up[i] += h;
            down[i] -= h;
            let at = |pred: &[f32]| {
                cpu::loss_scalar(&loss, &LossInput { pred, ..input }, Reduction::Mean).unwrap()
            };
            let fd = (at(&up) - at(&down)) / (2.0 * h as f64);
            assert!(
                (fd - g[i]).abs() <= 2e-3 * g[i].abs().max(0.01),
                "{} [{i}]: grad {} fd {fd}",
                loss.name(),
                g[i]
            );
        }
    }
}

#[test]
fn gpu_reduction_is_bitwise_reproducible() {
    let Some(engine) = gpu() else { return };
    let mut rng = rng("reproducible");
    let n = 1_000_003;
    let p = data(&mut rng, n);
    let t = data(&mut rng, n);
    let w = weights(&mut rng, n);
    let logits = data(&mut rng, 100_000 * 10);
    let classes: Vec<u32> = (0..100_000).map(|_| rng.random_range(0..10)).collect();
    let runs = |loss: Loss, input: LossInput| -> Vec<u64> {
        (0..5)
            .map(|_| {
                engine
                    .loss(&loss, &input, Reduction::Mean)
                    .unwrap()
                    .scalar()
                    .unwrap()
                    .to_bits()
            })
            .collect()
    };
    for bits in [
        runs(Loss::Mse, LossInput::new(&p, &t)),
        runs(
            Loss::Huber { delta: 1.0 },
            LossInput::new(&p, &t).with_weights(&w),
        ),
        runs(
            Loss::CrossEntropy,
            LossInput::classes(&logits, 10, &classes),
        ),
    ] {
        assert!(bits.iter().all(|&b| b == bits[0]), "{bits:?}");
    }
}

#[test]
fn bad_values_name_the_first_offender_on_both_backends() {
    let p = [0.5f32, -1.0, 2.0, 1.0, 0.3];
    let t_bad = [1.0f32, -1.0, 0.5, 1.0, 0.0];
    let probs = [0.2f32, 0.8, 1.5, 0.0, 1.0];
    let w_bad = [1.0f32, 1.0, 1.0, -2.0, 1.0];
    let t01 = [0.0f32, 1.0, 0.5, 1.0, 0.0];
    let scores = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6];
    for engine in [Some(&Engine::cpu()), gpu(), gpu_small()]
        .into_iter()
        .flatten()
    {
        let err = |loss: Loss, input: LossInput, r: Reduction| {
            engine
                .loss(&loss, &input, r)
                .expect_err(&format!("{loss:?} should fail"))
                .to_string()
        };
        let m = err(Loss::Hinge, LossInput::new(&p, &t_bad), Reduction::Mean);
        assert!(m.contains("target[2]") && m.contains("0.5"), "{m}");
        let m = err(Loss::Bce, LossInput::new(&probs, &t01), Reduction::Sum);
        assert!(m.contains("pred[2]") && m.contains("1.5"), "{m}");
        let m = err(
            Loss::Mse,
            LossInput::new(&p, &t01).with_weights(&w_bad),
            Reduction::None,
        );
        assert!(m.contains("weights[3]") && m.contains("-2"), "{m}");
        let m = err(
            Loss::CrossEntropy,
            LossInput::classes(&scores, 3, &[2, 3]),
            Reduction::Mean,
        );
        assert!(m.contains("target[1]") && m.contains('3'), "{m}");
        // The gradient's own passes check too (narrow rows skip row_loss).
        for reduction in [Reduction::Sum, Reduction::Mean] {
            let m = engine
                .loss_grad(
                    &Loss::CrossEntropy,
                    &LossInput::classes(&scores, 3, &[2, 3]),
                    reduction,
                )
                .unwrap_err()
                .to_string();
            assert!(m.contains("target[1]") && m.contains('3'), "{m}");
            let (q, bad_dist) = (
                [0.2f32, 0.3, 0.5, 0.1, 0.1, 0.8],
                [0.5f32, 0.5, 0.0, 0.2, 1.5, 0.0],
            );
            let m = engine
                .loss_grad(&Loss::KlDiv, &LossInput::rows(&q, 3, &bad_dist), reduction)
                .unwrap_err()
                .to_string();
            assert!(m.contains("target[4]") && m.contains("1.5"), "{m}");
        }
        let m = err(Loss::Mse, LossInput::new(&p, &t01[..4]), Reduction::Mean);
        assert!(m.contains('4') && m.contains('5'), "{m}");
        assert_err(
            engine.loss(
                &Loss::Mse,
                &LossInput::<f32>::new(&[], &[]),
                Reduction::Mean,
            ),
            "prediction is empty",
        );
        assert_err(
            engine.loss(&Loss::Rmse, &LossInput::new(&p, &t01), Reduction::None),
            "not none",
        );
        assert_err(
            engine.loss(&Loss::Rmse, &LossInput::new(&p, &t01), Reduction::Sum),
            "not sum",
        );
        assert_err(
            engine.loss(
                &Loss::Huber { delta: 0.0 },
                &LossInput::new(&p, &t01),
                Reduction::Mean,
            ),
            "--delta must be",
        );
        assert_err(
            engine.loss(
                &Loss::Quantile { gamma: 1.0 },
                &LossInput::new(&p, &t01),
                Reduction::Mean,
            ),
            "--quantile must be in (0, 1)",
        );
        assert_err(
            engine.loss(
                &Loss::Entropy,
                &LossInput::rows(&scores, 3, &scores),
                Reduction::Mean,
            ),
            "takes no target",
        );
        assert_err(
            engine.loss(
                &Loss::Mse,
                &LossInput::new(&p, &t01).with_weights(&[0.0; 5]),
                Reduction::Mean,
            ),
            "weights sum to 0",
        );
        assert_err(
            engine.loss_grad(&Loss::Hinge, &LossInput::new(&p, &t_bad), Reduction::Mean),
            "target[2] = 0.5",
        );
        // NaN is data, not an error: it propagates.
        let nan_t = [f32::NAN, 1.0, -1.0, 1.0, 1.0];
        let v = engine
            .loss(&Loss::Hinge, &LossInput::new(&p, &nan_t), Reduction::Mean)
            .unwrap();
        assert!(v.scalar().unwrap().is_nan());
        let nan_p = [0.1f32, f32::NAN, 0.3, 0.4, 0.5, 0.6];
        let v = engine
            .loss(
                &Loss::CrossEntropy,
                &LossInput::classes(&nan_p, 3, &[0, 1]),
                Reduction::None,
            )
            .unwrap();
        let v = v.per_sample().unwrap();
        assert!(v[0].is_nan() && v[1].is_finite());
    }
}

#[test]
fn regularised_objective_adds_the_penalty() {
    let mut rng = rng("objective");
    let p = data(&mut rng, 1000);
    let t = data(&mut rng, 1000);
    let theta = data(&mut rng, 4097);
    let risk = cpu::loss_scalar(&Loss::Mse, &LossInput::new(&p, &t), Reduction::Mean).unwrap();
    let l1: f64 = theta.iter().map(|v| v.abs() as f64).sum();
    let l2: f64 = theta.iter().map(|v| (*v as f64).powi(2)).sum();
    for engine in [Some(&Engine::cpu()), gpu()].into_iter().flatten() {
        let obj = |r| {
            engine
                .objective(
                    &Loss::Mse,
                    &LossInput::new(&p, &t),
                    Reduction::Mean,
                    &theta,
                    r,
                )
                .unwrap()
        };
        assert_scalar_close(
            "L1",
            obj(Regularizer::L1(0.01)),
            risk + 0.01f32 as f64 * l1,
            1e-5,
        );
        assert_scalar_close("L2", obj(Regularizer::L2(0.5)), risk + 0.5 * l2, 1e-5);
        assert_err(
            engine.objective(
                &Loss::Mse,
                &LossInput::new(&p, &t),
                Reduction::Mean,
                &theta,
                Regularizer::L2(-1.0),
            ),
            "λ must be finite and >= 0",
        );
    }
}

#[test]
fn cpu_engine_is_the_reference() {
    let engine = Engine::cpu();
    let p = [0.5f32, 2.0, -1.0];
    let t = [1.0f32, 1.5, -2.0];
    let mse = engine
        .loss(&Loss::Mse, &LossInput::new(&p, &t), Reduction::Mean)
        .unwrap();
    assert!((mse.scalar().unwrap() - 0.5).abs() < 1e-12);
    let g = engine
        .loss_grad(&Loss::Mse, &LossInput::new(&p, &t), Reduction::Sum)
        .unwrap();
    assert_eq!(g, vec![-1.0, 1.0, 2.0]);
    assert!(matches!(LossInput::new(&p, &t).target, Target::Values(_)));
}

/// The mean of mse, huber, log-cosh and bce-logits against f64 within 1e-5
/// relative, on data of f32 values and targets in [0, 1].
fn means_match_reference(engine: &Engine, label: &str, p: &[f32], t: &[f32], t01: &[f32]) {
    for (loss, input) in [
        (Loss::Mse, LossInput::new(p, t)),
        (Loss::Huber { delta: 1.0 }, LossInput::new(p, t)),
        (Loss::LogCosh, LossInput::new(p, t)),
        (Loss::BceLogits, LossInput::new(p, t01)),
    ] {
        let got = engine.loss(&loss, &input, Reduction::Mean).unwrap();
        let want = cpu::loss_scalar(&loss, &input, Reduction::Mean).unwrap();
        let what = format!("{label} {}", loss.name());
        assert_scalar_close(&what, got.scalar().unwrap(), want, 1e-5);
    }
}

/// The CPU backend's f32 lanes summed in runs of 1024 and combined in f64
/// keep 1e-5 relative at 10^8 values.
#[test]
#[ignore]
fn cpu_backend_accuracy_at_a_hundred_million() {
    let mut rng = rng("1e8");
    let n = 100_000_000;
    let p = data(&mut rng, n);
    let t = data(&mut rng, n);
    let t01: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
    means_match_reference(&Engine::cpu(), "cpu n=1e8", &p, &t, &t01);
}

/// SPEC §5 at scale: relative error ≤ 1e-5 against f64 at n = 10^7, and
/// lengths past 65535 workgroups × 256. Slow in debug builds, so .ci/run
/// runs it in release.
#[test]
#[ignore]
fn accuracy_at_ten_million() {
    let Some(engine) = gpu() else { return };
    let mut rng = rng("1e7");
    let n = 10_000_000;
    let p = data(&mut rng, n);
    let t = data(&mut rng, n);
    let t01: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
    means_match_reference(engine, "n=1e7", &p, &t, &t01);
    let classes: Vec<u32> = (0..n / 10).map(|_| rng.random_range(0..10)).collect();
    let input = LossInput::classes(&p, 10, &classes);
    let got = engine
        .loss(&Loss::CrossEntropy, &input, Reduction::Mean)
        .unwrap()
        .scalar()
        .unwrap();
    let want = cpu::loss_scalar(&Loss::CrossEntropy, &input, Reduction::Mean).unwrap();
    assert_scalar_close("cross-entropy 1e6×10", got, want, 1e-5);
    // 2^24 + 3 elements: past 65535 × 256 invocations.
    let n = (1 << 24) + 3;
    let p: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 * 0.01).collect();
    let t = vec![0.5f32; n];
    let got = engine
        .loss(&Loss::Mse, &LossInput::new(&p, &t), Reduction::Mean)
        .unwrap()
        .scalar()
        .unwrap();
    let want = cpu::loss_scalar(&Loss::Mse, &LossInput::new(&p, &t), Reduction::Mean).unwrap();
    assert_scalar_close("mse 2^24+3", got, want, 1e-5);
    let g = engine
        .loss_grad(&Loss::Mse, &LossInput::new(&p, &t), Reduction::Sum)
        .unwrap();
    assert!(g
        .iter()
        .enumerate()
        .step_by(4099)
        .all(|(i, &v)| (v as f64 - 2.0 * (p[i] as f64 - 0.5)).abs() < 1e-5));
}

#[test]
fn the_parallel_cpu_backend_gives_the_references_numbers() {
    // The f32 SIMD loops of the common pointwise losses, and the f64 ones of
    // the rest, against the reference with the GPU's tolerances, at every
    // length, with the extremes, weights, every reduction and gradient.
    let engine = Engine::cpu();
    check_pointwise(&engine, "cpu backend", &[1, 7, 255, 257, 65_537, 1_000_003]);
    check_rows(
        &engine,
        "cpu backend rows",
        // Rows shorter than 32 go 16 at a time, transposed; longer ones
        // one by one.
        &[(7, 3), (65_537, 10), (257, 31), (33, 32), (3, 100_000)],
    );
    // The same bits run to run (block sums in block order, lane sums in
    // lane order), whatever the thread count.
    let mut rng = rng("cpu backend");
    for loss in pointwise() {
        let (p, t) = pointwise_data(&loss, &mut rng, 1_000_003);
        let w = weights(&mut rng, 1_000_003);
        let input = LossInput::new(&p, &t).with_weights(&w);
        let a = engine.loss(&loss, &input, Reduction::Mean).unwrap();
        let b = std::thread::spawn({
            let (p, t, w) = (p.clone(), t.clone(), w.clone());
            move || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let input = LossInput::new(&p, &t).with_weights(&w);
                    Engine::cpu().loss(&loss, &input, Reduction::Mean).unwrap()
                })
            }
        })
        .join()
        .unwrap();
        let (a, b) = (a.scalar().unwrap(), b.scalar().unwrap());
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "{}: {a} vs {b} on one thread",
            loss.name()
        );
    }
    let logits = data(&mut rng, 50_000 * 7);
    let classes: Vec<u32> = (0..50_000).map(|_| rng.random_range(0..7)).collect();
    let input = LossInput::classes(&logits, 7, &classes);
    let got = engine
        .loss(&Loss::CrossEntropy, &input, Reduction::Sum)
        .unwrap()
        .scalar()
        .unwrap();
    assert_scalar_close(
        "ce",
        got,
        cpu::loss_scalar(&Loss::CrossEntropy, &input, Reduction::Sum).unwrap(),
        1e-5,
    );
    // The same bits whatever the thread count: block sums in block order.
    let again = engine
        .loss(&Loss::CrossEntropy, &input, Reduction::Sum)
        .unwrap()
        .scalar()
        .unwrap();
    assert_eq!(got.to_bits(), again.to_bits());
}

#[test]
fn a_batch_gives_each_losss_own_value() {
    let mut rng = rng("batch");
    let cpu_engine = Engine::cpu();
    let lens = |k: usize| [1, 7, 255, 257, 1024, 1100, 5000][k % 7] + k % 3;
    // Regression losses, and the exponential loss (its own reduction form).
    let mut kinds: Vec<Loss> = pointwise()[7..].to_vec();
    kinds.push(Loss::Exponential);
    let kind = |k: usize| kinds[k % kinds.len()];
    let preds: Vec<Vec<f32>> = (0..64).map(|k| data(&mut rng, lens(k))).collect();
    let targets: Vec<Vec<f32>> = (0..64)
        .map(|k| match kind(k) {
            Loss::Exponential => (0..lens(k)).map(|i| [1.0, -1.0][i % 2]).collect(),
            _ => data(&mut rng, lens(k)),
        })
        .collect();
    let weights: Vec<Vec<f32>> = (0..64)
        .map(|k| (0..lens(k)).map(|_| rng.random_range(0.0..2.0)).collect())
        .collect();
    let logits = data(&mut rng, 300);
    let classes: Vec<u32> = (0..30).map(|_| rng.random_range(0..10)).collect();
    let mut items: Vec<(Loss, LossInput)> = (0..64)
        .map(|k| {
            let input = LossInput::new(&preds[k], &targets[k]);
            let input = match k % 5 {
                0 => input.with_weights(&weights[k]),
                _ => input,
            };
            (kind(k), input)
        })
        .collect();
    items.push((
        Loss::CrossEntropy,
        LossInput::classes(&logits, 10, &classes),
    ));
    let engines = [gpu(), gpu_small(), Some(&cpu_engine)];
    for engine in engines.into_iter().flatten() {
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            // rmse is defined for the mean only.
            let these: Vec<(Loss, LossInput)> = items
                .iter()
                .filter(|(l, _)| reduction == Reduction::Mean || *l != Loss::Rmse)
                .cloned()
                .collect();
            let got = engine.loss_batch(&these, reduction).unwrap();
            assert_eq!(got.len(), these.len());
            for ((loss, input), v) in these.iter().zip(&got) {
                let alone = engine.loss(loss, input, reduction).unwrap();
                let bits = |v: &LossValue| -> Vec<u64> {
                    match v {
                        LossValue::Scalar(x) => vec![x.to_bits()],
                        LossValue::PerSample(x) => x.iter().map(|x| x.to_bits() as u64).collect(),
                    }
                };
                assert_eq!(
                    bits(v),
                    bits(&alone),
                    "{} n={} {reduction:?}",
                    loss.name(),
                    input.pred.len()
                );
            }
        }
        // One bad input fails the batch with its own message.
        let bad_t = [0.5f32, 1.0];
        let mut bad = vec![(Loss::Mse, LossInput::new(&preds[0], &targets[0]))];
        bad.push((Loss::Hinge, LossInput::new(&preds[1][..2], &bad_t)));
        let e = engine
            .loss_batch(&bad, Reduction::Mean)
            .unwrap_err()
            .to_string();
        assert!(e.contains("target[0]"), "{e}");
    }
}

/// Past 2^17 values in all the CPU spreads a batch over its cores, one
/// loss per task: the same bits as each loss alone, and the first bad
/// item (in item order) names the error.
#[test]
fn a_large_batch_on_the_cpu_matches_its_losses_alone() {
    let mut rng = rng("large batch");
    let engine = Engine::cpu();
    let preds: Vec<Vec<f32>> = (0..6).map(|k| data(&mut rng, 65537 + k)).collect();
    let targets: Vec<Vec<f32>> = (0..6).map(|k| data(&mut rng, 65537 + k)).collect();
    let kinds = [Loss::Mse, Loss::Huber { delta: 1.0 }, Loss::LogCosh];
    let items: Vec<(Loss, LossInput)> = (0..6)
        .map(|k| (kinds[k % 3], LossInput::new(&preds[k], &targets[k])))
        .collect();
    let got = engine.loss_batch(&items, Reduction::Mean).unwrap();
    for ((loss, input), v) in items.iter().zip(&got) {
        let alone = engine.loss(loss, input, Reduction::Mean).unwrap();
        assert_eq!(
            v.scalar().unwrap().to_bits(),
            alone.scalar().unwrap().to_bits()
        );
    }
    let unit = vec![2.0f32; 65537];
    let mut bad = items.clone();
    bad.insert(2, (Loss::Hinge, LossInput::new(&preds[0], &unit)));
    bad.push((Loss::Bce, LossInput::new(&unit, &targets[0])));
    let e = engine
        .loss_batch(&bad, Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(e.contains("hinge") && e.contains("target[0]"), "{e}");
}

#[test]
fn a_zero_weight_does_not_hide_a_nan_on_the_cpu_backend() {
    // 0·l removes a sample whose loss is infinite, but a NaN still
    // propagates, as in the reference and the GPU (f32 loops and row loops).
    let engine = Engine::cpu();
    let (p, t, w) = ([f32::NAN, 1.0, 2.0], [0.5f32, 1.0, 1.0], [0.0f32, 1.0, 1.0]);
    let input = LossInput::new(&p, &t).with_weights(&w);
    for loss in [Loss::Mse, Loss::Huber { delta: 1.0 }, Loss::BceLogits] {
        let got = engine.loss(&loss, &input, Reduction::Mean).unwrap();
        assert!(got.scalar().unwrap().is_nan(), "{}", loss.name());
        let g = engine.loss_grad(&loss, &input, Reduction::Sum).unwrap();
        assert!(g[0].is_nan(), "{} grad", loss.name());
    }
    let logits = [f32::NAN, 0.0, 1.0, 2.0, 3.0, 4.0];
    let input = LossInput::classes(&logits, 3, &[0, 1]).with_weights(&[0.0, 1.0]);
    let got = engine
        .loss(&Loss::CrossEntropy, &input, Reduction::Sum)
        .unwrap();
    assert!(got.scalar().unwrap().is_nan());
    let g = engine
        .loss_grad(&Loss::CrossEntropy, &input, Reduction::Sum)
        .unwrap();
    assert!(g[..3].iter().all(|v| v.is_nan()) && g[3..].iter().all(|v| v.is_finite()));
}

/// Row kernels flag rows (n·m may pass 2^32), yet the error names the first
/// offending element of the first flagged row and its value: on host
/// slices and resident tensors, f32 and bf16, one offender or two in a row.
#[test]
fn row_errors_name_the_first_offending_element() {
    let (rows, cols) = (9, 5);
    let mut p = vec![0.2f32; rows * cols];
    (p[3 * cols + 3], p[3 * cols + 4], p[6 * cols]) = (1.5, 2.5, -1.0);
    let t = vec![0.2f32; rows * cols];
    let mut t_bad = t.clone();
    (t_bad[4 * cols + 2], t_bad[7 * cols + 1]) = (3.0, -2.0);
    let half = |v: &[f32]| {
        v.iter()
            .map(|&x| lossgpu::bf16::from_f32(x))
            .collect::<Vec<_>>()
    };
    let (p16, t16, t_bad16) = (half(&p), half(&t), half(&t_bad));
    let cpu = Engine::cpu();
    for engine in [Some(&cpu), gpu(), gpu_small()].into_iter().flatten() {
        let kl = Loss::KlDiv;
        for reduction in [Reduction::Sum, Reduction::None] {
            let input = LossInput::rows(&p, cols, &t);
            assert_err(engine.loss(&kl, &input, reduction), "pred[18] = 1.5");
            let input = LossInput::rows(&t, cols, &t_bad);
            assert_err(engine.loss(&kl, &input, reduction), "target[22] = 3");
            let input = LossInput::rows(&p16, cols, &t16);
            assert_err(engine.loss_grad(&kl, &input, reduction), "pred[18] = 1.5");
            let input = LossInput::rows(&t16, cols, &t_bad16);
            assert_err(engine.loss_grad(&kl, &input, reduction), "target[22] = 3");
        }
        let (pt, tt) = (
            engine.upload_rows(&p16, cols).unwrap(),
            engine.upload_rows(&t16, cols).unwrap(),
        );
        let bad_t = engine.upload_rows(&t_bad16, cols).unwrap();
        assert_err(
            engine.loss_tensor(&kl, &pt, &tt, Reduction::Sum),
            "pred[18] = 1.5",
        );
        assert_err(
            engine.loss_tensor(&kl, &tt, &bad_t, Reduction::Mean),
            "target[22] = 3",
        );
        let (pt, tt) = (
            engine.upload_rows(&p, cols).unwrap(),
            engine.upload_rows(&t, cols).unwrap(),
        );
        assert_err(
            engine.loss_grad_tensor(&kl, &pt, &tt, Reduction::Sum),
            "pred[18] = 1.5",
        );
    }
}
