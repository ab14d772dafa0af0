// Gradient health in one pass, and clipping. grad_stats writes per-workgroup
// partials (s, 0, m) meaning Σ g² = s·e^m over the finite values (scaled as it
// goes, so |g| up to 1e30 never overflows), counted into counts[]: NaN, ±inf,
// |g| < eps, and the largest |g| as bits (non-negative floats order like
// their bits, so an integer atomicMax is exact and order-free).
// reduce_partials (reduce.wgsl) then folds the partials into stats[0].

override DTYPE: u32 = 0u;   // a DTYPE_* id of data

struct StatsParams {
    n: u32,            // elements in this chunk
    partial_base: u32, // first partial slot of this chunk
    eps: f32,          // vanishing threshold
    limit: f32,        // clip: the max norm or the max value
}

@group(0) @binding(0) var<uniform> params: StatsParams;
// Raw words: read widened (unpack4); the clips write back in DTYPE (put4).
@group(0) @binding(1) var<storage, read_write> data: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> counts: array<atomic<u32>, 4>;
@group(0) @binding(4) var<storage, read> stats: array<vec4<f32>>;

const NO_SCALE: f32 = -3.4028235e38;

@compute @workgroup_size(256)
fn grad_stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let n4 = (params.n + 3u) / 4u;
    var scale = 0.0;
    var ssq = 0.0;
    var nan_inf = vec2<f32>(0.0);
    var small = 0.0;
    for (var i4 = wid.x * WG + lane.lid; i4 < n4; i4 = i4 + nwg.x * WG) {
        let v = unpack4(data[raw_index(i4, DTYPE)], i4, DTYPE);
        for (var k = 0u; k < 4u; k = k + 1u) {
            if (4u * i4 + k < params.n) {
                let g = v[k];
                if (is_nan(g)) {
                    nan_inf.x = nan_inf.x + 1.0;
                } else if (!is_finite(g)) {
                    nan_inf.y = nan_inf.y + 1.0;
                } else {
                    let a = abs(g);
                    small = small + select(0.0, 1.0, a < params.eps);
                    if (a > scale) {
                        let r = scale / a;
                        ssq = 1.0 + ssq * r * r;
                        scale = a;
                    } else if (a > 0.0) {
                        let r = a / scale;
                        ssq = ssq + r * r;
                    }
                }
            }
        }
    }
    let big = wg_max(scale, lane);
    let r = select(scale / big, 0.0, big == 0.0);
    let total = wg_sum(vec2<f32>(ssq * r * r, small), lane);
    let bad = wg_sum(nan_inf, lane);
    if (lane.lid == 0u) {
        partials[params.partial_base + wid.x] =
            vec4<f32>(total.x, 0.0, select(2.0 * log_safe(big), NO_SCALE, big == 0.0), 0.0);
        atomicAdd(&counts[0], u32(bad.x));
        atomicAdd(&counts[1], u32(bad.y));
        atomicAdd(&counts[2], u32(total.y));
        atomicMax(&counts[3], bitcast<u32>(big));
    }
}

// ‖g‖ from the reduction: sqrt(s)·e^(m/2), where e^(m/2) is the largest
// scale, max |g| itself (exact from counts[3]); NaN or inf when any value was.
fn global_norm() -> f32 {
    var norm = sqrt(stats[0].x) * bitcast<f32>(atomicLoad(&counts[3]));
    norm = select(norm, inf_f32(), atomicLoad(&counts[1]) > 0u);
    return select(norm, nan_f32(), atomicLoad(&counts[0]) > 0u);
}

// Values 4·i4 .. 4·i4 + 3 written back in DTYPE: a vec4 of f32 words, or two
// words of halves rounded to nearest even (no other invocation owns them).
fn put4(i4: u32, v: vec4<f32>) {
    let words = pack4(v, DTYPE);
    if (DTYPE == DTYPE_F32) {
        data[i4] = words;
    } else {
        let k = 2u * (i4 & 1u);
        data[i4 >> 1u][k] = words.x;
        data[i4 >> 1u][k + 1u] = words.y;
    }
}

// PyTorch's clip_grad_norm_ rule: g · min(1, c / (‖g‖ + 1e-6)), in place,
// reading ‖g‖ from the device so the host never waits in between.
@compute @workgroup_size(256)
fn clip_norm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i4 = flat_id(wid, nwg, lid);
    if (i4 >= (params.n + 3u) / 4u) {
        return;
    }
    let norm = global_norm();
    let coef = min(1.0, params.limit / (norm + 1e-6));
    // A norm past f32::MAX of finite values (sqrt(s)·max overflowed): the
    // same factor in scaled form, (g / max)·min(max, c / (sqrt(s) + 1e-6 / max)),
    // where no step overflows.
    // max is > 0 there; elsewhere 1, so the discarded branch divides by no 0.
    let max = bitcast<f32>(atomicLoad(&counts[3]));
    let overflowed = !is_finite(norm) && atomicLoad(&counts[0]) == 0u && atomicLoad(&counts[1]) == 0u;
    let m = select(1.0, max, overflowed && max > 0.0);
    let scaled = min(m, params.limit / (sqrt(stats[0].x) + 1e-6 / m));
    let v = unpack4(data[raw_index(i4, DTYPE)], i4, DTYPE);
    put4(i4, select(v * keep_nan(norm, coef), (v / m) * scaled, overflowed));
}

@compute @workgroup_size(256)
fn clip_value(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i4 = flat_id(wid, nwg, lid);
    if (i4 >= (params.n + 3u) / 4u) {
        return;
    }
    let v = unpack4(data[raw_index(i4, DTYPE)], i4, DTYPE);
    let c = clamp(v, vec4<f32>(-params.limit), vec4<f32>(params.limit));
    put4(i4, vec4<f32>(keep_nan(v.x, c.x), keep_nan(v.y, c.y), keep_nan(v.z, c.z), keep_nan(v.w, c.w)));
}
