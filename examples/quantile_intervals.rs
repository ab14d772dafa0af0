//! Prediction intervals from the quantile (pinball) loss.
//!
//! Heteroscedastic data: y = 1 + 2x + (1.2 + 0.5x)·ε with x ~ U(−2, 2) and
//! ε ~ N(0, 1), so the spread grows from 0.2 at x = −2 to 2.2 at x = 2 and
//! every conditional quantile is a line, q_γ(x) = 1 + 2x + (1.2 + 0.5x)·z_γ.
//! A linear model fitted with `Loss::Quantile { gamma }` (gradient from the
//! engine, chain rule on the host) estimates q_γ: its pinball loss is
//! minimised where a share γ of the points lies below the line. Fitting
//! γ = 0.1, 0.5 and 0.9 gives a median and an 80% prediction range whose
//! width follows the noise (the seed: several γ give a prediction range).
//!
//! cargo run --release --example quantile_intervals [-- --quick]

mod common;

use common::Rng;
use lossgpu::{Engine, Loss, LossInput, Reduction};
use std::process::exit;
use std::time::Instant;

/// z_0.9 = Φ⁻¹(0.9), the standard normal's 0.9 quantile (z_0.1 = −z_0.9).
const Z90: f64 = 1.281_551_565_5;

/// "2.000x + 1.000" / "1.359x - 0.538".
fn line(a: f64, b: f64) -> String {
    format!("{a:.3}x {} {:.3}", if b < 0.0 { '-' } else { '+' }, b.abs())
}

/// Gradient descent on the mean pinball loss from (0, 0); returns (a, b).
fn fit(
    engine: &Engine,
    gamma: f32,
    x: &[f32],
    y: &[f32],
    steps: usize,
) -> lossgpu::Result<(f64, f64)> {
    let loss = Loss::Quantile { gamma };
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for step in 0..steps {
        let pred: Vec<f32> = x.iter().map(|&xi| (a * xi as f64 + b) as f32).collect();
        // gᵢ = (1 − γ)/n where the point is below the line, −γ/n where not.
        let g = engine.loss_grad(&loss, &LossInput::new(&pred, y), Reduction::Mean)?;
        let (mut da, mut db) = (0.0f64, 0.0f64);
        for (&gi, &xi) in g.iter().zip(x) {
            da += gi as f64 * xi as f64;
            db += gi as f64;
        }
        // The subgradient never shrinks to 0, so the step does.
        let lr = 2.0 / (1.0 + step as f64 / 50.0);
        a -= lr * da;
        b -= lr * db;
    }
    Ok((a, b))
}

fn main() -> lossgpu::Result<()> {
    let quick = common::quick();
    let started = Instant::now();
    let engine = common::engine();

    let (n, steps) = if quick { (4_000, 150) } else { (20_000, 600) };
    let mut rng = Rng(2024);
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let xi = -2.0 + 4.0 * rng.uniform();
        let yi = 1.0 + 2.0 * xi + (1.2 + 0.5 * xi) * rng.normal();
        x.push(xi as f32);
        y.push(yi as f32);
    }
    println!("n = {n}, y = 1 + 2x + (1.2 + 0.5x)·N(0,1), {steps} gradient steps per quantile");

    let mut lines = Vec::new();
    let mut worst = 0.0f64;
    for (gamma, z) in [(0.1f32, -Z90), (0.5, 0.0), (0.9, Z90)] {
        let (a, b) = fit(&engine, gamma, &x, &y, steps)?;
        let below = x
            .iter()
            .zip(&y)
            .filter(|&(&xi, &yi)| (yi as f64) < a * xi as f64 + b)
            .count() as f64
            / n as f64;
        println!(
            "  γ = {gamma}: fitted {}  (true {}), share of points below it {below:.4}",
            line(a, b),
            line(2.0 + 0.5 * z, 1.0 + 1.2 * z)
        );
        worst = worst.max((below - gamma as f64).abs());
        lines.push((a, b));
    }
    let width = |xv: f64| (lines[2].0 - lines[0].0) * xv + (lines[2].1 - lines[0].1);
    let inside = x
        .iter()
        .zip(&y)
        .filter(|&(&xi, &yi)| {
            let (xi, yi) = (xi as f64, yi as f64);
            yi >= lines[0].0 * xi + lines[0].1 && yi < lines[2].0 * xi + lines[2].1
        })
        .count() as f64
        / n as f64;
    println!(
        "80% range [q0.1, q0.9]: width {:.2} at x = -2, {:.2} at x = 2 (true {:.2}, {:.2}); holds {:.1}% of points ({:.1} s)",
        width(-2.0),
        width(2.0),
        2.0 * Z90 * 0.2,
        2.0 * Z90 * 2.2,
        100.0 * inside,
        started.elapsed().as_secs_f64()
    );

    if worst > 0.05 {
        eprintln!(
            "FAILED: a share of points below its line is {worst:.4} away from γ (allowed 0.05)"
        );
        exit(1);
    }
    let widens = width(2.0) > 4.0 * width(-2.0);
    if !widens {
        eprintln!("FAILED: the range should widen with the noise (11x from x = -2 to 2)");
        exit(1);
    }
    println!("ok: each share is within 0.05 of its γ (worst {worst:.4}) and the range widens with the noise");
    Ok(())
}
