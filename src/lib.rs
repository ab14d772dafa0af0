//! # lossgpu
//!
//! Machine-learning losses, regression metrics and activation functions
//! (with their derivatives) on the GPU through wgpu compute shaders, with an
//! f64 CPU reference that is both the fallback and the oracle the GPU is
//! tested against.
//!
//! ## A guide in five steps
//!
//! **1. Open an engine.** [`Engine::new`] takes the best adapter (real GPUs
//! before software ones, Vulkan/Metal/DX12 before GL; `WGPU_BACKEND` and
//! `WGPU_ADAPTER_NAME` steer it) and falls back to the CPU reference when
//! there is none, saying why in [`Engine::fallback_reason`].
//! [`Engine::gpu`] insists on a GPU, [`Engine::cpu`] never touches one, and
//! [`Engine::from_wgpu`] shares a device your program already has. An engine
//! is `Send + Sync`.
//!
//! **2. Evaluate a loss and its gradient.** A [`Loss`] names the function and
//! its parameters (every variant's doc gives its formula and derivative), a
//! [`LossInput`] the data, a [`Reduction`] how samples combine:
//!
//! ```
//! use lossgpu::{Activation, Engine, Loss, LossInput, Reduction};
//!
//! # fn main() -> lossgpu::Result<()> {
//! let engine = Engine::new(); // the GPU if there is one, else the CPU
//! let pred = [0.5f32, 2.0, -1.0];
//! let target = [1.0f32, 1.5, -2.0];
//! let input = LossInput::new(&pred, &target);
//! let mse = engine.loss(&Loss::Mse, &input, Reduction::Mean)?;
//! assert!((mse.scalar().unwrap() - 0.5).abs() < 1e-6);
//! let grad = engine.loss_grad(&Loss::Mse, &input, Reduction::Mean)?; // d mse / d pred
//! assert!((grad[2] - 2.0 / 3.0).abs() < 1e-6);
//! // Both from one set of passes, for a training step:
//! let (value, g) = engine.loss_and_grad(&Loss::Mse, &input, Reduction::Mean)?;
//! assert_eq!((value, g), (mse, grad));
//! let y = engine.activation(&Activation::Relu, &pred)?;
//! assert_eq!(y, vec![0.5, 2.0, 0.0]);
//! # Ok(())
//! # }
//! ```
//!
//! Multi-class losses take n×m row-major scores ([`LossInput::classes`],
//! [`LossInput::rows`]); weights go in with [`LossInput::with_weights`];
//! [`Engine::regression_metrics`] gives every regression metric in one pass;
//! [`Engine::objective`] adds an L1/L2 penalty ([`Regularizer`]).
//!
//! **3. Activations** ([`Activation`]) have [`Engine::activation`],
//! [`Engine::activation_derivative`] and [`Engine::activation_backward`]
//! (upstream ⊙ f'); [`Engine::prelu_alpha_grad`] gives prelu's dα.
//!
//! **4. Keep data on the device.** [`Engine::upload`] makes a [`Tensor`];
//! [`Engine::activation_tensor`], [`Engine::loss_tensor`],
//! [`Engine::loss_grad_tensor`], [`Engine::loss_and_grad_tensor`] and
//! [`Engine::clip_tensors`] work on it without copies through the host;
//! [`Engine::read`] brings back what you ask. A tensor knows its shape:
//! [`Engine::upload_rows`] keeps n×m logits and [`Engine::upload_classes`]
//! a `Tensor<u32>` of class indices, so row losses take the same calls (the
//! target is a [`TensorTarget`], which `&Tensor` and `&Tensor<u32>` convert
//! into). The adapter's ceilings for benchmarks are in [`probe`].
//!
//! **Scale.** [`Engine::loss_batch`] evaluates many losses in one submission
//! and one readback; host slices of any length stream through a bounded ring
//! of device buffers (about 270 MiB at most, whatever n); [`Engine::auto`] times both
//! sides on the first call of each operation and size class and then keeps
//! to the faster one ([`Engine::auto_choices`] says what it chose).
//!
//! **5. Watch the gradients.** [`Engine::grad_stats`] (norm, max, NaN/inf
//! counts, vanishing share, in one pass), [`Engine::clip`] and
//! [`Engine::clip_tensors`] (by value or by one global norm, in place), and
//! [`Engine::health_report`] (per-layer verdicts: exploding, vanishing,
//! non-finite, by documented [`HealthThresholds`]).
//!
//! ## Errors and numbers
//!
//! Every call returns [`Result`]: bad input is [`Error::InvalidInput`] naming
//! the argument, index and value; GPU faults are [`Error::Gpu`] or
//! [`Error::DeviceLost`], never a panic. NaN in the data propagates, as in
//! PyTorch. GPU results agree with the f64 reference ([`cpu`]) to 1e-5
//! relative for reductions and rtol 1e-5 / atol 1e-6 elementwise, and a GPU
//! reduction is bitwise reproducible on an adapter. The repository's
//! `docs/reference.md` lists every formula, the conventions chosen where
//! libraries disagree and the command line in full.

#![warn(missing_docs)]

mod auto;
pub mod cpu;
mod engine;
mod error;
mod gpu;
pub mod ops;
mod output;
pub mod probe;
mod tensor;

/// The README's Rust examples, compiled and run as doc-tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// docs/reference.md's Rust examples, compiled and run as doc-tests.
#[doc = include_str!("../docs/reference.md")]
#[cfg(doctest)]
pub struct ReferenceDoctests;

pub use auto::{AutoChoice, Backend, Work};
pub use engine::Engine;
pub use error::{Error, Result};
pub use gpu::context::{DeviceInfo, GpuOptions};
pub use gpu::memory::DeviceMemory;
pub use gpu::pipelines::{shader_source, Family};
pub use ops::activation::{
    rrelu_alpha, uniform01, Activation, ActivationParams, Pass, ACTIVATION_NAMES,
};
pub use ops::dtype::{bf16, f16, DType, Float};
pub use ops::gradient::{
    Clip, GradStats, HealthReport, HealthThresholds, LayerHealth, Verdict, VANISH_EPS,
};
pub use ops::input::{LossInput, LossOptions, Target};
pub use ops::linear::{LinearGrads, LinearInput};
pub use ops::loss::{Loss, LossParams, LOSS_NAMES};
pub use ops::metrics::{MetricSums, RegressionMetrics};
pub use ops::reduction::{LossSums, LossValue, Reduction};
pub use ops::regularizer::Regularizer;
pub use tensor::{ClassTensor, Element, Tensor, TensorTarget};
