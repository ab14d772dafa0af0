//! Gradient health: statistics and clipping on the GPU against the f64
//! reference, past f32's square range, with NaN and inf, chunked, and the
//! per-layer report's verdicts.

mod common;

use common::{data, gpu, gpu_small, rng, LENGTHS};
use lossgpu::{cpu, Clip, Engine, GradStats, HealthThresholds, Verdict};

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
        assert!(engine.clip(&[1.0], Clip::Norm(0.0)).is_err());
        assert!(engine.clip(&[1.0], Clip::Value(f32::NAN)).is_err());
        assert!(engine.clip(&[], Clip::Value(1.0)).is_err());
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
        assert!(engine.health_report(&[], &t).is_err());
    }
}
