//! f32 transcendentals for the CPU backend's SIMD loops: branch-free
//! (selects, not jumps), no table lookups and no libm calls, so that a loop
//! over a slice compiles to vector instructions on every lane width. The
//! polynomials are Cephes' (the approach of XLA's and Eigen's vectorised
//! functions), each step a fused multiply-add (`mul_add`): one instruction
//! on the AVX2, AVX-512 and NEON builds and the correctly rounded software
//! fma elsewhere, so every target computes the same bits. Maximum errors over the whole f32 range, measured against
//! f64 by the tests below (every 7th f32 bit pattern, both signs, and the
//! specials, in `cargo test --release -- --ignored`; every 1009th in the
//! default run), in units of the f32 spacing at the exact value (the
//! subnormal spacing below the normal range), measured (bound tested):
//! exp 0.97 (1), expm1 1.44 (1.5), ln 0.80 (1), ln_1p 1.44 (1.5),
//! ln_1p_unit 0.83 (1.5), sigmoid 2.33 (2.5), softplus 1.64 (2), tanh 2.50
//! (3), log_cosh 2.17 (2.5).

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in a part exact in few bits and the rest (Cody and Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5·2^23: adding it rounds to an integer held in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;

/// `if c { a } else { b }` on values already computed: a blend, not a jump.
#[inline(always)]
pub(super) fn select(c: bool, a: f32, b: f32) -> f32 {
    if c {
        a
    } else {
        b
    }
}

/// 2^k for k in [−126, 127], from its exponent bits.
#[inline(always)]
fn pow2i(k: i32) -> f32 {
    f32::from_bits(((k + 127) << 23) as u32)
}

/// x = n·ln 2 + r with n an integer and |r| ≤ ½ln 2 (Cody and Waite's two
/// parts of ln 2 keep r exact to f32 precision); (n, r).
#[inline(always)]
fn reduce(x: f32) -> (i32, f32) {
    let k = x * LOG2E + ROUND;
    let n = k.to_bits() as i32 - ROUND.to_bits() as i32;
    let nf = k - ROUND;
    (n, (-nf).mul_add(LN2_LO, (-nf).mul_add(LN2_HI, x)))
}

/// e^x, to 1 ULP; +inf past ln(f32::MAX), subnormal then 0 below −87.3,
/// NaN for NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // Past these bounds the result is inf or 0 anyway; inside them n fits
    // the two-step scaling below. clamp keeps a NaN.
    let (n, r) = reduce(x.clamp(-104.0, 89.0));
    let mut y: f32 = 1.987_569_1e-4;
    y = y.mul_add(r, 1.398_199_9e-3);
    y = y.mul_add(r, 8.333_452e-3);
    y = y.mul_add(r, 4.166_579_6e-2);
    y = y.mul_add(r, 1.666_666_5e-1);
    y = y.mul_add(r, 0.5);
    // Unfused: the two roundings here keep exp within 1 ULP (0.98 → 1.01
    // fused).
    let y = y * (r * r) + r + 1.0;
    // 2^n in two factors, so that n = 128 (x near ln f32::MAX) and n down
    // to −150 (subnormal results) need no special case.
    let half = n >> 1;
    y * pow2i(half) * pow2i(n - half)
}

/// e^x − 1, to 1.5 ULP: x = n·ln 2 + r with |r| ≤ ½ln 2, then
/// 2^n·expm1(r) + (2^n − 1) with expm1(r) from its Taylor polynomial
/// (the error term r^10/10! is below 2^−36), so no cancellation is left.
/// The loops call [`expm1_to_80`], whose arguments stay below 80; this
/// whole-range form is the one the ULP sweep holds to its bound.
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub fn expm1(x: f32) -> f32 {
    // Above 80 the result is e^x.
    select(x > 80.0, exp(x), expm1_to_80(x))
}

/// [`expm1`] for x ≤ 80 (NaN kept; above 80 a finite wrong value): tanh's
/// argument −2|x| and elu's below 0 need no e^x beside it, whose lanes
/// cost as much again where `select` computes both sides.
#[inline(always)]
pub fn expm1_to_80(x: f32) -> f32 {
    // Below −30, e^x < 2^−43 and the result is −1.
    let (n, r) = reduce(x.clamp(-30.0, 80.0));
    let mut y: f32 = 1.0 / 362_880.0;
    y = y.mul_add(r, 1.0 / 40_320.0);
    y = y.mul_add(r, 1.0 / 5040.0);
    y = y.mul_add(r, 1.0 / 720.0);
    y = y.mul_add(r, 1.0 / 120.0);
    y = y.mul_add(r, 1.0 / 24.0);
    y = y.mul_add(r, 1.0 / 6.0);
    y = y.mul_add(r, 0.5);
    let p = y.mul_add(r * r, r);
    let scale = pow2i(n);
    let v = scale.mul_add(p, scale - 1.0);
    select(x < -30.0, -1.0, v)
}

/// k·ln 2 + ln(1 + f) + c for f in [√½ − 1, √2 − 1] (Cephes' polynomial),
/// with c a small correction added before the rounding of the sum.
#[inline(always)]
fn ln_reduced(f: f32, k: f32, c: f32) -> f32 {
    let z = f * f;
    let mut y: f32 = 7.037_683_6e-2;
    y = y.mul_add(f, -1.151_461e-1);
    y = y.mul_add(f, 1.167_699_9e-1);
    y = y.mul_add(f, -1.242_014_1e-1);
    y = y.mul_add(f, 1.424_932_3e-1);
    y = y.mul_add(f, -1.666_805_8e-1);
    y = y.mul_add(f, 2.000_071_4e-1);
    y = y.mul_add(f, -2.499_999_4e-1);
    y = y.mul_add(f, 3.333_333e-1);
    let y = (f * z).mul_add(y, k.mul_add(LN2_LO, c)) - 0.5 * z;
    k.mul_add(LN2_HI, f + y)
}

/// ln x, to 1 ULP; −inf at ±0, NaN below 0, +inf at +inf.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    // Subnormals scaled into the normal range first.
    let tiny = x < f32::MIN_POSITIVE;
    let xs = select(tiny, x * 8_388_608.0, x);
    let bits = xs.to_bits() as i32;
    let mut e = ((bits >> 23) & 0xff) - 127 - select(tiny, 23.0, 0.0) as i32;
    // The mantissa in [1, 2), then moved to [√½, √2) so f = m − 1 is small.
    let mut m = f32::from_bits(((bits & 0x007f_ffff) | 0x3f80_0000) as u32);
    let high = m > std::f32::consts::SQRT_2;
    m = select(high, m * 0.5, m);
    e += high as i32;
    let f = m - 1.0;
    let r = ln_reduced(f, e as f32, 0.0);
    // The edges the bit manipulation does not give.
    let r = select(x == f32::INFINITY, x, r);
    let r = select(x == 0.0, f32::NEG_INFINITY, r);
    select((x < 0.0) | x.is_nan(), f32::NAN, r)
}

/// ln(1 + x), to 1.5 ULP: ln of u = 1 + x, corrected by the rounding of u
/// (Goldberg's form).
#[inline(always)]
pub fn ln_1p(x: f32) -> f32 {
    let u = 1.0 + x;
    let corrected = ln(u) - ((u - 1.0) - x) / u;
    // u = 1: ln(1 + x) = x to f32 precision; u = inf (x = inf): the
    // correction is NaN.
    let r = select(u == 1.0, x, corrected);
    select(u == f32::INFINITY, u, r)
}

/// ln(1 + x) for x in [0, 1] (NaN kept): u = 1 + x lies in [1, 2], so the
/// reduction is one halving above √2 and no exponent bits or edge cases
/// are needed; the rounding of u is corrected as in [`ln_1p`].
#[inline(always)]
pub fn ln_1p_unit(x: f32) -> f32 {
    let u = 1.0 + x;
    let high = u > std::f32::consts::SQRT_2;
    let f = select(high, 0.5 * u, u) - 1.0;
    ln_reduced(f, select(high, 1.0, 0.0), (x - (u - 1.0)) / u)
}

/// 1/(1 + e^−x) from e^−|x|, so nothing overflows.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp(-x.abs());
    select(x >= 0.0, 1.0, e) / (1.0 + e)
}

/// σ'(x) = e^−|x|/(1 + e^−|x|)².
#[inline(always)]
pub fn sigmoid_grad(x: f32) -> f32 {
    let e = exp(-x.abs());
    let d = 1.0 + e;
    e / (d * d)
}

/// ln(1 + e^x) = max(x, 0) + ln(1 + e^−|x|).
#[inline(always)]
pub fn softplus(x: f32) -> f32 {
    x.max(0.0) + ln_1p_unit(exp(-x.abs()))
}

/// tanh x = sign(x)·(−expm1(−2|x|))/(2 + expm1(−2|x|)).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let m = expm1_to_80(-2.0 * x.abs());
    (-m / (2.0 + m)).copysign(x)
}

/// ln cosh(√q) / q for q = e² in [0, 1]: a degree-6 polynomial
/// (Chebyshev fit; the function's nearest singularity is at q = −π²/4).
const LOG_COSH_SMALL: [f32; 7] = [
    0.5,
    -0.08333299,
    0.022216562,
    -0.006710383,
    0.0020772424,
    -0.0005561332,
    8.654029e-05,
];
/// ln(1 + z)/z for z in [0, e^−2].
const LN_1P_TAIL: [f32; 5] = [1.0, -0.49999592, 0.3330877, -0.24475719, 0.15287286];
/// e^r for |r| ≤ ½ln 2, to 1.1e-7 relative.
const EXP_REDUCED: [f32; 6] = [
    1.0000001,
    1.0,
    0.4999887,
    0.16666415,
    0.04191753,
    0.008375129,
];

/// ln cosh e to 2.5 ULP, with no division and no ln: below |e| = 1 a
/// polynomial in e² times e² (no cancellation at small e), above it
/// |e| − ln 2 + ln(1 + z) with z = e^−2|e| ≤ e^−2 from short polynomials
/// (z needs only about 1e-6 relative: it is below a third of the sum).
/// inf at ±inf, NaN for NaN, as the GPU's.
#[inline(always)]
pub fn log_cosh(e: f32) -> f32 {
    let a = e.abs();
    let q = a * a;
    let small = q * poly(q, &LOG_COSH_SMALL);
    // −2|e| held above −87 (NaN too, whose result comes from a − ln 2),
    // so that 2^n below is a normal number; e^−87 is nothing beside a.
    let (n, r) = reduce(select(a < 43.5, -2.0 * a, -87.0));
    let z = poly(r, &EXP_REDUCED) * pow2i(n);
    let large = poly(z, &LN_1P_TAIL).mul_add(z, a - std::f32::consts::LN_2);
    select(a < 1.0, small, large)
}

/// c₀ + c₁x + … by Horner's rule, one fused multiply-add a step.
#[inline(always)]
fn poly<const N: usize>(x: f32, c: &[f32; N]) -> f32 {
    let mut y = c[N - 1];
    for &c in c[..N - 1].iter().rev() {
        y = y.mul_add(x, c);
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units of the f32 spacing at the f64 value (subnormal
    /// spacing below the normal range).
    fn ulps(got: f32, want: f64) -> f64 {
        if got.is_nan() || want.is_nan() {
            return if got.is_nan() && want.is_nan() {
                0.0
            } else {
                f64::INFINITY
            };
        }
        if want.is_infinite() || (want.abs() > f32::MAX as f64) {
            // Beyond f32's range: inf, or f32::MAX within the rounding.
            return if got.is_infinite() && got.signum() as f64 == want.signum() {
                0.0
            } else if (got as f64 - want).abs() <= f32::MAX as f64 * 6e-8 {
                0.5
            } else {
                f64::INFINITY
            };
        }
        let w = want as f32;
        let spacing = if w == 0.0 || w.abs() < f32::MIN_POSITIVE {
            f32::from_bits(1) as f64
        } else {
            let b = w.abs().to_bits();
            (f32::from_bits(b + 1) - f32::from_bits(b)) as f64
        };
        (got as f64 - want).abs() / spacing
    }

    /// Every `step`-th f32 bit pattern (both signs) and the specials.
    fn sweep(step: u64, f: impl Fn(f32) -> f32, g: impl Fn(f64) -> f64, max_ulps: f64, name: &str) {
        let mut worst = (0.0, 0.0f32);
        let mut bits: u64 = 0;
        while bits <= u32::MAX as u64 {
            let x = f32::from_bits(bits as u32);
            let e = ulps(f(x), g(x as f64));
            if e > worst.0 {
                worst = (e, x);
            }
            bits += step;
        }
        for x in [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
        ] {
            let e = ulps(f(x), g(x as f64));
            if e > worst.0 {
                worst = (e, x);
            }
        }
        eprintln!("{name}: worst {:.2} ULP at {:e}", worst.0, worst.1);
        assert!(
            worst.0 <= max_ulps,
            "{name}: {} ULP at {:e} ({} vs {})",
            worst.0,
            worst.1,
            f(worst.1),
            g(worst.1 as f64)
        );
    }

    fn softplus64(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    /// Each function's bound on a sweep of every `step`-th bit pattern,
    /// one thread per function.
    fn all(step: u64) {
        std::thread::scope(|s| {
            s.spawn(|| sweep(step, exp, f64::exp, 1.0, "exp"));
            s.spawn(|| sweep(step, expm1, f64::exp_m1, 1.5, "expm1"));
            s.spawn(|| sweep(step, ln, f64::ln, 1.0, "ln"));
            s.spawn(|| sweep(step, ln_1p, f64::ln_1p, 1.5, "ln_1p"));
            let sigmoid64 = |x: f64| 1.0 / (1.0 + (-x).exp());
            s.spawn(move || sweep(step, sigmoid, sigmoid64, 2.5, "sigmoid"));
            s.spawn(|| sweep(step, softplus, softplus64, 2.0, "softplus"));
            s.spawn(|| sweep(step, tanh, f64::tanh, 3.0, "tanh"));
            let log_cosh64 = crate::cpu::common::log_cosh;
            s.spawn(move || sweep(step, log_cosh, log_cosh64, 2.5, "log_cosh"));
            // ln_1p_unit takes [0, 1] (and NaN) only.
            let unit = |x: f32| select(x.abs() <= 1.0, x.abs(), 0.5);
            let unit_ln = move |x: f32| ln_1p_unit(unit(x));
            let unit64 = move |x: f64| (unit(x as f32) as f64).ln_1p();
            s.spawn(move || sweep(step, unit_ln, unit64, 1.5, "ln_1p_unit"));
        });
    }

    #[test]
    fn within_the_stated_ulps_on_a_sweep() {
        all(1009);
    }

    /// About 600 million values per function.
    #[test]
    #[ignore = "dense; run in release (cargo test --release -- --ignored)"]
    fn within_the_stated_ulps_on_every_seventh_f32() {
        all(7);
    }
}
