//! The penalty of the regularised objective (seed eq. 1).

use crate::error::{invalid, Result};
use crate::ops::loss::Term;

/// Ω(θ) scaled by λ: the objective is empirical risk + λ·Ω(θ).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Regularizer {
    /// λ·Σ|θᵢ|
    L1(f32),
    /// λ·Σθᵢ² (Keras' convention: no ½)
    L2(f32),
}

impl Regularizer {
    /// λ
    pub fn lambda(self) -> f32 {
        match self {
            Regularizer::L1(l) | Regularizer::L2(l) => l,
        }
    }

    /// λ must be finite and ≥ 0.
    pub fn validate(self) -> Result<()> {
        let l = self.lambda();
        if !(l >= 0.0 && l.is_finite()) {
            return Err(invalid!(
                "regularisation strength λ must be finite and >= 0, got {l:?}"
            ));
        }
        Ok(())
    }

    /// The term whose sum with a zero target is Ω: mae gives Σ|θ|, mse
    /// gives Σθ².
    pub(crate) fn term(self) -> Term {
        match self {
            Regularizer::L1(_) => Term::Mae,
            Regularizer::L2(_) => Term::Mse,
        }
    }

    /// Ω(θ) in f64 (the reference).
    pub fn penalty_f64(self, theta: &[f32]) -> f64 {
        theta
            .iter()
            .map(|&v| {
                let v = v as f64;
                match self {
                    Regularizer::L1(_) => v.abs(),
                    Regularizer::L2(_) => v * v,
                }
            })
            .sum()
    }
}
