//! Device memory the engine allocated: every buffer it creates is a
//! [`Buffer`], counted from creation to drop (current) and at its most
//! (peak), as PyTorch's `memory_allocated` and `max_memory_allocated` count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes of device buffers an engine holds now and held at most
/// ([`crate::Engine::device_memory`]): the buffers it created, its
/// resident tensors among them, each by its size as allocated (padding
/// included); not buffers a caller passed in
/// ([`crate::Engine::tensor_from_buffer`]). Zero on the CPU backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceMemory {
    /// Held now.
    pub current_bytes: u64,
    /// The most held at once since the engine was made or
    /// [`crate::Engine::reset_peak_device_memory`].
    pub peak_bytes: u64,
}

/// The counters behind [`DeviceMemory`].
#[derive(Debug, Default)]
pub(crate) struct Memory {
    current: AtomicU64,
    peak: AtomicU64,
}

impl Memory {
    fn add(&self, bytes: u64) {
        let now = self.current.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn sub(&self, bytes: u64) {
        self.current.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub fn usage(&self) -> DeviceMemory {
        DeviceMemory {
            current_bytes: self.current.load(Ordering::Relaxed),
            peak_bytes: self.peak.load(Ordering::Relaxed),
        }
    }

    /// Starts a new peak from what is held now.
    pub fn reset_peak(&self) {
        self.peak
            .store(self.current.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// A device buffer, counted in its engine's [`Memory`] until dropped (a
/// caller's own buffer is not counted).
#[derive(Debug)]
pub(crate) struct Buffer {
    buffer: wgpu::Buffer,
    memory: Option<Arc<Memory>>,
}

impl Buffer {
    /// `buffer`, counted in `memory`.
    pub fn counted(buffer: wgpu::Buffer, memory: &Arc<Memory>) -> Buffer {
        memory.add(buffer.size());
        Buffer {
            buffer,
            memory: Some(memory.clone()),
        }
    }

    /// A caller's buffer, not counted.
    pub fn foreign(buffer: wgpu::Buffer) -> Buffer {
        Buffer {
            buffer,
            memory: None,
        }
    }
}

impl std::ops::Deref for Buffer {
    type Target = wgpu::Buffer;

    fn deref(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(m) = &self.memory {
            m.sub(self.buffer.size());
        }
    }
}
