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
