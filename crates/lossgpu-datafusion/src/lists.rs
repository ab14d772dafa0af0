//! List columns (List, LargeList and FixedSizeList of floats): each row's
//! span in the flat values, and the values of chosen rows as the engine
//! takes them, borrowed where the rows lie back to back and the type
//! needs no conversion.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Float16Type, Float32Type, Float64Type};
use datafusion::common::{exec_err, Result};
use half::f16;
use std::borrow::Cow;
use std::ops::Range;

/// A list column's rows: the flat values and each row's span in them.
pub(crate) struct ListRows<'a> {
    pub values: &'a ArrayRef,
    pub spans: Vec<Range<usize>>,
    list: &'a ArrayRef,
}

impl<'a> ListRows<'a> {
    /// The rows of a List, LargeList or FixedSizeList column.
    pub(crate) fn of(list: &'a ArrayRef) -> Result<ListRows<'a>> {
        let (values, spans): (&ArrayRef, Vec<Range<usize>>) = match list.data_type() {
            DataType::List(_) => {
                let l = list.as_list::<i32>();
                let o = l.value_offsets();
                (l.values(), spans(o.iter().map(|&v| v as usize)))
            }
            DataType::LargeList(_) => {
                let l = list.as_list::<i64>();
                let o = l.value_offsets();
                (l.values(), spans(o.iter().map(|&v| v as usize)))
            }
            DataType::FixedSizeList(_, m) => {
                let l = list.as_fixed_size_list();
                // A sliced FixedSizeList slices its values too: row i starts at i·m.
                let m = *m as usize;
                (
                    l.values(),
                    (0..l.len()).map(|i| i * m..(i + 1) * m).collect(),
                )
            }
            other => return exec_err!("lossgpu: a list column was {other}"),
        };
        Ok(ListRows {
            values,
            spans,
            list,
        })
    }

    /// Whether row i is a list (not NULL) with no NULL element.
    pub(crate) fn is_valid(&self, i: usize) -> bool {
        self.list.is_valid(i)
            && (self.values.null_count() == 0
                || self.spans[i].clone().all(|k| self.values.is_valid(k)))
    }

    /// Row i's length.
    pub(crate) fn len_of(&self, i: usize) -> usize {
        self.spans[i].len()
    }

    /// The spans of `rows`.
    pub(crate) fn spans_of(&self, rows: &[usize]) -> Vec<Range<usize>> {
        rows.iter().map(|&i| self.spans[i].clone()).collect()
    }
}

/// The values a list column's rows hold together, from its offsets alone
/// (without [`ListRows::of`]'s span per row).
pub(crate) fn values_in(list: &ArrayRef) -> usize {
    let between = |first: Option<usize>, last: Option<usize>| {
        last.unwrap_or(0).saturating_sub(first.unwrap_or(0))
    };
    match list.data_type() {
        DataType::List(_) => {
            let o = list.as_list::<i32>().value_offsets();
            between(
                o.first().map(|&v| v as usize),
                o.last().map(|&v| v as usize),
            )
        }
        DataType::LargeList(_) => {
            let o = list.as_list::<i64>().value_offsets();
            between(
                o.first().map(|&v| v as usize),
                o.last().map(|&v| v as usize),
            )
        }
        DataType::FixedSizeList(_, m) => list.len() * *m as usize,
        _ => list.len(),
    }
}

/// Consecutive spans from the offsets of a List column.
fn spans(offsets: impl Iterator<Item = usize>) -> Vec<Range<usize>> {
    let offsets: Vec<usize> = offsets.collect();
    offsets.windows(2).map(|w| w[0]..w[1]).collect()
}

/// The values of `spans`, one after another: borrowed when the spans lie
/// back to back.
fn flat<'a, T: Copy>(values: &'a [T], spans: &[Range<usize>]) -> Cow<'a, [T]> {
    let back_to_back = spans.windows(2).all(|w| w[0].end == w[1].start);
    match (spans.first(), spans.last()) {
        (Some(first), Some(last)) if back_to_back => Cow::Borrowed(&values[first.start..last.end]),
        _ => Cow::Owned(
            spans
                .iter()
                .flat_map(|s| values[s.clone()].iter().copied())
                .collect(),
        ),
    }
}

/// A float type the engine reads from Arrow values.
pub(crate) trait Read: lossgpu::Float {
    /// The values of `spans` of a Float16, Float32 or Float64 array.
    fn read<'a>(values: &'a ArrayRef, spans: &[Range<usize>]) -> Result<Cow<'a, [Self]>>;
}

impl Read for f32 {
    /// Float32 borrowed where it can be, Float16 widened exactly, Float64
    /// rounded to nearest.
    fn read<'a>(values: &'a ArrayRef, spans: &[Range<usize>]) -> Result<Cow<'a, [f32]>> {
        Ok(match values.data_type() {
            DataType::Float32 => flat(values.as_primitive::<Float32Type>().values(), spans),
            DataType::Float16 => {
                let v = flat(values.as_primitive::<Float16Type>().values(), spans);
                Cow::Owned(v.iter().map(|x| x.to_f32()).collect())
            }
            DataType::Float64 => {
                let v = flat(values.as_primitive::<Float64Type>().values(), spans);
                Cow::Owned(v.iter().map(|&x| x as f32).collect())
            }
            other => return exec_err!("lossgpu: a float column was {other}"),
        })
    }
}

impl Read for f16 {
    /// Float16, borrowed where it can be.
    fn read<'a>(values: &'a ArrayRef, spans: &[Range<usize>]) -> Result<Cow<'a, [f16]>> {
        match values.data_type() {
            DataType::Float16 => Ok(flat(values.as_primitive::<Float16Type>().values(), spans)),
            other => exec_err!("lossgpu: a half column was {other}"),
        }
    }
}
