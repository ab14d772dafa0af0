//! Arrow columns as the engine takes them: f32 or f16 slices, borrowed
//! from the arrays where no NULL is in the way, with the NULL rows left
//! out (SQL's AVG skips them) and Float64 narrowed to f32.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Float16Type, Float32Type, Float64Type};
use datafusion::common::{exec_err, Result};
use half::f16;
use std::borrow::Cow;

/// One aggregate's numeric columns over the rows it reads.
pub(crate) enum Columns<'a> {
    F32(Vec<Cow<'a, [f32]>>),
    F16(Vec<Cow<'a, [f16]>>),
}

/// Which rows an update reads: those of the filter (if any) where no
/// column is NULL. None when every row is read, so columns are borrowed.
pub(crate) fn kept_rows(arrays: &[ArrayRef], filter: Option<&BooleanArray>) -> Option<Vec<bool>> {
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

/// The kept rows of a column of f32 values.
fn pick<'a, T: Copy>(values: &'a [T], keep: Option<&[bool]>) -> Cow<'a, [T]> {
    match keep {
        None => Cow::Borrowed(values),
        Some(k) => Cow::Owned(
            values
                .iter()
                .zip(k)
                .filter(|(_, &k)| k)
                .map(|(v, _)| *v)
                .collect(),
        ),
    }
}

impl<'a> Columns<'a> {
    /// The kept rows of `arrays`, all Float16 (borrowed as f16) or else
    /// each as f32 (Float32 borrowed, Float16 widened exactly, Float64
    /// rounded to nearest).
    pub(crate) fn of(arrays: &'a [ArrayRef], keep: Option<&[bool]>) -> Result<Columns<'a>> {
        if arrays.iter().all(|a| a.data_type() == &DataType::Float16) {
            let cols = arrays
                .iter()
                .map(|a| pick(a.as_primitive::<Float16Type>().values(), keep))
                .collect();
            return Ok(Columns::F16(cols));
        }
        let cols = arrays
            .iter()
            .map(|a| {
                Ok(match a.data_type() {
                    DataType::Float32 => pick(a.as_primitive::<Float32Type>().values(), keep),
                    DataType::Float16 => {
                        let v = a.as_primitive::<Float16Type>().values();
                        Cow::Owned(pick(v, keep).iter().map(|x| x.to_f32()).collect())
                    }
                    DataType::Float64 => {
                        let v = a.as_primitive::<Float64Type>().values();
                        Cow::Owned(pick(v, keep).iter().map(|&x| x as f32).collect())
                    }
                    other => return exec_err!("lossgpu: a numeric column was {other}"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
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
