//! `Engine`: the one public entry point, the same methods on every backend.

use crate::auto::{AutoChoice, Backend, Calibration, Work};
use crate::cpu;
use crate::error::{invalid, Error, Result};
use crate::gpu::context::{DeviceInfo, GpuOptions};
use crate::gpu::Gpu;
use crate::ops::activation::{Activation, Pass};
use crate::ops::gradient::{Clip, GradStats, HealthReport, HealthThresholds};
use crate::ops::loss::{Form, Shape, TargetKind};
use crate::ops::loss::{Loss, LossInput, Term};
use crate::ops::metrics::RegressionMetrics;
use crate::ops::reduction::{LossValue, Reduction};
use crate::ops::regularizer::Regularizer;
use crate::tensor::{ClassData, ClassTensor, Tensor, TensorData, TensorTarget};
use std::sync::Mutex;
use std::time::{Duration, Instant};

enum Inner {
    Cpu,
    Gpu(Box<Gpu>),
}

/// Computes losses, metrics and activations on the GPU, or on the CPU
/// reference. `Send + Sync`: one engine may serve many threads.
pub struct Engine {
    inner: Inner,
    /// Built by `new()`: a lost device moves the work to the CPU.
    auto: bool,
    /// Why the CPU is computing although a GPU was asked for (or lost).
    fallback: Mutex<Option<String>>,
    /// Built by `auto()`: which side is faster, per op family and size.
    calibration: Option<Calibration>,
}

/// The side an operation runs on right now.
enum Side<'a> {
    Gpu(&'a Gpu),
    Cpu,
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

/// [`Engine::loss`] on the CPU backend.
fn cpu_loss(loss: &Loss, input: &LossInput, reduction: Reduction) -> Result<LossValue> {
    Ok(match reduction {
        Reduction::None => LossValue::PerSample(cpu::parallel::loss_per_sample(loss, input)?),
        _ => LossValue::Scalar(cpu::parallel::loss_scalar(loss, input, reduction)?),
    })
}

/// A loss on CPU-side tensors of `len` predictions: the value, or with
/// `with_grad` the gradient as a new tensor (the value is then NaN, as the
/// GPU path leaves it).
fn cpu_tensor_loss(
    loss: &Loss,
    input: &LossInput,
    reduction: Reduction,
    with_grad: bool,
    len: usize,
) -> Result<(LossValue, Option<Tensor>)> {
    if with_grad {
        let g = cpu::parallel::loss_grad(loss, input, reduction)?;
        let grad = Tensor {
            data: TensorData::Cpu(g),
            len,
        };
        Ok((LossValue::Scalar(f64::NAN), Some(grad)))
    } else {
        Ok((cpu_loss(loss, input, reduction)?, None))
    }
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
                auto: true,
                fallback: Mutex::new(None),
                calibration: None,
            },
            Err(e) => Engine {
                inner: Inner::Cpu,
                auto: true,
                fallback: Mutex::new(Some(e.to_string())),
                calibration: None,
            },
        }
    }

    /// Like [`Engine::new`], but each operation on host slices runs on the
    /// side that is faster for it — its op family ([`Work`]), its loss or
    /// activation (tanh and sigmoid, mse and bce-logits do not cost alike)
    /// and its size class (n ≤ 2^k). The first call of a kind runs on both
    /// sides: a warm-up run that compiles the GPU's pipelines, then timed
    /// runs in pairs per side (the GPU twice, the CPU twice, twice over; the
    /// fastest of each side counts, since a run right after the other side's
    /// may share the cores with its threads winding down). The faster side
    /// runs that kind from then on. [`Engine::auto_choices`] lists what
    /// was chosen and the timings behind it. Resident tensors stay on the
    /// device either way.
    pub fn auto() -> Engine {
        pollster::block_on(Self::auto_async())
    }

    /// [`Engine::auto`] for async callers.
    pub async fn auto_async() -> Engine {
        let mut engine = Self::new_async().await;
        engine.calibration = Some(Calibration::default());
        engine
    }

    /// What a calibrating engine ([`Engine::auto`]) has chosen so far, by
    /// op family and size class; empty for other engines.
    pub fn auto_choices(&self) -> Vec<AutoChoice> {
        self.calibration
            .as_ref()
            .map(|c| c.all())
            .unwrap_or_default()
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
            auto: false,
            fallback: Mutex::new(None),
            calibration: None,
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
            auto: false,
            fallback: Mutex::new(None),
            calibration: None,
        })
    }

    /// The CPU reference (f64 accumulation). Always available.
    pub fn cpu() -> Engine {
        Engine {
            inner: Inner::Cpu,
            auto: false,
            fallback: Mutex::new(None),
            calibration: None,
        }
    }

    /// Which side computes (for an auto engine whose device was lost, the
    /// CPU from then on).
    pub fn backend(&self) -> Backend {
        match self.side() {
            Side::Cpu => Backend::Cpu,
            Side::Gpu(_) => Backend::Gpu,
        }
    }

    fn side(&self) -> Side<'_> {
        match &self.inner {
            Inner::Gpu(g) if !(self.auto && self.fallback_reason().is_some()) => Side::Gpu(g),
            _ => Side::Cpu,
        }
    }

    /// Runs `gpu` on the GPU side, `cpu` on the CPU side; an auto engine
    /// whose device is lost says so and finishes the call on the CPU.
    fn dispatch<T>(
        &self,
        gpu: impl FnOnce(&Gpu) -> Result<T>,
        cpu: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        match self.side() {
            Side::Gpu(g) => match gpu(g) {
                Err(e) if self.auto && (matches!(e, Error::DeviceLost(_)) || g.is_lost()) => {
                    let why = e.to_string();
                    if let Ok(mut f) = self.fallback.lock() {
                        *f = Some(format!("{why}; computing on the CPU from now on"));
                    }
                    cpu()
                }
                other => other,
            },
            Side::Cpu => cpu(),
        }
    }

    /// [`Engine::dispatch`] for the operation `name` + `suffix` of op family
    /// `work` on `n` values: a calibrating engine runs it where it was faster
    /// before, or, the first time, on both sides to find out.
    fn dispatch_sized<T>(
        &self,
        (work, name, suffix): (Work, &'static str, &'static str),
        n: usize,
        gpu: impl Fn(&Gpu) -> Result<T>,
        cpu: impl Fn() -> Result<T>,
    ) -> Result<T> {
        let (Some(calibration), Side::Gpu(g)) = (&self.calibration, self.side()) else {
            return self.dispatch(gpu, cpu);
        };
        let op = (name, suffix);
        match calibration.get(work, op, n) {
            Some(Backend::Gpu) => return self.dispatch(gpu, cpu),
            Some(Backend::Cpu) => return cpu(),
            None => {}
        }
        let warm = self.dispatch(&gpu, &cpu)?;
        if matches!(self.side(), Side::Cpu) {
            return Ok(warm); // the device was lost during the warm-up
        }
        // The fastest of four timed runs per side, in pairs (GPU, GPU, CPU,
        // CPU, twice): where the "GPU" shares the cores, a run right after
        // the other side's competes with its threads winding down, and the
        // second of a pair does not.
        let timed = |f: &dyn Fn() -> Result<T>| -> Result<(Duration, T)> {
            let start = Instant::now();
            let out = f()?;
            Ok((start.elapsed(), out))
        };
        drop(warm);
        let keep_faster = |best: &mut (Duration, T), run: (Duration, T)| {
            if run.0 < best.0 {
                *best = run;
            }
        };
        let mut on_gpu = timed(&|| gpu(g))?;
        keep_faster(&mut on_gpu, timed(&|| gpu(g))?);
        let mut on_cpu = timed(&cpu)?;
        keep_faster(&mut on_cpu, timed(&cpu)?);
        for _ in 0..2 {
            keep_faster(&mut on_gpu, timed(&|| gpu(g))?);
        }
        for _ in 0..2 {
            keep_faster(&mut on_cpu, timed(&cpu)?);
        }
        Ok(match calibration.record(work, op, n, on_gpu.0, on_cpu.0) {
            Backend::Gpu => on_gpu.1,
            Backend::Cpu => on_cpu.1,
        })
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
        match self.side() {
            Side::Gpu(g) => g.info().summary(),
            Side::Cpu => "cpu (f64 reference)".to_string(),
        }
    }

    /// Why an auto engine ([`Engine::new`]) computes on the CPU: no adapter,
    /// or the device was lost.
    pub fn fallback_reason(&self) -> Option<String> {
        self.fallback.lock().ok().and_then(|f| f.clone())
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
        self.dispatch_sized(
            (Work::Activation, act.name(), pass.suffix()),
            x.len(),
            |g| g.activation(act, pass, x, upstream),
            || Ok(cpu::parallel::activation(act, pass, x, upstream)),
        )
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
        self.dispatch_sized(
            (Work::Loss, "prelu dα", ""),
            x.len(),
            |g| g.sum_of_terms(Term::PreluDalpha, x, Some(upstream)),
            || Ok(cpu::prelu_alpha_grad(x, upstream)),
        )
    }

    /// The loss with the given reduction: a scalar for `mean`/`sum`, the
    /// per-sample wᵢ·lᵢ for `none`. Input errors (lengths, labels outside
    /// their domain, class indices ≥ m, negative weights) name the first
    /// offender.
    pub fn loss(&self, loss: &Loss, input: &LossInput, reduction: Reduction) -> Result<LossValue> {
        loss.validate()?;
        let work = match loss.term() {
            Some(_) if input.cols == 1 => Work::Loss,
            _ => Work::RowLoss,
        };
        self.dispatch_sized(
            (work, loss.name(), ""),
            input.pred.len(),
            |g| Ok(g.loss(loss, input, reduction, false)?.0),
            || cpu_loss(loss, input, reduction),
        )
    }

    /// Many losses at once: on the GPU one submission and one readback for
    /// all of them, so per-layer or per-task losses do not each pay a round
    /// trip. Values as [`Engine::loss`] gives them, in order.
    pub fn loss_batch(
        &self,
        items: &[(Loss, LossInput)],
        reduction: Reduction,
    ) -> Result<Vec<LossValue>> {
        for (loss, _) in items {
            loss.validate()?;
        }
        let total = items.iter().map(|(_, input)| input.pred.len()).sum();
        self.dispatch_sized(
            (Work::Batch, "loss_batch", ""),
            total,
            |g| g.loss_batch(items, reduction),
            || {
                // Small losses are many: one per core beats cores per loss.
                use rayon::prelude::*;
                items
                    .par_iter()
                    .map(|(loss, input)| cpu_loss(loss, input, reduction))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .collect() // the first error in item order
            },
        )
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
        self.dispatch_sized(
            (Work::LossGrad, loss.name(), ""),
            input.pred.len(),
            |g| {
                g.loss(loss, input, reduction, true)?
                    .1
                    .ok_or_else(|| Error::Gpu("no gradient came back".into()))
            },
            || cpu::parallel::loss_grad(loss, input, reduction),
        )
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
            self.dispatch_sized(
                (Work::Loss, "penalty", ""),
                theta.len(),
                |g| g.sum_of_terms(reg.term(), theta, None),
                || Ok(reg.penalty_f64(theta)),
            )?
        };
        Ok(risk + reg.lambda() as f64 * penalty)
    }

    /// mse, rmse, mae, mape, smape, huber (δ), log-cosh and quantile (γ) of
    /// 1-D predictions and targets, optionally weighted, in one pass that
    /// reads each input once.
    pub fn regression_metrics(
        &self,
        input: &LossInput,
        delta: f32,
        gamma: f32,
    ) -> Result<RegressionMetrics> {
        crate::ops::metrics::metric_losses(delta, gamma)?;
        let rows = Loss::Mse.shape(input)?.rows;
        let (sums, wsum) = self.dispatch_sized(
            (Work::Metrics, "regression_metrics", ""),
            rows,
            |g| g.metric_sums(input, delta, gamma),
            || cpu::parallel::metric_sums(input, delta, gamma),
        )?;
        RegressionMetrics::from_sums(sums, wsum, rows)
    }

    // ---- resident tensors and gradient health ---------------------------

    /// Copies `data` to the engine's device (or keeps it in host memory on
    /// the CPU backend), for operations that run in place.
    pub fn upload(&self, data: &[f32]) -> Result<Tensor> {
        nonempty("the tensor", data)?;
        let len = data.len();
        let data = self.dispatch(
            |g| Ok(TensorData::Gpu(g.upload_resident(data)?)),
            || Ok(TensorData::Cpu(data.to_vec())),
        )?;
        Ok(Tensor { data, len })
    }

    /// Copies class indices to the engine's device (or keeps them in host
    /// memory on the CPU backend): the resident target of
    /// [`Engine::row_loss_tensor`].
    pub fn upload_classes(&self, classes: &[u32]) -> Result<ClassTensor> {
        if classes.is_empty() {
            return Err(invalid!("the class indices are empty"));
        }
        let data = self.dispatch(
            |g| Ok(ClassData::Gpu(g.upload_resident(classes)?)),
            || Ok(ClassData::Cpu(classes.to_vec())),
        )?;
        Ok(ClassTensor {
            data,
            len: classes.len(),
        })
    }

    /// A tensor over an existing buffer of this engine's device (one a model
    /// already computes into), without a copy. The buffer needs STORAGE
    /// usage (and COPY_SRC to be read back) and at least `len` values
    /// rounded up to a whole vec4 (16 bytes).
    pub fn tensor_from_buffer(&self, buffer: wgpu::Buffer, len: usize) -> Result<Tensor> {
        if !matches!(self.inner, Inner::Gpu(_)) {
            return Err(invalid!("a wgpu buffer needs a GPU engine"));
        }
        if len == 0 {
            return Err(invalid!("the tensor is empty"));
        }
        if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(invalid!("the buffer lacks STORAGE usage"));
        }
        let need = (len.div_ceil(4) * 16) as u64;
        if buffer.size() < need {
            return Err(invalid!(
                "a buffer of {} bytes is too small for {len} values ({need} bytes: whole vec4s)",
                buffer.size()
            ));
        }
        Ok(Tensor {
            data: TensorData::Gpu(buffer),
            len,
        })
    }

    /// The values of a tensor.
    pub fn read(&self, tensor: &Tensor) -> Result<Vec<f32>> {
        match (&self.inner, &tensor.data) {
            (Inner::Gpu(g), TensorData::Gpu(b)) => g.read_resident(b, tensor.len),
            (_, TensorData::Cpu(v)) => Ok(v.clone()),
            (Inner::Cpu, TensorData::Gpu(_)) => Err(invalid!(
                "this tensor lives on a GPU engine, not this CPU one"
            )),
        }
    }

    /// SPEC §3 `grad-stats`: ‖g‖₂, max |g|, NaN and ±inf counts, the share of
    /// |g| < `vanish_eps`, n — one pass.
    pub fn grad_stats(&self, g: &[f32], vanish_eps: f32) -> Result<GradStats> {
        nonempty("the gradient", g)?;
        check_eps(vanish_eps)?;
        self.dispatch_sized(
            (Work::GradStats, "grad_stats", ""),
            g.len(),
            |gpu| {
                let t = gpu.upload_resident(g)?;
                gpu.grad_stats(&[(&t, g.len())], vanish_eps, None)
            },
            || Ok(cpu::stats::grad_stats(g, vanish_eps)),
        )
    }

    /// Clips a copy of `g` by value or by its L2 norm; returns the clipped
    /// values and the statistics before clipping.
    pub fn clip(&self, g: &[f32], clip: Clip) -> Result<(Vec<f32>, GradStats)> {
        nonempty("the gradient", g)?;
        clip.validate()?;
        let mut t = [self.upload(g)?];
        let stats = self.clip_tensors(&mut t, clip)?;
        Ok((self.read(&t[0])?, stats))
    }

    /// Clips several tensors (one per layer) in place with one global rule:
    /// by value, or by the L2 norm over all of them (PyTorch's
    /// clip_grad_norm_: scale by min(1, c/(‖g‖ + 1e-6))). On the GPU the norm
    /// is computed and applied on the device in one submission, without a
    /// host round trip in between. Returns the statistics before clipping.
    pub fn clip_tensors(&self, tensors: &mut [Tensor], clip: Clip) -> Result<GradStats> {
        clip.validate()?;
        if tensors.is_empty() {
            return Err(invalid!("clip: no tensors given"));
        }
        match (&self.inner, tensors.first().map(|t| &t.data)) {
            (Inner::Gpu(g), Some(TensorData::Gpu(_))) => {
                let mut resident = Vec::with_capacity(tensors.len());
                for t in tensors.iter() {
                    match &t.data {
                        TensorData::Gpu(b) => resident.push((b, t.len)),
                        TensorData::Cpu(_) => {
                            return Err(invalid!(
                                "clip: a tensor of a CPU engine was given to a GPU engine"
                            ))
                        }
                    }
                }
                g.grad_stats(&resident, 0.0, Some(clip))
            }
            _ => {
                // One norm over all tensors, then each scaled in place.
                let mut all = Vec::new();
                for t in tensors.iter() {
                    match &t.data {
                        TensorData::Cpu(v) => all.extend_from_slice(v),
                        TensorData::Gpu(_) => {
                            return Err(invalid!("clip: a GPU tensor was given to the CPU engine"))
                        }
                    }
                }
                let stats = cpu::stats::grad_stats(&all, 0.0);
                for t in tensors.iter_mut() {
                    if let TensorData::Cpu(v) = &mut t.data {
                        match clip {
                            Clip::Norm(c) => cpu::stats::scale_by_norm(v, stats.l2_norm, c),
                            Clip::Value(c) => *v = cpu::stats::clip_value(v, c),
                        }
                    }
                }
                Ok(stats)
            }
        }
    }

    /// Per-layer gradient health (layers in network order, input first):
    /// each layer's statistics, the ratio of its norm to the next layer's,
    /// and a verdict by the documented [`HealthThresholds`].
    pub fn health_report(
        &self,
        layers: &[&[f32]],
        thresholds: &HealthThresholds,
    ) -> Result<HealthReport> {
        if layers.is_empty() {
            return Err(invalid!("health report: no layers given"));
        }
        let stats = layers
            .iter()
            .map(|g| self.grad_stats(g, thresholds.vanish_eps))
            .collect::<Result<Vec<_>>>()?;
        Ok(HealthReport::judge(stats, thresholds))
    }

    /// An activation pass on a resident tensor, leaving the result resident:
    /// f(x), f'(x), or upstream ⊙ f'(x) for [`Pass::Backward`].
    pub fn activation_tensor(
        &self,
        act: &Activation,
        pass: Pass,
        x: &Tensor,
        upstream: Option<&Tensor>,
    ) -> Result<Tensor> {
        act.validate()?;
        if pass == Pass::Backward && upstream.is_none() {
            return Err(invalid!("the backward pass needs an upstream gradient"));
        }
        if let Some(u) = upstream {
            if u.len != x.len {
                return Err(invalid!(
                    "upstream has {} values but the input has {}",
                    u.len,
                    x.len
                ));
            }
        }
        let len = x.len;
        let data = match (&self.inner, &x.data, upstream.map(|u| &u.data)) {
            (Inner::Gpu(g), TensorData::Gpu(xb), None | Some(TensorData::Gpu(_))) => {
                let ub = match upstream.map(|u| &u.data) {
                    Some(TensorData::Gpu(b)) => Some(b),
                    _ => None,
                };
                TensorData::Gpu(g.activation_resident(act, pass, xb, ub, len)?)
            }
            (_, TensorData::Cpu(xv), None) => {
                TensorData::Cpu(cpu::parallel::activation(act, pass, xv, None))
            }
            (_, TensorData::Cpu(xv), Some(TensorData::Cpu(uv))) => {
                TensorData::Cpu(cpu::parallel::activation(act, pass, xv, Some(uv)))
            }
            _ => return Err(invalid!("tensors of different engines were mixed")),
        };
        Ok(Tensor { data, len })
    }

    /// A pointwise loss on resident prediction and target tensors; the
    /// scalar (or per-sample values) comes back to the host.
    pub fn loss_tensor(
        &self,
        loss: &Loss,
        pred: &Tensor,
        target: &Tensor,
        reduction: Reduction,
    ) -> Result<LossValue> {
        Ok(self.resident_loss(loss, pred, target, reduction, false)?.0)
    }

    /// The gradient of a pointwise loss with respect to a resident
    /// prediction, left resident.
    pub fn loss_grad_tensor(
        &self,
        loss: &Loss,
        pred: &Tensor,
        target: &Tensor,
        reduction: Reduction,
    ) -> Result<Tensor> {
        self.resident_loss(loss, pred, target, reduction, true)?
            .1
            .ok_or_else(|| Error::Gpu("no gradient came back".into()))
    }

    /// A row loss (cross-entropy, kl-div, entropy, zero-one) of resident
    /// logits in rows of `cols`, as [`Engine::loss`] gives it for the same
    /// values on the host: class targets from [`Engine::upload_classes`],
    /// distributions from [`Engine::upload`].
    pub fn row_loss_tensor(
        &self,
        loss: &Loss,
        logits: &Tensor,
        cols: usize,
        target: TensorTarget,
        reduction: Reduction,
    ) -> Result<LossValue> {
        Ok(self
            .resident_rows(loss, logits, cols, target, reduction, false)?
            .0)
    }

    /// The gradient of [`Engine::row_loss_tensor`] with respect to the
    /// logits, as a new resident tensor of the same length.
    pub fn row_loss_grad_tensor(
        &self,
        loss: &Loss,
        logits: &Tensor,
        cols: usize,
        target: TensorTarget,
        reduction: Reduction,
    ) -> Result<Tensor> {
        self.resident_rows(loss, logits, cols, target, reduction, true)?
            .1
            .ok_or_else(|| Error::Gpu("no gradient came back".into()))
    }

    fn resident_rows(
        &self,
        loss: &Loss,
        logits: &Tensor,
        cols: usize,
        target: TensorTarget,
        reduction: Reduction,
        with_grad: bool,
    ) -> Result<(LossValue, Option<Tensor>)> {
        loss.validate()?;
        cpu::reject_rmse_none(loss, reduction)?;
        let name = loss.name();
        let len = logits.len;
        if cols == 0 || !len.is_multiple_of(cols) {
            return Err(invalid!(
                "{name}: the logits have {len} values, not a multiple of {cols} columns"
            ));
        }
        let rows = len / cols;
        let (kind, target_len) = match target {
            TensorTarget::None => (TargetKind::None, 0),
            TensorTarget::Values(t) => (TargetKind::Values, t.len),
            TensorTarget::Classes(c) => (TargetKind::Classes, c.len),
        };
        let form = loss.form(kind, cols)?;
        if let Form::Pointwise(_) = form {
            return Err(invalid!("{name} is pointwise: use loss_tensor"));
        }
        match kind {
            TargetKind::Values if target_len != len => {
                return Err(invalid!(
                    "{name}: the target has {target_len} values but the logits have {len}"
                ))
            }
            TargetKind::Classes if target_len != rows => {
                return Err(invalid!(
                    "{name}: {target_len} class indices for {rows} rows of logits"
                ))
            }
            _ => {}
        }
        let shape = Shape { rows, cols, form };
        let tensor = |data| Tensor { data, len };
        match (&self.inner, &logits.data, target) {
            (Inner::Gpu(g), TensorData::Gpu(p), t) => {
                let (t, values) = match t {
                    TensorTarget::None => (None, false),
                    TensorTarget::Values(Tensor {
                        data: TensorData::Gpu(b),
                        ..
                    }) => (Some(b), true),
                    TensorTarget::Classes(ClassTensor {
                        data: ClassData::Gpu(b),
                        ..
                    }) => (Some(b), false),
                    _ => return Err(invalid!("tensors of different engines were mixed")),
                };
                let (v, grad) =
                    g.loss_on_device(loss, p, shape, t, values, reduction, with_grad)?;
                Ok((v, grad.map(|b| tensor(TensorData::Gpu(b)))))
            }
            (_, TensorData::Cpu(p), t) => {
                let input = match t {
                    TensorTarget::None => LossInput::unlabelled(p, cols),
                    TensorTarget::Values(Tensor {
                        data: TensorData::Cpu(v),
                        ..
                    }) => LossInput::rows(p, cols, v),
                    TensorTarget::Classes(ClassTensor {
                        data: ClassData::Cpu(c),
                        ..
                    }) => LossInput::classes(p, cols, c),
                    _ => return Err(invalid!("tensors of different engines were mixed")),
                };
                cpu_tensor_loss(loss, &input, reduction, with_grad, len)
            }
            _ => Err(invalid!("tensors of different engines were mixed")),
        }
    }

    fn resident_loss(
        &self,
        loss: &Loss,
        pred: &Tensor,
        target: &Tensor,
        reduction: Reduction,
        with_grad: bool,
    ) -> Result<(LossValue, Option<Tensor>)> {
        loss.validate()?;
        if pred.len != target.len {
            return Err(invalid!(
                "{}: the target has {} values but the prediction has {}",
                loss.name(),
                target.len,
                pred.len
            ));
        }
        let len = pred.len;
        match (&self.inner, &pred.data, &target.data) {
            (Inner::Gpu(g), TensorData::Gpu(p), TensorData::Gpu(t)) => {
                let (v, grad) = g.loss_resident(loss, p, t, len, reduction, with_grad)?;
                Ok((
                    v,
                    grad.map(|b| Tensor {
                        data: TensorData::Gpu(b),
                        len,
                    }),
                ))
            }
            (_, TensorData::Cpu(p), TensorData::Cpu(t)) => {
                cpu_tensor_loss(loss, &LossInput::new(p, t), reduction, with_grad, len)
            }
            _ => Err(invalid!("tensors of different engines were mixed")),
        }
    }
}

fn check_eps(eps: f32) -> Result<()> {
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(invalid!(
            "--vanish-eps must be a finite number >= 0, got {eps}"
        ));
    }
    Ok(())
}

// ---- adapter ceilings, for benchmarks ----------------------------------
//
// Kept apart from the operations above: these measure the adapter rather
// than compute anything a model needs. A benchmark times them next to the
// resident operations (same fixed costs: a submission, a wait, a small
// readback) and reports each operation's time as a fraction of theirs.

impl Engine {
    /// The GPU of this engine, or an error saying that `what` needs one.
    fn probe_gpu(&self, what: &str) -> Result<&Gpu> {
        match self.side() {
            Side::Gpu(g) => Ok(g),
            Side::Cpu => Err(invalid!(
                "{what} measures a GPU adapter, but this engine computes on the CPU"
            )),
        }
    }

    /// The device buffers of `tensors`, all of this GPU engine.
    fn probe_buffers<'t>(tensors: &[&'t Tensor], what: &str) -> Result<Vec<&'t wgpu::Buffer>> {
        tensors
            .iter()
            .map(|t| match &t.data {
                TensorData::Gpu(b) => Ok(b),
                TensorData::Cpu(_) => Err(invalid!(
                    "{what}: a tensor of a CPU engine was given to a GPU engine"
                )),
            })
            .collect()
    }

    /// The adapter's read ceiling: Σ of every value of one or two resident
    /// tensors of equal length, by a minimal kernel that reads each element
    /// once with the structure of the loss reductions (vec4 loads in a
    /// grid-stride loop over at most 1024 workgroups, the workgroup tree,
    /// the same second pass and a 16-byte readback) but a plain f32 sum with
    /// no compensation and no value checks. Time the call and divide by a
    /// resident loss's time on the same tensors: the loss's fraction of
    /// what the adapter can do. The sum itself is returned so the kernel
    /// can be checked (it is only as accurate as a plain f32 sum).
    /// A CPU engine returns [`Error::InvalidInput`].
    pub fn probe_read(&self, tensors: &[&Tensor]) -> Result<f64> {
        let gpu = self.probe_gpu("probe_read")?;
        if tensors.is_empty() || tensors.len() > 2 {
            return Err(invalid!(
                "probe_read takes one or two tensors, not {}",
                tensors.len()
            ));
        }
        let n = tensors[0].len;
        if let Some(t) = tensors.iter().find(|t| t.len != n) {
            return Err(invalid!(
                "probe_read: tensors of {n} and {} values; they must be equally long",
                t.len
            ));
        }
        let buffers = Self::probe_buffers(tensors, "probe_read")?;
        gpu.probe_read(&buffers, n)
    }

    /// The adapter's copy ceiling: copies each resident tensor into a new
    /// one with a buffer-to-buffer copy of its n×4 bytes, all in one
    /// submission, and waits until they are done. Time the call. The copies
    /// are returned (as tensors of this engine) so they can be checked.
    /// The tensors' buffers need COPY_SRC usage (those of
    /// [`Engine::upload`] have it). A CPU engine returns
    /// [`Error::InvalidInput`].
    pub fn probe_copy(&self, tensors: &[&Tensor]) -> Result<Vec<Tensor>> {
        let gpu = self.probe_gpu("probe_copy")?;
        let buffers = Self::probe_buffers(tensors, "probe_copy")?;
        let pairs: Vec<(&wgpu::Buffer, usize)> = buffers
            .into_iter()
            .zip(tensors.iter().map(|t| t.len))
            .collect();
        Ok(gpu
            .probe_copy(&pairs)?
            .into_iter()
            .zip(tensors)
            .map(|(b, t)| Tensor {
                data: TensorData::Gpu(b),
                len: t.len,
            })
            .collect())
    }

    /// Blocks until all work submitted to the device has finished (a no-op
    /// on the CPU). [`Engine::activation_tensor`] returns as soon as its
    /// kernel is submitted; call this after it to time the kernel itself.
    pub fn synchronize(&self) -> Result<()> {
        match self.side() {
            Side::Gpu(g) => g.wait(),
            Side::Cpu => Ok(()),
        }
    }
}
