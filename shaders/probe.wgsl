// The adapter's own ceiling for a reduction: read every element of one or
// two tensors once and sum them, with nothing else in the way. The same
// structure as reduce_terms in loss.wgsl — vec4 loads in a grid-stride loop
// over at most 1024 workgroups, the workgroup tree, one partial per
// workgroup for reduce_partials to fold — but a plain f32 sum: no Kahan
// compensation, no value checks, no loss formula. A benchmark divides this
// kernel's time by a loss's to say how close the loss runs to the adapter.

override HAS_SECOND: bool = false;

struct ProbeParams {
    n: u32,            // elements in this chunk
    partial_base: u32, // first partial slot of this chunk
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: ProbeParams;
@group(0) @binding(1) var<storage, read> xs: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> ys: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;

// The last, partial vec4 of a chunk: only its first n % 4 lanes count (a
// caller's buffer may hold anything past the tensor's end).
fn tail(i4: u32) -> vec2<f32> {
    let keep = select(vec4<f32>(0.0), vec4<f32>(1.0), lanes_below(4u * i4, params.n));
    var s = vec2<f32>(dot(xs[i4], keep), 0.0);
    if (HAS_SECOND) {
        s.y = dot(ys[i4], keep);
    }
    return s;
}

@compute @workgroup_size(256)
fn read_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let full = params.n / 4u;
    var a = vec4<f32>(0.0);
    var b = vec4<f32>(0.0);
    for (var i4 = wid.x * WG + lane.lid; i4 < full; i4 = i4 + nwg.x * WG) {
        a = a + xs[i4];
        if (HAS_SECOND) {
            b = b + ys[i4];
        }
    }
    var s = vec2<f32>(a.x + a.y + a.z + a.w, b.x + b.y + b.z + b.w);
    if (wid.x == 0u && lane.lid == 0u && full * 4u < params.n) {
        s = s + tail(full);
    }
    let total = wg_sum(s, lane);
    if (lane.lid == 0u) {
        // (s, Σ w, m) as reduce_partials expects: the second tensor's sum
        // rides in the Σ w slot, m = 0.
        out[params.partial_base + wid.x] = vec4<f32>(total, 0.0, 0.0);
    }
}
