//! Rows gathered until a batch is worth an engine call, and the engine
//! calls on them.

use crate::columns::Columns;
use crate::engines::{engine_for, GATHER};
use datafusion::common::{DataFusionError, Result};
use lossgpu::{Float, LossInput};

/// The f32 rows gathered so far: one vector per column read.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    cols: Vec<Vec<f32>>,
}

impl Gathered {
    pub(crate) fn len(&self) -> usize {
        self.cols.first().map_or(0, Vec::len)
    }

    /// Appends `cols` (half values widened, which is exact).
    pub(crate) fn push(&mut self, cols: &Columns) {
        let n = match cols {
            Columns::F32(c) => c.len(),
            Columns::F16(c) => c.len(),
        };
        self.cols.resize_with(n, Vec::new);
        match cols {
            Columns::F32(c) => self
                .cols
                .iter_mut()
                .zip(c)
                .for_each(|(g, c)| g.extend_from_slice(c)),
            Columns::F16(c) => self
                .cols
                .iter_mut()
                .zip(c)
                .for_each(|(g, c)| g.extend(c.iter().map(|v| v.to_f32()))),
        }
    }

    /// The gathered rows as columns, emptying the buffer.
    pub(crate) fn take(&mut self) -> Vec<Vec<f32>> {
        std::mem::take(&mut self.cols)
    }

    pub(crate) fn bytes(&self) -> usize {
        self.cols.iter().map(|c| c.capacity() * 4).sum()
    }
}

/// A loss input over (pred, target [, weights]).
pub(crate) fn input<'a, F: Float>(cols: &'a [impl AsRef<[F]>]) -> LossInput<'a, F> {
    let input = LossInput::new(cols[0].as_ref(), cols[1].as_ref());
    match cols.get(2) {
        Some(w) => input.with_weights(w.as_ref()),
        None => input,
    }
}

/// Calls `f` on `cols` with the engine for their rows, whatever their
/// float type.
pub(crate) fn with_input<T>(
    cols: &Columns,
    f: &mut impl FnMut(&lossgpu::Engine, Inputs) -> lossgpu::Result<T>,
) -> Result<T> {
    let engine = engine_for(cols.len());
    let r = match cols {
        Columns::F32(c) => f(engine, Inputs::F32(input(c))),
        Columns::F16(c) => f(engine, Inputs::F16(input(c))),
    };
    r.map_err(|e| DataFusionError::Execution(format!("lossgpu: {e}")))
}

/// A loss input of either float type.
pub(crate) enum Inputs<'a> {
    F32(LossInput<'a, f32>),
    F16(LossInput<'a, half::f16>),
}

/// Whether a batch of `rows` goes straight to the engine rather than into
/// the gather buffer (holding `gathered` rows).
pub(crate) fn direct(rows: usize, gathered: usize) -> bool {
    rows >= GATHER && gathered == 0
}

/// Whether the buffer holds a batch worth an engine call.
pub(crate) fn full(gathered: usize) -> bool {
    gathered >= GATHER
}
