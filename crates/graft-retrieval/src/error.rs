//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong when building, querying, saving or loading an
/// index, or when using an embedding cache.
///
/// Bad input is never silently dropped or reinterpreted: a degenerate row, a
/// dimension mismatch or an out-of-range id is an error that names what was
/// wrong and where. File errors carry the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetrievalError {
    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A length or dimension disagrees with what was expected.
    #[error("shape mismatch: {what} is {got}, expected {expected}")]
    Shape {
        /// Which length (e.g. `"query dimension"`).
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length given.
        got: usize,
    },

    /// A vector has zero norm, so its cosine with anything is undefined.
    #[error("{what} row {row} has zero norm")]
    ZeroNorm {
        /// Which input (e.g. `"embeddings"`, `"query"`).
        what: &'static str,
        /// The row (0 for a single query).
        row: usize,
    },

    /// A vector holds a NaN or an infinity.
    #[error("{what} row {row} holds a non-finite value")]
    NonFinite {
        /// Which input (e.g. `"embeddings"`, `"compute output"`).
        what: &'static str,
        /// The first offending row.
        row: usize,
    },

    /// A row id is out of range.
    #[error("{what} {index} is out of bounds for an index of {len} rows")]
    IndexOutOfBounds {
        /// Which id (e.g. `"candidate"`).
        what: &'static str,
        /// The offending id.
        index: usize,
        /// Number of rows.
        len: usize,
    },

    /// An argument is invalid (e.g. zero-dimensional embeddings).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong.
        reason: String,
    },

    /// A file is truncated, corrupt or not in the expected format.
    #[error("invalid file {}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// A cache folder or file belongs to another model.
    #[error("{} holds embeddings of model {found:?}, expected {expected:?}", path.display())]
    ModelMismatch {
        /// The file.
        path: PathBuf,
        /// The model asked for.
        expected: String,
        /// The model the file records.
        found: String,
    },

    /// The embedding function given to
    /// [`EmbeddingCache::get_or_compute`](crate::EmbeddingCache::get_or_compute)
    /// failed.
    #[error("embedding computation failed: {0}")]
    Compute(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl RetrievalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, RetrievalError>;
