//! Percentile-bootstrap confidence intervals, deterministic for a seed.
//!
//! Resamples are drawn with a ChaCha8 generator seeded by
//! `ChaCha8Rng::seed_from_u64(seed)` and an unbiased bounded-integer method of
//! our own (Lemire's multiply-and-reject on `next_u64`), not `rand`'s
//! `gen_range`, whose values are not stable across `rand` versions. The same
//! seed therefore gives the same interval on every machine and build.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ctr::{auc_sorted_weighted, cmp_scores};
use crate::error::{MetricsError, Result};

/// Settings of a percentile bootstrap.
///
/// Build with [`BootstrapConfig::new`] or [`Default`] and the `with_*`
/// setters; every function that takes one calls [`validate`](Self::validate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BootstrapConfig {
    /// Number of resamples drawn (default 1000).
    pub resamples: usize,
    /// Confidence level in `(0, 1)` (default 0.95).
    pub level: f64,
    /// Seed of the resampling generator (default 0).
    pub seed: u64,
    /// Largest fraction of resamples, in `[0, 1)`, whose statistic may be
    /// undefined (e.g. AUC on a resample that drew one class only) before the
    /// interval is refused with [`MetricsError::TooManySkipped`] (default 0.1).
    pub max_skipped_fraction: f64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            resamples: 1000,
            level: 0.95,
            seed: 0,
            max_skipped_fraction: 0.1,
        }
    }
}

impl BootstrapConfig {
    /// A configuration with the given resample count, level and seed, and the
    /// default `max_skipped_fraction`.
    #[must_use]
    pub fn new(resamples: usize, level: f64, seed: u64) -> Self {
        Self {
            resamples,
            level,
            seed,
            ..Self::default()
        }
    }

    /// Sets the number of resamples.
    #[must_use]
    pub fn with_resamples(mut self, resamples: usize) -> Self {
        self.resamples = resamples;
        self
    }

    /// Sets the confidence level.
    #[must_use]
    pub fn with_level(mut self, level: f64) -> Self {
        self.level = level;
        self
    }

    /// Sets the seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the largest tolerated fraction of undefined resamples.
    #[must_use]
    pub fn with_max_skipped_fraction(mut self, fraction: f64) -> Self {
        self.max_skipped_fraction = fraction;
        self
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] unless `resamples >= 1`,
    /// `0 < level < 1` and `0 <= max_skipped_fraction < 1`.
    pub fn validate(&self) -> Result<()> {
        let fail = |reason: String| Err(MetricsError::InvalidConfig { reason });
        if self.resamples == 0 {
            return fail("bootstrap resamples must be >= 1".to_owned());
        }
        if self.level.is_nan() || self.level <= 0.0 || self.level >= 1.0 {
            return fail(format!(
                "bootstrap level must be in (0, 1), got {}",
                self.level
            ));
        }
        let f = self.max_skipped_fraction;
        if f.is_nan() || !(0.0..1.0).contains(&f) {
            return fail(format!("max_skipped_fraction must be in [0, 1), got {f}"));
        }
        Ok(())
    }

    /// Largest number of undefined resamples tolerated.
    fn max_skipped(&self) -> usize {
        (self.max_skipped_fraction * self.resamples as f64).floor() as usize
    }
}

/// A bootstrap confidence interval around a statistic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceInterval {
    /// The statistic on the full sample.
    pub estimate: f64,
    /// Lower bound (the `(1 - level) / 2` quantile of the resampled statistic).
    pub lower: f64,
    /// Upper bound (the `(1 + level) / 2` quantile of the resampled statistic).
    pub upper: f64,
    /// Confidence level, e.g. 0.95.
    pub level: f64,
    /// Number of resamples the bounds were computed from (drawn minus skipped).
    pub resamples: usize,
    /// Number of resamples skipped because the statistic was undefined.
    pub skipped: usize,
}

impl ConfidenceInterval {
    /// Whether `x` lies in `[lower, upper]`.
    #[must_use]
    pub fn contains(&self, x: f64) -> bool {
        self.lower <= x && x <= self.upper
    }

    /// `upper - lower`.
    #[must_use]
    pub fn width(&self) -> f64 {
        self.upper - self.lower
    }
}

/// Draws indices uniformly from `0..n`, value-stable for a seed.
pub(crate) struct IndexSampler {
    rng: ChaCha8Rng,
    n: u64,
    /// Lemire's rejection threshold `2^64 mod n`.
    threshold: u64,
}

impl IndexSampler {
    /// A sampler over `0..n`; `n` must be at least 1.
    pub(crate) fn new(seed: u64, n: usize) -> Self {
        let n = n.max(1) as u64;
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            n,
            threshold: n.wrapping_neg() % n,
        }
    }

    /// The next index, uniform in `0..n` (Lemire 2019, unbiased).
    pub(crate) fn next_index(&mut self) -> usize {
        loop {
            let m = u128::from(self.rng.next_u64()) * u128::from(self.n);
            if (m as u64) >= self.threshold {
                // `m >> 64 < n`, which came from a `usize`.
                return (m >> 64) as usize;
            }
        }
    }
}

/// The `q`-quantile of sorted finite values, linearly interpolated between
/// order statistics (NumPy's default, Hyndman–Fan type 7). `sorted` must be
/// non-empty.
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = q * (sorted.len() - 1) as f64;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = h - lo as f64;
    sorted[lo] + frac * (sorted[hi] - sorted[lo])
}

/// Turns resampled statistics into a percentile interval.
fn finish(
    estimate: f64,
    mut stats: Vec<f64>,
    skipped: usize,
    config: &BootstrapConfig,
) -> Result<ConfidenceInterval> {
    let max_skipped = config.max_skipped();
    if skipped > max_skipped || stats.is_empty() {
        return Err(MetricsError::TooManySkipped {
            skipped,
            resamples: config.resamples,
            max_skipped,
        });
    }
    stats.sort_unstable_by(f64::total_cmp);
    let alpha = 1.0 - config.level;
    Ok(ConfidenceInterval {
        estimate,
        lower: quantile_sorted(&stats, alpha / 2.0),
        upper: quantile_sorted(&stats, 1.0 - alpha / 2.0),
        level: config.level,
        resamples: stats.len(),
        skipped,
    })
}

/// Checks that a statistic is finite.
fn finite(value: f64, resample: Option<usize>) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(MetricsError::NonFiniteStatistic { resample, value })
    }
}

/// Percentile-bootstrap confidence interval of an arbitrary statistic over
/// `n` samples.
///
/// `stat` receives sample indices: first `0..n` in order (the full-sample
/// estimate), then `config.resamples` times `n` indices drawn uniformly with
/// replacement. A resample whose statistic fails with an error for which
/// [`MetricsError::is_degenerate_sample`] holds is skipped and counted; any
/// other error is returned.
///
/// # Errors
/// [`MetricsError::InvalidConfig`] for an invalid `config`,
/// [`MetricsError::Empty`] if `n == 0`, any error of `stat` on the full
/// sample or a non-degenerate error on a resample,
/// [`MetricsError::NonFiniteStatistic`] if `stat` returns NaN or an infinity,
/// [`MetricsError::TooManySkipped`] if more resamples were skipped than
/// `config.max_skipped_fraction` allows.
///
/// # Complexity
/// `R + 1` calls of `stat` plus O(R · n) draws for R resamples; O(n + R)
/// memory.
///
/// # Example
/// ```
/// # use graft_metrics::{bootstrap_ci, BootstrapConfig};
/// let x = [1.0, 2.0, 3.0, 4.0, 10.0];
/// let median = |idx: &[usize]| {
///     let mut v: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
///     v.sort_by(f64::total_cmp);
///     Ok(v[v.len() / 2])
/// };
/// let ci = bootstrap_ci(x.len(), &BootstrapConfig::new(200, 0.9, 7), median)?;
/// assert_eq!(ci.estimate, 3.0);
/// assert!(ci.lower <= 3.0 && 3.0 <= ci.upper);
/// # Ok::<(), graft_metrics::MetricsError>(())
/// ```
pub fn bootstrap_ci<F>(
    n: usize,
    config: &BootstrapConfig,
    mut stat: F,
) -> Result<ConfidenceInterval>
where
    F: FnMut(&[usize]) -> Result<f64>,
{
    config.validate()?;
    if n == 0 {
        return Err(MetricsError::Empty { what: "sample" });
    }
    let mut idx: Vec<usize> = (0..n).collect();
    let estimate = finite(stat(&idx)?, None)?;
    let mut sampler = IndexSampler::new(config.seed, n);
    let mut stats = Vec::with_capacity(config.resamples);
    let mut skipped = 0;
    for r in 0..config.resamples {
        idx.iter_mut().for_each(|i| *i = sampler.next_index());
        match stat(&idx) {
            Ok(v) => stats.push(finite(v, Some(r))?),
            Err(e) if e.is_degenerate_sample() => skipped += 1,
            Err(e) => return Err(e),
        }
    }
    finish(estimate, stats, skipped, config)
}

/// Bootstrap intervals of the means of several equally long columns, all
/// from the same resamples (one draw of rows per resample).
///
/// Gives the same intervals as [`mean_ci`] on each column alone.
pub(crate) fn bootstrap_means<C: AsRef<[f64]>>(
    columns: &[C],
    config: &BootstrapConfig,
) -> Result<Vec<ConfidenceInterval>> {
    config.validate()?;
    let Some(first) = columns.first() else {
        return Ok(Vec::new());
    };
    let n = first.as_ref().len();
    if n == 0 {
        return Err(MetricsError::Empty { what: "values" });
    }
    for c in columns {
        let c = c.as_ref();
        if c.len() != n {
            return Err(MetricsError::LengthMismatch {
                what: "bootstrap columns",
                left: n,
                right: c.len(),
            });
        }
        if let Some(index) = c.iter().position(|v| v.is_nan()) {
            return Err(MetricsError::NaN {
                what: "values",
                index,
            });
        }
    }
    let nf = n as f64;
    let estimates = columns
        .iter()
        .map(|c| finite(c.as_ref().iter().sum::<f64>() / nf, None))
        .collect::<Result<Vec<f64>>>()?;
    let mut sampler = IndexSampler::new(config.seed, n);
    let mut stats: Vec<Vec<f64>> = vec![Vec::with_capacity(config.resamples); columns.len()];
    let mut sums = vec![0.0_f64; columns.len()];
    for r in 0..config.resamples {
        sums.iter_mut().for_each(|s| *s = 0.0);
        for _ in 0..n {
            let i = sampler.next_index();
            for (s, c) in sums.iter_mut().zip(columns) {
                *s += c.as_ref()[i];
            }
        }
        for (st, &s) in stats.iter_mut().zip(&sums) {
            st.push(finite(s / nf, Some(r))?);
        }
    }
    estimates
        .into_iter()
        .zip(stats)
        .map(|(e, st)| finish(e, st, 0, config))
        .collect()
}

/// Bootstrap confidence interval of the mean of `values` (e.g. per-user
/// HR@10, or per-sample log-loss terms).
///
/// Equal to [`bootstrap_ci`] with the mean as statistic and the same config.
///
/// # Errors
/// [`MetricsError::InvalidConfig`], [`MetricsError::Empty`] on empty input,
/// [`MetricsError::NaN`] if a value is NaN,
/// [`MetricsError::NonFiniteStatistic`] if the mean overflows or a value is
/// infinite.
///
/// # Complexity
/// O(R · n) time for R resamples, O(R) memory.
pub fn mean_ci(values: &[f64], config: &BootstrapConfig) -> Result<ConfidenceInterval> {
    let mut cis = bootstrap_means(&[values], config)?;
    cis.pop().ok_or(MetricsError::Empty { what: "values" })
}

/// Paired bootstrap confidence interval of `mean(a) - mean(b)` for two
/// methods measured on the same units (`a[i]` and `b[i]` belong to the same
/// test user or sample): the mean of the per-unit differences, resampled
/// over units. Tighter than comparing two separate intervals, because what
/// both methods share (easy and hard users) cancels.
///
/// ```
/// use graft_metrics::{paired_difference_ci, BootstrapConfig};
///
/// let a = [1.0, 1.0, 0.0, 1.0, 0.0, 1.0];
/// let b = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
/// let ci = paired_difference_ci(&a, &b, &BootstrapConfig::new(200, 0.95, 1))?;
/// assert!((ci.estimate - 2.0 / 6.0).abs() < 1e-12);
/// # Ok::<(), graft_metrics::MetricsError>(())
/// ```
///
/// # Errors
/// [`MetricsError::LengthMismatch`] when `a` and `b` differ in length, and
/// those of [`mean_ci`].
pub fn paired_difference_ci(
    a: &[f64],
    b: &[f64],
    config: &BootstrapConfig,
) -> Result<ConfidenceInterval> {
    if a.len() != b.len() {
        return Err(MetricsError::LengthMismatch {
            what: "paired values",
            left: a.len(),
            right: b.len(),
        });
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    mean_ci(&d, config)
}

/// Bootstrap confidence interval of [`auc`](crate::auc), resampling
/// (label, score) pairs.
///
/// Resamples that drew only one class (AUC undefined) are skipped and counted
/// in [`ConfidenceInterval::skipped`]. Equal to [`bootstrap_ci`] with `auc`
/// of the resampled pairs as statistic and the same config, but faster: the
/// scores are sorted once and each resample is evaluated from its
/// multiplicities in O(n).
///
/// # Errors
/// Those of [`auc`](crate::auc) on the full sample,
/// [`MetricsError::InvalidConfig`], and [`MetricsError::TooManySkipped`].
///
/// # Complexity
/// O(n log n + R · n) time for R resamples, O(n + R) memory.
pub fn auc_ci<S: Copy + Into<f64>>(
    labels: &[bool],
    scores: &[S],
    config: &BootstrapConfig,
) -> Result<ConfidenceInterval> {
    config.validate()?;
    // Validates the inputs and computes the estimate.
    let estimate = crate::auc(labels, scores)?;
    let n = labels.len();
    let values: Vec<f64> = scores.iter().map(|&s| s.into()).collect();
    let (sorted, position) = sorted_with_positions(labels, &values);
    let mut sampler = IndexSampler::new(config.seed, n);
    let mut counts = vec![0u64; n];
    let mut stats = Vec::with_capacity(config.resamples);
    let mut skipped = 0;
    for r in 0..config.resamples {
        counts.iter_mut().for_each(|c| *c = 0);
        for _ in 0..n {
            counts[position[sampler.next_index()]] += 1;
        }
        match auc_sorted_weighted(&sorted, |i| counts[i]) {
            Ok(v) => stats.push(finite(v, Some(r))?),
            Err(e) if e.is_degenerate_sample() => skipped += 1,
            Err(e) => return Err(e),
        }
    }
    finish(estimate, stats, skipped, config)
}

/// Scores sorted ascending with their labels, and each unit's position in
/// that order (the precomputation of the resampled AUCs).
fn sorted_with_positions(labels: &[bool], scores: &[f64]) -> (Vec<(f64, bool)>, Vec<usize>) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| cmp_scores(scores[a], scores[b]));
    let mut position = vec![0usize; scores.len()];
    for (p, &i) in order.iter().enumerate() {
        position[i] = p;
    }
    let sorted = order.iter().map(|&i| (scores[i], labels[i])).collect();
    (sorted, position)
}

/// Paired bootstrap confidence interval of `auc(a) - auc(b)`: two models'
/// scores of the same samples (`scores_a[i]` and `scores_b[i]` score
/// sample `i`, label `labels[i]`). Each resample draws samples with
/// replacement and computes both AUCs on the same draw, so what the two
/// models share (easy and hard samples) cancels and the interval is
/// tighter than comparing two [`auc_ci`]s.
///
/// Resamples that drew only one class are skipped, as in [`auc_ci`].
///
/// ```
/// use graft_metrics::{paired_auc_difference_ci, BootstrapConfig};
///
/// let labels = [true, false, true, false, true, false, true, false];
/// let a = [0.9, 0.1, 0.8, 0.3, 0.7, 0.2, 0.6, 0.4]; // ranks perfectly
/// let b = [0.6, 0.5, 0.4, 0.7, 0.8, 0.1, 0.3, 0.2];
/// let ci = paired_auc_difference_ci(&labels, &a, &b, &BootstrapConfig::new(500, 0.95, 3))?;
/// assert!((ci.estimate - (1.0 - 11.0 / 16.0)).abs() < 1e-12);
/// assert!(ci.lower <= ci.estimate && ci.estimate <= ci.upper);
/// # Ok::<(), graft_metrics::MetricsError>(())
/// ```
///
/// # Errors
/// [`MetricsError::LengthMismatch`] when the scores differ in length, and
/// those of [`auc_ci`] on either model.
///
/// # Complexity
/// O(n log n + R · n) time for R resamples, O(n + R) memory.
pub fn paired_auc_difference_ci<S: Copy + Into<f64>>(
    labels: &[bool],
    scores_a: &[S],
    scores_b: &[S],
    config: &BootstrapConfig,
) -> Result<ConfidenceInterval> {
    config.validate()?;
    if scores_a.len() != scores_b.len() {
        return Err(MetricsError::LengthMismatch {
            what: "paired scores",
            left: scores_a.len(),
            right: scores_b.len(),
        });
    }
    // Validates labels and scores and computes the estimate.
    let estimate = crate::auc(labels, scores_a)? - crate::auc(labels, scores_b)?;
    let a: Vec<f64> = scores_a.iter().map(|&s| s.into()).collect();
    let b: Vec<f64> = scores_b.iter().map(|&s| s.into()).collect();
    let (sorted_a, pos_a) = sorted_with_positions(labels, &a);
    let (sorted_b, pos_b) = sorted_with_positions(labels, &b);
    let n = labels.len();
    let mut sampler = IndexSampler::new(config.seed, n);
    let (mut counts_a, mut counts_b) = (vec![0u64; n], vec![0u64; n]);
    let mut stats = Vec::with_capacity(config.resamples);
    let mut skipped = 0;
    for r in 0..config.resamples {
        counts_a.iter_mut().for_each(|c| *c = 0);
        counts_b.iter_mut().for_each(|c| *c = 0);
        for _ in 0..n {
            let i = sampler.next_index();
            counts_a[pos_a[i]] += 1;
            counts_b[pos_b[i]] += 1;
        }
        let both = auc_sorted_weighted(&sorted_a, |i| counts_a[i])
            .and_then(|x| auc_sorted_weighted(&sorted_b, |i| counts_b[i]).map(|y| x - y));
        match both {
            Ok(v) => stats.push(finite(v, Some(r))?),
            Err(e) if e.is_degenerate_sample() => skipped += 1,
            Err(e) => return Err(e),
        }
    }
    finish(finite(estimate, None)?, stats, skipped, config)
}

/// Paired bootstrap confidence interval of `log_loss(a) - log_loss(b)`
/// (the mean per-sample difference of clipped cross-entropies) for two
/// models' click probabilities of the same samples.
///
/// ```
/// use graft_metrics::{paired_log_loss_difference_ci, BootstrapConfig, DEFAULT_LOG_LOSS_EPS};
///
/// let labels = [true, false, true, false];
/// let ci = paired_log_loss_difference_ci(
///     &labels,
///     &[0.9, 0.1, 0.8, 0.2],
///     &[0.5, 0.5, 0.5, 0.5],
///     DEFAULT_LOG_LOSS_EPS,
///     &BootstrapConfig::new(200, 0.95, 1),
/// )?;
/// assert!(ci.upper < 0.0); // a is better on every sample
/// # Ok::<(), graft_metrics::MetricsError>(())
/// ```
///
/// # Errors
/// Those of [`crate::log_loss_terms`] on either model and of
/// [`paired_difference_ci`].
pub fn paired_log_loss_difference_ci<S: Copy + Into<f64>>(
    labels: &[bool],
    probs_a: &[S],
    probs_b: &[S],
    eps: f64,
    config: &BootstrapConfig,
) -> Result<ConfidenceInterval> {
    let a = crate::log_loss_terms(labels, probs_a, eps)?;
    let b = crate::log_loss_terms(labels, probs_b, eps)?;
    paired_difference_ci(&a, &b, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_is_in_range_and_roughly_uniform() {
        let mut s = IndexSampler::new(1, 7);
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[s.next_index()] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn sampler_handles_n_one() {
        let mut s = IndexSampler::new(3, 1);
        assert!((0..100).all(|_| s.next_index() == 0));
    }

    #[test]
    fn quantile_interpolates() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_sorted(&v, 1.0), 5.0);
        assert_eq!(quantile_sorted(&v, 0.5), 3.0);
        assert!((quantile_sorted(&v, 0.1) - 1.4).abs() < 1e-12);
        assert_eq!(quantile_sorted(&[2.5], 0.975), 2.5);
    }
}
