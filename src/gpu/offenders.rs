//! Naming an offending value after a kernel flagged it: the flagged row's
//! first value outside its domain, read back from the host slices or the
//! resident buffer, as the same error the CPU reference gives.

use super::buffers::{output, submit_and_read, to_f32, to_values};
use super::memory::Buffer;
use super::Gpu;
use crate::error::{Error, Result};
use crate::ops::dtype::{DType, Float};
use crate::ops::input::{class_error, weight_error, Call, LossInput, Target};
use crate::ops::loss::Domain;

impl Gpu {
    /// Values [start, start + len) of a resident buffer of `dtype`, as f32
    /// (to name an offender in an error): their aligned words are copied,
    /// and half values widened. (f32 bits of a u32 buffer are its values.)
    pub(super) fn read_offenders(
        &self,
        buffer: &Buffer,
        start: usize,
        len: usize,
        dtype: DType,
    ) -> Result<Vec<f32>> {
        let size = dtype.size();
        let first = (start * size) as u64 & !3;
        let end = ((start + len) * size).next_multiple_of(4) as u64;
        let copy = output(&self.ctx, ((end - first) / 4) as usize, "offender")?;
        let mut encoder = self.encoder();
        encoder.copy_buffer_to_buffer(buffer, first, &copy, 0, end - first);
        let bytes = submit_and_read(&self.ctx, encoder, &[(&copy, end - first)])?;
        let at = start * size - first as usize;
        let bytes = &bytes[0][at..at + len * size];
        Ok(match dtype {
            DType::F32 => to_f32(bytes, len),
            DType::F16 => to_values::<crate::f16>(bytes, len)
                .iter()
                .map(|v| v.to_f32())
                .collect(),
            DType::Bf16 => to_values::<crate::bf16>(bytes, len)
                .iter()
                .map(|v| v.to_f32())
                .collect(),
        })
    }

    /// Turns the first offending index found by the kernels into the same
    /// error the CPU reference gives.
    pub(super) fn raise_value_errors<F: Float>(
        &self,
        call: &Call,
        input: &LossInput<F>,
        slots: &[u32],
    ) -> Result<()> {
        let loss = &call.loss;
        let cols = call.flagged_cols();
        let offender = |values: &[F], i: usize, domain| {
            let row = values[i * cols..(i + 1) * cols].iter().map(|v| v.to_f32());
            first_outside(i, cols, row, domain)
        };
        if let Some(&i) = slots.first().filter(|&&i| i != u32::MAX) {
            let domain = call.pred_domain();
            let (i, v) = offender(input.pred, i as usize, domain);
            return Err(loss.domain_error("pred", domain, i, v));
        }
        if let Some(&i) = slots.get(1).filter(|&&i| i != u32::MAX) {
            let i = i as usize;
            return Err(match input.target {
                Target::Classes(c) => class_error(loss, i, c[i], call.shape.cols),
                Target::Values(t) => {
                    let domain = call.target_domain();
                    let (i, v) = offender(t, i, domain);
                    loss.domain_error("target", domain, i, v)
                }
                Target::None => Error::Gpu("a kernel flagged a target that does not exist".into()),
            });
        }
        if let (Some(&i), Some(w)) = (slots.get(2).filter(|&&i| i != u32::MAX), input.weights) {
            return Err(weight_error(loss, i as usize, w[i as usize].to_f32()));
        }
        Ok(())
    }
}

/// The index among a call's elements, and the value, of the first value of
/// row `row` (of `cols`) outside `domain`; the row's first value should
/// none be.
pub(super) fn first_outside(
    row: usize,
    cols: usize,
    values: impl IntoIterator<Item = f32>,
    domain: Domain,
) -> (usize, f32) {
    let mut values = values.into_iter().enumerate().peekable();
    let first = values.peek().map_or(f32::NAN, |&(_, v)| v);
    let (j, v) = values
        .find(|&(_, v)| !domain.contains(v))
        .unwrap_or((0, first));
    (row * cols + j, v)
}
