//! DIN, the Deep Interest Network (Zhou et al., KDD 2018), as a deep CTR
//! baseline on the GAT's fields.
//!
//! - Fields: the user ID and profile codes, the target item's ID and
//!   feature code (first genre / author), and the `history` most recent
//!   items with their feature codes and ratings; one embedding table per
//!   field, `dim` wide.
//! - Target attention: each history item `h` (ID and feature embeddings)
//!   against the target `t` through a small MLP over `[h, t, h - t, h * t]`
//!   gives an unnormalised weight (DIN keeps the weights unnormalised so the
//!   pooled vector also says how much of the history is relevant); padding
//!   gets weight 0. The pooled interest is the weighted sum of the history
//!   items' `[ID, feature, rating]` embeddings (beyond the original DIN, whose
//!   behaviours carry no rating: here a watched-and-disliked movie differs
//!   from a liked one).
//! - Output: an MLP over `[user fields, target, pooled interest]`, PReLU
//!   activations (the original's Dice is a data-adaptive PReLU), one logit.

use graft_data::CtrSample;
use tch::nn::{self, Init, Module};
use tch::{Device, Kind, Tensor};

use crate::baseline::CtrBaseline;
use crate::config::DinConfig;
use crate::data::CtrData;
use crate::error::Result;

/// A linear layer followed by a PReLU with one learned slope.
#[derive(Debug)]
struct PreluLayer {
    lin: nn::Linear,
    slope: Tensor,
}

impl PreluLayer {
    fn new(p: nn::Path<'_>, fan_in: i64, fan_out: i64) -> Self {
        Self {
            lin: nn::linear(&p / "lin", fan_in, fan_out, Default::default()),
            slope: p.var("prelu", &[1], Init::Const(0.25)),
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.lin.forward(x).f_prelu(&self.slope)?)
    }
}

/// An MLP of PReLU layers and a final linear map to one output.
#[derive(Debug)]
struct Mlp {
    layers: Vec<PreluLayer>,
    out: nn::Linear,
}

impl Mlp {
    fn new(p: &nn::Path<'_>, fan_in: i64, hidden: &[usize]) -> Self {
        let mut layers = Vec::with_capacity(hidden.len());
        let mut width = fan_in;
        for (l, &h) in hidden.iter().enumerate() {
            layers.push(PreluLayer::new(p / format!("layer{l}"), width, h as i64));
            width = h as i64;
        }
        Self {
            layers,
            out: nn::linear(p / "out", width, 1, Default::default()),
        }
    }

    /// `[..., fan_in]` to `[...]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.shallow_clone();
        for l in &self.layers {
            h = l.forward(&h)?;
        }
        Ok(self.out.forward(&h).f_squeeze_dim(-1)?)
    }
}

/// The codes of one batch.
#[derive(Debug)]
pub struct DinBatch {
    /// `[B, user fields]` codes, one column per field.
    user: Tensor,
    /// `[B]` target items and `[B]` their feature codes.
    target: (Tensor, Tensor),
    /// `[B, H]` history items, feature codes and rating codes (0 = padding).
    history: (Tensor, Tensor, Tensor),
    /// `[B, H]` 1 for a history item, 0 for padding.
    mask: Tensor,
    labels: Tensor,
}

/// The DIN model (its own [`nn::VarStore`]).
#[derive(Debug)]
pub struct Din {
    vs: nn::VarStore,
    cfg: DinConfig,
    max_rating: u32,
    user_fields: Vec<Tensor>,
    item_emb: Tensor,
    feature_emb: Tensor,
    rating_emb: Tensor,
    attention: Mlp,
    output: Mlp,
}

impl Din {
    /// A freshly initialised model for `data` (seeded by `cfg.seed`).
    ///
    /// # Errors
    /// [`crate::ElcorecError::Config`] for an invalid `cfg`.
    pub fn new(data: &CtrData, cfg: &DinConfig, device: Device) -> Result<Self> {
        cfg.validate()?;
        tch::manual_seed(cfg.seed as i64);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let d = cfg.dim as i64;
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.01,
        };
        let mut sizes = vec![data.dataset.n_users()];
        sizes.extend(data.features.user_vocab_sizes());
        let user_fields: Vec<Tensor> = sizes
            .iter()
            .enumerate()
            .map(|(f, &n)| root.var(&format!("user_field_{f}"), &[n.max(1) as i64, d], init))
            .collect();
        let max_rating = data.max_rating();
        let n_items = data.dataset.n_items().max(1) as i64;
        let n_feat = data.features.item_vocab.size().max(1) as i64;
        let item_emb = root.var("item_emb", &[n_items, d], init);
        let feature_emb = root.var("feature_emb", &[n_feat, d], init);
        let rating_emb = root.var("rating_emb", &[i64::from(max_rating) + 2, d], init);
        let attention = Mlp::new(&(&root / "attention"), 8 * d, &cfg.attention_hidden);
        let fan_in = d * user_fields.len() as i64 + 2 * d + 3 * d;
        let output = Mlp::new(&(&root / "output"), fan_in, &cfg.hidden);
        Ok(Self {
            vs,
            cfg: cfg.clone(),
            max_rating,
            user_fields,
            item_emb,
            feature_emb,
            rating_emb,
            attention,
            output,
        })
    }

    /// The codes of `samples`.
    ///
    /// # Errors
    /// [`crate::ElcorecError::Sample`] for a sample that does not fit
    /// `data` ([`CtrData::check`]); libtorch errors.
    pub fn batch(&self, data: &CtrData, samples: &[CtrSample]) -> Result<DinBatch> {
        let (b, h) = (samples.len(), self.cfg.history);
        let n_fields = self.user_fields.len();
        let feature = |i: u32| {
            i64::from(
                data.features
                    .item_codes
                    .get(i as usize)
                    .copied()
                    .unwrap_or(0),
            )
        };
        let mut user = Vec::with_capacity(b * n_fields);
        let (mut t_item, mut t_feat) = (Vec::with_capacity(b), Vec::with_capacity(b));
        let mut hist = vec![0i64; b * h];
        let mut hist_feat = vec![0i64; b * h];
        let mut hist_rating = vec![0i64; b * h];
        let mut mask = vec![0f32; b * h];
        for (k, s) in samples.iter().enumerate() {
            data.check(s)?;
            user.push(i64::from(s.user));
            let profile = data.features.user_codes.get(s.user as usize);
            for f in 0..n_fields - 1 {
                user.push(i64::from(
                    profile.and_then(|p| p.get(f)).copied().unwrap_or(0),
                ));
            }
            t_item.push(i64::from(s.item));
            t_feat.push(feature(s.item));
            for (j, e) in data.recent(s, h).iter().enumerate() {
                let at = k * h + j;
                hist[at] = i64::from(e.item);
                hist_feat[at] = feature(e.item);
                let r = e.rating.round().clamp(0.0, self.max_rating as f32) as i64;
                hist_rating[at] = 1 + r;
                mask[at] = 1.0;
            }
        }
        let dev = self.vs.device();
        let (bi, hi) = (b as i64, h as i64);
        let mat = |v: &[i64], cols: i64| -> Result<Tensor> {
            Ok(Tensor::f_from_slice(v)?.f_view([bi, cols])?.f_to(dev)?)
        };
        let labels: Vec<f32> = samples
            .iter()
            .map(|s| f32::from(u8::from(s.label)))
            .collect();
        Ok(DinBatch {
            user: mat(&user, n_fields as i64)?,
            target: (
                Tensor::f_from_slice(&t_item)?.f_to(dev)?,
                Tensor::f_from_slice(&t_feat)?.f_to(dev)?,
            ),
            history: (
                mat(&hist, hi)?,
                mat(&hist_feat, hi)?,
                mat(&hist_rating, hi)?,
            ),
            mask: Tensor::f_from_slice(&mask)?.f_view([bi, hi])?.f_to(dev)?,
            labels: Tensor::f_from_slice(&labels)?.f_to(dev)?,
        })
    }

    /// The attention weights of each history item, `[B, H]` (0 on padding).
    ///
    /// # Errors
    /// libtorch errors.
    pub fn attention_weights(&self, b: &DinBatch) -> Result<Tensor> {
        let emb =
            |table: &Tensor, codes: &Tensor| Tensor::f_embedding(table, codes, -1, false, false);
        let t = Tensor::f_cat(
            &[
                emb(&self.item_emb, &b.target.0)?,
                emb(&self.feature_emb, &b.target.1)?,
            ],
            -1,
        )?;
        let keys = Tensor::f_cat(
            &[
                emb(&self.item_emb, &b.history.0)?,
                emb(&self.feature_emb, &b.history.1)?,
            ],
            -1,
        )?;
        let t = t.f_unsqueeze(1)?.f_expand_as(&keys)?;
        let unit = Tensor::f_cat(&[&keys, &t, &keys.f_sub(&t)?, &keys.f_mul(&t)?], -1)?;
        Ok(self.attention.forward(&unit)?.f_mul(&b.mask)?)
    }

    /// Logits `[B]`.
    fn logits(&self, b: &DinBatch) -> Result<Tensor> {
        let emb =
            |table: &Tensor, codes: &Tensor| Tensor::f_embedding(table, codes, -1, false, false);
        let mut parts = Vec::with_capacity(self.user_fields.len() + 3);
        for (f, table) in self.user_fields.iter().enumerate() {
            parts.push(emb(table, &b.user.f_select(1, f as i64)?)?);
        }
        parts.push(emb(&self.item_emb, &b.target.0)?);
        parts.push(emb(&self.feature_emb, &b.target.1)?);
        let values = Tensor::f_cat(
            &[
                emb(&self.item_emb, &b.history.0)?,
                emb(&self.feature_emb, &b.history.1)?,
                emb(&self.rating_emb, &b.history.2)?,
            ],
            -1,
        )?;
        let w = self.attention_weights(b)?;
        parts.push(w.f_unsqueeze(-1)?.f_mul(&values)?.f_sum_dim_intlist(
            &[1i64][..],
            false,
            Kind::Float,
        )?);
        self.output.forward(&Tensor::f_cat(&parts, -1)?)
    }
}

impl CtrBaseline for Din {
    fn name(&self) -> &'static str {
        "din"
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }

    fn seed(&self) -> u64 {
        self.cfg.seed
    }

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn logits_and_labels(&self, data: &CtrData, samples: &[CtrSample]) -> Result<(Tensor, Tensor)> {
        let b = self.batch(data, samples)?;
        Ok((self.logits(&b)?, b.labels.shallow_clone()))
    }
}
