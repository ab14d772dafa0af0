//! f64 twin of `shaders/rows.wgsl`: losses over the rows of n×m scores.

use super::common::{propagate_nan, xlogy};
use crate::ops::loss::{ROW_ARGMAX, ROW_CE_CLASS, ROW_CE_PROB, ROW_ENTROPY, ROW_KL};

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
pub fn row_loss(op: u32, p: &[f32], t: RowTarget) -> f64 {
    match op {
        ROW_ARGMAX => match argmax(p) {
            Some(j) if j == class(t) => 0.0,
            Some(_) => 1.0,
            None => f64::NAN,
        },
        ROW_CE_CLASS => logsumexp(p) - p[class(t)] as f64,
        ROW_CE_PROB => {
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
        ROW_KL => p
            .iter()
            .zip(dist(t))
            .map(|(&q, &tj)| {
                let (q, tj) = (q as f64, tj as f64);
                propagate_nan(&[q], xlogy(tj, tj) - xlogy(tj, q))
            })
            .sum(),
        ROW_ENTROPY => p.iter().map(|&pj| -xlogy(pj as f64, pj as f64)).sum(),
        _ => f64::NAN,
    }
}

/// d (row loss) / d p_j for every j of the row.
pub fn row_grad(op: u32, p: &[f32], t: RowTarget) -> Vec<f64> {
    let lse = match op {
        ROW_CE_CLASS | ROW_CE_PROB => logsumexp(p),
        _ => 0.0,
    };
    p.iter()
        .enumerate()
        .map(|(j, &pj)| {
            let pj = pj as f64;
            match op {
                ROW_ARGMAX => propagate_nan(&[pj], 0.0),
                ROW_CE_CLASS => (pj - lse).exp() - if j == class(t) { 1.0 } else { 0.0 },
                ROW_CE_PROB => (pj - lse).exp() - dist(t)[j] as f64,
                ROW_KL => {
                    let tj = dist(t)[j] as f64;
                    if tj == 0.0 {
                        propagate_nan(&[pj], 0.0)
                    } else {
                        -tj / pj
                    }
                }
                ROW_ENTROPY => -(pj.ln() + 1.0),
                _ => f64::NAN,
            }
        })
        .collect()
}
