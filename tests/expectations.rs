//! Expectations that share no code with the library: reductions worked out
//! by hand (so a bug in the step from sums to mean / sum / √mean, which every
//! backend and the reference share, cannot pass), and log-cosh from f64's
//! own `cosh` where it is representable.

mod common;

use common::{agrees, gpu, gpu_narrow, gpu_small};
use lossgpu::{cpu, Engine, Loss, LossInput, LossValue, Reduction};

fn engines(cpu: &Engine) -> Vec<&Engine> {
    [Some(cpu), gpu(), gpu_small(), gpu_narrow()]
        .into_iter()
        .flatten()
        .collect()
}

/// Within 1e-6 relative: the hand values are small integers and their
/// quotients, which f32 holds to about 6e-8.
fn close(what: &str, got: &[f32], want: &[f64]) {
    close_within(what, got, want, 1e-6, 1e-7);
}

fn close_within(what: &str, got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(agrees(g, w, rtol, atol), "{what}[{i}]: {g} vs {w}");
    }
}

fn scalar(what: &str, got: LossValue, want: f64) {
    let got = got
        .scalar()
        .unwrap_or_else(|| panic!("{what}: not a scalar"));
    assert!(
        (got - want).abs() <= 1e-6 * want.abs(),
        "{what}: {got} vs {want}"
    );
}

#[test]
fn pointwise_reductions_are_the_hand_computed_values() {
    // e = t − p = −p; squared errors 1, 4, 9, 16.
    let p = [1.0f32, 2.0, 3.0, 4.0];
    let t = [0.0f32; 4];
    let w = [1.0f32, 2.0, 1.0, 0.0];
    let cpu_engine = Engine::cpu();
    for engine in engines(&cpu_engine) {
        let at = engine.device_name();
        let plain = LossInput::new(&p, &t);
        let weighted = plain.with_weights(&w);
        let value = |loss: &Loss, input: &LossInput, r| engine.loss(loss, input, r).unwrap();
        let grad = |loss: &Loss, input: &LossInput, r| engine.loss_grad(loss, input, r).unwrap();

        // mse: Σl = 30 over 4 samples; Σwl = 1 + 8 + 9 + 0 = 18 over Σw = 4.
        scalar(&at, value(&Loss::Mse, &plain, Reduction::Sum), 30.0);
        scalar(&at, value(&Loss::Mse, &plain, Reduction::Mean), 7.5);
        scalar(&at, value(&Loss::Mse, &weighted, Reduction::Sum), 18.0);
        scalar(&at, value(&Loss::Mse, &weighted, Reduction::Mean), 4.5);
        let none = value(&Loss::Mse, &weighted, Reduction::None);
        close(&at, none.per_sample().unwrap(), &[1.0, 8.0, 9.0, 0.0]);
        // d/dp of 2-weighted e²: 2w(p − t), divided by Σw for the mean.
        let g = grad(&Loss::Mse, &plain, Reduction::Mean);
        close(&at, &g, &[0.5, 1.0, 1.5, 2.0]);
        let g = grad(&Loss::Mse, &weighted, Reduction::Mean);
        close(&at, &g, &[0.5, 2.0, 1.5, 0.0]);
        let g = grad(&Loss::Mse, &weighted, Reduction::Sum);
        close(&at, &g, &[2.0, 8.0, 6.0, 0.0]);
        let g = grad(&Loss::Mse, &weighted, Reduction::None);
        close(&at, &g, &[2.0, 8.0, 6.0, 0.0]);

        // rmse = √(Σwe²/Σw); its gradient w·p/(Σw·rmse).
        let (r_plain, r_weighted) = (7.5f64.sqrt(), 4.5f64.sqrt());
        scalar(&at, value(&Loss::Rmse, &plain, Reduction::Mean), r_plain);
        scalar(
            &at,
            value(&Loss::Rmse, &weighted, Reduction::Mean),
            r_weighted,
        );
        let g = grad(&Loss::Rmse, &plain, Reduction::Mean);
        let want: Vec<f64> = p.iter().map(|&v| v as f64 / (4.0 * r_plain)).collect();
        close(&at, &g, &want);
        let g = grad(&Loss::Rmse, &weighted, Reduction::Mean);
        let want: Vec<f64> = (0..4)
            .map(|i| (w[i] * p[i]) as f64 / (4.0 * r_weighted))
            .collect();
        close(&at, &g, &want);

        // mae: Σ|e| = 10; weighted 1 + 4 + 3 + 0 = 8; gradient w·sign(p − t)/Σw.
        scalar(&at, value(&Loss::Mae, &plain, Reduction::Mean), 2.5);
        scalar(&at, value(&Loss::Mae, &weighted, Reduction::Mean), 2.0);
        let g = grad(&Loss::Mae, &weighted, Reduction::Mean);
        close(&at, &g, &[0.25, 0.5, 0.25, 0.0]);

        // Zero total weight has no mean, on every backend.
        let zero = plain.with_weights(&[0.0; 4]);
        let e = engine.loss(&Loss::Mse, &zero, Reduction::Mean).unwrap_err();
        assert!(e.to_string().contains("weights sum to 0"), "{at}: {e}");
    }
}

#[test]
fn row_reductions_count_rows_not_values() {
    // Row 0: logits (0, 0), class 0: ln 2. Row 1: (ln 3, 0), class 0:
    // ln(3 + 1) − ln 3 = ln(4/3).
    let logits = [0.0f32, 0.0, 3f32.ln(), 0.0];
    let classes = [0u32, 0];
    let (l0, l1) = (2f64.ln(), (4.0f64 / 3.0).ln());
    let cpu_engine = Engine::cpu();
    for engine in engines(&cpu_engine) {
        let at = engine.device_name();
        let plain = LossInput::classes(&logits, 2, &classes);
        let weighted = plain.with_weights(&[1.0, 3.0]);
        let ce = |input: &LossInput, r| engine.loss(&Loss::CrossEntropy, input, r).unwrap();
        scalar(&at, ce(&plain, Reduction::Sum), l0 + l1);
        scalar(&at, ce(&plain, Reduction::Mean), (l0 + l1) / 2.0);
        scalar(&at, ce(&weighted, Reduction::Sum), l0 + 3.0 * l1);
        scalar(&at, ce(&weighted, Reduction::Mean), (l0 + 3.0 * l1) / 4.0);
        // softmax − onehot, times w/Σw: row 0 (½ − 1, ½)·¼, row 1 (¾ − 1, ¼)·¾.
        let g = engine
            .loss_grad(&Loss::CrossEntropy, &weighted, Reduction::Mean)
            .unwrap();
        close(&at, &g, &[-0.125, 0.125, -0.1875, 0.1875]);
    }
}

#[test]
fn log_cosh_is_log_of_cosh() {
    // ln cosh e = log1p(cosh e − 1) = log1p(2 sinh²(e/2)), exact in f64 to
    // a few ULP wherever sinh does not overflow; far out, cosh e = e^|e|/2
    // to f64 precision. The library computes |e| + softplus(−2|e|) − ln 2.
    let mut p = Vec::new();
    let mut t = Vec::new();
    let mut want = Vec::new();
    for k in -60i32..=60 {
        let e = 1.19f64.powi(k.abs()) * 1e-2 * if k < 0 { -1.0 } else { 1.0 };
        let e32 = e as f32;
        p.push(0.0f32);
        t.push(e32);
        want.push((2.0 * (e32 as f64 / 2.0).sinh().powi(2)).ln_1p());
    }
    for e in [1e3f32, -2e4, 1e30] {
        p.push(0.0);
        t.push(e);
        want.push((e as f64).abs() - 2f64.ln());
    }
    // Literal values (from an independent evaluation of ln cosh).
    for (e, v) in [
        (1.0f32, 0.433_780_830_483_027_1),
        (-3.0, 2.309_328_504_577_785),
    ] {
        p.push(0.5);
        t.push(e + 0.5);
        want.push(v);
    }
    let input = LossInput::new(&p, &t);
    let reference = cpu::loss_per_sample(&Loss::LogCosh, &input).unwrap();
    for (i, (&r, &w)) in reference.iter().zip(&want).enumerate() {
        assert!(
            (r - w).abs() <= 1e-12 * w.abs(),
            "reference log-cosh at e = {}: {r} vs {w}",
            t[i] - p[i]
        );
    }
    let cpu_engine = Engine::cpu();
    for engine in engines(&cpu_engine) {
        let got = engine
            .loss(&Loss::LogCosh, &input, Reduction::None)
            .unwrap();
        let at = engine.device_name();
        close_within(&at, got.per_sample().unwrap(), &want, 1e-5, 1e-6);
    }
}
