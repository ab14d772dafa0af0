//! The arguments of an aggregate call: pred, target, an optional weight
//! column, then parameter literals (SPEC §4), and the coercion of numeric
//! columns to the float types the engine reads.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::physical_expr::expressions::Literal;

/// Float16 and Float32 stay (the engine reads them as they are), other
/// numbers become Float64 (narrowed to f32 as they are read), NULL too.
pub(crate) fn coerce(name: &str, types: &[DataType]) -> Result<Vec<DataType>> {
    types
        .iter()
        .map(|t| match t {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Ok(t.clone()),
            DataType::Null => Ok(DataType::Float64),
            t if t.is_numeric() => Ok(DataType::Float64),
            t => plan_err!("{name}: arguments are numbers, got {t}"),
        })
        .collect()
}

/// How a call's arguments split: the columns read (pred, target and the
/// weight when given) and the parameter literals after them.
pub(crate) struct CallArgs {
    pub columns: usize,
    pub params: Vec<f64>,
}

impl CallArgs {
    /// pred and target, then a column (the weight) or literals; every
    /// argument after the first literal is a literal.
    pub(crate) fn of(name: &str, args: &AccumulatorArgs) -> Result<CallArgs> {
        let literal = |i: usize| {
            args.exprs[i]
                .downcast_ref::<Literal>()
                .map(|l| l.value().clone())
        };
        let n = args.exprs.len();
        if n < 2 {
            return plan_err!(
                "{name} takes (pred, target [, weight] [, parameters]), got {n} arguments"
            );
        }
        let columns = if n > 2 && literal(2).is_none() { 3 } else { 2 };
        let mut params = Vec::new();
        for i in columns..n {
            match literal(i) {
                Some(v) => params.push(number(name, &v)?),
                None => {
                    return plan_err!(
                        "{name}: argument {} must be a literal parameter (only the third argument may be a weight column)",
                        i + 1
                    )
                }
            }
        }
        Ok(CallArgs { columns, params })
    }
}

/// A parameter literal as f64.
fn number(name: &str, v: &ScalarValue) -> Result<f64> {
    match v.cast_to(&DataType::Float64)? {
        ScalarValue::Float64(Some(x)) => Ok(x),
        _ => plan_err!("{name}: a parameter must be a number, got {v}"),
    }
}
