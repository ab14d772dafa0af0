//! The engine's operations on resident tensors: data stays on the device
//! between calls and only what is asked for comes back.

use super::host::gradient;
use super::{check_upstream, nonempty, Inner};
use crate::cpu;
use crate::error::{invalid, Result};
use crate::gpu::memory::Buffer;
use crate::gpu::Want;
use crate::ops::activation::{Activation, Pass};
use crate::ops::dtype::Float;
use crate::ops::gradient::{Clip, GradStats};
use crate::ops::input::{LossInput, LossOptions, Target, TargetKind};
use crate::ops::loss::Loss;
use crate::ops::reduction::{LossValue, Reduction};
use crate::tensor::{Element, Tensor, TensorData, TensorTarget};
use crate::Engine;

fn mixed() -> crate::Error {
    invalid!("tensors of different engines were mixed")
}

impl Engine {
    /// Copies `data` to the engine's device (or keeps it in host memory on
    /// the CPU backend) as an n×1 tensor, for operations that run in place.
    /// f16 and bf16 values stay 2 bytes each (the loss kernels widen them
    /// as they read).
    pub fn upload<F: Float + Element>(&self, data: &[F]) -> Result<Tensor<F>> {
        self.upload_as(data, 1)
    }

    /// Copies n×m row-major scores (logits, distributions) to the device
    /// as an n×m tensor, the input of the row losses.
    pub fn upload_rows<F: Float + Element>(&self, data: &[F], cols: usize) -> Result<Tensor<F>> {
        self.upload_as(data, cols)
    }

    /// Copies class indices to the device: one per row of the logits they
    /// label, the class target of [`Engine::loss_tensor`].
    pub fn upload_classes(&self, classes: &[u32]) -> Result<Tensor<u32>> {
        nonempty("the class indices", classes)?;
        self.upload_as(classes, 1)
    }

    fn upload_as<T: Element>(&self, data: &[T], cols: usize) -> Result<Tensor<T>> {
        nonempty("the tensor", data)?;
        if cols == 0 || !data.len().is_multiple_of(cols) {
            return Err(invalid!(
                "{} values are not rows of {cols} columns",
                data.len()
            ));
        }
        let rows = data.len() / cols;
        let data = self.dispatch(
            |g| Ok(TensorData::Gpu(g.upload_resident(data)?)),
            || Ok(TensorData::Cpu(data.to_vec())),
        )?;
        Ok(Tensor::new(data, rows, cols))
    }

    /// A tensor over an existing buffer of this engine's device (one a model
    /// already computes into), without a copy, as n×1 values
    /// ([`Tensor::into_rows`] makes them n×m). The buffer needs STORAGE
    /// usage (and COPY_SRC to be read back) and at least `len` values
    /// rounded up to a whole vec4 (16 bytes).
    pub fn tensor_from_buffer(&self, buffer: wgpu::Buffer, len: usize) -> Result<Tensor> {
        if !matches!(self.inner, Inner::Gpu(_)) {
            return Err(invalid!("a wgpu buffer needs a GPU engine"));
        }
        if len == 0 {
            return Err(invalid!("the tensor is empty"));
        }
        if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(invalid!("the buffer lacks STORAGE usage"));
        }
        let need = (len.div_ceil(4) * 16) as u64;
        if buffer.size() < need {
            return Err(invalid!(
                "a buffer of {} bytes is too small for {len} values ({need} bytes: whole vec4s)",
                buffer.size()
            ));
        }
        Ok(Tensor::new(
            TensorData::Gpu(Buffer::foreign(buffer)),
            len,
            1,
        ))
    }

    /// The values of a tensor, row-major, in its own type.
    pub fn read<T: Element>(&self, tensor: &Tensor<T>) -> Result<Vec<T>> {
        match (&self.inner, &tensor.data) {
            (Inner::Gpu(g), TensorData::Gpu(b)) => g.read_resident(b, tensor.len()),
            (_, TensorData::Cpu(v)) => Ok(v.clone()),
            (Inner::Cpu, TensorData::Gpu(_)) => Err(invalid!(
                "this tensor lives on a GPU engine, not this CPU one"
            )),
        }
    }

    /// An activation pass on a resident tensor, leaving the result resident
    /// in the same shape: f(x), f'(x), or upstream ⊙ f'(x) for
    /// [`Pass::Backward`].
    pub fn activation_tensor<F: Float + Element>(
        &self,
        act: &Activation,
        pass: Pass,
        x: &Tensor<F>,
        upstream: Option<&Tensor<F>>,
    ) -> Result<Tensor> {
        self.activation_tensor_as(act, pass, x, upstream)
    }

    /// [`Engine::activation_tensor`] with the result stored as `O` (2 bytes
    /// a value for a half type, rounded to nearest even from f32 by the
    /// kernel): a bf16 layer stays bf16 on the device.
    pub fn activation_tensor_as<F: Float + Element, O: Float + Element>(
        &self,
        act: &Activation,
        pass: Pass,
        x: &Tensor<F>,
        upstream: Option<&Tensor<F>>,
    ) -> Result<Tensor<O>> {
        act.validate()?;
        if pass == Pass::Backward && upstream.is_none() {
            return Err(invalid!("the backward pass needs an upstream gradient"));
        }
        check_upstream(x.len(), upstream.map(Tensor::len))?;
        let len = x.len();
        let data = match (&self.inner, &x.data, upstream.map(|u| &u.data)) {
            (Inner::Gpu(g), TensorData::Gpu(xb), None | Some(TensorData::Gpu(_))) => {
                let ub = match upstream.map(|u| &u.data) {
                    Some(TensorData::Gpu(b)) => Some(b),
                    _ => None,
                };
                let dtypes = (F::DTYPE, O::DTYPE);
                TensorData::Gpu(g.activation_resident(act, pass, (xb, ub), dtypes, len)?)
            }
            (_, TensorData::Cpu(xv), None) => {
                TensorData::Cpu(cpu::parallel::activation(act, pass, xv, None))
            }
            (_, TensorData::Cpu(xv), Some(TensorData::Cpu(uv))) => {
                TensorData::Cpu(cpu::parallel::activation(act, pass, xv, Some(uv)))
            }
            _ => return Err(mixed()),
        };
        Ok(Tensor::new(data, x.rows, x.cols))
    }

    /// A loss on a resident prediction — n×1 values for a pointwise loss,
    /// n×m logits or distributions for a row loss — and a resident target
    /// (`&Tensor` of values, `&Tensor<u32>` of class indices, or
    /// [`TensorTarget::None`]); the value comes back to the host, as
    /// [`Engine::loss`] gives it for the same values.
    pub fn loss_tensor<'t, F: Float + Element>(
        &self,
        loss: &Loss,
        pred: &Tensor<F>,
        target: impl Into<TensorTarget<'t, F>>,
        reduction: Reduction,
    ) -> Result<LossValue> {
        self.loss_tensor_as(loss, pred, target, reduction)
    }

    /// [`Engine::loss_tensor`] with the per-sample values (reduction
    /// `none`) as `O`, rounded to nearest even from f32.
    pub fn loss_tensor_as<'t, F: Float + Element, O: Float + Element>(
        &self,
        loss: &Loss,
        pred: &Tensor<F>,
        target: impl Into<TensorTarget<'t, F>>,
        reduction: Reduction,
    ) -> Result<LossValue<O>> {
        let (value, _) = self.resident_loss(
            loss,
            pred,
            target.into(),
            (Default::default(), reduction),
            Want::VALUE,
        )?;
        Ok(value)
    }

    /// [`Engine::loss_tensor`] with the loss's [`LossOptions`] (an ignore
    /// index, label smoothing, a z-loss, class weights, kl-div's log forms,
    /// pos_weight), the value alone: an evaluation step's loss over resident
    /// logits with padding rows labelled −100 left out. Per-sample values
    /// (reduction `none`) come back as f32.
    ///
    /// ```
    /// use lossgpu::{Engine, Loss, LossOptions, Reduction};
    ///
    /// let engine = Engine::new();
    /// let logits = engine.upload_rows(&[2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0], 3)?;
    /// let labels = engine.upload_classes(&[0, -100i32 as u32])?;
    /// let options = LossOptions { ignore_index: Some(-100), ..Default::default() };
    /// let ce = Loss::CrossEntropy;
    /// let value = engine.loss_tensor_with(&ce, &logits, &labels, options, Reduction::Mean)?;
    /// let first_row = engine.loss_tensor(&ce, &engine.upload_rows(&[2.0f32, 0.5, -1.0], 3)?,
    ///     &engine.upload_classes(&[0])?, Reduction::Mean)?;
    /// assert_eq!(value.scalar(), first_row.scalar()); // the −100 row is left out
    /// # Ok::<(), lossgpu::Error>(())
    /// ```
    pub fn loss_tensor_with<'t, F: Float + Element>(
        &self,
        loss: &Loss,
        pred: &Tensor<F>,
        target: impl Into<TensorTarget<'t, F>>,
        options: LossOptions,
        reduction: Reduction,
    ) -> Result<LossValue> {
        let how = (options, reduction);
        let (value, _) = self.resident_loss(loss, pred, target.into(), how, Want::VALUE)?;
        Ok(value)
    }

    /// The gradient of [`Engine::loss_tensor`] with respect to the
    /// prediction, as a new resident f32 tensor of its shape.
    pub fn loss_grad_tensor<'t, F: Float + Element>(
        &self,
        loss: &Loss,
        pred: &Tensor<F>,
        target: impl Into<TensorTarget<'t, F>>,
        reduction: Reduction,
    ) -> Result<Tensor> {
        self.loss_grad_tensor_as(loss, pred, target, reduction)
    }

    /// [`Engine::loss_grad_tensor`] stored as `O` (2 bytes a value for a
    /// half type, rounded to nearest even from f32 by the kernel).
    pub fn loss_grad_tensor_as<'t, F: Float + Element, O: Float + Element>(
        &self,
        loss: &Loss,
        pred: &Tensor<F>,
        target: impl Into<TensorTarget<'t, F>>,
        reduction: Reduction,
    ) -> Result<Tensor<O>> {
        let (_, grad) = self.resident_loss(
            loss,
            pred,
            target.into(),
            (Default::default(), reduction),
            Want::GRAD,
        )?;
        gradient(grad)
    }

    /// The value of [`Engine::loss_tensor`] and the resident gradient of
    /// [`Engine::loss_grad_tensor`] from one set of passes.
    pub fn loss_and_grad_tensor<'t, F: Float + Element>(
        &self,
        loss: &Loss,
        pred: &Tensor<F>,
        target: impl Into<TensorTarget<'t, F>>,
        reduction: Reduction,
    ) -> Result<(LossValue, Tensor)> {
        self.loss_and_grad_tensor_as(loss, pred, target, reduction)
    }

    /// [`Engine::loss_and_grad_tensor`] with the loss's [`LossOptions`]
    /// (as [`Engine::loss_and_grad_in_place_with`] takes them), the
    /// gradient a new tensor of pred's type.
    pub fn loss_and_grad_tensor_with<'t, F: Float + Element>(
        &self,
        loss: &Loss,
        pred: &Tensor<F>,
        target: impl Into<TensorTarget<'t, F>>,
        options: LossOptions,
        reduction: Reduction,
    ) -> Result<(LossValue<F>, Tensor<F>)> {
        let how = (options, reduction);
        let (value, grad) = self.resident_loss(loss, pred, target.into(), how, Want::BOTH)?;
        Ok((value, gradient(grad)?))
    }

    /// [`Engine::loss_and_grad_tensor`] with the gradient and any
    /// per-sample values stored as `O`.
    pub fn loss_and_grad_tensor_as<'t, F: Float + Element, O: Float + Element>(
        &self,
        loss: &Loss,
        pred: &Tensor<F>,
        target: impl Into<TensorTarget<'t, F>>,
        reduction: Reduction,
    ) -> Result<(LossValue<O>, Tensor<O>)> {
        let (value, grad) = self.resident_loss(
            loss,
            pred,
            target.into(),
            (Default::default(), reduction),
            Want::BOTH,
        )?;
        Ok((value, gradient(grad)?))
    }

    /// The value of [`Engine::loss_and_grad_tensor`], with the gradient
    /// written over `pred` itself (in pred's type, rounded to nearest even
    /// for halves): the logits are consumed, and the call holds no second
    /// tensor of their size, so the peak device memory of a training step's
    /// loss is the logits alone (Liger Kernel's trick). Each value is read
    /// before it is overwritten: the row losses by a pass before the
    /// gradient's, the pointwise losses by a checking reduction. When an
    /// input is invalid (a class index ≥ m, a value outside its domain) the
    /// gradient is not written and `pred` keeps its values, which the error
    /// names. On the CPU backend the gradient replaces the tensor's values.
    ///
    /// ```
    /// use lossgpu::{Engine, Loss, Reduction};
    ///
    /// let engine = Engine::new();
    /// let mut logits = engine.upload_rows(&[2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0], 3)?;
    /// let labels = engine.upload_classes(&[0, 2])?;
    /// let value =
    ///     engine.loss_and_grad_in_place(&Loss::CrossEntropy, &mut logits, &labels, Reduction::Mean)?;
    /// assert!(value.scalar().unwrap() > 0.0);
    /// let grad = engine.read(&logits)?; // softmax − one-hot, / rows
    /// assert!((grad.iter().take(3).sum::<f32>()).abs() < 1e-6);
    /// # Ok::<(), lossgpu::Error>(())
    /// ```
    pub fn loss_and_grad_in_place<'t, F: Float + Element>(
        &self,
        loss: &Loss,
        pred: &mut Tensor<F>,
        target: impl Into<TensorTarget<'t, F>>,
        reduction: Reduction,
    ) -> Result<LossValue<F>> {
        self.loss_and_grad_in_place_with(loss, pred, target, LossOptions::default(), reduction)
    }

    /// [`Engine::loss_and_grad_in_place`] with the loss's options (an
    /// ignore index, label smoothing, a z-loss, class weights, kl-div's log
    /// forms, pos_weight: [`LossOptions`], as [`LossInput`] takes them), as
    /// a language model's step needs: padding rows labelled −100 left out.
    /// With class options the labels are read back to the host once (N
    /// values), for the mean's denominator.
    ///
    /// ```
    /// use lossgpu::{Engine, Loss, LossOptions, Reduction};
    ///
    /// let engine = Engine::new();
    /// let mut logits = engine.upload_rows(&[2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0], 3)?;
    /// let labels = engine.upload_classes(&[0, -100i32 as u32])?;
    /// let options = LossOptions { ignore_index: Some(-100), label_smoothing: 0.1, ..Default::default() };
    /// let ce = Loss::CrossEntropy;
    /// engine.loss_and_grad_in_place_with(&ce, &mut logits, &labels, options, Reduction::Mean)?;
    /// assert!(engine.read(&logits)?[3..].iter().all(|&g| g == 0.0)); // the padding row
    /// # Ok::<(), lossgpu::Error>(())
    /// ```
    pub fn loss_and_grad_in_place_with<'t, F: Float + Element>(
        &self,
        loss: &Loss,
        pred: &mut Tensor<F>,
        target: impl Into<TensorTarget<'t, F>>,
        options: LossOptions,
        reduction: Reduction,
    ) -> Result<LossValue<F>> {
        let how = (options, reduction);
        if let TensorData::Cpu(_) = pred.data {
            let (value, grad) =
                self.resident_loss::<F, F>(loss, pred, target.into(), how, Want::BOTH)?;
            pred.data = gradient(grad)?.data;
            return Ok(value);
        }
        let want = Want::BOTH.in_place();
        Ok(self
            .resident_loss::<F, F>(loss, pred, target.into(), how, want)?
            .0)
    }

    fn resident_loss<F: Float + Element, O: Float + Element>(
        &self,
        loss: &Loss,
        pred: &Tensor<F>,
        target: TensorTarget<F>,
        (options, reduction): (LossOptions, Reduction),
        want: Want,
    ) -> Result<(LossValue<O>, Option<Tensor<O>>)> {
        let (kind, target_len) = match target {
            TensorTarget::None => (TargetKind::None, 0),
            TensorTarget::Values(t) => (TargetKind::Values, t.len()),
            TensorTarget::Classes(c) => (TargetKind::Classes, c.len()),
        };
        let lengths = options.lengths(pred.len(), pred.cols, (kind, target_len), None);
        let call = loss.check(lengths, reduction)?;
        let shaped = |data| Tensor::new(data, pred.rows, pred.cols);
        match (&self.inner, &pred.data) {
            (Inner::Gpu(g), TensorData::Gpu(p)) => {
                let t = match target {
                    TensorTarget::None => None,
                    TensorTarget::Values(Tensor {
                        data: TensorData::Gpu(b),
                        ..
                    })
                    | TensorTarget::Classes(Tensor {
                        data: TensorData::Gpu(b),
                        ..
                    }) => Some(b),
                    _ => return Err(mixed()),
                };
                // The options' weights and denominator read the labels.
                let labels = match (options.any(), target) {
                    (true, TensorTarget::Classes(c)) => match &c.data {
                        TensorData::Gpu(b) => g.read_resident::<u32>(b, c.len())?,
                        TensorData::Cpu(v) => v.clone(),
                    },
                    _ => Vec::new(),
                };
                let view = options.any().then(|| LossInput::<F> {
                    pred: &[],
                    cols: pred.cols,
                    target: match target {
                        TensorTarget::Classes(_) => Target::Classes(&labels),
                        TensorTarget::Values(_) => Target::Values(&[]),
                        TensorTarget::None => Target::None,
                    },
                    weights: None,
                    options,
                });
                let (value, grad) = g.loss_on_device(&call, (p, t), view.as_ref(), want)?;
                Ok((value, grad.map(|b| shaped(TensorData::Gpu(b)))))
            }
            (_, TensorData::Cpu(p)) => {
                let target: Target<F> = match target {
                    TensorTarget::None => Target::None,
                    TensorTarget::Values(Tensor {
                        data: TensorData::Cpu(v),
                        ..
                    }) => Target::Values(v),
                    TensorTarget::Classes(Tensor {
                        data: TensorData::Cpu(c),
                        ..
                    }) => Target::Classes(c),
                    _ => return Err(mixed()),
                };
                let input = LossInput {
                    pred: p,
                    cols: pred.cols,
                    target,
                    weights: None,
                    options,
                };
                if !want.grad {
                    return Ok((cpu::parallel::loss_value(&call, &input)?, None));
                }
                let (value, grad) = cpu::parallel::loss_and_grad(&call, &input, want.value)?;
                Ok((value, Some(shaped(TensorData::Cpu(grad)))))
            }
            _ => Err(mixed()),
        }
    }

    /// Clips several tensors (one per layer) in place with one global rule:
    /// by value, or by the L2 norm over all of them (PyTorch's
    /// clip_grad_norm_: scale by min(1, c/(‖g‖ + 1e-6))). On the GPU the norm
    /// is computed and applied on the device in one submission, without a
    /// host round trip in between. Tensors of f16 or bf16 stay so: each
    /// value is widened, clipped in f32 and rounded back to nearest even.
    /// Returns the statistics before clipping.
    pub fn clip_tensors<F: Float + Element>(
        &self,
        tensors: &mut [Tensor<F>],
        clip: Clip,
    ) -> Result<GradStats> {
        clip.validate()?;
        if tensors.is_empty() {
            return Err(invalid!("clip: no tensors given"));
        }
        match (&self.inner, tensors.first().map(|t| &t.data)) {
            (Inner::Gpu(g), Some(TensorData::Gpu(_))) => {
                let mut resident = Vec::with_capacity(tensors.len());
                for t in tensors.iter() {
                    match &t.data {
                        TensorData::Gpu(b) => resident.push((b, t.len())),
                        TensorData::Cpu(_) => {
                            return Err(invalid!(
                                "clip: a tensor of a CPU engine was given to a GPU engine"
                            ))
                        }
                    }
                }
                g.grad_stats(&resident, 0.0, Some(clip), F::DTYPE)
            }
            _ => {
                // One norm over all tensors, then each clipped in place.
                let mut all = Vec::with_capacity(tensors.len());
                for t in tensors.iter() {
                    match &t.data {
                        TensorData::Cpu(v) => all.push(&v[..]),
                        TensorData::Gpu(_) => {
                            return Err(invalid!("clip: a GPU tensor was given to the CPU engine"))
                        }
                    }
                }
                let stats = cpu::parallel::grad_stats_of(&all, 0.0);
                for t in tensors.iter_mut() {
                    if let TensorData::Cpu(v) = &mut t.data {
                        cpu::parallel::clip_in_place(v, clip, stats.l2_norm);
                    }
                }
                Ok(stats)
            }
        }
    }
}
