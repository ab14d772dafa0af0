//! The CPU backend's f32 loops for the row losses of `shaders/rows.wgsl`
//! (cross-entropy on classes and on probabilities, nll, multi-margin,
//! kl-div, entropy, zero-one), as [`super::lanes`] is for the pointwise
//! ones. nll, multi-margin and zero-one read their rows directly (a
//! gather, hinges against the class score, compares with it). A tile of whole rows goes
//! through steps that each run over one flat array: row maxima, x − max,
//! exp, row sums, ln of the sums. The transcendentals therefore vectorise
//! at full width whether a row holds 10 values or 262,144, and only cheap
//! adds and compares follow the row boundaries. Rows shorter than 32 values
//! go 16 at a time, gathered one row to a lane, and cross-entropy's loss
//! with options and its gradient are computed in those lanes too.
//!
//! Cross-entropy's options (class weights, label smoothing, the z-loss, an
//! ignored class) take the same tiles: the loss is Σⱼ cⱼ·(lse − xⱼ) +
//! λκ·lse² with the coefficients cⱼ of [`Options::coefficients`], as the
//! reference's `row_loss_with` writes it.
//!
//! Row sums add f32 lanes flushed into f64 every 1024 values, in an order
//! fixed by the code, so a result has the same bits on every run.

mod short;

use super::math32::{exp, ln, ln_1p, select};
use crate::ops::loss::RowOp;
use multiversion::multiversion;
use short::{short_grads, short_losses, short_rows, G, SHORT};

/// Values per tile: as many whole rows as fit, or one longer row.
const TILE: usize = 4096;
/// Accumulator lanes of a row sum.
const LANES: usize = 16;

/// The targets of a run of rows.
#[derive(Clone, Copy)]
pub(crate) enum Targets<'a> {
    /// No target (entropy).
    None,
    /// One class index per row.
    Classes(&'a [u32]),
    /// A distribution per row, m values each.
    Dist(&'a [f32]),
}

impl<'a> Targets<'a> {
    /// The targets of rows `rows`, for rows of `m` values.
    pub(crate) fn rows(self, rows: std::ops::Range<usize>, m: usize) -> Targets<'a> {
        match self {
            Targets::None => Targets::None,
            Targets::Classes(c) => Targets::Classes(&c[rows]),
            Targets::Dist(d) => Targets::Dist(&d[rows.start * m..rows.end * m]),
        }
    }
}

/// The row losses' options (SPEC §1b) on the f32 loops: cross-entropy's
/// and nll's class weights w, label smoothing ε, the z-loss λ and an
/// ignored class target, whose rows are not read (their loss and gradient
/// are 0, NaN or not); kl-div's log forms; multi-margin's margin and power.
#[derive(Clone, Copy, Default)]
pub(crate) struct Options<'a> {
    pub(crate) class_weights: Option<&'a [f32]>,
    pub(crate) smoothing: f32,
    pub(crate) z_loss: f32,
    pub(crate) ignore: Option<u32>,
    /// kl-div's prediction is log q.
    pub(crate) log_input: bool,
    /// kl-div's target is log t.
    pub(crate) log_target: bool,
    /// multi-margin's margin M.
    pub(crate) margin: f32,
    /// multi-margin's power P, 1 or 2.
    pub(crate) power: u32,
}

impl Options<'_> {
    /// Whether the row losses are the plain ones (an ignore index only
    /// removes rows).
    fn plain(&self) -> bool {
        self.class_weights.is_none() && self.smoothing == 0.0 && self.z_loss == 0.0
    }

    /// Whether row i of a run is the ignored class.
    #[inline(always)]
    fn ignored(&self, t: Targets, i: usize) -> bool {
        matches!((self.ignore, t), (Some(ig), Targets::Classes(c)) if c[i] == ig)
    }

    /// Row i's coefficients cⱼ = wⱼ·((1−ε)·tⱼ + ε/m) into `c` (tⱼ one-hot
    /// for a class target), and κ: w_y for a class, 1 for probabilities.
    #[inline(always)]
    fn coefficients(&self, t: Targets, i: usize, c: &mut [f32]) -> f32 {
        let m = c.len();
        let (keep, share) = (1.0 - self.smoothing, self.smoothing / m as f32);
        let w = |j: usize| self.class_weights.map_or(1.0, |w| w[j]);
        match t {
            Targets::Classes(cl) => {
                match self.class_weights {
                    Some(cw) => c.iter_mut().zip(cw).for_each(|(c, &w)| *c = w * share),
                    None => c.fill(share),
                }
                let y = cl[i] as usize;
                c[y] = w(y) * (keep + share);
                w(y)
            }
            Targets::Dist(d) => {
                let tr = &d[i * m..(i + 1) * m];
                match self.class_weights {
                    Some(cw) => {
                        for ((c, &t), &w) in c.iter_mut().zip(tr).zip(cw) {
                            *c = w * keep.mul_add(t, share);
                        }
                    }
                    None => c
                        .iter_mut()
                        .zip(tr)
                        .for_each(|(c, &t)| *c = keep.mul_add(t, share)),
                }
                1.0
            }
            Targets::None => 1.0,
        }
    }
}

/// Per-tile working arrays, reused from tile to tile.
#[derive(Default)]
struct Scratch {
    /// A group of short rows, transposed: `t[j][r]` is value j of row r.
    t: Vec<[f32; G]>,
    /// exp(x − max) but 0 at the maxima (rows of 32 values or more), or the
    /// pointwise terms of kl-div and entropy.
    e: Vec<f32>,
    /// Row maxima.
    max: Vec<f32>,
    /// Row sums of `e`; for the cross-entropies, ln(1 + rest) with rest
    /// the sum over the values below the maximum (and one for each tie),
    /// as the GPU: a confident row's small loss keeps its digits.
    sum: Vec<f32>,
    /// A row's coefficients cⱼ, and its terms cⱼ·(lse − xⱼ), with options.
    c: Vec<f32>,
    terms: Vec<f32>,
    /// Each value's row weight ([`value_weights`]).
    w: Vec<f32>,
}

/// `cw(i)` of row i repeated over its m values, for `rows` rows: the
/// gradient loops then run flat over the values, with no division by m
/// and no loop as short as a row.
#[inline(always)]
fn value_weights(w: &mut Vec<f32>, rows: usize, m: usize, cw: impl Fn(usize) -> f32) -> &[f32] {
    w.clear();
    for i in 0..rows {
        w.extend(std::iter::repeat_n(cw(i), m));
    }
    w
}

/// Σ v in 16 f32 lanes flushed into f64 every 1024 values.
#[inline(always)]
fn row_sum(v: &[f32]) -> f32 {
    let mut total = 0.0f64;
    for run in v.chunks(LANES * 64) {
        let mut acc = [0.0f32; LANES];
        let lanes = run.chunks_exact(LANES);
        let rest: f32 = lanes.remainder().iter().sum();
        for l in lanes {
            for j in 0..LANES {
                acc[j] += l[j];
            }
        }
        total += acc.iter().map(|&a| a as f64).sum::<f64>() + rest as f64;
    }
    total as f32
}

/// The row maximum (a NaN is skipped here and reaches the row's sum).
#[inline(always)]
fn row_max(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let lanes = v.chunks_exact(LANES);
    let rest = lanes
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &x| a.max(x));
    for l in lanes {
        for j in 0..LANES {
            acc[j] = acc[j].max(l[j]);
        }
    }
    acc.iter().fold(rest, |a, &x| a.max(x))
}

/// t·ln t − t·ln q, 0 where t = 0 (NaN if q is). With `LI` the prediction
/// is ln q, with `LT` the target ln t (t = e^target, ≤ 1: the target is
/// checked ≤ 0, and −inf is t = 0).
#[inline(always)]
fn kl_term<const LI: bool, const LT: bool>(q: f32, target: f32) -> f32 {
    let (t, ln_t) = kl_target::<LT>(target);
    let ln_q = if LI { q } else { ln(q) };
    select((t == 0.0) & !q.is_nan(), 0.0, t * (ln_t - ln_q))
}

/// kl-div's (t, ln t) from its target value.
#[inline(always)]
fn kl_target<const LT: bool>(target: f32) -> (f32, f32) {
    if LT {
        (exp(target), target)
    } else {
        (target, ln(target))
    }
}

/// d(kl term)/dq: −t/q, or −t for a log prediction; 0 where t = 0 (NaN
/// if q is).
#[inline(always)]
fn kl_grad<const LI: bool, const LT: bool>(q: f32, target: f32) -> f32 {
    let (t, _) = kl_target::<LT>(target);
    let g = if LI { -t } else { -t / q };
    select(t == 0.0, select(q.is_nan(), q, 0.0), g)
}

/// Calls `$run` with `$f` bound to the kl-div function `$name` for the log
/// forms of `$o`, a constant in each arm, so each loop is specialised.
macro_rules! with_kl {
    ($o:expr, $name:ident, |$f:ident| $run:expr) => {
        match ($o.log_input, $o.log_target) {
            (false, false) => {
                let $f = $name::<false, false>;
                $run
            }
            (true, false) => {
                let $f = $name::<true, false>;
                $run
            }
            (false, true) => {
                let $f = $name::<false, true>;
                $run
            }
            (true, true) => {
                let $f = $name::<true, true>;
                $run
            }
        }
    };
}

/// multi-margin's hinge h = max(0, M − x_y + x_j), NaN kept.
#[inline(always)]
fn hinge(margin_y: f32, xj: f32) -> f32 {
    let z = margin_y + xj;
    select(z > 0.0 || z.is_nan(), z, 0.0)
}

/// −p·ln p, 0 at p = 0.
#[inline(always)]
fn entropy_term(p: f32) -> f32 {
    select(p == 0.0, 0.0, -p * ln(p))
}

/// Fills `sc` for one tile of rows of `m` values (see [`Scratch`]); short
/// rows only their maxima and sums (their gradient is [`short_grads`]).
#[inline(always)]
fn tile(op: RowOp, x: &[f32], m: usize, t: Targets, o: &Options, sc: &mut Scratch) {
    let rows = x.len() / m;
    sc.e.resize(x.len(), 0.0);
    sc.max.resize(rows, 0.0);
    sc.sum.resize(rows, 0.0);
    let e = &mut sc.e[..x.len()];
    match (op, t) {
        (RowOp::Kl, Targets::Dist(t)) => with_kl!(o, kl_term, |term| {
            for ((e, &q), &t) in e.iter_mut().zip(x).zip(t) {
                *e = term(q, t);
            }
        }),
        (RowOp::Entropy, _) => {
            for (e, &p) in e.iter_mut().zip(x) {
                *e = entropy_term(p);
            }
        }
        _ if m < SHORT => return short_rows(x, m, sc),
        _ => {
            // Ties with the maximum counted here, their exp(0) = 1 left out
            // of the sum below.
            for (((mx, s), row), er) in sc
                .max
                .iter_mut()
                .zip(sc.sum.iter_mut())
                .zip(x.chunks_exact(m))
                .zip(e.chunks_exact_mut(m))
            {
                *mx = row_max(row);
                let mut ties = 0u32;
                for (e, &v) in er.iter_mut().zip(row) {
                    *e = v - *mx;
                    ties += (v == *mx) as u32;
                }
                *s = ties as f32 - 1.0;
            }
            for e in e.iter_mut() {
                *e = select(*e == 0.0, 0.0, exp(*e));
            }
            for (s, er) in sc.sum.iter_mut().zip(e.chunks_exact(m)) {
                *s = ln_1p(row_sum(er) + *s);
            }
            return;
        }
    }
    for (s, er) in sc.sum.iter_mut().zip(e.chunks_exact(m)) {
        *s = row_sum(er);
    }
}

/// The loss of each row of a block of rows (m values each) into `out`.
#[multiversion(targets = "simd")]
pub(crate) fn losses(op: RowOp, x: &[f32], m: usize, t: Targets, opts: &Options, out: &mut [f32]) {
    let per = (TILE / m).max(1);
    let mut sc = Scratch::default();
    for (k, out) in out.chunks_mut(per).enumerate() {
        let rows = k * per..k * per + out.len();
        let xs = &x[rows.start * m..rows.end * m];
        let ts = t.rows(rows.clone(), m);
        if let (RowOp::Nll | RowOp::MultiMargin | RowOp::Argmax, Targets::Classes(c)) = (op, ts) {
            for (i, (o, row)) in out.iter_mut().zip(xs.chunks_exact(m)).enumerate() {
                *o = match opts.ignored(ts, i) {
                    true => 0.0,
                    false => class_row_loss(op, row, c[i] as usize, opts, &mut sc.terms),
                };
            }
            continue;
        }
        let ce = matches!(op, RowOp::CeClass | RowOp::CeProb);
        let plain_classes = opts.plain() && opts.ignore.is_none() && op == RowOp::CeClass;
        if ce && m < SHORT && !plain_classes {
            short_losses(xs, m, ts, opts, &mut sc, out);
            continue;
        }
        tile(op, xs, m, ts, opts, &mut sc);
        let n = out.len();
        if !ce {
            out.copy_from_slice(&sc.sum[..n]);
            continue;
        }
        if let (true, None, Targets::Classes(c)) = (opts.plain(), opts.ignore, ts) {
            // The common call in a loop of its own, no option read per row.
            let rows = out.iter_mut().zip(&sc.max).zip(&sc.sum).zip(c);
            for (i, (((o, &mx), &lns), &c)) in rows.enumerate() {
                *o = (mx - xs[i * m + c as usize]) + lns;
            }
            continue;
        }
        for (i, o) in out.iter_mut().enumerate() {
            let (row, mx, lns) = (&xs[i * m..(i + 1) * m], sc.max[i], sc.sum[i]);
            *o = match ts {
                _ if opts.ignored(ts, i) => 0.0,
                _ if !opts.plain() => {
                    sc.c.resize(m, 0.0);
                    sc.terms.resize(m, 0.0);
                    let kappa = opts.coefficients(ts, i, &mut sc.c);
                    for ((l, &c), &v) in sc.terms.iter_mut().zip(&sc.c).zip(row) {
                        *l = select(c == 0.0, 0.0, c * ((mx - v) + lns));
                    }
                    let lse = mx + lns;
                    (opts.z_loss * kappa * lse).mul_add(lse, row_sum(&sc.terms))
                }
                // (max − x_c) + ln(1 + rest): exact 0 + ln(1 + rest) when
                // x_c is the max.
                Targets::Classes(c) => (mx - row[c[i] as usize]) + lns,
                Targets::Dist(d) => {
                    let tr = &d[i * m..(i + 1) * m];
                    let mut l = 0.0f64;
                    for (&v, &tj) in row.iter().zip(tr) {
                        let term = tj * ((mx - v) + lns);
                        l += select(tj == 0.0, 0.0, term) as f64;
                    }
                    l as f32
                }
                Targets::None => f32::NAN,
            };
        }
    }
}

/// c·wᵢ·∂lᵢ/∂x for every value of a block of rows into `out`, with c the
/// reduction's coefficient and wᵢ the row weights (1 without).
/// Cross-entropy's is wᵢ·c·(softmax(x)ⱼ·(Σₖcₖ + 2λκ·lse) − cⱼ) with
/// options, softmax(x) − onehot or − t without.
#[allow(clippy::too_many_arguments)]
#[multiversion(targets = "simd")]
pub(crate) fn grads(
    op: RowOp,
    c: f32,
    x: &[f32],
    m: usize,
    t: Targets,
    opts: &Options,
    w: Option<&[f32]>,
    out: &mut [f32],
) {
    let rows = out.len() / m;
    let per = (TILE / m).max(1);
    let mut sc = Scratch::default();
    for r0 in (0..rows).step_by(per) {
        let span = r0..(r0 + per).min(rows);
        let (xs, os) = (
            &x[span.start * m..span.end * m],
            &mut out[span.start * m..span.end * m],
        );
        let ts = t.rows(span.clone(), m);
        let cw = |i: usize| w.map_or(1.0, |w| w[span.start + i]) * c;
        match (op, ts) {
            (RowOp::Kl, Targets::Dist(d)) => with_kl!(opts, kl_grad, |grad| {
                let wv = value_weights(&mut sc.w, span.len(), m, cw);
                for ((o, (&q, &tj)), &wc) in os.iter_mut().zip(xs.iter().zip(d)).zip(wv) {
                    *o = weighted(wc, grad(q, tj));
                }
            }),
            (RowOp::Nll | RowOp::MultiMargin | RowOp::Argmax, Targets::Classes(cl)) => {
                let rows = os.chunks_exact_mut(m).zip(xs.chunks_exact(m));
                for (i, (orow, row)) in rows.enumerate() {
                    match opts.ignored(ts, i) {
                        true => orow.fill(0.0),
                        false => class_row_grad(op, row, cl[i] as usize, opts, cw(i), orow),
                    }
                }
            }
            (RowOp::Entropy, _) => {
                let wv = value_weights(&mut sc.w, span.len(), m, cw);
                for ((o, &p), &wc) in os.iter_mut().zip(xs).zip(wv) {
                    *o = weighted(wc, -(ln(p) + 1.0));
                }
            }
            _ if m < SHORT => short_grads(xs, m, ts, opts, cw, &mut sc, os),
            _ => {
                tile(op, xs, m, ts, opts, &mut sc);
                let rows = xs.chunks_exact(m).zip(sc.e.chunks_exact(m));
                for (i, (orow, (xr, er))) in os.chunks_exact_mut(m).zip(rows).enumerate() {
                    if opts.ignored(ts, i) {
                        orow.fill(0.0);
                        continue;
                    }
                    // softmax = e^(x − max)/Σ = e^(x − max − ln Σ), the
                    // maxima's e^0 restored.
                    let (mx, lns, wc) = (sc.max[i], sc.sum[i], cw(i));
                    let inv = exp(-lns);
                    let soft = |x: f32, e: f32| select(x == mx, 1.0, e) * inv;
                    if !opts.plain() {
                        sc.c.resize(m, 0.0);
                        let kappa = opts.coefficients(ts, i, &mut sc.c);
                        let lse = mx + lns;
                        let scale = (2.0 * opts.z_loss * kappa).mul_add(lse, row_sum(&sc.c));
                        let rest = orow.iter_mut().zip(xr).zip(er).zip(&sc.c);
                        for (((o, &x), &e), &cj) in rest {
                            *o = weighted(wc, soft(x, e).mul_add(scale, -cj));
                        }
                        continue;
                    }
                    match ts {
                        Targets::Classes(cl) => {
                            for ((o, &x), &e) in orow.iter_mut().zip(xr).zip(er) {
                                *o = weighted(wc, soft(x, e));
                            }
                            let k = cl[i] as usize;
                            orow[k] = weighted(wc, soft(xr[k], er[k]) - 1.0);
                        }
                        Targets::Dist(d) => {
                            let tr = &d[i * m..(i + 1) * m];
                            for (((o, &x), &e), &tj) in orow.iter_mut().zip(xr).zip(er).zip(tr) {
                                *o = weighted(wc, soft(x, e) - tj);
                            }
                        }
                        Targets::None => {}
                    }
                }
            }
        }
    }
}

/// nll's −w_y·x_y, multi-margin's w_y·Σ_{j≠y} h_jᴾ / m or zero-one's
/// [y is not the first maximum] of one row with class y (`terms` a
/// scratch buffer).
#[inline(always)]
fn class_row_loss(op: RowOp, row: &[f32], y: usize, o: &Options, terms: &mut Vec<f32>) -> f32 {
    let w = o.class_weights.map_or(1.0, |w| w[y]);
    match op {
        RowOp::Nll => return -w * row[y],
        RowOp::Argmax => return zero_one(row, y),
        _ => {}
    }
    let my = o.margin - row[y];
    terms.resize(row.len(), 0.0);
    let terms = &mut terms[..row.len()];
    for (t, &x) in terms.iter_mut().zip(row) {
        let h = hinge(my, x);
        *t = if o.power == 1 { h } else { h * h };
    }
    terms[y] = 0.0;
    w * row_sum(terms) / row.len() as f32
}

/// 1 where y is not the row's first maximum (a value before y ≥ x_y, or
/// one after it > x_y), 0 where it is, NaN where the row holds a NaN: the
/// reference's argmax compared with y.
#[inline(always)]
fn zero_one(row: &[f32], y: usize) -> f32 {
    let v = row[y];
    let (mut wrong, mut nan) = (false, false);
    for (j, &x) in row.iter().enumerate() {
        wrong |= (j < y) & (x >= v) | (j > y) & (x > v);
        nan |= x.is_nan();
    }
    select(nan, f32::NAN, wrong as u8 as f32)
}

/// wc·∂l/∂x of one row with class y into `out` (wc the row's weight times
/// the reduction's coefficient): nll's −w_y at y; multi-margin's
/// (w_y/m)·dh_jᴾ at j ≠ y (1 above the kink or 2h) and their negated sum
/// at y; zero-one's 0 (NaN at a NaN).
#[inline(always)]
fn class_row_grad(op: RowOp, row: &[f32], y: usize, o: &Options, wc: f32, out: &mut [f32]) {
    if matches!(op, RowOp::Argmax) {
        for (g, &x) in out.iter_mut().zip(row) {
            *g = weighted(wc, select(x.is_nan(), x, 0.0));
        }
        return;
    }
    let w = o.class_weights.map_or(1.0, |w| w[y]);
    if matches!(op, RowOp::Nll) {
        out.fill(weighted(wc, 0.0));
        out[y] = weighted(wc, -w);
        return;
    }
    let (scale, my) = (w / row.len() as f32, o.margin - row[y]);
    for (g, &x) in out.iter_mut().zip(row) {
        let h = hinge(my, x);
        let d = if o.power == 1 {
            select(h > 0.0, 1.0, h + h) // h is 0 or NaN here
        } else {
            h + h
        };
        *g = scale * d;
    }
    out[y] = 0.0;
    out[y] = -row_sum(out);
    for g in out.iter_mut() {
        *g = weighted(wc, *g);
    }
}

/// w·g where a zero weight removes its sample; NaN still propagates.
#[inline(always)]
fn weighted(w: f32, g: f32) -> f32 {
    select((w == 0.0) & !g.is_nan(), 0.0, w * g)
}
