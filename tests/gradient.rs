//! Gradient health: statistics and clipping on the GPU against the f64
//! reference, past f32's square range, with NaN and inf, chunked, and the
//! per-layer report's verdicts.

mod common;

use common::{assert_err, data, gpu, gpu_small, rng, LENGTHS};
use lossgpu::{
    cpu, Clip, Engine, GradStats, HealthThresholds, Loss, LossInput, Reduction, Verdict,
};
use rand::Rng;

fn same_stats(label: &str, got: &GradStats, want: &GradStats) {
    let close =
        |a: f64, b: f64| (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-5 * b.abs();
    assert!(
        close(got.l2_norm, want.l2_norm),
        "{label}: norm {} vs {}",
        got.l2_norm,
        want.l2_norm
    );
    assert!(
        close(got.max_abs, want.max_abs),
        "{label}: max {} vs {}",
        got.max_abs,
        want.max_abs
    );
    assert_eq!(
        (got.nan_count, got.inf_count, got.n),
        (want.nan_count, want.inf_count, want.n),
        "{label}"
    );
    assert_eq!(
        got.vanishing_fraction, want.vanishing_fraction,
        "{label}: vanishing"
    );
}

fn engines() -> Vec<&'static Engine> {
    [gpu(), gpu_small()].into_iter().flatten().collect()
}

#[test]
fn grad_stats_match_reference() {
    let mut rng = rng("grad-stats");
    for engine in engines() {
        for &n in &LENGTHS {
            let mut g = data(&mut rng, n);
            for v in g.iter_mut().step_by(3) {
                *v *= 1e-8; // some below the vanishing threshold
            }
            let got = engine.grad_stats(&g, 1e-7).unwrap();
            let want = cpu::stats::grad_stats(&g, 1e-7);
            same_stats(&format!("n={n}"), &got, &want);
        }
    }
}

#[test]
fn norm_does_not_overflow_up_to_1e30() {
    for engine in engines() {
        let g = vec![1e30f32, -1e30, 3e29, 1.0, 0.0];
        let s = engine.grad_stats(&g, 1e-7).unwrap();
        let want = (2e60f64 + 9e58 + 1.0).sqrt();
        assert!(
            s.l2_norm.is_finite() && (s.l2_norm - want).abs() <= 1e-5 * want,
            "{}",
            s.l2_norm
        );
        assert_eq!(s.max_abs, 1e30f32 as f64);
        let tiny = vec![1e-30f32; 1000];
        let s = engine.grad_stats(&tiny, 1e-7).unwrap();
        assert!((s.l2_norm - 1e-30f32 as f64 * 1000f64.sqrt()).abs() <= 1e-5 * s.l2_norm);
        assert_eq!(s.vanishing_fraction, 1.0);
        let zeros = engine.grad_stats(&[0.0f32; 7], 1e-7).unwrap();
        assert_eq!((zeros.l2_norm, zeros.max_abs), (0.0, 0.0));
    }
}

#[test]
fn nan_and_inf_poison_the_norm_and_are_counted() {
    for engine in engines() {
        let mut g = vec![1.0f32; 1000];
        g[10] = f32::INFINITY;
        g[20] = f32::NEG_INFINITY;
        let s = engine.grad_stats(&g, 1e-7).unwrap();
        assert_eq!((s.inf_count, s.nan_count), (2, 0));
        assert!(s.l2_norm.is_infinite() && s.max_abs.is_infinite());
        g[30] = f32::NAN;
        let s = engine.grad_stats(&g, 1e-7).unwrap();
        assert_eq!((s.inf_count, s.nan_count), (2, 1));
        assert!(s.l2_norm.is_nan() && s.max_abs.is_nan());
    }
    let cpu = Engine::cpu();
    let s = cpu.grad_stats(&[f32::NAN, 1.0], 1e-7).unwrap();
    assert!(s.l2_norm.is_nan() && s.nan_count == 1);
}

#[test]
fn clipping_matches_reference() {
    let mut rng = rng("clip");
    for engine in engines().into_iter().chain(std::iter::once(
        Box::leak(Box::new(Engine::cpu())) as &Engine
    )) {
        for n in [1, 257, 65_537] {
            let g = data(&mut rng, n);
            let want_norm = cpu::stats::grad_stats(&g, 0.0).l2_norm;
            let (clipped, before) = engine.clip(&g, Clip::Norm(1.0)).unwrap();
            assert!((before.l2_norm - want_norm).abs() <= 1e-5 * want_norm);
            let coef = lossgpu::ops::gradient::clip_coefficient(want_norm, 1.0);
            for (c, v) in clipped.iter().zip(&g) {
                assert!(
                    (*c as f64 - *v as f64 * coef).abs() <= 1e-5 * (*v as f64 * coef).abs() + 1e-12
                );
            }
            let after = cpu::stats::grad_stats(&clipped, 0.0).l2_norm;
            assert!(after <= 1.0 + 1e-5, "norm after clipping {after}");
            let (clipped, _) = engine.clip(&g, Clip::Value(0.5)).unwrap();
            assert_eq!(clipped, cpu::stats::clip_value(&g, 0.5));
            // A norm already below the limit is left alone.
            let (same, _) = engine.clip(&g, Clip::Norm(1e9)).unwrap();
            assert_eq!(same, g);
        }
        assert_err(engine.clip(&[1.0], Clip::Norm(0.0)), "--max-norm must be");
        assert_err(
            engine.clip(&[1.0], Clip::Value(f32::NAN)),
            "--max-value must be",
        );
        assert_err(
            engine.clip::<f32>(&[], Clip::Value(1.0)),
            "gradient is empty",
        );
    }
}

#[test]
fn global_norm_clip_spans_all_layers_in_place() {
    let mut rng = rng("global clip");
    for engine in engines().into_iter().chain(std::iter::once(
        Box::leak(Box::new(Engine::cpu())) as &Engine
    )) {
        let layers: Vec<Vec<f32>> = [3, 1000, 70_001]
            .iter()
            .map(|&n| data(&mut rng, n))
            .collect();
        let mut tensors: Vec<_> = layers.iter().map(|l| engine.upload(l).unwrap()).collect();
        let before = engine
            .clip_tensors(&mut tensors, lossgpu::Clip::Norm(2.0))
            .unwrap();
        let mut host = layers.clone();
        let norm = cpu::stats::clip_norm(&mut host, 2.0);
        assert!((before.l2_norm - norm).abs() <= 1e-5 * norm);
        for (t, h) in tensors.iter().zip(&host) {
            let got = engine.read(t).unwrap();
            for (a, b) in got.iter().zip(h) {
                assert!((a - b).abs() <= 1e-5 * b.abs() + 1e-12, "{a} vs {b}");
            }
        }
        let all: Vec<f32> = tensors
            .iter()
            .flat_map(|t| engine.read(t).unwrap())
            .collect();
        assert!(cpu::stats::grad_stats(&all, 0.0).l2_norm <= 2.0 + 1e-4);
    }
}

#[test]
fn health_report_names_the_symptoms() {
    for engine in engines().into_iter().chain(std::iter::once(
        Box::leak(Box::new(Engine::cpu())) as &Engine
    )) {
        let t = HealthThresholds::default();
        // Ten sigmoid layers: each multiplies the gradient by at most 0.25.
        let layers: Vec<Vec<f32>> = (0..10).map(|i| vec![0.25f32.powi(10 - i); 100]).collect();
        let refs: Vec<&[f32]> = layers.iter().map(|l| l.as_slice()).collect();
        let r = engine.health_report(&refs, &t).unwrap();
        assert_eq!(r.verdict, Verdict::Vanishing);
        assert!((r.layers[0].ratio.unwrap() - 0.25).abs() < 1e-5);
        assert_eq!(r.layers[9].ratio, None);
        // Growing 20× per layer towards the input: exploding.
        let layers: Vec<Vec<f32>> = (0..4).map(|i| vec![20f32.powi(3 - i); 10]).collect();
        let refs: Vec<&[f32]> = layers.iter().map(|l| l.as_slice()).collect();
        let r = engine.health_report(&refs, &t).unwrap();
        assert_eq!(r.verdict, Verdict::Exploding);
        assert_eq!(r.layers[3].verdict, Verdict::Healthy);
        // A NaN anywhere wins.
        let bad = [1.0f32, f32::NAN];
        let ok = [0.5f32, 0.5];
        let r = engine.health_report(&[&ok, &bad], &t).unwrap();
        assert_eq!(
            (r.verdict, r.layers[0].verdict),
            (Verdict::NonFinite, Verdict::Healthy)
        );
        let r = engine.health_report(&[&ok, &ok], &t).unwrap();
        assert_eq!(r.verdict, Verdict::Healthy);
        assert_err(engine.health_report::<f32>(&[], &t), "no layers given");
    }
}

/// clip-by-norm at the extremes gives PyTorch's result on every backend: a
/// NaN norm makes every value NaN, an infinite one makes finite values 0
/// (and infinite ones NaN), and a norm past f32::MAX of finite values clips
/// as the f64 reference does.
#[test]
fn clip_by_norm_agrees_at_the_extremes() {
    let cpu = Engine::cpu();
    for engine in [Some(&cpu), gpu(), gpu_small()].into_iter().flatten() {
        let what = format!("{:?}", engine.backend());
        let (out, before) = engine
            .clip(&[1.0, f32::NAN, -2.0, 0.5], Clip::Norm(1.0))
            .unwrap();
        assert!(before.l2_norm.is_nan(), "{what}");
        assert!(out.iter().all(|v| v.is_nan()), "{what}: {out:?}");
        assert!(lossgpu::ops::gradient::clip_coefficient(before.l2_norm, 1.0).is_nan());
        let (out, before) = engine
            .clip(&[1.0, f32::INFINITY, -2.0], Clip::Norm(1.0))
            .unwrap();
        assert_eq!(before.l2_norm, f64::INFINITY, "{what}");
        assert_eq!(out[0], 0.0, "{what}: {out:?}");
        assert!(out[1].is_nan() && out[2] == 0.0, "{what}: {out:?}");
        // Finite values whose norm is beyond f32::MAX (about 6.8e38 here).
        let g: Vec<f32> = (0..1031)
            .map(|i| {
                if i % 257 == 0 {
                    3e38
                } else {
                    (i % 7) as f32 - 3.0
                }
            })
            .collect();
        let (out, before) = engine.clip(&g, Clip::Norm(2.0)).unwrap();
        let norm: f64 = g.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        assert!(
            (before.l2_norm - norm).abs() <= 1e-6 * norm,
            "{what}: {} vs {norm}",
            before.l2_norm
        );
        for (i, (&o, &v)) in out.iter().zip(&g).enumerate() {
            let want = v as f64 * 2.0 / (norm + 1e-6);
            assert!(
                (o as f64 - want).abs() <= 1e-5 * want.abs() + 1e-44,
                "{what} [{i}]: {o} vs {want}"
            );
        }
    }
}

/// NaN weights propagate, like NaN data: the weighted mean and sum are NaN
/// and so is that sample's weighted value, on every backend.
#[test]
fn nan_weights_propagate() {
    let cpu = Engine::cpu();
    let (p, t) = ([0.5f32, 1.0, -2.0], [1.0f32, 1.5, -1.0]);
    let w = [1.0f32, f32::NAN, 2.0];
    for engine in [Some(&cpu), gpu()].into_iter().flatten() {
        let input = LossInput::new(&p, &t).with_weights(&w);
        for reduction in [Reduction::Mean, Reduction::Sum] {
            let v = engine.loss(&Loss::Mse, &input, reduction).unwrap();
            assert!(
                v.scalar().unwrap().is_nan(),
                "{:?} {reduction:?}",
                engine.backend()
            );
        }
        let v = engine.loss(&Loss::Mse, &input, Reduction::None).unwrap();
        let v = v.per_sample().unwrap();
        assert!(v[1].is_nan() && v[0] == 0.25 && v[2] == 2.0, "{v:?}");
    }
}

#[test]
fn the_cpu_backends_grad_stats_match_the_reference_over_many_blocks() {
    // Engine::cpu() sums squares per block on every core; the counts and
    // the maximum are exact, the norm within 1e-12 of the one-loop
    // reference, with NaN and ±inf kept apart from the sums.
    let mut rng = rng("cpu grad-stats");
    let mut g = data(&mut rng, 1_000_003);
    for (i, v) in g.iter_mut().enumerate().step_by(9973) {
        *v = if i % 2 == 0 { 1e-9 } else { 1e30 };
    }
    let engine = Engine::cpu();
    let want = cpu::stats::grad_stats(&g, 1e-7);
    let got = engine.grad_stats(&g, 1e-7).unwrap();
    assert!(
        (got.l2_norm - want.l2_norm).abs() <= 1e-12 * want.l2_norm,
        "{got:?} {want:?}"
    );
    assert_eq!(got.max_abs, want.max_abs);
    assert_eq!(got.vanishing_fraction, want.vanishing_fraction);
    g[500_000] = f32::NAN;
    g[700_001] = f32::INFINITY;
    let got = engine.grad_stats(&g, 1e-7).unwrap();
    let want = cpu::stats::grad_stats(&g, 1e-7);
    assert!(got.l2_norm.is_nan() && got.max_abs.is_nan());
    assert_eq!((got.nan_count, got.inf_count), (1, 1));
    assert_eq!(got.vanishing_fraction, want.vanishing_fraction);
}

/// Engine::cpu()'s f32 lanes (squares in f64, exact maxima and counts)
/// against the one-loop f64 reference at odd lengths, with f32::MAX,
/// subnormals, −0, values at the vanishing threshold and scattered NaN and
/// ±inf; bf16 gives the stats of its f32 values; clipping several tensors
/// in place by norm and by value gives the reference's values.
#[test]
fn the_cpu_backends_grad_stats_and_clip_at_odd_lengths_and_extremes() {
    let mut rng = rng("cpu grad-stats extremes");
    let engine = Engine::cpu();
    let eps = 1e-3f32;
    let odd = [
        f32::MAX,
        -f32::MAX,
        1e-45,
        -0.0,
        eps,
        -eps,
        0.999e-3,
        1e30,
        -1e4,
    ];
    for n in LENGTHS {
        let mut g = data(&mut rng, n);
        for (k, &v) in odd.iter().enumerate() {
            g[(k * 131) % n] = v;
        }
        let label = format!("n={n}");
        same_stats(
            &label,
            &engine.grad_stats(&g, eps).unwrap(),
            &cpu::stats::grad_stats(&g, eps),
        );
        let b: Vec<lossgpu::bf16> = g.iter().map(|&v| lossgpu::bf16::from_f32(v)).collect();
        let wide: Vec<f32> = b.iter().map(|v| v.to_f32()).collect();
        same_stats(
            &label,
            &engine.grad_stats(&b, eps).unwrap(),
            &cpu::stats::grad_stats(&wide, eps),
        );
        for (i, v) in [
            (n / 2, f32::NAN),
            (n / 3, f32::INFINITY),
            (n - 1, f32::NEG_INFINITY),
        ] {
            g[i] = v;
            let got = engine.grad_stats(&g, eps).unwrap();
            same_stats(&label, &got, &cpu::stats::grad_stats(&g, eps));
        }
    }
    // Clipping: three tensors of odd lengths, finite, clipped as one.
    for clip in [Clip::Norm(2.0), Clip::Value(0.75)] {
        let layers: Vec<Vec<f32>> = [1, 255, 65_537]
            .iter()
            .map(|&n| (0..n).map(|_| (rng.random::<f32>() - 0.5) * 8.0).collect())
            .collect();
        let mut tensors: Vec<_> = layers.iter().map(|l| engine.upload(l).unwrap()).collect();
        let before = engine.clip_tensors(&mut tensors, clip).unwrap();
        let mut want = layers.clone();
        match clip {
            Clip::Norm(c) => {
                let norm = cpu::stats::clip_norm(&mut want, c);
                assert!(
                    (before.l2_norm - norm).abs() <= 1e-12 * norm,
                    "{before:?} {norm}"
                );
            }
            Clip::Value(c) => want
                .iter_mut()
                .for_each(|w| *w = cpu::stats::clip_value(w, c)),
        }
        for (t, w) in tensors.iter().zip(&want) {
            for (a, b) in engine.read(t).unwrap().iter().zip(w) {
                assert!((a - b).abs() <= 1e-6 * b.abs(), "{clip:?}: {a} vs {b}");
            }
        }
        let halves: Vec<Vec<lossgpu::bf16>> = layers
            .iter()
            .map(|l| l.iter().map(|&v| lossgpu::bf16::from_f32(v)).collect())
            .collect();
        let mut tensors: Vec<_> = halves.iter().map(|h| engine.upload(h).unwrap()).collect();
        engine.clip_tensors(&mut tensors, clip).unwrap();
        let mut wide: Vec<Vec<f32>> = halves
            .iter()
            .map(|h| h.iter().map(|v| v.to_f32()).collect())
            .collect();
        match clip {
            Clip::Norm(c) => drop(cpu::stats::clip_norm(&mut wide, c)),
            Clip::Value(c) => wide
                .iter_mut()
                .for_each(|w| *w = cpu::stats::clip_value(w, c)),
        }
        for (t, w) in tensors.iter().zip(&wide) {
            for (a, b) in engine.read(t).unwrap().iter().zip(w) {
                let b = lossgpu::bf16::from_f32(*b);
                assert!(
                    a.to_bits().abs_diff(b.to_bits()) <= 1,
                    "{clip:?} bf16: {a} vs {b}"
                );
            }
        }
    }
}
