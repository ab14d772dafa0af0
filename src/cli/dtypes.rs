//! SPEC §1c on the command line: how 2-byte float inputs are read
//! (`--dtype`) and the dtype of every array written (`--out-dtype`), set
//! once per run by [`set`] and read by the file readers and writers.

use lossgpu::{bf16, f16, DType, Float};
use std::sync::OnceLock;

/// A half-precision input type (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Half {
    F16,
    Bf16,
}

/// The dtype of the arrays a command writes (`--out-dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Out {
    F32,
    F16,
    Bf16,
}

static SETTINGS: OnceLock<(Option<Half>, Out)> = OnceLock::new();

/// Records the run's `--dtype` and `--out-dtype` (the first call wins).
pub fn set(input: Option<Half>, out: Out) {
    let _ = SETTINGS.set((input, out));
}

fn settings() -> (Option<Half>, Out) {
    SETTINGS.get().copied().unwrap_or((None, Out::F32))
}

/// The type of a 2-byte float file: `<f2` is f16 and `<V2`/`|V2` (numpy's
/// spelling of an `ml_dtypes.bfloat16` array) bf16, unless `--dtype` says
/// how every such file is read.
pub fn half_of(void: bool) -> DType {
    match (settings().0, void) {
        (Some(Half::F16), _) => DType::F16,
        (Some(Half::Bf16), _) | (None, true) => DType::Bf16,
        (None, false) => DType::F16,
    }
}

/// The dtype outputs are written in.
pub fn out() -> DType {
    match settings().1 {
        Out::F32 => DType::F32,
        Out::F16 => DType::F16,
        Out::Bf16 => DType::Bf16,
    }
}

/// The npy descr of a written dtype: bf16 as `<V2`, as numpy saves
/// `ml_dtypes.bfloat16`.
pub fn descr(d: DType) -> &'static str {
    match d {
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::Bf16 => "<V2",
    }
}

/// `values` as `H`, rounded to nearest even (exact for values read from
/// `H` files).
pub fn narrow<H: Float>(values: &[f32]) -> Vec<H> {
    values.iter().map(|&v| H::from_f32(v)).collect()
}

/// `values` in `d`, little-endian, rounded to nearest even.
pub fn encode(values: &[f32], d: DType, out: &mut Vec<u8>) {
    match d {
        DType::F32 => out.extend(values.iter().flat_map(|v| v.to_le_bytes())),
        DType::F16 => out.extend(values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes())),
        DType::Bf16 => out.extend(values.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes())),
    }
}
