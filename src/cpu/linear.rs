//! Fused linear + cross-entropy on the CPU, and its f64 reference. The
//! fused form never holds the N×V logits: the vocabulary is taken a chunk
//! of CHUNK classes at a time, each chunk's logits recomputed by a matrix
//! product (matrixmultiply's sgemm) into a block of rows × CHUNK, as the
//! GPU does. Every sum has a fixed order (rows in parallel blocks, the
//! chunks in order within a row; the classifier's gradient over the row
//! blocks in order within a chunk), so the result does not depend on the
//! thread count.

use crate::ops::dtype::Float;
use crate::ops::linear::{LinearGrads, LinearInput, LinearShape};
use crate::ops::reduction::{LossValue, Reduction};
use rayon::prelude::*;

/// Classes per chunk of recomputed logits.
const CHUNK: usize = 1024;
/// Rows per task.
const ROWS: usize = 32;

/// C = A·B + beta·C for row-major views given by (values, row stride,
/// column stride): A is m×k, B k×n, C m×n (row stride n).
fn gemm(
    (m, k, n): (usize, usize, usize),
    (a, rsa, csa): (&[f32], usize, usize),
    (b, rsb, csb): (&[f32], usize, usize),
    beta: f32,
    c: &mut [f32],
) {
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(m > 0 && k > 0 && n > 0);
    assert!(last(m, k, rsa, csa) < a.len() && last(k, n, rsb, csb) < b.len());
    assert!(c.len() >= m * n);
    // SAFETY: the asserts above keep every index sgemm forms, (i·rs + j·cs)
    // for i, j within the stated dimensions, inside its slice; c is
    // borrowed mutably and does not alias a or b.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// One row's running state over the chunks: max, Σ e^{z − max}, the
/// target's logit and Σ z.
#[derive(Clone, Copy)]
struct RowState {
    max: f32,
    sum: f64,
    target: f64,
    total: f64,
}

impl RowState {
    const EMPTY: RowState = RowState {
        max: f32::NEG_INFINITY,
        sum: 0.0,
        target: 0.0,
        total: 0.0,
    };

    /// Takes in logits `z` of classes v0.. of a row labelled y.
    fn add(&mut self, z: &[f32], v0: usize, y: usize) {
        let top = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let top = if z.iter().any(|v| v.is_nan()) {
            f32::NAN
        } else {
            top
        };
        if top > self.max || top.is_nan() {
            if self.max > f32::NEG_INFINITY {
                self.sum *= ((self.max - top) as f64).exp();
            }
            self.max = top;
        }
        let m = self.max;
        self.sum += z.iter().map(|&v| ((v - m) as f64).exp()).sum::<f64>();
        self.total += z.iter().map(|&v| v as f64).sum::<f64>();
        if (v0..v0 + z.len()).contains(&y) {
            self.target = z[y - v0] as f64;
        }
    }

    fn lse(&self) -> f64 {
        self.max as f64 + self.sum.ln()
    }
}

/// The chunk's logits for rows `rows` (as f32 blocks h of d columns):
/// z[n][j] = h[n]·W[v0 + j] + b[v0 + j].
fn logits<F: Float>(
    input: &LinearInput<F>,
    h: &[f32],
    (v0, vc): (usize, usize),
    w: &[f32],
    z: &mut [f32],
) {
    let d = input.dim;
    let rows = h.len() / d;
    gemm((rows, d, vc), (h, d, 1), (w, 1, d), 0.0, z);
    if let Some(b) = input.bias {
        for row in z.chunks_mut(vc) {
            for (j, v) in row.iter_mut().enumerate() {
                *v += b[v0 + j].to_f32();
            }
        }
    }
}

/// Chunks of the vocabulary: (first class, classes).
fn chunks(classes: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..classes)
        .step_by(CHUNK)
        .map(move |v0| (v0, CHUNK.min(classes - v0)))
}

/// Per row: its lse and its loss (0 when ignored), in f64.
fn row_states<F: Float>(input: &LinearInput<F>, s: &LinearShape) -> Vec<(f64, f64)> {
    let (d, classes) = (s.dim, s.classes);
    let ignored = input.ignored();
    let (eps, lambda) = (input.label_smoothing as f64, input.z_loss as f64);
    let blocks: Vec<Vec<(f64, f64)>> = (0..s.rows.div_ceil(ROWS))
        .into_par_iter()
        .map(|b| {
            let rows = b * ROWS..((b + 1) * ROWS).min(s.rows);
            let h = F::widen(&input.hidden[rows.start * d..rows.end * d]);
            let mut state = vec![RowState::EMPTY; rows.len()];
            let mut z = vec![0.0f32; rows.len() * CHUNK];
            for (v0, vc) in chunks(classes) {
                let w = F::widen(&input.classifier[v0 * d..(v0 + vc) * d]);
                logits(input, &h, (v0, vc), &w, &mut z);
                for (k, st) in state.iter_mut().enumerate() {
                    let y = input.labels[rows.start + k] as usize;
                    st.add(&z[k * vc..(k + 1) * vc], v0, y);
                }
            }
            rows.zip(state)
                .map(|(n, st)| {
                    let lse = st.lse();
                    if Some(input.labels[n]) == ignored {
                        return (lse, 0.0);
                    }
                    let loss = lse - (1.0 - eps) * st.target - eps / classes as f64 * st.total
                        + lambda * lse * lse;
                    (lse, loss)
                })
                .collect()
        })
        .collect();
    blocks.concat()
}

/// The value of a checked call.
pub(crate) fn value<F: Float, O: Float>(input: &LinearInput<F>, s: &LinearShape) -> LossValue<O> {
    let losses: Vec<f64> = row_states(input, s).iter().map(|r| r.1).collect();
    s.finish(&losses)
}

/// The logits' gradient for one chunk of rows `rows`, in place over their
/// logits z: c·(p·(1 + 2λ·lse) − (1−ε)·[v = y] − ε/V), c the row's scale
/// (0 when ignored).
fn logit_grads<F: Float>(
    input: &LinearInput<F>,
    s: &LinearShape,
    (rows, states): (std::ops::Range<usize>, &[(f64, f64)]),
    (v0, vc): (usize, usize),
    z: &mut [f32],
) {
    let ignored = input.ignored();
    let (eps, lambda) = (input.label_smoothing, input.z_loss);
    let smooth = eps / s.classes as f32;
    let scale = s.scale() as f32;
    for (k, n) in rows.enumerate() {
        let row = &mut z[k * vc..(k + 1) * vc];
        let y = input.labels[n];
        if Some(y) == ignored {
            row.fill(0.0);
            continue;
        }
        let lse = states[n].0;
        let zl = (1.0 + 2.0 * lambda as f64 * lse) as f32;
        let lse = lse as f32;
        for (j, g) in row.iter_mut().enumerate() {
            let hit = if v0 + j == y as usize { 1.0 - eps } else { 0.0 };
            *g = scale * ((*g - lse).exp() * zl - hit - smooth);
        }
    }
}

/// The value and the gradients of a checked call, as `O`.
pub(crate) fn value_and_grads<F: Float, O: Float>(
    input: &LinearInput<F>,
    s: &LinearShape,
) -> LinearGrads<O> {
    let (d, classes) = (s.dim, s.classes);
    let states = row_states(input, s);
    let losses: Vec<f64> = states.iter().map(|r| r.1).collect();
    // ∂H, by blocks of rows over the chunks in order.
    let mut dh = vec![0.0f32; s.rows * d];
    dh.par_chunks_mut(ROWS * d).enumerate().for_each(|(b, dh)| {
        let rows = b * ROWS..b * ROWS + dh.len() / d;
        let h = F::widen(&input.hidden[rows.start * d..rows.end * d]);
        let mut z = vec![0.0f32; rows.len() * CHUNK];
        for (v0, vc) in chunks(classes) {
            let w = F::widen(&input.classifier[v0 * d..(v0 + vc) * d]);
            let z = &mut z[..rows.len() * vc];
            logits(input, &h, (v0, vc), &w, z);
            logit_grads(input, s, (rows.clone(), &states), (v0, vc), z);
            gemm((rows.len(), vc, d), (z, vc, 1), (&w, d, 1), 1.0, dh);
        }
    });
    // ∂W and ∂b, by chunks of classes over the blocks of rows in order.
    let mut dw = vec![0.0f32; classes * d];
    let mut db = vec![0.0f32; classes];
    dw.par_chunks_mut(CHUNK * d)
        .zip(db.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(c, (dw, db))| {
            let (v0, vc) = (c * CHUNK, db.len());
            let w = F::widen(&input.classifier[v0 * d..(v0 + vc) * d]);
            let mut z = vec![0.0f32; ROWS * vc];
            for b in 0..s.rows.div_ceil(ROWS) {
                let rows = b * ROWS..((b + 1) * ROWS).min(s.rows);
                let h = F::widen(&input.hidden[rows.start * d..rows.end * d]);
                let z = &mut z[..rows.len() * vc];
                logits(input, &h, (v0, vc), &w, z);
                logit_grads(input, s, (rows.clone(), &states), (v0, vc), z);
                gemm((vc, rows.len(), d), (z, 1, vc), (&h, d, 1), 1.0, dw);
                for row in z.chunks(vc) {
                    for (acc, g) in db.iter_mut().zip(row) {
                        *acc += g;
                    }
                }
            }
        });
    LinearGrads {
        value: s.finish(&losses),
        hidden: O::narrow(dh),
        classifier: O::narrow(dw),
        bias: input.bias.map(|_| O::narrow(db)),
    }
}

/// Checks a call as the engine does (shapes, options, labels), without
/// computing it.
pub fn validate<F: Float>(input: &LinearInput<F>, reduction: Reduction) -> crate::Result<()> {
    input.check(reduction).map(|_| ())
}

/// What the reference gives: the value (one, or one per row for `none`)
/// and the gradients, all f64.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The loss: one value, or one per row for `none`.
    pub value: Vec<f64>,
    /// ∂/∂H, N×d.
    pub hidden: Vec<f64>,
    /// ∂/∂W, V×d.
    pub classifier: Vec<f64>,
    /// ∂/∂b, V (zeros' worth of sums when there is no bias).
    pub bias: Vec<f64>,
}

/// The f64 reference: the N×V logits materialised in f64, cross-entropy's
/// formulas, and the gradients G·W, Gᵀ·H, Σₙ G as plain f64 sums. For
/// tests and small shapes: it holds N×V f64 values.
pub fn linear_cross_entropy<F: Float>(
    input: &LinearInput<F>,
    reduction: Reduction,
) -> crate::Result<Reference> {
    let s = input.check(reduction)?;
    let (n, v, d) = (s.rows, s.classes, s.dim);
    let h: Vec<f64> = input.hidden.iter().map(|x| x.to_f32() as f64).collect();
    let w: Vec<f64> = input.classifier.iter().map(|x| x.to_f32() as f64).collect();
    let b = |j: usize| input.bias.map_or(0.0, |b| b[j].to_f32() as f64);
    let (eps, lambda) = (input.label_smoothing as f64, input.z_loss as f64);
    let ignored = input.ignored();
    let mut losses = vec![0.0; n];
    let mut g = vec![0.0; n * v];
    for r in 0..n {
        let z: Vec<f64> = (0..v)
            .map(|j| (0..d).map(|k| h[r * d + k] * w[j * d + k]).sum::<f64>() + b(j))
            .collect();
        let y = input.labels[r];
        if Some(y) == ignored {
            continue;
        }
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + z.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        let total: f64 = z.iter().sum();
        losses[r] = lse - (1.0 - eps) * z[y as usize] - eps / v as f64 * total + lambda * lse * lse;
        let c = match reduction {
            Reduction::Mean => 1.0 / s.kept as f64,
            _ => 1.0,
        };
        for j in 0..v {
            let hit = if j == y as usize { 1.0 - eps } else { 0.0 };
            g[r * v + j] =
                c * ((z[j] - lse).exp() * (1.0 + 2.0 * lambda * lse) - hit - eps / v as f64);
        }
    }
    let value = match reduction {
        Reduction::None => losses,
        Reduction::Mean if s.kept == 0 => vec![f64::NAN],
        _ => vec![losses.iter().sum::<f64>() * s.scale()],
    };
    let mut dh = vec![0.0; n * d];
    let mut dw = vec![0.0; v * d];
    let mut db = vec![0.0; v];
    for r in 0..n {
        for j in 0..v {
            let gj = g[r * v + j];
            if gj == 0.0 {
                continue;
            }
            db[j] += gj;
            for k in 0..d {
                dh[r * d + k] += gj * w[j * d + k];
                dw[j * d + k] += gj * h[r * d + k];
            }
        }
    }
    Ok(Reference {
        value,
        hidden: dh,
        classifier: dw,
        bias: db,
    })
}
