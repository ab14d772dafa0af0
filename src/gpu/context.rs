//! Adapter, device and queue; the device's limits; error scopes and the
//! device-lost flag, so that no wgpu failure becomes a panic.

use super::memory::{Buffer, Memory};
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};

/// Choices a caller may make when opening the GPU.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Use subgroup operations when the adapter has them (default true; false
    /// forces the shared-memory reduction tree).
    pub disable_subgroups: bool,
    /// Cap the storage binding size below the adapter's limit, to exercise
    /// the chunked paths on small data (tests) or to bound memory.
    pub max_binding_bytes: Option<u64>,
    /// Cap the workgroups per dispatch dimension below the adapter's limit
    /// (65 535 on most), so that the 2-D dispatch grid that larger inputs
    /// need runs on small data (tests). The device is opened with the cap,
    /// so a dispatch past it is a validation error, not silently accepted.
    /// Caps below 1024 are raised to 1024: a reduction's first pass is one
    /// row of at most 1024 workgroups (WebGPU guarantees 65 535).
    pub max_workgroups_per_dimension: Option<u32>,
}

/// What the engine knows of its adapter.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// Adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Graphics API: "Vulkan", "Metal", "Dx12" or "Gl".
    pub api: String,
    /// Kind: discrete, integrated, virtual, CPU or other.
    pub device_type: String,
    /// Driver and its version string.
    pub driver: String,
    /// Whether the reductions use subgroup operations.
    pub subgroups: bool,
    /// Largest storage binding in bytes (after any cap).
    pub max_binding_bytes: u64,
    /// Largest buffer in bytes.
    pub max_buffer_bytes: u64,
    /// Workgroups per dispatch dimension (after any cap); larger dispatches
    /// use a 2-D grid.
    pub max_workgroups_per_dimension: u32,
}

impl DeviceInfo {
    /// One line: "name (API, type)".
    pub fn summary(&self) -> String {
        format!("{} ({}, {})", self.name, self.api, self.device_type)
    }
}

pub(crate) struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: DeviceInfo,
    pub limits: wgpu::Limits,
    /// The bytes of the buffers made through [`Context::counted`].
    pub memory: Arc<Memory>,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Option<String>>>,
}

/// Rank for choosing among adapters: real GPUs first, then virtual, then
/// software; within a kind, the native APIs before GL.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (kind, api)
}

/// Every adapter wgpu can see (honouring WGPU_BACKEND), best first. GL is
/// opened only when no native API has an adapter: probing EGL is slow and
/// prints to stderr on machines without a display.
pub(crate) async fn adapters() -> Result<Vec<wgpu::Adapter>> {
    let allowed = allowed_backends()?;
    for set in [
        allowed & wgpu::Backends::PRIMARY,
        allowed & wgpu::Backends::SECONDARY,
    ] {
        if set.is_empty() {
            continue;
        }
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = set;
        let instance = wgpu::Instance::new(desc);
        let mut list: Vec<wgpu::Adapter> = instance
            .enumerate_adapters(set)
            .await
            .into_iter()
            .filter(|a| a.get_info().backend != wgpu::Backend::Noop)
            .filter(|a| {
                a.get_downlevel_capabilities()
                    .flags
                    .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
            })
            .collect();
        if !list.is_empty() {
            list.sort_by_key(|a| rank(&a.get_info()));
            return Ok(list);
        }
    }
    Ok(Vec::new())
}

/// The backends `WGPU_BACKEND` allows (all when unset). wgpu itself skips
/// a name it does not know with a log line nobody sees, and then reports no
/// adapter, as if a driver were missing; a misspelt value is named here.
fn allowed_backends() -> Result<wgpu::Backends> {
    let Ok(value) = std::env::var("WGPU_BACKEND") else {
        return Ok(wgpu::Backends::all());
    };
    let known = [
        "vulkan", "vk", "dx12", "d3d12", "metal", "mtl", "opengl", "gles", "gl", "webgpu",
    ];
    for name in value.split(',').map(|s| s.trim().to_lowercase()) {
        if !known.contains(&name.as_str()) {
            let shown: String = value.chars().take(40).collect();
            return Err(Error::NoAdapter(format!(
                "WGPU_BACKEND='{shown}' names no backend ('{name}' is not one of vulkan, dx12, metal, gl, webgpu)"
            )));
        }
    }
    Ok(wgpu::Backends::from_comma_list(&value))
}

impl Context {
    pub async fn new(options: &GpuOptions) -> Result<Context> {
        let list = adapters().await?;
        let wanted = std::env::var("WGPU_ADAPTER_NAME")
            .ok()
            .map(|s| s.to_lowercase());
        let adapter = match &wanted {
            Some(name) => list
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(name))
                .ok_or_else(|| Error::NoAdapter(format!("no adapter matches WGPU_ADAPTER_NAME={name}")))?,
            None => list.into_iter().next().ok_or_else(|| {
                Error::NoAdapter("wgpu found no adapter with compute shaders (install a Vulkan driver, e.g. mesa-vulkan-drivers for lavapipe)".into())
            })?,
        };
        Self::from_adapter(adapter, options).await
    }

    async fn from_adapter(adapter: wgpu::Adapter, options: &GpuOptions) -> Result<Context> {
        let ainfo = adapter.get_info();
        let subgroups =
            !options.disable_subgroups && adapter.features().contains(wgpu::Features::SUBGROUP);
        let features = if subgroups {
            wgpu::Features::SUBGROUP
        } else {
            wgpu::Features::empty()
        };
        // The adapter's real limits, not wgpu's conservative defaults.
        let mut limits = adapter.limits();
        if let Some(cap) = options.max_workgroups_per_dimension {
            limits.max_compute_workgroups_per_dimension = limits
                .max_compute_workgroups_per_dimension
                .min(cap.max(super::dispatch::MAX_PARTIALS as u32));
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("lossgpu"),
                required_features: features,
                required_limits: limits.clone(),
                memory_hints: wgpu::MemoryHints::Performance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoAdapter(format!("{}: {e}", ainfo.name)))?;
        Ok(Self::from_device(device, queue, ainfo, subgroups, options))
    }

    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        ainfo: wgpu::AdapterInfo,
        subgroups: bool,
        options: &GpuOptions,
    ) -> Context {
        let limits = device.limits();
        let lost = Arc::new(Mutex::new(None));
        let uncaptured = Arc::new(Mutex::new(None));
        let lost_flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut l) = lost_flag.lock() {
                *l = Some(format!("{reason:?}: {message}"));
            }
        });
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut s) = sink.lock() {
                s.get_or_insert_with(|| e.to_string());
            }
        }));
        let binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            .min(options.max_binding_bytes.unwrap_or(u64::MAX));
        let info = DeviceInfo {
            name: ainfo.name.clone(),
            api: format!("{:?}", ainfo.backend),
            device_type: format!("{:?}", ainfo.device_type),
            driver: format!("{} {}", ainfo.driver, ainfo.driver_info)
                .trim()
                .to_string(),
            subgroups: subgroups && device.features().contains(wgpu::Features::SUBGROUP),
            max_binding_bytes: binding,
            max_buffer_bytes: limits.max_buffer_size,
            max_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        };
        Context {
            device,
            queue,
            info,
            limits,
            memory: Arc::default(),
            lost,
            uncaptured,
        }
    }

    /// `buffer`, counted in this device's memory until dropped.
    pub fn counted(&self, buffer: wgpu::Buffer) -> Buffer {
        Buffer::counted(buffer, &self.memory)
    }

    pub fn is_lost(&self) -> bool {
        self.lost.lock().map(|l| l.is_some()).unwrap_or(true)
    }

    /// Fails once the device is lost; reports an error that escaped a scope.
    pub fn check(&self) -> Result<()> {
        // Polling runs pending callbacks, the device-lost one among them
        // (wgpu fires it there, not inside destroy()).
        let _ = self.device.poll(wgpu::PollType::Poll);
        if let Some(m) = self
            .lost
            .lock()
            .map_err(|_| Error::Gpu("poisoned lock".into()))?
            .clone()
        {
            return Err(Error::DeviceLost(m));
        }
        if let Some(m) = self
            .uncaptured
            .lock()
            .map_err(|_| Error::Gpu("poisoned lock".into()))?
            .take()
        {
            return Err(Error::Gpu(m));
        }
        Ok(())
    }

    /// Runs `f` inside validation, out-of-memory and internal error scopes and
    /// turns whatever they caught into an `Err`.
    pub fn scoped<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let result = f();
        let errors = [
            pollster::block_on(internal.pop()),
            pollster::block_on(validation.pop()),
            pollster::block_on(oom.pop()),
        ];
        self.check()?;
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(Error::Gpu(e.to_string()));
        }
        result
    }
}
