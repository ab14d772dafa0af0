// One loss term l(p, t) and its derivative d l / d p per pointwise op: the
// formulas of the pointwise losses, shared by loss.wgsl (which specialises
// op with its OP override) and metrics.wgsl (which evaluates several ops on
// each element). The TERM_* ids are generated from the Term enum
// (src/ops/loss.rs); TERM_IDENTITY sums row losses, TERM_PRELU_DALPHA is
// prelu's dα term.

const MAPE_EPS: f32 = 1.1920929e-7;
const EXP_MAX: f32 = 88.72283;

// Largest f32 whose product with 2.7182817 still rounds to a finite f32.
const EXP_PRE_MAX: f32 = 1.2518288e38;

// exp(a) that is +inf past the f32 range instead of an undefined overflow.
// Every a <= EXP_MAX has a finite exact exp, so the result is capped at
// f32::MAX there: exp's few-ULP error must not round a finite value to inf.
fn exp_sat(a: f32) -> f32 {
    let finite = min(exp(min(a, EXP_MAX) - 1.0), EXP_PRE_MAX) * 2.7182817;
    return select(finite, inf_f32(), a > EXP_MAX);
}

// x, or 1 where x = 0: a divisor for a branch only taken when x > 0.
fn nonzero(x: f32) -> f32 {
    return select(x, 1.0, x == 0.0);
}

fn loss_term(op: u32, p: f32, t: f32, param: f32) -> f32 {
    let e = t - p;
    let m = t * p;
    var l: f32;
    switch op {
        case TERM_ZERO_ONE: { l = select(0.0, 1.0, m <= 0.0); }
        case TERM_HINGE: { l = max(0.0, 1.0 - m); }
        case TERM_SQUARED_HINGE: {
            let h = max(0.0, 1.0 - m);
            l = h * h;
        }
        case TERM_EXPONENTIAL: { l = exp_sat(-m); }
        case TERM_LOGISTIC: { l = softplus(-m); }
        // param: the positive weight pw (PyTorch's pos_weight; 1 is none).
        case TERM_BCE_LOGITS: { l = param * t * softplus(-p) + (1.0 - t) * softplus(p); }
        case TERM_BCE: {
            let lp = max(log_safe(p), -100.0);
            let lq = max(log_safe(1.0 - p), -100.0);
            l = -(select(t * lp, 0.0, t == 0.0) + select((1.0 - t) * lq, 0.0, t == 1.0));
        }
        case TERM_SQUARED: { l = 0.5 * e * e; }
        case TERM_MSE: { l = e * e; }
        case TERM_MAE: { l = abs(e); }
        case TERM_MAPE: { l = 100.0 * abs(e) / max(abs(t), MAPE_EPS); }
        case TERM_SMAPE: {
            let d = abs(t) + abs(p);
            l = select(200.0 * abs(e) / d, 0.0, d == 0.0);
        }
        case TERM_HUBER: {
            let a = abs(e);
            l = select(param * (a - 0.5 * param), 0.5 * e * e, a <= param);
        }
        case TERM_LOG_COSH: { l = log_cosh(e); }
        case TERM_QUANTILE: { l = select((param - 1.0) * e, param * e, e >= 0.0); }
        case TERM_SMOOTH_L1: {
            // ½·a·(a/β) with a = min(|e|, β): no division by β = 0 and no
            // overflow in the branch select discards.
            let a = abs(e);
            let q = min(a, param);
            l = select(a - 0.5 * param, 0.5 * q * (q / nonzero(param)), a < param);
        }
        case TERM_IDENTITY: { l = p; }
        case TERM_PRELU_DALPHA: { l = select(t * p, 0.0, p > 0.0); }
        default: { l = nan_f32(); }
    }
    return select(l, nan_f32(), is_nan(p) || is_nan(t));
}

fn loss_term_grad(op: u32, p: f32, t: f32, param: f32) -> f32 {
    let e = t - p;
    let m = t * p;
    var g: f32;
    switch op {
        case TERM_ZERO_ONE: { g = 0.0; }
        case TERM_HINGE: { g = select(0.0, -t, m < 1.0); }
        case TERM_SQUARED_HINGE: { g = -2.0 * t * max(0.0, 1.0 - m); }
        case TERM_EXPONENTIAL: { g = -t * exp_sat(-m); }
        case TERM_LOGISTIC: { g = -t * sigmoid(-m); }
        // σ(p) − t, plus (1 − pw)·t·σ(−p): exactly σ(p) − t at pw = 1.
        case TERM_BCE_LOGITS: { g = (sigmoid(p) - t) + (1.0 - param) * t * sigmoid(-p); }
        case TERM_BCE: { g = (p - t) / max(p * (1.0 - p), 1e-12); }
        case TERM_SQUARED: { g = -e; }
        case TERM_MSE: { g = -2.0 * e; }
        case TERM_MAE: { g = -sign0(e); }
        case TERM_MAPE: { g = -100.0 * sign0(e) / max(abs(t), MAPE_EPS); }
        case TERM_SMAPE: {
            let d = abs(t) + abs(p);
            // SPEC's 200·[−sign(e)(|t|+|p|) − |e|·sign(p)]/d², with the
            // bracket simplified to −sign(e)·(|t| + t·sign(p)): no cancellation.
            g = select(-200.0 * sign0(e) * (abs(t) + t * sign0(p)) / (d * d), 0.0, d == 0.0);
        }
        case TERM_HUBER: { g = select(-param * sign0(e), -e, abs(e) <= param); }
        case TERM_LOG_COSH: { g = -tanh_stable(e); }
        case TERM_QUANTILE: { g = select(1.0 - param, -param, e >= 0.0); }
        case TERM_SMOOTH_L1: {
            // −e/β inside, −sign(e) outside: −sign(e)·min(|e|, β)/β.
            g = select(-sign0(e), -sign0(e) * (min(abs(e), param) / nonzero(param)), abs(e) < param);
        }
        case TERM_IDENTITY: { g = 1.0; }
        case TERM_PRELU_DALPHA: { g = select(t, 0.0, p > 0.0); }
        default: { g = nan_f32(); }
    }
    return select(g, nan_f32(), is_nan(p) || is_nan(t));
}

// loss_term on four lanes, each with its param, written out lane by lane: a
// vec4 indexed by a loop variable costs some compilers a trip through memory
// per access.
fn loss_terms4(op: u32, p: vec4<f32>, t: vec4<f32>, param: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        loss_term(op, p.x, t.x, param.x),
        loss_term(op, p.y, t.y, param.y),
        loss_term(op, p.z, t.z, param.z),
        loss_term(op, p.w, t.w, param.w),
    );
}

// Σ weighted(w, l) over four lanes; lanes past n carry w = 0 and l finite.
fn weighted_sum4(w: vec4<f32>, l: vec4<f32>) -> f32 {
    return dot(weighted4(w, l), vec4<f32>(1.0));
}
