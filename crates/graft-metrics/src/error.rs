//! The crate's error type.

/// Everything that can go wrong when computing a metric.
///
/// Metrics never silently drop or reinterpret bad input: an empty input, a
/// length mismatch, a NaN score or a probability outside `[0, 1]` is an error
/// that names what was wrong and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// An input that must hold at least one element was empty.
    #[error("{what} is empty")]
    Empty {
        /// Which input was empty (e.g. `"labels"`).
        what: &'static str,
    },

    /// Two inputs that must be parallel have different lengths.
    #[error("length mismatch: {what} has {left} vs {right} elements")]
    LengthMismatch {
        /// Which pair of inputs disagree (e.g. `"labels vs scores"`).
        what: &'static str,
        /// Length of the first input.
        left: usize,
        /// Length of the second input.
        right: usize,
    },

    /// A score or probability was NaN.
    #[error("{what}[{index}] is NaN")]
    NaN {
        /// Which input held the NaN.
        what: &'static str,
        /// Position of the first NaN in that input.
        index: usize,
    },

    /// AUC is undefined because the labels hold only one class.
    #[error("AUC is undefined with {positives} positives and {negatives} negatives")]
    SingleClass {
        /// Number of positive labels.
        positives: usize,
        /// Number of negative labels.
        negatives: usize,
    },

    /// A cutoff `K` was zero (cutoffs are `>= 1`).
    #[error("invalid cutoff K = {k}: cutoffs must be >= 1")]
    InvalidK {
        /// The offending cutoff.
        k: usize,
    },

    /// A rank was zero (ranks are 1-based).
    #[error("invalid rank 0 for user {user}: ranks are 1-based")]
    InvalidRank {
        /// Position of the user (0-based, in push order).
        user: usize,
    },

    /// An index was out of bounds.
    #[error("{what} index {index} is out of bounds for length {len}")]
    IndexOutOfBounds {
        /// Which index (e.g. `"positive"`).
        what: &'static str,
        /// The offending index.
        index: usize,
        /// Length of the indexed input.
        len: usize,
    },

    /// A probability was outside `[0, 1]` (this includes infinities).
    #[error("probability {value} at index {index} is outside [0, 1]")]
    InvalidProbability {
        /// Position of the first offending probability.
        index: usize,
        /// Its value.
        value: f64,
    },

    /// A configuration parameter was out of range.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What was wrong.
        reason: String,
    },

    /// A bootstrap statistic evaluated to NaN or an infinity.
    #[error("bootstrap statistic is not finite ({value}) on {}", match resample { Some(r) => format!("resample {r}"), None => "the full sample".to_owned() })]
    NonFiniteStatistic {
        /// Resample number (0-based); `None` for the full-sample estimate.
        resample: Option<usize>,
        /// The value returned.
        value: f64,
    },

    /// Too many bootstrap resamples had an undefined statistic (e.g. AUC on a
    /// resample that drew only one class).
    #[error(
        "{skipped} of {resamples} bootstrap resamples had an undefined statistic \
         (at most {max_skipped} allowed)"
    )]
    TooManySkipped {
        /// Resamples skipped.
        skipped: usize,
        /// Resamples drawn.
        resamples: usize,
        /// Largest number of skips the configuration allows.
        max_skipped: usize,
    },
}

impl MetricsError {
    /// Whether this error means "the statistic is undefined on this sample"
    /// rather than "the input is wrong".
    ///
    /// [`bootstrap_ci`](crate::bootstrap_ci) skips (and counts) resamples
    /// whose statistic fails with such an error and propagates every other
    /// error. Currently only [`MetricsError::SingleClass`] qualifies; a custom
    /// statistic can return it to mark a resample as undefined.
    #[must_use]
    pub fn is_degenerate_sample(&self) -> bool {
        matches!(self, Self::SingleClass { .. })
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, MetricsError>;
