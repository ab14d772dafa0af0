//! Reductions over data that arrives in parts: the sums of each part merge
//! into what one call over all of it gives, on every backend.

mod common;

use common::{assert_err, assert_scalar_close, data, gpu, gpu_small, rng};
use lossgpu::{Engine, Error, Loss, LossInput, LossSums, MetricSums, Reduction};
use rand::Rng;

#[test]
fn loss_sums_of_parts_merge_into_the_whole() {
    let mut rng = rng("loss parts");
    let cpu = Engine::cpu();
    for engine in [Some(&cpu), gpu(), gpu_small()].into_iter().flatten() {
        let n = 10_007;
        let (p, t) = (data(&mut rng, n), data(&mut rng, n));
        let w: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
        for loss in [
            Loss::Mse,
            Loss::Rmse,
            Loss::Huber { delta: 0.5 },
            Loss::LogCosh,
        ] {
            for weighted in [false, true] {
                let input = |a: usize, b: usize| {
                    let i = LossInput::new(&p[a..b], &t[a..b]);
                    if weighted {
                        i.with_weights(&w[a..b])
                    } else {
                        i
                    }
                };
                let cuts = [0, 1, 4096, 7001, n];
                let merged = cuts
                    .windows(2)
                    .map(|c| engine.loss_sums(&loss, &input(c[0], c[1])).unwrap())
                    .fold(LossSums::default(), LossSums::merge);
                assert_eq!(merged.count, n as u64);
                for reduction in [Reduction::Mean, Reduction::Sum] {
                    if loss == Loss::Rmse && reduction == Reduction::Sum {
                        assert_err(merged.finish(&loss, reduction), "not sum");
                        continue;
                    }
                    let whole = engine.loss(&loss, &input(0, n), reduction).unwrap();
                    assert_scalar_close(
                        &format!("{:?} {loss:?} {reduction:?}", engine.backend()),
                        merged.finish(&loss, reduction).unwrap(),
                        whole.scalar().unwrap(),
                        1e-6,
                    );
                }
            }
        }
        // An offender in a part is named at its index in the whole.
        let mut labels = vec![1.0f32; 100];
        labels[77] = 0.5;
        let e = engine
            .loss_sums(&Loss::Hinge, &LossInput::new(&p[50..100], &labels[50..]))
            .unwrap_err()
            .offset(50);
        assert!(matches!(e, Error::Value { index: 77, .. }), "{e}");
        assert!(e.to_string().contains("target[77] = 0.5"), "{e}");
    }
}

#[test]
fn metric_sums_and_grad_stats_of_parts_merge_into_the_whole() {
    let mut rng = rng("metric parts");
    let cpu = Engine::cpu();
    for engine in [Some(&cpu), gpu()].into_iter().flatten() {
        let n = 5003;
        let (p, t) = (data(&mut rng, n), data(&mut rng, n));
        let whole = engine
            .regression_metrics(&LossInput::new(&p, &t), 1.0, 0.3)
            .unwrap();
        let merged = [(0, 2000), (2000, n)]
            .iter()
            .map(|&(a, b)| {
                engine
                    .metric_sums(&LossInput::new(&p[a..b], &t[a..b]), 1.0, 0.3)
                    .unwrap()
            })
            .fold(MetricSums::default(), MetricSums::merge)
            .finish()
            .unwrap();
        assert_eq!(merged.n, whole.n);
        for (a, b) in [
            (merged.mse, whole.mse),
            (merged.mape, whole.mape),
            (merged.quantile, whole.quantile),
        ] {
            assert_scalar_close("metrics", a, b, 1e-6);
        }
        let mut g = data(&mut rng, n);
        g[10] = 1e-9;
        let whole = engine.grad_stats(&g, 1e-6).unwrap();
        let merged = engine
            .grad_stats(&g[..1234], 1e-6)
            .unwrap()
            .merge(&engine.grad_stats(&g[1234..], 1e-6).unwrap());
        assert_eq!(merged.n, whole.n);
        assert_scalar_close("norm", merged.l2_norm, whole.l2_norm, 1e-6);
        assert_eq!(merged.max_abs, whole.max_abs);
        assert_scalar_close(
            "vanishing",
            merged.vanishing_fraction,
            whole.vanishing_fraction,
            1e-12,
        );
        g[3000] = f32::NAN;
        let with_nan = engine
            .grad_stats(&g[..1234], 1e-6)
            .unwrap()
            .merge(&engine.grad_stats(&g[1234..], 1e-6).unwrap());
        assert!(with_nan.l2_norm.is_nan() && with_nan.nan_count == 1);
    }
}

/// Partial states merge in any grouping to within 1e-12 relative (f64
/// additions of the same parts, reordered), and a fixed plan gives the same
/// bits every run: a left fold, a right fold and a pairwise tree of 41
/// parts of uneven sizes, for a pointwise loss, a row loss and the fused
/// metrics, on every backend.
#[test]
fn partial_states_merge_in_any_grouping() {
    let mut rng = rng("merge groupings");
    let cpu = Engine::cpu();
    let n = 41 * 257;
    let (p, t) = (data(&mut rng, n), data(&mut rng, n));
    let w: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
    let mut cuts: Vec<usize> = (1..41).map(|_| rng.random_range(0..n)).collect();
    cuts.extend([0, n]);
    cuts.sort_unstable();
    let cols = 7;
    let rows = n / cols;
    let classes: Vec<u32> = (0..rows)
        .map(|_| rng.random_range(0..cols as u32))
        .collect();
    fn tree<S: Copy>(parts: &[S], merge: fn(S, S) -> S) -> S {
        match parts {
            [one] => *one,
            _ => {
                let (a, b) = parts.split_at(parts.len() / 2);
                merge(tree(a, merge), tree(b, merge))
            }
        }
    }
    let close = |what: &str, a: f64, b: f64| {
        assert!((a - b).abs() <= 1e-12 * b.abs(), "{what}: {a} vs {b}");
    };
    for engine in [Some(&cpu), gpu()].into_iter().flatten() {
        let states = |plan: &[usize]| -> Vec<LossSums> {
            plan.windows(2)
                .map(|c| {
                    let input = LossInput::new(&p[c[0]..c[1]], &t[c[0]..c[1]]);
                    let input = input.with_weights(&w[c[0]..c[1]]);
                    engine
                        .loss_sums(&Loss::Huber { delta: 0.5 }, &input)
                        .unwrap()
                })
                .collect()
        };
        let parts = states(&dedup(&cuts));
        let left = parts
            .iter()
            .copied()
            .fold(LossSums::default(), LossSums::merge);
        let right = parts
            .iter()
            .rev()
            .copied()
            .fold(LossSums::default(), LossSums::merge);
        let pairwise = tree(&parts, LossSums::merge);
        for other in [right, pairwise] {
            close("loss sum", other.sum, left.sum);
            close("loss weight sum", other.weight_sum, left.weight_sum);
            assert_eq!(other.count, left.count);
        }
        let again = states(&dedup(&cuts))
            .into_iter()
            .fold(LossSums::default(), LossSums::merge);
        assert_eq!(
            again.sum.to_bits(),
            left.sum.to_bits(),
            "the same plan, the same bits"
        );
        // A row loss, cut between rows.
        let row_cuts: Vec<usize> = dedup(&cuts.iter().map(|c| c / cols).collect::<Vec<_>>());
        let row_parts: Vec<LossSums> = row_cuts
            .windows(2)
            .map(|c| {
                let z = &p[c[0] * cols..c[1] * cols];
                let input = LossInput::classes(z, cols, &classes[c[0]..c[1]]);
                engine.loss_sums(&Loss::CrossEntropy, &input).unwrap()
            })
            .collect();
        let left = row_parts
            .iter()
            .copied()
            .fold(LossSums::default(), LossSums::merge);
        let pairwise = tree(&row_parts, LossSums::merge);
        close("cross-entropy", pairwise.sum, left.sum);
        assert_eq!(left.count, rows as u64);
        // The fused metrics.
        let metric_parts: Vec<MetricSums> = dedup(&cuts)
            .windows(2)
            .map(|c| {
                let input = LossInput::new(&p[c[0]..c[1]], &t[c[0]..c[1]]);
                engine.metric_sums(&input, 1.0, 0.3).unwrap()
            })
            .collect();
        let left = metric_parts
            .iter()
            .copied()
            .fold(MetricSums::default(), MetricSums::merge);
        let pairwise = tree(&metric_parts, MetricSums::merge);
        for (a, b) in pairwise.sums.iter().zip(left.sums) {
            close("metric sum", *a, b);
        }
    }
}

/// Cut points without repeats (so that no part is empty).
fn dedup(cuts: &[usize]) -> Vec<usize> {
    let mut out = cuts.to_vec();
    out.dedup();
    out
}
