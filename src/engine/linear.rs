//! Fused linear + cross-entropy on the engine (ops/linear.rs has the
//! formulas): validated once, then the GPU or the CPU.

use crate::auto::Work;
use crate::cpu;
use crate::error::Result;
use crate::ops::dtype::Float;
use crate::ops::linear::{LinearGrads, LinearInput};
use crate::ops::reduction::{LossValue, Reduction};
use crate::Engine;

impl Engine {
    /// The cross-entropy of the logits H·Wᵀ + b of a language-model head
    /// ([`LinearInput`] has the formula and options), without ever holding
    /// the N×V logits: the vocabulary is taken a chunk at a time, each
    /// chunk's logits computed by a matrix product and folded into every
    /// row's running logsumexp. Extra memory is one block of rows × chunk
    /// classes and a few values per row.
    ///
    /// ```
    /// use lossgpu::{Engine, LinearInput, Reduction};
    ///
    /// let (n, d, v) = (2, 3, 4);
    /// let hidden = [0.5f32, -1.0, 0.25, 1.0, 0.0, -0.5];
    /// let classifier: Vec<f32> = (0..v * d).map(|i| (i as f32 * 0.37).sin()).collect();
    /// let labels = [3u32, 0];
    /// let input = LinearInput::new(&hidden, &classifier, d, &labels);
    /// let engine = Engine::cpu();
    /// let fused = engine.linear_cross_entropy(&input, Reduction::Mean)?;
    /// // The same as materialising the logits and calling cross-entropy.
    /// let logits: Vec<f32> = (0..n * v)
    ///     .map(|i| (0..d).map(|k| hidden[i / v * d + k] * classifier[i % v * d + k]).sum())
    ///     .collect();
    /// let ce = engine.loss(
    ///     &lossgpu::Loss::CrossEntropy,
    ///     &lossgpu::LossInput::classes(&logits, v, &labels),
    ///     Reduction::Mean,
    /// )?;
    /// assert!((fused.scalar().unwrap() - ce.scalar().unwrap()).abs() < 1e-6);
    /// # Ok::<(), lossgpu::Error>(())
    /// ```
    pub fn linear_cross_entropy<F: Float>(
        &self,
        input: &LinearInput<F>,
        reduction: Reduction,
    ) -> Result<LossValue> {
        let shape = input.check(reduction)?;
        self.dispatch_sized(
            (Work::LinearCe, "linear-ce", ""),
            shape.rows * shape.classes,
            |g| g.linear_ce(input, &shape, false).map(|r| r.value),
            || Ok(cpu::linear::value(input, &shape)),
        )
    }

    /// The value of [`Engine::linear_cross_entropy`] and the gradients of
    /// the reduced loss with respect to H, W and b ([`LinearGrads`]), as
    /// f32. The gradients are those of materialising G, the N×V gradient of
    /// the logits (as [`Engine::loss_grad`] gives it for cross-entropy),
    /// then ∂H = G·W, ∂W = Gᵀ·H, ∂b = Σₙ G[n, ·]; here each chunk's G is
    /// recomputed from its logits instead, and the sums over chunks and rows
    /// run in a fixed order, so the result is the same every run.
    pub fn linear_cross_entropy_and_grad<F: Float>(
        &self,
        input: &LinearInput<F>,
        reduction: Reduction,
    ) -> Result<LinearGrads> {
        self.linear_cross_entropy_and_grad_as(input, reduction)
    }

    /// [`Engine::linear_cross_entropy_and_grad`] with the gradients (and
    /// per-row values) stored as `O`, rounded to nearest even from f32.
    pub fn linear_cross_entropy_and_grad_as<F: Float, O: Float>(
        &self,
        input: &LinearInput<F>,
        reduction: Reduction,
    ) -> Result<LinearGrads<O>> {
        let shape = input.check(reduction)?;
        self.dispatch_sized(
            (Work::LinearCe, "linear-ce", " and grad"),
            shape.rows * shape.classes,
            |g| g.linear_ce(input, &shape, true),
            || Ok(cpu::linear::value_and_grads(input, &shape)),
        )
    }
}
