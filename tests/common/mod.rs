//! Shared by the integration tests: one GPU engine per test binary, fresh
//! random data with a printed seed, and a NaN-aware comparison.

#![allow(dead_code)]

use lossgpu::{Engine, GpuOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;

/// Whether GPU tests must fail rather than skip without an adapter.
pub fn gpu_required() -> bool {
    std::env::var("LOSSGPU_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

fn open(options: GpuOptions) -> Option<Engine> {
    match Engine::gpu_with(options) {
        Ok(e) => Some(e),
        Err(e) if gpu_required() => panic!("LOSSGPU_REQUIRE_GPU=1 but no GPU engine: {e}"),
        Err(e) => {
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

/// The shared GPU engine (adapter's own limits, subgroups when offered).
pub fn gpu() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| open(GpuOptions::default())).as_ref()
}

/// A GPU engine with a 4 KiB binding cap and the shared-memory tree, so the
/// chunked paths and the non-subgroup reduction run on small data.
pub fn gpu_small() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            open(GpuOptions {
                disable_subgroups: true,
                max_binding_bytes: Some(4096),
                ..GpuOptions::default()
            })
        })
        .as_ref()
}

/// A GPU engine whose device allows 1024 workgroups per dispatch dimension
/// (the least it may be: a reduction's first pass has up to 1024), so
/// every dispatch past 1024 workgroups (elementwise kernels past 2^20
/// values, row kernels past 1024 rows) takes the 2-D grid that real inputs
/// take only past 65 535 workgroups.
pub fn gpu_narrow() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            open(GpuOptions {
                max_workgroups_per_dimension: Some(NARROW_GRID),
                ..GpuOptions::default()
            })
        })
        .as_ref()
}

/// The per-dimension workgroup cap of [`gpu_narrow`].
pub const NARROW_GRID: u32 = 1024;

/// A seeded generator; the seed is fresh each run (or LOSSGPU_TEST_SEED) and
/// printed so a failure can be replayed.
pub fn rng(label: &str) -> StdRng {
    let seed = std::env::var("LOSSGPU_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{label}: LOSSGPU_TEST_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// The lengths every op is tried at: tiny, odd, around a workgroup, past
/// 2^16, and about a million.
pub const LENGTHS: [usize; 6] = [1, 7, 255, 257, 65_537, 1_000_003];

/// Values no test should miss: the extremes of SPEC §5.
pub const EXTREMES: [f32; 14] = [
    1e4, -1e4, 88.0, -88.0, 0.0, -0.0, 1.0, -1.0, 20.0, -20.0, 43.5, -43.5, 1e-6, -1e-6,
];

/// `n` values: mostly N(0, 3²)-ish, some wide uniform, with the extremes
/// sprinkled in at fixed places.
pub fn data(rng: &mut StdRng, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n)
        .map(|i| match i % 5 {
            4 => rng.random_range(-100.0..100.0),
            _ => (rng.random::<f32>() - 0.5) * 12.0,
        })
        .collect();
    for (k, &e) in EXTREMES.iter().enumerate() {
        let i = (k * 7919) % n;
        v[i] = e;
    }
    v
}

/// Does `got` (f32 from the GPU) agree with `want` (the f64 reference)?
/// NaN only matches NaN; an infinity matches itself, or a value of its sign
/// within `rtol` of the f32 range's edge, where the stated error may cross it.
pub fn agrees(got: f32, want: f64, rtol: f64, atol: f64) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    // Beyond the f32 range the honest f32 answer is ±inf.
    if (want as f32).is_infinite() || got.is_infinite() {
        let edge = f32::MAX as f64 / (1.0 + rtol);
        let same_sign = (got as f64).signum() == want.signum();
        return got == want as f32 || (same_sign && (got as f64).abs().min(want.abs()) >= edge);
    }
    (got as f64 - want).abs() <= atol + rtol * want.abs()
}

/// Elementwise comparison; `rtol_at(i)` lets a test loosen the relative
/// tolerance where WGSL's own exp/log precision bounds it.
pub fn assert_all_close(
    label: &str,
    got: &[f32],
    want: &[f64],
    rtol_at: impl Fn(usize) -> f64,
    atol: f64,
) {
    assert_all_close_with(label, got, want, |i| (rtol_at(i), atol));
}

/// As [`assert_all_close`] with (rtol, atol) chosen per element.
pub fn assert_all_close_with(
    label: &str,
    got: &[f32],
    want: &[f64],
    tol_at: impl Fn(usize) -> (f64, f64),
) {
    assert_eq!(got.len(), want.len(), "{label}: length");
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| !agrees(got[i], want[i], tol_at(i).0, tol_at(i).1))
        .collect();
    if let Some(&i) = bad.first() {
        panic!(
            "{label}: {} of {} values differ; first at [{i}]: got {} want {} (rtol {})",
            bad.len(),
            got.len(),
            got[i],
            want[i],
            tol_at(i).0
        );
    }
}

/// Relative error of a reduction against the reference (NaN-aware).
pub fn assert_scalar_close(label: &str, got: f64, want: f64, rtol: f64) {
    let ok = if want.is_nan() {
        got.is_nan()
    } else if want.is_infinite() {
        got == want
    } else {
        (got - want).abs() <= rtol * want.abs().max(1e-30) || (got - want).abs() < 1e-30
    };
    assert!(
        ok,
        "{label}: got {got} want {want} (rel err {:e})",
        ((got - want) / want).abs()
    );
}

/// WGSL guarantees exp only to 3 + 2|x| ULP; where an op's result rests on
/// exp(±a), the relative tolerance is that bound (twice), or SPEC's 1e-5
/// when tighter.
pub fn exp_rtol(a: f32) -> f64 {
    let ulps = 3.0 + 2.0 * a.abs().min(200.0) as f64;
    (2.0 * ulps * f32::EPSILON as f64).max(1e-5)
}

/// The exp argument a pointwise loss term rests on, for [`exp_rtol`].
pub fn exp_arg(loss: &lossgpu::Loss, p: f32, t: f32) -> f32 {
    use lossgpu::Loss;
    match loss {
        Loss::Exponential | Loss::Logistic => t * p,
        Loss::BceLogits => p,
        Loss::LogCosh => 2.0 * (t - p),
        _ => 0.0,
    }
}

/// A gradient against the reference's: wᵢ·c·l'(p), whose absolute error
/// is that of l'(p) scaled by the sample's weight and the reduction's c
/// (1/Σw for mean, rmse's own chain rule).
pub fn assert_grad_close(
    what: &str,
    loss: &lossgpu::Loss,
    input: &lossgpu::LossInput,
    reduction: lossgpu::Reduction,
    got: &[f32],
    rtol_at: &dyn Fn(usize) -> f64,
) {
    use lossgpu::{cpu, Loss, Reduction};
    let want = cpu::loss_grad(loss, input, reduction).unwrap();
    let (sum, wsum) = cpu::loss_sums(loss, input).unwrap();
    let c = match reduction {
        Reduction::Mean if *loss == Loss::Rmse => 1.0 / (wsum * (sum / wsum).sqrt()).max(1e-30),
        Reduction::Mean => 1.0 / wsum,
        _ => 1.0,
    };
    let w = |i: usize| input.weights.map_or(1.0, |w| w[i / input.cols] as f64);
    assert_all_close_with(&format!("{what} grad"), got, &want, |i| {
        (rtol_at(i), 1e-6 * w(i) * c)
    });
}

/// Asserts that `result` is an error whose message contains `needle` (the
/// argument, parameter or rule it should name).
#[track_caller]
pub fn assert_err<T: std::fmt::Debug>(result: lossgpu::Result<T>, needle: &str) {
    match result {
        Err(e) => assert!(
            e.to_string().contains(needle),
            "expected an error naming {needle:?}, got: {e}"
        ),
        Ok(v) => panic!("expected an error naming {needle:?}, got Ok({v:?})"),
    }
}

/// `cpu` and every GPU engine this run has (the plain one, and the small
/// and narrow ones that force chunking and 2-D grids).
pub fn engines(cpu: &Engine) -> Vec<&Engine> {
    [Some(cpu), gpu(), gpu_small(), gpu_narrow()]
        .into_iter()
        .flatten()
        .collect()
}

/// Numbers of a JSON array; null is NaN.
pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// A case PyTorch generated (tests/data/torch_*.json) for one reduction:
/// the reference within 1e-9 (values) and 1e-6 (gradient), then every
/// backend's `loss_and_grad` within SPEC §5 (the gradient within
/// `grad_atol`), and `loss_grad` equal to it up to rounding.
pub fn check_torch_case(
    label: &str,
    loss: &lossgpu::Loss,
    input: &lossgpu::LossInput,
    reduction: lossgpu::Reduction,
    (value, grad): (&[f64], &[f64]),
    grad_atol: f64,
) {
    use lossgpu::{cpu, LossValue, Reduction};
    match reduction {
        Reduction::None => assert_all_close_with(
            &format!("reference {label}"),
            &to_f32(&cpu::loss_per_sample(loss, input).unwrap()),
            value,
            |_| (1e-6, 1e-7),
        ),
        _ => assert_scalar_close(
            &format!("reference {label}"),
            cpu::loss_scalar(loss, input, reduction).unwrap(),
            value[0],
            1e-9,
        ),
    }
    let reference_grad = cpu::loss_grad(loss, input, reduction).unwrap();
    assert_all_close_with(
        &format!("reference {label} grad"),
        &to_f32(&reference_grad),
        grad,
        |_| (1e-6, 1e-9),
    );
    let cpu_engine = Engine::cpu();
    for engine in engines(&cpu_engine) {
        let at = format!("{} {label}", engine.device_name());
        let (v, g) = engine.loss_and_grad(loss, input, reduction).unwrap();
        match v {
            LossValue::Scalar(s) => assert_scalar_close(&at, s, value[0], 1e-5),
            LossValue::PerSample(s) => assert_all_close_with(&at, &s, value, |_| (1e-5, 1e-6)),
        }
        assert_all_close_with(&format!("{at} grad"), &g, grad, |_| (1e-5, grad_atol));
        // loss_grad may take another pass (row_grad_small): the same
        // gradient up to rounding.
        let alone = engine.loss_grad(loss, input, reduction).unwrap();
        let g64: Vec<f64> = g.iter().map(|&v| v as f64).collect();
        assert_all_close_with(&format!("{at} loss_grad"), &alone, &g64, |_| (1e-6, 1e-9));
    }
}
