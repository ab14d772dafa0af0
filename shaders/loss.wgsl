// Pointwise losses: one term l(p, t) per element and its derivative. OP is the
// pointwise id of the loss (Loss::shape); the entry points are the first pass
// of a reduction (per-workgroup partials of Σ w·l and Σ w), the per-sample
// values (reduction none) and the gradient. Value checks ride along in the same
// pass: the first offending index of pred, target and weights goes to errors[].

override OP: u32 = 0u;
override HAS_TARGET: bool = true;
override HAS_WEIGHTS: bool = false;
override PRED_DOMAIN: u32 = 0u;   // 0 any, 1 exactly ±1, 2 [0, 1]
override TARGET_DOMAIN: u32 = 0u;

struct LossParams {
    n: u32,            // elements in this chunk
    base: u32,         // global index of the chunk's first element
    partial_base: u32, // first partial slot of this chunk
    coef_mode: u32,    // gradient factor: 0 scale, 1 1/Σw from stats, 2 rmse chain rule
    param: f32,        // delta (huber) or gamma (quantile)
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: LossParams;
@group(0) @binding(1) var<storage, read> pred: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> tgt: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> errors: array<atomic<u32>, 4>;
@group(0) @binding(6) var<storage, read> stats: array<vec4<f32>>;

fn in_domain(v: f32, domain: u32) -> bool {
    if (domain == 1u) {
        return v == 1.0 || v == -1.0 || is_nan(v);
    }
    if (domain == 2u) {
        return (v >= 0.0 && v <= 1.0) || is_nan(v);
    }
    return true;
}

fn term(p: f32, t: f32) -> f32 {
    return loss_term(OP, p, t, params.param);
}

fn term_grad(p: f32, t: f32) -> f32 {
    return loss_term_grad(OP, p, t, params.param);
}

struct Quad {
    p: vec4<f32>,
    t: vec4<f32>,
    w: vec4<f32>,
    valid: vec4<bool>,
}

// Loads vec4 i4 of the chunk, checks its values and masks the padding.
fn load(i4: u32) -> Quad {
    let p = pred[i4];
    var t = vec4<f32>(0.0);
    if (HAS_TARGET) {
        t = tgt[i4];
    }
    var w = vec4<f32>(1.0);
    if (HAS_WEIGHTS) {
        w = weights[i4];
    }
    let first = 4u * i4;
    let valid = vec4<bool>(first < params.n, first + 1u < params.n, first + 2u < params.n, first + 3u < params.n);
    for (var k = 0u; k < 4u; k = k + 1u) {
        if (valid[k]) {
            let gi = params.base + first + k;
            if (!in_domain(p[k], PRED_DOMAIN)) {
                atomicMin(&errors[0], gi);
            }
            if (!in_domain(t[k], TARGET_DOMAIN)) {
                atomicMin(&errors[1], gi);
            }
            if (HAS_WEIGHTS && w[k] < 0.0) {
                atomicMin(&errors[2], gi);
            }
        }
    }
    return Quad(p, t, w, valid);
}

// scale·exp(−t·p) with the scale folded into the exponent, so a product
// that fits f32 never overflows on the way (exponential loss, OP 3).
fn scaled_exp(p: f32, t: f32, scale: f32) -> f32 {
    let v = exp_sat(-(t * p) + log_safe(abs(scale)));
    return select(select(v, -v, scale < 0.0), 0.0, scale == 0.0);
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
        out[params.partial_base + wid.x] = vec4<f32>(total, big_m, 0.0);
    }
}

@compute @workgroup_size(256)
fn reduce_terms(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    if (OP == 3u) {
        reduce_scaled(wid, nwg, lane);
        return;
    }
    let n4 = (params.n + 3u) / 4u;
    var acc = Kahan(vec2<f32>(0.0), vec2<f32>(0.0));
    for (var i4 = wid.x * WG + lane.lid; i4 < n4; i4 = i4 + nwg.x * WG) {
        let q = load(i4);
        var s = vec2<f32>(0.0);
        for (var k = 0u; k < 4u; k = k + 1u) {
            if (q.valid[k]) {
                s = s + vec2<f32>(weighted(q.w[k], term(q.p[k], q.t[k])), q.w[k]);
            }
        }
        acc = kahan_add(acc, s);
    }
    let total = wg_sum(acc.sum, lane);
    if (lane.lid == 0u) {
        out[params.partial_base + wid.x] = vec4<f32>(total, 0.0, 0.0);
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
    var v = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k = k + 1u) {
        if (OP == 3u) {
            v[k] = keep_nan(q.p[k] + q.t[k], scaled_exp(q.p[k], q.t[k], q.w[k]));
        } else {
            v[k] = weighted(q.w[k], term(q.p[k], q.t[k]));
        }
    }
    out[i4] = v;
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
    let q = load(i4);
    let c = grad_factor(params.coef_mode, params.scale, stats[0]);
    var v = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k = k + 1u) {
        if (OP == 3u) {
            v[k] = keep_nan(q.p[k] + q.t[k], scaled_exp(q.p[k], q.t[k], -q.t[k] * q.w[k] * c));
        } else {
            v[k] = weighted(q.w[k] * c, term_grad(q.p[k], q.t[k]));
        }
    }
    out[i4] = v;
}
