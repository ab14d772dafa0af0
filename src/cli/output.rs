//! What a command reports, printed as `key: value` lines or as one JSON
//! object. Fields keep their insertion order so the JSON reads in SPEC order.

use clap::ValueEnum;
use lossgpu::{Error, Result};
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// A JSON value. Our own type rather than `serde_json::Value` because that
/// one sorts object keys and turns NaN into null, and SPEC wants the string.
#[derive(Debug, Clone)]
pub enum Value {
    Str(String),
    Num(f64),
    Int(u64),
    Bool(bool),
    Null,
    List(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(&quote(s)),
            Value::Num(v) if v.is_finite() => {
                out.push_str(&serde_json::to_string(v).unwrap_or_else(|_| v.to_string()))
            }
            Value::Num(v) => out.push_str(&quote(non_finite(*v))),
            Value::Int(v) => out.push_str(&v.to_string()),
            Value::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
            Value::Null => out.push_str("null"),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Value::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&quote(key));
                    out.push_str(": ");
                    value.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// The plain rendering used in text mode.
    fn text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Num(v) => number_text(*v),
            Value::Null => "none".to_string(),
            other => {
                let mut s = String::new();
                other.write_json(&mut s);
                s
            }
        }
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
}

fn non_finite(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// Shortest round-trip digits, with an exponent for very large or small
/// magnitudes (`Display` for f64 would print 1e-20 as twenty zeros).
pub fn number_text(v: f64) -> String {
    if v.is_finite() {
        format!("{v:?}")
    } else {
        non_finite(v).to_string()
    }
}

struct Field {
    key: &'static str,
    /// None: shown in text mode only (SPEC fixes the JSON fields).
    json: Option<Value>,
    text: String,
}

/// The result of one command.
#[derive(Default)]
pub struct Report {
    fields: Vec<Field>,
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    /// A field with its own text rendering.
    pub fn field(&mut self, key: &'static str, value: Value, text: String) {
        self.fields.push(Field {
            key,
            json: Some(value),
            text,
        });
    }

    fn plain(&mut self, key: &'static str, value: Value) {
        let text = value.text();
        self.field(key, value, text);
    }

    pub fn str(&mut self, key: &'static str, s: &str) {
        self.plain(key, Value::Str(s.to_string()));
    }

    pub fn num(&mut self, key: &'static str, v: f64) {
        self.plain(key, Value::Num(v));
    }

    pub fn int(&mut self, key: &'static str, v: usize) {
        self.plain(key, Value::Int(v as u64));
    }

    pub fn bool(&mut self, key: &'static str, v: bool) {
        self.plain(key, Value::Bool(v));
    }

    /// A line for people that is not part of the JSON contract.
    pub fn text_only(&mut self, key: &'static str, text: String) {
        self.fields.push(Field {
            key,
            json: None,
            text,
        });
    }

    fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self
                .fields
                .iter()
                .map(|f| format!("{}: {}\n", f.key, f.text))
                .collect(),
            Format::Json => {
                let object = Value::Object(
                    self.fields
                        .iter()
                        .filter_map(|f| f.json.clone().map(|v| (f.key.to_string(), v)))
                        .collect(),
                );
                let mut out = String::new();
                object.write_json(&mut out);
                out.push('\n');
                out
            }
        }
    }

    /// The report as one JSON object (what `--format json` prints).
    pub fn to_json(&self) -> String {
        self.render(Format::Json)
    }

    /// Writes to stdout; a closed pipe is an error, not a panic.
    pub fn print(&self, format: Format) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(self.render(format).as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| Error::Io {
                path: "stdout".to_string(),
                message: e.to_string(),
            })
    }
}
