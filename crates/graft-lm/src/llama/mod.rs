//! LLaMA-architecture causal language model on libtorch, loaded from GGUF
//! (SmolLM2-135M-Instruct and relatives).
//!
//! RMSNorm, rotary position embeddings, grouped-query attention, SwiGLU
//! feed-forward, tied input/output embeddings. The weights are the GGUF
//! tensors dequantised to `f32`. GGUF stores the Q and K projections with
//! their rows permuted for rotary embeddings that rotate *adjacent* pairs
//! `(x[2i], x[2i+1])` (llama.cpp's convention), so [`Llama`] applies RoPE
//! that way and needs no un-permutation; the result equals Hugging Face's
//! rotate-half on the original weights.
//!
//! The forward pass takes input *embeddings* ([`Llama::embed`] gives the
//! token embeddings), so callers can add or replace vectors before the
//! first layer — the hook graft's whole-word and soft-prompt injection
//! uses.
//!
//! ```no_run
//! use graft_lm::gguf::GgufFile;
//! use graft_lm::llama::Llama;
//! use graft_lm::tokenizer::tokenizer_from_gguf;
//!
//! let file = GgufFile::read("SmolLM2-135M-Instruct.Q4_1.gguf".as_ref())?;
//! let tok = tokenizer_from_gguf(&file)?;
//! let model = Llama::from_gguf(&file, tch::Device::Cpu)?;
//! let ids = tok.encode("The capital of France is", false).map_err(|e| e.to_string()).unwrap();
//! let out = model.generate_greedy(ids.get_ids(), 3, None)?;
//! println!("{}", tok.decode(&out, false).map_err(|e| e.to_string()).unwrap());
//! # Ok::<(), graft_lm::LmError>(())
//! ```

//!
//! One file per job: this one holds the configuration, the weights and the
//! forward pass (with scoring); `load.rs` reads GGUF files and Hugging Face
//! checkpoints (or draws seeded random weights), `generate.rs` holds greedy
//! and beam search.

use tch::{Device, Kind, Tensor};

use crate::error::{LmError, Result};
use crate::gguf::GgufFile;

mod generate;
mod load;

/// Hyper-parameters of a LLaMA-architecture model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_heads: usize,
    /// Feed-forward inner size.
    pub ffn: usize,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
}

impl LlamaConfig {
    /// Reads the `llama.*` metadata of a GGUF file.
    ///
    /// # Errors
    ///
    /// [`LmError::Missing`] / [`LmError::WrongType`] for absent keys,
    /// [`LmError::Gguf`] for an architecture other than `llama` or heads
    /// that do not divide the hidden size.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let arch = file.metadata_str("general.architecture")?;
        if arch != "llama" {
            return Err(LmError::Gguf {
                path: None,
                offset: 0,
                reason: format!("architecture {arch:?} is not llama"),
            });
        }
        let u = |k: &str| file.metadata_u64(&format!("llama.{k}")).map(|v| v as usize);
        let vocab_size = match u("vocab_size") {
            Ok(v) => v,
            Err(_) => file.metadata_strings("tokenizer.ggml.tokens")?.len(),
        };
        let cfg = Self {
            vocab_size,
            hidden: u("embedding_length")?,
            n_layers: u("block_count")?,
            n_heads: u("attention.head_count")?,
            n_kv_heads: u("attention.head_count_kv").or_else(|_| u("attention.head_count"))?,
            ffn: u("feed_forward_length")?,
            rope_theta: file
                .metadata_f64("llama.rope.freq_base")
                .unwrap_or(10_000.0),
            rms_eps: file.metadata_f64("llama.attention.layer_norm_rms_epsilon")?,
        };
        cfg.check_shape().map_err(|reason| LmError::Gguf {
            path: None,
            offset: 0,
            reason,
        })?;
        Ok(cfg)
    }

    /// Whether the attention shape is consistent: heads divide the hidden
    /// size, key/value heads divide the heads, and the head size is even
    /// (rotary embeddings rotate pairs).
    pub(crate) fn check_shape(&self) -> std::result::Result<(), String> {
        if self.n_heads == 0
            || self.n_kv_heads == 0
            || self.hidden % self.n_heads != 0
            || self.n_heads % self.n_kv_heads != 0
            || (self.hidden / self.n_heads) % 2 != 0
        {
            return Err(format!("inconsistent attention shape: {self:?}"));
        }
        Ok(())
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.n_heads
    }
}

/// One transformer block's weights (`[out, in]` matrices).
#[derive(Debug)]
struct Block {
    attn_norm: Tensor,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    ffn_norm: Tensor,
    w_gate: Tensor,
    w_up: Tensor,
    w_down: Tensor,
}

/// The seven projections of a block, by their Hugging Face module names, in
/// the order of [`Block::projections`].
const PROJECTIONS: [&str; 7] = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
];

impl Block {
    /// The projection matrices, in the order of [`PROJECTIONS`].
    fn projections(&self) -> [&Tensor; 7] {
        [
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.w_gate,
            &self.w_up,
            &self.w_down,
        ]
    }

    /// The projection matrices, mutably, in the order of [`PROJECTIONS`].
    fn projections_mut(&mut self) -> [&mut Tensor; 7] {
        [
            &mut self.wq,
            &mut self.wk,
            &mut self.wv,
            &mut self.wo,
            &mut self.w_gate,
            &mut self.w_up,
            &mut self.w_down,
        ]
    }
}

/// Key/value cache of one generation: per layer `[B, kv_heads, T, head_dim]`.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
}

impl KvCache {
    /// Number of cached positions.
    pub fn len(&self) -> i64 {
        self.layers.first().map_or(0, |(k, _)| k.size()[2])
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A LLaMA-architecture causal LM.
#[derive(Debug)]
pub struct Llama {
    cfg: LlamaConfig,
    embedding: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    output: Option<Tensor>,
    device: Device,
    lora: Option<graft_lora::LoraModel>,
}

fn to_i64(x: usize) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

impl Llama {
    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The device of the weights.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Token embeddings `[B, T, hidden]` of `ids` (`[B, T]`, int64).
    ///
    /// # Errors
    ///
    /// [`LmError::Tch`] (e.g. an id out of the vocabulary).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(Tensor::f_embedding(&self.embedding, ids, -1, false, false)?)
    }

    fn rms_norm(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let var = x
            .f_pow_tensor_scalar(2)?
            .f_mean_dim(-1, true, Kind::Float)?;
        Ok(x.f_mul(&var.f_add_scalar(self.cfg.rms_eps)?.f_rsqrt()?)?
            .f_mul(w)?)
    }

    /// Rotates adjacent pairs of `x` (`[B, heads, T, D]`) for positions
    /// `start..start + T`.
    fn rope(&self, x: &Tensor, start: i64) -> Result<Tensor> {
        let s = x.size();
        let (t, d) = (s[2], s[3]);
        let opts = (Kind::Float, self.device);
        let inv = Tensor::f_arange_start_step(0, d, 2, opts)?
            .f_div_scalar(d as f64)?
            .f_mul_scalar(-self.cfg.rope_theta.ln())?
            .f_exp()?;
        let pos = Tensor::f_arange_start(start, start + t, opts)?;
        let ang = pos.f_unsqueeze(1)?.f_mul(&inv.f_unsqueeze(0)?)?; // [T, D/2]
        let (cos, sin) = (ang.f_cos()?, ang.f_sin()?);
        let pairs = x.f_reshape([s[0], s[1], t, d / 2, 2])?;
        let x0 = pairs.f_select(-1, 0)?;
        let x1 = pairs.f_select(-1, 1)?;
        let r0 = x0.f_mul(&cos)?.f_sub(&x1.f_mul(&sin)?)?;
        let r1 = x0.f_mul(&sin)?.f_add(&x1.f_mul(&cos)?)?;
        Ok(Tensor::f_stack(&[r0, r1], -1)?.f_reshape([s[0], s[1], t, d])?)
    }

    /// Runs the blocks on input embeddings `x` (`[B, T, hidden]`) at
    /// positions after the cached ones, appending to `cache`; returns the
    /// final hidden states `[B, T, hidden]` (after the output norm).
    ///
    /// `mask`: optional additive attention mask broadcastable to
    /// `[B, 1, T, cached + T]` (e.g. `-inf` for padding); the causal mask is
    /// always applied.
    ///
    /// # Errors
    ///
    /// [`LmError::Tch`] for shape mismatches or libtorch failures.
    pub fn forward_embeds(
        &self,
        x: &Tensor,
        cache: &mut KvCache,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.forward_embeds_t(x, cache, mask, false)
    }

    /// [`forward_embeds`](Self::forward_embeds) in training (`train`: LoRA
    /// dropout active) or evaluation mode.
    ///
    /// # Errors
    ///
    /// As [`forward_embeds`](Self::forward_embeds).
    pub fn forward_embeds_t(
        &self,
        x: &Tensor,
        cache: &mut KvCache,
        mask: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let s = x.size();
        let (b, t) = (s[0], s[1]);
        let (nh, nkv, hd) = (
            to_i64(self.cfg.n_heads),
            to_i64(self.cfg.n_kv_heads),
            to_i64(self.cfg.head_dim()),
        );
        let start = cache.len();
        let total = start + t;
        // Causal mask over [T, start + T]: query i sees keys <= start + i.
        let causal = Tensor::f_ones([t, total], (Kind::Bool, self.device))?
            .f_tril(start)?
            .f_logical_not()?;
        let mut bias = Tensor::f_zeros([t, total], (Kind::Float, self.device))?
            .f_masked_fill(&causal, f64::NEG_INFINITY)?;
        if let Some(m) = mask {
            bias = bias.f_add(m)?;
        }
        let scale = 1.0 / (hd as f64).sqrt();
        let rep = nh / nkv;
        let mut h = x.shallow_clone();
        let fresh = cache.layers.is_empty();
        for (i, blk) in self.blocks.iter().enumerate() {
            let a = self.rms_norm(&h, &blk.attn_norm)?;
            let q = self
                .proj(i, "self_attn.q_proj", &blk.wq, &a, train)?
                .f_view([b, t, nh, hd])?
                .f_transpose(1, 2)?;
            let k = self
                .proj(i, "self_attn.k_proj", &blk.wk, &a, train)?
                .f_view([b, t, nkv, hd])?
                .f_transpose(1, 2)?;
            let v = self
                .proj(i, "self_attn.v_proj", &blk.wv, &a, train)?
                .f_view([b, t, nkv, hd])?
                .f_transpose(1, 2)?;
            let q = self.rope(&q, start)?;
            let k = self.rope(&k, start)?;
            let (k, v) = if fresh {
                (k, v)
            } else {
                let (pk, pv) = &cache.layers[i];
                (Tensor::f_cat(&[pk, &k], 2)?, Tensor::f_cat(&[pv, &v], 2)?)
            };
            if fresh {
                cache.layers.push((k.shallow_clone(), v.shallow_clone()));
            } else {
                cache.layers[i] = (k.shallow_clone(), v.shallow_clone());
            }
            // Fused attention; grouped-query heads are shared, not copied.
            let att = Tensor::f_scaled_dot_product_attention(
                &q,
                &k,
                &v,
                Some(&bias),
                0.0,
                false,
                scale,
                rep > 1,
            )?;
            let o = att.f_transpose(1, 2)?.f_reshape([b, t, nh * hd])?;
            h = h.f_add(&self.proj(i, "self_attn.o_proj", &blk.wo, &o, train)?)?;
            let f = self.rms_norm(&h, &blk.ffn_norm)?;
            let gate = self
                .proj(i, "mlp.gate_proj", &blk.w_gate, &f, train)?
                .f_silu()?;
            let up = self.proj(i, "mlp.up_proj", &blk.w_up, &f, train)?;
            let down = self.proj(i, "mlp.down_proj", &blk.w_down, &gate.f_mul(&up)?, train)?;
            h = h.f_add(&down)?;
        }
        self.rms_norm(&h, &self.norm)
    }

    /// `x W^T`, or the LoRA-adapted projection when an adapter is attached
    /// to this module (Hugging Face name `model.layers.{i}.{module}`).
    fn proj(&self, i: usize, module: &str, w: &Tensor, x: &Tensor, train: bool) -> Result<Tensor> {
        if let Some(lora) = &self.lora {
            let name = module_name(i, module);
            if lora.get(&name).is_some() {
                return Ok(lora.forward_t(&name, x, train)?);
            }
        }
        let (xk, wk) = (x.f_kind()?, w.f_kind()?);
        if xk == wk {
            return Ok(x.f_matmul(&w.f_tr()?)?);
        }
        Ok(x.f_to_kind(wk)?.f_matmul(&w.f_tr()?)?.f_to_kind(xk)?)
    }

    /// Stores the seven projection matrices of every block (q, k, v, o,
    /// gate, up, down: nearly all of the compute) in `kind`, typically
    /// [`Kind::BFloat16`] for a frozen base: each projection then runs in
    /// that kind and returns `f32`, while embeddings, norms, attention,
    /// the output head and LoRA adapters stay `f32`. On CPUs with bf16
    /// instructions (AVX512-BF16, AMX) this makes SmolLM2's forward pass
    /// and LoRA training step 1.5-2.2x faster (measured on an Intel Xeon
    /// with AMX and an AMD EPYC with AVX512-BF16, `docs/benchmarks.md`),
    /// at bf16's precision (about 3 significant digits per weight); on
    /// CPUs without AVX-512 libtorch runs bf16 products in a generic loop,
    /// far slower than `f32` ([`crate::cpu`] tells which CPU this is).
    ///
    /// Call it before [`attach_lora`](Self::attach_lora) (the adapters wrap
    /// the matrices as they are then) and before
    /// [`set_requires_grad`](Self::set_requires_grad): the converted
    /// matrices are frozen.
    ///
    /// # Errors
    ///
    /// [`LmError::WrongType`] for a non-floating `kind` or when adapters are
    /// already attached; [`LmError::Tch`] if libtorch fails.
    pub fn set_projection_kind(&mut self, kind: Kind) -> Result<()> {
        if !matches!(
            kind,
            Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
        ) {
            return Err(LmError::WrongType {
                name: "projection kind".into(),
                expected: "a floating-point kind".into(),
                found: format!("{kind:?}"),
            });
        }
        if self.lora.is_some() {
            return Err(LmError::WrongType {
                name: "projection kind".into(),
                expected: "to be set before LoRA adapters are attached".into(),
                found: "adapters attached".into(),
            });
        }
        let _guard = tch::no_grad_guard();
        for b in &mut self.blocks {
            for w in b.projections_mut() {
                *w = w.f_to_kind(kind)?.f_detach()?;
            }
        }
        Ok(())
    }

    /// The kind of the block projection matrices (`f32` after loading; see
    /// [`set_projection_kind`](Self::set_projection_kind)).
    pub fn projection_kind(&self) -> Kind {
        self.blocks
            .first()
            .and_then(|b| b.wq.f_kind().ok())
            .unwrap_or(Kind::Float)
    }

    /// Attaches LoRA adapters, created under `path` (so an optimiser over
    /// its `VarStore` trains exactly them), to the projections whose
    /// Hugging Face names (`model.layers.{i}.self_attn.{q,k,v,o}_proj`,
    /// `model.layers.{i}.mlp.{gate,up,down}_proj`) match `cfg`. The base
    /// weights stay frozen. Returns PEFT's trainable-parameter report for
    /// the whole model. Adapters saved with
    /// [`LoraModel::save_pretrained`](graft_lora::LoraModel::save_pretrained)
    /// load onto the Hugging Face model with PEFT.
    ///
    /// # Errors
    ///
    /// [`LmError::Lora`] for a bad configuration or no matching module.
    pub fn attach_lora(
        &mut self,
        path: &tch::nn::Path<'_>,
        cfg: &graft_lora::LoraConfig,
    ) -> Result<graft_lora::TrainableReport> {
        let mut base = Vec::with_capacity(self.blocks.len() * PROJECTIONS.len());
        for (i, blk) in self.blocks.iter().enumerate() {
            for (m, w) in PROJECTIONS.iter().zip(blk.projections()) {
                base.push((module_name(i, m), w.shallow_clone()));
            }
        }
        let lora = graft_lora::LoraModel::new(path, cfg, base)?;
        let numel = |t: &Tensor| t.size().iter().product::<i64>();
        let other = numel(&self.embedding)
            + numel(&self.norm)
            + self.output.as_ref().map_or(0, numel)
            + self
                .blocks
                .iter()
                .map(|b| numel(&b.attn_norm) + numel(&b.ffn_norm))
                .sum::<i64>();
        let report = lora.report().with_frozen(other);
        self.lora = Some(lora);
        Ok(report)
    }

    /// The attached LoRA adapters, if any.
    pub fn lora(&self) -> Option<&graft_lora::LoraModel> {
        self.lora.as_ref()
    }

    /// Mutable access to the attached adapters (merge, unmerge, load).
    pub fn lora_mut(&mut self) -> Option<&mut graft_lora::LoraModel> {
        self.lora.as_mut()
    }

    /// Logits `[..., vocab]` of final hidden states.
    ///
    /// # Errors
    ///
    /// [`LmError::Tch`] if libtorch fails.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let w = self.output.as_ref().unwrap_or(&self.embedding);
        Ok(hidden.f_matmul(&w.f_tr()?)?)
    }

    /// Sum of the log-probabilities of each continuation given its prompt,
    /// for a batch of `(prompt, continuation)` pairs: `[N]`, differentiable
    /// (so Yes/No CTR scoring can train through it).
    ///
    /// Sequences are right-padded into one batch; with causal attention the
    /// padding never affects real positions. Logits are computed only at
    /// the positions that predict continuation tokens.
    ///
    /// # Errors
    ///
    /// [`LmError::WrongType`] for an empty prompt; [`LmError::Tch`] if
    /// libtorch fails (e.g. a token id outside the vocabulary).
    pub fn log_prob_sums(&self, pairs: &[(&[u32], &[u32])]) -> Result<Tensor> {
        self.log_prob_sums_t(pairs, false)
    }

    /// [`log_prob_sums`](Self::log_prob_sums) in training mode (`train`:
    /// LoRA dropout active), for fine-tuning.
    ///
    /// # Errors
    ///
    /// As [`log_prob_sums`](Self::log_prob_sums).
    pub fn log_prob_sums_t(&self, pairs: &[(&[u32], &[u32])], train: bool) -> Result<Tensor> {
        let n = pairs.len();
        let max_len = pairs
            .iter()
            .map(|(p, c)| p.len() + c.len())
            .max()
            .unwrap_or(0);
        if pairs.iter().any(|(p, _)| p.is_empty()) {
            return Err(LmError::WrongType {
                name: "prompt".into(),
                expected: "at least one token".into(),
                found: "none".into(),
            });
        }
        let mut ids = vec![0i64; n * max_len];
        let (mut rows, mut cols, mut targets) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (p, c)) in pairs.iter().enumerate() {
            for (j, &tok) in p.iter().chain(c.iter()).enumerate() {
                ids[i * max_len + j] = i64::from(tok);
            }
            for (k, &tok) in c.iter().enumerate() {
                rows.push(i as i64);
                cols.push((p.len() + k - 1) as i64);
                targets.push(i64::from(tok));
            }
        }
        let dev = self.device;
        let sums = Tensor::f_zeros([to_i64(n)], (Kind::Float, dev))?;
        if n == 0 || targets.is_empty() {
            return Ok(sums);
        }
        let input = Tensor::f_from_slice(&ids)?
            .f_view([to_i64(n), to_i64(max_len)])?
            .f_to(dev)?;
        let hidden =
            self.forward_embeds_t(&self.embed(&input)?, &mut KvCache::default(), None, train)?;
        let rows = Tensor::f_from_slice(&rows)?.f_to(dev)?;
        let cols = Tensor::f_from_slice(&cols)?.f_to(dev)?;
        let targets = Tensor::f_from_slice(&targets)?.f_to(dev)?;
        let picked = hidden.f_index(&[Some(&rows), Some(&cols)])?; // [N_tokens, H]
        let logp = self
            .logits(&picked)?
            .f_log_softmax(-1, Kind::Float)?
            .f_gather(1, &targets.f_unsqueeze(1)?, false)?
            .f_squeeze_dim(1)?;
        Ok(sums.f_index_add(0, &rows, &logp)?)
    }

    /// [`log_prob_sums`](Self::log_prob_sums) without gradients, as `f64`s.
    ///
    /// # Errors
    ///
    /// As [`log_prob_sums`](Self::log_prob_sums).
    pub fn score_continuations(&self, pairs: &[(&[u32], &[u32])]) -> Result<Vec<f64>> {
        let t = tch::no_grad(|| self.log_prob_sums(pairs))?;
        Ok(Vec::<f64>::try_from(
            t.f_to_kind(Kind::Double)?.f_to(Device::Cpu)?,
        )?)
    }

    fn check_prefix(&self, x: &Tensor, what: &str) -> Result<()> {
        let s = x.size();
        if s.len() != 3 || s[0] != 1 || s[1] < 1 || s[2] != to_i64(self.cfg.hidden) {
            return Err(LmError::WrongType {
                name: what.into(),
                expected: format!("prompt embeddings [1, T >= 1, {}]", self.cfg.hidden),
                found: format!("shape {s:?}"),
            });
        }
        Ok(())
    }

    /// Sum of the log-probabilities of each continuation after one prompt
    /// given as input embeddings (`[1, T, hidden]`): `[N]`, without
    /// gradients. The prompt runs once; its key/value cache is shared by
    /// the continuations, which run in chunks of `chunk` (memory: the
    /// cache is copied per continuation of a chunk). An empty continuation
    /// scores 0.
    ///
    /// # Errors
    ///
    /// [`LmError::WrongType`] unless `x` is `[1, T >= 1, hidden]`;
    /// [`LmError::Tch`] if libtorch fails (e.g. a token outside the
    /// vocabulary).
    pub fn continuation_log_probs(
        &self,
        x: &Tensor,
        continuations: &[&[u32]],
        chunk: usize,
    ) -> Result<Vec<f64>> {
        self.check_prefix(x, "continuation scoring")?;
        let _guard = tch::no_grad_guard();
        let mut cache = KvCache::default();
        let h = self.forward_embeds(x, &mut cache, None)?;
        let first = self
            .logits(&h.f_select(1, -1)?)?
            .f_log_softmax(-1, Kind::Float)?
            .f_squeeze_dim(0)?; // [V]
        let first = Vec::<f64>::try_from(first.f_to_kind(Kind::Double)?.f_to(Device::Cpu)?)?;
        let mut out = Vec::with_capacity(continuations.len());
        for group in continuations.chunks(chunk.max(1)) {
            let n = group.len();
            let len = group.iter().map(|c| c.len()).max().unwrap_or(0);
            let mut sums: Vec<f64> = group
                .iter()
                .map(|c| {
                    c.first()
                        .map_or(0.0, |&t| first.get(t as usize).copied().unwrap_or(f64::NAN))
                })
                .collect();
            if len > 1 {
                // Feed tokens 0..len-1 of each continuation (right-padded;
                // causal attention keeps padding out of real positions).
                let mut ids = vec![0i64; n * (len - 1)];
                let (mut rows, mut cols, mut targets) = (Vec::new(), Vec::new(), Vec::new());
                for (i, c) in group.iter().enumerate() {
                    for (k, &t) in c.iter().take(len - 1).enumerate() {
                        ids[i * (len - 1) + k] = i64::from(t);
                    }
                    for (k, &t) in c.iter().enumerate().skip(1) {
                        rows.push(i as i64);
                        cols.push((k - 1) as i64);
                        targets.push(i64::from(t));
                    }
                }
                let order = Tensor::f_zeros([to_i64(n)], (Kind::Int64, self.device))?;
                let mut sub = KvCache {
                    layers: cache
                        .layers
                        .iter()
                        .map(|(k, v)| {
                            Ok((k.f_index_select(0, &order)?, v.f_index_select(0, &order)?))
                        })
                        .collect::<Result<Vec<_>>>()?,
                };
                let input = Tensor::f_from_slice(&ids)?
                    .f_view([to_i64(n), to_i64(len - 1)])?
                    .f_to(self.device)?;
                let h = self.forward_embeds(&self.embed(&input)?, &mut sub, None)?;
                let rows_t = Tensor::f_from_slice(&rows)?.f_to(self.device)?;
                let cols_t = Tensor::f_from_slice(&cols)?.f_to(self.device)?;
                let targets_t = Tensor::f_from_slice(&targets)?.f_to(self.device)?;
                let picked = h.f_index(&[Some(&rows_t), Some(&cols_t)])?;
                let logp = self
                    .logits(&picked)?
                    .f_log_softmax(-1, Kind::Float)?
                    .f_gather(1, &targets_t.f_unsqueeze(1)?, false)?
                    .f_squeeze_dim(1)?;
                let logp = Vec::<f64>::try_from(logp.f_to_kind(Kind::Double)?.f_to(Device::Cpu)?)?;
                for (&r, lp) in rows.iter().zip(logp) {
                    sums[r as usize] += lp;
                }
            }
            out.extend(sums);
        }
        Ok(out)
    }

    /// Every weight with its Hugging Face name (shallow copies sharing
    /// storage with the model), in a fixed order: what a full fine-tuning
    /// optimizer trains. A tied output matrix is not listed separately.
    /// Adapters attached with [`attach_lora`](Self::attach_lora) live in
    /// their own `VarStore` and are not listed.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            self.embedding.shallow_clone(),
        )];
        for (i, b) in self.blocks.iter().enumerate() {
            // Hugging Face's order: each norm before the projections it feeds.
            let n = |s: &str| format!("model.layers.{i}.{s}.weight");
            out.push((n("input_layernorm"), b.attn_norm.shallow_clone()));
            for (m, w) in PROJECTIONS.iter().zip(b.projections()) {
                if *m == "mlp.gate_proj" {
                    out.push((n("post_attention_layernorm"), b.ffn_norm.shallow_clone()));
                }
                out.push((n(m), w.shallow_clone()));
            }
        }
        out.push(("model.norm.weight".to_string(), self.norm.shallow_clone()));
        if let Some(o) = &self.output {
            out.push(("lm_head.weight".to_string(), o.shallow_clone()));
        }
        out
    }

    /// Makes every weight of [`named_parameters`](Self::named_parameters)
    /// trainable (full fine-tuning) or frozen (the default after loading).
    pub fn set_requires_grad(&mut self, trainable: bool) {
        for (_, t) in self.named_parameters() {
            let _ = t.set_requires_grad(trainable);
        }
    }
}

/// Hugging Face module name of block `i`'s `module`.
fn module_name(i: usize, module: &str) -> String {
    format!("model.layers.{i}.{module}")
}
