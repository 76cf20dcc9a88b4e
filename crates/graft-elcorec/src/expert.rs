//! ELCoRec's GAT expert network: node inputs for graft-propagate's
//! [`HeteroGat`], pre-training, and the frozen vectors the LLM reads.
//!
//! Each sample is one graph ([`SampleGraph`]): the user, the target item
//! and the `k_gat` most recent history items, and one node per distinct
//! item feature (first genre / author). Node inputs:
//! - user: a linear layer over the concatenated embeddings of the user ID
//!   (unless [`GatExpertConfig::user_id`] is off) and the profile codes
//!   ([`CtrFeatures::user_codes`](graft_data::features::CtrFeatures::user_codes));
//! - item: a linear layer over `[item-id embedding, rating embedding,
//!   sin/cos(time gap)]`; the target has rating code 0 (unknown) and gap 0;
//! - feature: an embedding of the feature code.
//!
//! Two heterogeneous GAT layers follow (`heads` heads of `head_dim`,
//! concatenated, then one head of `dim`; [`GatExpertConfig::activation`]
//! between them). Pre-training scores a sample by
//! `sigmoid(cos(user output, target output))` with binary cross-entropy on
//! the label. The *target item's* output is the soft-prompt vector, as in
//! the official code. Parameters start Xavier-normal with zero biases, the
//! embeddings with the spread the official code's one shared table of all
//! codes gets.

use std::collections::HashMap;
use std::path::Path;

use graft_data::CtrSample;
use graft_graph::{HeteroBatch, ItemRole, SampleGraph, SampleGraphOptions};
use graft_propagate::gat::{GatBatch, GatLayerSpec, HeteroGat, HeteroGatConfig};
use graft_train::TrainTask;
use tch::nn::{self, Init, Module};
use tch::{Device, Kind, Tensor};

use crate::config::GatExpertConfig;
use crate::data::{gap_days, CtrData, EpochOrder};
use crate::error::{task_err, valid_auc, ElcorecError, Result};

/// Samples per forward pass when scoring or embedding without gradients.
const EVAL_BATCH: usize = 512;

/// The node inputs and graphs of one mini-batch.
#[derive(Debug)]
pub struct ExpertBatch {
    /// Block-diagonal graphs.
    pub graphs: HeteroBatch,
    gat: GatBatch,
    user_codes: Tensor,
    item_ids: Tensor,
    rating_codes: Tensor,
    gaps: Tensor,
    feature_codes: Tensor,
    labels: Tensor,
}

/// The expert network (its own [`nn::VarStore`]).
#[derive(Debug)]
pub struct GatExpert {
    vs: nn::VarStore,
    cfg: GatExpertConfig,
    k_gat: usize,
    max_rating: u32,
    item_emb: Tensor,
    rating_emb: Tensor,
    field_embs: Vec<Tensor>,
    feature_emb: Tensor,
    user_lin: nn::Linear,
    item_lin: nn::Linear,
    gat: HeteroGat,
    /// `self_term`: maps of the user and item node inputs added to the outputs.
    self_maps: Option<(nn::Linear, nn::Linear)>,
    /// `scaled_cosine`: scale and bias of the cosine, `[1]` each.
    cos_affine: Option<(Tensor, Tensor)>,
}

/// Xavier-normal initialisation of a `[fan_out, fan_in]` weight.
fn xavier(fan_in: i64, fan_out: i64) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: (2.0 / (fan_in + fan_out) as f64).sqrt(),
    }
}

/// A linear layer with a Xavier-normal weight and a zero bias (or none).
fn linear(p: nn::Path<'_>, fan_in: i64, fan_out: i64, bias: bool) -> nn::Linear {
    nn::linear(
        p,
        fan_in,
        fan_out,
        nn::LinearConfig {
            ws_init: xavier(fan_in, fan_out),
            bs_init: Some(Init::Const(0.0)),
            bias,
        },
    )
}

/// The rating code of an embedding row: 0 = unknown (the target), else
/// `1 + round(rating)` clamped to the scale.
fn rating_code(rating: f32, max_rating: u32) -> i64 {
    let r = rating.round().clamp(0.0, max_rating as f32) as i64;
    1 + r
}

impl GatExpert {
    /// A freshly initialised expert for `data` (seeded by `cfg.seed`).
    ///
    /// # Errors
    /// [`ElcorecError::Config`] for an invalid `cfg`; libtorch and GAT
    /// configuration errors.
    pub fn new(data: &CtrData, cfg: &GatExpertConfig, device: Device) -> Result<Self> {
        cfg.validate()?;
        tch::manual_seed(cfg.seed as i64);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let d = cfg.dim as i64;
        let n_items = data.dataset.n_items().max(1) as i64;
        let max_rating = data.max_rating();
        // The user-ID field first, then the profile fields; at least one
        // field (a constant one for data without either).
        let mut sizes = Vec::new();
        if cfg.user_id {
            sizes.push(data.dataset.n_users().max(1));
        }
        sizes.extend(data.features.user_vocab_sizes());
        if sizes.is_empty() {
            sizes.push(1);
        }
        let n_feat = data.features.item_vocab.size().max(1) as i64;
        let n_ratings = i64::from(max_rating) + 2;
        // The official code embeds every code in one shared table, so every
        // embedding starts with that table's Xavier spread.
        let rows =
            n_items + n_ratings + n_feat + sizes.iter().map(|&n| n.max(1) as i64).sum::<i64>();
        let init = xavier(d, rows);
        let item_emb = root.var("item_emb", &[n_items, d], init);
        let rating_emb = root.var("rating_emb", &[n_ratings, d], init);
        let field_embs: Vec<Tensor> = sizes
            .iter()
            .enumerate()
            .map(|(f, &n)| root.var(&format!("field_emb_{f}"), &[n.max(1) as i64, d], init))
            .collect();
        let feature_emb = root.var("feature_emb", &[n_feat, d], init);
        let user_lin = linear(&root / "user_lin", d * field_embs.len() as i64, d, true);
        let item_lin = linear(&root / "item_lin", 2 * d + cfg.time_dim as i64, d, true);
        let gcfg = HeteroGatConfig::new([cfg.dim; 3])
            .with_layers([
                GatLayerSpec::new(cfg.heads, cfg.head_dim),
                GatLayerSpec::new(1, cfg.dim),
            ])
            .with_feat_dropout(cfg.dropout)
            .with_attn_dropout(cfg.attn_dropout)
            .with_activation(cfg.activation);
        let gat = HeteroGat::new(&(&root / "gat"), gcfg)?;
        let self_maps = cfg.self_term.then(|| {
            (
                linear(&root / "self_user", d, d, false),
                linear(&root / "self_item", d, d, false),
            )
        });
        let cos_affine = cfg.scaled_cosine.then(|| {
            (
                root.var("cos_scale", &[1], Init::Const(1.0)),
                root.var("cos_bias", &[1], Init::Const(0.0)),
            )
        });
        Ok(Self {
            vs,
            cfg: cfg.clone(),
            k_gat: data.config.k_gat,
            max_rating,
            item_emb,
            rating_emb,
            field_embs,
            feature_emb,
            user_lin,
            item_lin,
            gat,
            self_maps,
            cos_affine,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GatExpertConfig {
        &self.cfg
    }

    /// Output width (`dim`).
    pub fn dim(&self) -> usize {
        self.cfg.dim
    }

    /// Every trainable tensor with its variable-store name, sorted by name.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Loads parameters saved under the names of
    /// [`named_parameters`](Self::named_parameters) (e.g. a run's
    /// `best.safetensors`).
    ///
    /// # Errors
    /// [`ElcorecError::Config`] for a missing tensor or a shape mismatch.
    pub fn load(&self, path: &Path) -> Result<()> {
        let saved: HashMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
        let _guard = tch::no_grad_guard();
        for (name, mut t) in self.named_parameters() {
            let s = saved.get(&name).ok_or_else(|| {
                ElcorecError::Config(format!("{}: no tensor {name}", path.display()))
            })?;
            if s.size() != t.size() {
                return Err(ElcorecError::Config(format!(
                    "{}: {name} has shape {:?}, the expert {:?}",
                    path.display(),
                    s.size(),
                    t.size()
                )));
            }
            t.copy_(s);
        }
        Ok(())
    }

    /// Builds the graphs and input codes of `samples`.
    ///
    /// # Errors
    /// [`ElcorecError::Config`] for an empty batch,
    /// [`ElcorecError::Sample`] for a sample that does not fit `data`
    /// ([`CtrData::check`]); libtorch errors.
    pub fn batch(&self, data: &CtrData, samples: &[CtrSample]) -> Result<ExpertBatch> {
        if samples.is_empty() {
            return Err(ElcorecError::Config("an empty GAT batch".into()));
        }
        for s in samples {
            data.check(s)?;
        }
        let opts = SampleGraphOptions::default();
        let codes = &data.features.item_codes;
        let graphs: Vec<SampleGraph> = samples
            .iter()
            .map(|s| {
                let hist: Vec<u32> = data.recent(s, self.k_gat).iter().map(|e| e.item).collect();
                SampleGraph::build(
                    s.user,
                    s.item,
                    &hist,
                    |i| codes.get(i as usize).copied().filter(|&c| c != 0),
                    &opts,
                )
            })
            .collect();
        let graphs = HeteroBatch::from_graphs(&graphs)?;
        let dev = self.vs.device();
        let n_fields = self.field_embs.len();
        let id_fields = usize::from(self.cfg.user_id);
        let mut user_codes = Vec::with_capacity(samples.len() * n_fields);
        for s in samples {
            if self.cfg.user_id {
                user_codes.push(i64::from(s.user));
            }
            let row = data.features.user_codes.get(s.user as usize);
            for f in 0..n_fields - id_fields {
                let c = row.and_then(|r| r.get(f)).copied().unwrap_or(0);
                user_codes.push(i64::from(c));
            }
        }
        let owner = graphs.items().graph_of_node();
        let ids = graphs.items().ids();
        let mut rating_codes = Vec::with_capacity(ids.len());
        let mut gaps = Vec::with_capacity(ids.len());
        for (k, role) in graphs.item_roles().iter().enumerate() {
            let s = &samples[owner[k] as usize];
            match role {
                ItemRole::Target => {
                    rating_codes.push(0);
                    gaps.push(0.0f32);
                }
                ItemRole::History { position } => {
                    let e = &data.recent(s, self.k_gat)[*position];
                    rating_codes.push(rating_code(e.rating, self.max_rating));
                    gaps.push(gap_days(s, e) as f32);
                }
            }
        }
        let item_ids: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        let feature_codes: Vec<i64> = graphs
            .features()
            .ids()
            .iter()
            .map(|&c| i64::from(c))
            .collect();
        let labels: Vec<f32> = samples
            .iter()
            .map(|s| f32::from(u8::from(s.label)))
            .collect();
        Ok(ExpertBatch {
            gat: GatBatch::new(&graphs, dev)?,
            user_codes: Tensor::f_from_slice(&user_codes)?
                .f_view([samples.len() as i64, n_fields as i64])?
                .f_to(dev)?,
            item_ids: Tensor::f_from_slice(&item_ids)?.f_to(dev)?,
            rating_codes: Tensor::f_from_slice(&rating_codes)?.f_to(dev)?,
            gaps: Tensor::f_from_slice(&gaps)?.f_to(dev)?,
            feature_codes: Tensor::f_from_slice(&feature_codes)?.f_to(dev)?,
            labels: Tensor::f_from_slice(&labels)?.f_to(dev)?,
            graphs,
        })
    }

    /// `[N, time_dim]`: `sin(g w_k), cos(g w_k)` with `w_k = 10000^(-2k/time_dim)`
    /// for gaps `g` in days.
    fn time_encoding(&self, gaps: &Tensor) -> Result<Tensor> {
        let half = (self.cfg.time_dim / 2) as i64;
        if half == 0 {
            return Ok(Tensor::f_zeros(
                [gaps.size()[0], 0],
                (Kind::Float, gaps.device()),
            )?);
        }
        let k = Tensor::f_arange(half, (Kind::Float, gaps.device()))?;
        let w = k
            .f_mul_scalar(-2.0 * 10000f64.ln() / self.cfg.time_dim as f64)?
            .f_exp()?;
        let a = gaps.f_unsqueeze(1)?.f_mul(&w.f_unsqueeze(0)?)?;
        Ok(Tensor::f_cat(&[a.f_sin()?, a.f_cos()?], 1)?)
    }

    /// User and target-item outputs, `[B, dim]` each.
    ///
    /// # Errors
    /// libtorch and GAT errors.
    pub fn forward_t(&self, b: &ExpertBatch, train: bool) -> Result<(Tensor, Tensor)> {
        let fields: Vec<Tensor> = self
            .field_embs
            .iter()
            .enumerate()
            .map(|(f, e)| {
                let c = b.user_codes.f_select(1, f as i64)?;
                Tensor::f_embedding(e, &c, -1, false, false)
            })
            .collect::<std::result::Result<_, _>>()?;
        let x_user = self.user_lin.forward(&Tensor::f_cat(&fields, 1)?);
        let x_item = self.item_lin.forward(&Tensor::f_cat(
            &[
                Tensor::f_embedding(&self.item_emb, &b.item_ids, -1, false, false)?,
                Tensor::f_embedding(&self.rating_emb, &b.rating_codes, -1, false, false)?,
                self.time_encoding(&b.gaps)?,
            ],
            1,
        )?);
        let x_feat = Tensor::f_embedding(&self.feature_emb, &b.feature_codes, -1, false, false)?;
        let [mut users, mut items, _] = self.gat.forward_t(
            &[x_user.shallow_clone(), x_item.shallow_clone(), x_feat],
            &b.gat,
            train,
        )?;
        if let Some((su, si)) = &self.self_maps {
            users = users.f_add(&su.forward(&x_user))?;
            items = items.f_add(&si.forward(&x_item))?;
        }
        let dev = self.vs.device();
        let ui = Tensor::f_from_slice(b.graphs.user_index())?.f_to(dev)?;
        let ti = Tensor::f_from_slice(b.graphs.target_index())?.f_to(dev)?;
        Ok((users.f_index_select(0, &ui)?, items.f_index_select(0, &ti)?))
    }

    /// Pre-training logits `cos(user, target)` (`a cos + b` with
    /// `scaled_cosine`), `[B]`.
    fn logits(&self, b: &ExpertBatch, train: bool) -> Result<Tensor> {
        let (u, t) = self.forward_t(b, train)?;
        let cos = Tensor::f_cosine_similarity(&u, &t, 1, 1e-8)?;
        Ok(match &self.cos_affine {
            Some((a, c)) => cos.f_mul(a)?.f_add(c)?,
            None => cos,
        })
    }

    /// Pre-training loss of a batch: BCE of `sigmoid(logits)` against the labels.
    ///
    /// # Errors
    /// libtorch and GAT errors.
    pub fn loss(&self, b: &ExpertBatch) -> Result<Tensor> {
        bce_with_logits(&self.logits(b, true)?, &b.labels)
    }

    /// Click probabilities `sigmoid(cos(user, target))` (or of the scaled
    /// cosine; evaluation mode), the expert's own CTR prediction.
    ///
    /// # Errors
    /// As [`batch`](Self::batch) and [`forward_t`](Self::forward_t).
    pub fn predict(&self, data: &CtrData, samples: &[CtrSample]) -> Result<Vec<f64>> {
        let _guard = tch::no_grad_guard();
        let mut out = Vec::with_capacity(samples.len());
        for chunk in samples.chunks(EVAL_BATCH) {
            let b = self.batch(data, chunk)?;
            let p = self.logits(&b, false)?.f_sigmoid()?;
            out.extend(Vec::<f64>::try_from(
                p.f_to_kind(Kind::Double)?.f_to(Device::Cpu)?,
            )?);
        }
        Ok(out)
    }

    /// The soft-prompt vectors: each sample's target-item output
    /// (evaluation mode, no gradient), `[N, dim]` on the expert's device.
    ///
    /// # Errors
    /// As [`predict`](Self::predict).
    pub fn target_vectors(&self, data: &CtrData, samples: &[CtrSample]) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let mut parts = Vec::with_capacity(samples.len().div_ceil(EVAL_BATCH));
        for chunk in samples.chunks(EVAL_BATCH) {
            let b = self.batch(data, chunk)?;
            parts.push(self.forward_t(&b, false)?.1);
        }
        if parts.is_empty() {
            return Ok(Tensor::f_zeros(
                [0, self.cfg.dim as i64],
                (Kind::Float, self.vs.device()),
            )?);
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    }
}

/// Mean binary cross-entropy of `sigmoid(logits)` against 0/1 `labels`
/// (the pre-training loss here and the classic baselines' loss).
pub(crate) fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    Ok(logits.f_binary_cross_entropy_with_logits::<Tensor>(
        labels,
        None,
        None,
        tch::Reduction::Mean,
    )?)
}

/// graft-train's task for pre-training: shuffled mini-batches of the
/// train split (a new seeded order every epoch), validation AUC on the
/// whole validation split or the seeded subset
/// ([`GatExpertConfig::full_validation`]).
pub struct GatPretrainer<'a> {
    expert: &'a GatExpert,
    data: &'a CtrData,
    order: EpochOrder,
}

impl<'a> GatPretrainer<'a> {
    /// The task over `data.split.train`, validated on `data.valid`.
    pub fn new(expert: &'a GatExpert, data: &'a CtrData) -> Self {
        Self {
            expert,
            data,
            order: EpochOrder::new(data.split.train.len(), expert.cfg.seed),
        }
    }

    /// The train samples of step `step`: deterministic in `(seed, step)`.
    fn step_samples(&mut self, step: u64) -> Vec<CtrSample> {
        let train = &self.data.split.train;
        let bs = self.expert.cfg.batch_size.min(train.len()).max(1);
        let per_epoch = self.expert.cfg.steps_per_epoch(train.len());
        let start = ((step % per_epoch) as usize) * bs;
        self.order.get(step / per_epoch)[start..start + bs]
            .iter()
            .map(|&i| train[i])
            .collect()
    }
}

impl TrainTask for GatPretrainer<'_> {
    fn loss(&mut self, step: u64, _micro: usize) -> graft_train::Result<Tensor> {
        let samples = self.step_samples(step);
        let b = self.expert.batch(self.data, &samples).map_err(task_err)?;
        self.expert.loss(&b).map_err(task_err)
    }

    fn evaluate(&mut self, _step: u64) -> graft_train::Result<f64> {
        let valid = if self.expert.cfg.full_validation {
            &self.data.split.valid
        } else {
            &self.data.valid
        };
        let p = self.expert.predict(self.data, valid).map_err(task_err)?;
        valid_auc(&CtrData::labels(valid), &p)
    }
}
