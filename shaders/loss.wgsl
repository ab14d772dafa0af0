// Pointwise losses: one term l(p, t) per element and its derivative. OP is the
// pointwise id of the loss (Loss::shape); the entry points are the first pass
// of a reduction (per-workgroup partials of Σ w·l and Σ w), the per-sample
// values (reduction none) and the gradient. Value checks ride along in the same
// pass: the first offending index of pred, target and weights goes to errors[].
// reduce_segments is the first pass of many losses packed into one buffer
// (Engine::loss_batch): a workgroup finds its loss in the segment table and
// sums exactly what reduce_terms would for that loss alone.

override OP: u32;                 // a TERM_* id
override HAS_TARGET: bool = true;
override HAS_WEIGHTS: bool = false;
override PRED_DOMAIN: u32;        // a DOMAIN_* id
override TARGET_DOMAIN: u32;
// bce-logits' pos_weight per column of n×m multi-label input: m columns,
// value k of the loss taking per_class[k mod m]; 0: one pw in params.param.
override POS_WEIGHT_COLS: u32 = 0u;
override PRED_DTYPE: u32 = 0u;    // a DTYPE_* id of each input
override TARGET_DTYPE: u32 = 0u;
override WEIGHTS_DTYPE: u32 = 0u;
override OUT_DTYPE: u32 = 0u;     // a DTYPE_* id of terms' and grad's output
// grad over pred in place: pred is read from `out` (the words an invocation
// writes, nothing more), and nothing is written once the reduction before
// it flagged an input.
override IN_PLACE: bool = false;

struct LossParams {
    n: u32,            // elements in this chunk
    base: u32,         // global index of the chunk's first element
    partial_base: u32, // first partial slot of this chunk
    coef_mode: u32,    // a COEF_* id: how grad_factor scales the gradient
    param: f32,        // delta (huber), gamma (quantile), beta (smooth-l1), pw (bce-logits)
    scale: f32,
    col0: u32,         // the column of the chunk's first value (POS_WEIGHT_COLS)
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: LossParams;
// Raw words, widened by unpack4 (common.wgsl).
@group(0) @binding(1) var<storage, read> pred: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> tgt: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> weights: array<vec4<u32>>;
// Partials as f32 words; terms and grad as words of OUT_DTYPE (put4).
@group(0) @binding(4) var<storage, read_write> out: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read_write> errors: array<atomic<u32>>;
@group(0) @binding(6) var<storage, read> stats: array<vec4<f32>>;
// Per packed loss, 8 words: first vec4, n, first workgroup, workgroups,
// param (f32 bits), then padding.
@group(0) @binding(7) var<storage, read> segments: array<u32>;
@group(0) @binding(8) var<storage, read> per_class: array<f32>;

// The params of the four values from `first` (of this chunk): `param`, or
// the pos_weight of each value's column.
fn params4(first: u32, param: f32) -> vec4<f32> {
    if (POS_WEIGHT_COLS == 0u) {
        return vec4<f32>(param);
    }
    let m = max(POS_WEIGHT_COLS, 1u); // never 0: naga folds a modulo by a constant 0
    let c = (params.col0 + first % m) % m;
    return vec4<f32>(
        per_class[c],
        per_class[(c + 1u) % m],
        per_class[(c + 2u) % m],
        per_class[(c + 3u) % m],
    );
}

fn term_grads4(p: vec4<f32>, t: vec4<f32>, param: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        loss_term_grad(OP, p.x, t.x, param.x),
        loss_term_grad(OP, p.y, t.y, param.y),
        loss_term_grad(OP, p.z, t.z, param.z),
        loss_term_grad(OP, p.w, t.w, param.w),
    );
}

struct Quad {
    p: vec4<f32>,
    t: vec4<f32>,
    w: vec4<f32>,
    valid: vec4<bool>,
}

// Loads vec4 i4 of the bound inputs, checks its values and masks the padding:
// `first` is the index of its first element among the loss's n values, `base`
// turns that into the index an error names, `slot` picks the error slots.
fn load_from(i4: u32, first: u32, n: u32, base: u32, slot: u32) -> Quad {
    let p = unpack4(pred_words(i4), i4, PRED_DTYPE);
    var t = vec4<f32>(0.0);
    if (HAS_TARGET) {
        t = unpack4(tgt[raw_index(i4, TARGET_DTYPE)], i4, TARGET_DTYPE);
    }
    var w = vec4<f32>(1.0);
    if (HAS_WEIGHTS) {
        w = unpack4(weights[raw_index(i4, WEIGHTS_DTYPE)], i4, WEIGHTS_DTYPE);
    }
    let valid = lanes_below(first, n);
    if (PRED_DOMAIN == DOMAIN_ANY && TARGET_DOMAIN == DOMAIN_ANY && !HAS_WEIGHTS) {
        return Quad(p, t, w, valid); // nothing to check
    }
    for (var k = 0u; k < 4u; k = k + 1u) {
        if (valid[k]) {
            let gi = base + first + k;
            if (!in_domain(p[k], PRED_DOMAIN)) {
                atomicMin(&errors[4u * slot], gi);
            }
            if (!in_domain(t[k], TARGET_DOMAIN)) {
                atomicMin(&errors[4u * slot + 1u], gi);
            }
            if (HAS_WEIGHTS && w[k] < 0.0) {
                atomicMin(&errors[4u * slot + 2u], gi);
            }
        }
    }
    return Quad(p, t, w, valid);
}

// The words of pred's vec4 i4 as unpack4 takes them; in place, of `out`,
// reading only this invocation's two words of halves.
fn pred_words(i4: u32) -> vec4<u32> {
    if (!IN_PLACE) {
        return pred[raw_index(i4, PRED_DTYPE)];
    }
    if (PRED_DTYPE == DTYPE_F32) {
        return out[i4];
    }
    let k = 2u * (i4 & 1u);
    let a = out[i4 >> 1u][k];
    let b = out[i4 >> 1u][k + 1u];
    return vec4<u32>(a, b, a, b);
}

// Vec4 i4 of this dispatch's chunk.
fn load(i4: u32) -> Quad {
    return load_from(i4, 4u * i4, params.n, params.base, 0u);
}

// This invocation's share of (Σ w·l, Σ w) over n values starting at vec4
// off4, as workgroup `group` of `groups` in a grid-stride loop. A chunk is
// at most 2^22 values over up to 1024 workgroups of 256, so an invocation
// adds at most 4 vec4: a plain f32 sum, with the compensation in the fold.
fn sum_terms(off4: u32, n: u32, base: u32, slot: u32, param: f32, group: u32, groups: u32, lid: u32) -> vec2<f32> {
    let n4 = (n + 3u) / 4u;
    var acc = vec2<f32>(0.0);
    for (var i4 = group * WG + lid; i4 < n4; i4 = i4 + groups * WG) {
        let q = load_from(off4 + i4, 4u * i4, n, base, slot);
        let l = loss_terms4(OP, q.p, q.t, params4(4u * i4, param));
        let z = vec4<f32>(0.0);
        let w = select(z, q.w, q.valid);
        acc = acc + vec2<f32>(weighted_sum4(w, select(z, l, q.valid)), dot(w, vec4<f32>(1.0)));
    }
    return acc;
}

const LOG2E: f32 = 1.4426950;
const LN2_HI: f32 = 0.693145751953125; // 15 bits: k·LN2_HI is exact for |k| < 2^9 (here |k| <= 289)
const LN2_LO: f32 = 1.42860677e-6;

// scale·exp(x), x = −t·p, as mantissa × 2^E with E kept in integers:
// x = k·ln2 + r (|r| ≤ ln2/2), so exp only sees r and the product never
// overflows on the way. The result is ±inf exactly when E leaves the f32
// range; adding log|scale| to x instead would round a product within a few
// ULP of f32::MAX up to inf (exponential loss, OP 3). |x| is capped at 200,
// past which any nonzero f32 scale gives 0 or inf anyway.
fn scaled_exp(p: f32, t: f32, scale: f32) -> f32 {
    let x = clamp(-(t * p), -200.0, 200.0);
    let k = round(x * LOG2E);
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let s = frexp(abs(scale));
    let v = frexp(exp(r) * s.fract);
    let e = i32(k) + s.exp + v.exp;
    let mag = select(ldexp(v.fract, max(e, -160)), inf_f32(), e > 128);
    return select(select(mag, -mag, scale < 0.0), 0.0, scale == 0.0);
}

// scaled_exp on four lanes; a NaN in p or t stays NaN.
fn scaled_exp4(p: vec4<f32>, t: vec4<f32>, scale: vec4<f32>) -> vec4<f32> {
    let v = vec4<f32>(
        scaled_exp(p.x, t.x, scale.x),
        scaled_exp(p.y, t.y, scale.y),
        scaled_exp(p.z, t.z, scale.z),
        scaled_exp(p.w, t.w, scale.w),
    );
    return select(v, p + t, is_nan4(p + t));
}

// The exponential loss's first pass: each thread keeps Σ w·e^(−t·p) as
// s·e^m with a running maximum m, so no term overflows f32.
fn reduce_scaled(wid: vec3<u32>, nwg: vec3<u32>, lane: Lane) {
    let n4 = (params.n + 3u) / 4u;
    var m = -3.4028235e38;
    var s = 0.0;
    var wsum = Kahan(vec2<f32>(0.0), vec2<f32>(0.0));
    for (var i4 = wid.x * WG + lane.lid; i4 < n4; i4 = i4 + nwg.x * WG) {
        let q = load(i4);
        for (var k = 0u; k < 4u; k = k + 1u) {
            if (q.valid[k] && (q.w[k] != 0.0 || is_nan(q.p[k] + q.t[k]))) {
                let a = -(q.t[k] * q.p[k]) + log_safe(q.w[k]);
                if (is_nan(a)) {
                    s = nan_f32();
                } else if (a > m) {
                    s = s * exp(max(m - a, -200.0)) + 1.0;
                    m = a;
                } else {
                    s = s + exp(max(a - m, -200.0));
                }
            }
            if (q.valid[k]) {
                wsum = kahan_add(wsum, vec2<f32>(q.w[k], 0.0));
            }
        }
    }
    let big_m = wg_max(m, lane);
    let total = wg_sum(vec2<f32>(rescale(s, m, big_m), wsum.sum.x), lane);
    if (lane.lid == 0u) {
        out[params.partial_base + wid.x] = bitcast<vec4<u32>>(vec4<f32>(total, big_m, 0.0));
    }
}

@compute @workgroup_size(256)
fn reduce_terms(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    if (OP == TERM_EXPONENTIAL) {
        reduce_scaled(wid, nwg, lane);
        return;
    }
    let mine = sum_terms(0u, params.n, params.base, 0u, params.param, wid.x, nwg.x, lane.lid);
    let total = wg_sum(mine, lane);
    if (lane.lid == 0u) {
        out[params.partial_base + wid.x] = bitcast<vec4<u32>>(vec4<f32>(total, 0.0, 0.0));
    }
}

// The first pass of a packed batch: params.n workgroups over params.base
// segments; each writes the partial its loss alone would have written, at
// its global workgroup index.
@compute @workgroup_size(256)
fn reduce_segments(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let g = wid.y * nwg.x + wid.x;
    if (g >= params.n) {
        return;
    }
    var lo = 0u;
    var hi = params.base - 1u;
    while (lo < hi) {
        let mid = (lo + hi + 1u) / 2u;
        if (segments[8u * mid + 2u] <= g) {
            lo = mid;
        } else {
            hi = mid - 1u;
        }
    }
    let s = 8u * lo;
    let first = segments[s + 2u];
    let mine = sum_terms(segments[s], segments[s + 1u], 0u, lo, bitcast<f32>(segments[s + 4u]), g - first, segments[s + 3u], lane.lid);
    let total = wg_sum(mine, lane);
    if (lane.lid == 0u) {
        out[g] = bitcast<vec4<u32>>(vec4<f32>(total, 0.0, 0.0));
    }
}

// Values 4·i4 .. 4·i4 + 3 of the output: a vec4 of f32 words, or two words
// of halves (half of a vec4, written alone: no other invocation owns them).
fn put4(i4: u32, v: vec4<f32>) {
    let words = pack4(v, OUT_DTYPE);
    if (OUT_DTYPE == DTYPE_F32) {
        out[i4] = words;
    } else {
        let k = 2u * (i4 & 1u);
        out[i4 >> 1u][k] = words.x;
        out[i4 >> 1u][k + 1u] = words.y;
    }
}

@compute @workgroup_size(256)
fn terms(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i4 = flat_id(wid, nwg, lid);
    if (i4 >= (params.n + 3u) / 4u) {
        return;
    }
    let q = load(i4);
    if (OP == TERM_EXPONENTIAL) {
        put4(i4, scaled_exp4(q.p, q.t, q.w));
    } else {
        put4(i4, weighted4(q.w, loss_terms4(OP, q.p, q.t, params4(4u * i4, params.param))));
    }
}

@compute @workgroup_size(256)
fn grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i4 = flat_id(wid, nwg, lid);
    if (i4 >= (params.n + 3u) / 4u) {
        return;
    }
    if (IN_PLACE && (atomicLoad(&errors[0]) != NO_INDEX || atomicLoad(&errors[1]) != NO_INDEX
        || atomicLoad(&errors[2]) != NO_INDEX)) {
        return; // pred stays as it was, to be named in the error
    }
    let q = load(i4);
    let c = grad_factor(params.coef_mode, params.scale, stats[0]);
    if (OP == TERM_EXPONENTIAL) {
        put4(i4, scaled_exp4(q.p, q.t, -q.t * q.w * c));
    } else {
        put4(i4, weighted4(q.w * c, term_grads4(q.p, q.t, params4(4u * i4, params.param))));
    }
}
