//! The ELMRec evaluation protocol and the non-LLM baselines.
//!
//! * **Protocol** ([`EvalSet`], [`EvalCase`], [`Split`]): fixed, seeded
//!   leave-one-out evaluation sets. Each case holds the user's history (what
//!   a model may see), the held-out target and, for the *direct* task, the
//!   target shuffled among `negatives` (99 in the paper) sampled items the
//!   user never interacted with.
//! * **Scoring** ([`ItemScorer`], [`evaluate`]): a model scores all items
//!   for a user; [`direct_rank`] ranks the target among the candidates,
//!   [`full_rank`] among all items (*sequential* task), optionally with the
//!   history removed ([`HistoryFilter::Drop`], ELMRec's reranking idea).
//!   Ties are pessimistic everywhere (graft-metrics), so a constant scorer
//!   ranks every target last. [`ProtocolReport`] holds HR@K, NDCG@K and MRR
//!   with bootstrap confidence intervals for the three rankings.
//! * **Baselines**: [`Popularity`] (train degree), [`RandomPropagation`]
//!   (ELMRec's graph-aware random-feature vectors with no language model,
//!   dot-product scores), [`LightGcnBpr`] (LightGCN trained with BPR on
//!   graft-propagate's differentiable libtorch kernel), [`SasRec`]
//!   (self-attentive sequential recommendation, in tch) and
//!   [`SequentialIndex`] (the `max(history) + 1` rule that P5's nearly
//!   sequential item numbers reward), plus the floors [`Constant`] and
//!   [`RandomScorer`]. The graph baselines take the graph's edge source
//!   ([`graft_data::GraphEdges`]) to measure a leaky graph.
//!
//! LightGCN-BPR and SASRec train with libtorch and need the `tch` feature
//! (off by default); everything else here is pure Rust.
//!
//! ```
//! use graft_baselines::{evaluate, EvalSet, Popularity, RandomPropagation, Split};
//! use graft_data::{synthetic, LeaveOneOut};
//! use graft_metrics::BootstrapConfig;
//! use graft_propagate::LightGcnConfig;
//!
//! let data = synthetic::planted_clusters(&Default::default())?.dataset;
//! let loo = LeaveOneOut::new(&data);
//! let test = EvalSet::build(&loo, Split::Test, Some(100), 20, 7)?;
//! assert_eq!(test.cases.len(), 100);
//! let boot = BootstrapConfig::new(100, 0.95, 7);
//!
//! let pop = evaluate(&Popularity::fit(&loo), &test, &[5, 10], &boot)?;
//! let cfg = LightGcnConfig { dim: 64, layers: 2, ..LightGcnConfig::default() };
//! let rp = evaluate(&RandomPropagation::fit(&loo, &cfg)?, &test, &[5, 10], &boot)?;
//! assert!(rp.direct.hr(10) > pop.direct.hr(10)); // planted clusters: the graph helps
//! # Ok::<(), graft_baselines::BaselineError>(())
//! ```

#[cfg(feature = "tch")]
mod bpr;
mod embedding;
mod error;
mod popularity;
mod protocol;
mod random_propagation;
mod recommend;
#[cfg(feature = "tch")]
mod sasrec;
mod scoring;
mod sequential_index;

#[cfg(feature = "tch")]
pub use bpr::{direct_hr_at, BprConfig, EpochLog, LightGcnBpr};
pub use embedding::DotScorer;
pub use error::{BaselineError, Result};
pub use popularity::{graph_from, train_graph, Constant, Popularity, RandomScorer};
pub use protocol::{EvalCase, EvalSet, Split};
pub use random_propagation::RandomPropagation;
pub use recommend::Scored;
#[cfg(feature = "tch")]
pub use sasrec::{SasRec, SasRecConfig, SasRecEpoch};
pub use scoring::{
    case_ranks, direct_rank, evaluate, full_rank, rank_cases, report_from_ranks, CaseRanks,
    HistoryFilter, ItemScorer, ProtocolReport,
};
pub use sequential_index::SequentialIndex;
