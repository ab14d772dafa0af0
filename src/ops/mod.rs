//! The operations: one enum per family, the single source of truth for names,
//! parameters, validation and shader specialisation.

pub mod activation;
pub mod gradient;
pub mod loss;
pub mod metrics;
pub mod reduction;
pub mod regularizer;
