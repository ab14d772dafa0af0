// Workgroup sum by a shared-memory tree: the path for adapters without
// subgroup operations. The order of additions is fixed, so the result is
// reproducible bit for bit.

struct Lane {
    @builtin(local_invocation_index) lid: u32,
}

var<workgroup> tree_buf: array<vec2<f32>, WG>;

fn wg_sum(v: vec2<f32>, lane: Lane) -> vec2<f32> {
    tree_buf[lane.lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lane.lid < s) {
            tree_buf[lane.lid] = tree_buf[lane.lid] + tree_buf[lane.lid + s];
        }
        workgroupBarrier();
    }
    let r = tree_buf[0];
    workgroupBarrier();
    return r;
}

// Four sums: two trees, as tree_buf holds one vec2 per invocation.
fn wg_sum4(v: vec4<f32>, lane: Lane) -> vec4<f32> {
    return vec4<f32>(wg_sum(v.xy, lane), wg_sum(v.zw, lane));
}

fn wg_max(v: f32, lane: Lane) -> f32 {
    tree_buf[lane.lid] = vec2<f32>(v, 0.0);
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lane.lid < s) {
            tree_buf[lane.lid].x = max(tree_buf[lane.lid].x, tree_buf[lane.lid + s].x);
        }
        workgroupBarrier();
    }
    let r = tree_buf[0].x;
    workgroupBarrier();
    return r;
}
