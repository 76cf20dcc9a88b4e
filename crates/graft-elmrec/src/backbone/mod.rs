//! The language models ELMRec can sit on, behind one trait.
//!
//! [`ElmrecModel`](crate::ElmrecModel) renders prompts, tokenizes them and
//! knows which tokens belong to which user or item; a backbone turns such a
//! [`PromptBatch`] into a loss, candidate likelihoods or a constrained beam
//! search. Two implementations: T5 (encoder-decoder, the paper's;
//! [`t5`]) and a decoder-only LLaMA such as SmolLM2 ([`LlamaBackbone`]).
//! Adding a backbone is one new file implementing [`ElmrecBackbone`], and
//! [`ElmrecModel::with_backbone`](crate::ElmrecModel::with_backbone) takes
//! any of them.

pub mod llama;
pub mod t5;

use std::any::Any;

use graft_lm::inject::{inject, Injection};
use graft_lm::{AllowedTokens, Hypothesis};
use tch::{Device, Tensor};
use tokenizers::Tokenizer;

use crate::config::TargetPieces;
use crate::error::{ElmrecError, Result};

pub use llama::LlamaBackbone;

/// What ELMRec needs from a language model.
///
/// Every method that takes a [`PromptBatch`] embeds its token ids with the
/// backbone's own embedding table and passes the result through
/// [`PromptBatch::inject`], which adds the whole-word vectors and prepends
/// the task's prompt vectors.
pub trait ElmrecBackbone: std::fmt::Debug {
    /// Width of the token embeddings, and so of ELMRec's whole-word tables
    /// and prompt vectors.
    fn hidden_size(&self) -> usize;

    /// The token ids generated for item `item`, end-of-sequence token
    /// last, spelled as `pieces` says.
    ///
    /// # Errors
    ///
    /// Tokenizer failures; `Config` for a spelling this backbone does not
    /// support.
    fn item_target(&self, tok: &Tokenizer, item: usize, pieces: TargetPieces) -> Result<Vec<u32>>;

    /// Text appended to every rendered prompt before tokenization (a
    /// decoder-only model's answer cue; empty by default).
    fn prompt_suffix(&self) -> &str {
        ""
    }

    /// Every trainable tensor with a stable name (the checkpoint keys).
    fn named_parameters(&self) -> Vec<(String, Tensor)>;

    /// Mean token cross-entropy of `targets[i]` after prompt `i`
    /// (`train`: dropout-like training behaviour on, where the backbone
    /// has any).
    ///
    /// # Errors
    ///
    /// libtorch failures.
    fn loss(&self, prompts: &PromptBatch<'_>, targets: &[&[u32]], train: bool) -> Result<Tensor>;

    /// Summed log-probability of each continuation after the batch's one
    /// prompt, in order.
    ///
    /// # Errors
    ///
    /// libtorch failures.
    fn score(&self, prompt: &PromptBatch<'_>, continuations: &[&[u32]]) -> Result<Vec<f32>>;

    /// Beam search after the batch's one prompt with `beams` beams, at most
    /// `max_new` tokens, each step restricted to `allowed(prefix)`; ends at
    /// the backbone's end-of-sequence token. Hypotheses best first.
    ///
    /// # Errors
    ///
    /// libtorch failures.
    fn beam_search(
        &self,
        prompt: &PromptBatch<'_>,
        beams: usize,
        max_new: usize,
        allowed: &mut AllowedTokens<'_>,
    ) -> Result<Vec<Hypothesis>>;

    /// The concrete backbone, for downcasting (`graft_lm::T5`,
    /// [`LlamaBackbone`], ...).
    fn as_any(&self) -> &dyn Any;
}

/// Adds whole-word vectors to token embeddings and prepends prompt
/// vectors: the ELMRec side of a forward pass.
#[derive(Debug)]
pub(crate) struct Injector<'a> {
    /// The task's prompt vectors `[P, d]` (`P` may be 0).
    pub(crate) prompts: Tensor,
    /// The task's whole-word table (`None`: no whole-word embedding).
    pub(crate) table: Option<&'a Tensor>,
    /// Scale of the whole-word vectors.
    pub(crate) alpha: f64,
}

/// One batch of rendered, tokenized prompts of one task, with what a
/// backbone needs to embed them the ELMRec way.
#[derive(Debug)]
pub struct PromptBatch<'a> {
    ids: Vec<Vec<i64>>,
    whole_words: Vec<Vec<i64>>,
    injector: Injector<'a>,
    device: Device,
}

/// A [`PromptBatch`]'s prompts, each followed by its continuation (if
/// any), right-padded with token 0 to one length `T`.
#[derive(Debug)]
pub struct Padded {
    /// Token ids `[B, T]`.
    pub ids: Tensor,
    /// Whole-word ids `[B, T]` (0 on continuations and padding).
    pub whole_words: Tensor,
    /// 1 on prompt tokens, 0 on continuations and padding, `[B, T]`
    /// (int64).
    pub in_prompt: Tensor,
    /// Each prompt's length in tokens.
    pub prompt_lens: Vec<usize>,
}

fn to_i64(n: usize) -> Result<i64> {
    i64::try_from(n).map_err(|_| ElmrecError::Config(format!("{n} does not fit in i64")))
}

impl<'a> PromptBatch<'a> {
    pub(crate) fn new(
        ids: Vec<Vec<i64>>,
        whole_words: Vec<Vec<i64>>,
        injector: Injector<'a>,
        device: Device,
    ) -> Self {
        Self {
            ids,
            whole_words,
            injector,
            device,
        }
    }

    /// Number of prompts.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the batch holds no prompt.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The device the backbone runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Number of prompt vectors [`inject`](Self::inject) prepends.
    pub fn prefix_len(&self) -> i64 {
        self.injector.prompts.size()[0]
    }

    /// The prompts padded, prompt `i` followed by `continuations[i]`
    /// (missing entries: none), as tensors on the batch's device.
    ///
    /// # Errors
    ///
    /// libtorch failures.
    pub fn padded(&self, continuations: &[&[u32]]) -> Result<Padded> {
        let rows: Vec<(&Vec<i64>, &[u32])> = self
            .ids
            .iter()
            .zip(
                continuations
                    .iter()
                    .copied()
                    .chain(std::iter::repeat(&[][..])),
            )
            .collect();
        let len = rows
            .iter()
            .map(|(p, c)| p.len() + c.len())
            .max()
            .unwrap_or(0);
        let n = rows.len() * len;
        let (mut ids, mut ww, mut in_prompt) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for ((p, c), w) in rows.iter().zip(&self.whole_words) {
            for k in 0..len {
                let tok = match k.checked_sub(p.len()) {
                    None => p[k],
                    Some(j) => c.get(j).map_or(0, |&t| i64::from(t)),
                };
                ids.push(tok);
                ww.push(if k < p.len() { w[k] } else { 0 });
                in_prompt.push(i64::from(k < p.len()));
            }
        }
        let shape = [to_i64(rows.len())?, to_i64(len)?];
        let upload = |v: &[i64]| -> Result<Tensor> {
            Ok(Tensor::f_from_slice(v)?.f_view(shape)?.f_to(self.device)?)
        };
        Ok(Padded {
            ids: upload(&ids)?,
            whole_words: upload(&ww)?,
            in_prompt: upload(&in_prompt)?,
            prompt_lens: self.ids.iter().map(Vec::len).collect(),
        })
    }

    /// Token embeddings `emb` (`[B, T, d]`) plus `alpha` times the task's
    /// whole-word rows `whole_words` (`[B, T]`), with the task's prompt
    /// vectors prepended: `[B, P + T, d]`. Where `plain` (`[B, T]` bool) is
    /// true the token embedding is kept as it is (continuation tokens fed
    /// back, as generation feeds them).
    ///
    /// # Errors
    ///
    /// libtorch failures (shapes that do not match).
    pub fn inject(
        &self,
        emb: &Tensor,
        whole_words: &Tensor,
        plain: Option<&Tensor>,
    ) -> Result<Tensor> {
        let Injector {
            prompts,
            table,
            alpha,
        } = &self.injector;
        let with_prompts = |x: Tensor| -> Result<Tensor> {
            Ok(if prompts.size()[0] > 0 {
                inject(&x, &[Injection::prefix(prompts)])?
            } else {
                x
            })
        };
        match (table, plain) {
            (Some(table), Some(plain)) => {
                let added = inject(emb, &[Injection::additive(whole_words, table, *alpha)])?
                    .f_where_self(&plain.f_logical_not()?.f_unsqueeze(-1)?, emb)?;
                with_prompts(added)
            }
            (Some(table), None) => {
                let mut inj = vec![Injection::additive(whole_words, table, *alpha)];
                if prompts.size()[0] > 0 {
                    inj.push(Injection::prefix(prompts));
                }
                Ok(inject(emb, &inj)?)
            }
            (None, _) => with_prompts(emb.shallow_clone()),
        }
    }
}
