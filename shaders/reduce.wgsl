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

@compute @workgroup_size(256)
fn reduce_partials(lane: Lane) {
    var m = -3.4028235e38;
    for (var i = lane.lid; i < params.count; i = i + WG) {
        m = max(m, partials[i].z);
    }
    let big_m = wg_max(m, lane);
    var acc = Kahan(vec2<f32>(0.0), vec2<f32>(0.0));
    for (var i = lane.lid; i < params.count; i = i + WG) {
        let q = partials[i];
        acc = kahan_add(acc, vec2<f32>(rescale(q.x, q.z, big_m), q.y));
    }
    let total = wg_sum(acc.sum, lane);
    if (lane.lid == 0u) {
        out[0] = vec4<f32>(total, big_m, 0.0);
    }
}
