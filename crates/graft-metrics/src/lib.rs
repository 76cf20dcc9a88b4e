//! Evaluation metrics for graph-aware LLM recommendation.
//!
//! * **Top-K with one known positive** (the ELMRec protocol): find the
//!   positive's 1-based rank among scored candidates ([`rank_of_positive`],
//!   [`rank_among`]) or in a generated list ([`rank_in_list`], `None` = miss),
//!   then HR@K ([`hit_at`]), NDCG@K ([`ndcg_at`]) and MRR
//!   ([`reciprocal_rank`]); [`RankingEvaluator`] averages them over users.
//!   **Ties are pessimistic**: a candidate scoring exactly as the positive is
//!   ranked above it, so a constant scorer gets the worst rank, never the best.
//! * **CTR** (the ELCoRec protocol): rank-based, tie-correct [`auc`]
//!   (O(n log n)) and clipped [`log_loss`] ([`DEFAULT_LOG_LOSS_EPS`]), both in
//!   [`ctr_report`].
//! * **Confidence intervals**: percentile bootstrap ([`bootstrap_ci`],
//!   [`mean_ci`], [`auc_ci`], [`RankingEvaluator::report_with_ci`]),
//!   deterministic for a seed on every machine.
//!
//! Bad input is an error ([`MetricsError`]), never a panic or a silent drop:
//! empty input, length mismatches, NaN scores, probabilities outside
//! `[0, 1]`, and AUC with a single class.
//!
//! # Example
//! ```
//! use graft_metrics::{auc, log_loss, rank_in_list, rank_of_positive};
//! use graft_metrics::{BootstrapConfig, RankingEvaluator, DEFAULT_LOG_LOSS_EPS};
//!
//! let mut eval = RankingEvaluator::new(&[1, 5])?;
//! // scored candidates: one negative beats the positive -> rank 2
//! eval.push(Some(rank_of_positive(0.9, &[0.1, 0.95, 0.3])?))?;
//! // generated list: the target is first -> rank 1
//! eval.push(rank_in_list(&["i7", "i3"], &"i7"))?;
//! // generated list without the target -> miss
//! eval.push(rank_in_list(&["i1", "i2"], &"i9"))?;
//! let report = eval.report()?;
//! assert_eq!(report.hr(1), Some(1.0 / 3.0));
//! assert_eq!(report.hr(5), Some(2.0 / 3.0));
//! assert!((report.mrr - (0.5 + 1.0) / 3.0).abs() < 1e-12);
//!
//! // CTR: positive-negative pairs (0.8 vs 0.8) tie and count 1/2
//! let labels = [true, false, true, false];
//! let probs = [0.8, 0.8, 0.3, 0.1];
//! assert!((auc(&labels, &probs)? - 0.625).abs() < 1e-12);
//! assert!(log_loss(&labels, &probs, DEFAULT_LOG_LOSS_EPS)? > 0.0);
//!
//! // 95% bootstrap intervals, reproducible for the seed
//! let with_ci = eval.report_with_ci(&BootstrapConfig::new(200, 0.95, 42))?;
//! let ci = with_ci.mrr_ci.expect("requested");
//! assert!(ci.lower <= ci.upper);
//! # Ok::<(), graft_metrics::MetricsError>(())
//! ```

mod bootstrap;
mod ctr;
mod error;
mod ranking;

pub use bootstrap::{
    auc_ci, bootstrap_ci, mean_ci, paired_auc_difference_ci, paired_difference_ci,
    paired_log_loss_difference_ci, BootstrapConfig, ConfidenceInterval,
};
pub use ctr::{auc, ctr_report, log_loss, log_loss_terms, CtrReport, DEFAULT_LOG_LOSS_EPS};
pub use error::{MetricsError, Result};
pub use ranking::{
    hit_at, ndcg_at, rank_among, rank_in_list, rank_of_positive, reciprocal_rank, CutoffMetrics,
    RankingEvaluator, RankingReport,
};
