//! Logistic regression fitted by gradient descent, with the loss and its
//! gradient computed by the engine.
//!
//! Why binary cross-entropy: with p = σ(z), z = w·x + b, the model says
//! y ~ Bernoulli(p), so the likelihood of the data is Πᵢ pᵢ^yᵢ (1 − pᵢ)^(1−yᵢ)
//! and its negative log is Σᵢ −[yᵢ log pᵢ + (1 − yᵢ) log(1 − pᵢ)] = Σᵢ BCE(zᵢ, yᵢ).
//! Minimising the mean BCE is therefore maximising the likelihood: gradient
//! descent on it is a maximum-likelihood fit. On the logits the gradient is
//! simply σ(z) − y (SPEC §1, `bce-logits`), which the engine returns; the chain
//! rule through z = Xw + b is done here on the host: dL/dw = Xᵀg, dL/db = Σg.
//!
//! The data: two Gaussian classes with identity covariance, means μ₀ and μ₁.
//! Their true log-odds are linear, w* = μ₁ − μ₀ and b* = (|μ₀|² − |μ₁|²)/2, so
//! the maximum-likelihood fit should approach them.
//!
//! cargo run --release --example logistic_regression [-- --quick]

mod common;

use common::Rng;
use lossgpu::{Loss, LossInput, Reduction};
use std::process::exit;
use std::time::Instant;

fn main() -> lossgpu::Result<()> {
    let quick = common::quick();
    let started = Instant::now();
    let engine = common::engine();

    let (n, steps, every) = if quick {
        (4_000, 60, 15)
    } else {
        (20_000, 400, 50)
    };
    let lr = 2.0f32;
    let (mu0, mu1) = ([-0.5f64, 0.0], [2.5f64, 2.0]);
    let true_w = [mu1[0] - mu0[0], mu1[1] - mu0[1]];
    let true_b = (mu0[0] * mu0[0] + mu0[1] * mu0[1] - mu1[0] * mu1[0] - mu1[1] * mu1[1]) / 2.0;

    // Half of each class, features row-major (n × 2).
    let mut rng = Rng(20_240_601);
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 2;
        let mu = if class == 1 { mu1 } else { mu0 };
        x.push((mu[0] + rng.normal()) as f32);
        x.push((mu[1] + rng.normal()) as f32);
        y.push(class as f32);
    }

    let logits = |w: &[f32; 2], b: f32| -> Vec<f32> {
        (0..n)
            .map(|i| w[0] * x[2 * i] + w[1] * x[2 * i + 1] + b)
            .collect()
    };

    let (mut w, mut b) = ([0.0f32; 2], 0.0f32);
    let mut first_loss = f64::NAN;
    let mut loss = f64::NAN;
    println!("n = {n}, {steps} steps of gradient descent, learning rate {lr}");
    for step in 0..=steps {
        let z = logits(&w, b);
        let input = LossInput::new(&z, &y);
        loss = engine
            .loss(&Loss::BceLogits, &input, Reduction::Mean)?
            .scalar()
            .expect("mean is a scalar");
        if step == 0 {
            first_loss = loss;
        }
        if step % every == 0 || step == steps {
            println!("  step {step:>4}: mean BCE {loss:.5}");
        }
        if step == steps {
            break;
        }
        // g_i = (σ(z_i) − y_i)/n: the gradient of the mean w.r.t. each logit.
        let g = engine.loss_grad(&Loss::BceLogits, &input, Reduction::Mean)?;
        let (mut dw, mut db) = ([0.0f64; 2], 0.0f64);
        for (i, &gi) in g.iter().enumerate() {
            dw[0] += gi as f64 * x[2 * i] as f64;
            dw[1] += gi as f64 * x[2 * i + 1] as f64;
            db += gi as f64;
        }
        w[0] -= lr * dw[0] as f32;
        w[1] -= lr * dw[1] as f32;
        b -= lr * db as f32;
    }

    // Accuracy through the engine too: zero-one loss on signed labels counts
    // the samples with (2y − 1)·z ≤ 0.
    let z = logits(&w, b);
    let signs: Vec<f32> = y.iter().map(|&t| 2.0 * t - 1.0).collect();
    let error = engine
        .loss(&Loss::ZeroOne, &LossInput::new(&z, &signs), Reduction::Mean)?
        .scalar()
        .expect("mean is a scalar");
    let accuracy = 1.0 - error;
    println!(
        "fitted w = ({:.3}, {:.3}), b = {:.3}; generating log-odds w = ({}, {}), b = {}",
        w[0], w[1], b, true_w[0], true_w[1], true_b
    );
    println!(
        "mean BCE {first_loss:.4} -> {loss:.4}, training accuracy {:.2}% ({:.1} s)",
        100.0 * accuracy,
        started.elapsed().as_secs_f64()
    );

    if !(loss < 0.5 * first_loss && accuracy > 0.9) {
        eprintln!(
            "FAILED: expected the loss to halve and accuracy > 0.9, got {first_loss} -> {loss} and {accuracy}"
        );
        exit(1);
    }
    println!("ok: the loss fell and accuracy > 90%");
    Ok(())
}
