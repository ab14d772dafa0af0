//! The one error type of the crate.

/// Everything that can go wrong in `lossgpu`. No public call panics on bad
/// input or on a GPU fault: it returns one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not valid for the operation (lengths, labels, parameters,
    /// empty data). The message names the argument, the index and the value.
    #[error("{0}")]
    InvalidInput(String),
    /// No GPU adapter could be found or opened.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The GPU reported an error (validation, out of memory, internal), or a
    /// request exceeds the device's limits.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The device was lost (driver reset, `destroy()`, removal); later calls on
    /// this engine fail with this error.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file concerned.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for an [`Error::InvalidInput`] built with `format!`.
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::Error::InvalidInput(format!($($arg)*)) };
}
pub(crate) use invalid;
