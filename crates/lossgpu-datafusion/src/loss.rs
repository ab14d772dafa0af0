//! `loss_NAME(pred, target [, weight] [, parameters])`: a pointwise loss's
//! mean (SPEC §4) as an aggregate. Its partial state is the loss's
//! [`LossSums`] (Σ w·l, Σ w, count).

use crate::aggregate::{Aggregate, Groups, Plain};
use crate::args::{coerce, CallArgs};
use crate::columns::Kept;
use crate::engines::{exec, per_row, with_input, Inputs};
use crate::state::State;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};
use lossgpu::{Loss, LossParams, LossSums, Reduction, Work};
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

    fn prepare(&self, args: &AccumulatorArgs) -> Result<Pointwise> {
        let call = CallArgs::of(&self.name, args)?;
        Ok(Pointwise {
            loss: self.loss(&call.params)?,
            columns: call.columns,
        })
    }
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
        Ok(LossSums::fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Plain::new(self.prepare(&args)?)))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups::new(self.prepare(&args)?)))
    }
}

/// The means of merged sums, NULL over no rows (as SQL's AVG).
pub(crate) fn means(
    loss: &Loss,
    states: &[LossSums],
    zero_weight: Option<f64>,
) -> Result<ArrayRef> {
    let values = states
        .iter()
        .map(|s| match (s.count, zero_weight) {
            (0, _) => Ok(None),
            (_, Some(v)) if s.weight_sum == 0.0 => Ok(Some(v)),
            _ => s.finish(loss, Reduction::Mean).map(Some).map_err(exec),
        })
        .collect::<Result<Float64Array>>()?;
    Ok(Arc::new(values))
}

/// A pointwise loss over (pred, target [, weight]).
#[derive(Debug)]
struct Pointwise {
    loss: Loss,
    /// Columns read: pred, target and the weight when given.
    columns: usize,
}

impl Aggregate for Pointwise {
    type State = LossSums;

    fn family(&self) -> Work {
        Work::Loss
    }

    fn batch(&self, values: &[ArrayRef]) -> Result<LossSums> {
        let kept = Kept::of(&values[..self.columns], None)?;
        if kept.cols.len() == 0 {
            return Ok(LossSums::default());
        }
        let loss = self.loss;
        with_input(&kept.cols, &mut |e, input| match input {
            Inputs::F32(i) => e.loss_sums(&loss, &i),
            Inputs::F16(i) => e.loss_sums(&loss, &i),
        })
    }

    /// Each row's w·l, w and a count of 1, from one engine call (reduction
    /// none).
    fn rows(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Vec<LossSums>> {
        let kept = Kept::of(&values[..self.columns], filter)?;
        if kept.cols.len() == 0 {
            return kept.spread(Vec::new());
        }
        // rmse's rows are mse's; the root is taken when a group finishes.
        let per_row_loss = match self.loss {
            Loss::Rmse => Loss::Mse,
            l => l,
        };
        let rows = with_input(&kept.cols, &mut |e, input| match input {
            Inputs::F32(i) => per_row(e, &per_row_loss, &i),
            Inputs::F16(i) => per_row(e, &per_row_loss, &i),
        })?;
        kept.spread(rows)
    }

    fn finish(&self, states: &[LossSums]) -> Result<ArrayRef> {
        means(&self.loss, states, None)
    }
}
