//! `Engine`: the one public entry point, the same methods on every backend.
//! This file holds the engine itself (construction, the backend choice and
//! the dispatch between the GPU and the CPU); `host.rs` holds the
//! operations on host slices, `resident.rs` those on resident tensors.

mod host;
mod linear;
mod resident;

use crate::auto::{AutoChoice, Backend, Calibration, Work};
use crate::error::{invalid, Error, Result};
use crate::gpu::context::{DeviceInfo, GpuOptions};
use crate::gpu::memory::DeviceMemory;
use crate::gpu::Gpu;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) enum Inner {
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
pub(crate) enum Side<'a> {
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

    /// The CPU backend, on all cores: f32 SIMD loops for the activations,
    /// the common pointwise losses and the softmax row losses (cross-entropy
    /// with its class options, kl-div, entropy), summed in f64; the f64
    /// reference formulas for the rest. Always available.
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

    pub(crate) fn side(&self) -> Side<'_> {
        match &self.inner {
            Inner::Gpu(g) if !(self.auto && self.fallback_reason().is_some()) => Side::Gpu(g),
            _ => Side::Cpu,
        }
    }

    /// Runs `gpu` on the GPU side, `cpu` on the CPU side; an auto engine
    /// whose device is lost says so and finishes the call on the CPU.
    pub(crate) fn dispatch<T>(
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
    pub(crate) fn dispatch_sized<T>(
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

    /// "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)", or "cpu (all cores)".
    pub fn device_name(&self) -> String {
        match self.side() {
            Side::Gpu(g) => g.info().summary(),
            Side::Cpu => "cpu (all cores)".to_string(),
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

    /// The device memory this engine's buffers take now and took at most
    /// (its resident tensors, inputs and outputs in flight, scratch and
    /// staging buffers), to compare the memory of two ways of computing one
    /// thing; zero on the CPU backend.
    ///
    /// ```
    /// let engine = lossgpu::Engine::new();
    /// engine.reset_peak_device_memory();
    /// let t = engine.upload(&vec![0.5f32; 1000])?;
    /// let used = engine.device_memory();
    /// assert!(engine.device_info().is_none() || used.current_bytes >= 4000);
    /// assert!(used.peak_bytes >= used.current_bytes);
    /// drop(t);
    /// assert!(engine.device_memory().current_bytes <= used.current_bytes);
    /// # Ok::<(), lossgpu::Error>(())
    /// ```
    pub fn device_memory(&self) -> DeviceMemory {
        match &self.inner {
            Inner::Gpu(g) => g.memory().usage(),
            Inner::Cpu => DeviceMemory::default(),
        }
    }

    /// Starts a new peak for [`Engine::device_memory`] from what is held
    /// now.
    pub fn reset_peak_device_memory(&self) {
        if let Inner::Gpu(g) = &self.inner {
            g.memory().reset_peak();
        }
    }

    /// Compiled pipelines so far (each is built once and cached).
    pub fn pipeline_count(&self) -> usize {
        match &self.inner {
            Inner::Gpu(g) => g.pipeline_count(),
            Inner::Cpu => 0,
        }
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

    /// The GPU of this engine, or an error saying that `what` needs one.
    pub(crate) fn require_gpu(&self, what: &str) -> Result<&Gpu> {
        match self.side() {
            Side::Gpu(g) => Ok(g),
            Side::Cpu => Err(invalid!(
                "{what} measures a GPU adapter, but this engine computes on the CPU"
            )),
        }
    }
}

/// An upstream gradient must be as long as the activation's input.
fn check_upstream(x: usize, upstream: Option<usize>) -> Result<()> {
    match upstream {
        Some(u) if u != x => Err(invalid!("upstream has {u} values but the input has {x}")),
        _ => Ok(()),
    }
}

/// An empty input is an error naming `what`.
fn nonempty<T>(what: &str, x: &[T]) -> Result<()> {
    if x.is_empty() {
        return Err(invalid!("{what} is empty"));
    }
    Ok(())
}
