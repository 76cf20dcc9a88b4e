//! ELCoRec (Chen et al., CIKM 2024) on graft's parts: CTR prediction with
//! a language model that reads a graph expert's vector as one soft-prompt
//! token.
//!
//! 1. [`data::CtrData`]: ReLLa's CTR samples (graft-data's `CtrSplit`),
//!    profile and feature codes, seeded validation/test subsets.
//! 2. [`expert::GatExpert`]: per-sample heterogeneous graphs (user, target,
//!    `k_gat` recent items with rating and time-gap inputs, feature nodes)
//!    through graft-propagate's `HeteroGat`, pre-trained alone with
//!    `sigmoid(cos(user, target))` and BCE ([`pipeline::pretrain_gat`]),
//!    then frozen.
//! 3. [`rap::RapBuilder`]: RAP prompts, items retrieved by cosine
//!    similarity of MiniLM text embeddings ([`rap::item_embeddings`],
//!    cached) plus the most recent items, and the placeholder token.
//! 4. [`llm::CtrLlm`]: a LLaMA-family LM (SmolLM2-135M) with LoRA; the
//!    placeholder's input embedding is replaced by a linear projection of
//!    the expert's target vector; p(click) is the softmax over the Yes/No
//!    logits. Fine-tuned under graft-train's loop ([`pipeline::run_llm`]):
//!    gradient accumulation, atomic checkpoints, resume, progress bars.
//! 5. Baselines on the same split: logistic regression and a
//!    factorization machine ([`classic`]), the expert alone, and the LLM
//!    variants without the token or without retrieval
//!    ([`config::LlmVariant`]).
//!
//! ```no_run
//! use graft_elcorec::config::{GatExpertConfig, SampleConfig};
//! use graft_elcorec::data::CtrData;
//! use graft_elcorec::pipeline::{pretrain_gat, Runtime};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ds = graft_data::load_auto(std::path::Path::new("../shared/data/ml-100k"), &Default::default())?;
//! let data = CtrData::new(ds, SampleConfig::default())?;
//! let (_expert, result) = pretrain_gat(&data, &GatExpertConfig::default(), "runs/gat".as_ref(), Runtime::default())?;
//! println!("GAT alone: AUC {:.4}", result.test.auc);
//! # Ok(()) }
//! ```

pub mod baseline;
pub mod classic;
pub mod config;
pub mod data;
pub mod din;
pub mod error;
pub mod expert;
pub mod llm;
pub mod models;
pub mod pipeline;
pub mod rap;
pub mod report;

pub use baseline::CtrBaseline;
pub use config::{
    ClassicConfig, DinConfig, GatExpertConfig, KeptWeights, LlmConfig, LlmVariant, SampleConfig,
};
pub use data::CtrData;
pub use din::Din;
pub use error::{ElcorecError, Result};
pub use expert::GatExpert;
pub use llm::CtrLlm;
pub use models::CtrModel;
pub use pipeline::{pretrain_gat, run_classic, run_din, run_llm, CtrResult, Runtime};
pub use rap::RapBuilder;
