//! `cross_entropy(logits, label [, weight] [, label_smoothing])`: the mean
//! cross-entropy of rows of logits held in a list column (SPEC §4), with
//! class labels (an integer column) or probability targets (a list column
//! like the logits). Its partial state is [`LossSums`].

use crate::aggregate::{Aggregate, Groups, Plain};
use crate::args::{coerce, CallArgs};
use crate::engines::{engine_for, exec, per_row, Inputs};
use crate::lists::{values_in, ListRows, Read};
use crate::loss::means;
use crate::state::State;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};
use lossgpu::{Engine, Loss, LossInput, LossSums, Work};
use std::ops::Range;
use std::sync::Arc;

/// PyTorch's default `ignore_index`: a row labelled −100 adds nothing and
/// leaves the mean's denominator.
pub const IGNORE_INDEX: i64 = -100;

/// The aggregate `cross_entropy`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CrossEntropyUdaf {
    signature: Signature,
}

impl Default for CrossEntropyUdaf {
    fn default() -> Self {
        CrossEntropyUdaf {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// A list of Float16/32/64 stays; a list of other numbers becomes one of
/// Float64.
fn float_list(t: &DataType) -> Option<DataType> {
    let float = |f: &FieldRef| -> FieldRef {
        match f.data_type() {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => f.clone(),
            _ => Arc::new(Field::new(f.name(), DataType::Float64, true)),
        }
    };
    let numeric = |f: &FieldRef| f.data_type().is_numeric();
    match t {
        DataType::List(f) if numeric(f) => Some(DataType::List(float(f))),
        DataType::LargeList(f) if numeric(f) => Some(DataType::LargeList(float(f))),
        DataType::FixedSizeList(f, m) if numeric(f) => Some(DataType::FixedSizeList(float(f), *m)),
        _ => None,
    }
}

impl AggregateUDFImpl for CrossEntropyUdaf {
    fn name(&self) -> &str {
        "cross_entropy"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Logits: a list of numbers; label: an integer (Int64) or a list of
    /// probabilities; then a numeric weight and literals.
    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let name = "cross_entropy";
        let Some(logits) = types.first().and_then(float_list) else {
            return plan_err!(
                "{name}: the first argument is a list of logits, got {}",
                types
                    .first()
                    .map_or("nothing".to_string(), |t| t.to_string())
            );
        };
        let label = match types.get(1) {
            Some(t) if t.is_integer() || *t == DataType::Null => DataType::Int64,
            Some(t) => match float_list(t) {
                Some(l) => l,
                None => return plan_err!(
                    "{name}: the second argument is an integer class label or a list of probabilities, got {t}"
                ),
            },
            None => return plan_err!("{name} takes (logits, label [, weight] [, label_smoothing])"),
        };
        let mut out = vec![logits, label];
        out.extend(coerce(name, &types[2..])?);
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(LossSums::fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Plain::new(CrossEntropy::of(&args)?)))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups::new(CrossEntropy::of(&args)?)))
    }
}

/// Cross-entropy over (logits, label [, weight]) with an optional label
/// smoothing ε.
#[derive(Debug)]
struct CrossEntropy {
    /// Columns read: logits, label and the weight when given.
    columns: usize,
    smoothing: Option<f32>,
}

impl CrossEntropy {
    fn of(args: &AccumulatorArgs) -> Result<CrossEntropy> {
        let call = CallArgs::of("cross_entropy", args)?;
        let smoothing = match call.params[..] {
            [] => None,
            [e] => Some(e as f32),
            _ => return plan_err!("cross_entropy takes at most one parameter (label_smoothing)"),
        };
        Ok(CrossEntropy {
            columns: call.columns,
            smoothing,
        })
    }

    /// The rows kept (no NULL argument, within the filter), in runs of
    /// equal length: one engine call per run.
    fn runs(&self, batch: &Batch, filter: Option<&BooleanArray>) -> Vec<Vec<usize>> {
        let mut runs: Vec<Vec<usize>> = Vec::new();
        for i in 0..batch.logits.spans.len() {
            if !batch.is_valid(i) || filter.is_some_and(|f| !f.is_valid(i) || !f.value(i)) {
                continue;
            }
            match runs.last_mut() {
                Some(run) if batch.logits.len_of(run[0]) == batch.logits.len_of(i) => run.push(i),
                _ => runs.push(vec![i]),
            }
        }
        runs
    }

    /// Calls `f` with the loss input of `rows` (equal lengths) and the
    /// engine for their logits.
    fn call<T>(
        &self,
        batch: &Batch,
        rows: &[usize],
        f: &mut impl FnMut(&Engine, Inputs) -> lossgpu::Result<T>,
    ) -> Result<T> {
        let m = batch.logits.len_of(rows[0]);
        let engine = engine_for(rows.len() * m);
        let r = if batch.half() {
            let held = Held::of(batch, rows, m)?;
            f(engine, Inputs::F16(held.input(m, self.smoothing)))
        } else {
            let held = Held::of(batch, rows, m)?;
            f(engine, Inputs::F32(held.input(m, self.smoothing)))
        };
        r.map_err(exec)
    }
}

impl Aggregate for CrossEntropy {
    type State = LossSums;

    fn family(&self) -> Work {
        Work::RowLoss
    }

    fn work(&self, values: &[ArrayRef]) -> usize {
        values_in(&values[0])
    }

    fn batch(&self, values: &[ArrayRef]) -> Result<LossSums> {
        let batch = Batch::of(&values[..self.columns])?;
        let mut sums = LossSums::default();
        for run in self.runs(&batch, None) {
            let s = self.call(&batch, &run, &mut |e, input| match input {
                Inputs::F32(i) => e.loss_sums(&Loss::CrossEntropy, &i),
                Inputs::F16(i) => e.loss_sums(&Loss::CrossEntropy, &i),
            })?;
            sums = sums.merge(s);
        }
        Ok(sums)
    }

    fn rows(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Vec<LossSums>> {
        let batch = Batch::of(&values[..self.columns])?;
        let mut out = vec![LossSums::default(); batch.logits.spans.len()];
        for run in self.runs(&batch, filter) {
            let rows = self.call(&batch, &run, &mut |e, input| match input {
                Inputs::F32(i) => per_row(e, &Loss::CrossEntropy, &i),
                Inputs::F16(i) => per_row(e, &Loss::CrossEntropy, &i),
            })?;
            for (&i, r) in run.iter().zip(rows) {
                out[i] = r;
            }
        }
        Ok(out)
    }

    /// The mean; NaN where every row was ignored (as PyTorch), NULL over no
    /// rows.
    fn finish(&self, states: &[LossSums]) -> Result<ArrayRef> {
        means(&Loss::CrossEntropy, states, Some(f64::NAN))
    }
}

/// One batch's argument columns.
struct Batch<'a> {
    logits: ListRows<'a>,
    target: Targets<'a>,
    weights: Option<&'a ArrayRef>,
}

/// Class labels (Int64) or probability rows.
enum Targets<'a> {
    Labels(&'a ArrayRef),
    Probabilities(ListRows<'a>),
}

impl<'a> Batch<'a> {
    fn of(values: &'a [ArrayRef]) -> Result<Batch<'a>> {
        let target = match values[1].data_type() {
            DataType::Int64 => Targets::Labels(&values[1]),
            _ => Targets::Probabilities(ListRows::of(&values[1])?),
        };
        Ok(Batch {
            logits: ListRows::of(&values[0])?,
            target,
            weights: values.get(2),
        })
    }

    /// Whether row i has logits, a target and a weight, none NULL.
    fn is_valid(&self, i: usize) -> bool {
        let target = match &self.target {
            Targets::Labels(l) => l.is_valid(i),
            Targets::Probabilities(p) => p.is_valid(i),
        };
        self.logits.is_valid(i) && target && self.weights.is_none_or(|w| w.is_valid(i))
    }

    /// Whether every float the call reads is Float16 (read as f16, else
    /// each is read as f32).
    fn half(&self) -> bool {
        let f16 = |a: &ArrayRef| a.data_type() == &DataType::Float16;
        f16(self.logits.values)
            && match &self.target {
                Targets::Labels(_) => true,
                Targets::Probabilities(p) => f16(p.values),
            }
            && self.weights.is_none_or(f16)
    }
}

/// A run's data as the engine takes it, borrowed from the batch where it
/// can be.
struct Held<'a, F: Read> {
    logits: std::borrow::Cow<'a, [F]>,
    labels: Vec<u32>,
    probabilities: Option<std::borrow::Cow<'a, [F]>>,
    weights: Option<std::borrow::Cow<'a, [F]>>,
}

impl<'a, F: Read> Held<'a, F> {
    /// The data of `rows`, each with `m` logits; labels are checked.
    fn of(batch: &Batch<'a>, rows: &[usize], m: usize) -> Result<Held<'a, F>> {
        let logits = F::read(batch.logits.values, &batch.logits.spans_of(rows))?;
        let (labels, probabilities) = match &batch.target {
            Targets::Labels(l) => (labels(l, rows, m)?, None),
            Targets::Probabilities(p) => {
                if let Some(&i) = rows.iter().find(|&&i| p.len_of(i) != m) {
                    return exec_err!(
                        "cross_entropy: a row has {m} logits and {} target probabilities",
                        p.len_of(i)
                    );
                }
                (Vec::new(), Some(F::read(p.values, &p.spans_of(rows))?))
            }
        };
        let one_each: Vec<Range<usize>> = rows.iter().map(|&i| i..i + 1).collect();
        let weights = batch.weights.map(|w| F::read(w, &one_each)).transpose()?;
        Ok(Held {
            logits,
            labels,
            probabilities,
            weights,
        })
    }

    /// The loss input: class labels (with ignore index −100 where a row
    /// has it), or probabilities; the weights and the smoothing when given.
    fn input(&self, m: usize, smoothing: Option<f32>) -> LossInput<'_, F> {
        let input = match &self.probabilities {
            Some(p) => LossInput::rows(&self.logits, m, p),
            // The ignore index costs a check per row: set it only where it
            // changes the result.
            None if self.labels.contains(&(IGNORE_INDEX as u32)) => {
                LossInput::classes(&self.logits, m, &self.labels).with_ignore_index(IGNORE_INDEX)
            }
            None => LossInput::classes(&self.logits, m, &self.labels),
        };
        let input = match &self.weights {
            Some(w) => input.with_weights(w),
            None => input,
        };
        match smoothing {
            Some(e) => input.with_label_smoothing(e),
            None => input,
        }
    }
}

/// The labels of `rows` as the engine's class indices: each in [0, m),
/// or −100 (ignored).
fn labels(column: &ArrayRef, rows: &[usize], m: usize) -> Result<Vec<u32>> {
    let values = column.as_primitive::<Int64Type>().values();
    rows.iter()
        .map(|&i| match values[i] {
            IGNORE_INDEX => Ok(IGNORE_INDEX as u32),
            l if (0..m as i64).contains(&l) => Ok(l as u32),
            l => exec_err!(
                "cross_entropy: label {l} is outside [0, {m}) for a row of {m} logits (−100 is ignored)"
            ),
        })
        .collect()
}
