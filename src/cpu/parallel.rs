//! The CPU backend of [`crate::Engine::cpu`]: the reference's per-sample
//! formulas (f64) on all cores with rayon. Work is cut into blocks of a
//! fixed size and block sums are added in block order, so a result does
//! not depend on the number of threads.

use super::{
    finish, grad_coefficient, reject_rmse_none, sample_grad, sample_term, validate, weight,
    weighted,
};
use crate::error::Result;
use crate::ops::activation::{Activation, Pass};
use crate::ops::loss::{Loss, LossInput};
use crate::ops::reduction::Reduction;
use rayon::prelude::*;

/// Samples per task.
const BLOCK: usize = 1 << 14;

/// f(x), f'(x) or upstream ⊙ f'(x), rounded to f32.
pub fn activation(act: &Activation, pass: Pass, x: &[f32], upstream: Option<&[f32]>) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(b, block)| {
            for (k, o) in block.iter_mut().enumerate() {
                let i = b * BLOCK + k;
                let v = x[i] as f64;
                *o = match pass {
                    Pass::Forward => act.forward_f64(v, i),
                    Pass::Derivative => act.derivative_f64(v, i),
                    Pass::Backward => {
                        upstream.map_or(1.0, |u| u[i] as f64) * act.derivative_f64(v, i)
                    }
                } as f32;
            }
        });
    out
}

/// (Σ wᵢlᵢ, Σ wᵢ) over validated input.
pub fn loss_sums(loss: &Loss, input: &LossInput) -> Result<(f64, f64)> {
    validate(loss, input)?;
    let shape = loss.shape(input)?;
    let blocks: Vec<(f64, f64)> = (0..shape.rows.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let (mut s, mut w) = (0.0, 0.0);
            for i in b * BLOCK..((b + 1) * BLOCK).min(shape.rows) {
                let wi = weight(input, i);
                s += weighted(wi, sample_term(loss, input, &shape, i));
                w += wi;
            }
            (s, w)
        })
        .collect();
    Ok(blocks
        .iter()
        .fold((0.0, 0.0), |(s, w), (bs, bw)| (s + bs, w + bw)))
}

/// The reduced loss.
pub fn loss_scalar(loss: &Loss, input: &LossInput, reduction: Reduction) -> Result<f64> {
    reject_rmse_none(loss, reduction)?;
    let (sum, wsum) = loss_sums(loss, input)?;
    finish(reduction, sum, wsum, *loss == Loss::Rmse)
}

/// The per-sample wᵢ·lᵢ, rounded to f32.
pub fn loss_per_sample(loss: &Loss, input: &LossInput) -> Result<Vec<f32>> {
    reject_rmse_none(loss, Reduction::None)?;
    validate(loss, input)?;
    let shape = loss.shape(input)?;
    let mut out = vec![0.0f32; shape.rows];
    out.par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(b, block)| {
            for (k, o) in block.iter_mut().enumerate() {
                let i = b * BLOCK + k;
                *o = weighted(weight(input, i), sample_term(loss, input, &shape, i)) as f32;
            }
        });
    Ok(out)
}

/// The gradient of the reduced loss, rounded to f32.
pub fn loss_grad(loss: &Loss, input: &LossInput, reduction: Reduction) -> Result<Vec<f32>> {
    reject_rmse_none(loss, reduction)?;
    let (sum, wsum) = loss_sums(loss, input)?;
    let shape = loss.shape(input)?;
    let coef = grad_coefficient(loss, reduction, sum, wsum)?;
    let blocks: Vec<Vec<f32>> = (0..shape.rows.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let mut g = Vec::with_capacity(BLOCK * shape.cols);
            for i in b * BLOCK..((b + 1) * BLOCK).min(shape.rows) {
                sample_grad(loss, input, &shape, i, coef, &mut g);
            }
            g.into_iter().map(|v| v as f32).collect()
        })
        .collect();
    Ok(blocks.concat())
}
