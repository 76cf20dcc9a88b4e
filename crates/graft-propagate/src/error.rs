//! Error type of `graft-propagate`.

use std::path::PathBuf;

use graft_graph::GraphError;

/// Everything that can go wrong in `graft-propagate`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PropagateError {
    /// Two sizes that must agree do not (e.g. the rows of `E0` and the
    /// number of graph nodes).
    #[error("dimension mismatch: {what}: expected {expected}, got {got}")]
    DimMismatch {
        /// Which size disagrees, e.g. `"E0 rows vs. adjacency nodes"`.
        what: &'static str,
        /// The size implied by the other operand.
        expected: usize,
        /// The size found.
        got: usize,
    },
    /// The adjacency matrix is not square.
    #[error("adjacency must be square, got {rows}x{cols}")]
    NotSquare {
        /// Number of rows.
        rows: usize,
        /// Number of columns.
        cols: usize,
    },
    /// A NaN or infinite value in an input.
    #[error("non-finite value {value} in {what} at ({row}, {col})")]
    NonFinite {
        /// Which input, e.g. `"adjacency"` or `"E0"`.
        what: &'static str,
        /// Row of the first offending entry.
        row: usize,
        /// Column of the first offending entry.
        col: usize,
        /// The offending value.
        value: f32,
    },
    /// A configuration value is out of its domain.
    #[error("invalid configuration: {field}: {reason}")]
    Config {
        /// The configuration field.
        field: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// The adjacency has a structure the kernels cannot index (sprs CSC
    /// storage is converted, but e.g. more than `u32::MAX` nodes are not).
    #[error("unsupported adjacency: {reason}")]
    Unsupported {
        /// What is unsupported.
        reason: String,
    },
    /// Reading or writing an exchange file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An exchange file is malformed or lacks a tensor.
    #[error("{}: {reason}", path.display())]
    Exchange {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An error from `graft-graph`.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// An error raised by libtorch.
    #[cfg(feature = "tch")]
    #[error(transparent)]
    Tch(#[from] tch::TchError),
}

/// `Result` with [`PropagateError`] as the error type.
pub type Result<T, E = PropagateError> = std::result::Result<T, E>;
