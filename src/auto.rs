//! The calibrating engine's memory ([`Engine::auto`](crate::Engine::auto)):
//! for each operation and size class, which side was faster when both were
//! timed on this machine, on the first call of that kind.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Which side computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// wgpu compute shaders on an adapter.
    Gpu,
    /// The f64 CPU reference.
    Cpu,
}

impl Backend {
    /// "gpu" or "cpu".
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gpu => "gpu",
            Backend::Cpu => "cpu",
        }
    }
}

/// An op family that [`Engine::auto`](crate::Engine::auto) calibrates on
/// its own: the families differ in arithmetic per byte, so one crossover
/// size would not fit them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// An activation's forward, derivative or backward pass.
    Activation,
    /// A pointwise loss's value (and internal sums: penalties, prelu's dα).
    Loss,
    /// A row loss's value (cross-entropy, kl-div, entropy, zero-one).
    RowLoss,
    /// A loss gradient.
    LossGrad,
    /// [`Engine::loss_batch`](crate::Engine::loss_batch), by total values.
    Batch,
    /// [`Engine::regression_metrics`](crate::Engine::regression_metrics).
    Metrics,
    /// [`Engine::grad_stats`](crate::Engine::grad_stats).
    GradStats,
    /// Fused linear + cross-entropy, by N·V logits.
    LinearCe,
}

impl Work {
    /// "activation", "loss", "row-loss", "loss-grad", "batch", "metrics",
    /// "grad-stats" or "linear-ce".
    pub fn name(self) -> &'static str {
        match self {
            Work::Activation => "activation",
            Work::Loss => "loss",
            Work::RowLoss => "row-loss",
            Work::LossGrad => "loss-grad",
            Work::Batch => "batch",
            Work::Metrics => "metrics",
            Work::GradStats => "grad-stats",
            Work::LinearCe => "linear-ce",
        }
    }
}

/// What a calibrating engine chose for one operation and size class.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoChoice {
    /// The op family.
    pub work: Work,
    /// The operation within it: the loss or activation name (with `'` for a
    /// derivative and " backward" for a backward pass), or the method.
    pub op: String,
    /// Inputs of n values with 2^(k−1) < n ≤ 2^k share class k.
    pub size_class: u32,
    /// The faster side, which runs every later call of this kind.
    pub backend: Backend,
    /// The GPU's time for the calibrating call, after a warm-up run.
    pub gpu_seconds: f64,
    /// The CPU backend's time for the same call.
    pub cpu_seconds: f64,
}

/// k with 2^(k−1) < n ≤ 2^k (0 for n ≤ 1).
pub(crate) fn size_class(n: usize) -> u32 {
    n.max(1).next_power_of_two().trailing_zeros()
}

/// (family, operation name, its suffix, size class): no allocation to look
/// a choice up on every call.
type Key = (Work, &'static str, &'static str, u32);

/// The choices so far, one per key.
#[derive(Default)]
pub(crate) struct Calibration {
    choices: Mutex<BTreeMap<Key, AutoChoice>>,
}

impl Calibration {
    pub fn get(&self, work: Work, op: (&'static str, &'static str), n: usize) -> Option<Backend> {
        let choices = self.choices.lock().ok()?;
        choices
            .get(&(work, op.0, op.1, size_class(n)))
            .map(|c| c.backend)
    }

    /// Records both timings; the GPU wins only when strictly faster.
    pub fn record(
        &self,
        work: Work,
        op: (&'static str, &'static str),
        n: usize,
        gpu: Duration,
        cpu: Duration,
    ) -> Backend {
        let backend = if gpu < cpu {
            Backend::Gpu
        } else {
            Backend::Cpu
        };
        let choice = AutoChoice {
            work,
            op: format!("{}{}", op.0, op.1),
            size_class: size_class(n),
            backend,
            gpu_seconds: gpu.as_secs_f64(),
            cpu_seconds: cpu.as_secs_f64(),
        };
        if let Ok(mut choices) = self.choices.lock() {
            choices.insert((work, op.0, op.1, choice.size_class), choice);
        }
        backend
    }

    pub fn all(&self) -> Vec<AutoChoice> {
        self.choices
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }
}
