//! The GPU backend: each public operation records its dispatches into one
//! command encoder, submits once and reads back once. Each shader family
//! has its host file of the same name (activation, loss, rows, reduce,
//! metrics, stats, probe); `evaluate.rs` composes a loss's passes.

mod activation;
mod batch;
mod buffers;
pub(crate) mod context;
mod dispatch;
mod evaluate;
mod linear;
mod loss;
pub(crate) mod memory;
mod metrics;
mod offenders;
mod params;
pub(crate) mod pipelines;
mod probe;
mod reduce;
mod rows;
mod slabs;
mod stats;
mod stream;

use crate::error::Result;
use context::{Context, GpuOptions};
use pipelines::{Family, Pipelines};

pub(crate) use evaluate::Want;

pub(crate) struct Gpu {
    ctx: Context,
    pipelines: Pipelines,
}

impl Gpu {
    pub async fn new(options: &GpuOptions) -> Result<Gpu> {
        let ctx = Context::new(options).await?;
        let pipelines = Pipelines::new(&ctx)?;
        Ok(Gpu { ctx, pipelines })
    }

    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        options: &GpuOptions,
    ) -> Result<Gpu> {
        let subgroups =
            !options.disable_subgroups && device.features().contains(wgpu::Features::SUBGROUP);
        let ctx = Context::from_device(device, queue, info, subgroups, options);
        let pipelines = Pipelines::new(&ctx)?;
        Ok(Gpu { ctx, pipelines })
    }

    pub fn info(&self) -> &context::DeviceInfo {
        &self.ctx.info
    }

    pub fn memory(&self) -> &memory::Memory {
        &self.ctx.memory
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.ctx.device
    }

    /// Whether the device-lost callback has fired.
    pub fn is_lost(&self) -> bool {
        self.ctx.is_lost()
    }

    pub fn pipeline_count(&self) -> usize {
        self.pipelines.len()
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("lossgpu"),
            })
    }

    fn run(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        family: Family,
        entry: &'static str,
        constants: &[(&'static str, u32)],
        resources: Vec<wgpu::BindingResource>,
        groups: (u32, u32),
    ) -> Result<()> {
        let pipeline = self.pipelines.get(&self.ctx, family, entry, constants)?;
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .into_iter()
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        let bind_group = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: self.pipelines.layout(family),
                entries: &entries,
            });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(entry),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, 1);
        Ok(())
    }
}
