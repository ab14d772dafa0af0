//! Tensors resident on the engine's device (or in host memory for the CPU
//! backend), so several operations can run without copying through the host.

use crate::error::{invalid, Result};
use crate::gpu::memory::Buffer;

use crate::ops::dtype::{bf16, f16, Float};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u32 {}
    impl Sealed for super::f16 {}
    impl Sealed for super::bf16 {}
}

/// What a tensor holds: f32, f16 or bf16 values (stored as they are, 2
/// bytes a half value), or u32 class indices.
pub trait Element: bytemuck::Pod + Send + Sync + std::fmt::Debug + sealed::Sealed {}
impl Element for f32 {}
impl Element for u32 {}
impl Element for f16 {}
impl Element for bf16 {}

/// An n×m row-major tensor owned by one [`crate::Engine`]: a device buffer on
/// the GPU, a `Vec` on the CPU. `Tensor` holds f32 values (predictions,
/// logits, targets, gradients); `Tensor<u32>` holds class indices, one per
/// row of the logits it labels. A tensor knows its shape: a 1-D upload is
/// n×1, [`crate::Engine::upload_rows`] gives n×m logits, and the row losses
/// read m from it. Made by [`crate::Engine::upload`], read back by
/// [`crate::Engine::read`].
#[derive(Debug)]
pub struct Tensor<T: Element = f32> {
    pub(crate) data: TensorData<T>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
}

/// Class indices resident on an engine's device: `Tensor<u32>`.
pub type ClassTensor = Tensor<u32>;

#[derive(Debug)]
pub(crate) enum TensorData<T> {
    Cpu(Vec<T>),
    Gpu(Buffer),
}

impl<T: Element> Tensor<T> {
    pub(crate) fn new(data: TensorData<T>, rows: usize, cols: usize) -> Self {
        Tensor { data, rows, cols }
    }

    /// Number of values, rows × cols.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (rows, cols): (n, 1) for a 1-D tensor.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The same values seen as rows of `cols` (row-major), without a copy:
    /// a buffer a model wrote its logits into becomes n×m.
    pub fn into_rows(self, cols: usize) -> Result<Self> {
        let len = self.len();
        if cols == 0 || !len.is_multiple_of(cols) {
            return Err(invalid!(
                "a tensor of {len} values cannot be rows of {cols} columns"
            ));
        }
        Ok(Tensor {
            data: self.data,
            rows: len / cols,
            cols,
        })
    }
}

/// The target of a loss on resident tensors ([`crate::Engine::loss_tensor`]).
/// `&Tensor` and `&Tensor<u32>` convert into it, so a call reads
/// `engine.loss_tensor(&loss, &pred, &target, reduction)`.
/// Real targets have the prediction's float type `F`.
#[derive(Debug, Clone, Copy)]
pub enum TensorTarget<'a, F: Float + Element = f32> {
    /// None (entropy).
    None,
    /// Real targets or distributions, as many values as the prediction.
    Values(&'a Tensor<F>),
    /// One class index per row of the prediction.
    Classes(&'a Tensor<u32>),
}

impl<'a, F: Float + Element> From<&'a Tensor<F>> for TensorTarget<'a, F> {
    fn from(t: &'a Tensor<F>) -> Self {
        TensorTarget::Values(t)
    }
}

impl<'a, F: Float + Element> From<&'a Tensor<u32>> for TensorTarget<'a, F> {
    fn from(t: &'a Tensor<u32>) -> Self {
        TensorTarget::Classes(t)
    }
}
