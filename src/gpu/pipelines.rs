//! Shader assembly and the pipeline cache: each (family, entry point,
//! override constants) is compiled once per engine and reused.

use super::context::Context;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A shader file of `shaders/` and its bind-group layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `activation.wgsl`
    Activation,
    /// `loss.wgsl`
    Loss,
    /// `rows.wgsl`
    Rows,
    /// `reduce.wgsl`
    Reduce,
    /// `stats.wgsl`
    Stats,
    /// `metrics.wgsl`
    Metrics,
    /// `probe.wgsl`: the read kernel that measures the adapter's ceiling.
    Probe,
    /// `linear.wgsl`: fused linear + cross-entropy.
    Linear,
}

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const TREE_SHARED: &str = include_str!("../../shaders/tree_shared.wgsl");
const TREE_SUBGROUP: &str = include_str!("../../shaders/tree_subgroup.wgsl");

impl Family {
    /// Every family, for validation.
    pub const ALL: [Family; 8] = [
        Family::Activation,
        Family::Loss,
        Family::Rows,
        Family::Reduce,
        Family::Stats,
        Family::Metrics,
        Family::Probe,
        Family::Linear,
    ];

    /// The family's files after common.wgsl and the tree: terms.wgsl holds
    /// the pointwise loss formulas that loss.wgsl and metrics.wgsl share.
    fn body(self) -> String {
        let terms = include_str!("../../shaders/terms.wgsl");
        let own = match self {
            Family::Activation => include_str!("../../shaders/activation.wgsl"),
            Family::Loss => return format!("{terms}\n{}", include_str!("../../shaders/loss.wgsl")),
            Family::Metrics => {
                return format!("{terms}\n{}", include_str!("../../shaders/metrics.wgsl"))
            }
            Family::Rows => include_str!("../../shaders/rows.wgsl"),
            Family::Reduce => include_str!("../../shaders/reduce.wgsl"),
            Family::Stats => include_str!("../../shaders/stats.wgsl"),
            Family::Probe => include_str!("../../shaders/probe.wgsl"),
            Family::Linear => include_str!("../../shaders/linear.wgsl"),
        };
        own.to_string()
    }

    /// The file name under `shaders/`.
    pub fn file(self) -> &'static str {
        match self {
            Family::Activation => "activation.wgsl",
            Family::Loss => "loss.wgsl",
            Family::Rows => "rows.wgsl",
            Family::Reduce => "reduce.wgsl",
            Family::Stats => "stats.wgsl",
            Family::Metrics => "metrics.wgsl",
            Family::Probe => "probe.wgsl",
            Family::Linear => "linear.wgsl",
        }
    }

    /// The bindings in order: `true` for read-only storage, `false` for
    /// read-write; binding 0 is always the uniform parameters.
    fn storage_bindings(self) -> &'static [bool] {
        match self {
            // x, upstream, out
            Family::Activation => &[true, true, false],
            // pred, target, weights, out, errors, stats, segments, per class
            Family::Loss => &[true, true, true, false, false, true, true, true],
            // pred, target, weights, out, lse, errors, stats, class weights
            Family::Rows => &[true, true, true, false, false, false, true, true],
            // partials, out, segments
            Family::Reduce => &[true, false, true],
            // data (in place), partials, counts, stats
            Family::Stats => &[false, false, false, true],
            // pred, target, weights, partials, errors
            Family::Metrics => &[true, true, true, false, false],
            // xs, ys, partials
            Family::Probe => &[true, true, false],
            // a, b, c, state, labels, bias, sums
            Family::Linear => &[true, true, false, false, true, true, false],
        }
    }
}

/// The complete WGSL of a family: common math, the workgroup-sum variant,
/// then the family's own file. Public so the shader tests validate exactly
/// what the GPU compiles.
pub fn shader_source(family: Family, subgroups: bool) -> String {
    // Naga (wgpu 30) accepts subgroup builtins under Features::SUBGROUP and
    // rejects the `enable subgroups;` directive, so none is written.
    let tree = if subgroups {
        TREE_SUBGROUP
    } else {
        TREE_SHARED
    };
    format!(
        "{}\n{COMMON}\n{tree}\n{}",
        crate::ops::wgsl_constants(),
        family.body()
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    family: Family,
    entry: &'static str,
    constants: Vec<(&'static str, u32)>,
}

pub(crate) struct Pipelines {
    modules: Mutex<HashMap<Family, Arc<wgpu::ShaderModule>>>,
    layouts: HashMap<Family, wgpu::BindGroupLayout>,
    pipeline_layouts: HashMap<Family, wgpu::PipelineLayout>,
    cache: Mutex<HashMap<Key, Arc<wgpu::ComputePipeline>>>,
}

fn layout_entries(family: Family) -> Vec<wgpu::BindGroupLayoutEntry> {
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }];
    for (i, &read_only) in family.storage_bindings().iter().enumerate() {
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: i as u32 + 1,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
    }
    entries
}

impl Pipelines {
    pub fn new(ctx: &Context) -> Result<Pipelines> {
        ctx.scoped(|| {
            let mut layouts = HashMap::new();
            let mut pipeline_layouts = HashMap::new();
            for family in Family::ALL {
                let bgl = ctx
                    .device
                    .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                        label: Some(family.file()),
                        entries: &layout_entries(family),
                    });
                let pl = ctx
                    .device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(family.file()),
                        bind_group_layouts: &[Some(&bgl)],
                        immediate_size: 0,
                    });
                layouts.insert(family, bgl);
                pipeline_layouts.insert(family, pl);
            }
            Ok(Pipelines {
                modules: Mutex::new(HashMap::new()),
                layouts,
                pipeline_layouts,
                cache: Mutex::new(HashMap::new()),
            })
        })
    }

    pub fn layout(&self, family: Family) -> &wgpu::BindGroupLayout {
        &self.layouts[&family]
    }

    /// Number of compiled pipelines (for leak checks).
    pub fn len(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn module(&self, ctx: &Context, family: Family) -> Result<Arc<wgpu::ShaderModule>> {
        let mut modules = self
            .modules
            .lock()
            .map_err(|_| Error::Gpu("poisoned lock".into()))?;
        if let Some(m) = modules.get(&family) {
            return Ok(m.clone());
        }
        let source = shader_source(family, ctx.info.subgroups);
        let module = ctx
            .scoped(|| {
                Ok(ctx
                    .device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(family.file()),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    }))
            })
            .map_err(|e| Error::Gpu(format!("compiling shaders/{}: {e}", family.file())))?;
        let module = Arc::new(module);
        modules.insert(family, module.clone());
        Ok(module)
    }

    /// The pipeline for `entry` of `family` with the override `constants`
    /// (booleans as 0/1), compiled on first use.
    pub fn get(
        &self,
        ctx: &Context,
        family: Family,
        entry: &'static str,
        constants: &[(&'static str, u32)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let key = Key {
            family,
            entry,
            constants: constants.to_vec(),
        };
        if let Some(p) = self
            .cache
            .lock()
            .map_err(|_| Error::Gpu("poisoned lock".into()))?
            .get(&key)
        {
            return Ok(p.clone());
        }
        let module = self.module(ctx, family)?;
        let values: Vec<(&str, f64)> = constants.iter().map(|&(n, v)| (n, v as f64)).collect();
        let pipeline = ctx
            .scoped(|| {
                Ok(ctx
                    .device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(entry),
                        layout: Some(&self.pipeline_layouts[&family]),
                        module: &module,
                        entry_point: Some(entry),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants: &values,
                            zero_initialize_workgroup_memory: false,
                        },
                        cache: None,
                    }))
            })
            .map_err(|e| Error::Gpu(format!("pipeline {}:{entry}: {e}", family.file())))?;
        let pipeline = Arc::new(pipeline);
        self.cache
            .lock()
            .map_err(|_| Error::Gpu("poisoned lock".into()))?
            .entry(key)
            .or_insert(pipeline.clone());
        Ok(pipeline)
    }
}
