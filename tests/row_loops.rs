//! The CPU backend's f32 row loops for cross-entropy, nll, multi-margin
//! and kl-div's log forms against the f64 reference: odd row counts and
//! widths, every option, ties, ±1e4 and NaN rows, zero targets and −inf
//! log-targets, each reduction's value, the per-row values and the
//! gradient.

mod common;

use common::{assert_all_close_with, assert_scalar_close, rng};
use lossgpu::{cpu, Engine, Loss, LossInput, LossValue, Reduction};
use rand::rngs::StdRng;
use rand::Rng;

/// (rows, m): odd counts, rows shorter and longer than a vector, and a
/// block boundary crossed many times.
const SHAPES: [(usize, usize); 7] = [
    (1, 1),
    (1, 7),
    (7, 3),
    (255, 10),
    (257, 33),
    (6553, 10),
    (9, 1000),
];

/// Engine::cpu() against the reference for one input: mean, sum and none
/// within 1e-5 (scalars) and per value, the gradient of mean and sum.
fn check(label: &str, loss: &Loss, input: &LossInput) {
    check_with(label, loss, input, 1e-7);
}

/// [`check`] with the gradient within `atol` besides rtol 1e-5.
fn check_with(label: &str, loss: &Loss, input: &LossInput, atol: f64) {
    let engine = Engine::cpu();
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let at = format!("{label} {}", reduction.name());
        let want = cpu::loss_scalar(loss, input, reduction).unwrap();
        let got = engine.loss(loss, input, reduction).unwrap();
        assert_scalar_close(&at, got.scalar().unwrap(), want, 1e-5);
        let want = cpu::loss_grad(loss, input, reduction).unwrap();
        let got = engine.loss_grad(loss, input, reduction).unwrap();
        assert_all_close_with(&format!("{at} grad"), &got, &want, |_| (1e-5, atol));
    }
    let want = cpu::loss_per_sample(loss, input).unwrap();
    match engine.loss(loss, input, Reduction::None).unwrap() {
        LossValue::PerSample(got) => {
            assert_all_close_with(&format!("{label} none"), &got, &want, |_| (1e-5, 1e-6))
        }
        other => panic!("{label}: {other:?}"),
    }
}

/// Scores in ±8 with ±1e4, 0 and −0 scattered in.
fn scores(rng: &mut StdRng, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|_| rng.random_range(-8.0..8.0)).collect();
    for (k, &e) in [1e4f32, -1e4, 0.0, -0.0].iter().enumerate() {
        v[(k * 7919) % n] = e;
    }
    v
}

fn classes(rng: &mut StdRng, rows: usize, m: usize) -> Vec<u32> {
    (0..rows).map(|_| rng.random_range(0..m as u32)).collect()
}

#[test]
fn nll_with_weights_and_an_ignored_class() {
    let mut rng = rng("nll rows");
    for (rows, m) in SHAPES {
        // Log-probabilities: ≤ 0, with −1e4 and 0.
        let x: Vec<f32> = scores(&mut rng, rows * m)
            .iter()
            .map(|v| -v.abs())
            .collect();
        let c = classes(&mut rng, rows, m);
        let cw: Vec<f32> = (0..m).map(|k| [0.0, 0.5, 2.0][k % 3]).collect();
        let label = format!("nll {rows}x{m}");
        check(&label, &Loss::Nll, &LossInput::classes(&x, m, &c));
        check(
            &label,
            &Loss::Nll,
            &LossInput::classes(&x, m, &c).with_class_weights(&cw),
        );
        // The ignored class, and a NaN in an ignored row, leave no trace.
        let mut x = x;
        if let Some(i) = c.iter().position(|&k| k == 0) {
            x[i * m] = f32::NAN;
        }
        let input = LossInput::classes(&x, m, &c).with_ignore_index(0);
        check(&format!("{label} ignore 0"), &Loss::Nll, &input);
        check(
            &format!("{label} ignore 0, weights"),
            &Loss::Nll,
            &input.with_class_weights(&cw),
        );
    }
}

#[test]
fn multi_margin_at_both_powers_with_margins_and_weights() {
    let mut rng = rng("multi-margin rows");
    for (rows, m) in SHAPES {
        let x = scores(&mut rng, rows * m);
        let c = classes(&mut rng, rows, m);
        let cw: Vec<f32> = (0..m).map(|k| [1.5, 0.0, 0.25][k % 3]).collect();
        for (margin, power) in [(1.0, 1), (1.0, 2), (0.5, 1), (0.0, 2), (3.0, 2)] {
            let loss = Loss::MultiMargin { margin, power };
            let label = format!("multi-margin M={margin} P={power} {rows}x{m}");
            check(&label, &loss, &LossInput::classes(&x, m, &c));
            check(
                &label,
                &loss,
                &LossInput::classes(&x, m, &c).with_class_weights(&cw),
            );
        }
        // A NaN score makes its row's loss and gradient NaN.
        let mut x = x;
        x[(rows / 2) * m + m / 2] = f32::NAN;
        check(
            &format!("multi-margin NaN {rows}x{m}"),
            &Loss::MultiMargin {
                margin: 1.0,
                power: 2,
            },
            &LossInput::classes(&x, m, &c),
        );
    }
}

#[test]
fn kl_div_in_every_log_form() {
    let mut rng = rng("kl rows");
    for (rows, m) in SHAPES {
        let n = rows * m;
        // Probabilities with exact zeros and ones; their logs (−inf at 0).
        let mut p: Vec<f32> = (0..n).map(|_| rng.random_range(1e-6f32..1.0)).collect();
        let mut t: Vec<f32> = (0..n).map(|_| rng.random_range(0.0f32..1.0)).collect();
        for i in (0..n).step_by(5) {
            t[i] = 0.0;
        }
        t[n - 1] = 1.0;
        p[n / 2] = 1.0;
        let log = |v: &[f32]| -> Vec<f32> { v.iter().map(|x| x.ln()).collect() };
        let (lp, lt) = (log(&p), log(&t));
        for (li, lti) in [(false, false), (true, false), (false, true), (true, true)] {
            let (q, y) = (if li { &lp } else { &p }, if lti { &lt } else { &t });
            let mut input = LossInput::rows(q, m, y);
            if li {
                input = input.with_log_input();
            }
            if lti {
                input = input.with_log_target();
            }
            let label = format!("kl-div log_input={li} log_target={lti} {rows}x{m}");
            check(&label, &Loss::KlDiv, &input);
            let w: Vec<f32> = (0..rows).map(|i| [1.0, 0.0, 2.5][i % 3]).collect();
            check(
                &format!("{label} weighted"),
                &Loss::KlDiv,
                &input.with_weights(&w),
            );
        }
        // A NaN prediction where t = 0 and where t > 0.
        let mut q = lp.clone();
        q[0] = f32::NAN;
        q[n - 1] = f32::NAN;
        let input = LossInput::rows(&q, m, &lt)
            .with_log_input()
            .with_log_target();
        check(&format!("kl-div NaN {rows}x{m}"), &Loss::KlDiv, &input);
    }
}

#[test]
fn zero_one_takes_the_first_maximum_and_keeps_nan() {
    let mut rng = rng("zero-one rows");
    for (rows, m) in SHAPES {
        // Scores on a coarse grid, so rows hold ties, and ±0 (a tie too).
        let mut x: Vec<f32> = (0..rows * m)
            .map(|_| rng.random_range(-3..=3) as f32)
            .collect();
        for (k, &e) in [1e4f32, -1e4, 0.0, -0.0].iter().enumerate() {
            x[(k * 7919) % (rows * m)] = e;
        }
        let c = classes(&mut rng, rows, m);
        let label = format!("zero-one {rows}x{m}");
        check(&label, &Loss::ZeroOne, &LossInput::classes(&x, m, &c));
        x[(rows / 2) * m] = f32::NAN;
        check(
            &format!("{label} NaN"),
            &Loss::ZeroOne,
            &LossInput::classes(&x, m, &c),
        );
    }
}

#[test]
fn cross_entropy_with_every_option_ties_confident_rows_and_nan() {
    let mut rng = rng("cross-entropy rows");
    for (rows, m) in SHAPES {
        let n = rows * m;
        // A coarse grid, so rows tie at their maximum (±0 ties too), then
        // ±1e4 (rows sure of one class) and a row of one repeated value.
        let mut x: Vec<f32> = (0..n).map(|_| rng.random_range(-4..=4) as f32).collect();
        for (k, &e) in [1e4f32, -1e4, 0.0, -0.0].iter().enumerate() {
            x[(k * 7919) % n] = e;
        }
        x[(rows - 1) * m..].fill(2.5);
        let c = classes(&mut rng, rows, m);
        let t: Vec<f32> = (0..n).map(|i| [0.0, 0.25, 0.75][i % 3]).collect();
        let w: Vec<f32> = (0..rows).map(|i| [1.0, 0.0, 2.5][i % 3]).collect();
        let label = format!("cross-entropy {rows}x{m}");
        // A NaN logit makes its row's loss and gradient NaN (but where
        // every coefficient is 0, or in an ignored row).
        for nan in [false, true] {
            if nan {
                x[(rows / 2) * m + m / 2] = f32::NAN;
            }
            let cw: Vec<f32> = (0..m).map(|k| [0.5, 0.0, 2.0][k % 3]).collect();
            let classes = LossInput::classes(&x, m, &c);
            let probabilities = LossInput::rows(&x, m, &t);
            for (what, input) in [
                ("classes", classes),
                ("probabilities", probabilities),
                ("class weights", classes.with_class_weights(&cw)),
                ("smoothing", classes.with_label_smoothing(0.1)),
                ("z-loss", classes.with_z_loss(1e-3)),
                ("ignore", classes.with_ignore_index(c[rows / 2] as i64)),
                (
                    "all options",
                    classes
                        .with_class_weights(&cw)
                        .with_label_smoothing(0.2)
                        .with_z_loss(1e-4)
                        .with_ignore_index(0),
                ),
                (
                    "probabilities with options",
                    probabilities
                        .with_class_weights(&cw)
                        .with_label_smoothing(0.1),
                ),
            ] {
                // softmax·(Σc + 2λκ·lse) − cⱼ cancels where the two are
                // close: within 1e-6, as tests/class_options.rs.
                let label = format!("{label} {what} NaN={nan}");
                check_with(&label, &Loss::CrossEntropy, &input, 1e-6);
                let weighted = input.with_weights(&w);
                check_with(
                    &format!("{label} weighted"),
                    &Loss::CrossEntropy,
                    &weighted,
                    1e-6,
                );
            }
        }
    }
}
