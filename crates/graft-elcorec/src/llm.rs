//! The LLM stage: a decoder-only LM (SmolLM2 in our runs) with LoRA reads
//! the RAP prompt; the placeholder token's input embedding is replaced by a
//! linear projection of the frozen GAT expert's target vector; p(click) is
//! the softmax over the logits of the two answers' first tokens after the
//! cue.

use graft_lm::inject::{inject, Injection};
use graft_lm::llama::KvCache;
use graft_lm::Llama;
use graft_prompt::rap::{placeholder_token, RapPrompt};
use graft_train::TrainTask;
use indicatif::{ProgressBar, ProgressStyle};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};
use tokenizers::Tokenizer;

use crate::config::LlmConfig;
use crate::data::EpochOrder;
use crate::error::{task_err, valid_auc, ElcorecError, Result};

/// Prompts per forward pass when predicting.
const PREDICT_BATCH: usize = 8;

/// A prompt as token ids, with the placeholder's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPrompt {
    /// Token ids of prompt + cue.
    pub ids: Vec<u32>,
    /// Index of the placeholder token, when the prompt has one.
    pub placeholder: Option<usize>,
}

/// The LM with its adapters, the projection and the answer tokens.
#[derive(Debug)]
pub struct CtrLlm {
    llama: Llama,
    tok: Tokenizer,
    vs: nn::VarStore,
    proj: Option<nn::Linear>,
    /// First tokens of the (positive, negative) answers.
    answer_ids: (u32, u32),
    cfg: LlmConfig,
}

/// The first token id of `text` (no special tokens added).
fn first_token(tok: &Tokenizer, text: &str) -> Result<u32> {
    let enc = tok
        .encode(text, false)
        .map_err(|e| ElcorecError::Tokenizer(e.to_string()))?;
    enc.get_ids()
        .first()
        .copied()
        .ok_or_else(|| ElcorecError::Config(format!("the answer {text:?} encodes to no token")))
}

impl CtrLlm {
    /// Attaches LoRA (`cfg.lora`, seeded by `cfg.seed`) to `llama` and, when
    /// `gat_dim` is given, creates the projection `gat_dim -> hidden`.
    ///
    /// # Errors
    /// [`ElcorecError::Config`] for an invalid `cfg` or answers whose first
    /// tokens coincide; LoRA and tokenizer errors.
    pub fn new(
        mut llama: Llama,
        tok: Tokenizer,
        cfg: &LlmConfig,
        gat_dim: Option<usize>,
    ) -> Result<Self> {
        cfg.validate()?;
        tch::manual_seed(cfg.seed as i64);
        let vs = nn::VarStore::new(llama.device());
        llama.set_requires_grad(false);
        if cfg.bf16_base {
            llama.set_projection_kind(Kind::BFloat16)?;
        }
        llama.attach_lora(&(vs.root() / "lora"), &cfg.lora)?;
        let hidden = llama.config().hidden as i64;
        let proj =
            gat_dim.map(|d| nn::linear(vs.root() / "proj", d as i64, hidden, Default::default()));
        let answer_ids = (
            first_token(&tok, &cfg.answers.0)?,
            first_token(&tok, &cfg.answers.1)?,
        );
        if answer_ids.0 == answer_ids.1 {
            return Err(ElcorecError::Config(format!(
                "the answers {:?} and {:?} start with the same token {}",
                cfg.answers.0, cfg.answers.1, answer_ids.0
            )));
        }
        Ok(Self {
            llama,
            tok,
            vs,
            proj,
            answer_ids,
            cfg: cfg.clone(),
        })
    }

    /// The trainable tensors (LoRA adapters, projection) by name, sorted.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The first tokens of the positive and negative answers.
    pub fn answer_ids(&self) -> (u32, u32) {
        self.answer_ids
    }

    /// Tokenises `prompt` followed by the cue and finds the placeholder.
    ///
    /// # Errors
    /// Tokenizer errors; [`graft_prompt::PromptError`] if the placeholder
    /// is not exactly one token.
    pub fn encode(&self, prompt: &RapPrompt) -> Result<EncodedPrompt> {
        let full = RapPrompt {
            text: format!("{}{}", prompt.text, self.cfg.cue),
            placeholder: prompt.placeholder.clone(),
        };
        let enc = self
            .tok
            .encode(full.text.as_str(), false)
            .map_err(|e| ElcorecError::Tokenizer(e.to_string()))?;
        let placeholder = match &full.placeholder {
            Some(_) => Some(placeholder_token(&full, &enc)?),
            None => None,
        };
        if enc.get_ids().is_empty() {
            return Err(ElcorecError::Config("an empty prompt".into()));
        }
        Ok(EncodedPrompt {
            ids: enc.get_ids().to_vec(),
            placeholder,
        })
    }

    /// Logits `[B, 2]` of (negative, positive) answer after each prompt.
    /// `gat`: `[B, gat_dim]`, the expert's vectors of the same samples (only
    /// read when the model has a projection; then every prompt needs a
    /// placeholder).
    ///
    /// # Errors
    /// [`ElcorecError::Config`] for a missing placeholder or vector;
    /// libtorch and LM errors.
    pub fn answer_logits(
        &self,
        prompts: &[&EncodedPrompt],
        gat: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let dev = self.llama.device();
        let b = prompts.len();
        let t = prompts.iter().map(|p| p.ids.len()).max().unwrap_or(0);
        let mut ids = vec![0i64; b * t];
        let mut mask = vec![false; b * t];
        for (i, p) in prompts.iter().enumerate() {
            for (j, &id) in p.ids.iter().enumerate() {
                ids[i * t + j] = i64::from(id);
            }
            if let Some(ph) = p.placeholder {
                mask[i * t + ph] = true;
            }
        }
        let ids = Tensor::f_from_slice(&ids)?
            .f_view([b as i64, t as i64])?
            .f_to(dev)?;
        let mut e = self.llama.embed(&ids)?;
        if let Some(proj) = &self.proj {
            let gat = gat.ok_or_else(|| {
                ElcorecError::Config(
                    "the model has a GAT projection but no vectors were given".into(),
                )
            })?;
            if prompts.iter().any(|p| p.placeholder.is_none()) || gat.size()[0] != b as i64 {
                return Err(ElcorecError::Config(format!(
                    "every prompt needs a placeholder and a GAT vector ({} vectors for {b} prompts)",
                    gat.size()[0]
                )));
            }
            let mask = Tensor::f_from_slice(&mask)?
                .f_view([b as i64, t as i64])?
                .f_to(dev)?;
            let v = proj.forward(&gat.f_to(dev)?);
            e = inject(&e, &[Injection::replace(&mask, &v)])?;
        }
        let hidden = self
            .llama
            .forward_embeds_t(&e, &mut KvCache::default(), None, train)?;
        let rows: Vec<i64> = (0..b as i64).collect();
        let cols: Vec<i64> = prompts.iter().map(|p| p.ids.len() as i64 - 1).collect();
        let last = hidden.f_index(&[
            Some(Tensor::f_from_slice(&rows)?.f_to(dev)?),
            Some(Tensor::f_from_slice(&cols)?.f_to(dev)?),
        ])?;
        let answers =
            Tensor::f_from_slice(&[i64::from(self.answer_ids.1), i64::from(self.answer_ids.0)])?
                .f_to(dev)?;
        Ok(self.llama.logits(&last)?.f_index_select(1, &answers)?)
    }

    /// p(positive answer) for every prompt (evaluation mode, no gradient),
    /// with a progress bar when `progress`.
    ///
    /// # Errors
    /// As [`answer_logits`](Self::answer_logits).
    pub fn predict(
        &self,
        prompts: &[EncodedPrompt],
        gat: Option<&Tensor>,
        progress: bool,
    ) -> Result<Vec<f64>> {
        let _guard = tch::no_grad_guard();
        let bar = if progress {
            ProgressBar::new(prompts.len() as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "scoring {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut out = Vec::with_capacity(prompts.len());
        for (c, chunk) in prompts.chunks(PREDICT_BATCH).enumerate() {
            let refs: Vec<&EncodedPrompt> = chunk.iter().collect();
            let g = gat
                .map(|g| g.f_narrow(0, (c * PREDICT_BATCH) as i64, chunk.len() as i64))
                .transpose()?;
            let p = self
                .answer_logits(&refs, g.as_ref(), false)?
                .f_softmax(1, Kind::Float)?
                .f_select(1, 1)?;
            out.extend(Vec::<f64>::try_from(
                p.f_to_kind(Kind::Double)?.f_to(Device::Cpu)?,
            )?);
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        Ok(out)
    }
}

/// Prompts, GAT vectors and labels of one set of samples.
#[derive(Debug)]
pub struct PromptSet {
    /// Encoded prompts.
    pub prompts: Vec<EncodedPrompt>,
    /// `[N, gat_dim]` expert vectors, when the variant uses them.
    pub gat: Option<Tensor>,
    /// Labels.
    pub labels: Vec<bool>,
}

impl PromptSet {
    /// The first `n` entries.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn head(&self, n: usize) -> Result<PromptSet> {
        let n = n.min(self.prompts.len());
        Ok(PromptSet {
            prompts: self.prompts[..n].to_vec(),
            gat: self
                .gat
                .as_ref()
                .map(|g| g.f_narrow(0, 0, n as i64))
                .transpose()?,
            labels: self.labels[..n].to_vec(),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

/// graft-train's task for the LLM: micro-batches from a seeded order of
/// the training prompts (reshuffled every epoch), cross-entropy of the
/// two-answer softmax; validation AUC.
pub struct LlmTrainer<'a> {
    llm: &'a CtrLlm,
    train: &'a PromptSet,
    valid: &'a PromptSet,
    order: EpochOrder,
}

impl<'a> LlmTrainer<'a> {
    /// The task.
    pub fn new(llm: &'a CtrLlm, train: &'a PromptSet, valid: &'a PromptSet) -> Self {
        Self {
            llm,
            train,
            valid,
            order: EpochOrder::new(train.len(), llm.cfg.seed),
        }
    }

    fn micro_indices(&mut self, step: u64, micro: usize) -> Vec<usize> {
        let n = self.train.len() as u64;
        let mb = self.llm.cfg.micro_batch as u64;
        let first = (step * self.llm.cfg.accumulation as u64 + micro as u64) * mb;
        (first..first + mb)
            .map(|g| self.order.get(g / n)[(g % n) as usize])
            .collect()
    }

    fn micro_loss(&mut self, step: u64, micro: usize) -> Result<Tensor> {
        if self.train.is_empty() {
            return Err(ElcorecError::Config("no training prompts".into()));
        }
        let idx = self.micro_indices(step, micro);
        let prompts: Vec<&EncodedPrompt> = idx.iter().map(|&i| &self.train.prompts[i]).collect();
        let gat = match &self.train.gat {
            Some(g) => {
                let rows =
                    Tensor::f_from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>())?
                        .f_to(g.device())?;
                Some(g.f_index_select(0, &rows)?)
            }
            None => None,
        };
        let labels: Vec<i64> = idx
            .iter()
            .map(|&i| i64::from(self.train.labels[i]))
            .collect();
        let logits = self.llm.answer_logits(&prompts, gat.as_ref(), true)?;
        let target = Tensor::f_from_slice(&labels)?.f_to(logits.device())?;
        Ok(
            logits.f_cross_entropy_loss::<Tensor>(
                &target,
                None,
                tch::Reduction::Mean,
                -100,
                0.0,
            )?,
        )
    }
}

impl TrainTask for LlmTrainer<'_> {
    fn loss(&mut self, step: u64, micro: usize) -> graft_train::Result<Tensor> {
        self.micro_loss(step, micro).map_err(task_err)
    }

    fn evaluate(&mut self, _step: u64) -> graft_train::Result<f64> {
        let p = self
            .llm
            .predict(&self.valid.prompts, self.valid.gat.as_ref(), false)
            .map_err(task_err)?;
        valid_auc(&self.valid.labels, &p)
    }
}
