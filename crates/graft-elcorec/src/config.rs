//! Serde configurations of the ELCoRec pipeline. Every run directory stores
//! the configuration it was trained with, and refuses to resume under
//! another one.

use graft_data::CtrConfig;
use graft_lora::LoraConfig;
use graft_prompt::rap::RapVariant;
pub use graft_propagate::gat::GatActivation;
use graft_train::{AdamWConfig, LrDecay};
use serde::{Deserialize, Serialize};

use crate::error::{ElcorecError, Result};

/// Which samples the models see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SampleConfig {
    /// History items in each sample's GAT graph: the `k_gat` most recent
    /// (paper 15).
    pub k_gat: usize,
    /// Items in each of RAP's two lists, retrieved and recent (paper 15).
    pub k_prompt: usize,
    /// Training samples of the LLM: a seeded subset of the train split
    /// (`None`: all). The GAT and the classic baselines always use all.
    pub llm_train_samples: Option<usize>,
    /// Validation samples for model selection (a seeded subset of the
    /// validation split).
    pub valid_samples: usize,
    /// Test samples: a seeded subset of the test split, the same for every
    /// model.
    pub test_samples: usize,
    /// Seed of the subsets.
    pub seed: u64,
    /// The CTR split: label rule, implicit ratings, minimum history
    /// (ReLLa's defaults; written to run configurations only when changed).
    #[serde(skip_serializing_if = "is_default_ctr")]
    pub ctr: CtrConfig,
}

fn is_default_ctr(c: &CtrConfig) -> bool {
    *c == CtrConfig::default()
}

impl Default for SampleConfig {
    fn default() -> Self {
        Self {
            k_gat: 15,
            k_prompt: 15,
            llm_train_samples: None,
            valid_samples: 1000,
            test_samples: 2000,
            seed: 0,
            ctr: CtrConfig::default(),
        }
    }
}

/// The GAT expert network and its pre-training.
///
/// The defaults follow the official code (`gat.py`, `train_gat.py` of
/// Otsuts/ELCoRec): the user node embeds the user ID with the profile
/// fields, a first layer of 8 heads of 32 channels (256 wide) and a second
/// of one head of 32, no activation or dropout between them, Xavier-normal
/// initialisation, batches of 1,024, at most 10 epochs with validation AUC
/// on the whole validation split. Validation runs twice per epoch here
/// (the official code: once) with a patience of 4 checks. `self_term` and
/// `scaled_cosine` go beyond the paper and are off by default.
///
/// ```
/// use graft_elcorec::GatExpertConfig;
///
/// let cfg = GatExpertConfig::default();
/// assert_eq!((cfg.heads, cfg.head_dim, cfg.dim, cfg.batch_size), (8, 32, 32, 1024));
/// assert!(cfg.user_id && !cfg.self_term && !cfg.scaled_cosine);
/// let old: GatExpertConfig = serde_json::from_str(r#"{"heads": 4, "head_dim": 8}"#).unwrap();
/// assert_eq!(old.max_epochs, 10);
/// old.validate()?;
/// # Ok::<(), graft_elcorec::ElcorecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatExpertConfig {
    /// Width of every embedding, of the node inputs and of the output
    /// (paper 32).
    pub dim: usize,
    /// Width of the sin/cos time-gap encoding (even).
    pub time_dim: usize,
    /// Heads of the first GAT layer (paper 8; concatenated); the second
    /// layer has one head of width `dim`.
    pub heads: usize,
    /// Channels per head of the first layer (official 32, so the first
    /// layer is `heads * head_dim` = 256 wide).
    pub head_dim: usize,
    /// The user node embeds the user ID as its first field (official; on a
    /// dataset without profile fields it is the only one). `false`: the
    /// profile fields alone (a constant input where there are none).
    pub user_id: bool,
    /// Dropout on the GAT layers' inputs during pre-training (official 0).
    pub dropout: f64,
    /// Dropout on the attention coefficients during pre-training (official 0).
    pub attn_dropout: f64,
    /// What follows the first layer (official: nothing, DGL's `GATConv`
    /// default).
    pub activation: GatActivation,
    /// Beyond the paper: add a linear map of each node's own input to the
    /// user and target outputs. In the official graph the target's layer-1
    /// output is made of its neighbours' messages only, so its own ID,
    /// rating and time never reach its vector; this term lets them.
    pub self_term: bool,
    /// Beyond the paper: a learnable scale and bias on the cosine,
    /// `sigmoid(a cos + b)` (initialised at `a = 1`, `b = 0`). The official
    /// `sigmoid(cos)` can only output `[0.27, 0.73]`.
    pub scaled_cosine: bool,
    /// Samples per optimizer step (official 1,024).
    pub batch_size: usize,
    /// Passes over the train split at most (official 10).
    pub max_epochs: u32,
    /// An optional cap on optimizer steps (tests, quick runs).
    pub max_steps: Option<u64>,
    /// Validations per epoch (official 1); early stopping and the best
    /// weights follow them.
    pub evals_per_epoch: u32,
    /// Validate on the whole validation split (official); `false`: on the
    /// seeded validation subset the other models use for selection.
    pub full_validation: bool,
    /// Stop after this many validations without a better AUC (official 5
    /// epochs).
    pub patience: Option<usize>,
    /// AdamW (paper: lr 1e-3, weight decay 1e-5).
    pub optimizer: AdamWConfig,
    /// Seed of the initialisation, the batch order and dropout.
    pub seed: u64,
}

impl Default for GatExpertConfig {
    fn default() -> Self {
        Self {
            dim: 32,
            time_dim: 8,
            heads: 8,
            head_dim: 32,
            user_id: true,
            dropout: 0.0,
            attn_dropout: 0.0,
            activation: GatActivation::Identity,
            self_term: false,
            scaled_cosine: false,
            batch_size: 1024,
            max_epochs: 10,
            max_steps: None,
            evals_per_epoch: 2,
            full_validation: true,
            patience: Some(4),
            optimizer: AdamWConfig {
                lr: 1e-3,
                weight_decay: 1e-5,
                ..AdamWConfig::default()
            },
            seed: 0,
        }
    }
}

impl GatExpertConfig {
    /// Checks the values' domains.
    ///
    /// # Errors
    /// [`ElcorecError::Config`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ElcorecError::Config(format!("GatExpertConfig: {m}")));
        if self.dim == 0 || self.heads == 0 || self.head_dim == 0 {
            return bad("dim, heads and head_dim must be positive");
        }
        if self.time_dim % 2 != 0 {
            return bad("time_dim must be even (sin and cos pairs)");
        }
        if self.batch_size == 0 || self.max_epochs == 0 || self.evals_per_epoch == 0 {
            return bad("batch_size, max_epochs and evals_per_epoch must be positive");
        }
        if self.max_steps == Some(0) {
            return bad("max_steps must be positive when set");
        }
        if !(0.0..1.0).contains(&self.dropout) || !(0.0..1.0).contains(&self.attn_dropout) {
            return bad("dropout and attn_dropout must lie in [0, 1)");
        }
        Ok(())
    }

    /// Row and directory name: `gat`, with `-self`, `-scaled`, `-elu`,
    /// `-no-user-id` for the options that change the model away from the
    /// official design.
    pub fn name(&self) -> String {
        let mut name = String::from("gat");
        for (suffix, is_on, _) in EXPERT_OPTIONS {
            if is_on(self) {
                name.push_str(suffix);
            }
        }
        name
    }

    /// The default configuration with the options a [`name`](Self::name)
    /// spells (`gat-self-scaled`: the self term and the scaled cosine);
    /// `None` for a name that is not `gat` followed by known suffixes.
    ///
    /// ```
    /// use graft_elcorec::GatExpertConfig;
    ///
    /// let cfg = GatExpertConfig::from_name("gat-scaled-self").unwrap();
    /// assert!(cfg.self_term && cfg.scaled_cosine);
    /// assert_eq!(cfg.name(), "gat-self-scaled");
    /// assert!(GatExpertConfig::from_name("gat-deep").is_none());
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        let mut rest = name.strip_prefix("gat")?;
        let mut cfg = Self::default();
        while !rest.is_empty() {
            let (suffix, _, set) = EXPERT_OPTIONS
                .iter()
                .find(|(s, _, _)| rest.starts_with(s))?;
            set(&mut cfg);
            rest = &rest[suffix.len()..];
        }
        Some(cfg)
    }

    /// Optimizer steps per epoch over `n_train` samples (whole batches, at
    /// least one).
    pub fn steps_per_epoch(&self, n_train: usize) -> u64 {
        (n_train / self.batch_size.max(1)).max(1) as u64
    }

    /// Validation interval in steps: `steps_per_epoch / evals_per_epoch`,
    /// at least one.
    pub fn eval_every(&self, n_train: usize) -> u64 {
        (self.steps_per_epoch(n_train) / u64::from(self.evals_per_epoch.max(1))).max(1)
    }

    /// Step budget: `max_epochs` epochs, capped by `max_steps`.
    pub fn total_steps(&self, n_train: usize) -> u64 {
        let epochs = self.steps_per_epoch(n_train) * u64::from(self.max_epochs);
        self.max_steps.map_or(epochs, |cap| cap.min(epochs))
    }
}

/// A name suffix of an expert option: whether a configuration has it, and
/// how to switch it on.
type ExpertOption = (
    &'static str,
    fn(&GatExpertConfig) -> bool,
    fn(&mut GatExpertConfig),
);

/// The expert options that have a name, in name order.
const EXPERT_OPTIONS: [ExpertOption; 4] = [
    ("-self", |c| c.self_term, |c| c.self_term = true),
    ("-scaled", |c| c.scaled_cosine, |c| c.scaled_cosine = true),
    (
        "-elu",
        |c| c.activation == GatActivation::Elu,
        |c| c.activation = GatActivation::Elu,
    ),
    ("-no-user-id", |c| !c.user_id, |c| c.user_id = false),
];

/// One LLM variant: which RAP lists the prompt carries and whether the
/// GAT token is in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LlmVariant {
    /// ELCoRec: RAP (retrieved + recent items) and the GAT token.
    Elcorec,
    /// RAP without the GAT token (ablation "w/o expert").
    NoGatToken,
    /// The GAT token with the recent items only (ablation "w/o RAP").
    NoRap,
    /// The GAT token with the retrieved items only.
    RetrievalOnly,
}

impl LlmVariant {
    /// Every variant, in report order.
    pub const ALL: [LlmVariant; 4] = [
        LlmVariant::Elcorec,
        LlmVariant::NoGatToken,
        LlmVariant::NoRap,
        LlmVariant::RetrievalOnly,
    ];

    /// The RAP lists of the variant.
    pub fn rap(self) -> RapVariant {
        match self {
            LlmVariant::Elcorec | LlmVariant::NoGatToken => RapVariant::Full,
            LlmVariant::NoRap => RapVariant::RecentOnly,
            LlmVariant::RetrievalOnly => RapVariant::RetrievalOnly,
        }
    }

    /// Whether the prompt carries the GAT token.
    pub fn gat_token(self) -> bool {
        self != LlmVariant::NoGatToken
    }

    /// Command-line / directory name.
    pub fn name(self) -> &'static str {
        match self {
            LlmVariant::Elcorec => "elcorec",
            LlmVariant::NoGatToken => "no-gat-token",
            LlmVariant::NoRap => "no-rap",
            LlmVariant::RetrievalOnly => "retrieval-only",
        }
    }

    /// Parses [`name`](Self::name).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == s)
    }
}

/// Which weights of a fine-tuning run score the test samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeptWeights {
    /// The last step's (the official code: no validation, the final
    /// checkpoint).
    #[default]
    Last,
    /// The best validation AUC's, validated every `eval_every` steps.
    BestValidation,
}

/// The LLM stage: prompt, LoRA, projection and fine-tuning.
///
/// The defaults follow the official `finetune_mymodel.py` where the CPU
/// allows: AdamW lr 1e-3 decayed linearly to zero over one epoch of the
/// training samples, no weight decay, the last weights kept; the effective
/// batch is 64 prompts (4 x 16 accumulated) where the official one is 256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LlmConfig {
    /// The variant.
    pub variant: LlmVariant,
    /// LoRA on the LLM (paper: r 8, alpha 16, dropout 0.05 on q and v).
    pub lora: LoraConfig,
    /// Placeholder token text (one token of the tokenizer; SmolLM2's unused
    /// control token `<filename>` by default).
    pub placeholder: String,
    /// Text after the RAP prompt, before the answer.
    pub cue: String,
    /// The positive and negative answers; p(click) is the softmax over the
    /// logits of their first tokens at the cue's last position.
    pub answers: (String, String),
    /// Prompts per forward pass.
    pub micro_batch: usize,
    /// Micro-batches per optimizer step (the effective batch is
    /// `micro_batch * accumulation`; official 256 prompts).
    pub accumulation: usize,
    /// Passes over the LLM's training samples (official 1): the step
    /// budget is `epochs * samples / batch` (whole batches, at least one),
    /// capped by `max_steps`. `None`: `max_steps` alone.
    pub epochs: Option<u32>,
    /// Optimizer steps at most.
    pub max_steps: u64,
    /// Wall-clock budget of training in seconds (over resumed segments).
    pub max_seconds: Option<f64>,
    /// Learning-rate decay after `warmup_steps` over the step budget
    /// (official: linear to zero, no warm-up).
    pub lr_decay: LrDecay,
    /// Linear warm-up steps.
    pub warmup_steps: u64,
    /// Which weights score the test samples: the last (official; validated
    /// once when training stops, for the record) or the best validation AUC.
    pub keep: KeptWeights,
    /// Validation AUC every this many steps (with [`KeptWeights::BestValidation`]).
    pub eval_every: u64,
    /// Checkpoint every this many steps.
    pub checkpoint_every: u64,
    /// Validation samples used during training (the first of the
    /// validation subset).
    pub valid_samples: usize,
    /// AdamW of the LoRA adapters and the projection (official: lr 1e-3,
    /// no weight decay).
    pub optimizer: AdamWConfig,
    /// Gradient clipping.
    pub clip_norm: Option<f64>,
    /// Seed of the initialisation, the sample order and dropout.
    pub seed: u64,
    /// Runs the frozen LLM's block projections in bf16
    /// ([`graft_lm::Llama::set_projection_kind`]): 1.5-2.2x faster per
    /// step measured on CPUs with bf16 instructions (AVX512-BF16, AMX),
    /// far slower without AVX-512 ([`graft_lm::cpu`]); adapters,
    /// projection and everything else stay `f32`.
    pub bf16_base: bool,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            variant: LlmVariant::Elcorec,
            lora: LoraConfig::new(8, 16.0).with_dropout(0.05),
            placeholder: "<filename>".into(),
            cue: "\nAnswer:".into(),
            answers: (" Yes".into(), " No".into()),
            micro_batch: 4,
            accumulation: 16,
            epochs: Some(1),
            max_steps: 100_000,
            max_seconds: None,
            lr_decay: LrDecay::Linear,
            warmup_steps: 0,
            keep: KeptWeights::Last,
            eval_every: 50,
            checkpoint_every: 10,
            valid_samples: 1000,
            optimizer: AdamWConfig {
                lr: 1e-3,
                weight_decay: 0.0,
                ..AdamWConfig::default()
            },
            clip_norm: Some(1.0),
            seed: 0,
            bf16_base: false,
        }
    }
}

impl LlmConfig {
    /// Prompts per optimizer step.
    pub fn batch(&self) -> usize {
        self.micro_batch * self.accumulation
    }

    /// The step budget over `n_train` training prompts: `epochs` passes of
    /// whole batches (at least one step), capped by `max_steps`.
    pub fn total_steps(&self, n_train: usize) -> u64 {
        match self.epochs {
            Some(e) => {
                ((n_train / self.batch().max(1)).max(1) as u64 * u64::from(e)).min(self.max_steps)
            }
            None => self.max_steps,
        }
    }

    /// Checks the values' domains.
    ///
    /// # Errors
    /// [`ElcorecError::Config`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ElcorecError::Config(format!("LlmConfig: {m}")));
        if self.micro_batch == 0 || self.accumulation == 0 {
            return bad("micro_batch and accumulation must be positive");
        }
        if self.eval_every == 0 || self.checkpoint_every == 0 {
            return bad("eval_every and checkpoint_every must be positive");
        }
        if self.valid_samples == 0 {
            return bad("valid_samples must be positive");
        }
        if self.epochs == Some(0) || self.max_steps == 0 {
            return bad("epochs and max_steps must be positive");
        }
        if self.answers.0 == self.answers.1 {
            return bad("the two answers must differ");
        }
        self.lora.validate()?;
        Ok(())
    }
}

/// DIN (Zhou et al., KDD 2018), the deep CTR baseline: target attention
/// over the most recent history items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DinConfig {
    /// Width of every field embedding.
    pub dim: usize,
    /// History items attended: the most recent (default 15, the paper's K).
    pub history: usize,
    /// Hidden widths of the attention unit (DIN: 80, 40).
    pub attention_hidden: Vec<usize>,
    /// Hidden widths of the output MLP (DIN: 200, 80).
    pub hidden: Vec<usize>,
    /// Samples per step.
    pub batch_size: usize,
    /// Passes over the train split at most.
    pub max_epochs: usize,
    /// Stop after this many epochs without a better validation AUC.
    pub patience: usize,
    /// AdamW.
    pub optimizer: AdamWConfig,
    /// Seed of the initialisation and the batch order.
    pub seed: u64,
}

impl Default for DinConfig {
    fn default() -> Self {
        Self {
            dim: 16,
            history: 15,
            attention_hidden: vec![80, 40],
            hidden: vec![200, 80],
            batch_size: 512,
            max_epochs: 20,
            patience: 2,
            optimizer: AdamWConfig {
                lr: 1e-3,
                weight_decay: 1e-5,
                ..AdamWConfig::default()
            },
            seed: 0,
        }
    }
}

impl DinConfig {
    /// Checks the values' domains.
    ///
    /// # Errors
    /// [`ElcorecError::Config`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ElcorecError::Config(format!("DinConfig: {m}")));
        if self.dim == 0 || self.history == 0 || self.batch_size == 0 || self.max_epochs == 0 {
            return bad("dim, history, batch_size and max_epochs must be positive");
        }
        if self.attention_hidden.contains(&0) || self.hidden.contains(&0) {
            return bad("hidden widths must be positive");
        }
        Ok(())
    }
}

/// The classic CTR baselines on the same fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClassicConfig {
    /// `None`: logistic regression; `Some(k)`: a factorization machine with
    /// `k`-dimensional factors.
    pub factors: Option<usize>,
    /// Samples per step.
    pub batch_size: usize,
    /// Passes over the train split at most.
    pub max_epochs: usize,
    /// Stop after this many epochs without a better validation AUC.
    pub patience: usize,
    /// AdamW.
    pub optimizer: AdamWConfig,
    /// Seed.
    pub seed: u64,
}

impl Default for ClassicConfig {
    fn default() -> Self {
        Self {
            factors: None,
            batch_size: 512,
            max_epochs: 20,
            patience: 2,
            optimizer: AdamWConfig {
                lr: 1e-2,
                weight_decay: 1e-5,
                ..AdamWConfig::default()
            },
            seed: 0,
        }
    }
}
