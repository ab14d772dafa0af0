//! f64 twin of `shaders/activation.wgsl`.

use super::common::{propagate_nan, sigmoid, sigmoid_grad, softplus};
use crate::ops::activation::{rrelu_alpha, Activation, Pass};
use crate::ops::dtype::Float;

impl Activation {
    /// The negative-side slope at element `index` (leaky family), as f64.
    fn slope(&self, index: usize) -> f64 {
        match *self {
            Activation::LeakyRelu { alpha } | Activation::Prelu { alpha } => alpha as f64,
            Activation::Rrelu {
                lower,
                upper,
                training,
                seed,
            } => rrelu_alpha(lower, upper, training, seed, index as u32) as f64,
            _ => 0.0,
        }
    }

    /// f(x) at element `index` (the index matters only to rrelu in training).
    pub fn forward_f64(&self, x: f64, index: usize) -> f64 {
        let y = match *self {
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.max(0.0),
            Activation::LeakyRelu { .. } | Activation::Prelu { .. } | Activation::Rrelu { .. } => {
                if x > 0.0 {
                    x
                } else {
                    self.slope(index) * x
                }
            }
            Activation::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha as f64 * x.exp_m1()
                }
            }
            Activation::Swish { beta } => x * sigmoid(beta as f64 * x),
            Activation::Softplus => softplus(x),
        };
        propagate_nan(&[x], y)
    }

    /// f'(x) at element `index`.
    pub fn derivative_f64(&self, x: f64, index: usize) -> f64 {
        let d = match *self {
            Activation::Sigmoid => sigmoid_grad(x),
            // 1 − tanh² cancels where tanh is near ±1; sech² = 4σ'(2x) does not.
            Activation::Tanh => 4.0 * sigmoid_grad(2.0 * x),
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu { .. } | Activation::Prelu { .. } | Activation::Rrelu { .. } => {
                if x > 0.0 {
                    1.0
                } else {
                    self.slope(index)
                }
            }
            Activation::Elu { alpha } => {
                if x > 0.0 {
                    1.0
                } else {
                    alpha as f64 * x.exp()
                }
            }
            Activation::Swish { beta } => {
                let b = beta as f64;
                let s = sigmoid(b * x);
                let f = x * s;
                b * f + s * (1.0 - b * f)
            }
            Activation::Softplus => sigmoid(x),
        };
        propagate_nan(&[x], d)
    }
}

/// The reference pass over a slice: f(x), f'(x) or upstream ⊙ f'(x).
pub fn activation(act: &Activation, pass: Pass, x: &[f32], upstream: Option<&[f32]>) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, &xi)| {
            let x = xi as f64;
            match pass {
                Pass::Forward => act.forward_f64(x, i),
                Pass::Derivative => act.derivative_f64(x, i),
                Pass::Backward => {
                    let u = upstream.map_or(1.0, |u| u[i] as f64);
                    u * act.derivative_f64(x, i)
                }
            }
        })
        .collect()
}

/// Σ upstream·x over x ≤ 0: the gradient of prelu's α.
pub fn prelu_alpha_grad<F: Float>(x: &[F], upstream: &[F]) -> f64 {
    x.iter()
        .zip(upstream)
        .map(|(&x, &u)| {
            let (x, u) = (x.to_f32() as f64, u.to_f32() as f64);
            let v = if x > 0.0 { 0.0 } else { u * x };
            propagate_nan(&[x, u], v)
        })
        .sum()
}
