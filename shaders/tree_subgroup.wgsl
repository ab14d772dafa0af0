// Workgroup sum with subgroup operations (Features::SUBGROUP): one
// subgroupAdd per subgroup, then the subgroup sums in subgroup order by one
// invocation. The hardware fixes the order inside subgroupAdd, so the result
// is reproducible on a given adapter.

struct Lane {
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) n_sg: u32,
}

var<workgroup> tree_buf: array<vec2<f32>, WG>;

fn wg_sum(v: vec2<f32>, lane: Lane) -> vec2<f32> {
    let s = subgroupAdd(v);
    if (lane.sg_lane == 0u) {
        tree_buf[lane.sg_id] = s;
    }
    workgroupBarrier();
    if (lane.lid == 0u) {
        var t = tree_buf[0];
        for (var i = 1u; i < lane.n_sg; i = i + 1u) {
            t = t + tree_buf[i];
        }
        tree_buf[WG - 1u] = t;
    }
    workgroupBarrier();
    let r = tree_buf[WG - 1u];
    workgroupBarrier();
    return r;
}

// Four sums for the price of one round: subgroup sums go to two tree_buf
// slots each (subgroups hold at least 4 invocations, so 2·n_sg < WG − 1).
fn wg_sum4(v: vec4<f32>, lane: Lane) -> vec4<f32> {
    let s = subgroupAdd(v);
    if (lane.sg_lane == 0u) {
        tree_buf[2u * lane.sg_id] = s.xy;
        tree_buf[2u * lane.sg_id + 1u] = s.zw;
    }
    workgroupBarrier();
    if (lane.lid == 0u) {
        var t = vec4<f32>(tree_buf[0], tree_buf[1]);
        for (var i = 1u; i < lane.n_sg; i = i + 1u) {
            t = t + vec4<f32>(tree_buf[2u * i], tree_buf[2u * i + 1u]);
        }
        tree_buf[WG - 2u] = t.xy;
        tree_buf[WG - 1u] = t.zw;
    }
    workgroupBarrier();
    let r = vec4<f32>(tree_buf[WG - 2u], tree_buf[WG - 1u]);
    workgroupBarrier();
    return r;
}

fn wg_max(v: f32, lane: Lane) -> f32 {
    let s = subgroupMax(v);
    if (lane.sg_lane == 0u) {
        tree_buf[lane.sg_id] = vec2<f32>(s, 0.0);
    }
    workgroupBarrier();
    if (lane.lid == 0u) {
        var t = tree_buf[0].x;
        for (var i = 1u; i < lane.n_sg; i = i + 1u) {
            t = max(t, tree_buf[i].x);
        }
        tree_buf[WG - 1u] = vec2<f32>(t, 0.0);
    }
    workgroupBarrier();
    let r = tree_buf[WG - 1u].x;
    workgroupBarrier();
    return r;
}
