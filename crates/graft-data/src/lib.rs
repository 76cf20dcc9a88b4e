//! Recommendation datasets for graft: one typed in-memory [`Dataset`] from
//! many source formats, the two papers' splits, and seeded negative sampling.
//!
//! * **Loaders** ([`load`], [`load_auto`], [`Format`]): P5/POD Amazon
//!   (`sequential.txt` + `datamaps.json`), MovieLens 100K/1M/25M, raw
//!   BookCrossing, RecBole atomic files, and a generic
//!   `user,item[,rating][,timestamp]` CSV. Every malformed line is a
//!   [`DataError::Parse`] naming the file, the line and the reason; the
//!   explicit [`ParseMode::Lenient`] skips such lines and counts them in the
//!   [`LoadReport`].
//! * **Splits**: [`LeaveOneOut`] (ELMRec/POD) and [`CtrSplit`] (ELCoRec/ReLLa).
//! * **Negatives**: [`NegativeSampler`], identical across runs and machines.
//! * **Protocol leaks as options** ([`leaks`]): a seeded random item
//!   renumbering ([`Reindex`]) and the graph's edge source ([`GraphEdges`]).
//! * **ELCoRec side information** ([`features`]): GAT codes, item texts,
//!   prompt profiles.
//! * **Synthetic data**: [`synthetic::planted_clusters`] for fast tests;
//!   [`shared`] finds the real datasets for test suites.
//!
//! ```
//! use graft_data::{synthetic, LeaveOneOut, NegativeSampler};
//!
//! let data = synthetic::planted_clusters(&Default::default())?.dataset;
//! let split = LeaveOneOut::new(&data);
//! assert_eq!(split.sizes().test, data.n_users());
//! let negatives = NegativeSampler::new(data.n_items(), 7).sample_split(&split, 99)?;
//! assert!(negatives[0].iter().all(|i| !split.all_items(0).contains(i)));
//! # Ok::<(), graft_data::DataError>(())
//! ```

pub mod dataset;
pub mod error;
pub mod features;
pub mod formats;
pub mod leaks;
pub mod negative;
pub mod read;
pub mod rng;
pub mod shared;
pub mod split;
pub mod synthetic;

pub use dataset::{Dataset, DatasetStats, IdMap, Interaction, ItemInfo, UserInfo};
pub use error::{DataError, Result};
pub use formats::{load, load_auto, Format, LoadOptions};
pub use leaks::{GraphEdges, ItemPermutation, Reindex};
pub use negative::NegativeSampler;
pub use read::{LoadReport, ParseMode, SkippedLine};
pub use split::{
    implicit_rating, CtrConfig, CtrOrder, CtrSample, CtrSplit, HistoryEntry, ImplicitRatings,
    LabelRule, LeaveOneOut, SplitSizes,
};
