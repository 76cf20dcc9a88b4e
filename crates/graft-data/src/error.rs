//! The error type of `graft-data`.

use std::path::PathBuf;

/// Everything that can go wrong while loading, splitting or sampling data.
///
/// Parse errors always name the file, the 1-based line and the reason, so a
/// user can open the file at the right place.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A required file does not exist.
    #[error("{}: file not found", path.display())]
    MissingFile {
        /// The path that was looked for.
        path: PathBuf,
    },
    /// A required file exists but holds no data lines.
    #[error("{}: file is empty", path.display())]
    EmptyFile {
        /// The empty file.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line could not be parsed.
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        /// The file holding the bad line.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong with it.
        reason: String,
    },
    /// A JSON file could not be parsed (serde_json's message names line and column).
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The files parsed but held no interactions.
    #[error("{}: no interactions", path.display())]
    NoInteractions {
        /// The interactions file.
        path: PathBuf,
    },
    /// The format of a path could not be recognised.
    #[error("{}: cannot detect the dataset format: {reason}", path.display())]
    UnknownFormat {
        /// The path given.
        path: PathBuf,
        /// Why no format matched.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An operation needs ratings (e.g. CTR labels) but an interaction has none.
    #[error("interaction {index} (user {user}, item {item}) has no rating, which {what} needs")]
    MissingRating {
        /// Index of the interaction in [`crate::Dataset::interactions`].
        index: usize,
        /// Raw user id.
        user: String,
        /// Raw item id.
        item: String,
        /// What needed the rating.
        what: &'static str,
    },
    /// Fewer candidate negatives exist than were requested.
    #[error(
        "user {user}: only {available} items lie outside the history, {wanted} negatives requested"
    )]
    NotEnoughNegatives {
        /// Dense user id.
        user: u32,
        /// Items outside the user's history.
        available: usize,
        /// Negatives requested.
        wanted: usize,
    },
    /// An id is outside the dataset's range.
    #[error("{kind} id {id} out of range (dataset has {n})")]
    IdOutOfRange {
        /// `"user"` or `"item"`.
        kind: &'static str,
        /// The offending dense id.
        id: u32,
        /// Number of users or items.
        n: usize,
    },
}

/// `Result` with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::MissingFile { path }
        } else {
            DataError::Io { path, source }
        }
    }
}
