//! Embedding injection: the one way graft puts graph signals into any
//! backbone's input embeddings.
//!
//! Given the token embeddings `E` (`[B, T, H]`) of a batch, an [`Injection`]
//! can
//!
//! * **add** per-token vectors looked up in a table and scaled, ELMRec's
//!   whole-word embeddings: `E[b, t] += alpha * table[ids[b, t]]`
//!   ([`Injection::additive`]; give row 0 of the table zeros, or use id 0
//!   for tokens that get nothing, as the ELMRec code pads with 0);
//! * **replace** placeholder positions by given vectors, ELCoRec's soft
//!   prompt token from the GAT expert: the `mask`ed positions, in row-major
//!   order, take the rows of `vectors` ([`Injection::replace`]);
//! * **prepend** `P` continuous prompt vectors per sequence, POD-style
//!   task prompts ([`Injection::prefix`]); the attention mask must then be
//!   extended by `P` ones in front ([`prefix_mask`]).
//!
//! All three are differentiable: gradients reach the table, the replacing
//! vectors (and whatever produced them, e.g. a projection of the GAT
//! output) and the prompt vectors. Backbones expose `embed` and a forward
//! over embeddings (e.g. [`Llama::forward_embeds`](crate::llama::Llama::forward_embeds)),
//! so `inject(model.embed(ids), ...)` works for each of them.
//!
//! ```
//! use graft_lm::inject::{inject, Injection};
//! use tch::{Device, Kind, Tensor};
//!
//! let e = Tensor::zeros([1, 3, 2], (Kind::Float, Device::Cpu));
//! let table = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 2.0]).view([2, 2]);
//! let ids = Tensor::from_slice(&[0i64, 1, 1]).view([1, 3]);
//! let out = inject(&e, &[Injection::additive(&ids, &table, 0.5)])?;
//! assert_eq!(Vec::<f32>::try_from(out.view([-1]))?, vec![0.0, 0.0, 0.5, 1.0, 0.5, 1.0]);
//! # Ok::<(), graft_lm::LmError>(())
//! ```

use tch::{Kind, Tensor};

use crate::error::{LmError, Result};

/// One modification of a batch of input embeddings; see the module docs.
#[derive(Debug)]
pub enum Injection<'a> {
    /// `E += alpha * table[ids]`; `ids`: `[B, T]` int64, `table`: `[N, H]`.
    Additive {
        /// Per-token row of `table`.
        ids: &'a Tensor,
        /// The vectors.
        table: &'a Tensor,
        /// Scale.
        alpha: f64,
    },
    /// The `mask`ed positions (`[B, T]` bool, row-major order) take the
    /// rows of `vectors` (`[K, H]`, `K` = number of masked positions).
    Replace {
        /// Where to replace.
        mask: &'a Tensor,
        /// The replacing vectors.
        vectors: &'a Tensor,
    },
    /// Prepends `vectors` (`[P, H]` shared by the batch, or `[B, P, H]`).
    Prefix {
        /// The prompt vectors.
        vectors: &'a Tensor,
    },
}

impl<'a> Injection<'a> {
    /// Whole-word (additive) embeddings.
    pub fn additive(ids: &'a Tensor, table: &'a Tensor, alpha: f64) -> Self {
        Injection::Additive { ids, table, alpha }
    }

    /// Soft-prompt replacement at placeholder positions.
    pub fn replace(mask: &'a Tensor, vectors: &'a Tensor) -> Self {
        Injection::Replace { mask, vectors }
    }

    /// Continuous prompt vectors in front.
    pub fn prefix(vectors: &'a Tensor) -> Self {
        Injection::Prefix { vectors }
    }
}

fn shape_err(what: &str, expected: String, found: &[i64]) -> LmError {
    LmError::WrongType {
        name: what.to_string(),
        expected,
        found: format!("shape {found:?}"),
    }
}

/// Applies `injections`, in order, to embeddings `e` (`[B, T, H]`).
///
/// # Errors
///
/// [`LmError::WrongType`] for shapes that do not fit `e` (ids not
/// `[B, T]`, table width not `H`, a number of vectors that differs from the
/// number of masked positions, prefix not `[P, H]` / `[B, P, H]`);
/// [`LmError::Tch`] if libtorch fails (e.g. an id outside the table).
pub fn inject(e: &Tensor, injections: &[Injection<'_>]) -> Result<Tensor> {
    if e.size().len() != 3 {
        return Err(shape_err("embeddings", "[B, T, H]".into(), &e.size()));
    }
    let mut x = e.shallow_clone();
    for inj in injections {
        let s = x.size();
        let (b, t, h) = (s[0], s[1], s[2]);
        x = match inj {
            Injection::Additive { ids, table, alpha } => {
                if ids.size() != [b, t] {
                    return Err(shape_err(
                        "whole-word ids",
                        format!("[{b}, {t}]"),
                        &ids.size(),
                    ));
                }
                let ts = table.size();
                if ts.len() != 2 || ts[1] != h {
                    return Err(shape_err("whole-word table", format!("[N, {h}]"), &ts));
                }
                let add = Tensor::f_embedding(table, ids, -1, false, false)?;
                x.f_add(&add.f_mul_scalar(*alpha)?)?
            }
            Injection::Replace { mask, vectors } => {
                if mask.size() != [b, t] || mask.kind() != Kind::Bool {
                    return Err(shape_err(
                        "replace mask (bool)",
                        format!("[{b}, {t}]"),
                        &mask.size(),
                    ));
                }
                let k = mask.f_sum(Kind::Int64)?.f_int64_value(&[])?;
                if vectors.size() != [k, h] {
                    return Err(shape_err(
                        "replacing vectors",
                        format!("[{k}, {h}]"),
                        &vectors.size(),
                    ));
                }
                let m3 = mask.f_unsqueeze(-1)?.f_expand([b, t, h], false)?;
                x.f_masked_scatter(&m3, &vectors.f_to_kind(x.kind())?)?
            }
            Injection::Prefix { vectors } => {
                let vs = vectors.size();
                let p = match vs.as_slice() {
                    [p, hh] if *hh == h => vectors.f_unsqueeze(0)?.f_expand([b, *p, h], false)?,
                    [bb, p, hh] if *bb == b && *hh == h => vectors.shallow_clone(),
                    _ => {
                        return Err(shape_err(
                            "prompt vectors",
                            format!("[P, {h}] or [{b}, P, {h}]"),
                            &vs,
                        ))
                    }
                };
                Tensor::f_cat(&[p.f_to_kind(x.kind())?, x], 1)?
            }
        };
    }
    Ok(x)
}

/// The attention mask `[B, P + T]` for `P` prefix vectors in front of a
/// batch with mask `mask` (`[B, T]`): `P` ones, then `mask`.
///
/// # Errors
///
/// [`LmError::Tch`] if libtorch fails.
pub fn prefix_mask(mask: &Tensor, p: i64) -> Result<Tensor> {
    let s = mask.size();
    let ones = Tensor::f_ones([s[0], p], (mask.kind(), mask.device()))?;
    Ok(Tensor::f_cat(&[ones, mask.shallow_clone()], 1)?)
}
