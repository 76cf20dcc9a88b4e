//! Building a [`Llama`]: from a GGUF file, from a Hugging Face checkpoint
//! directory, or with seeded random weights.

use tch::{Device, Kind, Tensor};

use super::{to_i64, Block, Llama, LlamaConfig};
use crate::error::{LmError, Result};
use crate::gguf::GgufFile;

/// The `config.json` fields of a Hugging Face LLaMA checkpoint.
#[derive(Debug, serde::Deserialize)]
struct HfLlamaConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    tie_word_embeddings: Option<bool>,
}

impl Llama {
    /// Loads every weight of a GGUF file (dequantised to `f32`) onto
    /// `device`.
    ///
    /// # Errors
    ///
    /// As [`LlamaConfig::from_gguf`]; [`LmError::Missing`] for an absent
    /// tensor; [`LmError::WrongType`] for a tensor of the wrong shape;
    /// [`LmError::Tch`] if libtorch fails.
    pub fn from_gguf(file: &GgufFile, device: Device) -> Result<Self> {
        let cfg = LlamaConfig::from_gguf(file)?;
        let (h, kv) = (cfg.hidden, cfg.n_kv_heads * cfg.head_dim());
        let load = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let (got, values) = file.dequantize(name)?;
            if got != shape {
                return Err(LmError::WrongType {
                    name: name.to_string(),
                    expected: format!("shape {shape:?}"),
                    found: format!("shape {got:?}"),
                });
            }
            let dims: Vec<i64> = shape.iter().map(|&d| to_i64(d)).collect();
            Ok(Tensor::f_from_slice(&values)?
                .f_view(dims.as_slice())?
                .f_to(device)?)
        };
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            blocks.push(Block {
                attn_norm: load(&n("attn_norm"), &[h])?,
                wq: load(&n("attn_q"), &[h, h])?,
                wk: load(&n("attn_k"), &[kv, h])?,
                wv: load(&n("attn_v"), &[kv, h])?,
                wo: load(&n("attn_output"), &[h, h])?,
                ffn_norm: load(&n("ffn_norm"), &[h])?,
                w_gate: load(&n("ffn_gate"), &[cfg.ffn, h])?,
                w_up: load(&n("ffn_up"), &[cfg.ffn, h])?,
                w_down: load(&n("ffn_down"), &[h, cfg.ffn])?,
            });
        }
        let embedding = load("token_embd.weight", &[cfg.vocab_size, h])?;
        let output = match file.tensor_info("output.weight") {
            Some(_) => Some(load("output.weight", &[cfg.vocab_size, h])?),
            None => None,
        };
        Ok(Self {
            norm: load("output_norm.weight", &[h])?,
            embedding,
            blocks,
            output,
            device,
            lora: None,
            cfg,
        })
    }

    /// Loads a Hugging Face LLaMA-architecture checkpoint directory
    /// (`config.json` + `model.safetensors`, names such as
    /// `model.layers.0.self_attn.q_proj.weight`); returns the model and its
    /// load report. The Q and K projections are permuted on load into the
    /// adjacent-pair RoPE layout this implementation (and GGUF) uses, so
    /// the outputs equal the Hugging Face model's.
    ///
    /// # Errors
    ///
    /// [`LmError::Io`] / [`LmError::Format`] for an unreadable or invalid
    /// config or checkpoint; [`LmError::Missing`] / [`LmError::WrongType`]
    /// for absent or mis-shaped tensors; [`LmError::Tch`].
    pub fn from_hf_dir(
        dir: impl AsRef<std::path::Path>,
        device: Device,
    ) -> Result<(Self, crate::weights::LoadReport)> {
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|source| LmError::Io {
            path: cfg_path.clone(),
            source,
        })?;
        let hf: HfLlamaConfig = serde_json::from_str(&text).map_err(|e| LmError::Format {
            path: Some(cfg_path.clone()),
            offset: 0,
            reason: format!("not a LLaMA config.json: {e}"),
        })?;
        let cfg = LlamaConfig {
            vocab_size: hf.vocab_size,
            hidden: hf.hidden_size,
            n_layers: hf.num_hidden_layers,
            n_heads: hf.num_attention_heads,
            n_kv_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
            ffn: hf.intermediate_size,
            rope_theta: hf.rope_theta.unwrap_or(10_000.0),
            rms_eps: hf.rms_norm_eps,
        };
        cfg.check_shape().map_err(|reason| LmError::Format {
            path: Some(cfg_path),
            offset: 0,
            reason,
        })?;
        let mut w = crate::weights::Weights::read(dir.join("model.safetensors"))?;
        let (h, hd, kv) = (cfg.hidden, cfg.head_dim(), cfg.n_kv_heads * cfg.head_dim());
        let mut take = |name: String, shape: &[usize]| -> Result<Tensor> {
            Ok(
                w.take_float(&name, &crate::weights::dims(shape), Kind::Float)?
                    .f_to(device)?,
            )
        };
        // HF rotate-half layout -> adjacent pairs (llama.cpp's permutation).
        let permute = |t: Tensor, heads: usize| -> Result<Tensor> {
            let (out, inp) = (t.size()[0], t.size()[1]);
            Ok(t.f_reshape([to_i64(heads), 2, to_i64(hd / 2), inp])?
                .f_transpose(1, 2)?
                .f_reshape([out, inp])?
                .f_contiguous()?)
        };
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let n = |s: &str| format!("model.layers.{i}.{s}.weight");
            blocks.push(Block {
                attn_norm: take(n("input_layernorm"), &[h])?,
                wq: permute(take(n("self_attn.q_proj"), &[h, h])?, cfg.n_heads)?,
                wk: permute(take(n("self_attn.k_proj"), &[kv, h])?, cfg.n_kv_heads)?,
                wv: take(n("self_attn.v_proj"), &[kv, h])?,
                wo: take(n("self_attn.o_proj"), &[h, h])?,
                ffn_norm: take(n("post_attention_layernorm"), &[h])?,
                w_gate: take(n("mlp.gate_proj"), &[cfg.ffn, h])?,
                w_up: take(n("mlp.up_proj"), &[cfg.ffn, h])?,
                w_down: take(n("mlp.down_proj"), &[h, cfg.ffn])?,
            });
        }
        let embedding = take("model.embed_tokens.weight".into(), &[cfg.vocab_size, h])?;
        let norm = take("model.norm.weight".into(), &[h])?;
        let output = if hf.tie_word_embeddings.unwrap_or(true) {
            None
        } else {
            Some(take("lm_head.weight".into(), &[cfg.vocab_size, h])?)
        };
        let report = w.report();
        Ok((
            Self {
                cfg,
                embedding,
                blocks,
                norm,
                output,
                device,
                lora: None,
            },
            report,
        ))
    }

    /// A model of shape `cfg` with seeded random weights, as Hugging Face
    /// initialises a fresh LLaMA: every matrix and the token embeddings
    /// drawn from N(0, 0.02²), the RMSNorm gains 1, the output tied to the
    /// embeddings. The same `seed` gives the same weights on every device
    /// (drawn on the CPU, then moved).
    ///
    /// For timing and shape checks where the pretrained file cannot be had:
    /// such a model knows nothing (with the config and tokenizer of a GGUF
    /// file that holds metadata only, see [`GgufWriter::metadata_of`]).
    ///
    /// ```no_run
    /// use graft_lm::{GgufFile, Llama, LlamaConfig};
    ///
    /// let meta = GgufFile::read("smollm2-meta.gguf".as_ref())?;
    /// let model = Llama::random(LlamaConfig::from_gguf(&meta)?, 0, tch::Device::Cpu)?;
    /// assert_eq!(model.config().n_layers, 30);
    /// # Ok::<(), graft_lm::LmError>(())
    /// ```
    ///
    /// [`GgufWriter::metadata_of`]: crate::gguf::GgufWriter::metadata_of
    ///
    /// # Errors
    ///
    /// [`LmError::Format`] for an inconsistent attention shape;
    /// [`LmError::Tch`] if libtorch fails.
    pub fn random(cfg: LlamaConfig, seed: u64, device: Device) -> Result<Self> {
        cfg.check_shape().map_err(|reason| LmError::Format {
            path: None,
            offset: 0,
            reason,
        })?;
        let (h, kv) = (cfg.hidden, cfg.n_kv_heads * cfg.head_dim());
        // Sizes may come from metadata nobody checked: no overflow, and
        // no allocation beyond what a real model could need.
        let mul = |a: Option<usize>, b: usize| a.and_then(|a| a.checked_mul(b));
        let add =
            |a: Option<usize>, b: Option<usize>| a.and_then(|a| b.and_then(|b| a.checked_add(b)));
        // q and o are h x h, k and v kv x h, gate/up/down ffn x h.
        let attention = mul(add(mul(Some(h), 2), mul(Some(kv), 2)), h);
        let feed_forward = mul(mul(Some(cfg.ffn), 3), h);
        let blocks = mul(add(attention, feed_forward), cfg.n_layers);
        match add(blocks, mul(Some(cfg.vocab_size), h)) {
            Some(n) if n <= MAX_RANDOM_VALUES => {}
            _ => {
                return Err(LmError::Format {
                    path: None,
                    offset: 0,
                    reason: format!(
                        "more than {MAX_RANDOM_VALUES} weights, no model this builds: {cfg:?}"
                    ),
                })
            }
        }
        let mut stream = 0u64;
        let mut normal = |shape: &[usize]| -> Result<Tensor> {
            stream += 1;
            let values = seeded_normal(shape.iter().product(), 0.02, seed, stream);
            let dims: Vec<i64> = shape.iter().map(|&d| to_i64(d)).collect();
            Ok(Tensor::f_from_slice(&values)?
                .f_view(dims.as_slice())?
                .f_to(device)?)
        };
        let ones = |n: usize| -> Result<Tensor> {
            Ok(Tensor::f_ones([to_i64(n)], (Kind::Float, device))?)
        };
        let embedding = normal(&[cfg.vocab_size, h])?;
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for _ in 0..cfg.n_layers {
            blocks.push(Block {
                attn_norm: ones(h)?,
                wq: normal(&[h, h])?,
                wk: normal(&[kv, h])?,
                wv: normal(&[kv, h])?,
                wo: normal(&[h, h])?,
                ffn_norm: ones(h)?,
                w_gate: normal(&[cfg.ffn, h])?,
                w_up: normal(&[cfg.ffn, h])?,
                w_down: normal(&[h, cfg.ffn])?,
            });
        }
        Ok(Self {
            norm: ones(h)?,
            embedding,
            blocks,
            output: None,
            device,
            lora: None,
            cfg,
        })
    }
}

/// The most weights [`Llama::random`] draws (2^34, about 17 billion:
/// a 13B model fits).
const MAX_RANDOM_VALUES: usize = 1 << 34;

/// `n` draws from N(0, std²): SplitMix64 over (`seed`, `stream`) and the
/// Box-Muller transform, so the values depend on nothing else.
fn seeded_normal(n: usize, std: f64, seed: u64, stream: u64) -> Vec<f32> {
    let mut state = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    // A uniform in (0, 1]: 53 random bits, never 0 (ln 0 is -inf).
    let mut uniform = move || ((next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let (u1, u2) = (uniform(), uniform());
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}
