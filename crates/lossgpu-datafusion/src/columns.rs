//! Arrow columns as the engine takes them: f32 or f16 slices, borrowed
//! from the arrays where no NULL is in the way, with the NULL rows left
//! out (SQL's AVG skips them) and Float64 narrowed to f32.

use crate::lists::Read;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result};
use half::f16;
use std::borrow::Cow;
use std::ops::Range;

/// One aggregate's numeric columns over the rows it reads.
pub(crate) enum Columns<'a> {
    F32(Vec<Cow<'a, [f32]>>),
    F16(Vec<Cow<'a, [f16]>>),
}

/// Which rows an update reads: those of the filter (if any) where no
/// column is NULL. None when every row is read, so columns are borrowed.
fn kept_rows(arrays: &[ArrayRef], filter: Option<&BooleanArray>) -> Option<Vec<bool>> {
    let any_null = arrays.iter().any(|a| a.null_count() > 0);
    let filtered = filter.is_some_and(|f| f.true_count() < f.len() || f.null_count() > 0);
    if !any_null && !filtered {
        return None;
    }
    let n = arrays.first().map_or(0, |a| a.len());
    Some(
        (0..n)
            .map(|i| {
                arrays.iter().all(|a| a.is_valid(i))
                    && filter.is_none_or(|f| f.is_valid(i) && f.value(i))
            })
            .collect(),
    )
}

/// The spans of the kept rows: one span of all `n` rows when every row is
/// kept (so columns are borrowed whole).
fn spans(n: usize, keep: Option<&[bool]>) -> Vec<Range<usize>> {
    match keep {
        None => std::iter::once(0..n).collect(),
        Some(k) => (0..n).filter(|&i| k[i]).map(|i| i..i + 1).collect(),
    }
}

impl<'a> Columns<'a> {
    /// The kept rows of `arrays`, all Float16 (borrowed as f16) or else
    /// each as f32 (Float32 borrowed, Float16 widened exactly, Float64
    /// rounded to nearest).
    pub(crate) fn of(arrays: &'a [ArrayRef], keep: Option<&[bool]>) -> Result<Columns<'a>> {
        let spans = spans(arrays.first().map_or(0, |a| a.len()), keep);
        if arrays.iter().all(|a| a.data_type() == &DataType::Float16) {
            let cols = arrays
                .iter()
                .map(|a| f16::read(a, &spans))
                .collect::<Result<_>>()?;
            return Ok(Columns::F16(cols));
        }
        let cols = arrays
            .iter()
            .map(|a| f32::read(a, &spans))
            .collect::<Result<_>>()?;
        Ok(Columns::F32(cols))
    }

    /// Rows read.
    pub(crate) fn len(&self) -> usize {
        match self {
            Columns::F32(c) => c.first().map_or(0, |c| c.len()),
            Columns::F16(c) => c.first().map_or(0, |c| c.len()),
        }
    }
}

/// A batch's argument columns over the rows an update reads.
pub(crate) struct Kept<'a> {
    /// Rows of the batch.
    pub rows: usize,
    keep: Option<Vec<bool>>,
    /// The columns over the kept rows.
    pub cols: Columns<'a>,
}

impl<'a> Kept<'a> {
    /// The rows of `arrays` where none is NULL, within the filter.
    pub(crate) fn of(arrays: &'a [ArrayRef], filter: Option<&BooleanArray>) -> Result<Kept<'a>> {
        let keep = kept_rows(arrays, filter);
        let cols = Columns::of(arrays, keep.as_deref())?;
        Ok(Kept {
            rows: arrays.first().map_or(0, |a| a.len()),
            keep,
            cols,
        })
    }

    /// The states of the kept rows (in order) at their rows of the batch,
    /// the default state at the rows left out.
    pub(crate) fn spread<S: Default + Clone>(&self, states: Vec<S>) -> Result<Vec<S>> {
        if states.len() != self.cols.len() {
            return Err(DataFusionError::Internal(format!(
                "{} row states for {} rows",
                states.len(),
                self.cols.len()
            )));
        }
        let Some(keep) = &self.keep else {
            return Ok(states);
        };
        let mut out = vec![S::default(); self.rows];
        let kept = (0..self.rows).filter(|&i| keep[i]);
        for (i, s) in kept.zip(states) {
            out[i] = s;
        }
        Ok(out)
    }
}
