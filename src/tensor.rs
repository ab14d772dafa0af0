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
