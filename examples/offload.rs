//! A training loop whose activations, loss and gradients stay on the device.
//!
//! Logistic regression again, but written the way a network's last layer is:
//! logits z → p = σ(z) → loss = BCE(p, y) → g = dL/dp → dz = σ'(z)·g. Every
//! intermediate (p, g) is a resident [`lossgpu::Tensor`]; per step the host
//! uploads the logits and reads back only dz and the scalar loss, then does the
//! chain rule into the weights (dw = Xᵀ·dz). The labels are uploaded once.
//!
//! The check: σ'(z)·(p − y)/(p(1 − p)) = p − y, so the resident chain must
//! equal the fused `bce-logits` gradient σ(z) − y that `engine.loss_grad`
//! computes from host slices. Features are bounded (|x| ≤ 1, |w| stays ≲ 3) so
//! the logits stay within ±5: there 1 − p ≥ 7e-3 and the two-step path keeps
//! ~5 digits. Far out in the tails σ(z) rounds to 1 in f32 and the
//! probability path loses everything, which is why bce-logits exists.
//!
//! cargo run --release --example offload [-- --quick]

mod common;

use common::Rng;
use lossgpu::{Activation, Backend, Loss, LossInput, Pass, Reduction};
use std::process::exit;
use std::time::Instant;

fn main() -> lossgpu::Result<()> {
    let quick = common::quick();
    let started = Instant::now();
    let engine = common::engine();

    let (n, steps) = if quick { (1 << 14, 10) } else { (1 << 20, 40) };
    let lr = 4.0f64;
    // Labels drawn from a logistic model with w = (2, −2), b = 0.5.
    let mut rng = Rng(99);
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let (x0, x1) = (2.0 * rng.uniform() - 1.0, 2.0 * rng.uniform() - 1.0);
        let p = 1.0 / (1.0 + (-(2.0 * x0 - 2.0 * x1 + 0.5)).exp());
        x.push(x0 as f32);
        x.push(x1 as f32);
        y.push(if rng.uniform() < p { 1.0f32 } else { 0.0 });
    }
    let logits = |w: &[f64; 3]| -> Vec<f32> {
        (0..n)
            .map(|i| (w[0] * x[2 * i] as f64 + w[1] * x[2 * i + 1] as f64 + w[2]) as f32)
            .collect()
    };

    let y_dev = engine.upload(&y)?; // once: the labels live on the device
    let mut to_device = 4 * n as u64;
    let mut to_host = 0u64;
    let mut w = [0.0f64; 3];
    let mut first = f64::NAN;
    let (mut z, mut dz, mut loss) = (Vec::new(), Vec::new(), f64::NAN);
    println!(
        "n = {n}, {steps} steps; per step: logits up, then σ, bce, dL/dp, σ-backward on the device"
    );
    for step in 0..steps {
        z = logits(&w);
        let z_dev = engine.upload(&z)?;
        to_device += 4 * n as u64;
        let p = engine.activation_tensor(&Activation::Sigmoid, Pass::Forward, &z_dev, None)?;
        // The loss and its gradient from one set of passes.
        let (value, g) = engine.loss_and_grad_tensor(&Loss::Bce, &p, &y_dev, Reduction::Mean)?;
        loss = value.scalar().expect("mean is a scalar");
        let dz_dev =
            engine.activation_tensor(&Activation::Sigmoid, Pass::Backward, &z_dev, Some(&g))?;
        dz = engine.read(&dz_dev)?;
        to_host += 4 * n as u64 + 8; // dz, and the loss as an f64
        if step == 0 {
            first = loss;
        }
        if step % (steps / 5) == 0 || step + 1 == steps {
            println!("  step {step:>3}: mean BCE {loss:.5}");
        }
        // Host chain rule into (w0, w1, b).
        let mut grad = [0.0f64; 3];
        for (i, &d) in dz.iter().enumerate() {
            grad[0] += d as f64 * x[2 * i] as f64;
            grad[1] += d as f64 * x[2 * i + 1] as f64;
            grad[2] += d as f64;
        }
        for k in 0..3 {
            w[k] -= lr * grad[k];
        }
    }
    println!(
        "fitted w = ({:.3}, {:.3}), b = {:.3} (generating 2, -2, 0.5); mean BCE {first:.4} -> {loss:.4}",
        w[0], w[1], w[2]
    );

    // The same step from host slices with the fused loss: σ(z) − y over n.
    let input = LossInput::new(&z, &y);
    let reference = engine.loss_grad(&Loss::BceLogits, &input, Reduction::Mean)?;
    let reference_loss = engine
        .loss(&Loss::BceLogits, &input, Reduction::Mean)?
        .scalar()
        .expect("mean is a scalar");
    let worst = dz
        .iter()
        .zip(&reference)
        .map(|(&a, &b)| ((a - b).abs() / b.abs()) as f64)
        .fold(0.0f64, f64::max);
    let loss_err = (loss - reference_loss).abs() / reference_loss;
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    if engine.backend() == Backend::Cpu {
        println!(
            "(CPU backend: the tensors are host memory; the byte counts are what a GPU would move)"
        );
    }
    let n4 = 4 * n as u64;
    println!(
        "bytes over {steps} steps: device -> host {:.2} MiB (dz and the scalar), host -> device {:.2} MiB \
         (logits, labels once); p and dL/dp ({:.2} MiB) never crossed",
        mb(to_host),
        mb(to_device),
        mb(2 * n4 * steps as u64)
    );
    println!(
        "  per step {:.2} MiB down, {:.2} MiB up; the same chain through host slices \
         (activation, loss, loss_grad, activation_backward) would move {:.2} MiB down, {:.2} MiB up",
        mb(n4 + 8),
        mb(n4),
        mb(3 * n4 + 8),
        mb(7 * n4)
    );
    println!(
        "resident chain vs fused bce-logits gradient on the last step: max relative difference {worst:.1e} (loss {loss_err:.1e}) ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    if !(worst <= 1e-4 && loss_err <= 1e-4 && loss < first) {
        eprintln!(
            "FAILED: expected dz = σ(z) − y within 1e-4 relative and a falling loss; \
             got {worst:.3e}, loss error {loss_err:.3e}, loss {first} -> {loss}"
        );
        exit(1);
    }
    println!("ok: σ'(z)·dBCE/dp on the device equals σ(z) − y within 1e-4");
    Ok(())
}
