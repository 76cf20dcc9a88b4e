//! Scoring models and evaluating them on an [`EvalSet`].

use std::time::Instant;

use serde::{Deserialize, Serialize};

use graft_metrics::{BootstrapConfig, MetricsError, RankingEvaluator, RankingReport};

use crate::error::{BaselineError, Result};
use crate::protocol::{EvalCase, EvalSet, Split};

/// A model that scores every item for a user (higher = better).
///
/// No `Sync` bound: implementations may hold `tch` tensors.
pub trait ItemScorer {
    /// Short name for reports, e.g. `"popularity"`.
    fn name(&self) -> String;

    /// Scores of all `n_items` items for `user` given `history` (oldest
    /// first).
    ///
    /// # Errors
    /// Implementation-specific; typically [`BaselineError::IdOutOfRange`]
    /// for a user the model does not know.
    fn score_all(&self, user: u32, history: &[u32]) -> Result<Vec<f32>>;
}

impl<T: ItemScorer + ?Sized> ItemScorer for &T {
    fn name(&self) -> String {
        (**self).name()
    }

    fn score_all(&self, user: u32, history: &[u32]) -> Result<Vec<f32>> {
        (**self).score_all(user, history)
    }
}

impl<T: ItemScorer + ?Sized> ItemScorer for Box<T> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn score_all(&self, user: u32, history: &[u32]) -> Result<Vec<f32>> {
        (**self).score_all(user, history)
    }
}

/// Sequential full ranking: whether the user's history items stay in the
/// ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HistoryFilter {
    /// Every item is ranked (the P5/POD/ELMRec sequential protocol).
    Keep,
    /// History items are removed before ranking (ELMRec's reranking idea:
    /// already-seen items are not recommended again). The target itself is
    /// always ranked, even when it also occurs in the history.
    Drop,
}

fn score_of(scores_all: &[f32], item: u32) -> Result<f32> {
    scores_all
        .get(item as usize)
        .copied()
        .ok_or(BaselineError::IdOutOfRange {
            kind: "item",
            id: item,
            n: scores_all.len(),
        })
}

/// 1-based rank of the target among the case's candidates, pessimistic ties
/// ([`graft_metrics::rank_of_positive`]: a candidate scoring exactly as the
/// target is ranked above it).
///
/// # Errors
/// [`BaselineError::Case`] if the target is not among the candidates exactly
/// once; [`BaselineError::IdOutOfRange`] for a candidate outside
/// `scores_all`; [`BaselineError::Metrics`] for a NaN score or a case with no
/// negative.
///
/// # Complexity
/// O(candidates).
pub fn direct_rank(scores_all: &[f32], case: &EvalCase) -> Result<usize> {
    let hits = case
        .candidates
        .iter()
        .filter(|&&c| c == case.target)
        .count();
    if hits != 1 {
        return Err(BaselineError::Case {
            user: case.user,
            reason: format!(
                "target {} occurs {hits} times among the candidates",
                case.target
            ),
        });
    }
    let pos = score_of(scores_all, case.target)?;
    let negs = case
        .candidates
        .iter()
        .filter(|&&c| c != case.target)
        .map(|&c| score_of(scores_all, c))
        .collect::<Result<Vec<f32>>>()?;
    Ok(graft_metrics::rank_of_positive(pos, &negs)?)
}

/// 1-based rank of the target among all items (history items other than the
/// target removed when `filter` is [`HistoryFilter::Drop`]), pessimistic
/// ties.
///
/// # Errors
/// [`BaselineError::IdOutOfRange`] for a target or (with `Drop`) a history
/// item outside `scores_all`; [`BaselineError::Metrics`] for a NaN among the
/// ranked scores or when no other item is left to rank against.
///
/// # Complexity
/// O(n_items + history).
pub fn full_rank(scores_all: &[f32], case: &EvalCase, filter: HistoryFilter) -> Result<usize> {
    let n = scores_all.len();
    let pos = score_of(scores_all, case.target)?;
    if pos.is_nan() {
        return Err(MetricsError::NaN {
            what: "positive_score",
            index: 0,
        }
        .into());
    }
    let mut skip = vec![false; n];
    skip[case.target as usize] = true;
    if filter == HistoryFilter::Drop {
        for &h in &case.history {
            match skip.get_mut(h as usize) {
                Some(s) => *s = true,
                None => {
                    return Err(BaselineError::IdOutOfRange {
                        kind: "item",
                        id: h,
                        n,
                    })
                }
            }
        }
    }
    let (mut others, mut above) = (0usize, 0usize);
    for (index, (&s, &skipped)) in scores_all.iter().zip(&skip).enumerate() {
        if skipped {
            continue;
        }
        if s.is_nan() {
            return Err(MetricsError::NaN {
                what: "scores",
                index,
            }
            .into());
        }
        others += 1;
        if s >= pos {
            above += 1;
        }
    }
    if others == 0 {
        return Err(MetricsError::Empty {
            what: "items to rank the target against",
        }
        .into());
    }
    Ok(1 + above)
}

/// The three ranks of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRanks {
    /// The case's user.
    pub user: u32,
    /// [`direct_rank`].
    pub direct: usize,
    /// [`full_rank`] with [`HistoryFilter::Keep`].
    pub sequential: usize,
    /// [`full_rank`] with [`HistoryFilter::Drop`].
    pub sequential_history_dropped: usize,
}

/// The ranks of `scores_all` on `case` for all three tasks.
///
/// # Errors
/// As [`direct_rank`] and [`full_rank`].
pub fn case_ranks(scores_all: &[f32], case: &EvalCase) -> Result<CaseRanks> {
    Ok(CaseRanks {
        user: case.user,
        direct: direct_rank(scores_all, case)?,
        sequential: full_rank(scores_all, case, HistoryFilter::Keep)?,
        sequential_history_dropped: full_rank(scores_all, case, HistoryFilter::Drop)?,
    })
}

/// Scores every case of `set` with `scorer` and returns the per-case ranks
/// (for paired comparisons between models).
///
/// # Errors
/// [`BaselineError::ScoreLength`] if the scorer returns a vector whose
/// length is not `set.n_items` (when `set.n_items > 0`), the scorer's own
/// errors, and those of [`case_ranks`].
pub fn rank_cases(scorer: &dyn ItemScorer, set: &EvalSet) -> Result<Vec<CaseRanks>> {
    set.cases
        .iter()
        .map(|case| {
            let scores = scorer.score_all(case.user, &case.history)?;
            if set.n_items > 0 && scores.len() != set.n_items {
                return Err(BaselineError::ScoreLength {
                    scorer: scorer.name(),
                    expected: set.n_items,
                    got: scores.len(),
                });
            }
            case_ranks(&scores, case)
        })
        .collect()
}

/// A scorer's metrics on an [`EvalSet`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtocolReport {
    /// [`ItemScorer::name`].
    pub scorer: String,
    /// The split evaluated.
    pub split: Split,
    /// Direct task: the target among 1 + `negatives` candidates.
    pub direct: RankingReport,
    /// Sequential task: the target among all items.
    pub sequential: RankingReport,
    /// Sequential task with the history items removed from the ranking.
    pub sequential_history_dropped: RankingReport,
    /// Wall-clock seconds of scoring and ranking (bootstrap excluded).
    pub seconds: f64,
}

/// Turns per-case ranks into a [`ProtocolReport`] with bootstrap intervals.
///
/// # Errors
/// [`BaselineError::Metrics`] for empty `ranks`, invalid `ks` or an invalid
/// bootstrap configuration.
pub fn report_from_ranks(
    scorer: String,
    split: Split,
    ranks: &[CaseRanks],
    ks: &[usize],
    boot: &BootstrapConfig,
    seconds: f64,
) -> Result<ProtocolReport> {
    let mut direct = RankingEvaluator::new(ks)?;
    let mut seq = RankingEvaluator::new(ks)?;
    let mut dropped = RankingEvaluator::new(ks)?;
    for r in ranks {
        direct.push(Some(r.direct))?;
        seq.push(Some(r.sequential))?;
        dropped.push(Some(r.sequential_history_dropped))?;
    }
    Ok(ProtocolReport {
        scorer,
        split,
        direct: direct.report_with_ci(boot)?,
        sequential: seq.report_with_ci(boot)?,
        sequential_history_dropped: dropped.report_with_ci(boot)?,
        seconds,
    })
}

/// Evaluates `scorer` on every case of `set` at cutoffs `ks` (e.g. `[5,
/// 10]`) with percentile-bootstrap confidence intervals over users.
///
/// # Errors
/// As [`rank_cases`] and [`report_from_ranks`] (an empty set is
/// [`BaselineError::Metrics`]).
pub fn evaluate(
    scorer: &dyn ItemScorer,
    set: &EvalSet,
    ks: &[usize],
    boot: &BootstrapConfig,
) -> Result<ProtocolReport> {
    RankingEvaluator::new(ks)?;
    let t0 = Instant::now();
    let ranks = rank_cases(scorer, set)?;
    let seconds = t0.elapsed().as_secs_f64();
    report_from_ranks(scorer.name(), set.split, &ranks, ks, boot, seconds)
}
