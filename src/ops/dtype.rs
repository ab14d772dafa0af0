//! The float types an input may hold (SPEC §1c): f32, and the half
//! precisions f16 and bf16 of the `half` crate. Half values are widened to
//! f32 where they are read (on the GPU inside the kernels, which read 2
//! bytes a value; on the CPU before its f32 loops); arithmetic and sums are
//! as for f32 data.

use super::ids::kernel_ids;
use std::borrow::Cow;

pub use half::{bf16, f16};

kernel_ids! {
    /// How an input's values are stored (override `*_DTYPE` of the
    /// shaders).
    pub enum DType("DTYPE") {
        /// 4 bytes a value.
        F32,
        /// IEEE binary16, 2 bytes a value.
        F16,
        /// bfloat16 (the upper half of an f32), 2 bytes a value.
        Bf16,
    }
}

impl DType {
    /// Bytes a value.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::Bf16 => 2,
        }
    }

    /// Its name: `f32`, `f16` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for super::f16 {}
    impl Sealed for super::bf16 {}
}

/// A value type of a loss's inputs: `f32`, [`f16`](struct@f16) or [`bf16`]. Every value
/// widens to f32 exactly.
///
/// ```
/// use lossgpu::{bf16, Engine, Loss, LossInput, Reduction};
///
/// let logits: Vec<bf16> = [2.0f32, -1.0, 0.5].iter().map(|&v| bf16::from_f32(v)).collect();
/// let labels: Vec<bf16> = [1.0f32, 0.0, 1.0].iter().map(|&v| bf16::from_f32(v)).collect();
/// let input = LossInput::new(&logits, &labels);
/// let engine = Engine::cpu();
/// let v = engine.loss(&Loss::BceLogits, &input, Reduction::Mean)?;
/// // The same bits as the widened f32 values give.
/// let (l32, t32): (Vec<f32>, Vec<f32>) = (
///     logits.iter().map(|v| v.to_f32()).collect(),
///     labels.iter().map(|v| v.to_f32()).collect(),
/// );
/// assert_eq!(v, engine.loss(&Loss::BceLogits, &LossInput::new(&l32, &t32), Reduction::Mean)?);
/// # Ok::<(), lossgpu::Error>(())
/// ```
pub trait Float:
    bytemuck::Pod + Send + Sync + std::fmt::Debug + PartialEq + sealed::Sealed + 'static
{
    /// How it is stored.
    const DTYPE: DType;

    /// The value as an f32 (exact).
    fn to_f32(self) -> f32;

    /// The nearest value to `v` (round to nearest, ties to even).
    fn from_f32(v: f32) -> Self;

    /// The values as f32: the slice itself for f32, else a widened copy.
    fn widen(values: &[Self]) -> Cow<'_, [f32]>;

    /// `dst[i] = from_f32(src[i])` (equal lengths).
    fn narrow_into(src: &[f32], dst: &mut [Self]);

    /// The values as `Self`: the vector itself for f32, else a narrowed
    /// copy (on all cores past one block).
    fn narrow(values: Vec<f32>) -> Vec<Self> {
        use rayon::prelude::*;
        let mut out = vec![Self::zeroed(); values.len()];
        out.par_chunks_mut(BLOCK)
            .zip(values.par_chunks(BLOCK))
            .for_each(|(o, v)| Self::narrow_into(v, o));
        out
    }
}

impl Float for f32 {
    const DTYPE: DType = DType::F32;

    fn to_f32(self) -> f32 {
        self
    }

    fn from_f32(v: f32) -> Self {
        v
    }

    fn widen(values: &[f32]) -> Cow<'_, [f32]> {
        Cow::Borrowed(values)
    }

    fn narrow_into(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }

    fn narrow(values: Vec<f32>) -> Vec<f32> {
        values
    }
}

impl Float for f16 {
    const DTYPE: DType = DType::F16;

    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }

    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }

    fn widen(values: &[f16]) -> Cow<'_, [f32]> {
        use half::slice::HalfFloatSliceExt;
        Cow::Owned(widen_blocks(values, |v| {
            let mut out = vec![0.0f32; v.len()];
            v.convert_to_f32_slice(&mut out);
            out
        }))
    }

    fn narrow_into(src: &[f32], dst: &mut [f16]) {
        use half::slice::HalfFloatSliceExt;
        dst.convert_from_f32_slice(src);
    }
}

impl Float for bf16 {
    const DTYPE: DType = DType::Bf16;

    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }

    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }

    fn widen(values: &[bf16]) -> Cow<'_, [f32]> {
        // The upper half of an f32: a shift the compiler vectorises.
        Cow::Owned(widen_blocks(values, |v| {
            v.iter()
                .map(|b| f32::from_bits((b.to_bits() as u32) << 16))
                .collect()
        }))
    }

    fn narrow_into(src: &[f32], dst: &mut [bf16]) {
        use half::slice::HalfFloatSliceExt;
        dst.convert_from_f32_slice(src);
    }
}

/// Values a widening task takes: a block of the CPU backend's loops is
/// widened on its own thread.
const BLOCK: usize = 1 << 16;

/// `widen(values)`, on all cores a block at a time past one block.
fn widen_blocks<T: Sync>(values: &[T], widen: impl Fn(&[T]) -> Vec<f32> + Sync + Send) -> Vec<f32> {
    use rayon::prelude::*;
    if values.len() <= BLOCK {
        return widen(values);
    }
    values.par_chunks(BLOCK).flat_map_iter(widen).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_f32_rounds_ties_to_even() {
        let tie = |k: i32| 2f32.powi(k);
        assert_eq!(<f16 as Float>::from_f32(1.0 + tie(-11)).to_f32(), 1.0);
        assert_eq!(
            <f16 as Float>::from_f32(1.0 + 3.0 * tie(-11)).to_f32(),
            1.0 + tie(-9)
        );
        assert_eq!(<bf16 as Float>::from_f32(1.0 + tie(-8)).to_f32(), 1.0);
        assert_eq!(
            <bf16 as Float>::from_f32(1.0 + 3.0 * tie(-8)).to_f32(),
            1.0 + tie(-6)
        );
    }

    #[test]
    fn widening_is_exact_for_every_half_value() {
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let h: Vec<f16> = all.iter().map(|&b| f16::from_bits(b)).collect();
        let b: Vec<bf16> = all.iter().map(|&b| bf16::from_bits(b)).collect();
        let (wh, wb) = (f16::widen(&h), bf16::widen(&b));
        for k in 0..all.len() {
            let (x, y) = (h[k].to_f64(), b[k].to_f64());
            assert!(
                wh[k] as f64 == x || (x.is_nan() && wh[k].is_nan()),
                "f16 {:#x}",
                all[k]
            );
            assert!(
                wb[k] as f64 == y || (y.is_nan() && wb[k].is_nan()),
                "bf16 {:#x}",
                all[k]
            );
        }
    }
}
