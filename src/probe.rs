//! Adapter ceilings for benchmarks, kept off the [`Engine`]'s surface:
//! these measure the adapter rather than compute anything a model needs. A
//! benchmark times them next to the resident operations (same fixed costs:
//! a submission, a wait, a small readback) and reports each operation's
//! time as a fraction of theirs.

use crate::error::{invalid, Result};
use crate::gpu::memory::Buffer;
use crate::gpu::Gpu;
use crate::tensor::{Tensor, TensorData};
use crate::Engine;

/// The ceilings of a GPU engine's adapter.
#[derive(Clone, Copy)]
pub struct Probe<'e> {
    gpu: &'e Gpu,
}

impl std::fmt::Debug for Probe<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Probe({})", self.gpu.info().summary())
    }
}

/// The device buffers of `tensors`, all of a GPU engine.
fn buffers<'t>(tensors: &[&'t Tensor], what: &str) -> Result<Vec<&'t Buffer>> {
    tensors
        .iter()
        .map(|t| match &t.data {
            TensorData::Gpu(b) => Ok(b),
            TensorData::Cpu(_) => Err(invalid!(
                "{what}: a tensor of a CPU engine was given to a GPU engine"
            )),
        })
        .collect()
}

impl<'e> Probe<'e> {
    /// The probes of `engine`'s adapter; a CPU engine returns
    /// [`crate::Error::InvalidInput`].
    pub fn new(engine: &'e Engine) -> Result<Probe<'e>> {
        Ok(Probe {
            gpu: engine.require_gpu("a probe")?,
        })
    }

    /// The adapter's read ceiling: Σ of every value of one or two resident
    /// tensors of equal length, by a minimal kernel that reads each element
    /// once with the structure of the loss reductions (vec4 loads in a
    /// grid-stride loop over at most 1024 workgroups, the workgroup tree,
    /// the same second pass and a 16-byte readback) but a plain f32 sum with
    /// no compensation and no value checks. Time the call and divide by a
    /// resident loss's time on the same tensors: the loss's fraction of
    /// what the adapter can do. The sum itself is returned so the kernel
    /// can be checked (it is only as accurate as a plain f32 sum).
    pub fn read(&self, tensors: &[&Tensor]) -> Result<f64> {
        if tensors.is_empty() || tensors.len() > 2 {
            return Err(invalid!(
                "probe read takes one or two tensors, not {}",
                tensors.len()
            ));
        }
        let n = tensors[0].len();
        if let Some(t) = tensors.iter().find(|t| t.len() != n) {
            return Err(invalid!(
                "probe read: tensors of {n} and {} values; they must be equally long",
                t.len()
            ));
        }
        self.gpu.probe_read(&buffers(tensors, "probe read")?, n)
    }

    /// The adapter's copy ceiling: copies each resident tensor into a new
    /// one with a buffer-to-buffer copy of its n×4 bytes, all in one
    /// submission, and waits until they are done. Time the call. The copies
    /// are returned (as tensors of the engine) so they can be checked. The
    /// tensors' buffers need COPY_SRC usage (those of [`Engine::upload`]
    /// have it).
    pub fn copy(&self, tensors: &[&Tensor]) -> Result<Vec<Tensor>> {
        let pairs: Vec<(&Buffer, usize)> = buffers(tensors, "probe copy")?
            .into_iter()
            .zip(tensors.iter().map(|t| t.len()))
            .collect();
        Ok(self
            .gpu
            .probe_copy(&pairs)?
            .into_iter()
            .zip(tensors)
            .map(|(b, t)| Tensor::new(TensorData::Gpu(b), t.rows, t.cols))
            .collect())
    }
}
