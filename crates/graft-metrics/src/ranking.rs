//! Top-K metrics for one known positive per user: HR@K, NDCG@K and MRR.
//!
//! The evaluation protocol of ELMRec (and P5-style generative recommenders)
//! has one held-out positive item per user. Its *rank* (1-based) is found
//! either among scored candidates ([`rank_of_positive`], [`rank_among`]) or
//! in a list the model generated ([`rank_in_list`]); a positive that is not in
//! the list is a miss (`None`). Every metric here is a function of that rank.

use serde::{Deserialize, Serialize};

use crate::bootstrap::{bootstrap_means, BootstrapConfig, ConfidenceInterval};
use crate::error::{MetricsError, Result};

/// Returns the index of the first NaN in `values`, if any.
fn first_nan<S: Copy + Into<f64>>(values: &[S]) -> Option<usize> {
    values.iter().position(|&v| v.into().is_nan())
}

/// Rank (1-based) of a positive item among sampled negatives, ties counted
/// pessimistically.
///
/// `rank = 1 + #{ negatives with score >= positive_score }`.
///
/// **Ties are pessimistic**: a negative that ties with the positive is ranked
/// above it. With optimistic ties (`>`) a constant scorer would put every
/// positive at rank 1 and reach HR@1 = 1; with pessimistic ties it gets the
/// worst rank, so a degenerate model can never look good. (Random tie-breaking
/// would give the expected value in between but makes metrics
/// non-deterministic.)
///
/// Scores may be `f32` or `f64`; infinities are ordered as usual.
///
/// # Errors
/// [`MetricsError::Empty`] if `negative_scores` is empty (a rank among no
/// candidates says nothing), [`MetricsError::NaN`] if any score is NaN.
///
/// # Complexity
/// O(n) time, O(1) memory.
///
/// # Example
/// ```
/// # use graft_metrics::rank_of_positive;
/// // tied with two negatives: ranked after both
/// assert_eq!(rank_of_positive(0.5_f32, &[0.5, 0.1, 0.5, 0.9])?, 4);
/// # Ok::<(), graft_metrics::MetricsError>(())
/// ```
pub fn rank_of_positive<S: Copy + Into<f64>>(
    positive_score: S,
    negative_scores: &[S],
) -> Result<usize> {
    if negative_scores.is_empty() {
        return Err(MetricsError::Empty {
            what: "negative_scores",
        });
    }
    let pos: f64 = positive_score.into();
    if pos.is_nan() {
        return Err(MetricsError::NaN {
            what: "positive_score",
            index: 0,
        });
    }
    if let Some(index) = first_nan(negative_scores) {
        return Err(MetricsError::NaN {
            what: "negative_scores",
            index,
        });
    }
    let above = negative_scores.iter().filter(|&&s| s.into() >= pos).count();
    Ok(1 + above)
}

/// Rank (1-based) of `scores[positive_index]` among all of `scores`, ties
/// counted pessimistically (see [`rank_of_positive`]).
///
/// This is the full-ranking protocol: `scores` holds one score per candidate
/// item, the positive included.
///
/// # Errors
/// [`MetricsError::Empty`] if `scores` is empty,
/// [`MetricsError::IndexOutOfBounds`] if `positive_index >= scores.len()`,
/// [`MetricsError::NaN`] if any score is NaN.
///
/// # Complexity
/// O(n) time, O(1) memory.
pub fn rank_among<S: Copy + Into<f64>>(scores: &[S], positive_index: usize) -> Result<usize> {
    if scores.is_empty() {
        return Err(MetricsError::Empty { what: "scores" });
    }
    let Some(&pos) = scores.get(positive_index) else {
        return Err(MetricsError::IndexOutOfBounds {
            what: "positive",
            index: positive_index,
            len: scores.len(),
        });
    };
    if let Some(index) = first_nan(scores) {
        return Err(MetricsError::NaN {
            what: "scores",
            index,
        });
    }
    let pos: f64 = pos.into();
    let above = scores
        .iter()
        .enumerate()
        .filter(|&(j, &s)| j != positive_index && s.into() >= pos)
        .count();
    Ok(1 + above)
}

/// Rank (1-based) of `positive` in a ranked list (e.g. the item IDs a
/// generative recommender produced by beam search), or `None` if it is not
/// in the list (a miss at every cutoff).
///
/// The first occurrence counts. Duplicates before it occupy list positions,
/// exactly as they occupy slots of a top-K list shown to a user.
///
/// # Complexity
/// O(n) time.
#[must_use]
pub fn rank_in_list<T: PartialEq>(ranked: &[T], positive: &T) -> Option<usize> {
    ranked.iter().position(|x| x == positive).map(|i| i + 1)
}

/// Hit ratio at `k` for one user: `1` if `rank <= k`, else `0`.
///
/// `None` (positive not found) is a miss. `k = 0` always gives `0`.
/// `Some(0)` is not a rank (ranks are 1-based) and yields NaN so the mistake
/// cannot go unnoticed; [`RankingEvaluator::push`] rejects it with an error.
#[must_use]
pub fn hit_at(rank: Option<usize>, k: usize) -> f64 {
    match rank {
        Some(0) => f64::NAN,
        Some(r) if r <= k => 1.0,
        _ => 0.0,
    }
}

/// NDCG at `k` for one user with a single relevant item:
/// `1 / log2(rank + 1)` if `rank <= k`, else `0`.
///
/// With one relevant item the ideal DCG is 1, so this is also DCG@K.
/// `None`, `k = 0` and `Some(0)` behave as in [`hit_at`].
#[must_use]
pub fn ndcg_at(rank: Option<usize>, k: usize) -> f64 {
    match rank {
        Some(0) => f64::NAN,
        Some(r) if r <= k => 1.0 / (r as f64 + 1.0).log2(),
        _ => 0.0,
    }
}

/// Reciprocal rank for one user: `1 / rank`, or `0` for a miss (`None`).
///
/// `Some(0)` yields NaN as in [`hit_at`].
#[must_use]
pub fn reciprocal_rank(rank: Option<usize>) -> f64 {
    match rank {
        Some(0) => f64::NAN,
        Some(r) => 1.0 / r as f64,
        None => 0.0,
    }
}

/// HR and NDCG at one cutoff, inside a [`RankingReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutoffMetrics {
    /// The cutoff `K`.
    pub k: usize,
    /// Mean hit ratio at `K` over users.
    pub hr: f64,
    /// Mean NDCG at `K` over users.
    pub ndcg: f64,
    /// Bootstrap confidence interval of `hr`, when requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hr_ci: Option<ConfidenceInterval>,
    /// Bootstrap confidence interval of `ndcg`, when requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ndcg_ci: Option<ConfidenceInterval>,
}

/// Mean ranking metrics over users, produced by [`RankingEvaluator`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingReport {
    /// Number of users evaluated.
    pub n_users: usize,
    /// HR@K and NDCG@K, one entry per cutoff in increasing `K`.
    pub cutoffs: Vec<CutoffMetrics>,
    /// Mean reciprocal rank (no cutoff; misses count 0).
    pub mrr: f64,
    /// Bootstrap confidence interval of `mrr`, when requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrr_ci: Option<ConfidenceInterval>,
}

impl RankingReport {
    /// The metrics at cutoff `k`, if it was evaluated.
    #[must_use]
    pub fn at(&self, k: usize) -> Option<&CutoffMetrics> {
        self.cutoffs.iter().find(|c| c.k == k)
    }

    /// HR@`k`, if `k` was evaluated.
    #[must_use]
    pub fn hr(&self, k: usize) -> Option<f64> {
        self.at(k).map(|c| c.hr)
    }

    /// NDCG@`k`, if `k` was evaluated.
    #[must_use]
    pub fn ndcg(&self, k: usize) -> Option<f64> {
        self.at(k).map(|c| c.ndcg)
    }
}

/// Accumulates one rank per user and reports HR@K, NDCG@K and MRR.
///
/// Ranks are kept per user (one `Option<usize>` each) so that bootstrap
/// confidence intervals can resample users.
#[derive(Debug, Clone, PartialEq)]
pub struct RankingEvaluator {
    ks: Vec<usize>,
    ranks: Vec<Option<usize>>,
}

impl RankingEvaluator {
    /// An evaluator for the given cutoffs (sorted and deduplicated).
    ///
    /// # Errors
    /// [`MetricsError::Empty`] if `ks` is empty, [`MetricsError::InvalidK`]
    /// if a cutoff is 0.
    pub fn new(ks: &[usize]) -> Result<Self> {
        if ks.is_empty() {
            return Err(MetricsError::Empty { what: "ks" });
        }
        if ks.contains(&0) {
            return Err(MetricsError::InvalidK { k: 0 });
        }
        let mut ks = ks.to_vec();
        ks.sort_unstable();
        ks.dedup();
        Ok(Self {
            ks,
            ranks: Vec::new(),
        })
    }

    /// The cutoffs, in increasing order.
    #[must_use]
    pub fn ks(&self) -> &[usize] {
        &self.ks
    }

    /// The ranks pushed so far, one per user.
    #[must_use]
    pub fn ranks(&self) -> &[Option<usize>] {
        &self.ranks
    }

    /// Number of users pushed so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ranks.len()
    }

    /// Whether no user has been pushed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ranks.is_empty()
    }

    /// Records one user's rank (`None` = positive not found, a miss).
    ///
    /// # Errors
    /// [`MetricsError::InvalidRank`] for `Some(0)`; the evaluator is left
    /// unchanged.
    pub fn push(&mut self, rank: Option<usize>) -> Result<()> {
        if rank == Some(0) {
            return Err(MetricsError::InvalidRank {
                user: self.ranks.len(),
            });
        }
        self.ranks.push(rank);
        Ok(())
    }

    /// Records several users' ranks, stopping at the first invalid one
    /// (ranks before it are kept).
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn try_extend<I: IntoIterator<Item = Option<usize>>>(&mut self, ranks: I) -> Result<()> {
        ranks.into_iter().try_for_each(|r| self.push(r))
    }

    /// Mean metrics over the users pushed so far.
    ///
    /// # Errors
    /// [`MetricsError::Empty`] if no user was pushed.
    ///
    /// # Complexity
    /// O(n · |ks|) time, O(1) extra memory.
    pub fn report(&self) -> Result<RankingReport> {
        if self.ranks.is_empty() {
            return Err(MetricsError::Empty { what: "ranks" });
        }
        let n = self.ranks.len() as f64;
        let mean = |f: &dyn Fn(Option<usize>) -> f64| -> f64 {
            self.ranks.iter().map(|&r| f(r)).sum::<f64>() / n
        };
        let cutoffs = self
            .ks
            .iter()
            .map(|&k| CutoffMetrics {
                k,
                hr: mean(&|r| hit_at(r, k)),
                ndcg: mean(&|r| ndcg_at(r, k)),
                hr_ci: None,
                ndcg_ci: None,
            })
            .collect();
        Ok(RankingReport {
            n_users: self.ranks.len(),
            cutoffs,
            mrr: mean(&reciprocal_rank),
            mrr_ci: None,
        })
    }

    /// Like [`report`](Self::report), with percentile-bootstrap confidence
    /// intervals for every metric, resampling users with replacement.
    ///
    /// All metrics share the same resamples (one draw of users per resample),
    /// and each interval equals [`mean_ci`](crate::mean_ci) of that metric's
    /// per-user values with the same configuration.
    ///
    /// # Errors
    /// [`MetricsError::Empty`] if no user was pushed,
    /// [`MetricsError::InvalidConfig`] if `config` is invalid.
    ///
    /// # Complexity
    /// O(R · n · (2·|ks| + 1)) time for R resamples, O(n · (2·|ks| + 1))
    /// memory.
    pub fn report_with_ci(&self, config: &BootstrapConfig) -> Result<RankingReport> {
        let mut report = self.report()?;
        let mut columns: Vec<Vec<f64>> = Vec::with_capacity(2 * self.ks.len() + 1);
        for &k in &self.ks {
            columns.push(self.ranks.iter().map(|&r| hit_at(r, k)).collect());
            columns.push(self.ranks.iter().map(|&r| ndcg_at(r, k)).collect());
        }
        columns.push(self.ranks.iter().map(|&r| reciprocal_rank(r)).collect());
        let mut cis = bootstrap_means(&columns, config)?.into_iter();
        for c in &mut report.cutoffs {
            c.hr_ci = cis.next();
            c.ndcg_ci = cis.next();
        }
        report.mrr_ci = cis.next();
        Ok(report)
    }
}
