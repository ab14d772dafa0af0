//! Vanishing gradients: a unit gradient pushed back through 12 dense layers.
//!
//! A batch of inputs goes forward through 12 dense layers of width 64 (random
//! weights, zero biases, a fixed seed) with each activation; the activations
//! and their backward passes run on the engine, the matrix products on the
//! host. The loss is the batch mean of the sum of the outputs, so each output
//! unit receives the gradient 1/B. Backpropagation gives each layer's weight
//! gradient dW_l = dz_lᵀ·h_{l−1}, and `engine.health_report` judges them.
//!
//! Initialisation, each activation with the scaling it is used with:
//! Xavier/Glorot normal, Var(W) = 2/(fan_in + fan_out) = 1/64, for sigmoid and
//! tanh; He normal, Var(W) = 2/fan_in = 1/32, for relu, elu and swish. Both
//! keep the forward signal at a steady scale, so what remains is the
//! activation's own derivative. Backwards, a layer multiplies the gradient's
//! norm by about sqrt(64·Var(W))·f'(z): for relu with He init that is
//! sqrt(2)·(1 on half the units) ≈ 1, a steady flow; for sigmoid with Xavier
//! init it is 1·σ'(z) ≤ 0.25 (≈ 0.23 here, as z stays near 0), so eleven
//! layers shrink it by ~1e-7 (the seed: σ' ≤ 0.25, ten layers give ~1e-6).
//! Even under He init sigmoid would shrink by ~0.33 per layer, so the
//! claim does not hang on the choice.
//!
//! cargo run --release --example vanishing_gradients [-- --quick]

mod common;

use common::Rng;
use lossgpu::{Activation, Engine, HealthReport, HealthThresholds, Verdict};
use std::process::exit;
use std::time::Instant;

const WIDTH: usize = 64;
const DEPTH: usize = 12;

/// Result of one network: the health report and the largest f'(z) seen.
struct Run {
    report: HealthReport,
    max_derivative: f32,
}

/// Forward and backward through the network with one activation.
fn run(engine: &Engine, act: &Activation, batch: usize, he_init: bool) -> lossgpu::Result<Run> {
    // The same draws for every activation (one seed), scaled by the init.
    let mut rng = Rng(12_345);
    let var = if he_init {
        2.0 / WIDTH as f64
    } else {
        2.0 / (WIDTH + WIDTH) as f64
    };
    let weights: Vec<Vec<f32>> = (0..DEPTH)
        .map(|_| {
            (0..WIDTH * WIDTH)
                .map(|_| (var.sqrt() * rng.normal()) as f32)
                .collect()
        })
        .collect();
    let input: Vec<f32> = (0..batch * WIDTH).map(|_| rng.normal() as f32).collect();

    // Forward: z_l = h_{l−1}·W_lᵀ (batch × width, row-major), h_l = f(z_l).
    let mut h = vec![input];
    let mut z = Vec::with_capacity(DEPTH);
    let mut max_derivative = 0.0f32;
    for w in &weights {
        let prev = h.last().expect("the input is there");
        let mut zl = vec![0.0f32; batch * WIDTH];
        for b in 0..batch {
            for i in 0..WIDTH {
                let row = &w[i * WIDTH..(i + 1) * WIDTH];
                zl[b * WIDTH + i] = row
                    .iter()
                    .zip(&prev[b * WIDTH..(b + 1) * WIDTH])
                    .map(|(a, c)| a * c)
                    .sum();
            }
        }
        let d = engine.activation_derivative(act, &zl)?;
        max_derivative = d.iter().fold(max_derivative, |m, &v| m.max(v));
        h.push(engine.activation(act, &zl)?);
        z.push(zl);
    }

    // Backward from d(mean over the batch of Σ outputs)/d h_L = 1/B.
    let mut dh = vec![1.0 / batch as f32; batch * WIDTH];
    let mut grads = vec![Vec::new(); DEPTH];
    for l in (0..DEPTH).rev() {
        let dz = engine.activation_backward(act, &z[l], &dh)?;
        let prev = &h[l];
        let mut dw = vec![0.0f32; WIDTH * WIDTH];
        let mut next = vec![0.0f32; batch * WIDTH];
        for b in 0..batch {
            for i in 0..WIDTH {
                let g = dz[b * WIDTH + i];
                for j in 0..WIDTH {
                    dw[i * WIDTH + j] += g * prev[b * WIDTH + j];
                    next[b * WIDTH + j] += g * weights[l][i * WIDTH + j];
                }
            }
        }
        grads[l] = dw;
        dh = next;
    }

    let layers: Vec<&[f32]> = grads.iter().map(|g| g.as_slice()).collect();
    let report = engine.health_report(&layers, &HealthThresholds::default())?;
    Ok(Run {
        report,
        max_derivative,
    })
}

fn mark(v: Verdict) -> char {
    match v {
        Verdict::Healthy => ' ',
        Verdict::Vanishing => 'v',
        Verdict::Exploding => 'x',
        Verdict::NonFinite => '!',
    }
}

fn main() -> lossgpu::Result<()> {
    let quick = common::quick();
    let started = Instant::now();
    let engine = common::engine();

    let batch = if quick { 16 } else { 256 };
    let nets = [
        ("sigmoid", Activation::Sigmoid, false),
        ("tanh", Activation::Tanh, false),
        ("relu", Activation::Relu, true),
        ("elu", Activation::Elu { alpha: 1.0 }, true),
        ("swish", Activation::Swish { beta: 1.0 }, true),
    ];
    let mut runs = Vec::new();
    for (_, act, he) in &nets {
        runs.push(run(&engine, act, batch, *he)?);
    }

    println!(
        "{DEPTH} dense layers of width {WIDTH}, batch {batch}: ‖dW‖ per layer, input first \
         (v = vanishing, x = exploding by the default health thresholds)"
    );
    // One row: a label, then one right-aligned cell per activation.
    let row = |label: &str, cells: Vec<String>| {
        let cells: Vec<String> = cells.iter().map(|c| format!("{c:>11}")).collect();
        println!("{label:<10}{}", cells.join(""));
    };
    row(
        "",
        nets.iter().map(|(name, ..)| format!("{name} ")).collect(),
    );
    row(
        "init",
        nets.iter()
            .map(|(_, _, he)| format!("{} ", if *he { "He" } else { "Xavier" }))
            .collect(),
    );
    for l in 0..DEPTH {
        row(
            &format!("layer {:>2}", l + 1),
            runs.iter()
                .map(|r| {
                    let layer = &r.report.layers[l];
                    format!("{:.2e}{}", layer.stats.l2_norm, mark(layer.verdict))
                })
                .collect(),
        );
    }
    row(
        "first/last",
        runs.iter()
            .map(|r| {
                let first = r.report.layers[0].stats.l2_norm;
                format!("{:.1e} ", first / r.report.layers[DEPTH - 1].stats.l2_norm)
            })
            .collect(),
    );
    row(
        "max f'(z)",
        runs.iter()
            .map(|r| format!("{:.4} ", r.max_derivative))
            .collect(),
    );
    row(
        "verdict",
        runs.iter()
            .map(|r| format!("{} ", r.report.verdict.name()))
            .collect(),
    );

    let sigmoid = &runs[0];
    let relu = &runs[2];
    let factor = relu.report.layers[0].stats.l2_norm / sigmoid.report.layers[0].stats.l2_norm;
    println!(
        "first layer: relu's gradient is {factor:.1e} times sigmoid's ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    if !(factor > 1e4 && sigmoid.report.verdict == Verdict::Vanishing) {
        eprintln!(
            "FAILED: expected sigmoid's first-layer gradient to be >1e4 times smaller than relu's \
             and judged vanishing; got a factor {factor:.3e} and verdict {}",
            sigmoid.report.verdict.name()
        );
        exit(1);
    }
    // σ'(z) ≤ 0.25 holds up to f32 rounding (one ulp at 0.25 is 3e-8).
    if relu.report.verdict != Verdict::Healthy || sigmoid.max_derivative > 0.25 * (1.0 + 1e-6) {
        eprintln!(
            "FAILED: expected relu (He init) healthy and σ' ≤ 0.25; got {} and {}",
            relu.report.verdict.name(),
            sigmoid.max_derivative
        );
        exit(1);
    }
    println!("ok: sigmoid's gradient vanishes (σ' ≤ 0.25 per layer); relu's flows");
    Ok(())
}
