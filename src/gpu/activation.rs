//! Host side of `shaders/activation.wgsl`: f(x), f'(x) or upstream ⊙ f'(x)
//! elementwise, chunked to the storage binding.

use super::buffers::{output_of, read_bytes, submit_and_read, to_values, uniform, upload};
use super::dispatch::{binding_of, chunks, grid, groups_for, max_chunk_elements};
use super::memory::Buffer;
use super::params::ActParams;
use super::pipelines::Family;
use super::Gpu;
use crate::error::Result;
use crate::ops::activation::{Activation, Pass};
use crate::ops::dtype::{DType, Float};

impl Gpu {
    /// The pass over host values, read back as `O` (narrowed by the kernel).
    pub(crate) fn activation<F: Float, O: Float>(
        &self,
        act: &Activation,
        pass: Pass,
        x: &[F],
        upstream: Option<&[F]>,
    ) -> Result<Vec<O>> {
        let n = x.len();
        self.ctx.scoped(|| {
            let xb = upload(&self.ctx, x, "input")?;
            let ub = match upstream {
                Some(u) if pass == Pass::Backward => Some(upload(&self.ctx, u, "upstream")?),
                _ => None,
            };
            let out = output_of(&self.ctx, n, O::DTYPE, "activation output")?;
            let mut encoder = self.encoder();
            let inputs = (&xb, ub.as_ref(), F::DTYPE);
            self.encode_activation(&mut encoder, act, pass, inputs, (&out, O::DTYPE), n)?;
            let bytes = submit_and_read(&self.ctx, encoder, &[(&out, read_bytes(n, O::DTYPE))])?;
            Ok(to_values(&bytes[0], n))
        })
    }

    /// The activation of a resident buffer of `dtype` into a new resident
    /// buffer of `out_dtype`.
    pub(crate) fn activation_resident(
        &self,
        act: &Activation,
        pass: Pass,
        (x, upstream): (&Buffer, Option<&Buffer>),
        (dtype, out_dtype): (DType, DType),
        n: usize,
    ) -> Result<Buffer> {
        self.ctx.scoped(|| {
            let out = output_of(&self.ctx, n, out_dtype, "activation output")?;
            let mut encoder = self.encoder();
            let inputs = (x, upstream, dtype);
            self.encode_activation(&mut encoder, act, pass, inputs, (&out, out_dtype), n)?;
            self.ctx.queue.submit([encoder.finish()]);
            Ok(out)
        })
    }

    /// Records f, f' or upstream ⊙ f' of `n` values of x (and upstream),
    /// both stored as `dtype`, into `out` of its dtype.
    pub(super) fn encode_activation(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: &Activation,
        pass: Pass,
        (xb, ub, dtype): (&Buffer, Option<&Buffer>, DType),
        (out, out_dtype): (&Buffer, DType),
        n: usize,
    ) -> Result<()> {
        let [a, _, lower, upper] = act.shader_params();
        let [training, seed_lo, seed_hi] = act.shader_rng();
        let constants = [
            ("OP", act.kernel().id()),
            ("PASS", pass.id()),
            ("X_DTYPE", dtype.id()),
            ("UPSTREAM_DTYPE", dtype.id()),
            ("OUT_DTYPE", out_dtype.id()),
        ];
        for c in chunks(n, max_chunk_elements(&self.ctx)) {
            let params = uniform(
                &self.ctx,
                &ActParams {
                    n4: c.len.div_ceil(4) as u32,
                    base: c.start as u32,
                    seed_lo,
                    seed_hi,
                    a,
                    training,
                    lower,
                    upper,
                },
            );
            let resources = vec![
                params.as_entire_binding(),
                binding_of(&self.ctx, xb, c.start, c.len, dtype).0,
                binding_of(&self.ctx, ub.unwrap_or(xb), c.start, c.len, dtype).0,
                binding_of(&self.ctx, out, c.start, c.len, out_dtype).0,
            ];
            let groups = grid(&self.ctx, groups_for(c.len.div_ceil(4)))?;
            self.run(
                encoder,
                Family::Activation,
                "activation",
                &constants,
                resources,
                groups,
            )?;
        }
        Ok(())
    }
}
