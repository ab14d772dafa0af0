//! The engine's operations on host slices: each validates its input once,
//! then runs on the GPU or the CPU as the engine decides.

use super::{check_upstream, nonempty};
use crate::auto::Work;
use crate::cpu;
use crate::error::{invalid, Error, Result};
use crate::gpu::Want;
use crate::ops::activation::{Activation, Pass};
use crate::ops::dtype::Float;
use crate::ops::gradient::{Clip, GradStats, HealthReport, HealthThresholds};
use crate::ops::input::{Call, Form, LossInput};
use crate::ops::loss::{Loss, Term};
use crate::ops::metrics::{MetricSums, RegressionMetrics};
use crate::ops::reduction::{LossSums, LossValue, Reduction};
use crate::ops::regularizer::Regularizer;
use crate::Engine;

/// The op family a calibrating engine times a loss call under.
fn work(call: &Call) -> Work {
    match call.shape.form {
        Form::Pointwise(_) => Work::Loss,
        Form::Rows(_) => Work::RowLoss,
    }
}

/// The gradient a GPU evaluation was asked for.
pub(super) fn gradient<T>(grad: Option<T>) -> Result<T> {
    grad.ok_or_else(|| Error::Gpu("no gradient came back".into()))
}

impl Engine {
    /// f(x), f'(x) or upstream ⊙ f'(x) for [`Pass::Backward`] (the pass
    /// of [`Engine::activation`], [`Engine::activation_derivative`] or
    /// [`Engine::activation_backward`]) with the output stored as `O`: f32,
    /// or a half type, rounded to nearest even from the f32 result (on the
    /// GPU by the kernel, which then writes 2 bytes a value). `O` is
    /// usually the input's type: `engine.activation_as::<_, bf16>(…)`.
    ///
    /// ```
    /// use lossgpu::{bf16, Activation, Engine, Float, Pass};
    ///
    /// let x: Vec<bf16> = [-1.5f32, 0.25, 3.0].iter().map(|&v| bf16::from_f32(v)).collect();
    /// let engine = Engine::cpu();
    /// let y: Vec<bf16> = engine.activation_as(&Activation::Sigmoid, Pass::Forward, &x, None)?;
    /// // The f32 result, rounded.
    /// let y32 = engine.activation(&Activation::Sigmoid, &x)?;
    /// assert!(y.iter().zip(&y32).all(|(a, &b)| *a == bf16::from_f32(b)));
    /// # Ok::<(), lossgpu::Error>(())
    /// ```
    pub fn activation_as<F: Float, O: Float>(
        &self,
        act: &Activation,
        pass: Pass,
        x: &[F],
        upstream: Option<&[F]>,
    ) -> Result<Vec<O>> {
        act.validate()?;
        nonempty("the input", x)?;
        if pass == Pass::Backward && upstream.is_none() {
            return Err(invalid!("the backward pass needs an upstream gradient"));
        }
        check_upstream(x.len(), upstream.map(<[F]>::len))?;
        self.dispatch_sized(
            (Work::Activation, act.name(), pass.suffix()),
            x.len(),
            |g| g.activation(act, pass, x, upstream),
            || Ok(cpu::parallel::activation(act, pass, x, upstream)),
        )
    }

    /// f(x) elementwise, as f32. `x` may be f32, [`crate::f16`] or
    /// [`crate::bf16`] (widened as read; on the GPU 2 bytes a value).
    pub fn activation<F: Float>(&self, act: &Activation, x: &[F]) -> Result<Vec<f32>> {
        self.activation_as(act, Pass::Forward, x, None)
    }

    /// f'(x) elementwise, as f32.
    pub fn activation_derivative<F: Float>(&self, act: &Activation, x: &[F]) -> Result<Vec<f32>> {
        self.activation_as(act, Pass::Derivative, x, None)
    }

    /// upstream ⊙ f'(x): the backward pass through the activation, as f32
    /// (x and upstream of one float type).
    pub fn activation_backward<F: Float>(
        &self,
        act: &Activation,
        x: &[F],
        upstream: &[F],
    ) -> Result<Vec<f32>> {
        self.activation_as(act, Pass::Backward, x, Some(upstream))
    }

    /// d L/d α of prelu: Σ upstream·x over the elements with x ≤ 0 (x and
    /// upstream f32, f16 or bf16).
    pub fn prelu_alpha_grad<F: Float>(&self, x: &[F], upstream: &[F]) -> Result<f64> {
        nonempty("the input", x)?;
        check_upstream(x.len(), Some(upstream.len()))?;
        self.dispatch_sized(
            (Work::Loss, "prelu dα", ""),
            x.len(),
            |g| g.sum_of_terms(Term::PreluDalpha, x, Some(upstream)),
            || Ok(cpu::prelu_alpha_grad(x, upstream)),
        )
    }

    /// The loss with the given reduction: a scalar for `mean`/`sum`, the
    /// per-sample wᵢ·lᵢ for `none`. Input errors (lengths, labels outside
    /// their domain, class indices ≥ m, negative weights) name the first
    /// offender. The input may hold f32, [`crate::f16`] or [`crate::bf16`]
    /// values (SPEC §1c): half values are widened as they are read (on the
    /// GPU the kernels read 2 bytes a value), and the sums are as for f32.
    pub fn loss<F: Float>(
        &self,
        loss: &Loss,
        input: &LossInput<F>,
        reduction: Reduction,
    ) -> Result<LossValue> {
        self.loss_as(loss, input, reduction)
    }

    /// [`Engine::loss`] with the per-sample values (reduction `none`)
    /// stored as `O`, rounded to nearest even from the f32 values (on the
    /// GPU by the kernel); a scalar is f64 whatever `O`.
    pub fn loss_as<F: Float, O: Float>(
        &self,
        loss: &Loss,
        input: &LossInput<F>,
        reduction: Reduction,
    ) -> Result<LossValue<O>> {
        let call = loss.check(input.lengths(), reduction)?;
        self.dispatch_sized(
            (work(&call), loss.name(), ""),
            input.pred.len(),
            |g| Ok(g.loss(&call, input, Want::VALUE)?.0),
            || cpu::parallel::loss_value(&call, input),
        )
    }

    /// The gradient of the reduced loss with respect to every prediction
    /// (same length as `pred`): wᵢ·(d lᵢ/d pᵢ)/Σw for `mean`, wᵢ·d lᵢ/d pᵢ
    /// for `sum` and `none`; rmse uses its own chain rule.
    pub fn loss_grad<F: Float>(
        &self,
        loss: &Loss,
        input: &LossInput<F>,
        reduction: Reduction,
    ) -> Result<Vec<f32>> {
        self.loss_grad_as(loss, input, reduction)
    }

    /// [`Engine::loss_grad`] stored as `O`: the f32 gradient rounded to
    /// nearest even (on the GPU by the kernel, which writes 2 bytes a value
    /// for a half `O`).
    pub fn loss_grad_as<F: Float, O: Float>(
        &self,
        loss: &Loss,
        input: &LossInput<F>,
        reduction: Reduction,
    ) -> Result<Vec<O>> {
        let call = loss.check(input.lengths(), reduction)?;
        self.dispatch_sized(
            (Work::LossGrad, loss.name(), ""),
            input.pred.len(),
            |g| gradient(g.loss(&call, input, Want::GRAD)?.1),
            || cpu::parallel::loss_grad(&call, input),
        )
    }

    /// The value of [`Engine::loss`] and the gradient of
    /// [`Engine::loss_grad`] from one set of passes over the data: what a
    /// training step needs, for the price of about one call.
    pub fn loss_and_grad<F: Float>(
        &self,
        loss: &Loss,
        input: &LossInput<F>,
        reduction: Reduction,
    ) -> Result<(LossValue, Vec<f32>)> {
        self.loss_and_grad_as(loss, input, reduction)
    }

    /// [`Engine::loss_and_grad`] with the gradient and any per-sample
    /// values stored as `O` (rounded to nearest even from f32).
    ///
    /// ```
    /// use lossgpu::{bf16, Engine, Float, Loss, LossInput, Reduction};
    ///
    /// let logits: Vec<bf16> = [2.0f32, -1.0, 0.5].iter().map(|&v| bf16::from_f32(v)).collect();
    /// let labels: Vec<bf16> = [1.0f32, 0.0, 1.0].iter().map(|&v| bf16::from_f32(v)).collect();
    /// let input = LossInput::new(&logits, &labels);
    /// let engine = Engine::cpu();
    /// let (value, grad) =
    ///     engine.loss_and_grad_as::<_, bf16>(&Loss::BceLogits, &input, Reduction::Mean)?;
    /// let (value32, grad32) = engine.loss_and_grad(&Loss::BceLogits, &input, Reduction::Mean)?;
    /// assert_eq!(value.scalar(), value32.scalar());
    /// assert!(grad.iter().zip(&grad32).all(|(g, &h)| *g == bf16::from_f32(h)));
    /// # Ok::<(), lossgpu::Error>(())
    /// ```
    pub fn loss_and_grad_as<F: Float, O: Float>(
        &self,
        loss: &Loss,
        input: &LossInput<F>,
        reduction: Reduction,
    ) -> Result<(LossValue<O>, Vec<O>)> {
        let call = loss.check(input.lengths(), reduction)?;
        self.dispatch_sized(
            (Work::LossGrad, loss.name(), " and value"),
            input.pred.len(),
            |g| {
                let (value, grad) = g.loss(&call, input, Want::BOTH)?;
                Ok((value, gradient(grad)?))
            },
            || cpu::parallel::loss_and_grad(&call, input, true),
        )
    }

    /// Many losses at once: on the GPU one submission and one readback for
    /// all of them, so per-layer or per-task losses do not each pay a round
    /// trip. Values as [`Engine::loss`] gives them, in order.
    pub fn loss_batch<F: Float>(
        &self,
        items: &[(Loss, LossInput<F>)],
        reduction: Reduction,
    ) -> Result<Vec<LossValue>> {
        let calls = items
            .iter()
            .map(|(loss, input)| Ok((loss.check(input.lengths(), reduction)?, *input)))
            .collect::<Result<Vec<_>>>()?;
        let total = items.iter().map(|(_, input)| input.pred.len()).sum();
        self.dispatch_sized(
            (Work::Batch, "loss_batch", ""),
            total,
            |g| g.loss_batch(&calls),
            || cpu::parallel::loss_batch(&calls, total),
        )
    }

    /// The regularised objective: loss (`mean` or `sum`) + λ·Ω(θ).
    pub fn objective<F: Float>(
        &self,
        loss: &Loss,
        input: &LossInput<F>,
        reduction: Reduction,
        theta: &[f32],
        reg: Regularizer,
    ) -> Result<f64> {
        reg.validate()?;
        if reduction == Reduction::None {
            return Err(invalid!(
                "the objective needs reduction mean or sum, not none"
            ));
        }
        let risk = self
            .loss(loss, input, reduction)?
            .scalar()
            .ok_or_else(|| invalid!("the objective needs a scalar loss"))?;
        let penalty = if theta.is_empty() {
            0.0
        } else {
            self.dispatch_sized(
                (Work::Loss, "penalty", ""),
                theta.len(),
                |g| g.sum_of_terms(reg.term(), theta, None),
                || Ok(reg.penalty_f64(theta)),
            )?
        };
        Ok(risk + reg.lambda() as f64 * penalty)
    }

    /// mse, rmse, mae, mape, smape, huber (δ), log-cosh and quantile (γ) of
    /// 1-D predictions and targets, optionally weighted, in one pass that
    /// reads each input once.
    pub fn regression_metrics<F: Float>(
        &self,
        input: &LossInput<F>,
        delta: f32,
        gamma: f32,
    ) -> Result<RegressionMetrics> {
        self.metric_sums(input, delta, gamma)?.finish()
    }

    /// The sums behind [`Engine::regression_metrics`] for one part of the
    /// data; parts [`merge`](MetricSums::merge), then
    /// [`finish`](MetricSums::finish).
    pub fn metric_sums<F: Float>(
        &self,
        input: &LossInput<F>,
        delta: f32,
        gamma: f32,
    ) -> Result<MetricSums> {
        crate::ops::metrics::metric_losses(delta, gamma)?;
        let call = Loss::Mse.check(input.lengths(), Reduction::Mean)?;
        let rows = call.shape.rows;
        let (sums, weight_sum) = self.dispatch_sized(
            (Work::Metrics, "regression_metrics", ""),
            rows,
            |g| g.metric_sums(&call, input, delta, gamma),
            || cpu::parallel::metric_sums(&call, input, delta, gamma),
        )?;
        Ok(MetricSums {
            sums,
            weight_sum,
            count: rows as u64,
        })
    }

    /// Σwᵢlᵢ, Σwᵢ and the count of a loss over one part of its data, the
    /// state of a reduction that sees its data in parts: parts
    /// [`merge`](LossSums::merge), and [`LossSums::finish`] gives the mean
    /// or sum that [`Engine::loss`] gives for all of them at once.
    pub fn loss_sums<F: Float>(&self, loss: &Loss, input: &LossInput<F>) -> Result<LossSums> {
        let call = loss.check(input.lengths(), Reduction::Mean)?;
        let (sum, weight_sum) = self.dispatch_sized(
            (work(&call), loss.name(), ""),
            input.pred.len(),
            |g| g.loss_sums(&call, input),
            || cpu::parallel::loss_sums(&call, input),
        )?;
        Ok(LossSums {
            sum,
            weight_sum,
            count: call.shape.rows as u64,
        })
    }

    /// SPEC §3 `grad-stats`: ‖g‖₂, max |g|, NaN and ±inf counts, the share of
    /// |g| < `vanish_eps`, n — one pass, over f32, f16 or bf16 values.
    pub fn grad_stats<F: Float>(&self, g: &[F], vanish_eps: f32) -> Result<GradStats> {
        nonempty("the gradient", g)?;
        crate::ops::gradient::check_vanish_eps(vanish_eps)?;
        self.dispatch_sized(
            (Work::GradStats, "grad_stats", ""),
            g.len(),
            |gpu| {
                let t = gpu.upload_resident(g)?;
                gpu.grad_stats(&[(&t, g.len())], vanish_eps, None, F::DTYPE)
            },
            || Ok(cpu::parallel::grad_stats(g, vanish_eps)),
        )
    }

    /// Clips a copy of `g` by value or by its L2 norm; returns the clipped
    /// values, in g's own type (half values rounded to nearest even from
    /// the f32 product, as PyTorch's in-place clip keeps the dtype), and the
    /// statistics before clipping.
    pub fn clip<F: Float + crate::Element>(
        &self,
        g: &[F],
        clip: Clip,
    ) -> Result<(Vec<F>, GradStats)> {
        nonempty("the gradient", g)?;
        clip.validate()?;
        let mut t = [self.upload(g)?];
        let stats = self.clip_tensors(&mut t, clip)?;
        Ok((self.read(&t[0])?, stats))
    }

    /// Per-layer gradient health (layers in network order, input first):
    /// each layer's statistics, the ratio of its norm to the next layer's,
    /// and a verdict by the documented [`HealthThresholds`].
    pub fn health_report<F: Float>(
        &self,
        layers: &[&[F]],
        thresholds: &HealthThresholds,
    ) -> Result<HealthReport> {
        if layers.is_empty() {
            return Err(invalid!("health report: no layers given"));
        }
        let stats = layers
            .iter()
            .map(|g| self.grad_stats(g, thresholds.vanish_eps))
            .collect::<Result<Vec<_>>>()?;
        Ok(HealthReport::judge(stats, thresholds))
    }
}
