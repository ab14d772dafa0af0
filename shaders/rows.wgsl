// Losses over the rows of n×m scores: one workgroup per row, so m may be
// anything up to the binding size. OP is the row id (ROW_* in ops/loss.rs).
// row_loss writes each row's loss (and logsumexp, for the gradient); the
// reduction over rows is then the identity op of loss.wgsl. Bindings may start
// below the chunk (offset alignment), so each carries a skip in elements.

override OP: u32;                  // a ROW_* id
override HAS_WEIGHTS: bool = false;
override PRED_DOMAIN: u32 = 0u;      // a DOMAIN_* id: [0, 1] for kl-div, entropy
override TARGET_DOMAIN: u32 = 0u;    // of a target distribution; ≤ 0 for a log target
override HAS_IGNORE: bool = false;    // rows whose class is params.ignore are left out
// Cross-entropy's class weights, label smoothing or z-loss: the row's loss
// is Σ_j c_j·(lse − p_j) + λκ·lse² (ce_coef), with class weights read from
// class_weights where HAS_CLASS_WEIGHTS. nll reads its class weight too.
override CE_OPTIONS: bool = false;
override HAS_CLASS_WEIGHTS: bool = false;
override PRED_DTYPE: u32 = 0u;       // a DTYPE_* id of pred, a real target, weights
override TARGET_DTYPE: u32 = 0u;
override WEIGHTS_DTYPE: u32 = 0u;
override OUT_DTYPE: u32 = 0u;        // a DTYPE_* id of row_grad's output
// row_grad over the logits in place: pred is read from `out` (same words,
// same skip), and nothing is written once an earlier pass flagged an input.
override IN_PLACE: bool = false;

struct RowParams {
    rows: u32,
    cols: u32,
    base_row: u32,   // global index of the chunk's first row
    pred_skip: u32,
    target_skip: u32,
    weight_skip: u32,
    out_skip: u32,
    lse_skip: u32,
    coef_mode: u32,
    scale: f32,
    ignore: u32,     // the ignored class target (HAS_IGNORE)
    smoothing: f32,  // label smoothing ε (CE_OPTIONS)
    z_loss: f32,     // z-loss λ (CE_OPTIONS)
    margin: f32,     // multi-margin's M
    power: u32,      // multi-margin's P, 1 or 2
    parts: u32,      // row_partials and row_merge: parts a row is cut into
}

@group(0) @binding(0) var<uniform> params: RowParams;
// pred, a real target and the weights as raw words (unpack1 in common.wgsl);
// class indices as they are.
@group(0) @binding(1) var<storage, read> pred: array<u32>;
@group(0) @binding(2) var<storage, read> tgt: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<u32>;
// f32 words, but row_grad's halves of OUT_DTYPE (two values a word).
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
// (max, log1p of the rest, Σ_j c_j with CE_OPTIONS or Σ_j dh_j^P for
// multi-margin, 0)
@group(0) @binding(5) var<storage, read_write> lse: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> errors: array<atomic<u32>, 4>;
@group(0) @binding(7) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> class_weights: array<f32>;


var<workgroup> arg_val: array<f32, WG>;
var<workgroup> arg_idx: array<u32, WG>;

fn target_f32(i: u32) -> f32 {
    let k = params.target_skip + i;
    return unpack1(tgt[raw_index(k, TARGET_DTYPE)], k, TARGET_DTYPE);
}

// Value k of the bound pred (of `out` in place: an invocation reads only the
// words it writes).
fn pred_at(k: u32) -> f32 {
    if (IN_PLACE) {
        return unpack1(out[raw_index(k, PRED_DTYPE)], k, PRED_DTYPE);
    }
    return unpack1(pred[raw_index(k, PRED_DTYPE)], k, PRED_DTYPE);
}

// multi-margin's score of the target class, kept in lse.w so the gradient
// never reads another value of the row (which in place may be written).
fn target_score(row: u32, p0: u32, m: u32) -> f32 {
    if (OP != ROW_MULTI_MARGIN) {
        return 0.0;
    }
    return pred_at(p0 + min(tgt[params.target_skip + row], m - 1u));
}

fn weight_at(k: u32) -> f32 {
    return unpack1(weights[raw_index(k, WEIGHTS_DTYPE)], k, WEIGHTS_DTYPE);
}

// Whether the row's class target is the ignored one: its loss and gradient
// are 0 and its target is not checked (its weight, from the host, is 0).
fn ignored(row: u32) -> bool {
    return HAS_IGNORE && tgt[params.target_skip + row] == params.ignore;
}

fn class_weight(j: u32) -> f32 {
    if (HAS_CLASS_WEIGHTS) {
        return class_weights[j];
    }
    return 1.0;
}

// c_j of cross-entropy with options at column j of a row (element idx of
// the chunk): w_j·((1−ε)·t_j + ε/m), t_j = [j = class] for class targets.
fn ce_coef(row: u32, idx: u32, j: u32, m: u32) -> f32 {
    var tj: f32;
    if (OP == ROW_CE_CLASS) {
        tj = select(0.0, 1.0, j == tgt[params.target_skip + row]);
    } else {
        tj = target_f32(idx);
    }
    return class_weight(j) * ((1.0 - params.smoothing) * tj + params.smoothing / f32(m));
}

// κ, the z-loss's scale: the class weight of a class target, else 1.
fn ce_kappa(row: u32) -> f32 {
    if (OP == ROW_CE_CLASS) {
        return class_weight(tgt[params.target_skip + row]);
    }
    return 1.0;
}

// multi-margin's (h^P, d h^P/d p_j) at column j ≠ c of a row: h = max(0,
// M − p_c + p_j), 0 at and below the kink; NaN where z is.
fn margin_term(z: f32) -> vec2<f32> {
    let h = select(0.0, z, z > 0.0);
    var r = vec2<f32>(h, select(0.0, 1.0, z > 0.0));
    if (params.power == 2u) {
        r = vec2<f32>(h * h, 2.0 * h);
    }
    return select(r, vec2<f32>(z), is_nan(z));
}

fn ce_options() -> bool {
    return CE_OPTIONS && (OP == ROW_CE_CLASS || OP == ROW_CE_PROB);
}

fn class_op() -> bool {
    return OP == ROW_ARGMAX || OP == ROW_CE_CLASS || OP == ROW_NLL || OP == ROW_MULTI_MARGIN;
}

// kl-div's t from its target: e^target for a log target (DOMAIN_NON_POSITIVE),
// clamped so that a bad value cannot overflow and −inf gives 0. NaN stays.
fn kl_t(raw: f32) -> f32 {
    if (TARGET_DOMAIN == DOMAIN_NON_POSITIVE) {
        return select(exp(clamp(raw, -104.0, 0.0)), raw, is_nan(raw));
    }
    return raw;
}

// kl-div's term t·(log t − log q) of one column, 0 where t = 0 (unless q is
// NaN). A log target or a log prediction (pred of DOMAIN_NON_POSITIVE) is
// used as its own log.
fn kl_term(raw: f32, q: f32) -> f32 {
    let t = kl_t(raw);
    var t_log_t = xlogy(t, t);
    if (TARGET_DOMAIN == DOMAIN_NON_POSITIVE) {
        t_log_t = t * raw;
    }
    var t_log_q = xlogy(t, q);
    if (PRED_DOMAIN == DOMAIN_NON_POSITIVE) {
        t_log_q = t * q;
    }
    return select(t_log_t - t_log_q, 0.0, t == 0.0 && !is_nan(q));
}

// Each row is scanned in strided parts: columns j0, j0 + step, ... A
// workgroup per row (row_loss) gives each invocation a part and combines
// them in trees; a thread per row (row_loss_small, for narrow rows) scans
// it all with j0 = 0, step = 1. The scans are shared by both.

struct ArgMax {
    val: f32,
    idx: u32,
}

// First maximum of the part (NO_INDEX for an empty part).
fn scan_max(p0: u32, m: u32, j0: u32, step: u32) -> ArgMax {
    var best = ArgMax(-3.4028235e38, NO_INDEX);
    for (var j = j0; j < m; j = j + step) {
        let v = pred_at(p0 + j);
        if (best.idx == NO_INDEX || v > best.val) {
            best = ArgMax(v, j);
        }
    }
    return best;
}

// 1 for NaN, else 0; flags the rows of values outside their domains (the
// row, not the element, whose index n·m may pass 2^32: the host finds the
// column).
fn check_at(row: u32, m: u32, j: u32, v: f32) -> f32 {
    let global_row = params.base_row + row;
    if (!in_domain(v, PRED_DOMAIN)) {
        atomicMin(&errors[0], global_row);
    }
    if (TARGET_DOMAIN != DOMAIN_ANY && !in_domain(target_f32(row * m + j), TARGET_DOMAIN)) {
        atomicMin(&errors[1], global_row);
    }
    return select(0.0, 1.0, is_nan(v));
}

// NaN count of the part (columns before `end`), with check_at's flags.
fn scan_check(row: u32, p0: u32, m: u32, j0: u32, step: u32, end: u32) -> f32 {
    var nans = 0.0;
    for (var j = j0; j < end; j = j + step) {
        nans = nans + check_at(row, m, j, pred_at(p0 + j));
    }
    return nans;
}

// Σ e^(p_j − mx) over the part, without the argmax column (whose term is 1).
fn scan_rest(p0: u32, m: u32, j0: u32, step: u32, mx: f32, am: u32) -> f32 {
    var s = 0.0;
    for (var j = j0; j < m; j = j + step) {
        if (j != am) {
            s = s + exp(min(pred_at(p0 + j) - mx, 0.0));
        }
    }
    return s;
}

// The part's share of the loss for the ops that sum over columns:
// probability-target cross-entropy, kl-div, entropy and cross-entropy with
// options (then with Σ c_j in y; Σ t_j for probability targets), over the
// columns before `end`. Each cross-entropy term lse − p_j is
// (mx − p_j) + rest: a confident row's small loss keeps its digits instead
// of cancelling against lse.
fn scan_terms(row: u32, p0: u32, m: u32, j0: u32, step: u32, end: u32, mx: f32, rest: f32) -> vec2<f32> {
    var acc = 0.0;
    var coefs = 0.0;
    for (var j = j0; j < end; j = j + step) {
        let q = pred_at(p0 + j);
        if (ce_options()) {
            let c = ce_coef(row, row * m + j, j, m);
            acc = acc + select(c * ((mx - q) + rest), 0.0, c == 0.0);
            coefs = coefs + c;
        } else if (OP == ROW_MULTI_MARGIN) {
            let c = tgt[params.target_skip + row];
            if (j != c) {
                let h = margin_term(params.margin - pred_at(p0 + min(c, m - 1u)) + q);
                acc = acc + h.x;
                coefs = coefs + h.y;
            }
        } else if (OP == ROW_CE_PROB) {
            let t = target_f32(row * m + j);
            acc = acc + select(t * ((mx - q) + rest), 0.0, t == 0.0);
            coefs = coefs + t;
        } else if (OP == ROW_KL) {
            acc = acc + kl_term(target_f32(row * m + j), q);
        } else {
            acc = acc - xlogy(q, q);
        }
    }
    return vec2<f32>(acc, coefs);
}

// Whether the op sums terms over the columns (scan_terms).
fn sums_columns() -> bool {
    return OP == ROW_CE_PROB || OP == ROW_KL || OP == ROW_ENTROPY || OP == ROW_MULTI_MARGIN
        || ce_options();
}

fn uses_max() -> bool {
    return OP == ROW_ARGMAX || OP == ROW_CE_CLASS || OP == ROW_CE_PROB;
}

// The row's loss from its reductions; writes it and (max, log1p(rest), Σc).
fn finish_row(row: u32, p0: u32, m: u32, best: ArgMax, rest: f32, terms: vec2<f32>, has_nan: bool) {
    var loss = terms.x;
    if (ce_options()) {
        let lse_row = best.val + rest;
        loss = loss + params.z_loss * ce_kappa(row) * lse_row * lse_row;
    }
    // nll reads only p_c: a NaN elsewhere in its row does not count.
    var nan_row = has_nan && OP != ROW_NLL;
    if (class_op()) {
        let c = tgt[params.target_skip + row];
        if (ignored(row)) {
            loss = 0.0;
            nan_row = false;
        } else if (c >= m) {
            atomicMin(&errors[1], params.base_row + row);
            loss = nan_f32();
        } else if (OP == ROW_ARGMAX) {
            loss = select(1.0, 0.0, best.idx == c);
        } else if (OP == ROW_NLL) {
            loss = -class_weight(c) * pred_at(p0 + c);
        } else if (OP == ROW_MULTI_MARGIN) {
            loss = class_weight(c) * terms.x / f32(m);
        } else if (!ce_options()) {
            loss = (best.val - pred_at(p0 + c)) + rest;
        }
    }
    out[params.out_skip + row] = bitcast<u32>(select(loss, nan_f32(), nan_row));
    lse[params.lse_skip / 4u + row] = vec4<f32>(best.val, rest, terms.y, target_score(row, p0, m));
}

// Workgroup tree for (max, first index): the larger value wins, ties go to
// the smaller index.
fn wg_argmax(mine: ArgMax, lid: u32) -> ArgMax {
    arg_val[lid] = mine.val;
    arg_idx[lid] = mine.idx;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let ov = arg_val[lid + s];
            let oj = arg_idx[lid + s];
            let j = arg_idx[lid];
            if (oj != NO_INDEX && (j == NO_INDEX || ov > arg_val[lid] || (ov == arg_val[lid] && oj < j))) {
                arg_val[lid] = ov;
                arg_idx[lid] = oj;
            }
        }
        workgroupBarrier();
    }
    let r = ArgMax(arg_val[0], arg_idx[0]);
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(256)
fn row_loss(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params.rows) {
        return;
    }
    let m = params.cols;
    let p0 = params.pred_skip + row * m;
    let lid = lane.lid;
    var has_nan = false;
    if (OP != ROW_NLL) {
        has_nan = wg_sum(vec2<f32>(scan_check(row, p0, m, lid, WG, m), 0.0), lane).x > 0.0;
    }
    var best = ArgMax(0.0, NO_INDEX);
    var rest = 0.0;
    var terms = vec2<f32>(0.0);
    if (uses_max()) {
        best = wg_argmax(scan_max(p0, m, lid, WG), lid);
        if (OP != ROW_ARGMAX) {
            rest = log1p_any(wg_sum(vec2<f32>(scan_rest(p0, m, lid, WG, best.val, best.idx), 0.0), lane).x);
        }
    }
    if (sums_columns()) {
        terms = wg_sum(scan_terms(row, p0, m, lid, WG, m, best.val, rest), lane);
    }
    if (lid == 0u) {
        finish_row(row, p0, m, best, rest, terms, has_nan);
    }
}

// A wide row cut into params.parts parts, a workgroup each (grid parts ×
// rows), so that a few rows still fill the device: each part's first
// maximum, Σ e^(p − max) without it, NaN count (with the domain checks),
// and its scan_terms against its own maximum (rest 0), as eight words at
// out[8·(row·parts + part)].
@compute @workgroup_size(256)
fn row_partials(
    @builtin(workgroup_id) wid: vec3<u32>,
    lane: Lane,
) {
    let part = wid.x;
    let row = wid.y;
    if (row >= params.rows) {
        return;
    }
    let m = params.cols;
    let len = (m + params.parts - 1u) / params.parts;
    let j0 = part * len;
    let j1 = min(m, j0 + len);
    let p0 = params.pred_skip + row * m;
    let lid = lane.lid;
    // The scans of row_loss, over the part's columns j0..j1.
    let bad = wg_sum(vec2<f32>(scan_check(row, p0, m, j0 + lid, WG, j1), 0.0), lane).x;
    let best = wg_argmax(scan_max(p0, j1, j0 + lid, WG), lid);
    var s = 0.0;
    if (uses_max() && OP != ROW_ARGMAX) {
        s = scan_rest(p0, j1, j0 + lid, WG, best.val, best.idx);
    }
    let rest = wg_sum(vec2<f32>(s, 0.0), lane).x;
    var terms = vec2<f32>(0.0);
    if (sums_columns()) {
        terms = wg_sum(scan_terms(row, p0, m, j0 + lid, WG, j1, best.val, 0.0), lane);
    }
    if (lid == 0u) {
        let at = params.out_skip + 8u * (row * params.parts + part);
        out[at] = bitcast<u32>(best.val);
        out[at + 1u] = best.idx;
        out[at + 2u] = bitcast<u32>(rest);
        out[at + 3u] = bitcast<u32>(bad);
        out[at + 4u] = bitcast<u32>(terms.x);
        out[at + 5u] = bitcast<u32>(terms.y);
        out[at + 6u] = 0u;
        out[at + 7u] = 0u;
    }
}

// A thread per row: its parts' statistics (bound as `stats`) merged in
// order, exactly as one workgroup's scan would give them: the first of the
// largest maxima, and the rest relative to it (each other part's
// 1 + rest scaled by e^(its max − the max), exponents ≤ 0), and the terms:
// a part's Σ c_j (m_p − p_j) moves to the row's maximum by (mx − m_p)·Σ c_j
// and to lse by rest·Σ c_j, each added term ≥ 0 (the ops without a
// maximum just add); then the row's loss and logsumexp as row_loss writes
// them.
@compute @workgroup_size(256)
fn row_merge(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_id(wid, nwg, lid);
    if (row >= params.rows) {
        return;
    }
    var best = ArgMax(-3.4028235e38, NO_INDEX);
    var top = 0u;
    var nans = 0.0;
    for (var q = 0u; q < params.parts; q = q + 1u) {
        let s = stats[2u * (row * params.parts + q)];
        let idx = bitcast<u32>(s.y);
        nans = nans + s.w;
        if (idx != NO_INDEX && (best.idx == NO_INDEX || s.x > best.val)) {
            best = ArgMax(s.x, idx);
            top = q;
        }
    }
    var rest = 0.0;
    if (uses_max() && OP != ROW_ARGMAX) {
        for (var q = 0u; q < params.parts; q = q + 1u) {
            let s = stats[2u * (row * params.parts + q)];
            if (q == top) {
                rest = rest + s.z;
            } else if (bitcast<u32>(s.y) != NO_INDEX) {
                rest = rest + (1.0 + s.z) * exp(min(s.x - best.val, 0.0));
            }
        }
        rest = log1p_any(rest);
    }
    var terms = vec2<f32>(0.0);
    if (sums_columns()) {
        for (var q = 0u; q < params.parts; q = q + 1u) {
            let s = stats[2u * (row * params.parts + q)];
            let part = stats[2u * (row * params.parts + q) + 1u].xy;
            var acc = part.x;
            if (uses_max() && bitcast<u32>(s.y) != NO_INDEX) {
                acc = acc + select((best.val - s.x) * part.y, 0.0, part.y == 0.0);
            }
            terms = terms + vec2<f32>(acc, part.y);
        }
        if (uses_max()) {
            terms.x = terms.x + select(rest * terms.y, 0.0, terms.y == 0.0);
        }
    }
    let p0 = params.pred_skip + row * params.cols;
    finish_row(row, p0, params.cols, best, rest, terms, nans > 0.0);
}

struct Online {
    best: ArgMax,
    rest: f32,   // log1p(Σ_{j≠argmax} e^(p_j − max))
    nans: f32,
}

// A narrow row in one pass (a thread per row): check_at's flags and NaN
// count, and for the ops that use it the first maximum with the rest of the
// logsumexp kept online: a new maximum moves the old one into the sum,
// rescaled by e^(old − new) ≤ 1, so no exponent is ever positive.
fn scan_online(row: u32, p0: u32, m: u32) -> Online {
    if (!uses_max()) {
        return Online(ArgMax(0.0, NO_INDEX), 0.0, scan_check(row, p0, m, 0u, 1u, m));
    }
    var best = ArgMax(-3.4028235e38, NO_INDEX);
    var rest = 0.0;
    var nans = 0.0;
    for (var j = 0u; j < m; j = j + 1u) {
        let v = pred_at(p0 + j);
        nans = nans + check_at(row, m, j, v);
        if (best.idx == NO_INDEX) {
            best = ArgMax(v, j);
        } else if (v > best.val) {
            if (OP != ROW_ARGMAX) {
                rest = (rest + 1.0) * exp(min(best.val - v, 0.0));
            }
            best = ArgMax(v, j);
        } else if (OP != ROW_ARGMAX) {
            rest = rest + exp(min(v - best.val, 0.0));
        }
    }
    return Online(best, log1p_any(rest), nans);
}

@compute @workgroup_size(256)
fn row_loss_small(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_id(wid, nwg, lid);
    if (row >= params.rows) {
        return;
    }
    let m = params.cols;
    let p0 = params.pred_skip + row * m;
    let o = scan_online(row, p0, m);
    let best = o.best;
    let rest = o.rest;
    let has_nan = o.nans > 0.0;
    var terms = vec2<f32>(0.0);
    if (sums_columns()) {
        terms = scan_terms(row, p0, m, 0u, 1u, m, best.val, rest);
    }
    finish_row(row, p0, m, best, rest, terms, has_nan);
}

// e^(p − lse) as e^((p − max) − log1p(rest)) from l = (max, log1p(rest)):
// p − lse in one step would round lse to the precision of the max.
fn softmax_from(p: f32, l: vec4<f32>) -> f32 {
    return exp(min((p - l.x) - l.y, 0.0));
}

// The weighted, scaled derivative at column j of a row (element idx of the
// chunk) whose (max, log1p(rest), Σc) is l. Cross-entropy with options:
// softmax_j·(Σc + 2λκ·lse) − c_j.
fn grad_at(row: u32, idx: u32, j: u32, p: f32, l: vec4<f32>) -> f32 {
    if (ignored(row)) {
        return 0.0;
    }
    var d: f32;
    if (ce_options()) {
        let lse_row = l.x + l.y;
        let scale = l.z + 2.0 * params.z_loss * ce_kappa(row) * lse_row;
        d = softmax_from(p, l) * scale - ce_coef(row, idx, j, params.cols);
    } else {
    switch OP {
        case ROW_ARGMAX: { d = select(0.0, nan_f32(), is_nan(p)); }
        case ROW_CE_CLASS: {
            let c = tgt[params.target_skip + row];
            d = softmax_from(p, l) - select(0.0, 1.0, j == c);
        }
        case ROW_CE_PROB: { d = softmax_from(p, l) - target_f32(idx); }
        case ROW_KL: {
            let t = kl_t(target_f32(idx));
            var dq = select(-t / p, -inf_f32(), p == 0.0);
            if (PRED_DOMAIN == DOMAIN_NON_POSITIVE) {
                dq = -t;
            }
            d = select(dq, keep_nan(p, 0.0), t == 0.0);
        }
        case ROW_ENTROPY: { d = -(log_safe(p) + 1.0); }
        case ROW_NLL: {
            let c = tgt[params.target_skip + row];
            d = -select(0.0, class_weight(c), j == c);
        }
        case ROW_MULTI_MARGIN: {
            let c = tgt[params.target_skip + row];
            let m = params.cols;
            let h = margin_term(params.margin - l.w + p);
            d = class_weight(c) / f32(m) * select(h.y, -l.z, j == c);
        }
        default: { d = nan_f32(); }
    }
    }
    var w = 1.0;
    if (HAS_WEIGHTS) {
        w = weight_at(params.weight_skip + row);
    }
    // nll's derivative is a gather: it reads no value, NaN or not.
    let dp = select(keep_nan(p, d), d, OP == ROW_NLL);
    return weighted(w * grad_factor(params.coef_mode, params.scale, stats[0]), dp);
}

@compute @workgroup_size(256)
fn row_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = params.rows * params.cols;
    let t = flat_id(wid, nwg, lid);
    if (IN_PLACE && flagged()) {
        return; // the logits stay as they were, to be named in the error
    }
    if (OUT_DTYPE == DTYPE_F32) {
        if (t < n) {
            out[params.out_skip + t] = bitcast<u32>(grad_of(t));
        }
        return;
    }
    // A thread per word of halves: a word may straddle two rows, each with
    // its logsumexp. Chunks start on even values (the skip is even), so no
    // other dispatch owns half of a word.
    let idx = 2u * t;
    if (idx >= n) {
        return;
    }
    var second = 0.0;
    if (idx + 1u < n) {
        second = grad_of(idx + 1u);
    }
    out[params.out_skip / 2u + t] = pack2(grad_of(idx), second, OUT_DTYPE);
}

// Whether an earlier pass found an input outside its domain.
fn flagged() -> bool {
    return atomicLoad(&errors[0]) != NO_INDEX || atomicLoad(&errors[1]) != NO_INDEX
        || atomicLoad(&errors[2]) != NO_INDEX;
}

// The gradient at value idx of the chunk, from its row's logsumexp.
fn grad_of(idx: u32) -> f32 {
    let row = idx / params.cols;
    let l = lse[params.lse_skip / 4u + row];
    return grad_at(row, idx, idx - row * params.cols, pred_at(params.pred_skip + idx), l);
}

// The gradient of narrow rows without a row_loss pass first (used when the
// scale needs no reduction): a thread per row scans it once for its
// logsumexp and checks, then writes its m derivatives.
@compute @workgroup_size(256)
fn row_grad_small(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_id(wid, nwg, lid);
    if (row >= params.rows) {
        return;
    }
    let m = params.cols;
    let p0 = params.pred_skip + row * m;
    let o = scan_online(row, p0, m);
    if (class_op() && tgt[params.target_skip + row] >= m && !ignored(row)) {
        atomicMin(&errors[1], params.base_row + row);
    }
    var coefs = 0.0;
    if (ce_options() || OP == ROW_MULTI_MARGIN) {
        coefs = scan_terms(row, p0, m, 0u, 1u, m, o.best.val, o.rest).y;
    }
    let l = vec4<f32>(o.best.val, o.rest, coefs, target_score(row, p0, m));
    for (var j = 0u; j < m; j = j + 1u) {
        out[params.out_skip + row * m + j] = bitcast<u32>(grad_at(row, row * m + j, j, pred_at(p0 + j), l));
    }
}
