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

/// The options of a row loss for one call (SPEC §1b): class weights w (1
/// without), label smoothing ε and the z-loss λ (cross-entropy), and the
/// margin and power of multi-margin.
#[derive(Clone, Copy, Default)]
pub struct RowOptions<'a> {
    /// The m class weights.
    pub class_weights: Option<&'a [f32]>,
    /// Label smoothing ε.
    pub smoothing: f64,
    /// The z-loss coefficient λ.
    pub z_loss: f64,
    /// multi-margin's margin M.
    pub margin: f64,
    /// multi-margin's power P (1 or 2).
    pub power: u32,
    /// kl-div's prediction is log q.
    pub log_input: bool,
    /// kl-div's target is log t.
    pub log_target: bool,
}

impl RowOptions<'_> {
    fn w(&self, j: usize) -> f64 {
        self.class_weights.map_or(1.0, |w| w[j] as f64)
    }

    /// multi-margin's (h^P, d h^P/d p_j) at column j ≠ y, h = max(0, M −
    /// p_y + p_j): 0 at and below the kink, NaN where either score is.
    fn margin_term(&self, p: &[f32], y: usize, j: usize) -> (f64, f64) {
        let z = self.margin - p[y] as f64 + p[j] as f64;
        if z.is_nan() {
            return (f64::NAN, f64::NAN);
        }
        let h = z.max(0.0);
        match self.power {
            1 => (h, (z > 0.0) as u8 as f64),
            _ => (h * h, 2.0 * h),
        }
    }

    /// PyTorch's defaults: multi-margin's M = 1 and P = 1, nothing else
    /// (kl-div on probabilities).
    fn defaults() -> Self {
        RowOptions {
            margin: 1.0,
            power: 1,
            ..Default::default()
        }
    }

    fn plain(&self) -> bool {
        self.class_weights.is_none() && self.smoothing == 0.0 && self.z_loss == 0.0
    }

    /// kl-div's (t, log t) from a target value: a log target is its own
    /// log (−inf is t = 0).
    fn kl_target(&self, raw: f32) -> (f64, f64) {
        let raw = raw as f64;
        match self.log_target {
            true => (raw.exp(), raw),
            false => (raw, raw.ln()),
        }
    }

    /// kl-div's term t·log t − t·log q at a prediction value, 0 where
    /// t = 0 (whose logs may be −inf), NaN where the prediction is.
    fn kl_term(&self, q: f32, raw_t: f32) -> f64 {
        let (t, log_t) = self.kl_target(raw_t);
        let q = q as f64;
        let log_q = if self.log_input { q } else { q.ln() };
        propagate_nan(&[q], if t == 0.0 { 0.0 } else { t * log_t - t * log_q })
    }

    /// d(kl term)/d pred: −t/q, or −t for a log prediction.
    fn kl_grad(&self, q: f32, raw_t: f32) -> f64 {
        let (t, _) = self.kl_target(raw_t);
        let q = q as f64;
        if t == 0.0 {
            propagate_nan(&[q], 0.0)
        } else if self.log_input {
            -t
        } else {
            -t / q
        }
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
pub(crate) fn row_loss_with(op: RowOp, p: &[f32], t: RowTarget, o: &RowOptions) -> f64 {
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
        RowOp::Kl => p
            .iter()
            .zip(dist(t))
            .map(|(&q, &tj)| o.kl_term(q, tj))
            .sum(),
        RowOp::MultiMargin => {
            let y = class(t);
            let hinge: f64 = (0..p.len())
                .filter(|&j| j != y)
                .map(|j| o.margin_term(p, y, j).0)
                .sum();
            o.w(y) * hinge / p.len() as f64
        }
        _ => row_loss(op, p, t),
    }
}

/// d (row loss) / d p_j for every j of the row, with the options `o`:
/// cross-entropy's is softmax(p)ⱼ·(Σₖcₖ + 2λκ·lse) − cⱼ.
pub(crate) fn row_grad_with(op: RowOp, p: &[f32], t: RowTarget, o: &RowOptions) -> Vec<f64> {
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
        RowOp::Kl => p
            .iter()
            .zip(dist(t))
            .map(|(&q, &tj)| o.kl_grad(q, tj))
            .collect(),
        RowOp::Nll => {
            let w = o.w(class(t));
            row_grad(op, p, t).iter().map(|d| w * d).collect()
        }
        RowOp::MultiMargin => {
            let (y, m) = (class(t), p.len());
            let scale = o.w(y) / m as f64;
            let mut g: Vec<f64> = (0..m)
                .map(|j| {
                    if j == y {
                        0.0
                    } else {
                        scale * o.margin_term(p, y, j).1
                    }
                })
                .collect();
            g[y] = -g.iter().sum::<f64>();
            g
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
        RowOp::Entropy => p.iter().map(|&pj| -xlogy(pj as f64, pj as f64)).sum(),
        RowOp::Nll => -(p[class(t)] as f64),
        RowOp::Kl | RowOp::MultiMargin => row_loss_with(op, p, t, &RowOptions::defaults()),
    }
}

/// d (row loss) / d p_j for every j of the row.
pub(crate) fn row_grad(op: RowOp, p: &[f32], t: RowTarget) -> Vec<f64> {
    if matches!(op, RowOp::Kl | RowOp::MultiMargin) {
        return row_grad_with(op, p, t, &RowOptions::defaults());
    }
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
                RowOp::Entropy => -(pj.ln() + 1.0),
                // A gather: the derivative reads no value, NaN or not.
                RowOp::Nll => -((j == class(t)) as u8 as f64),
                RowOp::Kl | RowOp::MultiMargin => f64::NAN, // returned above
            }
        })
        .collect()
}
