//! Outlier sensitivity of MSE, MAE and Huber: the same line fitted three ways.
//!
//! Data on y = 2x + 1 with a little Gaussian noise, where 10% of the points are
//! gross errors (shifted up by 20 to 30). Each loss fits ŷ = a·x + b by
//! gradient descent: the engine returns d loss/d ŷᵢ for every point and the
//! host applies the chain rule, dL/da = Σ gᵢxᵢ, dL/db = Σ gᵢ.
//!
//! The claim (the seed's): the squared error grows with e², so a few large
//! residuals dominate its gradient and drag the line towards them; the
//! absolute error's gradient is bounded (±1 per point) and Huber's is bounded
//! past δ, so both stay near the bulk of the data.
//!
//! cargo run --release --example robust_regression [-- --quick]

mod common;

use common::Rng;
use lossgpu::{Engine, Loss, LossInput, Reduction};
use std::process::exit;
use std::time::Instant;

const TRUE_SLOPE: f64 = 2.0;
const TRUE_INTERCEPT: f64 = 1.0;

/// Gradient descent on the mean loss from (0, 0); returns (a, b, final loss).
fn fit(
    engine: &Engine,
    loss: &Loss,
    x: &[f32],
    y: &[f32],
    steps: usize,
) -> lossgpu::Result<(f64, f64, f64)> {
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for step in 0..steps {
        let pred: Vec<f32> = x.iter().map(|&xi| (a * xi as f64 + b) as f32).collect();
        let g = engine.loss_grad(loss, &LossInput::new(&pred, y), Reduction::Mean)?;
        let (mut da, mut db) = (0.0f64, 0.0f64);
        for (&gi, &xi) in g.iter().zip(x) {
            da += gi as f64 * xi as f64;
            db += gi as f64;
        }
        // A step that shrinks late on, so the subgradient methods (MAE, and
        // Huber on the outliers) settle instead of circling the optimum.
        let lr = 0.1 / (1.0 + step as f64 / 100.0);
        a -= lr * da;
        b -= lr * db;
    }
    let pred: Vec<f32> = x.iter().map(|&xi| (a * xi as f64 + b) as f32).collect();
    let value = engine
        .loss(loss, &LossInput::new(&pred, y), Reduction::Mean)?
        .scalar()
        .expect("mean is a scalar");
    Ok((a, b, value))
}

fn main() -> lossgpu::Result<()> {
    let quick = common::quick();
    let started = Instant::now();
    let engine = common::engine();

    let (n, steps) = if quick { (2_000, 150) } else { (20_000, 600) };
    let mut rng = Rng(7);
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    let mut outliers = 0;
    for _ in 0..n {
        let xi = -3.0 + 6.0 * rng.uniform();
        let mut yi = TRUE_SLOPE * xi + TRUE_INTERCEPT + 0.3 * rng.normal();
        if rng.uniform() < 0.1 {
            yi += 20.0 + 10.0 * rng.uniform();
            outliers += 1;
        }
        x.push(xi as f32);
        y.push(yi as f32);
    }
    println!(
        "n = {n} points on y = {TRUE_SLOPE}x + {TRUE_INTERCEPT} (noise sd 0.3), {outliers} of them \
         shifted up by 20..30; {steps} gradient steps per loss"
    );

    let mut distance = Vec::new();
    for loss in [Loss::Mse, Loss::Mae, Loss::Huber { delta: 1.0 }] {
        let (a, b, value) = fit(&engine, &loss, &x, &y, steps)?;
        let d = ((a - TRUE_SLOPE).powi(2) + (b - TRUE_INTERCEPT).powi(2)).sqrt();
        println!(
            "  {:<6} slope {a:7.4}  intercept {b:7.4}  distance from (2, 1): {d:.4}  (final loss {value:.4})",
            loss.name()
        );
        distance.push(d);
    }
    let (mse, mae, huber) = (distance[0], distance[1], distance[2]);
    println!(
        "mse is pulled {:.0}x further than huber and {:.0}x further than mae ({:.1} s)",
        mse / huber,
        mse / mae,
        started.elapsed().as_secs_f64()
    );

    // Expected: MSE's intercept moves by the outliers' mean share, about
    // 10% × 25 = 2.5. Each outlier pulls Huber by at most δ = 1, balanced by
    // the bulk when 0.9·shift = 0.1·δ, a shift of 0.11; MAE fits the median,
    // which moves to the bulk's 0.5/0.9 quantile, 0.3·Φ⁻¹(0.556) = 0.04.
    if !(mse > 5.0 * huber && mse > 5.0 * mae && huber < 0.25 && mae < 0.25) {
        eprintln!(
            "FAILED: expected mse to be pulled much further than huber and mae, \
             got distances mse {mse}, huber {huber}, mae {mae}"
        );
        exit(1);
    }
    println!("ok: the outliers pull the mse line away; huber and mae stay on the data");
    Ok(())
}
