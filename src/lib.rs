//! graft: graph-aware LLM recommendation, from reusable parts.
//!
//! This umbrella crate re-exports every graft crate under a short name
//! (`graft::data`, `graft::elmrec`, ...); depend on a single one when that is
//! all you need. The crates on libtorch (`lora`, `train`, `elmrec`,
//! `elcorec`, and the libtorch parts of `graph`, `propagate`, `lm` and
//! `baselines`: LightGCN-BPR, SASRec) come with the `tch` feature, on by default here; with
//! `default-features = false` the umbrella is pure Rust.
//! See `docs/architecture.md` for the data flow and where each paper's
//! mechanism lives.
//!
//! ```
//! use graft::data::{synthetic, LeaveOneOut, NegativeSampler};
//! use graft::graph::BipartiteGraph;
//! use graft::metrics::{rank_of_positive, RankingEvaluator};
//!
//! let ds = synthetic::planted_clusters(&Default::default())?.dataset;
//! let split = LeaveOneOut::new(&ds);
//! let graph = BipartiteGraph::from_edges(ds.n_users(), ds.n_items(), split.train_edges())?;
//! let a_hat = graph.normalized()?; // D^-1/2 A D^-1/2, train edges only
//! assert_eq!(a_hat.rows(), ds.n_users() + ds.n_items());
//!
//! // popularity baseline with 99 seeded negatives per user
//! let popularity = graph.item_degrees();
//! let sampler = NegativeSampler::new(ds.n_items(), 2024);
//! let mut eval = RankingEvaluator::new(&[5, 10])?;
//! for u in 0..split.n_users() as u32 {
//!     let target = split.test[u as usize].expect("every synthetic user has a test item");
//!     let negatives = sampler.sample(u, &split.all_items(u), 99)?;
//!     let scores: Vec<f64> = negatives.iter().map(|&i| popularity[i as usize] as f64).collect();
//!     eval.push(Some(rank_of_positive(popularity[target as usize] as f64, &scores)?))?;
//! }
//! let report = eval.report()?;
//! assert!(report.hr(10).unwrap_or(0.0) >= report.hr(5).unwrap_or(0.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use graft_baselines as baselines;
pub use graft_data as data;
#[cfg(feature = "tch")]
pub use graft_elcorec as elcorec;
#[cfg(feature = "tch")]
pub use graft_elmrec as elmrec;
pub use graft_graph as graph;
pub use graft_lm as lm;
#[cfg(feature = "tch")]
pub use graft_lora as lora;
pub use graft_metrics as metrics;
pub use graft_plot as plot;
pub use graft_prompt as prompt;
pub use graft_propagate as propagate;
pub use graft_recommend as recommend;
pub use graft_retrieval as retrieval;
#[cfg(feature = "tch")]
pub use graft_train as train;
