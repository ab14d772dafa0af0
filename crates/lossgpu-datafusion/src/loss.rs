//! `loss_NAME(pred, target [, weight] [, parameters])`: a pointwise loss's
//! mean (SPEC §4) as an aggregate. Its partial state is the loss's
//! [`LossSums`] (Σ w·l, Σ w, count), which merges exactly across
//! partitions and machines.

use crate::args::{coerce, CallArgs};
use crate::columns::{kept_rows, Columns};
use crate::gather::{direct, full, with_input, Gathered, Inputs};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::{plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use lossgpu::{Loss, LossParams, LossSums, LossValue, Reduction};
use std::sync::Arc;

/// The aggregate of one pointwise loss, named `loss_` + its CLI name with
/// '-' as '_'.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LossUdaf {
    /// The SQL name.
    name: String,
    /// The loss's CLI name (SPEC §1).
    loss: &'static str,
    signature: Signature,
}

impl LossUdaf {
    /// The aggregate of the pointwise loss named `loss` (a CLI name).
    pub fn new(loss: &'static str) -> LossUdaf {
        LossUdaf {
            name: format!("loss_{}", loss.replace('-', "_")),
            loss,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// The loss with the call's parameter literals (SPEC order: huber's δ,
    /// quantile's γ, smooth-l1's β), checked.
    fn loss(&self, params: &[f64]) -> Result<Loss> {
        let defaults = Loss::from_name(self.loss, LossParams::default()).map_err(exec)?;
        let one = match params {
            [] => None,
            [v] => Some(*v as f32),
            _ => {
                return plan_err!(
                    "{} takes at most one parameter, got {}",
                    self.name,
                    params.len()
                )
            }
        };
        let p = match (defaults, one) {
            (_, None) => LossParams::default(),
            (Loss::Huber { .. }, v) => LossParams {
                delta: v,
                ..Default::default()
            },
            (Loss::Quantile { .. }, v) => LossParams {
                quantile: v,
                ..Default::default()
            },
            (Loss::SmoothL1 { .. }, v) => LossParams {
                beta: v,
                ..Default::default()
            },
            _ => return plan_err!("{} takes no parameter", self.name),
        };
        Loss::from_name(self.loss, p).map_err(exec)
    }

    fn prepare(&self, args: &AccumulatorArgs) -> Result<(Loss, usize)> {
        let call = CallArgs::of(&self.name, args)?;
        Ok((self.loss(&call.params)?, call.columns))
    }
}

/// A library error as DataFusion's, naming lossgpu.
pub(crate) fn exec(e: lossgpu::Error) -> DataFusionError {
    DataFusionError::Execution(format!("lossgpu: {e}"))
}

impl AggregateUDFImpl for LossUdaf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(&self.name, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let (loss, columns) = self.prepare(&args)?;
        Ok(Box::new(LossAccumulator {
            loss,
            columns,
            gathered: Gathered::default(),
            sums: LossSums::default(),
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let (loss, columns) = self.prepare(&args)?;
        Ok(Box::new(LossGroups {
            loss,
            columns,
            sums: Vec::new(),
        }))
    }
}

/// Σ w·l, Σ w and the count, as a state's columns.
fn state_fields(name: &str) -> Vec<FieldRef> {
    vec![
        Arc::new(Field::new(
            format_state_name(name, "sum"),
            DataType::Float64,
            true,
        )),
        Arc::new(Field::new(
            format_state_name(name, "weight_sum"),
            DataType::Float64,
            true,
        )),
        Arc::new(Field::new(
            format_state_name(name, "count"),
            DataType::UInt64,
            true,
        )),
    ]
}

/// The mean of merged sums, NULL over no rows (as SQL's AVG).
fn finish(loss: &Loss, s: &LossSums) -> Result<Option<f64>> {
    if s.count == 0 {
        return Ok(None);
    }
    s.finish(loss, Reduction::Mean).map(Some).map_err(exec)
}

/// The accumulator without GROUP BY: rows gathered to GATHER, each batch's
/// sums from one engine call.
#[derive(Debug)]
struct LossAccumulator {
    loss: Loss,
    columns: usize,
    gathered: Gathered,
    sums: LossSums,
}

impl LossAccumulator {
    fn add(&mut self, cols: &Columns) -> Result<()> {
        if cols.len() == 0 {
            return Ok(());
        }
        let loss = self.loss;
        let sums = with_input(cols, &mut |e, input| match input {
            Inputs::F32(i) => e.loss_sums(&loss, &i),
            Inputs::F16(i) => e.loss_sums(&loss, &i),
        })?;
        self.sums = self.sums.merge(sums);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let cols = self.gathered.take();
        let cols = Columns::F32(cols.into_iter().map(Into::into).collect());
        self.add(&cols)
    }
}

impl Accumulator for LossAccumulator {
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
        let (sum, wsum, count) = state_arrays(states);
        for i in 0..sum.len() {
            self.sums = self.sums.merge(LossSums {
                sum: sum.value(i),
                weight_sum: wsum.value(i),
                count: count.value(i),
            });
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.flush()?;
        let s = self.sums;
        Ok(vec![
            ScalarValue::Float64(Some(s.sum)),
            ScalarValue::Float64(Some(s.weight_sum)),
            ScalarValue::UInt64(Some(s.count)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.flush()?;
        Ok(ScalarValue::Float64(finish(&self.loss, &self.sums)?))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.gathered.bytes()
    }
}

fn state_arrays(states: &[ArrayRef]) -> (&Float64Array, &Float64Array, &UInt64Array) {
    (
        states[0].as_primitive::<Float64Type>(),
        states[1].as_primitive::<Float64Type>(),
        states[2].as_primitive::<UInt64Type>(),
    )
}

/// The accumulator of GROUP BY: one engine call per batch for every row's
/// w·l (reduction none), added to its group's sums in f64.
#[derive(Debug)]
struct LossGroups {
    loss: Loss,
    columns: usize,
    sums: Vec<LossSums>,
}

impl GroupsAccumulator for LossGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums.resize(total_num_groups, LossSums::default());
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
        self.sums.resize(total_num_groups, LossSums::default());
        let (sum, wsum, count) = state_arrays(values);
        for (i, &g) in group_indices.iter().enumerate() {
            self.sums[g] = self.sums[g].merge(LossSums {
                sum: sum.value(i),
                weight_sum: wsum.value(i),
                count: count.value(i),
            });
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let values = sums
            .iter()
            .map(|s| finish(&self.loss, s))
            .collect::<Result<Float64Array>>()?;
        Ok(Arc::new(values))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(state_columns(&emit_to.take_needed(&mut self.sums)))
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        Ok(state_columns(&self.row_sums(values, opt_filter)?))
    }

    fn size(&self) -> usize {
        self.sums.capacity() * std::mem::size_of::<LossSums>()
    }
}

impl LossGroups {
    /// Each row's state: its w·l, w and a count of 1 from one engine call
    /// for the batch (reduction none), or zeros where a NULL or the filter
    /// leaves it out.
    fn row_sums(
        &self,
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
    ) -> Result<Vec<LossSums>> {
        let arrays = &values[..self.columns];
        let n = arrays[0].len();
        let keep = kept_rows(arrays, filter);
        let cols = Columns::of(arrays, keep.as_deref())?;
        let mut out = vec![LossSums::default(); n];
        if cols.len() == 0 {
            return Ok(out);
        }
        // rmse's rows are mse's; the root is taken when a group finishes.
        let per_row = match self.loss {
            Loss::Rmse => Loss::Mse,
            l => l,
        };
        let (terms, weights) = with_input(&cols, &mut |e, input| {
            Ok(match input {
                Inputs::F32(i) => (e.loss(&per_row, &i, Reduction::None)?, widen(i.weights)),
                Inputs::F16(i) => (e.loss(&per_row, &i, Reduction::None)?, widen(i.weights)),
            })
        })?;
        let LossValue::PerSample(terms) = terms else {
            return Err(DataFusionError::Internal("per-row losses expected".into()));
        };
        let rows = (0..n).filter(|&i| keep.as_ref().is_none_or(|k| k[i]));
        for (k, i) in rows.enumerate() {
            out[i] = LossSums {
                sum: terms[k] as f64,
                weight_sum: weights.as_ref().map_or(1.0, |w| w[k] as f64),
                count: 1,
            };
        }
        Ok(out)
    }
}

/// States as their three columns.
fn state_columns(sums: &[LossSums]) -> Vec<ArrayRef> {
    vec![
        Arc::new(Float64Array::from_iter_values(sums.iter().map(|s| s.sum))),
        Arc::new(Float64Array::from_iter_values(
            sums.iter().map(|s| s.weight_sum),
        )),
        Arc::new(UInt64Array::from_iter_values(sums.iter().map(|s| s.count))),
    ]
}

/// Weights as f32 (half values widened exactly).
fn widen<F: lossgpu::Float>(w: Option<&[F]>) -> Option<Vec<f32>> {
    w.map(|w| w.iter().map(|v| v.to_f32()).collect())
}
