// Fused linear + cross-entropy (ops/linear.rs): the logits z = H·Wᵀ + b are
// computed a chunk of classes at a time into a scratch of rows × chunk and
// never held whole. gemm is a tiled matrix product (each output by one
// invocation, its sum over k in order; the host cuts k into slices of
// MAX_K, summed by dispatches in order, as lavapipe ends a shader loop past
// 65,535 iterations); chunk_rows folds a chunk's logits
// into each row's running max and Σ e^(z − max); finish_rows turns the
// state into lse and the row's loss; chunk_grad overwrites a chunk's logits
// with their gradient G; bias_grad sums G's columns.

override A_DTYPE: u32 = 0u;        // DTYPE_* of gemm's A, B and of the bias
override B_DTYPE: u32 = 0u;
override BIAS_DTYPE: u32 = 0u;
override TRANS_A: bool = false;    // A is stored k×m (row-major)
override TRANS_B: bool = false;    // B is stored n×k
override ACCUMULATE: bool = false; // C += A·B rather than C = A·B
override HAS_BIAS: bool = false;
override HAS_IGNORE: bool = false;

struct LinearParams {
    m: u32,          // gemm: C is m×n, the sum over k; rows: rows, classes in the chunk
    n: u32,
    k: u32,
    lda: u32,        // row strides of A's, B's and C's storage
    ldb: u32,
    ldc: u32,
    a_skip: u32,     // values before the binding's first used value
    b_skip: u32,
    c_skip: u32,
    v0: u32,         // the chunk's first class
    classes: u32,    // V
    ignore: u32,     // the ignored label (HAS_IGNORE)
    smoothing: f32,  // ε
    z_loss: f32,     // λ
    scale: f32,      // the factor of every kept row's gradient
    row0: u32,       // the chunk kernels: the slice's first row, and the
    z_skip: u32,     // values before it in the scratch's binding
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: LinearParams;
// gemm's A and B as raw words (unpack1 in common.wgsl).
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
// gemm's C; the chunk kernels' logits (then their gradient), rows × chunk.
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// Per row two vec4: (max, Σ e^(z − max), target's logit, Σ z) and (NaNs
// seen, lse, 0, 0).
@group(0) @binding(4) var<storage, read_write> state: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> labels: array<u32>;
@group(0) @binding(6) var<storage, read> bias: array<u32>;
// finish_rows: each row's loss; bias_grad: the chunk's Σₙ G.
@group(0) @binding(7) var<storage, read_write> sums: array<f32>;

// Below every finite logit: the max of a row no chunk has reached yet.
const LOWEST: f32 = -3.4028235e38;

const TM: u32 = 64u;   // output tile rows, columns, and the k step
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>;  // TK × TM, k-major
var<workgroup> b_tile: array<f32, 1024>;  // TK × TN

fn a_at(i: u32, kk: u32) -> f32 {
    if (i >= params.m || kk >= params.k) {
        return 0.0;
    }
    var idx = i * params.lda + kk;
    if (TRANS_A) {
        idx = kk * params.lda + i;
    }
    idx = idx + params.a_skip;
    return unpack1(a[raw_index(idx, A_DTYPE)], idx, A_DTYPE);
}

fn b_at(kk: u32, j: u32) -> f32 {
    if (j >= params.n || kk >= params.k) {
        return 0.0;
    }
    var idx = kk * params.ldb + j;
    if (TRANS_B) {
        idx = j * params.ldb + kk;
    }
    idx = idx + params.b_skip;
    return unpack1(b[raw_index(idx, B_DTYPE)], idx, B_DTYPE);
}

// C (m×n) = op(A) (m×k) · op(B) (k×n), a 64×64 tile per workgroup of 16×16
// invocations, 4×4 outputs each. Loads run along the stored rows, so
// neighbouring invocations read neighbouring values.
@compute @workgroup_size(16, 16)
fn gemm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m0 = wid.y * TM;
    let n0 = wid.x * TN;
    let tx = lid3.x;
    let ty = lid3.y;
    var acc: array<vec4<f32>, 4>;
    // Each k step's 16 products are summed apart, then added: the error
    // grows with k/16, not k.
    for (var k0 = 0u; k0 < params.k; k0 = k0 + TK) {
        // 4 values of each tile per invocation.
        for (var q = 0u; q < 4u; q = q + 1u) {
            if (TRANS_A) {
                let kk = lid / 16u;
                let i = (lid % 16u) * 4u + q;
                a_tile[kk * TM + i] = a_at(m0 + i, k0 + kk);
            } else {
                let i = lid / 4u;
                let kk = (lid % 4u) * 4u + q;
                a_tile[kk * TM + i] = a_at(m0 + i, k0 + kk);
            }
            if (TRANS_B) {
                let j = lid / 4u;
                let kk = (lid % 4u) * 4u + q;
                b_tile[kk * TN + j] = b_at(k0 + kk, n0 + j);
            } else {
                let kk = lid / 16u;
                let j = (lid % 16u) * 4u + q;
                b_tile[kk * TN + j] = b_at(k0 + kk, n0 + j);
            }
        }
        workgroupBarrier();
        var part: array<vec4<f32>, 4>;
        for (var kk = 0u; kk < TK; kk = kk + 1u) {
            let av = vec4<f32>(
                a_tile[kk * TM + ty * 4u],
                a_tile[kk * TM + ty * 4u + 1u],
                a_tile[kk * TM + ty * 4u + 2u],
                a_tile[kk * TM + ty * 4u + 3u],
            );
            let bv = vec4<f32>(
                b_tile[kk * TN + tx * 4u],
                b_tile[kk * TN + tx * 4u + 1u],
                b_tile[kk * TN + tx * 4u + 2u],
                b_tile[kk * TN + tx * 4u + 3u],
            );
            part[0] = part[0] + av.x * bv;
            part[1] = part[1] + av.y * bv;
            part[2] = part[2] + av.z * bv;
            part[3] = part[3] + av.w * bv;
        }
        for (var r = 0u; r < 4u; r = r + 1u) {
            acc[r] = acc[r] + part[r];
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r = r + 1u) {
        let i = m0 + ty * 4u + r;
        if (i >= params.m) {
            continue;
        }
        for (var q = 0u; q < 4u; q = q + 1u) {
            let j = n0 + tx * 4u + q;
            if (j < params.n) {
                let at = params.c_skip + i * params.ldc + j;
                var v = acc[r][q];
                if (ACCUMULATE) {
                    v = c[at] + v;
                }
                c[at] = v;
            }
        }
    }
}

fn bias_at(v: u32) -> f32 {
    if (!HAS_BIAS) {
        return 0.0;
    }
    return unpack1(bias[raw_index(v, BIAS_DTYPE)], v, BIAS_DTYPE);
}

// The chunk kernels see a slice of params.m rows from params.row0: `row`
// counts in the slice, the scratch is bound from the slice's first value.

fn is_ignored(row: u32) -> bool {
    return HAS_IGNORE && labels[params.row0 + row] == params.ignore;
}

// Where the chunk's value j of the slice's row is in the scratch.
fn z_index(row: u32, j: u32) -> u32 {
    return params.z_skip + row * params.n + j;
}

// Logit j of the chunk's row: its product plus the bias.
fn logit(row: u32, j: u32) -> f32 {
    return c[z_index(row, j)] + bias_at(params.v0 + j);
}

// A workgroup per row (params.m rows, params.n classes in the chunk): the
// chunk's max, Σ e^(z − max), Σ z, the target's logit and its NaNs, merged
// into the row's state.
@compute @workgroup_size(256)
fn chunk_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params.m) {
        return;
    }
    let lid = lane.lid;
    var top = LOWEST;
    var total = 0.0;
    var nans = 0.0;
    for (var j = lid; j < params.n; j = j + WG) {
        let z = logit(row, j);
        if (is_nan(z)) {
            nans = nans + 1.0;
        } else {
            top = max(top, z);
            total = total + z;
        }
    }
    let mx = wg_max(top, lane);
    var s = 0.0;
    for (var j = lid; j < params.n; j = j + WG) {
        let z = logit(row, j);
        if (!is_nan(z)) {
            s = s + exp(min(z - mx, 0.0));
        }
    }
    let sums2 = wg_sum(vec2<f32>(s, total), lane);
    let bad = wg_sum(vec2<f32>(nans, 0.0), lane).x;
    if (lid == 0u) {
        let g = params.row0 + row;
        let y = labels[g];
        var st = state[2u * g];
        let big = max(st.x, mx);
        // Exponents ≤ 0, clamped: a row's first chunk rescales a sum of 0.
        st.y = st.y * exp(max(st.x - big, -200.0)) + sums2.x * exp(max(mx - big, -200.0));
        st.x = big;
        st.w = st.w + sums2.y;
        if (y >= params.v0 && y - params.v0 < params.n) {
            st.z = logit(row, y - params.v0);
        }
        state[2u * g] = st;
        state[2u * g + 1u].x = state[2u * g + 1u].x + bad;
    }
}

// A thread per row of the slice: lse and the row's loss (0 when ignored, NaN after a NaN
// logit).
@compute @workgroup_size(256)
fn finish_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_id(wid, nwg, lid);
    if (row >= params.m) {
        return;
    }
    let g = params.row0 + row;
    let st = state[2u * g];
    let lse = st.x + log(st.y);
    let eps = params.smoothing;
    var loss = lse - (1.0 - eps) * st.z - eps / f32(params.classes) * st.w
        + params.z_loss * lse * lse;
    if (state[2u * g + 1u].x > 0.0) {
        loss = nan_f32();
    }
    if (is_ignored(row)) {
        loss = 0.0;
    }
    state[2u * g + 1u].y = lse;
    sums[g] = loss;
}

// A thread per logit of the chunk: G = c·(p·(1 + 2λ·lse) − (1−ε)·[v = y] −
// ε/V), p = e^(z − lse), over the logits in c.
@compute @workgroup_size(256)
fn chunk_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = flat_id(wid, nwg, lid);
    if (idx >= params.m * params.n) {
        return;
    }
    let row = idx / params.n;
    let j = idx - row * params.n;
    if (is_ignored(row)) {
        c[z_index(row, j)] = 0.0;
        return;
    }
    let lse = state[2u * (params.row0 + row) + 1u].y;
    let z = logit(row, j);
    let p = exp(min(z - lse, 0.0));
    let hit = select(0.0, 1.0 - params.smoothing, params.v0 + j == labels[params.row0 + row]);
    let g = p * (1.0 + 2.0 * params.z_loss * lse) - hit - params.smoothing / f32(params.classes);
    c[z_index(row, j)] = keep_nan(z, params.scale * g);
}

// A thread per class of the chunk: Σ G[n, j] over the slice's rows, in
// order, added to the slices before (ACCUMULATE).
@compute @workgroup_size(256)
fn bias_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = flat_id(wid, nwg, lid);
    if (j >= params.n) {
        return;
    }
    var s = 0.0;
    for (var row = 0u; row < params.m; row = row + 1u) {
        s = s + c[z_index(row, j)];
    }
    if (ACCUMULATE) {
        s = sums[params.c_skip + j] + s;
    }
    sums[params.c_skip + j] = s;
}
