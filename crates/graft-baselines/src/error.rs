//! The error type of `graft-baselines`.

/// Everything that can go wrong while building evaluation sets, scoring
/// items or training a baseline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BaselineError {
    /// An error from `graft-data` (splits, negative sampling).
    #[error(transparent)]
    Data(#[from] graft_data::DataError),
    /// An error from `graft-metrics` (NaN scores, empty candidate lists, ...).
    #[error(transparent)]
    Metrics(#[from] graft_metrics::MetricsError),
    /// An error from `graft-propagate` (LightGCN kernels).
    #[error(transparent)]
    Propagate(#[from] graft_propagate::PropagateError),
    /// An error from `graft-graph` (building the train graph).
    #[error(transparent)]
    Graph(#[from] graft_graph::GraphError),
    /// An error raised by libtorch.
    #[cfg(feature = "tch")]
    #[error(transparent)]
    Tch(#[from] tch::TchError),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A user or item id is outside the model's or the score vector's range.
    #[error("{kind} id {id} out of range ({n} known)")]
    IdOutOfRange {
        /// `"user"` or `"item"`.
        kind: &'static str,
        /// The offending id.
        id: u32,
        /// Number of users or items.
        n: usize,
    },
    /// A scorer returned a score vector of the wrong length.
    #[error("{scorer} returned {got} scores, expected one per item ({expected})")]
    ScoreLength {
        /// Name of the scorer.
        scorer: String,
        /// Number of items.
        expected: usize,
        /// Number of scores returned.
        got: usize,
    },
    /// An evaluation case is malformed (e.g. its target is not among its
    /// candidates exactly once).
    #[error("user {user}: malformed evaluation case: {reason}")]
    Case {
        /// The case's user.
        user: u32,
        /// What is wrong.
        reason: String,
    },
    /// An evaluation set would have no case.
    #[error("no {split} evaluation case: {reason}")]
    NoCases {
        /// `"valid"` or `"test"`.
        split: &'static str,
        /// Why (no eligible user, or too few items for the negatives).
        reason: String,
    },
    /// Training diverged (a non-finite loss).
    #[error("training diverged: loss {loss} at epoch {epoch}")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// The loss.
        loss: f64,
    },
}

/// `Result` with [`BaselineError`] as the error type.
pub type Result<T, E = BaselineError> = std::result::Result<T, E>;
