//! Benchmark support for the GAT: synthetic batches, training-step
//! throughput, and the safetensors hand-over to the Python peer
//! `python/gat_peer.py` (PyG `HeteroConv` of `GATConv`, and the same layer
//! in plain PyTorch).
//!
//! # Exchange layout
//!
//! [`export_batch`] writes, for every relation `rel` in
//! [`Relation::ALL`] (`user_item`, `item_user`, `item_feature`,
//! `feature_item`):
//!
//! | name | dtype | shape | content |
//! |---|---|---|---|
//! | `{rel}.src`, `{rel}.dst` | I64 | `[E_rel]` | type-local edge endpoints |
//! | `x.user`, `x.item`, `x.feature` | F32 | `[N_k, in_k]` | node features |
//! | `counts` | I64 | `[3]` | nodes per type (user, item, feature) |
//! | `n_graphs` | I64 | `[1]` | graphs in the batch |
//! | `user_index`, `target_index` | I64 | `[G]` | each graph's user / target item |
//!
//! [`export_golden`] adds the weights (`w.` + the variable names, see
//! [`GatWeights::to_named_arrays`]) and the reference outputs `y.user`,
//! `y.item`, `y.feature` (F32), which `gat_peer.py --check` compares with
//! PyG and with its plain-PyTorch layer.

use std::path::Path;
use std::time::Instant;

use graft_graph::{HeteroBatch, NodeKind, Relation, SampleGraph, SampleGraphOptions};
use ndarray::Array2;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::{tensor_to_array2, GatBatch, GatWeights, HeteroGat, HeteroGatConfig};
use crate::error::{PropagateError, Result};
use crate::exchange::{write_safetensors, NamedArray};

/// A batch of `n_graphs` identically shaped sample graphs, for
/// benchmarks: graph `g` has user `g`, a target and `items_per_graph - 1`
/// history items (item ids `0..items_per_graph`, target `0`), and
/// `features_per_graph` feature nodes; item `i` links to the features
/// `(i + j) % features_per_graph` for `j < features_per_item`, so every
/// feature node is used when `items_per_graph >= features_per_graph`.
///
/// ELCoRec-sized: `synthetic_batch(1024, 16, 8, 2, &opts)` gives 1 user,
/// 16 items and 8 feature nodes per graph, 16 user-item and 32
/// item-feature links (each in both directions).
///
/// # Errors
///
/// [`PropagateError::Config`] if `n_graphs` or `items_per_graph` is 0 or
/// `features_per_item > features_per_graph`; [`PropagateError::Graph`]
/// from the batch builder.
pub fn synthetic_batch(
    n_graphs: usize,
    items_per_graph: usize,
    features_per_graph: usize,
    features_per_item: usize,
    opts: &SampleGraphOptions,
) -> Result<HeteroBatch> {
    let err = |field: &'static str, reason: &str| {
        Err(PropagateError::Config {
            field,
            reason: reason.into(),
        })
    };
    if n_graphs == 0 {
        return err("n_graphs", "at least one graph is needed");
    }
    if items_per_graph == 0 {
        return err("items_per_graph", "every graph has a target item");
    }
    if features_per_item > features_per_graph {
        return err(
            "features_per_item",
            "more features per item than feature nodes",
        );
    }
    let history: Vec<u32> = (1..items_per_graph as u32).collect();
    let feats = |i: u32| -> Vec<u32> {
        (0..features_per_item)
            .map(|j| ((i as usize + j) % features_per_graph.max(1)) as u32)
            .collect()
    };
    let graphs: Vec<SampleGraph> = (0..n_graphs)
        .map(|g| SampleGraph::build(g as u32, 0, &history, feats, opts))
        .collect();
    Ok(HeteroBatch::from_graphs(&graphs)?)
}

/// Node features for `batch`, uniform in `[-1, 1)` from a ChaCha8 stream
/// (deterministic in `seed` on every platform), of kind `kind` on `device`.
///
/// # Shapes
///
/// `[k]`: `[nodes of type k, in_dims[k]]`.
///
/// # Errors
///
/// [`PropagateError::Tch`] if libtorch fails.
pub fn random_features(
    batch: &HeteroBatch,
    in_dims: [usize; 3],
    kind: Kind,
    device: Device,
    seed: u64,
) -> Result<[Tensor; 3]> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut make = |k: NodeKind| -> Result<Tensor> {
        let (n, d) = (batch.nodes(k).len(), in_dims[k.index()]);
        let v: Vec<f64> = (0..n * d)
            .map(|_| 2.0 * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) - 1.0)
            .collect();
        Ok(Tensor::f_from_slice(&v)?
            .f_view([n as i64, d as i64])?
            .f_to_kind(kind)?
            .f_to(device)?)
    };
    Ok([
        make(NodeKind::User)?,
        make(NodeKind::Item)?,
        make(NodeKind::Feature)?,
    ])
}

/// Result of [`train_step_throughput`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatThroughput {
    /// Always `"tch"` (the Python peer prints `"pyg"` or `"torch"`).
    #[serde(rename = "impl")]
    pub implementation: String,
    /// Graphs per second of training (`n_graphs / seconds_per_step`).
    pub graphs_per_s: f64,
    /// Mean wall-clock seconds of one forward + backward + AdamW step.
    pub seconds_per_step: f64,
    /// libtorch intra-op threads during the run ([`tch::get_num_threads`]).
    pub threads: i32,
    /// Graphs per batch.
    pub n_graphs: usize,
    /// Nodes per batch (all types).
    pub nodes: usize,
    /// Edges per batch (all relations).
    pub edges: usize,
    /// Timed steps.
    pub iters: usize,
    /// Untimed steps before the timed ones.
    pub warmup: usize,
    /// Trainable scalars.
    pub parameters: usize,
    /// The device, e.g. `"Cpu"` or `"Cuda(0)"`.
    pub device: String,
    /// Loss of the last step (a sanity value: finite, decreasing with
    /// `iters`).
    pub final_loss: f64,
}

/// Times `iters` training steps (after `warmup` untimed ones) of a fresh
/// [`HeteroGat`] with configuration `cfg` on `batch`: forward in training
/// mode, loss `sum_k mean(out_k^2)`, backward, `tch::nn::AdamW` step
/// (learning rate `1e-3`, weight decay `0.01`). The features `x` are
/// constants (no gradient), moved to `device`; their kind sets the
/// network's kind. Parameters are initialised from libtorch's RNG (call
/// [`tch::manual_seed`] first for a reproducible `final_loss`); the caller
/// sets the thread count ([`tch::set_num_threads`]). On CUDA the device is
/// synchronised before the clock is read.
///
/// `python/gat_peer.py` runs the same step in PyTorch / PyG on a batch
/// written by [`export_batch`].
///
/// # Errors
///
/// [`PropagateError::Config`] if `iters` is 0 or `cfg` is invalid, the
/// errors of [`HeteroGat::forward_t`] for unfit `x`,
/// [`PropagateError::Tch`] if libtorch fails.
///
/// # Panics
///
/// `tch`'s optimiser step panics if libtorch fails inside it.
pub fn train_step_throughput(
    cfg: &HeteroGatConfig,
    batch: &HeteroBatch,
    x: &[Tensor; 3],
    iters: usize,
    warmup: usize,
    device: Device,
) -> Result<GatThroughput> {
    if iters == 0 {
        return Err(PropagateError::Config {
            field: "iters",
            reason: "at least one timed step is needed".into(),
        });
    }
    let mut vs = nn::VarStore::new(device);
    let gat = HeteroGat::new(&vs.root().sub("gat"), cfg.clone())?;
    if x[0].kind() == Kind::Double {
        vs.double();
    }
    let mut opt = nn::AdamW::default().build(&vs, 1e-3)?;
    let gb = GatBatch::new(batch, device)?;
    let x = [
        x[0].f_detach()?.f_to(device)?,
        x[1].f_detach()?.f_to(device)?,
        x[2].f_detach()?.f_to(device)?,
    ];
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let mut step = || -> Result<f64> {
        let out = gat.forward_t(&x, &gb, true)?;
        let mut loss = out[0].f_square()?.f_mean(None)?;
        for t in &out[1..] {
            loss = loss.f_add(&t.f_square()?.f_mean(None)?)?;
        }
        opt.zero_grad();
        loss.f_backward()?;
        opt.step();
        Ok(loss.f_double_value(&[])?)
    };
    let mut final_loss = f64::NAN;
    for _ in 0..warmup {
        final_loss = step()?;
    }
    sync();
    let start = Instant::now();
    for _ in 0..iters {
        final_loss = step()?;
    }
    sync();
    let seconds_per_step = start.elapsed().as_secs_f64() / iters as f64;
    Ok(GatThroughput {
        implementation: "tch".into(),
        graphs_per_s: batch.n_graphs() as f64 / seconds_per_step,
        seconds_per_step,
        threads: tch::get_num_threads(),
        n_graphs: batch.n_graphs(),
        nodes: NodeKind::ALL.iter().map(|&k| batch.nodes(k).len()).sum(),
        edges: Relation::ALL.iter().map(|&r| batch.edges(r).len()).sum(),
        iters,
        warmup,
        parameters: cfg.n_parameters(),
        device: format!("{device:?}"),
        final_loss,
    })
}

/// The batch and its features as [`NamedArray`]s (layout in the [module
/// docs](self)).
fn batch_arrays(batch: &HeteroBatch, x: &[Tensor; 3]) -> Result<Vec<NamedArray>> {
    let mut out = Vec::new();
    for r in Relation::ALL {
        let e = batch.edges(r);
        out.push(NamedArray::i64(
            format!("{}.src", r.name()),
            vec![e.len()],
            e.src().to_vec(),
        )?);
        out.push(NamedArray::i64(
            format!("{}.dst", r.name()),
            vec![e.len()],
            e.dst().to_vec(),
        )?);
    }
    for k in NodeKind::ALL {
        let t = &x[k.index()];
        let size = t.size();
        let [rows, cols] = size.as_slice() else {
            return Err(PropagateError::DimMismatch {
                what: "exported feature tensor rank",
                expected: 2,
                got: size.len(),
            });
        };
        if *rows as usize != batch.nodes(k).len() {
            return Err(PropagateError::DimMismatch {
                what: "exported feature rows vs. batch nodes of that type",
                expected: batch.nodes(k).len(),
                got: *rows as usize,
            });
        }
        let flat = t
            .f_detach()?
            .f_to(Device::Cpu)?
            .f_to_kind(Kind::Float)?
            .f_contiguous()?
            .f_view([-1])?;
        out.push(NamedArray::f32(
            format!("x.{}", k.name()),
            vec![*rows as usize, *cols as usize],
            Vec::<f32>::try_from(&flat)?,
        )?);
    }
    out.push(NamedArray::i64(
        "counts",
        vec![3],
        NodeKind::ALL
            .iter()
            .map(|&k| batch.nodes(k).len() as i64)
            .collect(),
    )?);
    out.push(NamedArray::i64(
        "n_graphs",
        vec![1],
        vec![batch.n_graphs() as i64],
    )?);
    out.push(NamedArray::i64(
        "user_index",
        vec![batch.n_graphs()],
        batch.user_index().to_vec(),
    )?);
    out.push(NamedArray::i64(
        "target_index",
        vec![batch.n_graphs()],
        batch.target_index().to_vec(),
    )?);
    Ok(out)
}

/// Writes `batch` and its node features `x` (any kind and device; stored
/// as F32) to `path` as safetensors, in the layout of the [module
/// docs](self), for `python/gat_peer.py`.
///
/// # Errors
///
/// [`PropagateError::DimMismatch`] if `x` does not fit the batch,
/// [`PropagateError::Io`]/[`PropagateError::Exchange`] if writing fails,
/// [`PropagateError::Tch`] if libtorch fails.
pub fn export_batch(path: &Path, batch: &HeteroBatch, x: &[Tensor; 3]) -> Result<()> {
    write_safetensors(path, &batch_arrays(batch, x)?)
}

/// [`export_batch`] plus `weights` (rounded to `f32`, under `w.`) and the
/// reference outputs of those rounded weights on the `f32` features
/// (`y.user`, `y.item`, `y.feature`), for `gat_peer.py --check`. Returns
/// the reference outputs.
///
/// # Errors
///
/// As [`export_batch`] and [`GatWeights::forward`].
pub fn export_golden(
    path: &Path,
    batch: &HeteroBatch,
    x: &[Tensor; 3],
    weights: &GatWeights,
) -> Result<[Array2<f64>; 3]> {
    let mut arrays = batch_arrays(batch, x)?;
    let mut w = weights.clone();
    for layer in &mut w.layers {
        for r in &mut layer.relations {
            for v in [
                &mut r.lin_src,
                &mut r.lin_dst,
                &mut r.att_src,
                &mut r.att_dst,
                &mut r.bias,
            ] {
                v.iter_mut().for_each(|x| *x = f64::from(*x as f32));
            }
        }
    }
    let xf = [
        tensor_to_array2(&x[0].f_to_kind(Kind::Float)?)?,
        tensor_to_array2(&x[1].f_to_kind(Kind::Float)?)?,
        tensor_to_array2(&x[2].f_to_kind(Kind::Float)?)?,
    ];
    let y = w.forward(batch, &xf)?;
    arrays.extend(w.to_named_arrays("w.")?);
    for k in NodeKind::ALL {
        let a = &y[k.index()];
        arrays.push(NamedArray::f32(
            format!("y.{}", k.name()),
            vec![a.nrows(), a.ncols()],
            a.iter().map(|&v| v as f32).collect(),
        )?);
    }
    write_safetensors(path, &arrays)?;
    Ok(y)
}
