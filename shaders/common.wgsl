// Shared by every kernel: prepended to each shader module. Stable math that
// never evaluates exp of an unbounded value (WGSL's finite-math rules make an
// overflow undefined even in a branch that select() later discards) and
// never trusts a float NaN test (the compiler may assume NaN absent), so NaN
// is detected on the bits.

const WG: u32 = 256u;
const LN2: f32 = 0.6931471805599453;
// An index slot no one has written (error slots, argmax).
const NO_INDEX: u32 = 0xffffffffu;

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn is_nan4(x: vec4<f32>) -> vec4<bool> {
    return (bitcast<vec4<u32>>(x) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
}

// Which lanes of the vec4 whose first element is `first` lie below n.
fn lanes_below(first: u32, n: u32) -> vec4<bool> {
    return vec4<u32>(first) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(n);
}

fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

fn nan_f32() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

fn inf_f32() -> f32 {
    return bitcast<f32>(0x7f800000u);
}

// y, or x itself when x is NaN: branchy formulas would otherwise swallow it.
fn keep_nan(x: f32, y: f32) -> f32 {
    return select(y, x, is_nan(x));
}

// 2 atanh(s) = log((1+s)/(1-s)) for |s| <= 1/3 by its odd series, so that
// log near 1 does not depend on the built-in log (whose WGSL accuracy is only
// 2^-21 absolute on [0.5, 2]).
fn two_atanh(s: f32) -> f32 {
    let q = s * s;
    let p = 1.0 + q * (1.0 / 3.0 + q * (1.0 / 5.0 + q * (1.0 / 7.0 + q * (1.0 / 9.0
        + q * (1.0 / 11.0 + q * (1.0 / 13.0 + q * (1.0 / 15.0 + q * (1.0 / 17.0))))))));
    return 2.0 * s * p;
}

// log(1 + z) for z in [0, 1].
fn log1p_unit(z: f32) -> f32 {
    let c = clamp(z, 0.0, 1.0);
    return two_atanh(c / (2.0 + c));
}

// log(1 + z) for z >= 0.
fn log1p_any(z: f32) -> f32 {
    return select(log(1.0 + z), log1p_unit(z), z <= 1.0);
}

// log(x), accurate on [0.5, 2] too.
fn log_acc(x: f32) -> f32 {
    let c = clamp(x, 0.5, 2.0);
    return select(log(x), two_atanh((c - 1.0) / (c + 1.0)), x >= 0.5 && x <= 2.0);
}

// log(x) for x >= 0 including subnormals (scaled by 2^64 first, in case the
// hardware flushes them) and log(0) = -inf without evaluating log(0).
fn log_safe(x: f32) -> f32 {
    let tiny = x < 1e-30;
    let scaled = log(max(x * 18446744073709551616.0, 1.17549435e-38)) - 44.3614195558365;
    let l = select(log_acc(max(x, 1e-30)), scaled, tiny);
    return keep_nan(x, select(l, -inf_f32(), x == 0.0));
}

// x·log(y) with 0·log(anything) = 0 (scipy's xlogy).
fn xlogy(x: f32, y: f32) -> f32 {
    return select(x * log_safe(y), 0.0, x == 0.0 && !is_nan(y));
}

// w·l where a zero weight removes its sample (0·inf = 0) but NaN in l
// still propagates.
fn weighted(w: f32, l: f32) -> f32 {
    return select(w * l, 0.0, w == 0.0 && !is_nan(l));
}

fn weighted4(w: vec4<f32>, l: vec4<f32>) -> vec4<f32> {
    let z = vec4<f32>(0.0);
    return select(w * l, z, w == z & !is_nan4(l));
}

// The factor that turns w·dl/dp into the gradient of the reduced loss:
// COEF_SCALE the given scale (sum, or mean with a known Σw),
// COEF_INVERSE_WEIGHT_SUM 1/Σw read from the reduction's result
// s = (Σwl, Σw), COEF_RMSE the rmse chain rule 1/(2·Σw·rmse), 0 where rmse = 0.
fn grad_factor(mode: u32, scale: f32, s: vec4<f32>) -> f32 {
    if (mode == COEF_INVERSE_WEIGHT_SUM) {
        return 1.0 / s.y;
    }
    if (mode == COEF_RMSE) {
        let rmse = sqrt(s.x / s.y);
        return select(1.0 / (2.0 * s.y * rmse), 0.0, rmse == 0.0);
    }
    return scale;
}

// e^y - 1 for y <= 88: Taylor series on |y| < 0.5, exp(y) - 1 outside.
fn expm1(y: f32) -> f32 {
    let a = clamp(y, -0.5, 0.5);
    let poly = a * (1.0 + a * (1.0 / 2.0 + a * (1.0 / 6.0 + a * (1.0 / 24.0 + a * (1.0 / 120.0
        + a * (1.0 / 720.0 + a * (1.0 / 5040.0 + a * (1.0 / 40320.0 + a * (1.0 / 362880.0)))))))));
    return select(exp(min(y, 88.0)) - 1.0, poly, abs(y) < 0.5);
}

fn sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    return keep_nan(x, select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0));
}

// σ'(x) = e/(1+e)^2 with e = exp(-|x|): exact in both tails.
fn sigmoid_grad(x: f32) -> f32 {
    let e = exp(-abs(x));
    let d = 1.0 + e;
    return keep_nan(x, e / (d * d));
}

fn softplus(x: f32) -> f32 {
    return keep_nan(x, max(x, 0.0) + log1p_unit(exp(-abs(x))));
}

fn tanh_stable(x: f32) -> f32 {
    let e = expm1(-2.0 * min(abs(x), 20.0));
    let t = -e / (2.0 + e);
    return keep_nan(x, select(t, -t, x < 0.0));
}

// log cosh(e) = |e| + softplus(-2|e|) - log 2; below |e| = 1, where that
// cancels, log1p(2 sinh^2(|e|/2)) by series instead.
fn log_cosh(e: f32) -> f32 {
    let a = abs(e);
    let h = 0.5 * min(a, 1.0);
    let q = h * h;
    let sh = h * (1.0 + q * (1.0 / 6.0 + q * (1.0 / 120.0 + q * (1.0 / 5040.0 + q * (1.0 / 362880.0)))));
    // One log1p for both sides: log1p(2 sinh²(a/2)) below 1, and
    // a − log 2 + log1p(e^(−2a)) above.
    let small = a < 1.0;
    let z = select(exp(-2.0 * a), 2.0 * sh * sh, small);
    return keep_nan(e, select(a - LN2, 0.0, small) + log1p_unit(z));
}

fn sign0(x: f32) -> f32 {
    return keep_nan(x, select(select(0.0, -1.0, x < 0.0), 1.0, x > 0.0));
}

// s·e^(m − big_m) for m <= big_m, exact when they are equal (exp(0) need
// not be exactly 1 in WGSL) and 0 far below (no exp of a huge negative).
fn rescale(s: f32, m: f32, big_m: f32) -> f32 {
    return select(s * exp(max(m - big_m, -200.0)), s, m == big_m);
}

// Counter-based generator: three rounds of the PCG output hash (Jarzynski &
// Olano 2020); the same u32 arithmetic as `uniform01` in the Rust reference.
fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn rng_uniform(seed_lo: u32, seed_hi: u32, index: u32) -> f32 {
    let key = pcg_hash(seed_lo ^ pcg_hash(seed_hi));
    let h = pcg_hash(index ^ key);
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

// Linear invocation index of a 2-D dispatch (x wraps at the per-dimension
// limit, y counts the wraps), so any length fits in one dispatch.
fn flat_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

// Compensated accumulation that lets inf and NaN through instead of turning
// inf - inf into NaN.
struct Kahan {
    sum: vec2<f32>,
    comp: vec2<f32>,
}

fn kahan_add(k: Kahan, v: vec2<f32>) -> Kahan {
    let y = v - k.comp;
    let t = k.sum + y;
    var c = (t - k.sum) - y;
    c = select(c, vec2<f32>(0.0), !(vec2<bool>(is_finite(t.x), is_finite(t.y))));
    return Kahan(t, c);
}

// Whether v is allowed in a DOMAIN_* (Domain in ops/loss.rs); NaN always is.
fn in_domain(v: f32, domain: u32) -> bool {
    if (domain == DOMAIN_SIGN) {
        return v == 1.0 || v == -1.0 || is_nan(v);
    }
    if (domain == DOMAIN_UNIT) {
        return (v >= 0.0 && v <= 1.0) || is_nan(v);
    }
    if (domain == DOMAIN_NON_POSITIVE) {
        return v <= 0.0 || is_nan(v);
    }
    return true;
}

// Inputs are bound as raw 32-bit words and widened as they are read: an f32
// is its word; f16 and bf16 (DTYPE_*, DType in ops/dtype.rs) pack two values
// a word, the first in the low half. bf16 is the upper half of an f32; f16 is
// widened with integer ops (f16_bits), not unpack2x16float, which needs a
// downlevel capability some adapters lack.

// The f32 of the f16 whose bits are h (low 16 bits), exactly: normals
// rebias their exponent, subnormals are m·2^-24 (a normal f32, so no
// denormal flushing), inf and NaN keep their payload.
fn f16_bits(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    let normal = sign | ((e + 112u) << 23u) | (m << 13u);
    let special = sign | 0x7f800000u | (m << 13u);
    let small = sign | bitcast<u32>(f32(m) * 5.9604645e-8);
    return bitcast<f32>(select(select(normal, special, e == 31u), small, e == 0u));
}

// The index of the word (or vec4 of words) that holds value (or vec4) i of
// an input of `dtype`: halves pack two a word.
fn raw_index(i: u32, dtype: u32) -> u32 {
    return select(i, i >> 1u, dtype != DTYPE_F32);
}

// Value i of an input of `dtype` from its word.
fn unpack1(word: u32, i: u32, dtype: u32) -> f32 {
    if (dtype == DTYPE_F32) {
        return bitcast<f32>(word);
    }
    let h = (word >> ((i & 1u) * 16u)) & 0xffffu;
    if (dtype == DTYPE_F16) {
        return f16_bits(h);
    }
    return bitcast<f32>(h << 16u);
}

// Values 4·i4 .. 4·i4 + 3 of an input of `dtype` from their vec4 of words
// (for halves, the first or second pair of it).
fn unpack4(raw: vec4<u32>, i4: u32, dtype: u32) -> vec4<f32> {
    if (dtype == DTYPE_F32) {
        return bitcast<vec4<f32>>(raw);
    }
    let w = select(raw.xy, raw.zw, (i4 & 1u) == 1u);
    return vec4<f32>(
        unpack1(w.x, 0u, dtype),
        unpack1(w.x, 1u, dtype),
        unpack1(w.y, 0u, dtype),
        unpack1(w.y, 1u, dtype),
    );
}

// Outputs of a half dtype are narrowed the way the host's half::from_f32
// does, with integer ops (no float16 capability needed): round to nearest,
// ties to even; overflow to ±inf; NaN stays NaN with its payload's top bits
// and the quiet bit set.

// The bits of the bf16 nearest to v.
fn bf16_of(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (x >> 16u) | 0x40u;
    }
    let round = ((x & 0x8000u) != 0u) && ((x & 0x17fffu) != 0u);
    return (x >> 16u) + select(0u, 1u, round);
}

// The bits of the f16 nearest to v.
fn f16_of(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    let sign = (x >> 16u) & 0x8000u;
    let e = (x >> 23u) & 0xffu;
    let m = x & 0x7fffffu;
    if (e == 0xffu) {
        return sign | 0x7c00u | select(0u, 0x200u, m != 0u) | (m >> 13u);
    }
    let he = i32(e) - 112;
    if (he >= 31) {
        return sign | 0x7c00u;
    }
    if (he <= 0) {
        if (he < -10) {
            return sign;
        }
        let full = m | 0x800000u;
        let shift = u32(14 - he);
        let r = 1u << (shift - 1u);
        let up = ((full & r) != 0u) && ((full & (3u * r - 1u)) != 0u);
        return sign | ((full >> shift) + select(0u, 1u, up));
    }
    let up = ((m & 0x1000u) != 0u) && ((m & 0x2fffu) != 0u);
    // A carry out of the mantissa rounds into the exponent, up to inf.
    return (sign | (u32(he) << 10u) | (m >> 13u)) + select(0u, 1u, up);
}

// Two values packed into one word of `dtype` (f16 or bf16), the first low.
fn pack2(a: f32, b: f32, dtype: u32) -> u32 {
    if (dtype == DTYPE_F16) {
        return f16_of(a) | (f16_of(b) << 16u);
    }
    return bf16_of(a) | (bf16_of(b) << 16u);
}

// An output vec4 as the words of `dtype`: four for f32, two for a half (the
// rest zero).
fn pack4(v: vec4<f32>, dtype: u32) -> vec4<u32> {
    if (dtype == DTYPE_F32) {
        return bitcast<vec4<u32>>(v);
    }
    return vec4<u32>(pack2(v.x, v.y, dtype), pack2(v.z, v.w, dtype), 0u, 0u);
}
