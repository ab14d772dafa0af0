//! The fused regression-metrics pass.

use super::buffers::{error_slots, output, submit_and_read, to_f32, to_u32, uniform, upload};
use super::dispatch::{binding_of, chunks, partials_for, reduce_chunk_elements, Chunk};
use super::params::MetricParams;
use super::pipelines::Family;
use super::stream::{ChunkInputs, HostInputs};
use super::Gpu;
use crate::error::Result;
use crate::ops::dtype::Float;
use crate::ops::input::{weight_error, Call, LossInput, Target};

impl Gpu {
    /// The seven weighted sums of metrics.wgsl and Σw of a checked mse
    /// call, one read of the data.
    pub(crate) fn metric_sums<F: Float>(
        &self,
        call: &Call,
        input: &LossInput<F>,
        delta: f32,
        gamma: f32,
    ) -> Result<([f64; 7], f64)> {
        let ctx = &self.ctx;
        let Target::Values(target) = input.target else {
            return Err(crate::error::invalid!("metrics need real targets"));
        };
        let n = input.pred.len();
        self.ctx.scoped(|| {
            let errors = error_slots(ctx);
            let chunk = reduce_chunk_elements(ctx);
            let parts = chunks(n, chunk);
            let total: usize = parts.iter().map(|c| partials_for(c.len)).sum();
            // Two vec4 per partial, and two more for the totals.
            let partials = output(ctx, (total + 1) * 8, "metric partials")?;
            let constants = [
                ("HAS_WEIGHTS", input.weights.is_some() as u32),
                ("DTYPE", F::DTYPE.id()),
            ];
            let mut base = 0;
            let mut record = |encoder: &mut wgpu::CommandEncoder,
                              inputs: &ChunkInputs,
                              c: Chunk|
             -> Result<()> {
                let groups = partials_for(c.len);
                let params = uniform(
                    ctx,
                    &MetricParams {
                        n: c.len as u32,
                        base: c.start as u32,
                        partial_base: base as u32,
                        delta,
                        gamma,
                        ..Default::default()
                    },
                );
                let pred = inputs.pred;
                let resources = vec![
                    params.as_entire_binding(),
                    binding_of(ctx, pred, inputs.at, c.len, F::DTYPE).0,
                    binding_of(
                        ctx,
                        inputs.target.unwrap_or(pred),
                        inputs.at,
                        c.len,
                        F::DTYPE,
                    )
                    .0,
                    binding_of(
                        ctx,
                        inputs.weights.unwrap_or(pred),
                        inputs.at,
                        c.len,
                        F::DTYPE,
                    )
                    .0,
                    partials.as_entire_binding(),
                    errors.as_entire_binding(),
                ];
                self.run(
                    encoder,
                    Family::Metrics,
                    "metrics_partials",
                    &constants,
                    resources,
                    (groups as u32, 1),
                )?;
                base += groups;
                Ok(())
            };
            // Longer than a chunk: streamed from the host (stream.rs).
            let host = HostInputs {
                pred: input.pred,
                target: Some(target),
                weights: input.weights,
                per_class: None,
            };
            let mut encoder;
            let uploaded;
            if n > chunk {
                encoder = self.stream(host, chunk, &mut record)?;
            } else {
                uploaded = [
                    upload(ctx, input.pred, "pred")?,
                    upload(ctx, target, "target")?,
                    upload(ctx, input.weights.unwrap_or(&[]), "weights")?,
                ];
                let inputs = ChunkInputs {
                    pred: &uploaded[0],
                    target: Some(&uploaded[1]),
                    weights: input.weights.map(|_| &uploaded[2]),
                    per_class: None,
                    dtypes: super::loss::Dtypes::all(F::DTYPE),
                    at: 0,
                };
                encoder = self.encoder();
                record(&mut encoder, &inputs, parts[0])?;
            }
            let pred = output(ctx, 4, "unused input")?;
            let params = uniform(
                ctx,
                &MetricParams {
                    n: total as u32,
                    base: 0,
                    partial_base: total as u32,
                    delta,
                    gamma,
                    ..Default::default()
                },
            );
            // The final pass reads only the partials; the inputs are unused.
            let resources = vec![
                params.as_entire_binding(),
                pred.as_entire_binding(),
                pred.as_entire_binding(),
                pred.as_entire_binding(),
                partials.as_entire_binding(),
                errors.as_entire_binding(),
            ];
            self.run(
                &mut encoder,
                Family::Metrics,
                "metrics_final",
                &constants,
                resources,
                (1, 1),
            )?;
            let tail = output(ctx, 8, "metric totals")?;
            encoder.copy_buffer_to_buffer(&partials, total as u64 * 32, &tail, 0, 32);
            let bytes = submit_and_read(ctx, encoder, &[(&errors, 16), (&tail, 32)])?;
            let slots = to_u32(&bytes[0]);
            if let (Some(w), true) = (input.weights, slots[2] != u32::MAX) {
                let i = slots[2] as usize;
                return Err(weight_error(&call.loss, i, w[i].to_f32()));
            }
            let v = to_f32(&bytes[1], 8);
            let sums = [v[0], v[1], v[2], v[3], v[4], v[5], v[6]].map(|x| x as f64);
            let wsum = if input.weights.is_some() {
                v[7] as f64
            } else {
                n as f64
            };
            Ok((sums, wsum))
        })
    }
}
