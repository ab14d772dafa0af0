//! Property tests (proptest) over arbitrary lengths and finite values:
//! the GPU and the CPU backend agree with the f64 reference within SPEC §5
//! for every pointwise loss and every activation; losses that are
//! non-negative stay so on both; gradients (reference and GPU) match central finite differences of
//! the reference loss in f64 away from kinks.
//!
//! Case counts are modest (the adapter may be lavapipe, in a debug build);
//! a failing case is shrunk briefly, printed, and its seed saved in
//! `tests/properties.proptest-regressions` (commit it), so every later run
//! tries it first.

mod common;

use common::{assert_all_close_with, assert_scalar_close, exp_arg, exp_rtol, gpu};
use lossgpu::{cpu, Activation, Engine, Loss, LossInput, LossValue, Pass, Reduction};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, FileFailurePersistence};

fn config(cases: u32) -> Config {
    Config {
        cases,
        max_shrink_iters: 32,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// The CPU backend (its f32 SIMD loops) and the GPU, when there is one.
fn engines() -> Vec<&'static Engine> {
    static CPU: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    let cpu = CPU.get_or_init(Engine::cpu);
    [Some(cpu), gpu()].into_iter().flatten().collect()
}

/// Values every test should meet.
static EXTREMES: [f32; 8] = [0.0, -0.0, 1e-6, -1e-6, 88.0, -88.0, 1.0, -1.0];

/// Probabilities and soft labels at and near the ends of [0, 1].
static UNIT_EDGES: [f32; 6] = [0.0, 1.0, 1e-30, 1.0 - 1e-7, 1e-45, 0.5];

/// A finite value: uniform in [−scale, scale], or one of the extremes.
fn value(scale: f32) -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => (-1.0f32..=1.0).prop_map(move |u| u * scale),
        2 => select(&EXTREMES[..]),
    ]
}

fn unit() -> impl Strategy<Value = f32> {
    prop_oneof![6 => 0.0f32..=1.0, 1 => select(&UNIT_EDGES[..])]
}

fn weight() -> impl Strategy<Value = f32> {
    prop_oneof![5 => 0.0f32..=3.0, 1 => Just(0.0f32)]
}

/// Raw material for every pointwise loss at one length: `p` and `x` are
/// values, `u` and `v` in [0, 1], `w` weights in [0, 3].
#[derive(Debug, Clone)]
struct Case {
    p: Vec<f32>,
    x: Vec<f32>,
    u: Vec<f32>,
    v: Vec<f32>,
    w: Vec<f32>,
    delta: f32,
    gamma: f32,
}

/// Lengths in `lengths`; one scale per case (1e4 reaches SPEC's extremes,
/// 100 keeps the exponential loss finite in f64 but past f32, 5 is typical).
fn case(lengths: std::ops::Range<usize>, scales: &'static [f32]) -> impl Strategy<Value = Case> {
    (lengths, select(scales), 0.01f32..10.0, 0.01f32..0.99).prop_flat_map(
        |(n, scale, delta, gamma)| {
            (
                vec(value(scale), n),
                vec(value(scale), n),
                vec(unit(), n),
                vec(unit(), n),
                vec(weight(), n),
            )
                .prop_map(move |(p, x, u, v, mut w)| {
                    if w.iter().all(|&v| v == 0.0) {
                        w[0] = 1.0;
                    }
                    Case {
                        p,
                        x,
                        u,
                        v,
                        w,
                        delta,
                        gamma,
                    }
                })
        },
    )
}

/// Every pointwise loss of [`Loss::ALL`], parametrised by the case.
fn pointwise_losses(c: &Case) -> Vec<Loss> {
    Loss::ALL
        .iter()
        .filter(|l| l.is_pointwise())
        .map(|&l| match l {
            Loss::Huber { .. } => Loss::Huber { delta: c.delta },
            Loss::Quantile { .. } => Loss::Quantile { gamma: c.gamma },
            Loss::SmoothL1 { .. } => Loss::SmoothL1 { beta: c.delta },
            other => other,
        })
        .collect()
}

/// (pred, target) in the loss's domain: ±1 labels for classification,
/// soft labels in [0, 1] for bce-logits and bce, probabilities for bce's
/// prediction, real targets (some equal to the prediction) for regression;
/// exact margins t·p = 1 for hinge and squared-hinge.
fn loss_data(loss: &Loss, c: &Case) -> (Vec<f32>, Vec<f32>) {
    let signs = || -> Vec<f32> {
        c.u.iter()
            .map(|&u| if u < 0.5 { -1.0 } else { 1.0 })
            .collect()
    };
    match loss {
        Loss::Hinge | Loss::SquaredHinge => {
            let t = signs();
            let p = (0..t.len())
                .map(|i| if c.v[i] < 0.1 { t[i] } else { c.p[i] })
                .collect();
            (p, t)
        }
        Loss::ZeroOne | Loss::Exponential | Loss::Logistic => (c.p.clone(), signs()),
        Loss::BceLogits => (c.p.clone(), c.u.clone()),
        Loss::Bce => (c.v.clone(), c.u.clone()),
        _ => {
            let t = (0..c.p.len())
                .map(|i| if c.v[i] < 0.1 { c.p[i] } else { c.x[i] })
                .collect();
            (c.p.clone(), t)
        }
    }
}

fn reductions(loss: &Loss) -> &'static [Reduction] {
    if *loss == Loss::Rmse {
        &[Reduction::Mean]
    } else {
        &[Reduction::Mean, Reduction::Sum, Reduction::None]
    }
}

/// Relative tolerance of a reduction: 1e-5, or the weighted mean of the
/// terms' exp tolerances where exp of a large argument dominates.
fn scalar_rtol(loss: &Loss, input: &LossInput, t: &[f32]) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (i, &p) in input.pred.iter().enumerate() {
        let w = input.weights.map_or(1.0, |w| w[i] as f64);
        let l = w * loss.term_f64(p as f64, t[i] as f64).abs();
        if w > 0.0 && l.is_finite() {
            num += l * exp_rtol(exp_arg(loss, p, t[i]));
            den += l;
        }
    }
    if den > 0.0 {
        (num / den).max(1e-5)
    } else {
        1e-5
    }
}

fn check_pointwise(engine: &Engine, c: &Case) {
    for loss in pointwise_losses(c) {
        let (p, t) = loss_data(&loss, c);
        for weights in [None, Some(&c.w[..])] {
            let input = LossInput {
                weights,
                ..LossInput::new(&p, &t)
            };
            for &reduction in reductions(&loss) {
                let what = format!(
                    "{} {} n={} weighted={}",
                    loss.name(),
                    reduction.name(),
                    p.len(),
                    weights.is_some()
                );
                let got = engine
                    .loss(&loss, &input, reduction)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                match got {
                    LossValue::Scalar(v) => {
                        let want = cpu::loss_scalar(&loss, &input, reduction).unwrap();
                        assert_scalar_close(&what, v, want, scalar_rtol(&loss, &input, &t));
                    }
                    LossValue::PerSample(v) => {
                        let want = cpu::loss_per_sample(&loss, &input).unwrap();
                        assert_all_close_with(&what, &v, &want, |i| {
                            (exp_rtol(exp_arg(&loss, p[i], t[i])), 1e-6)
                        });
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn pointwise_losses_agree_with_reference(
        c in case(1..5000, &[1e4, 100.0, 5.0])
    ) {
        for engine in engines() {
        check_pointwise(engine, &c);
        }
    }
}

/// Every activation with parameters drawn for the case.
#[derive(Debug, Clone)]
struct ActCase {
    x: Vec<f32>,
    acts: Vec<Activation>,
}

fn act_case() -> impl Strategy<Value = ActCase> {
    let params = (
        -1.0f32..1.0,
        0.01f32..3.0,
        -3.0f32..3.0,
        (0.0f32..1.0, 0.0f32..1.0),
        any::<bool>(),
        any::<u64>(),
    );
    (1usize..5000, select(&[1e4f32, 100.0, 5.0][..]), params).prop_flat_map(
        |(n, scale, (alpha, elu, beta, (a, b), training, seed))| {
            let acts = vec![
                Activation::Sigmoid,
                Activation::Tanh,
                Activation::Relu,
                Activation::LeakyRelu { alpha },
                Activation::Prelu { alpha },
                Activation::Rrelu {
                    lower: a.min(b),
                    upper: a.max(b),
                    training,
                    seed,
                },
                Activation::Elu { alpha: elu },
                Activation::Swish { beta },
                Activation::Softplus,
            ];
            vec(value(scale), n).prop_map(move |x| ActCase {
                x,
                acts: acts.clone(),
            })
        },
    )
}

/// The exp argument an activation rests on at x.
fn act_exp_arg(act: &Activation, x: f32) -> f32 {
    match *act {
        Activation::Sigmoid | Activation::Softplus | Activation::Elu { .. } => x,
        Activation::Tanh => 2.0 * x.abs().min(20.0),
        Activation::Swish { beta } => beta * x,
        _ => 0.0,
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn activations_agree_with_reference(c in act_case()) {
        for engine in engines() {
        for act in &c.acts {
            for pass in [Pass::Forward, Pass::Derivative] {
                let got = match pass {
                    Pass::Forward => engine.activation(act, &c.x),
                    _ => engine.activation_derivative(act, &c.x),
                }
                .unwrap_or_else(|e| panic!("{act:?} {pass:?}: {e}"));
                let want = cpu::activation(act, pass, &c.x, None);
                assert_all_close_with(
                    &format!("{act:?} {pass:?} n={}", c.x.len()),
                    &got,
                    &want,
                    |i| (exp_rtol(act_exp_arg(act, c.x[i])), 1e-6),
                );
            }
        }
        }
    }
}

fn assert_non_negative(what: &str, v: &LossValue) {
    match v {
        LossValue::Scalar(s) => assert!(*s >= 0.0, "{what}: {s}"),
        LossValue::PerSample(v) => {
            // NaN is neither, so it fails too.
            if let Some(i) = v.iter().position(|x| x.is_nan() || *x < 0.0) {
                panic!("{what}: [{i}] = {}", v[i]);
            }
        }
    }
}

/// n×m rows for the multi-class losses: logits, class indices, and two sets
/// of distributions (rows of non-negative f32 normalised in f64, some exact
/// zeros).
#[derive(Debug, Clone)]
struct RowCase {
    cols: usize,
    logits: Vec<f32>,
    classes: Vec<u32>,
    t: Vec<f32>,
    q: Vec<f32>,
    w: Vec<f32>,
}

fn distributions(raw: &[f32], cols: usize) -> Vec<f32> {
    raw.chunks(cols)
        .flat_map(|row| {
            let s: f64 = row.iter().map(|&v| v as f64).sum();
            row.iter()
                .enumerate()
                .map(move |(j, &v)| {
                    if s == 0.0 {
                        (j == 0) as u8 as f32
                    } else {
                        (v as f64 / s) as f32
                    }
                })
                .collect::<Vec<f32>>()
        })
        .collect()
}

fn row_case() -> impl Strategy<Value = RowCase> {
    (1usize..60, 1usize..60, select(&[1e4f32, 100.0, 5.0][..])).prop_flat_map(
        |(rows, cols, scale)| {
            (
                vec(value(scale), rows * cols),
                vec(any::<u32>(), rows),
                vec(unit(), rows * cols),
                vec(unit(), rows * cols),
                vec(weight(), rows),
            )
                .prop_map(move |(logits, classes, t, q, mut w)| {
                    if w.iter().all(|&v| v == 0.0) {
                        w[0] = 1.0;
                    }
                    RowCase {
                        cols,
                        logits,
                        classes: classes.iter().map(|&c| c % cols as u32).collect(),
                        t: distributions(&t, cols),
                        q: distributions(&q, cols),
                        w,
                    }
                })
        },
    )
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn pointwise_losses_stay_non_negative(c in case(1..5000, &[1e4, 100.0, 5.0])) {
        for engine in engines() {
        for loss in pointwise_losses(&c) {
            let (p, t) = loss_data(&loss, &c);
            for weights in [None, Some(&c.w[..])] {
                let input = LossInput { weights, ..LossInput::new(&p, &t) };
                for &reduction in reductions(&loss) {
                    let what = format!("{} {} weighted={}", loss.name(), reduction.name(), weights.is_some());
                    let v = engine.loss(&loss, &input, reduction).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_non_negative(&what, &v);
                }
            }
        }
        }
    }

    #[test]
    fn row_losses_stay_non_negative(c in row_case()) {
        for engine in engines() {
        let cols = c.cols;
        let cases = [
            ("cross-entropy (classes)", Loss::CrossEntropy, LossInput::classes(&c.logits, cols, &c.classes)),
            ("cross-entropy (probabilities)", Loss::CrossEntropy, LossInput::rows(&c.logits, cols, &c.t)),
            ("entropy", Loss::Entropy, LossInput::unlabelled(&c.q, cols)),
        ];
        for (name, loss, input) in cases {
            for input in [input, input.with_weights(&c.w)] {
                for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
                    let what = format!("{name} {} {}x{cols}", reduction.name(), c.w.len());
                    let v = engine.loss(&loss, &input, reduction).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_non_negative(&what, &v);
                }
            }
        }
        // KL(t, q) ≥ 0 needs Σt = Σq; rows of f32 sum to 1 only within
        // rounding, and then KL ≥ St·ln(St/Sq) (log-sum inequality), a few
        // 1e-8 below 0. The GPU may add its own f32 rounding of the terms.
        let v = engine
            .loss(&Loss::KlDiv, &LossInput::rows(&c.q, cols, &c.t), Reduction::None)
            .unwrap();
        let v = v.per_sample().unwrap();
        for (r, &got) in v.iter().enumerate() {
            let row = r * cols..(r + 1) * cols;
            let (tr, qr) = (&c.t[row.clone()], &c.q[row]);
            let st: f64 = tr.iter().map(|&x| x as f64).sum();
            let sq: f64 = qr.iter().map(|&x| x as f64).sum();
            let bound = st * (st / sq).ln();
            let scale: f64 = tr
                .iter()
                .zip(qr)
                .filter(|(t, _)| **t > 0.0)
                .map(|(&t, &q)| (t as f64 * ((t as f64).ln() - (q as f64).ln())).abs())
                .sum();
            prop_assert!(
                got as f64 >= bound.min(0.0) - 1e-6 * (1.0 + scale),
                "kl-div row {r}: {got} below the bound {bound}"
            );
        }
        }
    }
}

/// Whether the derivative of the loss at (p, t) may be checked by central
/// differences: not within 1e-3 of a kink, nor where the GPU's f32
/// exponential saturates, nor in bce's clamped tails.
fn smooth_at(loss: &Loss, p: f64, t: f64) -> bool {
    let e = t - p;
    let m = t * p;
    let away = |x: f64| x.abs() >= 1e-3;
    match *loss {
        Loss::ZeroOne => away(m),
        Loss::Hinge | Loss::SquaredHinge => away(m - 1.0),
        Loss::Exponential => -m < 80.0,
        Loss::Bce => (1e-3..=1.0 - 1e-3).contains(&p),
        Loss::Mae | Loss::Mape | Loss::Quantile { .. } => away(e),
        Loss::Smape => away(e) && away(p),
        Loss::Huber { delta: k } | Loss::SmoothL1 { beta: k } => away(e.abs() - k as f64),
        _ => true,
    }
}

/// The f64 reduced loss's central difference in p_i, Richardson-extrapolated
/// from steps h and h/2 (error O(h⁴)): c·wᵢ·(l(p+h) − l(p−h))/2h for mean
/// (c = 1/Σw) and sum; for rmse the whole metric sqrt(S/W) around the i-th
/// term. Also returns the difference's own rounding error (a term of size
/// |l| loses f64 digits when the step changes it little).
fn finite_difference(
    loss: &Loss,
    input: &LossInput,
    t: &[f32],
    reduction: Reduction,
    i: usize,
) -> (f64, f64) {
    let w = |k: usize| input.weights.map_or(1.0, |w| w[k] as f64);
    let p = input.pred[i] as f64;
    let h = if *loss == Loss::Bce {
        1e-4 * p.min(1.0 - p)
    } else {
        1e-5 * p.abs().max(1.0)
    };
    let term = |x: f64| loss.term_f64(x, t[i] as f64);
    let wsum: f64 = (0..input.pred.len()).map(w).sum();
    let rest: f64 = (0..input.pred.len())
        .filter(|&k| k != i)
        .map(|k| w(k) * loss.term_f64(input.pred[k] as f64, t[k] as f64))
        .sum();
    let central = |h: f64| -> (f64, f64) {
        let (up, down) = (term(p + h), term(p - h));
        let noise = 8.0 * f64::EPSILON * (up.abs() + down.abs()) / (2.0 * h);
        let scale = if *loss == Loss::Rmse {
            // sqrt(a) − sqrt(b) = (a − b)/(sqrt(a) + sqrt(b)), with a − b
            // from the i-th term alone: the sum of the others would cancel.
            let metric = |l: f64| ((rest + w(i) * l) / wsum).sqrt();
            w(i) / wsum / (metric(up) + metric(down))
        } else if reduction == Reduction::Mean {
            w(i) / wsum
        } else {
            w(i)
        };
        (scale * (up - down) / (2.0 * h), scale * noise)
    };
    let (d1, n1) = central(h);
    let (d2, n2) = central(h / 2.0);
    ((4.0 * d2 - d1) / 3.0, (4.0 * n2 + n1) / 3.0)
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn gradients_match_finite_differences(c in case(1..40, &[50.0, 5.0])) {
        let engine = gpu();
        for loss in pointwise_losses(&c) {
            let (p, t) = loss_data(&loss, &c);
            for weights in [None, Some(&c.w[..])] {
                let input = LossInput { weights, ..LossInput::new(&p, &t) };
                let wsum: f64 = weights.map_or(p.len() as f64, |w| w.iter().map(|&v| v as f64).sum());
                if loss == Loss::Rmse && cpu::loss_scalar(&loss, &input, Reduction::Mean).unwrap() < 1e-3 {
                    continue; // the metric's kink at 0
                }
                for &reduction in &reductions(&loss)[..reductions(&loss).len().min(2)] {
                    let what = format!("{} {} weighted={}", loss.name(), reduction.name(), weights.is_some());
                    let want = cpu::loss_grad(&loss, &input, reduction).unwrap();
                    let got = engine.map(|e| {
                        e.loss_grad(&loss, &input, reduction)
                            .unwrap_or_else(|err| panic!("{what}: {err}"))
                    });
                    // The factor the reduction puts on wᵢ·l'(pᵢ), for the
                    // absolute tolerance of an f32 gradient.
                    let coef = match (reduction, loss) {
                        (Reduction::Mean, Loss::Rmse) => {
                            1.0 / (wsum * cpu::loss_scalar(&loss, &input, reduction).unwrap())
                        }
                        (Reduction::Mean, _) => 1.0 / wsum,
                        _ => 1.0,
                    };
                    for i in 0..p.len() {
                        if !smooth_at(&loss, p[i] as f64, t[i] as f64) {
                            continue;
                        }
                        let (fd, noise) = finite_difference(&loss, &input, &t, reduction, i);
                        let wi = weights.map_or(1.0, |w| w[i] as f64);
                        prop_assert!(
                            (want[i] - fd).abs() <= 1e-6 * fd.abs() + noise + 1e-12 * coef * wi,
                            "{what}: reference d/dp[{i}] at p={} t={}: {} vs fd {fd}",
                            p[i], t[i], want[i]
                        );
                        if let Some(g) = &got {
                            let rtol = exp_rtol(exp_arg(&loss, p[i], t[i])).max(2e-5);
                            prop_assert!(
                                (g[i] as f64 - fd).abs() <= rtol * fd.abs() + noise + 1e-6 * coef * wi,
                                "{what}: GPU d/dp[{i}] at p={} t={}: {} vs fd {fd}",
                                p[i], t[i], g[i]
                            );
                        }
                    }
                }
            }
        }
    }
}
