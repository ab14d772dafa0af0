//! Every activation × {forward, derivative, backward} on the GPU against the
//! f64 reference, at odd lengths, on random data and the extremes.

mod common;

use common::{
    assert_all_close, assert_all_close_with, assert_err, data, exp_rtol, gpu, gpu_narrow,
    gpu_small, rng, LENGTHS, NARROW_GRID,
};
use lossgpu::{cpu, Activation, Engine, Pass};

/// Every activation of [`Activation::ALL`], then more parameters.
fn all_activations() -> Vec<Activation> {
    let mut acts = Activation::ALL.to_vec();
    acts.extend([
        Activation::LeakyRelu { alpha: -0.3 },
        Activation::Rrelu {
            lower: 0.125,
            upper: 1.0 / 3.0,
            training: true,
            seed: 42,
        },
        Activation::Elu { alpha: 0.5 },
        Activation::Swish { beta: 1.7 },
    ]);
    acts
}

/// The largest exp argument an activation evaluates at x.
fn exp_arg(act: &Activation, x: f32) -> f32 {
    match *act {
        Activation::Sigmoid | Activation::Softplus | Activation::Elu { .. } => x,
        Activation::Tanh => 2.0 * x.abs().min(20.0),
        Activation::Swish { beta } => beta * x,
        _ => 0.0,
    }
}

fn check(engine: &Engine, label: &str, lengths: &[usize]) {
    let mut rng = rng(label);
    for act in all_activations() {
        for &n in lengths {
            let x = data(&mut rng, n);
            let up = data(&mut rng, n);
            for pass in [Pass::Forward, Pass::Derivative, Pass::Backward] {
                let got = match pass {
                    Pass::Forward => engine.activation(&act, &x),
                    Pass::Derivative => engine.activation_derivative(&act, &x),
                    Pass::Backward => engine.activation_backward(&act, &x, &up),
                }
                .unwrap_or_else(|e| panic!("{act:?} {pass:?} n={n}: {e}"));
                let want = cpu::activation(&act, pass, &x, Some(&up));
                // Backward is upstream × f'(x): f'(x)'s absolute error (atol)
                // is scaled by |upstream|, as in any f32 product.
                let atol = |i: usize| match pass {
                    Pass::Backward => 1e-6 * (up[i].abs() as f64).max(1.0),
                    _ => 1e-6,
                };
                let what = format!("{label} {act:?} {pass:?} n={n}");
                assert_all_close_with(&what, &got, &want, |i| {
                    (exp_rtol(exp_arg(&act, x[i])), atol(i))
                });
            }
        }
    }
}

#[test]
fn gpu_matches_reference_at_every_length() {
    let Some(engine) = gpu() else { return };
    check(engine, "activations", &LENGTHS);
}

#[test]
fn cpu_backend_matches_reference_at_every_length() {
    check(&Engine::cpu(), "cpu activations", &LENGTHS);
}

#[test]
fn chunked_gpu_path_matches_reference() {
    // A 4 KiB binding cap splits 65537 elements into 65 dispatches.
    let Some(engine) = gpu_small() else { return };
    check(
        engine,
        "activations (4 KiB bindings)",
        &[1, 1023, 1024, 1025, 65_537],
    );
}

#[test]
fn the_2d_dispatch_grid_matches_reference() {
    // 1024 workgroups per dimension: 1 500 007 values need a 2-D grid, as
    // 2^28 values do on an adapter's usual 65 535.
    let Some(engine) = gpu_narrow() else { return };
    let info = engine.device_info().unwrap();
    assert_eq!(info.max_workgroups_per_dimension, NARROW_GRID);
    check(engine, "activations (2-D grid)", &[1_500_007]);
}

#[test]
fn nan_propagates_and_nothing_overflows() {
    let cpu = Engine::cpu();
    let x = [f32::NAN, 1e4, -1e4, 88.0, -88.0, 0.0, -0.0];
    for (engine, act) in [Some(&cpu), gpu()]
        .into_iter()
        .flatten()
        .flat_map(|e| all_activations().into_iter().map(move |a| (e, a)))
    {
        for pass in [Pass::Forward, Pass::Derivative] {
            let got = match pass {
                Pass::Forward => engine.activation(&act, &x),
                _ => engine.activation_derivative(&act, &x),
            }
            .unwrap();
            assert!(got[0].is_nan(), "{act:?} {pass:?}: NaN in, {} out", got[0]);
            for (i, v) in got.iter().enumerate().skip(1) {
                assert!(v.is_finite(), "{act:?} {pass:?} at x={}: {v}", x[i]);
            }
        }
    }
}

#[test]
fn tanh_is_finite_where_drivers_fail() {
    let Some(engine) = gpu() else { return };
    let x: Vec<f32> = (0..200).map(|i| i as f32 * 0.5 - 50.0).collect();
    let y = engine.activation(&Activation::Tanh, &x).unwrap();
    for (xi, yi) in x.iter().zip(&y) {
        assert!(
            (*yi as f64 - (*xi as f64).tanh()).abs() < 1e-6,
            "tanh({xi}) = {yi}"
        );
    }
}

#[test]
fn elu_is_accurate_near_zero() {
    // α·(e^x − 1) computed naively loses all digits at x = 1e-6.
    let Some(engine) = gpu() else { return };
    let x = [1e-7f32, -1e-7, -1e-6, -3e-5, -0.01, -0.49, -0.51];
    let act = Activation::Elu { alpha: 1.0 };
    let got = engine.activation(&act, &x).unwrap();
    for (xi, g) in x.iter().zip(&got) {
        let want = if *xi > 0.0 {
            *xi as f64
        } else {
            (*xi as f64).exp_m1()
        };
        assert!(
            ((*g as f64 - want) / want).abs() < 2e-6,
            "elu({xi}) = {g}, want {want}"
        );
    }
}

#[test]
fn rrelu_draws_the_same_alpha_on_gpu_and_cpu_with_the_right_distribution() {
    let Some(engine) = gpu() else { return };
    let n = 1_000_000;
    let x = vec![-1.0f32; n];
    let (lower, upper) = (0.125f32, 1.0 / 3.0);
    let act = Activation::Rrelu {
        lower,
        upper,
        training: true,
        seed: 7,
    };
    let alphas: Vec<f32> = engine
        .activation(&act, &x)
        .unwrap()
        .iter()
        .map(|v| -v)
        .collect();
    // Same draw as the CPU, element by element.
    for (i, a) in alphas.iter().enumerate().step_by(997) {
        let want = lossgpu::rrelu_alpha(lower, upper, true, 7, i as u32);
        assert!((a - want).abs() <= 1e-7, "alpha[{i}] gpu {a} cpu {want}");
    }
    // Inside [lower, upper], uniform: mean, variance and a 10-bin histogram.
    assert!(alphas.iter().all(|&a| a >= lower && a <= upper));
    let mean = alphas.iter().map(|&a| a as f64).sum::<f64>() / n as f64;
    let var = alphas
        .iter()
        .map(|&a| (a as f64 - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    let width = (upper - lower) as f64;
    let (mu, sigma2) = ((lower + upper) as f64 / 2.0, width * width / 12.0);
    assert!(
        (mean - mu).abs() < 5.0 * (sigma2 / n as f64).sqrt(),
        "mean {mean} vs {mu}"
    );
    assert!(
        (var / sigma2 - 1.0).abs() < 0.01,
        "variance {var} vs {sigma2}"
    );
    let mut bins = [0usize; 10];
    for &a in &alphas {
        bins[(((a - lower) as f64 / width * 10.0) as usize).min(9)] += 1;
    }
    let expect = n as f64 / 10.0;
    for (b, &c) in bins.iter().enumerate() {
        assert!(
            (c as f64 - expect).abs() < 6.0 * expect.sqrt(),
            "bin {b}: {c} vs {expect}"
        );
    }
    // Another seed draws differently; the same seed repeats; evaluation is the midpoint.
    let other = engine
        .activation(
            &Activation::Rrelu {
                lower,
                upper,
                training: true,
                seed: 8,
            },
            &x[..1000],
        )
        .unwrap();
    assert!(
        other
            .iter()
            .zip(&alphas)
            .filter(|(o, a)| -**o != **a)
            .count()
            > 990
    );
    let again = engine.activation(&act, &x[..1000]).unwrap();
    assert!(again.iter().zip(&alphas).all(|(g, a)| -g == *a));
    let eval = engine
        .activation(
            &Activation::Rrelu {
                lower,
                upper,
                training: false,
                seed: 7,
            },
            &x[..10],
        )
        .unwrap();
    assert!(eval.iter().all(|&v| v == -(lower + upper) / 2.0));
}

#[test]
fn prelu_alpha_gradient_matches_reference() {
    let Some(engine) = gpu() else { return };
    let mut rng = rng("prelu dalpha");
    for n in [1, 7, 257, 65_537, 1_000_003] {
        let x = data(&mut rng, n);
        let up = data(&mut rng, n);
        let got = engine.prelu_alpha_grad(&x, &up).unwrap();
        let want = cpu::prelu_alpha_grad(&x, &up);
        // A signed sum: the error bound is relative to Σ|terms|.
        let scale: f64 = x
            .iter()
            .zip(&up)
            .map(|(&a, &b)| {
                if a > 0.0 {
                    0.0
                } else {
                    (a as f64 * b as f64).abs()
                }
            })
            .sum();
        assert!(
            (got - want).abs() <= 1e-5 * scale.max(1e-30),
            "n={n}: {got} vs {want}"
        );
    }
}

#[test]
fn cpu_engine_agrees_with_reference() {
    let engine = Engine::cpu();
    let x = [-2.0f32, -0.5, 0.0, 0.5, 2.0];
    for act in all_activations() {
        let got = engine.activation(&act, &x).unwrap();
        let want = cpu::activation(&act, Pass::Forward, &x, None);
        assert_all_close(&format!("cpu {act:?}"), &got, &want, |_| 1e-6, 1e-7);
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    for engine in [Some(&Engine::cpu()), gpu()].into_iter().flatten() {
        assert_err(engine.activation::<f32>(&Activation::Relu, &[]), "is empty");
        assert_err(
            engine.activation_backward(&Activation::Relu, &[1.0, 2.0], &[1.0]),
            "upstream has 1 values",
        );
        let bad = Activation::Rrelu {
            lower: 0.5,
            upper: 0.1,
            training: true,
            seed: 0,
        };
        assert_err(engine.activation(&bad, &[1.0]), "must not exceed --upper");
        assert_err(
            engine.activation(&Activation::Elu { alpha: f32::NAN }, &[1.0]),
            "--alpha must be finite",
        );
    }
}
