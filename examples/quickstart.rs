//! The smallest complete use: open the best engine, evaluate a loss with its
//! gradient and an activation, and say where it ran.
//!
//! cargo run --release --example quickstart

use lossgpu::{Activation, Engine, Loss, LossInput, Reduction};

fn main() -> lossgpu::Result<()> {
    let engine = Engine::new();
    match engine.fallback_reason() {
        Some(why) => println!("CPU reference ({why})"),
        None => println!("GPU: {}", engine.device_name()),
    }
    let n = 1 << 20;
    let pred: Vec<f32> = (0..n).map(|i| (i as f32 * 0.001).sin()).collect();
    let target: Vec<f32> = (0..n).map(|i| (i as f32 * 0.001).cos()).collect();
    let input = LossInput::new(&pred, &target);
    for loss in [Loss::Mse, Loss::Huber { delta: 0.5 }, Loss::LogCosh] {
        let value = engine.loss(&loss, &input, Reduction::Mean)?;
        let grad = engine.loss_grad(&loss, &input, Reduction::Mean)?;
        let norm: f64 = grad.iter().map(|g| (*g as f64).powi(2)).sum::<f64>().sqrt();
        println!(
            "{:<9} mean {:.6}  |grad| {:.3e}",
            loss.name(),
            value.scalar().unwrap_or(f64::NAN),
            norm
        );
    }
    let y = engine.activation(&Activation::Swish { beta: 1.0 }, &pred)?;
    println!("swish: first values {:?}", &y[..4]);
    Ok(())
}
