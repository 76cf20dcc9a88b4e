//! Error type of `graft-train`.

use std::path::PathBuf;

/// Everything that can go wrong in `graft-train`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// Reading, writing, renaming or syncing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A JSON file could not be parsed or a value could not be serialised.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The serde error (with line and column when parsing).
        source: serde_json::Error,
    },
    /// One line of a JSON-lines log (other than a torn last line) is not
    /// valid JSON.
    #[error("{}:{line}: {source}", path.display())]
    LogLine {
        /// The log file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The parse error.
        source: serde_json::Error,
    },
    /// An error raised by libtorch.
    #[error(transparent)]
    Tch(#[from] tch::TchError),
    /// A checkpoint (or a best-parameters file) is missing, corrupt, or does
    /// not fit the optimizer's parameters.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The file at fault (`latest.json`, a `ckpt-*.safetensors`, ...).
        path: PathBuf,
        /// What is wrong with it (naming the tensor where one is at fault).
        reason: String,
    },
    /// A configuration value is invalid, or a resume would mix settings.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The [`TrainTask`](crate::TrainTask) failed (its own error inside).
    #[error(transparent)]
    Task(Box<dyn std::error::Error + Send + Sync>),
}

/// `Result` with [`TrainError`] as the error type.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// Wraps an I/O error with the path it concerns.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Io { path, source }
}

/// Wraps a serde_json error with the path it concerns.
pub(crate) fn json_err(path: impl Into<PathBuf>) -> impl FnOnce(serde_json::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Json { path, source }
}
