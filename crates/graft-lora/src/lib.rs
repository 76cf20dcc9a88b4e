//! LoRA adapters for graft, compatible with Hugging Face PEFT.
//!
//! Low-rank adaptation (Hu et al., 2021) freezes a linear layer `W` and
//! learns `W + (alpha / r) B A` with `A: [r, in]`, `B: [out, r]`. This crate
//! provides:
//!
//! * [`LoraConfig`]: `r` (8), `alpha` (16), `dropout` (0.05) and the
//!   target-module patterns (`["q_proj", "v_proj"]`; PEFT suffix semantics,
//!   or a glob with `*`/`?`), with `validate()` and `scaling()`.
//! * [`LoraLinear`]: one frozen base linear plus the trainable pair, PEFT's
//!   initialisation (Kaiming-uniform `A`, zero `B`), dropout on the LoRA
//!   branch in training only, `merge`/`unmerge`.
//! * [`LoraModel`]: the layers for every matching base linear
//!   (Hugging Face names such as `model.layers.0.self_attn.q_proj`) in one
//!   `VarStore`, `merge_all`/`unmerge_all`, a [`TrainableReport`] printed
//!   like PEFT's, and `save_pretrained`/`load_adapter`/`from_pretrained` in
//!   PEFT's directory format ([`peft`]), which `PeftModel.from_pretrained`
//!   loads (round-trip test: `tests/peft_roundtrip.rs` with
//!   `python/peft_roundtrip.py`).
//!
//! ```
//! use graft_lora::{LoraConfig, LoraModel};
//! use tch::{nn, Device, Kind, Tensor};
//!
//! tch::manual_seed(1);
//! let opts = (Kind::Float, Device::Cpu);
//! let names = ["q_proj", "k_proj", "v_proj", "o_proj"];
//! let base: Vec<(String, Tensor)> = (0..2)
//!     .flat_map(|l| names.map(|n| (format!("model.layers.{l}.self_attn.{n}"), Tensor::randn([16, 16], opts))))
//!     .collect();
//! let vs = nn::VarStore::new(Device::Cpu);
//! let mut lora = LoraModel::new(&vs.root(), &LoraConfig::default(), base)?;
//! assert_eq!(lora.len(), 4); // q_proj and v_proj of both layers
//! assert_eq!(vs.trainable_variables().len(), 8); // A and B each
//! assert_eq!(
//!     lora.report().to_string(),
//!     "trainable params: 1,024 || all params: 3,072 || trainable%: 33.3333"
//! );
//!
//! let x = Tensor::randn([2, 16], opts);
//! let q = "model.layers.0.self_attn.q_proj";
//! let y = lora.forward_t(q, &x, false)?;
//! lora.merge_all()?;
//! let y_merged = lora.forward_t(q, &x, false)?;
//! assert!((y - y_merged).abs().max().double_value(&[]) < 1e-5);
//! # Ok::<(), graft_lora::LoraError>(())
//! ```

pub mod config;
pub mod error;
pub mod linear;
pub mod model;
pub mod peft;

pub use config::{pattern_matches, LoraConfig};
pub use error::{LoraError, Result};
pub use linear::LoraLinear;
pub use model::{BaseLinear, LoraModel, TrainableReport};
pub use peft::{PeftAdapter, PeftAdapterConfig};
pub use tch;
