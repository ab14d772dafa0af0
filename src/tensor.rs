//! Tensors resident on the engine's device (or in host memory for the CPU
//! backend), so several operations can run without copying through the host.

/// A 1-D f32 tensor owned by one [`crate::Engine`]: a device buffer on the GPU,
/// a `Vec` on the CPU. Made by [`crate::Engine::upload`], read back by
/// [`crate::Engine::read`].
#[derive(Debug)]
pub struct Tensor {
    pub(crate) data: TensorData,
    pub(crate) len: usize,
}

#[derive(Debug)]
pub(crate) enum TensorData {
    Cpu(Vec<f32>),
    Gpu(wgpu::Buffer),
}

impl Tensor {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Class indices (u32) owned by one [`crate::Engine`], the resident target
/// of cross-entropy and zero-one on resident logits. Made by
/// [`crate::Engine::upload_classes`].
#[derive(Debug)]
pub struct ClassTensor {
    pub(crate) data: ClassData,
    pub(crate) len: usize,
}

#[derive(Debug)]
pub(crate) enum ClassData {
    Cpu(Vec<u32>),
    Gpu(wgpu::Buffer),
}

impl ClassTensor {
    /// Number of class indices (rows).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no indices.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The target of a row loss on resident logits
/// ([`crate::Engine::row_loss_tensor`]).
#[derive(Debug, Clone, Copy)]
pub enum TensorTarget<'a> {
    /// None (entropy).
    None,
    /// One distribution per row, as many values as the logits.
    Values(&'a Tensor),
    /// One class index per row.
    Classes(&'a ClassTensor),
}
