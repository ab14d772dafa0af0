//! `regression_metrics(pred, target [, weight] [, δ, γ])`: the eight
//! metrics of one fused pass (`lossgpu metrics`) as a struct (mse, rmse,
//! mae, mape, smape, huber, log_cosh, quantile, n). Its partial state is
//! the [`MetricSums`]: seven Σ w·term, Σ w and the count.

use crate::args::{coerce, CallArgs};
use crate::columns::{kept_rows, Columns};
use crate::gather::{direct, full, with_input, Gathered, Inputs};
use crate::loss::exec;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, StructArray, UInt64Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, UInt64Type};
use datafusion::common::{plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use lossgpu::ops::metrics::metric_losses;
use lossgpu::{Loss, LossValue, MetricSums, Reduction};
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

/// δ and γ of a call (1 and 0.5 by default, as `lossgpu metrics`).
fn parameters(args: &AccumulatorArgs) -> Result<(usize, f32, f32)> {
    let call = CallArgs::of("regression_metrics", args)?;
    let (delta, gamma) = match call.params[..] {
        [] => (1.0, 0.5),
        [d] => (d as f32, 0.5),
        [d, g] => (d as f32, g as f32),
        _ => return plan_err!("regression_metrics takes at most two parameters (δ, γ)"),
    };
    metric_losses(delta, gamma).map_err(exec)?;
    Ok((call.columns, delta, gamma))
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
        let mut fields: Vec<FieldRef> = (0..8)
            .map(|k| {
                let name = format_state_name(args.name, &format!("sum{k}"));
                Arc::new(Field::new(name, DataType::Float64, true))
            })
            .collect();
        let count = format_state_name(args.name, "count");
        fields.push(Arc::new(Field::new(count, DataType::UInt64, true)));
        Ok(fields)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let (columns, delta, gamma) = parameters(&args)?;
        Ok(Box::new(MetricsAccumulator {
            columns,
            delta,
            gamma,
            gathered: Gathered::default(),
            sums: MetricSums::default(),
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let (columns, delta, gamma) = parameters(&args)?;
        Ok(Box::new(MetricsGroups {
            columns,
            losses: metric_losses(delta, gamma).map_err(exec)?,
            sums: Vec::new(),
        }))
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

fn state_arrays(sums: &[MetricSums]) -> Vec<ArrayRef> {
    let mut arrays: Vec<ArrayRef> = (0..7)
        .map(|k| {
            Arc::new(Float64Array::from_iter_values(
                sums.iter().map(|s| s.sums[k]),
            )) as ArrayRef
        })
        .collect();
    arrays.push(Arc::new(Float64Array::from_iter_values(
        sums.iter().map(|s| s.weight_sum),
    )));
    arrays.push(Arc::new(UInt64Array::from_iter_values(
        sums.iter().map(|s| s.count),
    )));
    arrays
}

/// Row i of a state's columns.
fn state_row(states: &[ArrayRef], i: usize) -> MetricSums {
    let f = |k: usize| states[k].as_primitive::<Float64Type>().value(i);
    MetricSums {
        sums: [f(0), f(1), f(2), f(3), f(4), f(5), f(6)],
        weight_sum: f(7),
        count: states[8].as_primitive::<UInt64Type>().value(i),
    }
}

/// Without GROUP BY: rows gathered, each batch's sums from one fused pass.
#[derive(Debug)]
struct MetricsAccumulator {
    columns: usize,
    delta: f32,
    gamma: f32,
    gathered: Gathered,
    sums: MetricSums,
}

impl MetricsAccumulator {
    fn add(&mut self, cols: &Columns) -> Result<()> {
        if cols.len() == 0 {
            return Ok(());
        }
        let (delta, gamma) = (self.delta, self.gamma);
        let sums = with_input(cols, &mut |e, input| match input {
            Inputs::F32(i) => e.metric_sums(&i, delta, gamma),
            Inputs::F16(i) => e.metric_sums(&i, delta, gamma),
        })?;
        self.sums = self.sums.merge(sums);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let cols = self.gathered.take();
        self.add(&Columns::F32(cols.into_iter().map(Into::into).collect()))
    }
}

impl Accumulator for MetricsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let arrays = &values[..self.columns];
        let keep = kept_rows(arrays, None);
        let cols = Columns::of(arrays, keep.as_deref())?;
        if direct(cols.len(), self.gathered.len()) {
            return self.add(&cols);
        }
        self.gathered.push(&cols);
        if full(self.gathered.len()) {
            self.flush()?;
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for i in 0..states[0].len() {
            self.sums = self.sums.merge(state_row(states, i));
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.flush()?;
        state_arrays(&[self.sums])
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.flush()?;
        ScalarValue::try_from_array(&metrics_array(&[self.sums])?, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.gathered.bytes()
    }
}

/// GROUP BY: per batch, every row's seven terms (one engine call per
/// metric, reduction none), added to its group's sums in f64.
#[derive(Debug)]
struct MetricsGroups {
    columns: usize,
    losses: [Loss; 7],
    sums: Vec<MetricSums>,
}

impl GroupsAccumulator for MetricsGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums.resize(total_num_groups, MetricSums::default());
        let rows = self.row_sums(values, opt_filter)?;
        for (s, &g) in rows.iter().zip(group_indices) {
            self.sums[g] = self.sums[g].merge(*s);
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums.resize(total_num_groups, MetricSums::default());
        for (i, &g) in group_indices.iter().enumerate() {
            self.sums[g] = self.sums[g].merge(state_row(values, i));
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        metrics_array(&emit_to.take_needed(&mut self.sums))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(state_arrays(&emit_to.take_needed(&mut self.sums)))
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        Ok(state_arrays(&self.row_sums(values, opt_filter)?))
    }

    fn size(&self) -> usize {
        self.sums.capacity() * std::mem::size_of::<MetricSums>()
    }
}

impl MetricsGroups {
    /// Each row's state: its seven terms (one engine call per metric for
    /// the batch, reduction none), w and a count of 1, or zeros where a
    /// NULL or the filter leaves it out.
    fn row_sums(
        &self,
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
    ) -> Result<Vec<MetricSums>> {
        let arrays = &values[..self.columns];
        let n = arrays[0].len();
        let keep = kept_rows(arrays, filter);
        let cols = Columns::of(arrays, keep.as_deref())?;
        let mut out = vec![MetricSums::default(); n];
        if cols.len() == 0 {
            return Ok(out);
        }
        let losses = self.losses;
        let (terms, weights) = with_input(&cols, &mut |e, input| {
            let mut terms = Vec::with_capacity(7);
            for loss in &losses {
                let v = match &input {
                    Inputs::F32(i) => e.loss(loss, i, Reduction::None)?,
                    Inputs::F16(i) => e.loss(loss, i, Reduction::None)?,
                };
                if let LossValue::PerSample(v) = v {
                    terms.push(v);
                }
            }
            let weights = match &input {
                Inputs::F32(i) => i.weights.map(|w| w.to_vec()),
                Inputs::F16(i) => i.weights.map(|w| w.iter().map(|v| v.to_f32()).collect()),
            };
            Ok((terms, weights))
        })?;
        if terms.len() != 7 {
            return Err(DataFusionError::Internal(
                "per-row metric terms expected".into(),
            ));
        }
        let rows = (0..n).filter(|&i| keep.as_ref().is_none_or(|k| k[i]));
        for (r, i) in rows.enumerate() {
            let s = &mut out[i];
            for (k, t) in terms.iter().enumerate() {
                s.sums[k] = t[r] as f64;
            }
            s.weight_sum = weights.as_ref().map_or(1.0, |w| w[r] as f64);
            s.count = 1;
        }
        Ok(out)
    }
}
