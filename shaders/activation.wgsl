// Activations, elementwise: forward f(x), derivative f'(x), backward
// upstream * f'(x). OP picks the function (Activation::shader_id), PASS the
// pass (Pass::shader_id); each thread handles one vec4.

override OP: u32;      // an ACT_* id
override PASS: u32;    // a PASS_* id
override X_DTYPE: u32 = 0u;         // a DTYPE_* id of x and of upstream
override UPSTREAM_DTYPE: u32 = 0u;
override OUT_DTYPE: u32 = 0u;       // a DTYPE_* id of the output

struct ActParams {
    n4: u32,        // vec4s in this chunk
    base: u32,      // global index of the chunk's first element (rrelu's counter)
    seed_lo: u32,
    seed_hi: u32,
    a: f32,         // alpha (leaky family, elu) or beta (swish)
    training: u32,
    lower: f32,
    upper: f32,
}

@group(0) @binding(0) var<uniform> params: ActParams;
// Raw words, widened by unpack4 (common.wgsl).
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> upstream: array<vec4<u32>>;
// Words of OUT_DTYPE: a vec4 of values is one element for f32, half of one
// for the halves (each invocation writes its own two words).
@group(0) @binding(3) var<storage, read_write> out: array<vec4<u32>>;

// Negative-side slope of the leaky family at global element i.
fn slope(i: u32) -> f32 {
    if (OP == ACT_RRELU) {
        if (params.training != 0u) {
            return params.lower + (params.upper - params.lower) * rng_uniform(params.seed_lo, params.seed_hi, i);
        }
        return (params.lower + params.upper) * 0.5;
    }
    return params.a;
}

fn forward(v: f32, i: u32) -> f32 {
    var y: f32;
    switch OP {
        case ACT_SIGMOID: { y = sigmoid(v); }
        case ACT_TANH: { y = tanh_stable(v); }
        case ACT_RELU: { y = max(v, 0.0); }
        case ACT_LEAKY_RELU, ACT_PRELU, ACT_RRELU: { y = select(slope(i) * v, v, v > 0.0); }
        case ACT_ELU: { y = select(params.a * expm1(min(v, 0.0)), v, v > 0.0); }
        case ACT_SWISH: { y = v * sigmoid(params.a * v); }
        case ACT_SOFTPLUS: { y = softplus(v); }
        default: { y = nan_f32(); }
    }
    return keep_nan(v, y);
}

fn derivative(v: f32, i: u32) -> f32 {
    var d: f32;
    switch OP {
        case ACT_SIGMOID: { d = sigmoid_grad(v); }
        // 1 - tanh^2 cancels in f32 where tanh is near ±1; sech^2 = 4σ'(2x) does not.
        case ACT_TANH: { d = 4.0 * sigmoid_grad(2.0 * v); }
        case ACT_RELU: { d = select(0.0, 1.0, v > 0.0); }
        case ACT_LEAKY_RELU, ACT_PRELU, ACT_RRELU: { d = select(slope(i), 1.0, v > 0.0); }
        case ACT_ELU: { d = select(params.a * exp(min(v, 0.0)), 1.0, v > 0.0); }
        case ACT_SWISH: {
            let s = sigmoid(params.a * v);
            let f = v * s;
            d = params.a * f + s * (1.0 - params.a * f);
        }
        case ACT_SOFTPLUS: { d = sigmoid(v); }
        default: { d = nan_f32(); }
    }
    return keep_nan(v, d);
}

fn apply(v: f32, u: f32, i: u32) -> f32 {
    if (PASS == PASS_FORWARD) {
        return forward(v, i);
    }
    if (PASS == PASS_DERIVATIVE) {
        return derivative(v, i);
    }
    return u * derivative(v, i);
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
fn activation(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i4 = flat_id(wid, nwg, lid);
    if (i4 >= params.n4) {
        return;
    }
    let v = unpack4(x[raw_index(i4, X_DTYPE)], i4, X_DTYPE);
    var u = vec4<f32>(1.0);
    if (PASS == PASS_BACKWARD) {
        u = unpack4(upstream[raw_index(i4, UPSTREAM_DTYPE)], i4, UPSTREAM_DTYPE);
    }
    let i = params.base + 4u * i4;
    let y = vec4<f32>(apply(v.x, u.x, i), apply(v.y, u.y, i + 1u), apply(v.z, u.z, i + 2u), apply(v.w, u.w, i + 3u));
    put4(i4, y);
}
