//! Greedy decoding and beam search (free or constrained to allowed
//! tokens) with a shared key/value cache.

use tch::{Kind, Tensor};

use super::{KvCache, Llama};
use crate::beam::{BeamConfig, Hypothesis};
use crate::error::{LmError, Result};

impl Llama {
    /// Beam search after `prompt` with a shared KV cache (beams are the
    /// batch dimension; the cache is reordered every step). Stops when
    /// `beams` hypotheses have ended with `eos` (Hugging Face's
    /// `early_stopping=True`) or after `max_new` tokens, when the running
    /// beams are added as hypotheses. Returns the best `num_return`,
    /// best first.
    ///
    /// # Errors
    ///
    /// [`LmError::WrongType`] for an empty prompt or zero beams;
    /// [`LmError::Tch`] if libtorch fails.
    pub fn beam_search(&self, prompt: &[u32], cfg: &BeamConfig) -> Result<Vec<Hypothesis>> {
        let x = self.prompt_embeds(prompt, "beam search")?;
        self.beam_search_inner(&x, cfg, None)
    }

    /// [`beam_search`](Self::beam_search) where every beam may only
    /// continue with the tokens `allowed(generated so far)` returns
    /// (Hugging Face's `prefix_allowed_tokens_fn`, e.g. a trie of valid
    /// item IDs); beams with no allowed continuation are dropped.
    ///
    /// # Errors
    ///
    /// As [`beam_search`](Self::beam_search).
    pub fn beam_search_constrained(
        &self,
        prompt: &[u32],
        cfg: &BeamConfig,
        allowed: &mut crate::beam::AllowedTokens<'_>,
    ) -> Result<Vec<Hypothesis>> {
        let x = self.prompt_embeds(prompt, "beam search")?;
        self.beam_search_inner(&x, cfg, Some(allowed))
    }

    /// [`beam_search_constrained`](Self::beam_search_constrained) after a
    /// prompt given as input embeddings (`[1, T, hidden]`, e.g. token
    /// embeddings with injected vectors and a soft-prompt prefix).
    ///
    /// # Errors
    ///
    /// [`LmError::WrongType`] unless `x` is `[1, T >= 1, hidden]` or for
    /// zero beams; [`LmError::Tch`] if libtorch fails.
    pub fn beam_search_embeds_constrained(
        &self,
        x: &Tensor,
        cfg: &BeamConfig,
        allowed: &mut crate::beam::AllowedTokens<'_>,
    ) -> Result<Vec<Hypothesis>> {
        self.check_prefix(x, "beam search")?;
        self.beam_search_inner(x, cfg, Some(allowed))
    }

    /// `[1, T, hidden]` embeddings of a non-empty prompt.
    fn prompt_embeds(&self, prompt: &[u32], what: &str) -> Result<Tensor> {
        if prompt.is_empty() {
            return Err(LmError::WrongType {
                name: what.into(),
                expected: "a non-empty prompt".into(),
                found: "no prompt tokens".into(),
            });
        }
        let ids: Vec<i64> = prompt.iter().map(|&i| i64::from(i)).collect();
        let input = Tensor::f_from_slice(&ids)?
            .f_view([1, -1])?
            .f_to(self.device)?;
        self.embed(&input)
    }

    fn beam_search_inner(
        &self,
        x: &Tensor,
        cfg: &BeamConfig,
        allowed: Option<&mut crate::beam::AllowedTokens<'_>>,
    ) -> Result<Vec<Hypothesis>> {
        let _guard = tch::no_grad_guard();
        let mut cache = KvCache::default();
        let h = self.forward_embeds(x, &mut cache, None)?;
        let first = self
            .logits(&h.f_select(1, -1)?)?
            .f_log_softmax(-1, Kind::Float)?;
        crate::beam::search_constrained(
            cfg,
            first,
            |parents, beams| {
                // Reorder the cache to the surviving parents and feed the new tokens.
                let order = Tensor::f_from_slice(parents)?.f_to(self.device)?;
                for (k, v) in &mut cache.layers {
                    *k = k.f_index_select(0, &order)?;
                    *v = v.f_index_select(0, &order)?;
                }
                let last: Vec<i64> = beams
                    .iter()
                    .map(|t| i64::from(*t.last().unwrap_or(&0)))
                    .collect();
                let input = Tensor::f_from_slice(&last)?
                    .f_view([-1, 1])?
                    .f_to(self.device)?;
                let h = self.forward_embeds(&self.embed(&input)?, &mut cache, None)?;
                Ok(self
                    .logits(&h.f_select(1, -1)?)?
                    .f_log_softmax(-1, Kind::Float)?)
            },
            allowed,
        )
    }

    /// Greedy decoding: appends up to `max_new` tokens to `prompt`, stopping
    /// after `eos`; returns only the new tokens.
    ///
    /// # Errors
    ///
    /// [`LmError::Tch`] if libtorch fails; [`LmError::WrongType`] for an
    /// empty prompt.
    pub fn generate_greedy(
        &self,
        prompt: &[u32],
        max_new: usize,
        eos: Option<u32>,
    ) -> Result<Vec<u32>> {
        if prompt.is_empty() {
            return Err(LmError::WrongType {
                name: "prompt".into(),
                expected: "at least one token".into(),
                found: "none".into(),
            });
        }
        let _guard = tch::no_grad_guard();
        let mut cache = KvCache::default();
        let ids: Vec<i64> = prompt.iter().map(|&i| i64::from(i)).collect();
        let mut input = Tensor::f_from_slice(&ids)?
            .f_view([1, -1])?
            .f_to(self.device)?;
        let mut out = Vec::with_capacity(max_new);
        for _ in 0..max_new {
            let hidden = self.forward_embeds(&self.embed(&input)?, &mut cache, None)?;
            let last = hidden.f_select(1, -1)?;
            let next = self
                .logits(&last)?
                .f_argmax(-1, false)?
                .f_int64_value(&[0])?;
            let next = u32::try_from(next).unwrap_or(0);
            out.push(next);
            if Some(next) == eos {
                break;
            }
            input = Tensor::f_from_slice(&[i64::from(next)])?
                .f_view([1, 1])?
                .f_to(self.device)?;
        }
        Ok(out)
    }
}
