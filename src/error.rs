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
    /// A value of an input is outside what the operation accepts: `input`
    /// ("pred", "target" or "weights") at `index` holds `value`.
    #[error("{op}: {input}[{index}] = {value} {rule}")]
    Value {
        /// The operation (a loss's name).
        op: &'static str,
        /// Which input.
        input: &'static str,
        /// The position of the first offending value.
        index: usize,
        /// The value, as written in the message.
        value: String,
        /// What it breaks, e.g. "is negative (weights must be >= 0)".
        rule: String,
    },
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

impl Error {
    /// The same error with a [`Error::Value`]'s index moved by `by`: for a
    /// slice that is one part of a larger input (a file read in chunks), the
    /// position in the whole input.
    pub fn offset(self, by: usize) -> Error {
        match self {
            Error::Value {
                op,
                input,
                index,
                value,
                rule,
            } => Error::Value {
                op,
                input,
                index: index + by,
                value,
                rule,
            },
            other => other,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for an [`Error::InvalidInput`] built with `format!`.
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::Error::InvalidInput(format!($($arg)*)) };
}
pub(crate) use invalid;
