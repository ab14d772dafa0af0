// Second pass of every reduction: one workgroup folds the per-workgroup
// partials (s, Σ w, m) of the first pass, each meaning Σ w·l = s·e^m, into
// out[0] = (S, Σ w, M). Plain sums have m = 0 throughout; the exponential
// loss keeps its sum in this scaled form so that it overflows only past the
// f64 range. The partial count is fixed by n, so the order of additions, and
// the result, are too.

struct ReduceParams {
    count: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: ReduceParams;
@group(0) @binding(1) var<storage, read> partials: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
// The segment table of loss.wgsl's reduce_segments (8 words per loss).
@group(0) @binding(3) var<storage, read> segments: array<u32>;

// (S, Σ w, M) of `count` partials from index `first`.
fn fold(first: u32, count: u32, lane: Lane) -> vec4<f32> {
    var m = -3.4028235e38;
    for (var i = lane.lid; i < count; i = i + WG) {
        m = max(m, partials[first + i].z);
    }
    let big_m = wg_max(m, lane);
    var acc = Kahan(vec2<f32>(0.0), vec2<f32>(0.0));
    for (var i = lane.lid; i < count; i = i + WG) {
        let q = partials[first + i];
        acc = kahan_add(acc, vec2<f32>(rescale(q.x, q.z, big_m), q.y));
    }
    let total = wg_sum(acc.sum, lane);
    return vec4<f32>(total, big_m, 0.0);
}

@compute @workgroup_size(256)
fn reduce_partials(lane: Lane) {
    let r = fold(0u, params.count, lane);
    if (lane.lid == 0u) {
        out[0] = r;
    }
}

// One workgroup per packed loss (params.count of them): its own partials
// into out[segment], as reduce_partials folds a loss evaluated alone.
@compute @workgroup_size(256)
fn reduce_segments(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let seg = wid.y * nwg.x + wid.x;
    if (seg >= params.count) {
        return;
    }
    let r = fold(segments[8u * seg + 2u], segments[8u * seg + 3u], lane);
    if (lane.lid == 0u) {
        out[seg] = r;
    }
}
