//! Gradient statistics and clipping on device-resident buffers: one stats
//! pass, the shared second pass, and (for clipping) an in-place pass that
//! reads the norm on the device.

use super::buffers::{output, output_of, submit_and_read, to_f32, to_u32, uniform};
use super::dispatch::{binding_of, chunks, grid, groups_for, max_chunk_elements, partials_for};
use super::memory::Buffer;
use super::params::StatsParams;
use super::pipelines::Family;
use super::Gpu;
use crate::error::Result;
use crate::ops::dtype::DType;
use crate::ops::gradient::{Clip, GradStats};
use wgpu::util::DeviceExt;

/// A resident buffer and its length in values.
pub(crate) type Resident<'a> = (&'a Buffer, usize);

/// The entry points of `shaders/stats.wgsl`.
#[derive(Clone, Copy)]
enum StatsEntry {
    /// Per-workgroup partials of Σg², max |g| and the counts.
    Stats,
    /// g·min(1, c/(‖g‖ + 1e-6)) in place, ‖g‖ from the folded partials.
    ClipNorm,
    /// clamp(g, −c, c) in place.
    ClipValue,
}

impl StatsEntry {
    fn name(self) -> &'static str {
        match self {
            StatsEntry::Stats => "grad_stats",
            StatsEntry::ClipNorm => "clip_norm",
            StatsEntry::ClipValue => "clip_value",
        }
    }
}

impl Gpu {
    /// A read-write storage buffer holding `data`, readable back.
    /// A device buffer holding `data` as it is (2 bytes a half value),
    /// padded to whole vec4s.
    pub fn upload_resident<T: bytemuck::Pod>(&self, data: &[T]) -> Result<Buffer> {
        self.ctx.scoped(|| {
            let bytes = std::mem::size_of_val(data);
            let out = output_of(&self.ctx, bytes.div_ceil(4), DType::F32, "tensor")?;
            super::buffers::write_padded(&self.ctx, &out, data);
            Ok(out)
        })
    }

    /// The first `len` values of a resident buffer of `T`.
    pub fn read_resident<T: bytemuck::Pod>(&self, buffer: &Buffer, len: usize) -> Result<Vec<T>> {
        self.ctx.scoped(|| {
            let size = (len * std::mem::size_of::<T>()) as u64;
            let bytes =
                submit_and_read(&self.ctx, self.encoder(), &[(buffer, size.div_ceil(4) * 4)])?;
            Ok(bytemuck::pod_collect_to_vec(&bytes[0][..size as usize]))
        })
    }

    /// Statistics over all `tensors` (of `dtype` values) as one vector;
    /// with `clip`, then clips them in place in the same submission, half
    /// values rounded back to their type.
    pub fn grad_stats(
        &self,
        tensors: &[Resident],
        eps: f32,
        clip: Option<Clip>,
        dtype: DType,
    ) -> Result<GradStats> {
        self.ctx.scoped(|| {
            let ctx = &self.ctx;
            let max = max_chunk_elements(ctx);
            let total: usize = tensors
                .iter()
                .flat_map(|&(_, n)| chunks(n, max))
                .map(|c| partials_for(c.len))
                .sum();
            let partials = output(ctx, total.max(1) * 4, "partials")?;
            let counts = ctx.counted(ctx.device.create_buffer_init(
                &wgpu::util::BufferInitDescriptor {
                    label: Some("counts"),
                    contents: bytemuck::cast_slice(&[0u32; 4]),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                },
            ));
            let result = output(ctx, 4, "stats")?;
            let mut encoder = self.encoder();
            let limit = match clip {
                Some(Clip::Value(c) | Clip::Norm(c)) => c,
                None => 0.0,
            };
            let pass = |encoder: &mut wgpu::CommandEncoder,
                        entry: StatsEntry,
                        base: &mut usize|
             -> Result<()> {
                for &(buffer, n) in tensors {
                    for c in chunks(n, max) {
                        let groups = partials_for(c.len);
                        let params = uniform(
                            ctx,
                            &StatsParams {
                                n: c.len as u32,
                                partial_base: *base as u32,
                                eps,
                                limit,
                            },
                        );
                        let resources = vec![
                            params.as_entire_binding(),
                            binding_of(ctx, buffer, c.start, c.len, dtype).0,
                            partials.as_entire_binding(),
                            counts.as_entire_binding(),
                            result.as_entire_binding(),
                        ];
                        let dispatch = match entry {
                            StatsEntry::Stats => (groups as u32, 1),
                            StatsEntry::ClipNorm | StatsEntry::ClipValue => {
                                grid(ctx, groups_for(c.len.div_ceil(4)))?
                            }
                        };
                        let name = entry.name();
                        let constants = [("DTYPE", dtype.id())];
                        self.run(
                            encoder,
                            Family::Stats,
                            name,
                            &constants,
                            resources,
                            dispatch,
                        )?;
                        *base += groups;
                    }
                }
                Ok(())
            };
            pass(&mut encoder, StatsEntry::Stats, &mut 0)?;
            self.fold_partials(&mut encoder, &partials, total, &result, None)?;
            match clip {
                Some(Clip::Norm(_)) => pass(&mut encoder, StatsEntry::ClipNorm, &mut 0)?,
                Some(Clip::Value(_)) => pass(&mut encoder, StatsEntry::ClipValue, &mut 0)?,
                None => {}
            }
            let bytes = submit_and_read(ctx, encoder, &[(&result, 16), (&counts, 16)])?;
            let s = to_f32(&bytes[0], 3);
            let c = to_u32(&bytes[1]);
            let n: usize = tensors.iter().map(|t| t.1).sum();
            // The sums are scaled by the largest partial scale, which is
            // max |g| itself, exact from its bits.
            let max_abs = f32::from_bits(c[3]) as f64;
            let norm = (s[0] as f64).sqrt() * max_abs;
            Ok(GradStats::from_parts(
                norm,
                max_abs,
                c[0] as u64,
                c[1] as u64,
                c[2] as u64,
                n as u64,
            ))
        })
    }
}
