//! # lossgpu
//!
//! Machine-learning losses, regression metrics and activation functions
//! (with their derivatives) on the GPU through wgpu compute shaders, with an
//! f64 CPU reference that is both the fallback and the oracle the GPU is
//! tested against.
//!
//! ```
//! use lossgpu::{Activation, Engine, Loss, LossInput, Reduction};
//!
//! # fn main() -> lossgpu::Result<()> {
//! let engine = Engine::new(); // the GPU if there is one, else the CPU
//! let pred = [0.5f32, 2.0, -1.0];
//! let target = [1.0f32, 1.5, -2.0];
//! let mse = engine.loss(&Loss::Mse, &LossInput::new(&pred, &target), Reduction::Mean)?;
//! assert!((mse.scalar().unwrap() - 0.5).abs() < 1e-6);
//! let y = engine.activation(&Activation::Relu, &pred)?;
//! assert_eq!(y, vec![0.5, 2.0, 0.0]);
//! # Ok(())
//! # }
//! ```
//!
//! The contract (names, formulas, conventions, accuracy) is SPEC.md; every
//! [`Loss`] and [`Activation`] variant documents its formula and derivative.

#![warn(missing_docs)]

pub mod cpu;
mod engine;
mod error;
mod gpu;
pub mod ops;
mod tensor;

/// The README's Rust examples, compiled and run as doc-tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use engine::{Backend, Engine};
pub use error::{Error, Result};
pub use gpu::context::{DeviceInfo, GpuOptions};
pub use gpu::pipelines::{shader_source, Family};
pub use ops::activation::{
    rrelu_alpha, uniform01, Activation, ActivationParams, Pass, ACTIVATION_NAMES,
};
pub use ops::gradient::{
    Clip, GradStats, HealthReport, HealthThresholds, LayerHealth, Verdict, VANISH_EPS,
};
pub use ops::loss::{Loss, LossInput, LossParams, Target, LOSS_NAMES};
pub use ops::metrics::RegressionMetrics;
pub use ops::reduction::{LossValue, Reduction};
pub use ops::regularizer::Regularizer;
pub use tensor::Tensor;
