//! The uniform structs of the shaders, each the host twin of the WGSL struct
//! of the same name. A test without a GPU (below) checks with naga's
//! layouter that every twin has the size, field names and offsets of its
//! WGSL struct.

use crate::ops::reduction::CoefMode;

/// A `#[repr(C)]` uniform struct plus `FIELDS`: (name, byte offset) of
/// each field, for the layout test.
macro_rules! uniforms {
    ($(
        $(#[$meta:meta])*
        struct $name:ident { $($field:ident: $ty:ty),* $(,)? }
    )*) => {$(
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
        pub(crate) struct $name {
            $(pub $field: $ty),*
        }

        impl $name {
            #[cfg(test)]
            const FIELDS: &'static [(&'static str, usize)] =
                &[$((stringify!($field), std::mem::offset_of!($name, $field))),*];
        }
    )*};
}

uniforms! {
    /// `shaders/activation.wgsl`.
    struct ActParams {
        n4: u32,
        base: u32,
        seed_lo: u32,
        seed_hi: u32,
        a: f32,
        training: u32,
        lower: f32,
        upper: f32,
    }

    /// `shaders/loss.wgsl`.
    struct LossParams {
        n: u32,
        base: u32,
        partial_base: u32,
        coef_mode: u32,
        param: f32,
        scale: f32,
        col0: u32,
        _pad1: u32,
    }

    /// `shaders/rows.wgsl`.
    struct RowParams {
        rows: u32,
        cols: u32,
        base_row: u32,
        pred_skip: u32,
        target_skip: u32,
        weight_skip: u32,
        out_skip: u32,
        lse_skip: u32,
        coef_mode: u32,
        scale: f32,
        ignore: u32,
        smoothing: f32,
        z_loss: f32,
        margin: f32,
        power: u32,
        parts: u32,
    }

    /// `shaders/reduce.wgsl`.
    struct ReduceParams {
        count: u32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
    }

    /// `shaders/stats.wgsl`.
    struct StatsParams {
        n: u32,
        partial_base: u32,
        eps: f32,
        limit: f32,
    }

    /// `shaders/metrics.wgsl`.
    struct MetricParams {
        n: u32,
        base: u32,
        partial_base: u32,
        _pad0: u32,
        delta: f32,
        gamma: f32,
        _pad1: u32,
        _pad2: u32,
    }

    /// `shaders/probe.wgsl`.
    struct ProbeParams {
        n: u32,
        partial_base: u32,
        _pad0: u32,
        _pad1: u32,
    }

    /// `shaders/linear.wgsl`.
    struct LinearParams {
        m: u32,
        n: u32,
        k: u32,
        lda: u32,
        ldb: u32,
        ldc: u32,
        a_skip: u32,
        b_skip: u32,
        c_skip: u32,
        v0: u32,
        classes: u32,
        ignore: u32,
        smoothing: f32,
        z_loss: f32,
        scale: f32,
        row0: u32,
        z_skip: u32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

/// How the gradient kernels scale w·dl/dp (grad_factor in common.wgsl).
#[derive(Clone, Copy)]
pub(crate) enum Coef {
    Scale(f32),
    InverseWeightSum,
    Rmse,
}

impl Coef {
    pub(crate) fn mode(self) -> (u32, f32) {
        match self {
            Coef::Scale(s) => (CoefMode::Scale.id(), s),
            Coef::InverseWeightSum => (CoefMode::InverseWeightSum.id(), 0.0),
            Coef::Rmse => (CoefMode::Rmse.id(), 0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::pipelines::{shader_source, Family};

    type Fields = &'static [(&'static str, usize)];

    fn wgsl_layout(family: Family, name: &str) -> (Vec<(String, usize)>, usize) {
        let source = shader_source(family, false);
        let module = naga::front::wgsl::parse_str(&source).expect("the shader parses");
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).expect("the layouter runs");
        let (handle, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{} has no struct {name}", family.file()));
        let naga::TypeInner::Struct { members, .. } = &ty.inner else {
            panic!("{name} is not a struct");
        };
        let fields = members
            .iter()
            .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
            .collect();
        (fields, layouter[handle].size as usize)
    }

    #[test]
    fn every_uniform_struct_matches_its_wgsl_twin() {
        let twins: [(Family, &str, Fields, usize); 8] = [
            (
                Family::Activation,
                "ActParams",
                ActParams::FIELDS,
                size_of::<ActParams>(),
            ),
            (
                Family::Loss,
                "LossParams",
                LossParams::FIELDS,
                size_of::<LossParams>(),
            ),
            (
                Family::Rows,
                "RowParams",
                RowParams::FIELDS,
                size_of::<RowParams>(),
            ),
            (
                Family::Reduce,
                "ReduceParams",
                ReduceParams::FIELDS,
                size_of::<ReduceParams>(),
            ),
            (
                Family::Stats,
                "StatsParams",
                StatsParams::FIELDS,
                size_of::<StatsParams>(),
            ),
            (
                Family::Metrics,
                "MetricParams",
                MetricParams::FIELDS,
                size_of::<MetricParams>(),
            ),
            (
                Family::Probe,
                "ProbeParams",
                ProbeParams::FIELDS,
                size_of::<ProbeParams>(),
            ),
            (
                Family::Linear,
                "LinearParams",
                LinearParams::FIELDS,
                size_of::<LinearParams>(),
            ),
        ];
        for (family, name, fields, size) in twins {
            let (wgsl, wgsl_size) = wgsl_layout(family, name);
            let rust: Vec<(String, usize)> =
                fields.iter().map(|&(f, o)| (f.to_string(), o)).collect();
            assert_eq!(
                rust,
                wgsl,
                "{name}: fields and offsets differ from {}",
                family.file()
            );
            assert_eq!(
                size,
                wgsl_size,
                "{name}: size differs from {}",
                family.file()
            );
        }
    }

    #[test]
    fn the_layout_test_sees_a_wrong_offset() {
        // A struct whose second field is 8 bytes in does not match ProbeParams.
        let (wgsl, _) = wgsl_layout(Family::Probe, "ProbeParams");
        let wrong = [("n".to_string(), 0), ("partial_base".to_string(), 8)];
        assert_ne!(wgsl[..2], wrong[..]);
    }
}
