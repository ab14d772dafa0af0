//! The JSON report of SPEC §4: `{"columns": [NAME...], "rows": [[VALUE...]...],
//! "backend", "device"}`. As every lossgpu command, a non-finite number is
//! the string "NaN", "Infinity" or "-Infinity"; a struct is an object of
//! its fields in order, a list an array, NULL null.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::*;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::scalar::ScalarValue;
use serde_json::{json, Map, Value};

pub fn report(
    columns: &[String],
    batches: &[RecordBatch],
    backend: &str,
    device: &str,
) -> Result<String> {
    let mut rows = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let row = b
                .columns()
                .iter()
                .map(|c| value(c, i))
                .collect::<Result<Vec<_>>>()?;
            rows.push(Value::Array(row));
        }
    }
    let report = json!({
        "columns": columns,
        "rows": rows,
        "backend": backend,
        "device": device,
    });
    Ok(report.to_string())
}

fn number(v: f64) -> Value {
    match serde_json::Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => Value::String("NaN".into()),
        None if v > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// Row i of a column as JSON.
fn value(column: &ArrayRef, i: usize) -> Result<Value> {
    if column.is_null(i) {
        return Ok(Value::Null);
    }
    Ok(match column.data_type() {
        DataType::Struct(fields) => {
            let s = column.as_struct();
            let mut object = Map::new();
            for (k, f) in fields.iter().enumerate() {
                object.insert(f.name().clone(), value(s.column(k), i)?);
            }
            Value::Object(object)
        }
        DataType::Float16 => number(column.as_primitive::<Float16Type>().value(i).to_f64()),
        DataType::Float32 => number(column.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => number(column.as_primitive::<Float64Type>().value(i)),
        _ => match ScalarValue::try_from_array(column, i)? {
            ScalarValue::Boolean(Some(b)) => Value::Bool(b),
            ScalarValue::Int8(Some(v)) => json!(v),
            ScalarValue::Int16(Some(v)) => json!(v),
            ScalarValue::Int32(Some(v)) => json!(v),
            ScalarValue::Int64(Some(v)) => json!(v),
            ScalarValue::UInt8(Some(v)) => json!(v),
            ScalarValue::UInt16(Some(v)) => json!(v),
            ScalarValue::UInt32(Some(v)) => json!(v),
            ScalarValue::UInt64(Some(v)) => json!(v),
            ScalarValue::List(l) => list(l.value(0))?,
            ScalarValue::LargeList(l) => list(l.value(0))?,
            ScalarValue::FixedSizeList(l) => list(l.value(0))?,
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => Value::String(s),
            other => Value::String(other.to_string()),
        },
    })
}

fn list(items: ArrayRef) -> Result<Value> {
    (0..items.len())
        .map(|i| value(&items, i))
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}
