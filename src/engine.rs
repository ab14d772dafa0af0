//! `Engine`: the one public entry point, the same methods on every backend.

use crate::cpu;
use crate::error::{invalid, Error, Result};
use crate::gpu::context::{DeviceInfo, GpuOptions};
use crate::gpu::Gpu;
use crate::ops::activation::{Activation, Pass};
use crate::ops::loss::{Loss, LossInput, OP_PRELU_DALPHA};
use crate::ops::reduction::{LossValue, Reduction};
use crate::ops::regularizer::Regularizer;

/// Which side computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// wgpu compute shaders on an adapter.
    Gpu,
    /// The f64 CPU reference.
    Cpu,
}

impl Backend {
    /// "gpu" or "cpu".
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gpu => "gpu",
            Backend::Cpu => "cpu",
        }
    }
}

enum Inner {
    Cpu,
    Gpu(Box<Gpu>),
}

/// Computes losses, metrics and activations on the GPU, or on the CPU
/// reference. `Send + Sync`: one engine may serve many threads.
pub struct Engine {
    inner: Inner,
    fallback: Option<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Engine({}: {})",
            self.backend().name(),
            self.device_name()
        )
    }
}

fn nonempty(what: &str, x: &[f32]) -> Result<()> {
    if x.is_empty() {
        return Err(invalid!("{what} is empty"));
    }
    Ok(())
}

impl Default for Engine {
    /// [`Engine::new`].
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    /// The GPU when an adapter can be opened (honouring `WGPU_BACKEND` and
    /// `WGPU_ADAPTER_NAME`; Vulkan, Metal and DX12 before GL; real GPUs before
    /// software ones), otherwise the CPU reference; [`Engine::fallback_reason`]
    /// says why it fell back.
    pub fn new() -> Engine {
        pollster::block_on(Self::new_async())
    }

    /// [`Engine::new`] for async callers.
    pub async fn new_async() -> Engine {
        match Gpu::new(&GpuOptions::default()).await {
            Ok(gpu) => Engine {
                inner: Inner::Gpu(Box::new(gpu)),
                fallback: None,
            },
            Err(e) => Engine {
                inner: Inner::Cpu,
                fallback: Some(e.to_string()),
            },
        }
    }

    /// The GPU, or [`Error::NoAdapter`] when there is none.
    pub fn gpu() -> Result<Engine> {
        Self::gpu_with(GpuOptions::default())
    }

    /// The GPU with explicit [`GpuOptions`].
    pub fn gpu_with(options: GpuOptions) -> Result<Engine> {
        pollster::block_on(Self::gpu_async(options))
    }

    /// [`Engine::gpu_with`] for async callers.
    pub async fn gpu_async(options: GpuOptions) -> Result<Engine> {
        Ok(Engine {
            inner: Inner::Gpu(Box::new(Gpu::new(&options).await?)),
            fallback: None,
        })
    }

    /// An engine on a device the caller already has (for example the one
    /// running its model), so no second device is opened.
    pub fn from_wgpu(device: wgpu::Device, queue: wgpu::Queue) -> Result<Engine> {
        let info = device.adapter_info();
        Ok(Engine {
            inner: Inner::Gpu(Box::new(Gpu::from_device(
                device,
                queue,
                info,
                &GpuOptions::default(),
            )?)),
            fallback: None,
        })
    }

    /// The CPU reference (f64 accumulation). Always available.
    pub fn cpu() -> Engine {
        Engine {
            inner: Inner::Cpu,
            fallback: None,
        }
    }

    /// Which side computes.
    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Cpu => Backend::Cpu,
            Inner::Gpu(_) => Backend::Gpu,
        }
    }

    /// The adapter, for a GPU engine.
    pub fn device_info(&self) -> Option<&DeviceInfo> {
        match &self.inner {
            Inner::Gpu(g) => Some(g.info()),
            Inner::Cpu => None,
        }
    }

    /// "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)", or "cpu (f64 reference)".
    pub fn device_name(&self) -> String {
        match &self.inner {
            Inner::Gpu(g) => g.info().summary(),
            Inner::Cpu => "cpu (f64 reference)".to_string(),
        }
    }

    /// Why [`Engine::new`] chose the CPU, if it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The wgpu device of a GPU engine (to share it, or to test faults).
    pub fn wgpu_device(&self) -> Option<&wgpu::Device> {
        match &self.inner {
            Inner::Gpu(g) => Some(g.device()),
            Inner::Cpu => None,
        }
    }

    /// Compiled pipelines so far (each is built once and cached).
    pub fn pipeline_count(&self) -> usize {
        match &self.inner {
            Inner::Gpu(g) => g.pipeline_count(),
            Inner::Cpu => 0,
        }
    }

    fn run_activation(
        &self,
        act: &Activation,
        pass: Pass,
        x: &[f32],
        upstream: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        act.validate()?;
        nonempty("the input", x)?;
        if let Some(u) = upstream {
            if u.len() != x.len() {
                return Err(invalid!(
                    "upstream has {} values but the input has {}",
                    u.len(),
                    x.len()
                ));
            }
        }
        match &self.inner {
            Inner::Gpu(g) => g.activation(act, pass, x, upstream),
            Inner::Cpu => Ok(cpu::activation(act, pass, x, upstream)
                .iter()
                .map(|&v| v as f32)
                .collect()),
        }
    }

    /// f(x) elementwise.
    pub fn activation(&self, act: &Activation, x: &[f32]) -> Result<Vec<f32>> {
        self.run_activation(act, Pass::Forward, x, None)
    }

    /// f'(x) elementwise.
    pub fn activation_derivative(&self, act: &Activation, x: &[f32]) -> Result<Vec<f32>> {
        self.run_activation(act, Pass::Derivative, x, None)
    }

    /// upstream ⊙ f'(x): the backward pass through the activation.
    pub fn activation_backward(
        &self,
        act: &Activation,
        x: &[f32],
        upstream: &[f32],
    ) -> Result<Vec<f32>> {
        self.run_activation(act, Pass::Backward, x, Some(upstream))
    }

    /// d L/d α of prelu: Σ upstream·x over the elements with x ≤ 0.
    pub fn prelu_alpha_grad(&self, x: &[f32], upstream: &[f32]) -> Result<f64> {
        nonempty("the input", x)?;
        if upstream.len() != x.len() {
            return Err(invalid!(
                "upstream has {} values but the input has {}",
                upstream.len(),
                x.len()
            ));
        }
        match &self.inner {
            Inner::Gpu(g) => g.sum_of_terms(OP_PRELU_DALPHA, x, Some(upstream)),
            Inner::Cpu => Ok(cpu::prelu_alpha_grad(x, upstream)),
        }
    }

    /// The loss with the given reduction: a scalar for `mean`/`sum`, the
    /// per-sample wᵢ·lᵢ for `none`. Input errors (lengths, labels outside
    /// their domain, class indices ≥ m, negative weights) name the first
    /// offender.
    pub fn loss(&self, loss: &Loss, input: &LossInput, reduction: Reduction) -> Result<LossValue> {
        loss.validate()?;
        match &self.inner {
            Inner::Gpu(g) => Ok(g.loss(loss, input, reduction, false)?.0),
            Inner::Cpu => Ok(match reduction {
                Reduction::None => LossValue::PerSample(
                    cpu::loss_per_sample(loss, input)?
                        .iter()
                        .map(|&v| v as f32)
                        .collect(),
                ),
                _ => LossValue::Scalar(cpu::loss_scalar(loss, input, reduction)?),
            }),
        }
    }

    /// The gradient of the reduced loss with respect to every prediction
    /// (same length as `pred`): wᵢ·(d lᵢ/d pᵢ)/Σw for `mean`, wᵢ·d lᵢ/d pᵢ
    /// for `sum` and `none`; rmse uses its own chain rule.
    pub fn loss_grad(
        &self,
        loss: &Loss,
        input: &LossInput,
        reduction: Reduction,
    ) -> Result<Vec<f32>> {
        loss.validate()?;
        match &self.inner {
            Inner::Gpu(g) => g
                .loss(loss, input, reduction, true)?
                .1
                .ok_or_else(|| Error::Gpu("no gradient came back".into())),
            Inner::Cpu => Ok(cpu::loss_grad(loss, input, reduction)?
                .iter()
                .map(|&v| v as f32)
                .collect()),
        }
    }

    /// The regularised objective: loss (`mean` or `sum`) + λ·Ω(θ).
    pub fn objective(
        &self,
        loss: &Loss,
        input: &LossInput,
        reduction: Reduction,
        theta: &[f32],
        reg: Regularizer,
    ) -> Result<f64> {
        reg.validate()?;
        if reduction == Reduction::None {
            return Err(invalid!(
                "the objective needs reduction mean or sum, not none"
            ));
        }
        let risk = self
            .loss(loss, input, reduction)?
            .scalar()
            .ok_or_else(|| invalid!("the objective needs a scalar loss"))?;
        let penalty = if theta.is_empty() {
            0.0
        } else {
            match &self.inner {
                Inner::Gpu(g) => g.sum_of_terms(reg.shader_op(), theta, None)?,
                Inner::Cpu => reg.penalty_f64(theta),
            }
        };
        Ok(risk + reg.lambda() as f64 * penalty)
    }
}
