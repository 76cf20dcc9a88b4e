//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong when computing a projection or drawing a plot.
///
/// Bad input is an error, never a panic: empty inputs, length mismatches,
/// non-finite matrix entries, out-of-range sizes and group indices all have a
/// variant. Non-finite *plot points* are the one exception: they are dropped
/// and counted in [`PlotOutcome::dropped`](crate::PlotOutcome::dropped).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The plotting backend failed (includes PNG encoding errors).
    #[error("drawing failed: {0}")]
    Draw(String),

    /// Inputs have inconsistent or unusable shapes (length mismatches, a
    /// group index without a name, an image size out of range, ...).
    #[error("bad shape: {0}")]
    Shape(String),

    /// A font was requested (via `GRAFT_FONT`) but could not be read or
    /// parsed.
    #[error("font error: {0}")]
    Font(String),

    /// An input that must hold at least one (finite) element was empty.
    #[error("{what} is empty")]
    Empty {
        /// Which input was empty (e.g. `"panel 1 points"`).
        what: String,
    },

    /// A matrix entry was NaN or infinite.
    #[error("{what}[{row}, {col}] is not finite ({value})")]
    NonFinite {
        /// Which input held the value.
        what: &'static str,
        /// Row of the first offending entry.
        row: usize,
        /// Column of the first offending entry.
        col: usize,
        /// The value.
        value: f32,
    },
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, PlotError>;
