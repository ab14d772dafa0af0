//! The fused metrics pass against each metric's own loss and the f64
//! reference.

mod common;

use common::{assert_err, assert_scalar_close, data, gpu, gpu_small, rng};
use lossgpu::{cpu, Engine, Loss, LossInput, Reduction};
use rand::Rng;

#[test]
fn fused_metrics_match_the_reference_and_the_single_losses() {
    let mut rng = rng("metrics");
    let cpu_engine = Engine::cpu();
    for engine in [gpu(), gpu_small(), Some(&cpu_engine)]
        .into_iter()
        .flatten()
    {
        let big = if std::ptr::eq(engine, &cpu_engine) {
            65_537
        } else {
            1_000_003
        };
        for n in [1, 7, 257, 65_537, big] {
            let p = data(&mut rng, n);
            let mut t = data(&mut rng, n);
            t[0] = 0.0;
            let w: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0).collect();
            for input in [
                LossInput::new(&p, &t),
                LossInput::new(&p, &t).with_weights(&w),
            ] {
                let m = engine.regression_metrics(&input, 0.7, 0.2).unwrap();
                let (sums, wsum) = cpu::metric_sums(&input, 0.7, 0.2).unwrap();
                let got = [
                    m.mse, m.mae, m.mape, m.smape, m.huber, m.log_cosh, m.quantile,
                ];
                for (k, (g, s)) in got.iter().zip(sums).enumerate() {
                    assert_scalar_close(&format!("metric {k} n={n}"), *g, s / wsum, 1e-5);
                }
                assert_scalar_close("rmse", m.rmse, (sums[0] / wsum).sqrt(), 1e-5);
                assert_eq!(m.n, n);
                let single = engine
                    .loss(&Loss::Huber { delta: 0.7 }, &input, Reduction::Mean)
                    .unwrap();
                assert_scalar_close("huber alone", m.huber, single.scalar().unwrap(), 1e-5);
            }
        }
        assert_err(
            engine.regression_metrics(&LossInput::new(&[1.0], &[1.0]), 0.0, 0.5),
            "--delta must be",
        );
        assert_err(
            engine.regression_metrics(&LossInput::new(&[1.0], &[1.0]), 1.0, 1.5),
            "--quantile must be in (0, 1)",
        );
        assert_err(
            engine.regression_metrics(&LossInput::new(&[1.0, 2.0], &[1.0]), 1.0, 0.5),
            "target has 1 values but the prediction has 2",
        );
        let e = engine
            .regression_metrics(
                &LossInput::new(&[1.0, 2.0], &[1.0, 2.0]).with_weights(&[1.0, -1.0]),
                1.0,
                0.5,
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("weights[1]"), "{e}");
    }
}
