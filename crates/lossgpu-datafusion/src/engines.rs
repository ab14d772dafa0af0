//! The engines the aggregates call: gathered batches of GATHER rows or
//! more go to `Engine::new()` (the GPU, or the CPU where there is no
//! adapter), smaller ones to the CPU backend, where a dispatch would cost
//! more than it saves.

use lossgpu::Engine;
use std::sync::OnceLock;

/// Rows an aggregate gathers before it calls the engine: enough to be
/// worth a GPU dispatch.
pub const GATHER: usize = 1 << 16;

/// The engine for `rows` rows.
pub(crate) fn engine_for(rows: usize) -> &'static Engine {
    static LARGE: OnceLock<Engine> = OnceLock::new();
    static SMALL: OnceLock<Engine> = OnceLock::new();
    if rows >= GATHER {
        LARGE.get_or_init(Engine::new)
    } else {
        SMALL.get_or_init(Engine::cpu)
    }
}

/// The engine large batches go to, for reports ("gpu" or "cpu").
pub fn large_batch_engine() -> &'static Engine {
    engine_for(GATHER)
}
