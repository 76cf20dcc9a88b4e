//! LightGCN (He et al., SIGIR 2020) trained with BPR on graft-propagate's
//! differentiable libtorch kernel.

use std::time::Instant;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use graft_data::rng::{below, shuffle, stream_rng};
use graft_data::{GraphEdges, LeaveOneOut};
use graft_propagate::{normal_embeddings, LayerCombine, SparseLayout, TchPropagator};

use crate::embedding::DotScorer;
use crate::error::{BaselineError, Result};
use crate::popularity::graph_from;
use crate::protocol::{derive_seed, EvalSet};
use crate::scoring::ItemScorer;

/// Training configuration of [`LightGcnBpr`]; defaults follow the LightGCN
/// paper and code (dim 64, 3 layers, Adam lr 1e-3, L2 1e-4 on the batch's
/// `E0` rows, batch 2048, `E0 ~ N(0, 0.1^2)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BprConfig {
    /// Embedding dimension (64).
    pub dim: usize,
    /// Propagation layers; the output is the mean of `E0..EL` (3).
    pub layers: usize,
    /// Adam learning rate (1e-3).
    pub lr: f64,
    /// Weight of the L2 penalty `0.5 · (|E0_u|² + |E0_i+|² + |E0_i-|²) /
    /// batch` on the batch's rows of `E0`, as in LightGCN (1e-4).
    pub reg: f64,
    /// Training triples per step (2048).
    pub batch: usize,
    /// Maximum number of epochs (one pass over the distinct train edges).
    pub epochs: usize,
    /// With a validation set: stop after this many evaluations without
    /// improvement of validation HR@10 (`None`: never stop early).
    pub patience: Option<usize>,
    /// Evaluate on the validation set every this many epochs (1).
    pub eval_every: usize,
    /// Stop after the first epoch that ends past this many seconds of
    /// training.
    pub max_seconds: Option<f64>,
    /// Standard deviation of the initial `E0` (0.1, as in the LightGCN code).
    pub init_std: f32,
    /// Layout of the sparse adjacency tensor.
    pub layout: SparseLayout,
    /// Seed of `E0`, the edge order and the negatives (and of the graph's
    /// share of pairs, with [`GraphEdges::Share`]).
    pub seed: u64,
    /// Which pairs the propagation graph holds ([`GraphEdges::Train`]; the
    /// others leak validation and test pairs into it). The BPR positives
    /// are the train pairs whatever the graph.
    pub graph: GraphEdges,
}

impl Default for BprConfig {
    fn default() -> Self {
        Self {
            dim: 64,
            layers: 3,
            lr: 1e-3,
            reg: 1e-4,
            batch: 2048,
            epochs: 100,
            patience: Some(5),
            eval_every: 1,
            max_seconds: None,
            init_std: 0.1,
            layout: SparseLayout::Csr,
            seed: 2024,
            graph: GraphEdges::Train,
        }
    }
}

impl BprConfig {
    /// Checks the fields.
    ///
    /// # Errors
    /// [`BaselineError::Config`] for `dim`, `batch` or `eval_every` of 0, a
    /// non-positive or non-finite `lr`, a negative or non-finite `reg` or
    /// `init_std`, or `patience == Some(0)`.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(BaselineError::Config(format!("BprConfig: {what}")));
        if self.dim == 0 || self.batch == 0 || self.eval_every == 0 {
            return bad("dim, batch and eval_every must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(&format!("lr {} must be a positive number", self.lr));
        }
        if !(self.reg.is_finite() && self.reg >= 0.0) {
            return bad(&format!("reg {} must be a non-negative number", self.reg));
        }
        if !(self.init_std.is_finite() && self.init_std >= 0.0) {
            return bad(&format!("init_std {} must be non-negative", self.init_std));
        }
        if self.patience == Some(0) {
            return bad("patience must be at least 1 (or None)");
        }
        self.graph.validate()?;
        Ok(())
    }
}

/// One epoch of [`LightGcnBpr::train`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean BPR loss `-ln σ(s(u,i+) - s(u,i-))` over the epoch's triples.
    pub loss: f64,
    /// Mean (unweighted) L2 penalty per batch, before multiplying by `reg`.
    pub reg_loss: f64,
    /// Direct-protocol HR@10 on the validation set, when evaluated.
    pub valid_hr10: Option<f64>,
    /// Seconds of this epoch's training steps (evaluation excluded).
    pub seconds: f64,
    /// Seconds since training started (evaluation included).
    pub elapsed_seconds: f64,
}

/// LightGCN trained with BPR; scores by dot product of the propagated user
/// and item vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct LightGcnBpr {
    scorer: DotScorer,
    cfg: BprConfig,
    best_epoch: usize,
    best_valid_hr10: Option<f64>,
}

const BPR_TAG: u64 = 0x0062_7072;
const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

fn to_i64(x: usize) -> Result<i64> {
    i64::try_from(x).map_err(|_| BaselineError::Config(format!("{x} does not fit in i64")))
}

/// Plain Adam (PyTorch's update, no weight decay) on one parameter.
struct Adam {
    m: Tensor,
    v: Tensor,
    t: i32,
    lr: f64,
}

impl Adam {
    fn new(param: &Tensor, lr: f64) -> Result<Self> {
        Ok(Self {
            m: param.f_zeros_like()?,
            v: param.f_zeros_like()?,
            t: 0,
            lr,
        })
    }

    fn step(&mut self, param: &mut Tensor, grad: &Tensor) -> Result<()> {
        self.t += 1;
        let bc1 = 1.0 - ADAM_BETA1.powi(self.t);
        let bc2 = 1.0 - ADAM_BETA2.powi(self.t);
        tch::no_grad(|| -> Result<()> {
            // In-place ops return an alias of their receiver; dropping it is fine.
            let _ = self.m.f_mul_scalar_(ADAM_BETA1)?;
            let _ = self.m.f_add_(&grad.f_mul_scalar(1.0 - ADAM_BETA1)?)?;
            let _ = self.v.f_mul_scalar_(ADAM_BETA2)?;
            let _ = self
                .v
                .f_addcmul_(grad, &grad.f_mul_scalar(1.0 - ADAM_BETA2)?)?;
            let mut denom = self.v.f_sqrt()?;
            let _ = denom.f_div_scalar_(bc2.sqrt())?;
            let _ = denom.f_add_scalar_(ADAM_EPS)?;
            let mut update = self.m.f_div(&denom)?;
            let _ = update.f_mul_scalar_(self.lr / bc1)?;
            let _ = param.f_sub_(&update)?;
            Ok(())
        })
    }
}

/// Copies a `(rows, cols)` float tensor into an ndarray.
fn to_array(t: &Tensor) -> Result<Array2<f32>> {
    let size = t.size();
    let (r, c) = match size.as_slice() {
        [r, c] => (
            usize::try_from(*r).unwrap_or(0),
            usize::try_from(*c).unwrap_or(0),
        ),
        _ => {
            return Err(BaselineError::Config(format!(
                "expected a matrix, got shape {size:?}"
            )))
        }
    };
    let v = Vec::<f32>::try_from(t.f_to(Device::Cpu)?.f_contiguous()?.f_view([-1])?)?;
    Array2::from_shape_vec((r, c), v).map_err(|e| BaselineError::Config(e.to_string()))
}

/// Direct-protocol HR@`k` of a dot-product scorer, scoring only the
/// candidates (fast enough to run after every epoch).
///
/// # Errors
/// [`BaselineError::IdOutOfRange`] for unknown ids, [`BaselineError::Metrics`]
/// for NaN scores or an empty set.
pub fn direct_hr_at(scorer: &DotScorer, set: &EvalSet, k: usize) -> Result<f64> {
    if set.cases.is_empty() {
        return Err(graft_metrics::MetricsError::Empty { what: "eval cases" }.into());
    }
    let mut hits = 0usize;
    for case in &set.cases {
        let scores = scorer.score_items(case.user, &case.candidates)?;
        let mut pos = None;
        let mut negs = Vec::with_capacity(scores.len());
        for (&c, &s) in case.candidates.iter().zip(&scores) {
            if c == case.target && pos.is_none() {
                pos = Some(s);
            } else {
                negs.push(s);
            }
        }
        let pos = pos.ok_or_else(|| BaselineError::Case {
            user: case.user,
            reason: "target missing from the candidates".into(),
        })?;
        if graft_metrics::rank_of_positive(pos, &negs)? <= k {
            hits += 1;
        }
    }
    Ok(hits as f64 / set.cases.len() as f64)
}

impl LightGcnBpr {
    /// Trains on the train edges of `loo`.
    ///
    /// Every epoch visits each distinct train edge `(u, i+)` once in a
    /// seeded shuffled order, pairs it with one item `i-` drawn uniformly
    /// from the items `u` has not trained on, and takes one Adam step per
    /// batch on `E0`, recomputing the full propagation (as LightGCN does).
    /// If `valid` is given, its direct-protocol HR@10 is computed every
    /// `eval_every` epochs (and after the last one); the best evaluation's
    /// embeddings are kept and training stops after `patience` evaluations
    /// without improvement. Without `valid`, the last epoch's embeddings are
    /// kept. Validation and test targets are never trained on (they may be
    /// drawn as negatives, as any non-train item).
    ///
    /// Deterministic for a seed and a fixed libtorch thread count.
    ///
    /// # Errors
    /// [`BaselineError::Config`] for an invalid `cfg`,
    /// [`BaselineError::Diverged`] for a non-finite loss, and libtorch,
    /// graph or metrics errors.
    pub fn train(
        loo: &LeaveOneOut,
        cfg: &BprConfig,
        valid: Option<&EvalSet>,
    ) -> Result<(Self, Vec<EpochLog>)> {
        cfg.validate()?;
        let t0 = Instant::now();
        let g = graph_from(loo, cfg.graph, cfg.seed)?;
        let (nu, ni, n) = (g.n_users(), g.n_items(), g.n_nodes());
        let prop = TchPropagator::new(&g.normalized()?, cfg.layout, Device::Cpu)?;
        let combine = LayerCombine::Mean;

        // Distinct train items per user (sorted), and the trainable edges.
        let mut user_items: Vec<Vec<u32>> = Vec::with_capacity(nu);
        let mut edges: Vec<(u32, u32)> = Vec::new();
        for (u, train) in loo.train.iter().enumerate() {
            let mut items = train.clone();
            items.sort_unstable();
            items.dedup();
            if items.len() < ni {
                edges.extend(items.iter().map(|&i| (u as u32, i)));
            }
            user_items.push(items);
        }

        let init = normal_embeddings(n, cfg.dim, cfg.init_std, cfg.seed);
        let mut e0 = Tensor::f_from_slice(init.as_slice().unwrap_or(&[]))?
            .f_view([to_i64(n)?, to_i64(cfg.dim)?])?
            .f_detach()?
            .f_set_requires_grad(true)?;
        let mut adam = Adam::new(&e0, cfg.lr)?;
        let graph = match cfg.graph {
            GraphEdges::Train => String::new(),
            e => format!(",graph={e}"),
        };
        let name = format!("lightgcn-bpr(d={},L={}{graph})", cfg.dim, cfg.layers);
        let propagated = |e0: &Tensor| -> Result<Array2<f32>> {
            let out = tch::no_grad(|| prop.forward(e0, cfg.layers, &combine))?;
            to_array(&out)
        };

        let mut logs = Vec::new();
        let mut best: Option<(f64, usize, DotScorer)> = None;
        let mut since_best = 0usize;
        let stream_seed = derive_seed(cfg.seed, BPR_TAG);
        let (nu_i64, ni_u32) = (to_i64(nu)?, ni as u32);
        for epoch in 1..=cfg.epochs {
            let te = Instant::now();
            let mut rng = stream_rng(stream_seed, epoch as u64);
            shuffle(&mut rng, &mut edges);
            let (mut loss_sum, mut reg_sum, mut batches) = (0.0f64, 0.0f64, 0usize);
            for chunk in edges.chunks(cfg.batch) {
                let b = chunk.len();
                let mut users = Vec::with_capacity(b);
                let mut pos = Vec::with_capacity(b);
                let mut neg = Vec::with_capacity(b);
                for &(u, i) in chunk {
                    let seen = &user_items[u as usize];
                    let j = loop {
                        let j = below(&mut rng, ni_u32);
                        if seen.binary_search(&j).is_err() {
                            break j;
                        }
                    };
                    users.push(i64::from(u));
                    pos.push(nu_i64 + i64::from(i));
                    neg.push(nu_i64 + i64::from(j));
                }
                let users = Tensor::f_from_slice(&users)?;
                let pos = Tensor::f_from_slice(&pos)?;
                let neg = Tensor::f_from_slice(&neg)?;
                let table = prop.forward(&e0, cfg.layers, &combine)?;
                let eu = table.f_index_select(0, &users)?;
                let ep = table.f_index_select(0, &pos)?;
                let en = table.f_index_select(0, &neg)?;
                let diff = eu
                    .f_mul(&ep.f_sub(&en)?)?
                    .f_sum_dim_intlist(1, false, Kind::Float)?;
                let bpr = diff.f_log_sigmoid()?.f_mean(Kind::Float)?.f_neg()?;
                let mut reg = e0
                    .f_index_select(0, &users)?
                    .f_square()?
                    .f_sum(Kind::Float)?;
                reg = reg.f_add(&e0.f_index_select(0, &pos)?.f_square()?.f_sum(Kind::Float)?)?;
                reg = reg.f_add(&e0.f_index_select(0, &neg)?.f_square()?.f_sum(Kind::Float)?)?;
                let reg = reg.f_mul_scalar(0.5 / b as f64)?;
                let loss = bpr.f_add(&reg.f_mul_scalar(cfg.reg)?)?;
                let grads = Tensor::f_run_backward(&[&loss], &[&e0], false, false)?;
                let grad = grads.into_iter().next().ok_or_else(|| {
                    BaselineError::Config("libtorch returned no gradient for E0".into())
                })?;
                adam.step(&mut e0, &grad)?;
                let l = bpr.f_double_value(&[])?;
                if !l.is_finite() {
                    return Err(BaselineError::Diverged { epoch, loss: l });
                }
                loss_sum += l * b as f64;
                reg_sum += reg.f_double_value(&[])?;
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
                    let table = propagated(&e0)?;
                    let scorer = DotScorer::from_node_table(name.clone(), table, nu, ni)?;
                    let hr = direct_hr_at(&scorer, set, 10)?;
                    valid_hr10 = Some(hr);
                    if best.as_ref().is_none_or(|(b, _, _)| hr > *b) {
                        best = Some((hr, epoch, scorer));
                        since_best = 0;
                    } else {
                        since_best += 1;
                        if cfg.patience.is_some_and(|p| since_best >= p) {
                            stop = true;
                        }
                    }
                }
            }
            logs.push(EpochLog {
                epoch,
                loss: loss_sum / edges.len().max(1) as f64,
                reg_loss: reg_sum / batches.max(1) as f64,
                valid_hr10,
                seconds,
                elapsed_seconds: t0.elapsed().as_secs_f64(),
            });
            if stop {
                break;
            }
        }
        let (scorer, best_epoch, best_valid_hr10) = match best {
            Some((hr, epoch, scorer)) => (scorer, epoch, Some(hr)),
            None => (
                DotScorer::from_node_table(name, propagated(&e0)?, nu, ni)?,
                logs.len(),
                None,
            ),
        };
        Ok((
            Self {
                scorer,
                cfg: cfg.clone(),
                best_epoch,
                best_valid_hr10,
            },
            logs,
        ))
    }

    /// User vectors `(U, dim)` (propagated, mean of the layers).
    pub fn user_vectors(&self) -> ArrayView2<'_, f32> {
        self.scorer.user_vectors()
    }

    /// Item vectors `(I, dim)`.
    pub fn item_vectors(&self) -> ArrayView2<'_, f32> {
        self.scorer.item_vectors()
    }

    /// The epoch whose embeddings were kept (0 when no epoch ran).
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }

    /// Validation HR@10 of the kept embeddings, when a validation set was given.
    pub fn best_valid_hr10(&self) -> Option<f64> {
        self.best_valid_hr10
    }

    /// The configuration.
    pub fn config(&self) -> &BprConfig {
        &self.cfg
    }

    /// The underlying dot-product scorer.
    pub fn scorer(&self) -> &DotScorer {
        &self.scorer
    }
}

impl ItemScorer for LightGcnBpr {
    fn name(&self) -> String {
        self.scorer.name()
    }

    fn score_all(&self, user: u32, history: &[u32]) -> Result<Vec<f32>> {
        self.scorer.score_all(user, history)
    }
}
