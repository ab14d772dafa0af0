//! The CPU backend's results have the same bits on a one-thread pool,
//! where its blocks run in order on the calling thread with no hop to a
//! worker, as on a pool of three, where the workers take them: outputs
//! written a block at a time (activations, gradients, per-sample row
//! losses, clipping), sums (metrics, grad-stats, the f64 exponential's
//! gradient) and the scan that names the first bad value.

mod common;

use common::{data, rng};
use lossgpu::{Activation, Clip, Engine, Loss, LossInput, Reduction};
use rand::Rng;

/// `f` inside a fresh pool of `threads` threads.
fn on<R: Send>(threads: usize, f: impl Fn() -> R + Send + Sync) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
        .install(f)
}

/// Every result of one run, as text that shows each value's bits.
fn everything(x: &[f32], t: &[f32], signs: &[f32], classes: &[u32], m: usize) -> Vec<String> {
    let e = Engine::cpu();
    let pointwise = LossInput::new(x, t);
    let rows = LossInput::classes(x, m, classes);
    let mut bad = classes.to_vec();
    bad[classes.len() / 2 + 3] = m as u32;
    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    vec![
        format!(
            "{:?}",
            bits(&e.activation(&Activation::Sigmoid, x).unwrap())
        ),
        format!("{:?}", bits(&e.activation(&Activation::Relu, x).unwrap())),
        format!(
            "{:?}",
            bits(
                &e.loss_grad(&Loss::Mse, &pointwise, Reduction::Mean)
                    .unwrap()
            )
        ),
        format!(
            "{:?}",
            e.loss(&Loss::Huber { delta: 1.0 }, &pointwise, Reduction::Sum)
                .unwrap()
        ),
        format!(
            "{:?}",
            e.loss(&Loss::CrossEntropy, &rows, Reduction::None).unwrap()
        ),
        format!(
            "{:?}",
            bits(
                &e.loss_grad(&Loss::CrossEntropy, &rows, Reduction::Mean)
                    .unwrap()
            )
        ),
        format!(
            "{:?}",
            bits(
                &e.loss_grad(
                    &Loss::Exponential,
                    &LossInput::new(x, signs),
                    Reduction::Mean
                )
                .unwrap()
            )
        ),
        format!("{:?}", e.regression_metrics(&pointwise, 1.0, 0.5).unwrap()),
        format!("{:?}", e.grad_stats(x, 1e-6).unwrap()),
        format!("{:?}", e.clip(x, Clip::Norm(1.0)).unwrap()),
        format!(
            "{:?}",
            e.loss(
                &Loss::CrossEntropy,
                &LossInput::classes(x, m, &bad),
                Reduction::Mean
            )
            .map_err(|e| e.to_string())
        ),
    ]
}

#[test]
fn one_thread_and_three_give_the_same_bits() {
    let mut rng = rng("threads");
    // Many blocks of 2^14 values, the last one short.
    let (n, m) = (10 * 70_001, 10);
    let x = data(&mut rng, n);
    let t = data(&mut rng, n);
    let signs: Vec<f32> = (0..n)
        .map(|_| if rng.random() { 1.0 } else { -1.0 })
        .collect();
    let classes: Vec<u32> = (0..n / m).map(|_| rng.random_range(0..m as u32)).collect();
    let one = on(1, || everything(&x, &t, &signs, &classes, m));
    let three = on(3, || everything(&x, &t, &signs, &classes, m));
    assert!(
        one.last().is_some_and(|e| e.contains("Err")),
        "{:?}",
        one.last()
    );
    for (k, (a, b)) in one.iter().zip(&three).enumerate() {
        assert!(a == b, "result {k} differs between one thread and three");
    }
}
