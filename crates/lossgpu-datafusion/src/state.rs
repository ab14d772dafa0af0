//! The partial states of the aggregates as Arrow columns: the library's
//! [`LossSums`] and [`MetricSums`], f64 sums that merge exactly across
//! partitions and machines.

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::logical_expr::utils::format_state_name;
use lossgpu::{LossSums, MetricSums};
use std::fmt::Debug;
use std::sync::Arc;

/// A partial state: merged by addition, carried between partitions as
/// f64 sums and a u64 count.
pub(crate) trait State: Copy + Default + Debug + Send + Sync + 'static {
    /// The sums of both parts.
    fn merge(self, other: Self) -> Self;
    /// The f64 sums, in the order of the state's columns.
    fn sums(&self) -> Vec<f64>;
    /// A state from its f64 sums and its count.
    fn from_sums(sums: &[f64], count: u64) -> Self;
    /// Rows the state has seen.
    fn count(&self) -> u64;
    /// The names of the f64 sums.
    const SUMS: &'static [&'static str];

    /// The state's columns: one Float64 per sum, then the UInt64 count.
    fn fields(name: &str) -> Vec<FieldRef> {
        let mut fields: Vec<FieldRef> = Self::SUMS
            .iter()
            .map(|s| {
                Arc::new(Field::new(
                    format_state_name(name, s),
                    DataType::Float64,
                    true,
                ))
            })
            .collect();
        let count = format_state_name(name, "count");
        fields.push(Arc::new(Field::new(count, DataType::UInt64, true)));
        fields
    }

    /// States as their columns.
    fn columns(states: &[Self]) -> Vec<ArrayRef> {
        let sums: Vec<Vec<f64>> = states.iter().map(Self::sums).collect();
        let mut arrays: Vec<ArrayRef> = (0..Self::SUMS.len())
            .map(|k| {
                Arc::new(Float64Array::from_iter_values(sums.iter().map(|s| s[k]))) as ArrayRef
            })
            .collect();
        arrays.push(Arc::new(UInt64Array::from_iter_values(
            states.iter().map(Self::count),
        )));
        arrays
    }

    /// Row i of a state's columns.
    fn row(columns: &[ArrayRef], i: usize) -> Self {
        let k = Self::SUMS.len();
        let sums: Vec<f64> = columns[..k]
            .iter()
            .map(|c| c.as_primitive::<Float64Type>().value(i))
            .collect();
        Self::from_sums(&sums, columns[k].as_primitive::<UInt64Type>().value(i))
    }
}

impl State for LossSums {
    const SUMS: &'static [&'static str] = &["sum", "weight_sum"];

    fn merge(self, other: Self) -> Self {
        LossSums::merge(self, other)
    }

    fn sums(&self) -> Vec<f64> {
        vec![self.sum, self.weight_sum]
    }

    fn from_sums(sums: &[f64], count: u64) -> Self {
        LossSums {
            sum: sums[0],
            weight_sum: sums[1],
            count,
        }
    }

    fn count(&self) -> u64 {
        self.count
    }
}

impl State for MetricSums {
    const SUMS: &'static [&'static str] = &[
        "sum0",
        "sum1",
        "sum2",
        "sum3",
        "sum4",
        "sum5",
        "sum6",
        "weight_sum",
    ];

    fn merge(self, other: Self) -> Self {
        MetricSums::merge(self, other)
    }

    fn sums(&self) -> Vec<f64> {
        let mut s = self.sums.to_vec();
        s.push(self.weight_sum);
        s
    }

    fn from_sums(sums: &[f64], count: u64) -> Self {
        let mut s = [0.0; 7];
        s.copy_from_slice(&sums[..7]);
        MetricSums {
            sums: s,
            weight_sum: sums[7],
            count,
        }
    }

    fn count(&self) -> u64 {
        self.count
    }
}
