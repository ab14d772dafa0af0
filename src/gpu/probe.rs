//! Probes of the adapter's own ceilings, for benchmarks: a buffer-to-buffer
//! copy, a minimal read kernel (shaders/probe.wgsl), and a wait for the
//! queue so that work that returns nothing can be timed.

use super::buffers::{output, submit_and_read, to_f32, uniform};
use super::dispatch::{binding, chunks, partials_for, reduce_chunk_elements};
use super::memory::Buffer;
use super::params::ProbeParams;
use super::pipelines::Family;
use super::Gpu;
use crate::error::{invalid, Error, Result};

impl Gpu {
    /// Σ of one or two buffers of `n` values each, read once by the minimal
    /// kernel, folded by the same second pass as every reduction and read
    /// back (16 bytes): the fixed costs of a resident loss, without its work.
    pub fn probe_read(&self, buffers: &[&Buffer], n: usize) -> Result<f64> {
        let (xs, ys) = match buffers {
            [x] => (*x, None),
            [x, y] => (*x, Some(*y)),
            _ => {
                return Err(invalid!(
                    "probe_read takes one or two tensors, not {}",
                    buffers.len()
                ))
            }
        };
        let ctx = &self.ctx;
        self.ctx.scoped(|| {
            let parts = chunks(n, reduce_chunk_elements(ctx));
            let total: usize = parts.iter().map(|c| partials_for(c.len)).sum();
            let partials = output(ctx, total * 4, "probe partials")?;
            let constants = [("HAS_SECOND", ys.is_some() as u32)];
            let mut encoder = self.encoder();
            let mut base = 0;
            for c in &parts {
                let groups = partials_for(c.len);
                let params = uniform(
                    ctx,
                    &ProbeParams {
                        n: c.len as u32,
                        partial_base: base as u32,
                        ..Default::default()
                    },
                );
                let resources = vec![
                    params.as_entire_binding(),
                    binding(ctx, xs, c.start, c.len).0,
                    binding(ctx, ys.unwrap_or(xs), c.start, c.len).0,
                    partials.as_entire_binding(),
                ];
                self.run(
                    &mut encoder,
                    Family::Probe,
                    "read_sum",
                    &constants,
                    resources,
                    (groups as u32, 1),
                )?;
                base += groups;
            }
            let result = output(ctx, 4, "probe result")?;
            self.fold_partials(&mut encoder, &partials, total, &result, None)?;
            let bytes = submit_and_read(ctx, encoder, &[(&result, 16)])?;
            let s = to_f32(&bytes[0], 2);
            Ok(s[0] as f64 + if ys.is_some() { s[1] as f64 } else { 0.0 })
        })
    }

    /// Copies each (buffer, n) into a new buffer with copy_buffer_to_buffer
    /// (n×4 bytes), in one submission, and waits until the copies are done.
    pub fn probe_copy(&self, buffers: &[(&Buffer, usize)]) -> Result<Vec<Buffer>> {
        let ctx = &self.ctx;
        self.ctx.scoped(|| {
            let mut encoder = self.encoder();
            let mut copies = Vec::with_capacity(buffers.len());
            for &(buffer, n) in buffers {
                if !buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
                    return Err(invalid!("probe_copy: the buffer lacks COPY_SRC usage"));
                }
                let copy = output(ctx, n, "probe copy")?;
                encoder.copy_buffer_to_buffer(buffer, 0, &copy, 0, n as u64 * 4);
                copies.push(copy);
            }
            ctx.queue.submit([encoder.finish()]);
            self.wait()?;
            Ok(copies)
        })
    }

    /// Blocks until every submission so far has finished.
    pub fn wait(&self) -> Result<()> {
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        self.ctx.check()
    }
}
