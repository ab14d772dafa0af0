//! f64 twins of `shaders/common.wgsl`: the stable building blocks.

/// σ(x) from e^{−|x|}: no overflow for any x.
pub fn sigmoid(x: f64) -> f64 {
    let e = (-x.abs()).exp();
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// σ'(x) = e/(1+e)² with e = e^{−|x|}: exact in both tails, where f(1−f)
/// cancels.
pub fn sigmoid_grad(x: f64) -> f64 {
    let e = (-x.abs()).exp();
    e / ((1.0 + e) * (1.0 + e))
}

/// log(1 + e^x) = max(x, 0) + log1p(e^{−|x|}).
pub fn softplus(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// log σ(x) = −softplus(−x).
pub fn log_sigmoid(x: f64) -> f64 {
    -softplus(-x)
}

/// log cosh(e) = |e| + softplus(−2|e|) − log 2 (SPEC §1), never overflowing;
/// below |e| = 1, where that form cancels (even in f64: at e = 1e-6 it keeps
/// only four digits), log1p(2 sinh²(e/2)), the same value without cancellation.
pub fn log_cosh(e: f64) -> f64 {
    let a = e.abs();
    if a < 1.0 {
        (2.0 * (a / 2.0).sinh().powi(2)).ln_1p()
    } else {
        a + softplus(-2.0 * a) - std::f64::consts::LN_2
    }
}

/// sign with sign(0) = 0 (and NaN kept).
pub fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x * 0.0
    }
}

/// x·log(y) with 0·log(anything) = 0, as scipy's xlogy.
pub fn xlogy(x: f64, y: f64) -> f64 {
    if x == 0.0 && !y.is_nan() {
        0.0
    } else {
        x * y.ln()
    }
}

/// NaN in any input makes the result NaN. Rust's `max`/`min` and the
/// comparisons in branchy formulas would otherwise swallow it.
pub fn propagate_nan(inputs: &[f64], value: f64) -> f64 {
    if inputs.iter().any(|v| v.is_nan()) {
        f64::NAN
    } else {
        value
    }
}

/// w·l where a zero weight removes its sample (0·∞ = 0); NaN in l still
/// propagates.
pub fn weighted(w: f64, l: f64) -> f64 {
    if w == 0.0 && !l.is_nan() {
        0.0
    } else {
        w * l
    }
}
