//! The short rows of [`super`]'s cross-entropy (fewer than [`SHORT`]
//! values): `G` rows at a time, transposed so that each vector lane holds
//! one row, and the maxima, sums, losses with options and gradients are
//! vector operations across rows, not chains as short as a row.

use super::{weighted, Options, Scratch, Targets};
use crate::cpu::math32::{exp, ln_1p, select};

/// Rows shorter than this go through [`short_rows`], `G` at a time.
pub(super) const SHORT: usize = 32;
/// Rows per group of [`short_rows`]: one vector lane per row.
pub(super) const G: usize = 16;

/// The bits of −0, which [`group`] writes for a row's maxima.
const MAX_MARK: u32 = 0x8000_0000;

/// [`super::tile`]'s cross-entropy steps for short rows: `G` rows at a time,
/// transposed so that each vector lane holds one row and the maxima and
/// sums are vector operations too, not chains of m dependent ones.
#[inline(always)]
pub(super) fn short_rows(x: &[f32], m: usize, sc: &mut Scratch) {
    sc.t.resize(m, [0.0; G]);
    let t = &mut sc.t[..m];
    for (g, xg) in x.chunks(G * m).enumerate() {
        let (mx, lns) = group(xg, m, t);
        let (r0, n) = (g * G, xg.len() / m);
        sc.max[r0..r0 + n].copy_from_slice(&mx[..n]);
        sc.sum[r0..r0 + n].copy_from_slice(&lns[..n]);
    }
}

/// One group of up to `G` short rows into `t`, transposed by a gather per
/// column (lanes past the last row read 0 and are not read back), then
/// exp(x − max) there, −0 at the maxima. Returns the rows' maxima and
/// ln(1 + rest), rest the sum over the values below the maximum plus
/// (ties − 1).
#[inline(always)]
fn group(xg: &[f32], m: usize, t: &mut [[f32; G]]) -> ([f32; G], [f32; G]) {
    let mx = gather_max(xg, m, t);
    (mx, exp_rest(t, &mx))
}

/// [`group`]'s first step: the values into `t`, and the rows' maxima.
#[inline(always)]
fn gather_max(xg: &[f32], m: usize, t: &mut [[f32; G]]) -> [f32; G] {
    for (j, col) in t.iter_mut().enumerate() {
        for (r, v) in col.iter_mut().enumerate() {
            *v = xg.get(r * m + j).copied().unwrap_or(0.0);
        }
    }
    let mut mx = [f32::NEG_INFINITY; G];
    for col in t.iter() {
        for r in 0..G {
            mx[r] = select(col[r] > mx[r], col[r], mx[r]);
        }
    }
    mx
}

/// [`group`]'s second step: exp(x − max) in place (−0 at the maxima), and
/// ln(1 + rest).
#[inline(always)]
fn exp_rest(t: &mut [[f32; G]], mx: &[f32; G]) -> [f32; G] {
    let mut rest = [-1.0f32; G];
    for col in t.iter_mut() {
        for r in 0..G {
            let d = col[r] - mx[r];
            rest[r] += select(d == 0.0, 1.0, 0.0);
            // −0 marks a maximum for the gradient; the sums read it as 0.
            col[r] = select(d == 0.0, -0.0, exp(d));
        }
    }
    for col in t.iter() {
        for r in 0..G {
            rest[r] += col[r];
        }
    }
    // Loops, not `map`: a closure passed on is compiled outside the
    // caller's target features, without FMA.
    for v in rest.iter_mut() {
        *v = ln_1p(*v);
    }
    rest
}

/// Cross-entropy's coefficients cⱼ of a [`group`] of short rows, lane by
/// lane ([`Options::coefficients`] for each row at once): each row's class
/// y (none past the last row), κ, and whether it is ignored.
struct Coefficients<'a> {
    y: [u32; G],
    kappa: [f32; G],
    ignored: [bool; G],
    /// The group's target distributions; empty for classes.
    dist: &'a [f32],
    weights: Option<&'a [f32]>,
    keep: f32,
    share: f32,
    m: usize,
}

impl<'a> Coefficients<'a> {
    /// Rows r0..r0 + n of a tile's targets.
    #[inline(always)]
    fn of(targets: Targets<'a>, o: &Options<'a>, r0: usize, n: usize, m: usize) -> Self {
        let mut k = Coefficients {
            y: [u32::MAX; G],
            kappa: [1.0; G],
            ignored: [false; G],
            dist: &[],
            weights: o.class_weights,
            keep: 1.0 - o.smoothing,
            share: o.smoothing / m as f32,
            m,
        };
        match targets {
            Targets::Classes(c) => {
                k.y[..n].copy_from_slice(&c[r0..r0 + n]);
                for r in 0..n {
                    // An ignored row's class may name no column.
                    let w = o.class_weights.map(|w| w.get(k.y[r] as usize));
                    k.kappa[r] = w.map_or(1.0, |w| w.copied().unwrap_or(0.0));
                    k.ignored[r] = o.ignore == Some(k.y[r]);
                }
            }
            Targets::Dist(d) => k.dist = &d[r0 * m..(r0 + n) * m],
            Targets::None => {}
        }
        k
    }

    /// cⱼ of each row (lane) for column j: wⱼ·((1−ε)·tⱼ + ε/m), tⱼ one-hot
    /// for a class (whose weight is κ).
    #[inline(always)]
    fn column(&self, j: usize) -> [f32; G] {
        let wj = self.weights.map_or(1.0, |w| w[j]);
        let mut c = [0.0f32; G];
        if self.dist.is_empty() {
            let (others, at_y) = (wj * self.share, self.keep + self.share);
            for ((c, &y), &kappa) in c.iter_mut().zip(&self.y).zip(&self.kappa) {
                *c = select(y == j as u32, kappa * at_y, others);
            }
        } else {
            for (r, c) in c.iter_mut().enumerate() {
                let tj = self.dist.get(r * self.m + j).copied().unwrap_or(0.0);
                *c = wj * self.keep.mul_add(tj, self.share);
            }
        }
        c
    }
}

/// Cross-entropy's loss of short rows into `out`, a [`group`] at a time in
/// its lanes: Σⱼ cⱼ·(lse − xⱼ) + λκ·lse², 0 for an ignored row.
#[inline(always)]
pub(super) fn short_losses(
    x: &[f32],
    m: usize,
    targets: Targets,
    o: &Options,
    sc: &mut Scratch,
    out: &mut [f32],
) {
    sc.t.resize(m, [0.0; G]);
    let t = &mut sc.t[..m];
    let plain = o.plain();
    for (g, (xg, og)) in x.chunks(G * m).zip(out.chunks_mut(G)).enumerate() {
        let (r0, n) = (g * G, og.len());
        let k = Coefficients::of(targets, o, r0, n, m);
        // Σ cⱼ·(lse − xⱼ) as Σ cⱼ·(max − xⱼ) + ln(1 + rest)·Σ cⱼ: every
        // term ≥ 0, read before the exponentials replace the values.
        let (mut below, mut sum_c) = ([0.0f32; G], [0.0f32; G]);
        let mx = gather_max(xg, m, t);
        for (j, col) in t.iter().enumerate() {
            let c = k.column(j);
            for r in 0..G {
                below[r] += select(c[r] == 0.0, 0.0, c[r] * (mx[r] - col[r]));
                sum_c[r] += c[r];
            }
        }
        let lns = exp_rest(t, &mx);
        let mut acc = [0.0f32; G];
        for r in 0..G {
            // No coefficient: no term, even in a NaN row (as the reference).
            acc[r] = select(
                sum_c[r] == 0.0,
                below[r],
                sum_c[r].mul_add(lns[r], below[r]),
            );
        }
        for (r, o_) in og.iter_mut().enumerate() {
            let lse = mx[r] + lns[r];
            // The options' λκ·lse² even at λ = 0, as the reference's
            // `row_loss_with` (a NaN row stays NaN there).
            let l = (o.z_loss * k.kappa[r] * lse).mul_add(lse, acc[r]);
            *o_ = select(k.ignored[r], 0.0, select(plain, acc[r], l));
        }
    }
}

/// Cross-entropy's gradient of short rows into `out`: cwᵢ·(softmax(x) −
/// c) without options, cwᵢ·(softmax(x)·(Σₖcₖ + 2λκ·lse) − c) with them (0
/// for an ignored row), a [`group`] at a time, computed in its transposed
/// lanes and then copied back, so no step runs as short as a row.
#[inline(always)]
pub(super) fn short_grads(
    x: &[f32],
    m: usize,
    targets: Targets,
    o: &Options,
    cw: impl Fn(usize) -> f32,
    sc: &mut Scratch,
    out: &mut [f32],
) {
    sc.t.resize(m, [0.0; G]);
    let t = &mut sc.t[..m];
    let plain = o.plain();
    for (g, (xg, og)) in x.chunks(G * m).zip(out.chunks_mut(G * m)).enumerate() {
        let (mx, lns) = group(xg, m, t);
        let (r0, n) = (g * G, xg.len() / m);
        let k = Coefficients::of(targets, o, r0, n, m);
        let (mut wc, mut inv) = ([0.0f32; G], lns);
        for (r, w) in wc[..n].iter_mut().enumerate() {
            *w = cw(r0 + r);
        }
        // softmax = e^(x − max)/Σ = e^(x − max − ln Σ), the maxima's e^0
        // restored.
        for v in inv.iter_mut() {
            *v = exp(-*v);
        }
        let soft = |r: usize, e: f32| select(e.to_bits() == MAX_MARK, 1.0, e) * inv[r];
        if plain {
            for (j, col) in t.iter_mut().enumerate() {
                let c = k.column(j);
                for (r, e) in col.iter_mut().enumerate() {
                    let g = weighted(wc[r], soft(r, *e) - c[r]);
                    *e = select(k.ignored[r], 0.0, g);
                }
            }
        } else {
            let mut scale = [0.0f32; G];
            for j in 0..m {
                let c = k.column(j);
                for (s, c) in scale.iter_mut().zip(c) {
                    *s += c;
                }
            }
            for (r, s) in scale.iter_mut().enumerate() {
                *s = (2.0 * o.z_loss * k.kappa[r]).mul_add(mx[r] + lns[r], *s);
            }
            for (j, col) in t.iter_mut().enumerate() {
                let c = k.column(j);
                for (r, e) in col.iter_mut().enumerate() {
                    let g = weighted(wc[r], soft(r, *e).mul_add(scale[r], -c[r]));
                    *e = select(k.ignored[r], 0.0, g);
                }
            }
        }
        for (r, row) in og.chunks_exact_mut(m).enumerate() {
            for (o, col) in row.iter_mut().zip(t.iter()) {
                *o = col[r];
            }
        }
    }
}
