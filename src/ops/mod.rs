//! The operations: one enum per family, the single source of truth for names,
//! parameters, validation and shader specialisation.

pub mod activation;
pub mod dtype;
pub mod gradient;
pub(crate) mod ids;
pub mod input;
pub mod linear;
pub mod loss;
pub mod metrics;
pub mod options;
pub mod reduction;
pub mod regularizer;

/// Every kernel id as `(WGSL name, value)`: the table [`wgsl_constants`]
/// writes and the shader tests check.
pub(crate) fn kernel_constants() -> Vec<(String, u32)> {
    use activation::{ActOp, Pass};
    use ids::KernelIds;
    use loss::{Domain, RowOp, Term};
    use reduction::CoefMode;
    [
        Term::constants(),
        RowOp::constants(),
        ActOp::constants(),
        Pass::constants(),
        Domain::constants(),
        CoefMode::constants(),
        dtype::DType::constants(),
    ]
    .concat()
}

/// The WGSL declarations of every kernel id, prepended to each shader.
pub(crate) fn wgsl_constants() -> String {
    let mut out = String::from("// Generated from the op enums (src/ops/ids.rs).\n");
    for (name, id) in kernel_constants() {
        out.push_str(&format!("const {name}: u32 = {id}u;\n"));
    }
    out
}
