//! SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the
//! user's last items, the sequential baseline ELMRec's tables compare with.
//!
//! The block layout is that of the widely used PyTorch port
//! (pmixer/SASRec.pytorch, classic layout): item embedding scaled by
//! `sqrt(d)` plus a learned position embedding (padding = 0), then per block
//! `Q = LN(x)`, `x = Q + MHA(Q, x, x)` with a causal mask, `x = LN(x)`,
//! `x = x + FFN(x)` (two kernel-1 convolutions with ReLU and dropout),
//! padding positions zeroed; a last layer norm (eps 1e-8 everywhere).
//! Training: binary cross-entropy of the next item against one sampled
//! negative at every non-padding position, Adam (lr 1e-3, betas 0.9 /
//! 0.98), batch 128, xavier-normal initialisation of every matrix. A
//! user's score of item `i` is the dot product of the last position's
//! output with `i`'s embedding.
//!
//! Parameter names are PyTorch's `state_dict` keys of that module
//! (`item_emb.weight`, `attention_layers.0.in_proj_weight`,
//! `forward_layers.1.conv2.weight` with shape `[d, d, 1]`, ...), so
//! `python/sasrec_reference.py` loads our weights unchanged; the golden
//! test compares the two forwards.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init, OptimizerConfig};
use tch::{Device, Kind, Reduction, Tensor};

use graft_data::rng::{below, shuffle, stream_rng};
use graft_data::LeaveOneOut;

use crate::error::{BaselineError, Result};
use crate::protocol::{derive_seed, EvalSet};
use crate::scoring::{full_rank, HistoryFilter, ItemScorer};

/// SASRec's settings; defaults are the paper's for the sparse Amazon
/// datasets (d 50, 2 blocks, 1 head, dropout 0.5, the last 50 items,
/// Adam 1e-3, batch 128).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SasRecConfig {
    /// Hidden width d (50).
    pub hidden: usize,
    /// Self-attention blocks (2).
    pub blocks: usize,
    /// Attention heads; must divide `hidden` (1).
    pub heads: usize,
    /// Dropout on embeddings, attention weights and the feed-forward (0.5).
    pub dropout: f64,
    /// Items of history read, the most recent (50).
    pub max_len: usize,
    /// Adam learning rate (1e-3).
    pub lr: f64,
    /// Users per training batch (128).
    pub batch: usize,
    /// Largest number of epochs (one pass over the users with at least two
    /// train items) (200).
    pub epochs: usize,
    /// With a validation set, evaluate every this many epochs (5).
    pub eval_every: usize,
    /// Stop after this many evaluations without improvement of validation
    /// HR@10 (`None`: never stop early) (5).
    pub patience: Option<usize>,
    /// Stop after the first epoch that ends past this many seconds.
    pub max_seconds: Option<f64>,
    /// Seed of initialisation, user order, negatives and dropout.
    pub seed: u64,
}

impl Default for SasRecConfig {
    fn default() -> Self {
        Self {
            hidden: 50,
            blocks: 2,
            heads: 1,
            dropout: 0.5,
            max_len: 50,
            lr: 1e-3,
            batch: 128,
            epochs: 200,
            eval_every: 5,
            patience: Some(5),
            max_seconds: None,
            seed: 2024,
        }
    }
}

impl SasRecConfig {
    /// Checks the fields.
    ///
    /// # Errors
    /// [`BaselineError::Config`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(BaselineError::Config(format!("SasRecConfig: {what}")));
        if self.hidden == 0 || self.blocks == 0 || self.heads == 0 || self.max_len == 0 {
            return bad("hidden, blocks, heads and max_len must be at least 1".into());
        }
        if self.hidden % self.heads != 0 {
            return bad(format!(
                "heads {} must divide hidden {}",
                self.heads, self.hidden
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout {} must lie in [0, 1)", self.dropout));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr {} must be a positive number", self.lr));
        }
        if self.batch == 0 || self.eval_every == 0 {
            return bad("batch and eval_every must be at least 1".into());
        }
        if self.patience == Some(0) {
            return bad("patience must be at least 1 (or None)".into());
        }
        Ok(())
    }
}

/// One epoch of [`SasRec::train`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SasRecEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean loss (positive + negative BCE) over the epoch's batches.
    pub loss: f64,
    /// Sequential HR@10 over all items (history dropped) on the
    /// validation set, when evaluated.
    pub valid_hr10: Option<f64>,
    /// Seconds of this epoch's training steps.
    pub seconds: f64,
}

struct Block {
    ln1_w: Tensor,
    ln1_b: Tensor,
    in_w: Tensor,
    in_b: Tensor,
    out_w: Tensor,
    out_b: Tensor,
    ln2_w: Tensor,
    ln2_b: Tensor,
    c1_w: Tensor,
    c1_b: Tensor,
    c2_w: Tensor,
    c2_b: Tensor,
}

/// A SASRec model (trained by [`SasRec::train`], or fresh from
/// [`SasRec::new`]).
pub struct SasRec {
    vs: nn::VarStore,
    cfg: SasRecConfig,
    n_items: usize,
    item_emb: Tensor,
    pos_emb: Tensor,
    blocks: Vec<Block>,
    last_w: Tensor,
    last_b: Tensor,
    best_epoch: usize,
    best_valid_hr10: Option<f64>,
}

impl std::fmt::Debug for SasRec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SasRec")
            .field("cfg", &self.cfg)
            .field("n_items", &self.n_items)
            .field("best_epoch", &self.best_epoch)
            .finish_non_exhaustive()
    }
}

fn to_i64(x: usize) -> Result<i64> {
    i64::try_from(x).map_err(|_| BaselineError::Config(format!("{x} does not fit in i64")))
}

fn xavier(rows: usize, cols: usize) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: (2.0 / (rows + cols) as f64).sqrt(),
    }
}

const SASREC_TAG: u64 = 0x7361_7372_6563;
const LN_EPS: f64 = 1e-8;

impl SasRec {
    /// A freshly initialised model over `n_items` items (embedding row 0
    /// is padding; item `i` is row `i + 1`) on `device`.
    ///
    /// # Errors
    /// [`BaselineError::Config`] for an invalid `cfg`; libtorch errors.
    pub fn new(n_items: usize, cfg: &SasRecConfig, device: Device) -> Result<Self> {
        cfg.validate()?;
        tch::manual_seed(derive_seed(cfg.seed, SASREC_TAG) as i64);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let d = cfg.hidden;
        let di = to_i64(d)?;
        let item_emb = root.sub("item_emb").var(
            "weight",
            &[to_i64(n_items + 1)?, di],
            xavier(n_items + 1, d),
        );
        let pos_emb = root.sub("pos_emb").var(
            "weight",
            &[to_i64(cfg.max_len + 1)?, di],
            xavier(cfg.max_len + 1, d),
        );
        tch::no_grad(|| -> Result<()> {
            let _ = item_emb.f_get(0)?.f_zero_()?;
            let _ = pos_emb.f_get(0)?.f_zero_()?;
            Ok(())
        })?;
        let conv_bias = Init::Uniform {
            lo: -1.0 / (d as f64).sqrt(),
            up: 1.0 / (d as f64).sqrt(),
        };
        let mut blocks = Vec::with_capacity(cfg.blocks);
        for b in 0..cfg.blocks {
            let att = root.sub("attention_layers").sub(b.to_string());
            let ln1 = root.sub("attention_layernorms").sub(b.to_string());
            let ln2 = root.sub("forward_layernorms").sub(b.to_string());
            let ff = root.sub("forward_layers").sub(b.to_string());
            blocks.push(Block {
                ln1_w: ln1.var("weight", &[di], Init::Const(1.0)),
                ln1_b: ln1.var("bias", &[di], Init::Const(0.0)),
                in_w: att.var("in_proj_weight", &[3 * di, di], xavier(3 * d, d)),
                in_b: att.var("in_proj_bias", &[3 * di], Init::Const(0.0)),
                out_w: att.sub("out_proj").var("weight", &[di, di], xavier(d, d)),
                out_b: att.sub("out_proj").var("bias", &[di], Init::Const(0.0)),
                ln2_w: ln2.var("weight", &[di], Init::Const(1.0)),
                ln2_b: ln2.var("bias", &[di], Init::Const(0.0)),
                c1_w: ff.sub("conv1").var("weight", &[di, di, 1], xavier(d, d)),
                c1_b: ff.sub("conv1").var("bias", &[di], conv_bias),
                c2_w: ff.sub("conv2").var("weight", &[di, di, 1], xavier(d, d)),
                c2_b: ff.sub("conv2").var("bias", &[di], conv_bias),
            });
        }
        let last = root.sub("last_layernorm");
        let last_w = last.var("weight", &[di], Init::Const(1.0));
        let last_b = last.var("bias", &[di], Init::Const(0.0));
        Ok(Self {
            vs,
            cfg: cfg.clone(),
            n_items,
            item_emb,
            pos_emb,
            blocks,
            last_w,
            last_b,
            best_epoch: 0,
            best_valid_hr10: None,
        })
    }

    /// The parameters by PyTorch `state_dict` name.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Mutable access (e.g. to load weights with `VarStore::load`).
    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    /// The configuration.
    pub fn config(&self) -> &SasRecConfig {
        &self.cfg
    }

    /// The epoch whose weights were kept (0 when none ran).
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }

    /// Validation HR@10 of the kept weights, when a validation set was given.
    pub fn best_valid_hr10(&self) -> Option<f64> {
        self.best_valid_hr10
    }

    /// The output of the last layer norm at every position.
    ///
    /// # Shapes
    /// `seqs`: `[B, T]` int64 item rows (`item + 1`; 0 = padding, on the
    /// left), `T <= max_len`; output `[B, T, d]`.
    ///
    /// # Errors
    /// [`BaselineError::Config`] for a wrong shape; libtorch errors.
    pub fn features(&self, seqs: &Tensor, train: bool) -> Result<Tensor> {
        let size = seqs.size();
        let &[b, t] = size.as_slice() else {
            return Err(BaselineError::Config(format!(
                "SASRec input must be [batch, time], got {size:?}"
            )));
        };
        if t > to_i64(self.cfg.max_len)? {
            return Err(BaselineError::Config(format!(
                "SASRec input of length {t} exceeds max_len {}",
                self.cfg.max_len
            )));
        }
        let d = to_i64(self.cfg.hidden)?;
        let (h, p) = (to_i64(self.cfg.heads)?, self.cfg.dropout);
        let hd = d / h;
        let dev = seqs.device();
        let keep = seqs.f_ne(0)?;
        let mut x = Tensor::f_embedding(&self.item_emb, seqs, 0, false, false)?
            .f_mul_scalar((self.cfg.hidden as f64).sqrt())?;
        let poss = Tensor::f_arange_start(1, t + 1, (Kind::Int64, dev))?
            .f_unsqueeze(0)?
            .f_mul(&keep.f_to_kind(Kind::Int64)?)?;
        x = x.f_add(&Tensor::f_embedding(&self.pos_emb, &poss, 0, false, false)?)?;
        x = x.f_dropout(p, train)?;
        let keepf = keep.f_unsqueeze(-1)?.f_to_kind(Kind::Float)?;
        x = x.f_mul(&keepf)?;
        let causal = Tensor::f_ones([t, t], (Kind::Bool, dev))?
            .f_tril(0)?
            .f_logical_not()?;
        let heads =
            |z: &Tensor| -> Result<Tensor> { Ok(z.f_view([b, t, h, hd])?.f_transpose(1, 2)?) };
        for blk in &self.blocks {
            let q = x.f_layer_norm([d], Some(&blk.ln1_w), Some(&blk.ln1_b), LN_EPS, false)?;
            let w = blk.in_w.f_chunk(3, 0)?;
            let bias = blk.in_b.f_chunk(3, 0)?;
            let qh = heads(&q.f_linear(&w[0], Some(&bias[0]))?)?
                .f_mul_scalar(1.0 / (hd as f64).sqrt())?;
            let kh = heads(&x.f_linear(&w[1], Some(&bias[1]))?)?;
            let vh = heads(&x.f_linear(&w[2], Some(&bias[2]))?)?;
            let att = qh
                .f_matmul(&kh.f_transpose(-2, -1)?)?
                .f_masked_fill(&causal, f64::NEG_INFINITY)?
                .f_softmax(-1, Kind::Float)?
                .f_dropout(p, train)?;
            let o = att
                .f_matmul(&vh)?
                .f_transpose(1, 2)?
                .f_contiguous()?
                .f_view([b, t, d])?
                .f_linear(&blk.out_w, Some(&blk.out_b))?;
            x = q.f_add(&o)?;
            x = x.f_layer_norm([d], Some(&blk.ln2_w), Some(&blk.ln2_b), LN_EPS, false)?;
            let c1 = blk.c1_w.f_squeeze_dim(-1)?;
            let c2 = blk.c2_w.f_squeeze_dim(-1)?;
            let f = x
                .f_linear(&c1, Some(&blk.c1_b))?
                .f_dropout(p, train)?
                .f_relu()?
                .f_linear(&c2, Some(&blk.c2_b))?
                .f_dropout(p, train)?;
            x = x.f_add(&f)?.f_mul(&keepf)?;
        }
        Ok(x.f_layer_norm([d], Some(&self.last_w), Some(&self.last_b), LN_EPS, false)?)
    }

    /// The last `max_len` items of each history as a left-padded `[B, T]`
    /// tensor of rows (`item + 1`), `T = max_len`.
    fn pad_histories(&self, histories: &[&[u32]]) -> Result<Tensor> {
        let t = self.cfg.max_len;
        let mut rows = vec![0i64; histories.len() * t];
        for (r, h) in histories.iter().enumerate() {
            let tail = &h[h.len().saturating_sub(t)..];
            for (k, &i) in tail.iter().enumerate() {
                if i as usize >= self.n_items {
                    return Err(BaselineError::IdOutOfRange {
                        kind: "item",
                        id: i,
                        n: self.n_items,
                    });
                }
                rows[r * t + t - tail.len() + k] = i64::from(i) + 1;
            }
        }
        Ok(Tensor::f_from_slice(&rows)?
            .f_view([to_i64(histories.len())?, to_i64(t)?])?
            .f_to(self.vs.device())?)
    }

    /// Scores of every item for each history: `[B, n_items]` on the CPU.
    ///
    /// # Errors
    /// [`BaselineError::IdOutOfRange`] for an unknown item; libtorch errors.
    pub fn score_batch(&self, histories: &[&[u32]]) -> Result<Tensor> {
        let seqs = self.pad_histories(histories)?;
        tch::no_grad(|| -> Result<Tensor> {
            let feats = self.features(&seqs, false)?.f_select(1, -1)?;
            let items = self.item_emb.f_narrow(0, 1, to_i64(self.n_items)?)?;
            Ok(feats.f_matmul(&items.f_tr()?)?.f_to(Device::Cpu)?)
        })
    }

    /// Sequential HR@`k` over all items, history dropped, on `set`.
    ///
    /// # Errors
    /// [`BaselineError::Metrics`] for an empty set; scoring errors.
    pub fn sequential_hr_at(&self, set: &EvalSet, k: usize) -> Result<f64> {
        if set.cases.is_empty() {
            return Err(graft_metrics::MetricsError::Empty { what: "eval cases" }.into());
        }
        let mut hits = 0usize;
        for chunk in set.cases.chunks(256) {
            let hs: Vec<&[u32]> = chunk.iter().map(|c| c.history.as_slice()).collect();
            let scores = self.score_batch(&hs)?;
            for (r, case) in chunk.iter().enumerate() {
                let row = Vec::<f32>::try_from(scores.f_get(to_i64(r)?)?)?;
                if full_rank(&row, case, HistoryFilter::Drop)? <= k {
                    hits += 1;
                }
            }
        }
        Ok(hits as f64 / set.cases.len() as f64)
    }

    /// Trains on the train sequences of `loo` (`loo.train`: each user's
    /// items before the validation item).
    ///
    /// Every epoch visits the users with at least two train items once, in
    /// a seeded shuffled order, in batches of `cfg.batch`; a user's input
    /// is the last `max_len + 1` train items shifted by one (input `s[..n-1]`,
    /// targets `s[1..]`), each target paired with one item drawn uniformly
    /// from those outside the user's train items. With `valid`, sequential
    /// HR@10 (all items, history dropped) is computed every `eval_every`
    /// epochs and after the last; the best evaluation's weights are kept and
    /// training stops after `patience` evaluations without improvement.
    /// Validation and test items are never trained on.
    ///
    /// Deterministic for a seed, a device and a libtorch thread count.
    ///
    /// # Errors
    /// [`BaselineError::Config`] for an invalid `cfg` or a split where no
    /// user has two train items; [`BaselineError::Diverged`] for a
    /// non-finite loss; libtorch errors.
    pub fn train(
        loo: &LeaveOneOut,
        cfg: &SasRecConfig,
        valid: Option<&EvalSet>,
        device: Device,
    ) -> Result<(Self, Vec<SasRecEpoch>)> {
        let mut model = Self::new(loo.n_items, cfg, device)?;
        let t0 = Instant::now();
        let mut users: Vec<u32> = (0..loo.n_users() as u32)
            .filter(|&u| loo.train[u as usize].len() >= 2)
            .collect();
        if users.is_empty() {
            return Err(BaselineError::Config(
                "SASRec needs users with at least two train items; this split has none".into(),
            ));
        }
        let seen: Vec<Vec<u32>> = loo
            .train
            .iter()
            .map(|t| {
                let mut s = t.clone();
                s.sort_unstable();
                s.dedup();
                s
            })
            .collect();
        let mut opt = nn::Adam {
            beta1: 0.9,
            beta2: 0.98,
            wd: 0.0,
            eps: 1e-8,
            amsgrad: false,
        }
        .build(&model.vs, cfg.lr)?;
        let t = cfg.max_len;
        let ni = loo.n_items as u32;
        let stream = derive_seed(cfg.seed, SASREC_TAG ^ 0x0074_7261_696e);
        let mut logs = Vec::new();
        let mut best: Option<(f64, usize, Vec<Tensor>)> = None;
        let mut since_best = 0usize;
        let mut step = 0i64;
        for epoch in 1..=cfg.epochs {
            let te = Instant::now();
            let mut rng = stream_rng(stream, epoch as u64);
            shuffle(&mut rng, &mut users);
            let (mut loss_sum, mut batches) = (0.0f64, 0usize);
            for chunk in users.chunks(cfg.batch) {
                let n = chunk.len();
                let mut inp = vec![0i64; n * t];
                let mut pos = vec![0i64; n * t];
                let mut neg = vec![0i64; n * t];
                for (r, &u) in chunk.iter().enumerate() {
                    let s = &loo.train[u as usize];
                    let s = &s[s.len().saturating_sub(t + 1)..];
                    let m = s.len() - 1;
                    let own = &seen[u as usize];
                    for k in 0..m {
                        let at = r * t + t - m + k;
                        inp[at] = i64::from(s[k]) + 1;
                        pos[at] = i64::from(s[k + 1]) + 1;
                        if own.len() >= loo.n_items {
                            return Err(BaselineError::Config(format!(
                                "user {u} has every item: no negative to sample"
                            )));
                        }
                        let j = loop {
                            let j = below(&mut rng, ni);
                            if own.binary_search(&j).is_err() {
                                break j;
                            }
                        };
                        neg[at] = i64::from(j) + 1;
                    }
                }
                let shape = [to_i64(n)?, to_i64(t)?];
                let to = |v: &[i64]| -> Result<Tensor> {
                    Ok(Tensor::f_from_slice(v)?.f_view(shape)?.f_to(device)?)
                };
                let (inp, pos, neg) = (to(&inp)?, to(&pos)?, to(&neg)?);
                tch::manual_seed(derive_seed(cfg.seed, step as u64) as i64);
                step += 1;
                let feats = model.features(&inp, true)?;
                let emb = |ids: &Tensor| Tensor::f_embedding(&model.item_emb, ids, 0, false, false);
                let pl = feats
                    .f_mul(&emb(&pos)?)?
                    .f_sum_dim_intlist(-1, false, Kind::Float)?;
                let nl = feats
                    .f_mul(&emb(&neg)?)?
                    .f_sum_dim_intlist(-1, false, Kind::Float)?;
                let mask = pos.f_ne(0)?;
                let pl = pl.f_masked_select(&mask)?;
                let nl = nl.f_masked_select(&mask)?;
                let loss = pl
                    .f_binary_cross_entropy_with_logits::<Tensor>(
                        &pl.f_ones_like()?,
                        None,
                        None,
                        Reduction::Mean,
                    )?
                    .f_add(&nl.f_binary_cross_entropy_with_logits::<Tensor>(
                        &nl.f_zeros_like()?,
                        None,
                        None,
                        Reduction::Mean,
                    )?)?;
                opt.zero_grad();
                loss.f_backward()?;
                opt.step();
                let l = loss.f_double_value(&[])?;
                if !l.is_finite() {
                    return Err(BaselineError::Diverged { epoch, loss: l });
                }
                loss_sum += l;
                batches += 1;
            }
            let seconds = te.elapsed().as_secs_f64();
            let over_time = cfg
                .max_seconds
                .is_some_and(|m| t0.elapsed().as_secs_f64() >= m);
            let last = epoch == cfg.epochs || over_time;
            let mut valid_hr10 = None;
            let mut stop = over_time;
            if let Some(set) = valid {
                if epoch % cfg.eval_every == 0 || last {
                    let hr = model.sequential_hr_at(set, 10)?;
                    valid_hr10 = Some(hr);
                    if best.as_ref().is_none_or(|(b, _, _)| hr > *b) {
                        let snapshot = model
                            .vs
                            .trainable_variables()
                            .iter()
                            .map(|v| v.f_detach_copy())
                            .collect::<std::result::Result<Vec<_>, _>>()?;
                        best = Some((hr, epoch, snapshot));
                        since_best = 0;
                    } else {
                        since_best += 1;
                        stop |= cfg.patience.is_some_and(|p| since_best >= p);
                    }
                }
            }
            logs.push(SasRecEpoch {
                epoch,
                loss: loss_sum / batches.max(1) as f64,
                valid_hr10,
                seconds,
            });
            if stop {
                break;
            }
        }
        match best {
            Some((hr, epoch, snapshot)) => {
                tch::no_grad(|| -> Result<()> {
                    for (mut v, s) in model.vs.trainable_variables().into_iter().zip(&snapshot) {
                        v.f_copy_(s)?;
                    }
                    Ok(())
                })?;
                model.best_epoch = epoch;
                model.best_valid_hr10 = Some(hr);
            }
            None => model.best_epoch = logs.len(),
        }
        Ok((model, logs))
    }
}

impl ItemScorer for SasRec {
    fn name(&self) -> String {
        format!(
            "sasrec(d={},blocks={},len={})",
            self.cfg.hidden, self.cfg.blocks, self.cfg.max_len
        )
    }

    fn score_all(&self, user: u32, history: &[u32]) -> Result<Vec<f32>> {
        let _ = user;
        let s = self.score_batch(&[history])?;
        Ok(Vec::<f32>::try_from(s.f_view([-1])?)?)
    }
}
