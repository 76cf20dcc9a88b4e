//! Click-through-rate metrics: AUC and LogLoss (the ELCoRec protocol).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::bootstrap::{auc_ci, mean_ci, BootstrapConfig, ConfidenceInterval};
use crate::error::{MetricsError, Result};

/// Default clipping for [`log_loss`]: probabilities are clipped into
/// `[1e-7, 1 - 1e-7]`.
///
/// This is the epsilon Keras/TensorFlow use for binary cross-entropy. Without
/// clipping, a single confident mistake (`p = 0` for a click) makes the loss
/// infinite; with it, one such sample costs `-ln(1e-7) ≈ 16.12`. Note that
/// scikit-learn's `log_loss` clips at the machine epsilon of the input dtype
/// instead (`2.2e-16` for `f64`), so its values differ from ours only on
/// samples with `p < 1e-7` or `p > 1 - 1e-7`.
pub const DEFAULT_LOG_LOSS_EPS: f64 = 1e-7;

/// Checks the shared preconditions of the CTR metrics.
fn check_pair<S: Copy + Into<f64>>(
    labels: &[bool],
    values: &[S],
    what: &'static str,
) -> Result<()> {
    if labels.is_empty() {
        return Err(MetricsError::Empty { what: "labels" });
    }
    if labels.len() != values.len() {
        return Err(MetricsError::LengthMismatch {
            what: if what == "scores" {
                "labels vs scores"
            } else {
                "labels vs probabilities"
            },
            left: labels.len(),
            right: values.len(),
        });
    }
    if let Some(index) = values.iter().position(|&v| v.into().is_nan()) {
        return Err(MetricsError::NaN { what, index });
    }
    Ok(())
}

/// Orders non-NaN floats, with `-0.0 == 0.0` (unlike `f64::total_cmp`).
pub(crate) fn cmp_scores(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// `(score, label)` pairs sorted by increasing score. Inputs must be checked.
pub(crate) fn sorted_pairs<S: Copy + Into<f64>>(labels: &[bool], scores: &[S]) -> Vec<(f64, bool)> {
    let mut pairs: Vec<(f64, bool)> = scores
        .iter()
        .zip(labels)
        .map(|(&s, &y)| (s.into(), y))
        .collect();
    pairs.sort_unstable_by(|a, b| cmp_scores(a.0, b.0));
    pairs
}

/// AUC from tie groups of a score-sorted sample, each element weighted by a
/// count (all ones for the plain sample, multiplicities for a bootstrap
/// resample). `weight(i)` is the multiplicity of `sorted[i]`.
///
/// Computes `2 ·` (number of correctly ordered positive–negative pairs, a
/// tied pair counting 1/2) exactly in integers, then divides once.
pub(crate) fn auc_sorted_weighted(
    sorted: &[(f64, bool)],
    weight: impl Fn(usize) -> u64,
) -> Result<f64> {
    let mut twice_correct: u128 = 0;
    let mut neg_below: u128 = 0;
    let mut pos_total: u128 = 0;
    let mut i = 0;
    while i < sorted.len() {
        let score = sorted[i].0;
        let (mut p, mut q) = (0u128, 0u128);
        let mut j = i;
        while j < sorted.len() && cmp_scores(sorted[j].0, score) == Ordering::Equal {
            let w = u128::from(weight(j));
            if sorted[j].1 {
                p += w;
            } else {
                q += w;
            }
            j += 1;
        }
        twice_correct += 2 * p * neg_below + p * q;
        neg_below += q;
        pos_total += p;
        i = j;
    }
    if pos_total == 0 || neg_below == 0 {
        return Err(MetricsError::SingleClass {
            positives: usize::try_from(pos_total).unwrap_or(usize::MAX),
            negatives: usize::try_from(neg_below).unwrap_or(usize::MAX),
        });
    }
    Ok(twice_correct as f64 / (2.0 * pos_total as f64 * neg_below as f64))
}

/// Area under the ROC curve: the probability that a random positive scores
/// higher than a random negative, a tie counting 1/2 (Mann–Whitney U / (P·N)).
///
/// Rank-based and exact with ties: the result equals the O(n²) pair count and
/// is invariant under any strictly increasing transform of the scores.
/// Scores may be `f32` or `f64`; infinities are ordered as usual.
///
/// # Errors
/// [`MetricsError::Empty`] on empty input, [`MetricsError::LengthMismatch`],
/// [`MetricsError::NaN`] if a score is NaN, [`MetricsError::SingleClass`] if
/// all labels are equal (AUC undefined).
///
/// # Complexity
/// O(n log n) time (one sort), O(n) memory.
///
/// # Example
/// ```
/// # use graft_metrics::auc;
/// // one of four positive–negative pairs tied (1/2), one misordered (0)
/// let a = auc(&[true, false, true, false], &[0.8, 0.8, 0.3, 0.1])?;
/// assert!((a - 0.625).abs() < 1e-12);
/// # Ok::<(), graft_metrics::MetricsError>(())
/// ```
pub fn auc<S: Copy + Into<f64>>(labels: &[bool], scores: &[S]) -> Result<f64> {
    check_pair(labels, scores, "scores")?;
    auc_sorted_weighted(&sorted_pairs(labels, scores), |_| 1)
}

/// Checks probabilities and the clipping epsilon.
fn check_probs<S: Copy + Into<f64>>(labels: &[bool], probs: &[S], eps: f64) -> Result<()> {
    if eps.is_nan() || eps <= 0.0 || eps >= 0.5 {
        return Err(MetricsError::InvalidConfig {
            reason: format!("log-loss eps must be in (0, 0.5), got {eps}"),
        });
    }
    check_pair(labels, probs, "probabilities")?;
    if let Some((index, value)) = probs
        .iter()
        .map(|&p| p.into())
        .enumerate()
        .find(|&(_, p)| !(0.0..=1.0).contains(&p))
    {
        return Err(MetricsError::InvalidProbability { index, value });
    }
    Ok(())
}

/// One sample's clipped cross-entropy. `p` must be in `[0, 1]`.
fn log_loss_term(y: bool, p: f64, eps: f64) -> f64 {
    let p = p.clamp(eps, 1.0 - eps);
    if y {
        -p.ln()
    } else {
        -(-p).ln_1p()
    }
}

/// Per-sample binary cross-entropy `-[y ln p + (1-y) ln(1-p)]`, with `p`
/// clipped into `[eps, 1 - eps]`. Their mean is [`log_loss`].
///
/// # Errors
/// As [`log_loss`].
///
/// # Complexity
/// O(n) time and memory.
pub fn log_loss_terms<S: Copy + Into<f64>>(
    labels: &[bool],
    probs: &[S],
    eps: f64,
) -> Result<Vec<f64>> {
    check_probs(labels, probs, eps)?;
    Ok(labels
        .iter()
        .zip(probs)
        .map(|(&y, &p)| log_loss_term(y, p.into(), eps))
        .collect())
}

/// Mean binary cross-entropy (LogLoss) of predicted click probabilities,
/// with `p` clipped into `[eps, 1 - eps]` (see [`DEFAULT_LOG_LOSS_EPS`]).
///
/// Natural logarithm, mean over samples.
///
/// # Errors
/// [`MetricsError::InvalidConfig`] unless `0 < eps < 0.5`;
/// [`MetricsError::Empty`] on empty input, [`MetricsError::LengthMismatch`],
/// [`MetricsError::NaN`] if a probability is NaN,
/// [`MetricsError::InvalidProbability`] if one is outside `[0, 1]`
/// (probabilities are not logits: apply a sigmoid first).
///
/// # Complexity
/// O(n) time, O(1) memory.
///
/// # Example
/// ```
/// # use graft_metrics::{log_loss, DEFAULT_LOG_LOSS_EPS};
/// let l = log_loss(&[true, false], &[0.8, 0.4], DEFAULT_LOG_LOSS_EPS)?;
/// assert!((l - (-(0.8f64.ln() + 0.6f64.ln()) / 2.0)).abs() < 1e-12);
/// # Ok::<(), graft_metrics::MetricsError>(())
/// ```
pub fn log_loss<S: Copy + Into<f64>>(labels: &[bool], probs: &[S], eps: f64) -> Result<f64> {
    check_probs(labels, probs, eps)?;
    let sum: f64 = labels
        .iter()
        .zip(probs)
        .map(|(&y, &p)| log_loss_term(y, p.into(), eps))
        .sum();
    Ok(sum / labels.len() as f64)
}

/// AUC and LogLoss of one set of CTR predictions, produced by [`ctr_report`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtrReport {
    /// Number of samples.
    pub n: usize,
    /// Number of positive labels (clicks).
    pub positives: usize,
    /// Area under the ROC curve.
    pub auc: f64,
    /// Mean clipped binary cross-entropy.
    pub log_loss: f64,
    /// The clipping epsilon used for `log_loss`.
    pub eps: f64,
    /// Bootstrap confidence interval of `auc`, when requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auc_ci: Option<ConfidenceInterval>,
    /// Bootstrap confidence interval of `log_loss`, when requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_loss_ci: Option<ConfidenceInterval>,
}

/// AUC and LogLoss of predicted click probabilities, optionally with
/// bootstrap confidence intervals (both drawn with `bootstrap`'s seed, so
/// they resample the same samples).
///
/// # Errors
/// Those of [`auc`], [`log_loss`] and, with `bootstrap`, of [`auc_ci`]
/// and [`mean_ci`].
///
/// # Complexity
/// O(n log n); with bootstrap, O(n log n + R · n) for R resamples.
pub fn ctr_report<S: Copy + Into<f64>>(
    labels: &[bool],
    probs: &[S],
    eps: f64,
    bootstrap: Option<&BootstrapConfig>,
) -> Result<CtrReport> {
    let terms = log_loss_terms(labels, probs, eps)?;
    let auc_value = auc(labels, probs)?;
    let log_loss_value = terms.iter().sum::<f64>() / terms.len() as f64;
    let (auc_ci, log_loss_ci) = match bootstrap {
        Some(cfg) => (
            Some(auc_ci(labels, probs, cfg)?),
            Some(mean_ci(&terms, cfg)?),
        ),
        None => (None, None),
    };
    Ok(CtrReport {
        n: labels.len(),
        positives: labels.iter().filter(|&&y| y).count(),
        auc: auc_value,
        log_loss: log_loss_value,
        eps,
        auc_ci,
        log_loss_ci,
    })
}
