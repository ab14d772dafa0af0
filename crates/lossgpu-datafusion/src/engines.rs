//! The engines the aggregates call: batches of GATHER rows or more go to
//! `Engine::auto()` (the GPU or the CPU, whichever its first calls of a
//! kind measured faster on this machine; the CPU where there is no
//! adapter), smaller ones to the CPU backend, where a dispatch would cost
//! more than it saves.

use crate::columns::Columns;
use datafusion::common::{DataFusionError, Result};
use lossgpu::{Backend, Engine, Float, Loss, LossInput, LossSums, Reduction, Target, Work};
use std::sync::OnceLock;

/// Rows an aggregate gathers before it calls the engine: enough to be
/// worth a GPU dispatch.
pub const GATHER: usize = 1 << 16;

static LARGE: OnceLock<Engine> = OnceLock::new();

/// The engine for `work` values (rows, or logits of a row loss).
pub(crate) fn engine_for(work: usize) -> &'static Engine {
    static SMALL: OnceLock<Engine> = OnceLock::new();
    if work >= GATHER {
        LARGE.get_or_init(Engine::auto)
    } else {
        SMALL.get_or_init(Engine::cpu)
    }
}

/// Sets the engine large batches go to (`Engine::auto()` unless set), for
/// the whole process: `Engine::cpu()` keeps every batch on the CPU.
/// Returns false (and changes nothing) once an aggregate has used one.
pub fn set_large_batch_engine(engine: Engine) -> bool {
    LARGE.set(engine).is_ok()
}

/// The engine large batches go to, for reports ("gpu" or "cpu").
pub fn large_batch_engine() -> &'static Engine {
    engine_for(GATHER)
}

/// Whether the large-batch engine may run `family`'s gathered batches on a
/// GPU: not where it has none, nor where it is `Engine::auto()` and every
/// gathered size of the family it has timed ran faster on the CPU.
pub(crate) fn gpu_may_run(family: Work) -> bool {
    let engine = large_batch_engine();
    if engine.backend() == Backend::Cpu {
        return false;
    }
    let gathered = GATHER.trailing_zeros();
    let timed: Vec<Backend> = engine
        .auto_choices()
        .into_iter()
        .filter(|c| c.work == family && c.size_class >= gathered)
        .map(|c| c.backend)
        .collect();
    timed.is_empty() || timed.contains(&Backend::Gpu)
}

/// A library error as DataFusion's, naming lossgpu.
pub(crate) fn exec(e: lossgpu::Error) -> DataFusionError {
    DataFusionError::Execution(format!("lossgpu: {e}"))
}

/// A loss input of either float type.
pub(crate) enum Inputs<'a> {
    F32(LossInput<'a, f32>),
    F16(LossInput<'a, half::f16>),
}

/// A loss input over (pred, target [, weights]).
fn input<'a, F: Float>(cols: &'a [impl AsRef<[F]>]) -> LossInput<'a, F> {
    let input = LossInput::new(cols[0].as_ref(), cols[1].as_ref());
    match cols.get(2) {
        Some(w) => input.with_weights(w.as_ref()),
        None => input,
    }
}

/// Calls `f` on the pointwise input of `cols` with the engine for their
/// rows, whatever their float type.
pub(crate) fn with_input<T>(
    cols: &Columns,
    f: &mut impl FnMut(&Engine, Inputs) -> lossgpu::Result<T>,
) -> Result<T> {
    let engine = engine_for(cols.len());
    match cols {
        Columns::F32(c) => f(engine, Inputs::F32(input(c))),
        Columns::F16(c) => f(engine, Inputs::F16(input(c))),
    }
    .map_err(exec)
}

/// Each row's state from one engine call (reduction none): its w·l, its
/// weight w (0 where the row's class is the ignored one) and a count of 1.
pub(crate) fn per_row<F: Float>(
    engine: &Engine,
    loss: &Loss,
    input: &LossInput<F>,
) -> lossgpu::Result<Vec<LossSums>> {
    let value = engine.loss(loss, input, Reduction::None)?;
    let terms = value.per_sample().unwrap_or_default();
    let ignored = |k: usize| match (input.options.ignore_index, input.target) {
        (Some(i), Target::Classes(c)) => c[k] == i as u32,
        _ => false,
    };
    Ok(terms
        .iter()
        .enumerate()
        .map(|(k, &t)| LossSums {
            sum: t as f64,
            weight_sum: match (ignored(k), input.weights) {
                (true, _) => 0.0,
                (false, Some(w)) => w[k].to_f32() as f64,
                (false, None) => 1.0,
            },
            count: 1,
        })
        .collect())
}
