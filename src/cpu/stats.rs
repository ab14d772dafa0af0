//! f64 twin of `shaders/stats.wgsl`.

use crate::ops::gradient::{clip_coefficient, GradStats};

/// ‖g‖, max |g|, NaN/inf counts and the vanishing share, in f64 (where g²
/// of |g| ≤ 1e30 cannot overflow).
pub fn grad_stats(g: &[f32], vanish_eps: f32) -> GradStats {
    let (mut ssq, mut max) = (0.0f64, 0.0f64);
    let (mut nan, mut inf, mut small) = (0u64, 0u64, 0u64);
    for &v in g {
        if v.is_nan() {
            nan += 1;
        } else if v.is_infinite() {
            inf += 1;
        } else {
            let a = (v as f64).abs();
            ssq += a * a;
            max = max.max(a);
            small += (v.abs() < vanish_eps) as u64;
        }
    }
    GradStats::from_parts(ssq.sqrt(), max, nan, inf, small, g.len() as u64)
}

/// Clamp to [−c, c], NaN kept.
pub fn clip_value(g: &[f32], c: f32) -> Vec<f32> {
    g.iter().map(|&v| clamp(v, c)).collect()
}

/// v clamped to [−c, c], NaN kept.
pub(crate) fn clamp(v: f32, c: f32) -> f32 {
    if v.is_nan() {
        v
    } else {
        v.clamp(-c, c)
    }
}

/// One global norm over all tensors, then each scaled by
/// min(1, c/(‖g‖ + 1e-6)); returns the norm before clipping.
pub fn clip_norm(tensors: &mut [Vec<f32>], max_norm: f32) -> f64 {
    let all: Vec<f32> = tensors.iter().flatten().copied().collect();
    let norm = grad_stats(&all, 0.0).l2_norm;
    for t in tensors.iter_mut() {
        scale_by_norm(t, norm, max_norm);
    }
    norm
}

/// Scales `g` in place by min(1, c/(norm + 1e-6)), for a norm already known.
pub fn scale_by_norm(g: &mut [f32], norm: f64, max_norm: f32) {
    let coef = clip_coefficient(norm, max_norm);
    for v in g.iter_mut() {
        *v = (*v as f64 * coef) as f32;
    }
}
