//! f64 twin of `shaders/rows.wgsl`: losses over the rows of n×m scores.

use super::common::{propagate_nan, xlogy};
use crate::ops::loss::RowOp;

/// logsumexp with the row maximum subtracted, so no logit overflows.
pub fn logsumexp(row: &[f32]) -> f64 {
    let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
    m + s.ln()
}

/// Index of the first maximum (None if the row holds a NaN).
pub fn argmax(row: &[f32]) -> Option<usize> {
    if row.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    Some(best)
}

/// Target of one row: a class index or a distribution.
#[derive(Clone, Copy)]
pub enum RowTarget<'a> {
    /// No target (entropy).
    None,
    /// A class index.
    Class(u32),
    /// A distribution over the m columns.
    Dist(&'a [f32]),
}

fn dist<'a>(t: RowTarget<'a>) -> &'a [f32] {
    match t {
        RowTarget::Dist(d) => d,
        _ => &[],
    }
}

fn class(t: RowTarget) -> usize {
    match t {
        RowTarget::Class(c) => c as usize,
        _ => usize::MAX,
    }
}

/// Cross-entropy's and nll's options for one call (SPEC §1b): class
/// weights w (1 without), label smoothing ε and the z-loss λ.
#[derive(Clone, Copy, Default)]
pub struct CeOptions<'a> {
    /// The m class weights.
    pub class_weights: Option<&'a [f32]>,
    /// Label smoothing ε.
    pub smoothing: f64,
    /// The z-loss coefficient λ.
    pub z_loss: f64,
}

impl CeOptions<'_> {
    fn w(&self, j: usize) -> f64 {
        self.class_weights.map_or(1.0, |w| w[j] as f64)
    }

    fn plain(&self) -> bool {
        self.class_weights.is_none() && self.smoothing == 0.0 && self.z_loss == 0.0
    }

    /// Cross-entropy as Σⱼ cⱼ·(lse − pⱼ) + λκ·lse²: the coefficients cⱼ
    /// and κ. Class target y: cⱼ = wⱼ·((1−ε)·[j = y] + ε/m), κ = w_y;
    /// probabilities t: cⱼ = wⱼ·((1−ε)·tⱼ + ε/m), κ = 1.
    fn coefficients(&self, m: usize, t: RowTarget) -> (Vec<f64>, f64) {
        let (e, share) = (self.smoothing, self.smoothing / m as f64);
        let c = (0..m)
            .map(|j| {
                let tj = match t {
                    RowTarget::Class(y) => ((j == y as usize) as u8) as f64,
                    RowTarget::Dist(d) => d[j] as f64,
                    RowTarget::None => 0.0,
                };
                self.w(j) * ((1.0 - e) * tj + share)
            })
            .collect();
        let kappa = match t {
            RowTarget::Class(y) => self.w(y as usize),
            _ => 1.0,
        };
        (c, kappa)
    }
}

/// The loss of one row for row op `op` with cross-entropy's and nll's
/// options `o`.
pub(crate) fn row_loss_with(op: RowOp, p: &[f32], t: RowTarget, o: &CeOptions) -> f64 {
    match op {
        RowOp::CeClass | RowOp::CeProb if !o.plain() => {
            let lse = logsumexp(p);
            let (c, kappa) = o.coefficients(p.len(), t);
            let terms: f64 = p
                .iter()
                .zip(&c)
                .map(|(&pj, &cj)| {
                    if cj == 0.0 {
                        0.0
                    } else {
                        cj * (lse - pj as f64)
                    }
                })
                .sum();
            terms + o.z_loss * kappa * lse * lse
        }
        RowOp::Nll => -o.w(class(t)) * p[class(t)] as f64,
        _ => row_loss(op, p, t),
    }
}

/// d (row loss) / d p_j for every j of the row, with the options `o`:
/// cross-entropy's is softmax(p)ⱼ·(Σₖcₖ + 2λκ·lse) − cⱼ.
pub(crate) fn row_grad_with(op: RowOp, p: &[f32], t: RowTarget, o: &CeOptions) -> Vec<f64> {
    match op {
        RowOp::CeClass | RowOp::CeProb if !o.plain() => {
            let lse = logsumexp(p);
            let (c, kappa) = o.coefficients(p.len(), t);
            let scale = c.iter().sum::<f64>() + 2.0 * o.z_loss * kappa * lse;
            p.iter()
                .zip(&c)
                .map(|(&pj, &cj)| (pj as f64 - lse).exp() * scale - cj)
                .collect()
        }
        RowOp::Nll => {
            let w = o.w(class(t));
            row_grad(op, p, t).iter().map(|d| w * d).collect()
        }
        _ => row_grad(op, p, t),
    }
}

/// The loss of one row for row op `op`.
pub(crate) fn row_loss(op: RowOp, p: &[f32], t: RowTarget) -> f64 {
    match op {
        RowOp::Argmax => match argmax(p) {
            Some(j) if j == class(t) => 0.0,
            Some(_) => 1.0,
            None => f64::NAN,
        },
        RowOp::CeClass => logsumexp(p) - p[class(t)] as f64,
        RowOp::CeProb => {
            let lse = logsumexp(p);
            p.iter()
                .zip(dist(t))
                .map(|(&pj, &tj)| {
                    let tj = tj as f64;
                    if tj == 0.0 {
                        0.0
                    } else {
                        tj * (lse - pj as f64)
                    }
                })
                .sum()
        }
        RowOp::Kl => p
            .iter()
            .zip(dist(t))
            .map(|(&q, &tj)| {
                let (q, tj) = (q as f64, tj as f64);
                propagate_nan(&[q], xlogy(tj, tj) - xlogy(tj, q))
            })
            .sum(),
        RowOp::Entropy => p.iter().map(|&pj| -xlogy(pj as f64, pj as f64)).sum(),
        RowOp::Nll => -(p[class(t)] as f64),
    }
}

/// d (row loss) / d p_j for every j of the row.
pub(crate) fn row_grad(op: RowOp, p: &[f32], t: RowTarget) -> Vec<f64> {
    let lse = match op {
        RowOp::CeClass | RowOp::CeProb => logsumexp(p),
        _ => 0.0,
    };
    p.iter()
        .enumerate()
        .map(|(j, &pj)| {
            let pj = pj as f64;
            match op {
                RowOp::Argmax => propagate_nan(&[pj], 0.0),
                RowOp::CeClass => (pj - lse).exp() - if j == class(t) { 1.0 } else { 0.0 },
                RowOp::CeProb => (pj - lse).exp() - dist(t)[j] as f64,
                RowOp::Kl => {
                    let tj = dist(t)[j] as f64;
                    if tj == 0.0 {
                        propagate_nan(&[pj], 0.0)
                    } else {
                        -tj / pj
                    }
                }
                RowOp::Entropy => -(pj.ln() + 1.0),
                // A gather: the derivative reads no value, NaN or not.
                RowOp::Nll => -((j == class(t)) as u8 as f64),
            }
        })
        .collect()
}
