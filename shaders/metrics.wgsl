// All regression metrics in one pass over (pred, target, weights): each
// element is read once and feeds eight weighted sums — e², |e|, mape, smape,
// huber, log-cosh, pinball and the weight itself — using the loss terms of
// terms.wgsl. metrics_partials writes two vec4 per workgroup; metrics_final
// (one workgroup) folds them in a fixed order into out[0..2].

override HAS_WEIGHTS: bool = false;
override DTYPE: u32 = 0u;   // a DTYPE_* id of pred, target and weights

struct MetricParams {
    n: u32,            // elements in this chunk (metrics_partials) or partial pairs (metrics_final)
    base: u32,         // global index of the chunk's first element
    partial_base: u32, // first partial pair of this chunk
    _pad0: u32,
    delta: f32,
    gamma: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: MetricParams;
// Raw words, widened by unpack4 (common.wgsl).
@group(0) @binding(1) var<storage, read> pred: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> tgt: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> weights: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> errors: array<atomic<u32>, 4>;

// Eight running sums of one invocation. A chunk holds at most 2^22 values
// over up to 1024 workgroups of 256, so an invocation adds at most 16
// elements: plain f32 sums lose nothing worth compensating there, and the
// fold of the partials (metrics_final) is compensated.
struct Sums {
    a: vec2<f32>,   // (e², |e|)
    b: vec2<f32>,   // (mape, smape)
    c: vec2<f32>,   // (huber, log-cosh)
    d: vec2<f32>,   // (pinball, w)
}

// Four elements (lanes past n have p = t = w = 0, whose terms are all 0).
fn add_quad(s: Sums, p: vec4<f32>, t: vec4<f32>, w: vec4<f32>) -> Sums {
    let a = vec2<f32>(weighted_sum4(w, loss_terms4(TERM_MSE, p, t, vec4<f32>(0.0))), weighted_sum4(w, loss_terms4(TERM_MAE, p, t, vec4<f32>(0.0))));
    let b = vec2<f32>(weighted_sum4(w, loss_terms4(TERM_MAPE, p, t, vec4<f32>(0.0))), weighted_sum4(w, loss_terms4(TERM_SMAPE, p, t, vec4<f32>(0.0))));
    let c = vec2<f32>(weighted_sum4(w, loss_terms4(TERM_HUBER, p, t, vec4<f32>(params.delta))), weighted_sum4(w, loss_terms4(TERM_LOG_COSH, p, t, vec4<f32>(0.0))));
    let d = vec2<f32>(weighted_sum4(w, loss_terms4(TERM_QUANTILE, p, t, vec4<f32>(params.gamma))), dot(w, vec4<f32>(1.0)));
    return Sums(s.a + a, s.b + b, s.c + c, s.d + d);
}

@compute @workgroup_size(256)
fn metrics_partials(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let n4 = (params.n + 3u) / 4u;
    let z = vec2<f32>(0.0);
    var s = Sums(z, z, z, z);
    for (var i4 = wid.x * WG + lane.lid; i4 < n4; i4 = i4 + nwg.x * WG) {
        // Lanes past n read as p = t = w = 0, whose terms are all 0: the
        // loop body has no per-lane branch.
        let valid = lanes_below(4u * i4, params.n);
        let z4 = vec4<f32>(0.0);
        let r = raw_index(i4, DTYPE);
        let p = select(z4, unpack4(pred[r], i4, DTYPE), valid);
        let t = select(z4, unpack4(tgt[r], i4, DTYPE), valid);
        var w = select(z4, vec4<f32>(1.0), valid);
        if (HAS_WEIGHTS) {
            w = select(z4, unpack4(weights[r], i4, DTYPE), valid);
            if (any(w < z4)) {
                for (var k = 0u; k < 4u; k = k + 1u) {
                    if (w[k] < 0.0) {
                        atomicMin(&errors[2], params.base + 4u * i4 + k);
                    }
                }
            }
        }
        s = add_quad(s, p, t, w);
    }
    let ab = wg_sum4(vec4<f32>(s.a, s.b), lane);
    let cd = wg_sum4(vec4<f32>(s.c, s.d), lane);
    if (lane.lid == 0u) {
        let slot = 2u * (params.partial_base + wid.x);
        partials[slot] = ab;
        partials[slot + 1u] = cd;
    }
}

@compute @workgroup_size(256)
fn metrics_final(lane: Lane) {
    let z = Kahan(vec2<f32>(0.0), vec2<f32>(0.0));
    var ka = z;
    var kb = z;
    var kc = z;
    var kd = z;
    for (var i = lane.lid; i < params.n; i = i + WG) {
        let x = partials[2u * i];
        let y = partials[2u * i + 1u];
        ka = kahan_add(ka, x.xy);
        kb = kahan_add(kb, x.zw);
        kc = kahan_add(kc, y.xy);
        kd = kahan_add(kd, y.zw);
    }
    let ab = wg_sum4(vec4<f32>(ka.sum, kb.sum), lane);
    let cd = wg_sum4(vec4<f32>(kc.sum, kd.sum), lane);
    if (lane.lid == 0u) {
        // The totals go after the partials, in slots the partials never use.
        let slot = 2u * params.partial_base;
        partials[slot] = ab;
        partials[slot + 1u] = cd;
    }
}
