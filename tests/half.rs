//! f16 and bf16 inputs (SPEC §1c): every loss on every backend gives, from
//! half predictions, targets and weights, the bits it gives for the same
//! values widened to f32 (the kernels widen as they read, 2 bytes a value;
//! the CPU widens first), and agrees with the f64 reference of those
//! values; every one of the 65,536 half bit patterns widens exactly; a
//! value outside its domain is named as the half value it is.

mod common;

use common::{
    agrees, assert_all_close_with, assert_err, assert_grad_close, assert_scalar_close, data,
    engines, exp_arg, exp_rtol, rng,
};
use lossgpu::{bf16, cpu, f16, Engine, Float, Loss, LossInput, LossValue, Reduction};
use rand::rngs::StdRng;
use rand::Rng;

/// A half type the tests build inputs of.
trait Half: Float {
    fn from_bits(b: u16) -> Self;
    fn to_bits(self) -> u16;
}

impl Half for f16 {
    fn from_bits(b: u16) -> Self {
        f16::from_bits(b)
    }
    fn to_bits(self) -> u16 {
        f16::to_bits(self)
    }
}

impl Half for bf16 {
    fn from_bits(b: u16) -> Self {
        bf16::from_bits(b)
    }
    fn to_bits(self) -> u16 {
        bf16::to_bits(self)
    }
}

fn half<H: Half>(v: &[f32]) -> Vec<H> {
    v.iter().map(|&x| H::from_f32(x)).collect()
}

fn wide<H: Half>(v: &[H]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "{what}[{i}]: {a} from half, {b} from f32"
        );
    }
}

/// Half outputs (`_as` methods) are the f32 outputs rounded to nearest
/// even: the same bits as `half`'s rounding of each f32 value.
fn same_rounded<H: Half>(what: &str, got: &[H], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let r = H::from_f32(*b);
        assert!(
            a.to_bits() == r.to_bits() || (a.to_f32().is_nan() && b.is_nan()),
            "{what}[{i}]: {:#06x} written, {:#06x} is {b} rounded",
            a.to_bits(),
            r.to_bits()
        );
    }
}

/// The value and gradient as `H` (`loss_and_grad_as`, `loss_grad_as`,
/// `loss_as`): the rounded f32 results of the same call.
fn check_half_outputs<H: Half>(
    engine: &Engine,
    what: &str,
    (loss, input, reduction): (&Loss, &LossInput<H>, Reduction),
    (v32, g32): (&LossValue, &[f32]),
) {
    let (v, g) = engine
        .loss_and_grad_as::<H, H>(loss, input, reduction)
        .unwrap_or_else(|e| panic!("{what} as half: {e}"));
    same_rounded(&format!("{what} grad as half"), &g, g32);
    let alone = engine.loss_grad_as::<H, H>(loss, input, reduction).unwrap();
    same_rounded(&format!("{what} loss_grad as half"), &alone, g32);
    let value = engine.loss_as::<H, H>(loss, input, reduction).unwrap();
    for v in [v, value] {
        match (v, v32) {
            (LossValue::PerSample(a), LossValue::PerSample(b)) => {
                same_rounded(&format!("{what} values as half"), &a, b)
            }
            (LossValue::Scalar(a), LossValue::Scalar(b)) => assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{what} as half: {a} vs {b}"
            ),
            _ => panic!("{what} as half: the value's kinds differ"),
        }
    }
}

/// The reductions of `loss` (rmse: mean only).
fn reductions(loss: &Loss) -> Vec<Reduction> {
    match loss {
        Loss::Rmse => vec![Reduction::Mean],
        _ => vec![Reduction::Mean, Reduction::Sum, Reduction::None],
    }
}

/// `input` (half values) against `widened` (the same values in f32): the
/// same bits on `engine`, and within SPEC §5 of the f64 reference.
fn compare<H: Half>(
    engine: &Engine,
    label: &str,
    loss: &Loss,
    input: &LossInput<H>,
    widened: &LossInput,
    rtol_at: &dyn Fn(usize) -> f64,
) {
    for reduction in reductions(loss) {
        let what = format!("{label} {} {}", loss.name(), reduction.name());
        let (v, g) = engine
            .loss_and_grad(loss, input, reduction)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let (v32, g32) = engine.loss_and_grad(loss, widened, reduction).unwrap();
        same_bits(&format!("{what} grad"), &g, &g32);
        check_half_outputs(engine, &what, (loss, input, reduction), (&v32, &g32));
        let alone = engine.loss_grad(loss, input, reduction).unwrap();
        same_bits(&format!("{what} loss_grad"), &alone, &g32);
        // The value alone (streamed through the small engines' chunks).
        let value = engine.loss(loss, input, reduction).unwrap();
        let value32 = engine.loss(loss, widened, reduction).unwrap();
        assert_eq!(format!("{value:?}"), format!("{value32:?}"), "{what} loss");
        match (v, v32) {
            (LossValue::Scalar(a), LossValue::Scalar(b)) => {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{what}: {a} vs {b}"
                );
                let want = cpu::loss_scalar(loss, widened, reduction).unwrap();
                // A sum of terms of both signs (kl-div of close rows) keeps
                // the absolute error of its terms: 1e-6 of their magnitude.
                let scale = magnitude(loss, widened, reduction);
                if want.is_finite() && a.is_finite() && scale.is_finite() {
                    let err = (a - want).abs();
                    let what = format!("{what}: {a} vs {want}");
                    assert!(err <= 1e-5 * want.abs() + 1e-6 * scale, "{what}");
                } else {
                    assert_scalar_close(&what, a, want, 1e-5);
                }
            }
            (LossValue::PerSample(a), LossValue::PerSample(b)) => {
                same_bits(&what, &a, &b);
                let want = cpu::loss_per_sample(loss, widened).unwrap();
                assert_all_close_with(&what, &a, &want, |i| (rtol_at(i * widened.cols), 1e-6));
            }
            _ => panic!("{what}: the value's kinds differ"),
        }
        assert_grad_close(&what, loss, widened, reduction, &g, rtol_at);
    }
}

/// Σ |wᵢ·lᵢ| of a reduced value (÷ Σw for mean); kl-div sums the
/// magnitudes of its rows' terms tⱼ·(|log tⱼ| + |log qⱼ|), which cancel.
fn magnitude(loss: &Loss, input: &LossInput, reduction: Reduction) -> f64 {
    if *loss == Loss::Rmse {
        return 0.0;
    }
    let per: Vec<f64> = match (loss, input.target) {
        (Loss::KlDiv, lossgpu::Target::Values(t)) => input
            .pred
            .chunks(input.cols)
            .zip(t.chunks(input.cols))
            .enumerate()
            .map(|(i, (q, t))| {
                let w = input.weights.map_or(1.0, |w| w[i] as f64);
                let terms: f64 = q
                    .iter()
                    .zip(t)
                    .filter(|(_, &t)| t > 0.0)
                    .map(|(&q, &t)| t as f64 * ((t as f64).ln().abs() + (q as f64).ln().abs()))
                    .sum();
                w * terms
            })
            .collect(),
        _ => cpu::loss_per_sample(loss, input).unwrap(),
    };
    let mag: f64 = per.iter().map(|v| v.abs()).sum();
    match reduction {
        Reduction::Mean => mag / cpu::loss_sums(loss, input).unwrap().1,
        _ => mag,
    }
}

/// Predictions and targets in the loss's domain (before rounding).
fn pointwise_data(loss: &Loss, rng: &mut StdRng, n: usize) -> (Vec<f32>, Vec<f32>) {
    let mut p = data(rng, n);
    let t: Vec<f32> = match loss.name() {
        "zero-one" | "hinge" | "squared-hinge" | "exponential" | "logistic" => (0..n)
            .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
            .collect(),
        "bce-logits" | "bce" => (0..n).map(|i| [0.0, 1.0, rng.random()][i % 3]).collect(),
        _ => data(rng, n),
    };
    if *loss == Loss::Bce {
        p = (0..n).map(|i| [0.0, 1.0, rng.random()][i % 3]).collect();
    }
    (p, t)
}

fn check_pointwise<H: Half>(dtype: &str, lengths: &[usize]) {
    let mut rng = rng(&format!("half pointwise {dtype}"));
    let cpu_engine = Engine::cpu();
    let losses: Vec<Loss> = Loss::ALL
        .iter()
        .copied()
        .filter(Loss::is_pointwise)
        .collect();
    for loss in losses {
        for &n in lengths {
            let (p, t) = pointwise_data(&loss, &mut rng, n);
            let w: Vec<f32> = (0..n).map(|i| ((i + 1) % 5) as f32 * 0.7).collect();
            let (ph, th, wh) = (half::<H>(&p), half::<H>(&t), half::<H>(&w));
            let (pw, tw, ww) = (wide(&ph), wide(&th), wide(&wh));
            let rtol = |i: usize| exp_rtol(exp_arg(&loss, pw[i], tw[i]));
            for engine in engines(&cpu_engine) {
                let label = format!("{dtype} {} n={n}", engine.device_name());
                let (input, widened) = (LossInput::new(&ph, &th), LossInput::new(&pw, &tw));
                compare(engine, &label, &loss, &input, &widened, &rtol);
                compare(
                    engine,
                    &format!("{label} weighted"),
                    &loss,
                    &input.with_weights(&wh),
                    &widened.with_weights(&ww),
                    &rtol,
                );
            }
        }
    }
}

#[test]
fn f16_pointwise_losses_give_the_bits_of_their_f32_values() {
    check_pointwise::<f16>("f16", &[1, 7, 255, 257, 65_537]);
}

#[test]
fn bf16_pointwise_losses_give_the_bits_of_their_f32_values() {
    check_pointwise::<bf16>("bf16", &[1, 7, 255, 257, 65_537]);
}

/// Softmax rows with exact zeros.
fn distributions(rng: &mut StdRng, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        let raw: Vec<f32> = (0..cols)
            .map(|j| {
                if j % 3 == 0 {
                    0.0
                } else {
                    rng.random::<f32>() + 0.01
                }
            })
            .collect();
        let s: f32 = raw.iter().sum();
        out.extend(raw.iter().map(|v| v / s));
    }
    out
}

fn check_rows<H: Half>(dtype: &str) {
    let mut rng = rng(&format!("half rows {dtype}"));
    let cpu_engine = Engine::cpu();
    // 401×5 on the small engine: 191 rows fit a binding, so chunks are cut
    // to 190 rows for half gradients (a chunk must start a word).
    for (rows, cols) in [(1, 3), (7, 5), (257, 10), (3, 300), (2_049, 3), (401, 5)] {
        let z = half::<H>(&data(&mut rng, rows * cols));
        let t = half::<H>(&distributions(&mut rng, rows, cols));
        let q = half::<H>(&distributions(&mut rng, rows, cols));
        let w = half::<H>(
            &(0..rows)
                .map(|i| ((i + 1) % 4) as f32 * 0.6)
                .collect::<Vec<_>>(),
        );
        let (zw, tw, qw, ww) = (wide(&z), wide(&t), wide(&q), wide(&w));
        // nll's log-probabilities are ≤ 0: a sum of arbitrary logits cancels.
        let lp: Vec<H> = z.iter().map(|&v| H::from_f32(-v.to_f32().abs())).collect();
        let lpw = wide(&lp);
        let classes: Vec<u32> = (0..rows)
            .map(|_| rng.random_range(0..cols as u32))
            .collect();
        let cases = [
            (
                Loss::CrossEntropy,
                LossInput::classes(&z, cols, &classes),
                LossInput::classes(&zw, cols, &classes),
            ),
            (
                Loss::CrossEntropy,
                LossInput::rows(&z, cols, &t),
                LossInput::rows(&zw, cols, &tw),
            ),
            (
                Loss::ZeroOne,
                LossInput::classes(&z, cols, &classes),
                LossInput::classes(&zw, cols, &classes),
            ),
            (
                Loss::KlDiv,
                LossInput::rows(&q, cols, &t),
                LossInput::rows(&qw, cols, &tw),
            ),
            (
                Loss::Entropy,
                LossInput::unlabelled(&q, cols),
                LossInput::unlabelled(&qw, cols),
            ),
            (
                Loss::Nll,
                LossInput::classes(&lp, cols, &classes),
                LossInput::classes(&lpw, cols, &classes),
            ),
            (
                Loss::BceLogits,
                LossInput::rows(&z, cols, &t),
                LossInput::rows(&zw, cols, &tw),
            ),
        ];
        for engine in engines(&cpu_engine) {
            for (loss, input, widened) in cases {
                let label = format!("{dtype} {} {rows}x{cols}", engine.device_name());
                compare(engine, &label, &loss, &input, &widened, &|_| 1e-5);
                if loss.is_pointwise() {
                    continue; // its weights are per value
                }
                let label = format!("{label} weighted");
                let (a, b) = (input.with_weights(&w), widened.with_weights(&ww));
                compare(engine, &label, &loss, &a, &b, &|_| 1e-5);
                // With an ignore index the weights the GPU binds are f32.
                if loss == Loss::CrossEntropy && matches!(input.target, lossgpu::Target::Classes(_))
                {
                    let (a, b) = (a.with_ignore_index(1), b.with_ignore_index(1));
                    compare(engine, &format!("{label} ignore"), &loss, &a, &b, &|_| 1e-5);
                }
            }
        }
    }
}

#[test]
fn f16_row_losses_give_the_bits_of_their_f32_values() {
    check_rows::<f16>("f16");
}

#[test]
fn bf16_row_losses_give_the_bits_of_their_f32_values() {
    check_rows::<bf16>("bf16");
}

/// f32 values at every rounding boundary of `H`: for each half value, the
/// value itself, the midpoint to the next (a tie) and the f32s on either
/// side of it; the overflow threshold; ±0, ±inf, NaN; f32 subnormals.
fn rounding_cases<H: Half>() -> Vec<f32> {
    let mut out = vec![0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
    out.extend([
        1e-45f32,
        -1e-45,
        1e-40,
        f32::MIN_POSITIVE,
        f32::MAX,
        -f32::MAX,
    ]);
    for b in 0..u16::MAX {
        let (lo, hi) = (H::from_bits(b).to_f32(), H::from_bits(b + 1).to_f32());
        if !lo.is_finite() || !hi.is_finite() || (lo.to_bits() >> 31) != (hi.to_bits() >> 31) {
            continue;
        }
        let mid = ((lo as f64 + hi as f64) / 2.0) as f32; // exact: f32 has room
        out.extend([
            lo,
            mid,
            f32::from_bits(mid.to_bits() - 1),
            f32::from_bits(mid.to_bits() + 1),
        ]);
    }
    // Past the largest finite half: the tie to inf and either side of it.
    let max = H::from_bits(if H::DTYPE == lossgpu::DType::F16 {
        0x7bff
    } else {
        0x7f7f
    })
    .to_f32();
    let ulp = max
        - H::from_bits(if H::DTYPE == lossgpu::DType::F16 {
            0x7bfe
        } else {
            0x7f7e
        })
        .to_f32();
    let tie = max + ulp / 2.0;
    for v in [
        tie,
        f32::from_bits(tie.to_bits() - 1),
        f32::from_bits(tie.to_bits() + 1),
    ] {
        out.extend([v, -v]);
    }
    out
}

/// The kernels' rounding to a half output is `half`'s (to nearest, ties to
/// even, overflow to inf, NaN kept): leaky-relu with slope 1 writes x itself.
/// An adapter may flush f32 subnormals (WGSL allows it), which round to ±0
/// in f16 anyway; in bf16 either the value or ±0 passes.
fn check_rounding<H: Half>(dtype: &str) {
    use lossgpu::{Activation, Pass};
    let cpu_engine = Engine::cpu();
    let x = rounding_cases::<H>();
    let identity = Activation::LeakyRelu { alpha: 1.0 };
    for engine in engines(&cpu_engine) {
        let y: Vec<H> = engine
            .activation_as(&identity, Pass::Forward, &x, None)
            .unwrap();
        for (i, (&v, h)) in x.iter().zip(&y).enumerate() {
            let want = H::from_f32(v);
            let flushed = v != 0.0 && v.abs() < f32::MIN_POSITIVE && h.to_f32() == 0.0;
            assert!(
                h.to_bits() == want.to_bits() || (v.is_nan() && h.to_f32().is_nan()) || flushed,
                "{dtype} {}: x[{i}] = {v:e} ({:#010x}) wrote {:#06x}, want {:#06x}",
                engine.device_name(),
                v.to_bits(),
                h.to_bits(),
                want.to_bits()
            );
        }
    }
}

#[test]
fn f16_outputs_round_to_nearest_even() {
    check_rounding::<f16>("f16");
}

#[test]
fn bf16_outputs_round_to_nearest_even() {
    check_rounding::<bf16>("bf16");
}

/// Every half bit pattern widens exactly on every backend: mae against 0
/// gives |x| per sample and its sum gradient sign(x), so together x.
fn check_every_pattern<H: Half>(dtype: &str, flushes: &dyn Fn(f32) -> bool) {
    let cpu_engine = Engine::cpu();
    let x: Vec<H> = (0..=u16::MAX).map(H::from_bits).collect();
    let zero = vec![H::from_f32(0.0); x.len()];
    let xw = wide(&x);
    for engine in engines(&cpu_engine) {
        let name = engine.device_name();
        let input = LossInput::new(&x, &zero);
        let abs = engine.loss(&Loss::Mae, &input, Reduction::None).unwrap();
        let sign = engine
            .loss_grad(&Loss::Mae, &input, Reduction::Sum)
            .unwrap();
        for (k, (&a, &s)) in abs.per_sample().unwrap().iter().zip(&sign).enumerate() {
            let want = xw[k];
            let what = format!("{dtype} {name} bits {k:#06x} ({want})");
            if want.is_nan() {
                assert!(a.is_nan() && s.is_nan(), "{what}: |x| {a}, sign {s}");
                continue;
            }
            // A GPU may flush an f32 subnormal (bf16's smallest) to 0.
            if a == 0.0 && want != 0.0 && !name.starts_with("cpu") && flushes(want) {
                continue;
            }
            assert_eq!(a, want.abs(), "{what}");
            if a != 0.0 {
                assert_eq!(a * s, want, "{what}: sign {s}");
            }
        }
    }
}

#[test]
fn every_f16_value_widens_exactly() {
    check_every_pattern::<f16>("f16", &|_| false);
}

#[test]
fn every_bf16_value_widens_exactly() {
    check_every_pattern::<bf16>("bf16", &|v| v.abs() < f32::MIN_POSITIVE);
}

/// Half extremes: f16's largest finite logits and bf16's of 1e38 stay
/// finite in bce-logits, as in f32; a half value outside its domain is
/// named as the value it is; an inf propagates.
#[test]
fn half_extremes_and_errors() {
    let cpu_engine = Engine::cpu();
    let z = [65504.0f32, -65504.0, 1e4, -1e4, 6.1e-5, -6e-8, 0.0, 3.0];
    let t = [0.0f32, 1.0, 1.0, 0.0, 0.5, 0.5, 1.0, 0.25];
    // Two losses of 1e38: the sum stays below f32::MAX.
    let zb = [1e38f32, -1e38, 1e30, -1e30, 1e-38, -1e-38, 0.0, 3.0];
    for engine in engines(&cpu_engine) {
        let name = engine.device_name();
        let (zh, th) = (half::<f16>(&z), half::<f16>(&t));
        let (zbh, tbh) = (half::<bf16>(&zb), half::<bf16>(&t));
        for (label, got, want) in [
            (
                "f16",
                engine.loss_and_grad(&Loss::BceLogits, &LossInput::new(&zh, &th), Reduction::Sum),
                cpu::loss_scalar(
                    &Loss::BceLogits,
                    &LossInput::new(&wide(&zh), &wide(&th)),
                    Reduction::Sum,
                ),
            ),
            (
                "bf16",
                engine.loss_and_grad(
                    &Loss::BceLogits,
                    &LossInput::new(&zbh, &tbh),
                    Reduction::Sum,
                ),
                cpu::loss_scalar(
                    &Loss::BceLogits,
                    &LossInput::new(&wide(&zbh), &wide(&tbh)),
                    Reduction::Sum,
                ),
            ),
        ] {
            let (v, g) = got.unwrap();
            let (v, want) = (v.scalar().unwrap(), want.unwrap());
            assert!(
                v.is_finite() && want.is_finite(),
                "{name} {label}: {v} vs {want}"
            );
            assert_scalar_close(&format!("{name} {label}"), v, want, 1e-5);
            assert!(g.iter().all(|x| x.is_finite()), "{name} {label} grad {g:?}");
        }
        // An inf propagates as in f32.
        let inf = half::<bf16>(&[f32::INFINITY, 1.0]);
        let v = engine
            .loss(
                &Loss::Mse,
                &LossInput::new(&inf, &half::<bf16>(&[0.0, 1.0])),
                Reduction::Sum,
            )
            .unwrap();
        assert!(
            agrees(v.scalar().unwrap() as f32, f64::INFINITY, 1e-5, 0.0),
            "{name} inf"
        );
        // Domain errors name the half value.
        assert_err(
            engine.loss(
                &Loss::BceLogits,
                &LossInput::new(&th, &half::<f16>(&[0.0, 1.0, 0.5, 1.5, 0.0, 0.0, 0.0, 0.0])),
                Reduction::Mean,
            ),
            "target[3] = 1.5",
        );
        assert_err(
            engine.loss(
                &Loss::Mse,
                &LossInput::new(&th, &th)
                    .with_weights(&half::<f16>(&[1.0, 1.0, -2.0, 1.0, 1.0, 1.0, 1.0, 1.0])),
                Reduction::Mean,
            ),
            "weights[2] = -2.0",
        );
        assert_err(
            engine.loss(
                &Loss::KlDiv,
                &LossInput::rows(
                    &half::<bf16>(&[0.5, 0.5, 1.25, -0.25]),
                    2,
                    &half::<bf16>(&[0.5; 4]),
                ),
                Reduction::Sum,
            ),
            "pred[2] = 1.25",
        );
    }
}

/// A batch of half losses gives each loss's own value, bit for bit.
#[test]
fn half_batches_give_each_loss_s_value() {
    let mut rng = rng("half batch");
    let cpu_engine = Engine::cpu();
    let p = half::<bf16>(&data(&mut rng, 1000));
    let t = half::<bf16>(&data(&mut rng, 1000));
    let items = [
        (Loss::Mse, LossInput::new(&p[..7], &t[..7])),
        (Loss::Huber { delta: 0.5 }, LossInput::new(&p, &t)),
        (Loss::Mae, LossInput::new(&p[..257], &t[..257])),
    ];
    for engine in engines(&cpu_engine) {
        let batch = engine.loss_batch(&items, Reduction::Mean).unwrap();
        for (k, (loss, input)) in items.iter().enumerate() {
            let alone = engine.loss(loss, input, Reduction::Mean).unwrap();
            assert_eq!(batch[k], alone, "{} item {k}", engine.device_name());
        }
    }
}

/// Resident half tensors stay 2 bytes a value: they read back exactly
/// (odd lengths too), and a loss on them gives the bits of the same host
/// halves, value and gradient, pointwise and over rows; an offender is
/// named as its half value.
fn check_resident<H: Half + lossgpu::Element>(dtype: &str) {
    let mut rng = rng(&format!("half resident {dtype}"));
    let cpu_engine = Engine::cpu();
    for engine in engines(&cpu_engine) {
        let name = engine.device_name();
        for n in [1, 7, 257, 65_537] {
            let p = half::<H>(&data(&mut rng, n));
            let t = half::<H>(&(0..n).map(|_| rng.random::<f32>()).collect::<Vec<_>>());
            let (pt, tt) = (engine.upload(&p).unwrap(), engine.upload(&t).unwrap());
            assert_eq!(
                engine.read(&pt).unwrap(),
                p,
                "{dtype} {name} n={n} read back"
            );
            for loss in [Loss::BceLogits, Loss::Mse] {
                for reduction in [Reduction::Mean, Reduction::Sum] {
                    let what = format!("{dtype} {name} n={n} {} {}", loss.name(), reduction.name());
                    let (v, g) = engine
                        .loss_and_grad_tensor(&loss, &pt, &tt, reduction)
                        .unwrap();
                    let (hv, hg) = engine
                        .loss_and_grad(&loss, &LossInput::new(&p, &t), reduction)
                        .unwrap();
                    assert_eq!(v, hv, "{what}");
                    same_bits(&what, &engine.read(&g).unwrap(), &hg);
                    let (hv2, g2) = engine
                        .loss_and_grad_tensor_as::<H, H>(&loss, &pt, &tt, reduction)
                        .unwrap();
                    assert_eq!(hv2.scalar(), hv.scalar(), "{what} as half");
                    same_rounded(&format!("{what} as half"), &engine.read(&g2).unwrap(), &hg);
                    let g3 = engine.loss_grad_tensor_as::<H, H>(&loss, &pt, &tt, reduction);
                    same_rounded(
                        &format!("{what} grad as half"),
                        &engine.read(&g3.unwrap()).unwrap(),
                        &hg,
                    );
                }
            }
            let what = format!("{dtype} {name} n={n} per-sample");
            let values = engine.loss_tensor_as::<H, H>(&Loss::Mse, &pt, &tt, Reduction::None);
            let want = engine.loss(&Loss::Mse, &LossInput::new(&p, &t), Reduction::None);
            same_rounded(
                &what,
                values.unwrap().per_sample().unwrap(),
                want.unwrap().per_sample().unwrap(),
            );
        }
        let (rows, cols) = (129, 33);
        let z = half::<H>(&data(&mut rng, rows * cols));
        let classes: Vec<u32> = (0..rows)
            .map(|_| rng.random_range(0..cols as u32))
            .collect();
        let zt = engine.upload_rows(&z, cols).unwrap();
        let ct = engine.upload_classes(&classes).unwrap();
        let what = format!("{dtype} {name} cross-entropy {rows}x{cols}");
        let (v, g) = engine
            .loss_and_grad_tensor(&Loss::CrossEntropy, &zt, &ct, Reduction::Mean)
            .unwrap();
        let host = LossInput::classes(&z, cols, &classes);
        let (hv, hg) = engine
            .loss_and_grad(&Loss::CrossEntropy, &host, Reduction::Mean)
            .unwrap();
        assert_eq!(v, hv, "{what}");
        same_bits(&what, &engine.read(&g).unwrap(), &hg);
        // Rows of odd width: words of halves straddle rows.
        let g = engine.loss_grad_tensor_as::<H, H>(&Loss::CrossEntropy, &zt, &ct, Reduction::Mean);
        same_rounded(
            &format!("{what} as half"),
            &engine.read(&g.unwrap()).unwrap(),
            &hg,
        );
        // The offender at an odd index of a half tensor.
        let bad = half::<H>(&[0.0, 1.0, 0.5, 1.5, 0.25]);
        let (x, y) = (engine.upload(&bad).unwrap(), engine.upload(&bad).unwrap());
        assert_err(
            engine.loss_tensor(&Loss::BceLogits, &x, &y, Reduction::Mean),
            "target[3] = 1.5",
        );
    }
}

#[test]
fn f16_resident_tensors() {
    check_resident::<f16>("f16");
}

#[test]
fn bf16_resident_tensors() {
    check_resident::<bf16>("bf16");
}

/// Every activation's forward, derivative and backward pass on f16 and
/// bf16 inputs (x and upstream) gives the bits of the widened f32 values,
/// from host slices and resident tensors, on every backend.
fn check_activations<H: Half + lossgpu::Element>(dtype: &str) {
    use lossgpu::{Activation, Pass};
    let mut rng = rng(&format!("half activations {dtype}"));
    let cpu_engine = Engine::cpu();
    for n in [1, 7, 257, 65_537] {
        let x = half::<H>(&data(&mut rng, n));
        let u = half::<H>(&data(&mut rng, n));
        let (xw, uw) = (wide(&x), wide(&u));
        for engine in engines(&cpu_engine) {
            let (xt, ut) = (engine.upload(&x).unwrap(), engine.upload(&u).unwrap());
            for act in Activation::ALL {
                let what = format!("{dtype} {} {} n={n}", engine.device_name(), act.name());
                let f = engine.activation(act, &x).unwrap();
                same_bits(&what, &f, &engine.activation(act, &xw).unwrap());
                let d = engine.activation_derivative(act, &x).unwrap();
                same_bits(
                    &format!("{what}'"),
                    &d,
                    &engine.activation_derivative(act, &xw).unwrap(),
                );
                let b = engine.activation_backward(act, &x, &u).unwrap();
                let want = engine.activation_backward(act, &xw, &uw).unwrap();
                same_bits(&format!("{what} backward"), &b, &want);
                let r = engine
                    .activation_tensor(act, Pass::Backward, &xt, Some(&ut))
                    .unwrap();
                same_bits(
                    &format!("{what} resident"),
                    &engine.read(&r).unwrap(),
                    &want,
                );
                // As H: the rounded f32 outputs, host and resident.
                for (pass, f32s) in [
                    (Pass::Forward, &f),
                    (Pass::Derivative, &d),
                    (Pass::Backward, &b),
                ] {
                    let up = (pass == Pass::Backward).then_some(&u[..]);
                    let h: Vec<H> = engine.activation_as(act, pass, &x, up).unwrap();
                    same_rounded(&format!("{what} {pass:?} as half"), &h, f32s);
                }
                let r: lossgpu::Tensor<H> = engine
                    .activation_tensor_as(act, Pass::Backward, &xt, Some(&ut))
                    .unwrap();
                same_rounded(
                    &format!("{what} resident as half"),
                    &engine.read(&r).unwrap(),
                    &want,
                );
            }
        }
    }
}

#[test]
fn f16_activations_give_the_bits_of_their_f32_values() {
    check_activations::<f16>("f16");
}

#[test]
fn bf16_activations_give_the_bits_of_their_f32_values() {
    check_activations::<bf16>("bf16");
}

/// The fused metrics on half predictions, targets and weights give the
/// bits of the widened f32 values on every backend.
fn check_metrics<H: Half>(dtype: &str) {
    let mut rng = rng(&format!("half metrics {dtype}"));
    let cpu_engine = Engine::cpu();
    for n in [1, 7, 257, 65_537] {
        let (p, t) = (half::<H>(&data(&mut rng, n)), half::<H>(&data(&mut rng, n)));
        let w = half::<H>(
            &(0..n)
                .map(|i| ((i + 1) % 4) as f32 * 0.5)
                .collect::<Vec<_>>(),
        );
        let (pw, tw, ww) = (wide(&p), wide(&t), wide(&w));
        for engine in engines(&cpu_engine) {
            let what = format!("{dtype} {} n={n}", engine.device_name());
            for (a, b) in [
                (LossInput::new(&p, &t), LossInput::new(&pw, &tw)),
                (
                    LossInput::new(&p, &t).with_weights(&w),
                    LossInput::new(&pw, &tw).with_weights(&ww),
                ),
            ] {
                let got = engine.regression_metrics(&a, 0.7, 0.3).unwrap();
                let want = engine.regression_metrics(&b, 0.7, 0.3).unwrap();
                assert_eq!(format!("{got:?}"), format!("{want:?}"), "{what}");
            }
        }
    }
}

#[test]
fn f16_metrics_give_the_bits_of_their_f32_values() {
    check_metrics::<f16>("f16");
}

#[test]
fn bf16_metrics_give_the_bits_of_their_f32_values() {
    check_metrics::<bf16>("bf16");
}

/// Gradient statistics of half values (NaN and ±inf among them) equal those
/// of the widened f32 values on every backend.
#[test]
fn half_grad_stats_equal_those_of_their_f32_values() {
    let mut rng = rng("half grad stats");
    let cpu_engine = Engine::cpu();
    for n in [1, 7, 257, 65_537] {
        let mut g = data(&mut rng, n);
        if n > 3 {
            g[1] = f32::NAN;
            g[2] = f32::INFINITY;
        }
        let (h, b) = (half::<f16>(&g), half::<bf16>(&g));
        for engine in engines(&cpu_engine) {
            let what = format!("{} n={n}", engine.device_name());
            let want = engine.grad_stats(&wide(&h), 1e-3).unwrap();
            assert_eq!(
                format!("{:?}", engine.grad_stats(&h, 1e-3).unwrap()),
                format!("{want:?}"),
                "f16 {what}"
            );
            let want = engine.grad_stats(&wide(&b), 1e-3).unwrap();
            assert_eq!(
                format!("{:?}", engine.grad_stats(&b, 1e-3).unwrap()),
                format!("{want:?}"),
                "bf16 {what}"
            );
        }
    }
}

/// Clipping half gradients keeps their type: each value is the f32 clip
/// of its widened value, rounded to nearest even, on every backend, for one
/// slice and for a global norm over two resident tensors.
fn check_clip<H: Half + lossgpu::Element>(dtype: &str) {
    use lossgpu::Clip;
    let mut rng = rng(&format!("half clip {dtype}"));
    let cpu_engine = Engine::cpu();
    for n in [1, 7, 257, 65_537] {
        let mut g: Vec<f32> = data(&mut rng, n).iter().map(|v| 10.0 * v).collect();
        if n > 3 {
            g[1] = f32::NAN;
        }
        let h = half::<H>(&g);
        let hw = wide(&h);
        for engine in engines(&cpu_engine) {
            for clip in [Clip::Value(0.5), Clip::Norm(1.0)] {
                let what = format!("{dtype} {} n={n} {clip:?}", engine.device_name());
                let (got, stats) = engine.clip(&h, clip).unwrap();
                let (want, want_stats) = engine.clip(&hw, clip).unwrap();
                assert_eq!(format!("{stats:?}"), format!("{want_stats:?}"), "{what}");
                same_rounded(&what, &got, &want);
                // Two resident tensors under one global norm.
                if n == 1 {
                    continue;
                }
                let cut = n.div_ceil(3);
                let mut ts =
                    [engine.upload(&h[..cut]), engine.upload(&h[cut..])].map(|t| t.unwrap());
                let mut ws =
                    [engine.upload(&hw[..cut]), engine.upload(&hw[cut..])].map(|t| t.unwrap());
                engine.clip_tensors(&mut ts, clip).unwrap();
                engine.clip_tensors(&mut ws, clip).unwrap();
                for (t, w) in ts.iter().zip(&ws) {
                    let what = format!("{what} resident");
                    same_rounded(&what, &engine.read(t).unwrap(), &engine.read(w).unwrap());
                }
            }
        }
    }
}

#[test]
fn f16_clipping_rounds_the_f32_clip() {
    check_clip::<f16>("f16");
}

#[test]
fn bf16_clipping_rounds_the_f32_clip() {
    check_clip::<bf16>("bf16");
}

/// prelu's dα and the health report on half values equal those of the
/// widened f32 values on every backend.
#[test]
fn half_prelu_alpha_grad_and_health_report() {
    let mut rng = rng("half prelu health");
    let cpu_engine = Engine::cpu();
    for n in [7, 65_537] {
        let (x, u) = (
            half::<bf16>(&data(&mut rng, n)),
            half::<bf16>(&data(&mut rng, n)),
        );
        let (xw, uw) = (wide(&x), wide(&u));
        for engine in engines(&cpu_engine) {
            let what = format!("{} n={n}", engine.device_name());
            let got = engine.prelu_alpha_grad(&x, &u).unwrap();
            let want = engine.prelu_alpha_grad(&xw, &uw).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "prelu dα {what}");
            let thresholds = lossgpu::HealthThresholds::default();
            let got = engine
                .health_report(&[&x[..], &u[..]], &thresholds)
                .unwrap();
            let want = engine
                .health_report(&[&xw[..], &uw[..]], &thresholds)
                .unwrap();
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "health {what}");
        }
    }
}
