//! ELMRec (Wang, Cui, Fukumoto, Suzuki, EMNLP 2024) on graft's parts.
//!
//! A T5 recommender reads P5/POD prompts in which users and items appear
//! as `user_12` and `item_345`. Every sub-token of such an ID gets an
//! extra *whole-word embedding* scaled by `alpha`:
//! - direct recommendation (pick from a candidate list): the graph-aware
//!   vector of the user or item, LightGCN random-feature propagation over
//!   the train graph ([`EmbeddingMode::Graph`]), fine-tuned with the model;
//! - sequential recommendation (next item of a history): an incremental
//!   index, the k-th ID of the prompt gets learned vector k
//!   ([`EmbeddingMode::Incremental`]).
//!
//! Three continuous prompt vectors per task precede the prompt. Training
//! alternates task micro-batches ([`data::Sampler`]) under graft-train's
//! loop; inference generates item IDs with beam search constrained to a
//! trie of valid IDs ([`ItemTrie`]), or scores each candidate's
//! likelihood, and reranks sequential outputs by dropping history items
//! from the top K + N ([`eval::rerank`]).
//!
//! A finished run directory loads back for inference without an optimizer
//! ([`ElmrecModel::load`]); [`ElmrecRecommender`] recommends from it over
//! every item, for graft-recommend's `Recommender` API.
//!
//! Besides the paper's T5, the backbone can be a pretrained decoder-only
//! LLaMA (SmolLM2-135M, [`Backbone::Llama`]) with LoRA or full
//! fine-tuning ([`Finetune`]): the prompt (with the same whole-word and
//! prompt vectors) is followed by the target item's tokens. Both sit
//! behind one trait, [`ElmrecBackbone`] (module [`backbone`]); a new
//! backbone is one file implementing it, passed to
//! [`ElmrecModel::with_backbone`].
//!
//! ```no_run
//! use graft_elmrec::{ElmrecConfig, EvalConfig, Variant};
//! let cfg = ElmrecConfig::default().with_variant(Variant::Elmrec);
//! let eval = EvalConfig::default();
//! // graft_elmrec::train_and_evaluate(&cfg, &eval, &split, &test, tokenizer, run_dir, Runtime::default())?;
//! # let _ = (cfg, eval);
//! ```

pub mod backbone;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod model;
pub mod pipeline;
pub mod plots;
pub mod recommend;
pub mod report;
pub mod trie;

pub use backbone::{ElmrecBackbone, LlamaBackbone, PromptBatch};
pub use config::{
    Backbone, ElmrecConfig, EmbeddingMode, EvalConfig, Finetune, Sampling, TargetPieces, TaskMix,
    Validation, Variant,
};
pub use error::{ElmrecError, Result};
pub use eval::{evaluate, LmRanks, LmReport};
pub use model::{ElmrecModel, Example, Tables};
pub use pipeline::{train_and_evaluate, train_and_keep, ElmrecTrainer, RunResult, Runtime};
pub use recommend::{ElmrecRecommender, StoredRun};
pub use report::{markdown_table, ResultRow, RowRanks};
pub use trie::ItemTrie;
