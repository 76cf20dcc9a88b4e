//! A decoder-only LLaMA (SmolLM2): the prompt, an answer cue, then the
//! item's tokens, all in one causal sequence.

use std::any::Any;
use std::path::Path;

use graft_lm::gguf::GgufFile;
use graft_lm::llama::{KvCache, Llama};
use graft_lm::{AllowedTokens, BeamConfig, Hypothesis};
use tch::{Device, Reduction, Tensor};
use tokenizers::Tokenizer;

use super::{to_i64, ElmrecBackbone, PromptBatch};
use crate::config::{Finetune, TargetPieces};
use crate::error::{ElmrecError, Result};

/// Text appended to every prompt of a decoder-only backbone, so that the
/// target's digits follow `item_` exactly as item IDs appear in prompts.
pub const LLAMA_ANSWER_CUE: &str = " Answer: item_";

/// Candidates scored per forward pass (each holds a copy of the prompt's
/// key/value cache).
const SCORE_CHUNK: usize = 16;

/// A decoder-only backbone and how it is trained.
#[derive(Debug)]
pub struct LlamaBackbone {
    llama: Llama,
    /// The LoRA adapters' variables (`None`: full fine-tuning).
    lora: Option<tch::nn::VarStore>,
    /// End of a target.
    eos: u32,
}

impl LlamaBackbone {
    /// Loads a LLaMA from a GGUF file or a Hugging Face directory and
    /// prepares it for `finetune`: LoRA adapters seeded with `seed` (over
    /// bf16 block projections when `bf16_base`), or every weight
    /// trainable.
    ///
    /// # Errors
    ///
    /// Loading failures; `Config` when the model names no end-of-sequence
    /// token.
    pub fn load(
        weights: &Path,
        finetune: &Finetune,
        bf16_base: bool,
        seed: u64,
        device: Device,
    ) -> Result<Self> {
        let (mut llama, eos) = if weights.is_dir() {
            let (llama, _report) = Llama::from_hf_dir(weights, device)?;
            let path = weights.join("config.json");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ElmrecError::Config(format!("{}: {e}", path.display())))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| ElmrecError::Config(format!("{}: {e}", path.display())))?;
            let eos = match v.get("eos_token_id") {
                Some(serde_json::Value::Array(a)) => a.first().and_then(serde_json::Value::as_u64),
                Some(x) => x.as_u64(),
                None => None,
            };
            (llama, eos)
        } else {
            let file = GgufFile::read(weights)?;
            let eos = graft_lm::tokenizer::special_ids(&file).eos.map(u64::from);
            (Llama::from_gguf(&file, device)?, eos)
        };
        let eos = eos.and_then(|e| u32::try_from(e).ok()).ok_or_else(|| {
            ElmrecError::Config(format!("{}: no end-of-sequence token", weights.display()))
        })?;
        let lora = match finetune {
            Finetune::Lora(cfg) => {
                if bf16_base {
                    llama.set_projection_kind(tch::Kind::BFloat16)?;
                }
                tch::manual_seed(seed as i64 ^ 0x10aa);
                let vs = tch::nn::VarStore::new(device);
                llama.attach_lora(&vs.root().sub("lora"), cfg)?;
                Some(vs)
            }
            Finetune::Full => {
                llama.set_requires_grad(true);
                None
            }
        };
        Ok(Self { llama, lora, eos })
    }

    /// The model.
    pub fn llama(&self) -> &Llama {
        &self.llama
    }

    /// Each prompt followed by its continuation (possibly none), embedded
    /// with whole-word vectors on the prompts' ID tokens and the prompt
    /// vectors in front: `[B, P + T, d]`, and each prompt's length in
    /// tokens (without the `P` prompt vectors). Right padding is harmless:
    /// causal attention keeps it out of real positions.
    fn inputs(
        &self,
        prompts: &PromptBatch<'_>,
        targets: &[&[u32]],
    ) -> Result<(Tensor, Vec<usize>)> {
        let padded = prompts.padded(targets)?;
        let emb = self.llama.embed(&padded.ids)?;
        // Continuation tokens are fed as plain token embeddings, as
        // generation and candidate scoring feed them.
        let plain = padded.in_prompt.f_eq(0)?;
        let x = prompts.inject(&emb, &padded.whole_words, Some(&plain))?;
        Ok((x, padded.prompt_lens))
    }
}

impl ElmrecBackbone for LlamaBackbone {
    fn hidden_size(&self) -> usize {
        self.llama.config().hidden
    }

    fn item_target(&self, tok: &Tokenizer, i: usize, pieces: TargetPieces) -> Result<Vec<u32>> {
        if pieces != TargetPieces::Number {
            return Err(ElmrecError::Config(
                "target pieces other than `number` are for T5 backbones (a decoder-only \
                 backbone's target already follows `item_` in its prompt)"
                    .into(),
            ));
        }
        let mut ids = tok
            .encode(i.to_string(), false)
            .map_err(|e| ElmrecError::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec();
        ids.push(self.eos);
        Ok(ids)
    }

    fn prompt_suffix(&self) -> &str {
        LLAMA_ANSWER_CUE
    }

    /// `llama.lora.*` (the LoRA adapters, sorted by name) or `llama.*`
    /// (every weight, full fine-tuning).
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        match &self.lora {
            Some(vs) => {
                let mut vars: Vec<(String, Tensor)> = vs
                    .variables()
                    .into_iter()
                    .map(|(n, t)| (format!("llama.{n}"), t))
                    .collect();
                vars.sort_by(|a, b| a.0.cmp(&b.0));
                vars
            }
            None => self
                .llama
                .named_parameters()
                .into_iter()
                .map(|(n, t)| (format!("llama.{n}"), t))
                .collect(),
        }
    }

    /// Mean cross-entropy of the target tokens (`train`: LoRA dropout on).
    fn loss(&self, prompts: &PromptBatch<'_>, targets: &[&[u32]], train: bool) -> Result<Tensor> {
        let (x, lens) = self.inputs(prompts, targets)?;
        let p = prompts.prefix_len();
        let (mut rows, mut cols, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (t, &len)) in targets.iter().zip(&lens).enumerate() {
            for (k, &tok) in t.iter().enumerate() {
                rows.push(to_i64(i)?);
                cols.push(p + to_i64(len + k)? - 1);
                labels.push(i64::from(tok));
            }
        }
        let h = self
            .llama
            .forward_embeds_t(&x, &mut KvCache::default(), None, train)?;
        let device = prompts.device();
        let rows = Tensor::f_from_slice(&rows)?.f_to(device)?;
        let cols = Tensor::f_from_slice(&cols)?.f_to(device)?;
        let labels = Tensor::f_from_slice(&labels)?.f_to(device)?;
        let picked = h.f_index(&[Some(&rows), Some(&cols)])?;
        Ok(self.llama.logits(&picked)?.f_cross_entropy_loss::<Tensor>(
            &labels,
            None,
            Reduction::Mean,
            -100,
            0.0,
        )?)
    }

    fn score(&self, prompt: &PromptBatch<'_>, continuations: &[&[u32]]) -> Result<Vec<f32>> {
        let (x, _) = self.inputs(prompt, &[])?;
        let scores = self
            .llama
            .continuation_log_probs(&x, continuations, SCORE_CHUNK)?;
        Ok(scores.into_iter().map(|s| s as f32).collect())
    }

    fn beam_search(
        &self,
        prompt: &PromptBatch<'_>,
        beams: usize,
        max_new: usize,
        allowed: &mut AllowedTokens<'_>,
    ) -> Result<Vec<Hypothesis>> {
        let (x, _) = self.inputs(prompt, &[])?;
        let cfg = BeamConfig {
            beams,
            max_new,
            eos: Some(self.eos),
            length_penalty: 1.0,
            num_return: beams,
        };
        Ok(self
            .llama
            .beam_search_embeds_constrained(&x, &cfg, allowed)?)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
