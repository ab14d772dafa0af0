//! `regression_metrics(pred, target [, weight] [, δ, γ])`: the eight
//! metrics of one fused pass (`lossgpu metrics`) as a struct (mse, rmse,
//! mae, mape, smape, huber, log_cosh, quantile, n). Its partial state is
//! the [`MetricSums`]: seven Σ w·term, Σ w and the count.

use crate::aggregate::{Aggregate, Groups, Plain};
use crate::args::{coerce, CallArgs};
use crate::columns::Kept;
use crate::engines::{exec, per_row, with_input, Inputs};
use crate::state::State;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, StructArray, UInt64Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};
use lossgpu::ops::metrics::metric_losses;
use lossgpu::{Loss, MetricSums, Work};
use std::sync::Arc;

/// The metrics' names, as the struct's fields (SPEC §4's JSON keys).
const METRICS: [&str; 8] = [
    "mse", "rmse", "mae", "mape", "smape", "huber", "log_cosh", "quantile",
];

/// The struct `regression_metrics` returns.
fn metrics_type() -> DataType {
    let mut fields: Vec<Field> = METRICS
        .iter()
        .map(|m| Field::new(*m, DataType::Float64, true))
        .collect();
    fields.push(Field::new("n", DataType::UInt64, true));
    DataType::Struct(Fields::from(fields))
}

/// The aggregate `regression_metrics`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MetricsUdaf {
    signature: Signature,
}

impl Default for MetricsUdaf {
    fn default() -> Self {
        MetricsUdaf {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The call's columns, δ and γ (1 and 0.5 by default, as `lossgpu
/// metrics`).
fn parameters(args: &AccumulatorArgs) -> Result<Metrics> {
    let call = CallArgs::of("regression_metrics", args)?;
    let (delta, gamma) = match call.params[..] {
        [] => (1.0, 0.5),
        [d] => (d as f32, 0.5),
        [d, g] => (d as f32, g as f32),
        _ => return plan_err!("regression_metrics takes at most two parameters (δ, γ)"),
    };
    Ok(Metrics {
        columns: call.columns,
        delta,
        gamma,
        losses: metric_losses(delta, gamma).map_err(exec)?,
    })
}

impl AggregateUDFImpl for MetricsUdaf {
    fn name(&self) -> &str {
        "regression_metrics"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("regression_metrics", arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(metrics_type())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(MetricSums::fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Plain::new(parameters(&args)?)))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups::new(parameters(&args)?)))
    }
}

/// The metrics of merged sums as the struct's columns, NULL over no rows.
fn metrics_array(sums: &[MetricSums]) -> Result<ArrayRef> {
    let mut columns: Vec<Vec<Option<f64>>> =
        (0..8).map(|_| Vec::with_capacity(sums.len())).collect();
    for s in sums {
        let m = if s.count == 0 {
            None
        } else {
            Some(s.finish().map_err(exec)?)
        };
        let values = m.map(|m| {
            [
                m.mse, m.rmse, m.mae, m.mape, m.smape, m.huber, m.log_cosh, m.quantile,
            ]
        });
        for (k, c) in columns.iter_mut().enumerate() {
            c.push(values.map(|v| v[k]));
        }
    }
    let mut arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef)
        .collect();
    arrays.push(Arc::new(UInt64Array::from_iter_values(
        sums.iter().map(|s| s.count),
    )));
    let DataType::Struct(fields) = metrics_type() else {
        return Err(DataFusionError::Internal("a struct type".into()));
    };
    let nulls = NullBuffer::from(sums.iter().map(|s| s.count > 0).collect::<Vec<_>>());
    Ok(Arc::new(StructArray::try_new(fields, arrays, Some(nulls))?))
}

/// The fused pass over (pred, target [, weight]) with δ and γ.
#[derive(Debug)]
struct Metrics {
    /// Columns read: pred, target and the weight when given.
    columns: usize,
    delta: f32,
    gamma: f32,
    /// The seven losses of the per-row terms.
    losses: [Loss; 7],
}

impl Aggregate for Metrics {
    type State = MetricSums;

    fn family(&self) -> Work {
        Work::Metrics
    }

    fn batch(&self, values: &[ArrayRef]) -> Result<MetricSums> {
        let kept = Kept::of(&values[..self.columns], None)?;
        if kept.cols.len() == 0 {
            return Ok(MetricSums::default());
        }
        let (delta, gamma) = (self.delta, self.gamma);
        with_input(&kept.cols, &mut |e, input| match input {
            Inputs::F32(i) => e.metric_sums(&i, delta, gamma),
            Inputs::F16(i) => e.metric_sums(&i, delta, gamma),
        })
    }

    /// Each row's seven terms (one engine call per metric for the batch,
    /// reduction none), w and a count of 1.
    fn rows(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Vec<MetricSums>> {
        let kept = Kept::of(&values[..self.columns], filter)?;
        let mut rows = vec![MetricSums::default(); kept.cols.len()];
        if rows.is_empty() {
            return kept.spread(rows);
        }
        for (k, loss) in self.losses.iter().enumerate() {
            let terms = with_input(&kept.cols, &mut |e, input| match input {
                Inputs::F32(i) => per_row(e, loss, &i),
                Inputs::F16(i) => per_row(e, loss, &i),
            })?;
            if terms.len() != rows.len() {
                return Err(DataFusionError::Internal("per-row terms expected".into()));
            }
            for (r, t) in rows.iter_mut().zip(terms) {
                r.sums[k] = t.sum;
                r.weight_sum = t.weight_sum;
                r.count = 1;
            }
        }
        kept.spread(rows)
    }

    fn finish(&self, states: &[MetricSums]) -> Result<ArrayRef> {
        metrics_array(states)
    }
}
