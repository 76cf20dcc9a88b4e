//! ELCoRec's heterogeneous GAT expert network on libtorch (CPU or CUDA).
//!
//! [`HeteroGat`] runs a stack of heterogeneous graph-attention layers over a
//! whole mini-batch of per-sample graphs ([`graft_graph::HeteroBatch`]) in
//! one call. One layer is DGL's
//! `HeteroGraphConv({rel: GATConv}, aggregate="sum")`, or PyG's
//! `HeteroConv({rel: GATConv((in_src, in_dst), F, heads=H,
//! add_self_loops=False)}, aggr="sum")`: for every relation `r` from node
//! type `S` to node type `D` (see [`Relation`]),
//!
//! ```text
//! h_s = x_S W_src^T,   h_d = x_D W_dst^T                  viewed [N, H, F]
//! e_ij = LeakyReLU(<h_s[j], a_src> + <h_d[i], a_dst>)      per edge j -> i, per head
//! alpha_ij = softmax_j(e_ij)      over the incoming r-edges of each destination i
//! out_r[i] = sum_j alpha_ij h_s[j] + bias                  heads concatenated: [N_D, H*F]
//! ```
//!
//! and the output of node type `D` is the sum of `out_r` over the relations
//! into `D`. A destination without incoming `r`-edges receives `bias` from
//! `r`. ELU follows every layer but the last. The softmax subtracts a
//! (detached) per-destination maximum, so it is stable for any logits.
//!
//! Parameters live in a [`tch::nn::VarStore`] under PyTorch-style names,
//! `layers.{l}.{relation}.lin_src.weight` (`[H*F, in_S]`, PyTorch's
//! `Linear` layout), `lin_dst.weight` (`[H*F, in_D]`), `att_src` and
//! `att_dst` (`[H, F]`; PyG stores `[1, H, F]`) and `bias` (`[H*F]`), with
//! `{relation}` one of `user_item`, `item_user`, `item_feature`,
//! `feature_item` ([`Relation::name`]). They train with any `tch`
//! optimiser together with the other variables of the store.
//!
//! [`GatWeights`] holds a copy of the parameters as `f64` vectors and
//! implements the same network with plain loops over the edges: the test
//! oracle for this and other backends. [`bench`](mod@bench) times training steps and
//! writes batches for the Python peer `python/gat_peer.py`.
//!
//! ```
//! use graft_graph::{HeteroBatch, SampleGraph, SampleGraphOptions};
//! use graft_propagate::gat::{GatBatch, GatLayerSpec, HeteroGat, HeteroGatConfig};
//! use tch::{nn, Device, Kind, Tensor};
//!
//! // Two samples: user 0 with history [3, 4] and target 5, user 1 with
//! // history [4] and target 6; item i has feature i % 2.
//! let opts = SampleGraphOptions::default();
//! let graphs = [
//!     SampleGraph::build(0, 5, &[3, 4], |i| vec![i % 2], &opts),
//!     SampleGraph::build(1, 6, &[4], |i| vec![i % 2], &opts),
//! ];
//! let batch = HeteroBatch::from_graphs(&graphs)?;
//!
//! let cfg = HeteroGatConfig::new([4, 4, 2]).with_layers([GatLayerSpec::new(2, 3)]);
//! let vs = nn::VarStore::new(Device::Cpu);
//! let gat = HeteroGat::new(&vs.root().sub("gat"), cfg)?;
//! let gb = GatBatch::new(&batch, Device::Cpu)?;
//! let [nu, ni, nf] = gb.counts();
//! let x = [
//!     Tensor::randn([nu as i64, 4], (Kind::Float, Device::Cpu)),
//!     Tensor::randn([ni as i64, 4], (Kind::Float, Device::Cpu)),
//!     Tensor::randn([nf as i64, 2], (Kind::Float, Device::Cpu)),
//! ];
//! let [users, items, _features] = gat.forward_t(&x, &gb, false)?;
//! assert_eq!(users.size(), [2, 6]);
//! assert_eq!(items.size(), [5, 6]);
//! // The soft-prompt tokens: each graph's target item.
//! let targets = Tensor::from_slice(batch.target_index());
//! assert_eq!(items.index_select(0, &targets).size(), [2, 6]);
//! # Ok::<(), graft_propagate::PropagateError>(())
//! ```

#[cfg(feature = "bench")]
pub mod bench;
mod config;
mod reference;

pub use config::{GatActivation, GatLayerSpec, HeteroGatConfig};
pub use graft_graph::{NodeKind, Relation};
pub use reference::{GatLayerWeights, GatWeights, RelationWeights};

use graft_graph::HeteroBatch;
use ndarray::Array2;
use tch::nn::{Init, Path};
use tch::{Device, Kind, Tensor};

use crate::error::{PropagateError, Result};

/// The index tensors of a [`HeteroBatch`] on one device: per relation the
/// edge sources and destinations (`int64`, type-local), per node type the
/// node count. Build it once per mini-batch and reuse it across layers and
/// steps.
#[derive(Debug)]
pub struct GatBatch {
    n_graphs: usize,
    counts: [usize; 3],
    n_edges: [usize; 4],
    src: [Tensor; 4],
    dst: [Tensor; 4],
    device: Device,
}

impl GatBatch {
    /// Copies the edge lists of `batch` to `device`.
    ///
    /// # Errors
    ///
    /// [`PropagateError::Tch`] if libtorch fails (e.g. the device is
    /// unavailable).
    pub fn new(batch: &HeteroBatch, device: Device) -> Result<Self> {
        let tensors = |f: fn(&graft_graph::EdgeList) -> &[i64]| -> Result<[Tensor; 4]> {
            let [a, b, c, d] = Relation::ALL.map(|r| f(batch.edges(r)));
            Ok([
                Tensor::f_from_slice(a)?.f_to(device)?,
                Tensor::f_from_slice(b)?.f_to(device)?,
                Tensor::f_from_slice(c)?.f_to(device)?,
                Tensor::f_from_slice(d)?.f_to(device)?,
            ])
        };
        Ok(Self {
            n_graphs: batch.n_graphs(),
            counts: NodeKind::ALL.map(|k| batch.nodes(k).len()),
            n_edges: Relation::ALL.map(|r| batch.edges(r).len()),
            src: tensors(graft_graph::EdgeList::src)?,
            dst: tensors(graft_graph::EdgeList::dst)?,
            device,
        })
    }

    /// Number of graphs in the batch.
    pub fn n_graphs(&self) -> usize {
        self.n_graphs
    }

    /// Number of nodes per type, indexed by [`NodeKind::index`].
    pub fn counts(&self) -> [usize; 3] {
        self.counts
    }

    /// Number of edges of `relation`.
    pub fn n_edges(&self, relation: Relation) -> usize {
        self.n_edges[relation.index()]
    }

    /// Edge sources of `relation` (`int64`, `[E]`, indices into the source
    /// type's nodes).
    pub fn src(&self, relation: Relation) -> &Tensor {
        &self.src[relation.index()]
    }

    /// Edge destinations of `relation` (`int64`, `[E]`, indices into the
    /// destination type's nodes).
    pub fn dst(&self, relation: Relation) -> &Tensor {
        &self.dst[relation.index()]
    }

    /// The device holding the index tensors.
    pub fn device(&self) -> Device {
        self.device
    }
}

/// One relation's GATConv parameters.
#[derive(Debug)]
struct RelationConv {
    relation: Relation,
    /// `[H*F, in_S]`.
    lin_src: Tensor,
    /// `[H*F, in_D]`.
    lin_dst: Tensor,
    /// `[H, F]`.
    att_src: Tensor,
    /// `[H, F]`.
    att_dst: Tensor,
    /// `[H*F]`.
    bias: Tensor,
    /// Full variable-store names of the five tensors, in field order.
    names: [String; 5],
}

/// One heterogeneous layer: a [`RelationConv`] per relation, by
/// [`Relation::index`].
#[derive(Debug)]
struct GatLayer {
    heads: i64,
    out_per_head: i64,
    convs: Vec<RelationConv>,
}

/// Glorot/Xavier uniform bound `sqrt(6 / (fan_in + fan_out))`, as PyG's
/// `glorot` (which counts `[1, H, F]` attention vectors as `H + F`).
fn glorot(fan_a: usize, fan_b: usize) -> Init {
    let a = (6.0 / (fan_a + fan_b) as f64).sqrt();
    Init::Uniform { lo: -a, up: a }
}

impl RelationConv {
    fn new(
        p: &Path<'_>,
        relation: Relation,
        heads: usize,
        out: usize,
        in_src: usize,
        in_dst: usize,
    ) -> Result<Self> {
        let hf = heads * out;
        let (h, f, hf_i) = (heads as i64, out as i64, hf as i64);
        let p = p.sub(relation.name());
        let (ps, pd) = (p.sub("lin_src"), p.sub("lin_dst"));
        Ok(Self {
            relation,
            lin_src: ps.f_var("weight", &[hf_i, in_src as i64], glorot(in_src, hf))?,
            lin_dst: pd.f_var("weight", &[hf_i, in_dst as i64], glorot(in_dst, hf))?,
            att_src: p.f_var("att_src", &[h, f], glorot(heads, out))?,
            att_dst: p.f_var("att_dst", &[h, f], glorot(heads, out))?,
            bias: p.f_zeros("bias", &[hf_i])?,
            names: [
                ps.path("weight"),
                pd.path("weight"),
                p.path("att_src"),
                p.path("att_dst"),
                p.path("bias"),
            ],
        })
    }

    fn tensors(&self) -> [&Tensor; 5] {
        [
            &self.lin_src,
            &self.lin_dst,
            &self.att_src,
            &self.att_dst,
            &self.bias,
        ]
    }

    /// Adds this relation's output (`[N_D, H*F]`: aggregated messages plus
    /// bias) to `acc`, the sum of the previous relations into the same
    /// destination type, or returns it alone if `acc` is `None`.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        acc: Option<Tensor>,
        x_src: &Tensor,
        x_dst: &Tensor,
        batch: &GatBatch,
        heads: i64,
        out: i64,
        slope: f64,
        attn_dropout: f64,
        train: bool,
    ) -> Result<Tensor> {
        let r = self.relation;
        let (src, dst) = (batch.src(r), batch.dst(r));
        let n_src = x_src.size()[0];
        let n_dst = batch.counts[r.dst_kind().index()] as i64;
        let n_edges = batch.n_edges(r) as i64;
        let opts = (self.bias.kind(), self.bias.device());

        // [N_S, H, F] projected sources and their attention halves [N_S, H].
        let h_src = x_src
            .f_linear::<&Tensor>(&self.lin_src, None)?
            .f_view([n_src, heads, out])?;
        let el = h_src
            .f_mul(&self.att_src)?
            .f_sum_dim_intlist(-1, false, None)?;
        // Only <W_dst x, a_dst> is needed from the destinations: fold a_dst
        // into W_dst ([H, in_D]) instead of projecting to [N_D, H*F].
        let in_dst = self.lin_dst.size()[1];
        let w_att = self
            .lin_dst
            .f_view([heads, out, in_dst])?
            .f_mul(&self.att_dst.f_unsqueeze(-1)?)?
            .f_sum_dim_intlist(1, false, None)?;
        let er = x_dst.f_matmul(&w_att.f_tr()?)?;

        // Per-edge logits [E, H].
        let logits = el
            .f_index_select(0, src)?
            .f_add(&er.f_index_select(0, dst)?)?;
        let logits = logits.f_where_self(&logits.f_gt(0.0)?, &logits.f_mul_scalar(slope)?)?;
        // Softmax over the incoming edges of every destination.
        // `torch.scatter_reduce(..., "amax", include_self=True)` (tch names
        // this overload `internal_scatter_reduce`).
        let idx = dst.f_unsqueeze(1)?.f_expand([n_edges, heads], false)?;
        let max = Tensor::f_full([n_dst, heads], f64::NEG_INFINITY, opts)?
            .f_internal_scatter_reduce(0, &idx, &logits.f_detach()?, "amax", true)?;
        let p = logits.f_sub(&max.f_index_select(0, dst)?)?.f_exp()?;
        let denom = Tensor::f_zeros([n_dst, heads], opts)?.f_index_add(0, dst, &p)?;
        let mut alpha = p.f_div(&denom.f_index_select(0, dst)?)?;
        if train && attn_dropout > 0.0 {
            alpha = alpha.f_dropout(attn_dropout, true)?;
        }

        // [E, H*F] weighted messages, scattered into `acc` (or into a fresh
        // copy of the bias), in place: no zero fill, no extra bias pass.
        let messages = h_src
            .f_index_select(0, src)?
            .f_mul(&alpha.f_unsqueeze(-1)?)?
            .f_view([n_edges, heads * out])?;
        let mut acc = match acc {
            Some(mut acc) => {
                let _ = acc.f_add_(&self.bias)?;
                acc
            }
            None => self.bias.f_unsqueeze(0)?.f_repeat([n_dst, 1])?,
        };
        let _ = acc.f_index_add_(0, dst, &messages)?;
        Ok(acc)
    }
}

/// ELCoRec's heterogeneous GAT expert network (see the [module
/// docs](self)).
///
/// Build it on a [`tch::nn::Path`]; the variables follow the store's
/// device and kind (`VarStore::double()` after construction gives an `f64`
/// network).
#[derive(Debug)]
pub struct HeteroGat {
    cfg: HeteroGatConfig,
    layers: Vec<GatLayer>,
}

impl HeteroGat {
    /// Creates the parameters under `path`: Glorot-uniform projections and
    /// attention vectors (PyG's initialisation, drawn from libtorch's RNG, so
    /// [`tch::manual_seed`] makes them reproducible), zero biases.
    ///
    /// # Errors
    ///
    /// [`PropagateError::Config`] if `cfg` is invalid
    /// ([`HeteroGatConfig::validate`]), [`PropagateError::Tch`] if libtorch
    /// fails.
    pub fn new(path: &Path<'_>, cfg: HeteroGatConfig) -> Result<Self> {
        cfg.validate()?;
        let mut layers = Vec::with_capacity(cfg.layers.len());
        let p = path.sub("layers");
        for (l, spec) in cfg.layers.iter().enumerate() {
            let pl = p.sub(l);
            let mut convs = Vec::with_capacity(4);
            for r in Relation::ALL {
                let (in_src, in_dst) =
                    cfg.relation_in_dims(l, r)
                        .ok_or_else(|| PropagateError::Config {
                            field: "layers",
                            reason: format!("no input widths for layer {l}"),
                        })?;
                convs.push(RelationConv::new(
                    &pl,
                    r,
                    spec.heads,
                    spec.out_per_head,
                    in_src,
                    in_dst,
                )?);
            }
            layers.push(GatLayer {
                heads: spec.heads as i64,
                out_per_head: spec.out_per_head as i64,
                convs,
            });
        }
        Ok(Self { cfg, layers })
    }

    /// The configuration.
    pub fn config(&self) -> &HeteroGatConfig {
        &self.cfg
    }

    /// Output width per node ([`HeteroGatConfig::out_dim`]).
    pub fn out_dim(&self) -> usize {
        self.cfg.out_dim()
    }

    /// Kind (dtype) of the parameters; inputs must have the same kind.
    pub fn kind(&self) -> Kind {
        self.first_tensor().map_or(Kind::Float, Tensor::kind)
    }

    /// Device of the parameters.
    pub fn device(&self) -> Device {
        self.first_tensor().map_or(Device::Cpu, Tensor::device)
    }

    fn first_tensor(&self) -> Option<&Tensor> {
        self.layers.first()?.convs.first().map(|c| &c.bias)
    }

    /// Every parameter with its full variable-store name, layer by layer,
    /// relations in [`Relation::ALL`] order, then `lin_src.weight`,
    /// `lin_dst.weight`, `att_src`, `att_dst`, `bias`. The tensors are
    /// shallow clones: they share storage (and gradients) with the store.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.layers
            .iter()
            .flat_map(|layer| &layer.convs)
            .flat_map(|c| {
                c.names
                    .iter()
                    .cloned()
                    .zip(c.tensors().map(Tensor::shallow_clone))
            })
            .collect()
    }

    /// Runs the network over a batch.
    ///
    /// `x[k]` holds the features of the nodes of type `k` ([`NodeKind::index`]:
    /// user, item, feature) in the batch's type-local order. In training
    /// mode (`train = true`) feature and attention dropout are applied.
    ///
    /// # Shapes
    ///
    /// * `x[k]`: `[counts[k], in_dims[k]]`, the kind and device of the
    ///   parameters.
    /// * result `[k]`: `[counts[k], out_dim]`.
    ///
    /// # Errors
    ///
    /// * [`PropagateError::DimMismatch`] if an input is not 2-D, or its rows
    ///   differ from the batch's node count or its columns from `in_dims`.
    /// * [`PropagateError::NonFinite`] for the first NaN or infinity (in
    ///   row-major order) of the first offending input.
    /// * [`PropagateError::Tch`] if libtorch fails, e.g. inputs on another
    ///   device or of another kind than the parameters.
    ///
    /// The finiteness check costs one reduction per input and, on CUDA, a
    /// device synchronisation.
    ///
    /// # Complexity
    ///
    /// Per layer and relation `O(N_S in_S H F + N_D in_D H + E H F)`: the
    /// source projection, the destination attention half, one gather, one
    /// segment softmax and one scatter-add.
    pub fn forward_t(&self, x: &[Tensor; 3], batch: &GatBatch, train: bool) -> Result<[Tensor; 3]> {
        check_inputs(x, batch.counts(), self.cfg.in_dims)?;
        let mut h = [
            x[0].shallow_clone(),
            x[1].shallow_clone(),
            x[2].shallow_clone(),
        ];
        let last = self.layers.len().saturating_sub(1);
        for (l, layer) in self.layers.iter().enumerate() {
            if train && self.cfg.feat_dropout > 0.0 {
                h = try_map3(h, |t| t.f_dropout(self.cfg.feat_dropout, true))?;
            }
            let mut acc: [Option<Tensor>; 3] = [None, None, None];
            for conv in &layer.convs {
                let (s, d) = (
                    conv.relation.src_kind().index(),
                    conv.relation.dst_kind().index(),
                );
                acc[d] = Some(conv.forward(
                    acc[d].take(),
                    &h[s],
                    &h[d],
                    batch,
                    layer.heads,
                    layer.out_per_head,
                    self.cfg.negative_slope,
                    self.cfg.attn_dropout,
                    train,
                )?);
            }
            // Every node type is the destination of some relation in
            // `Relation::ALL`; a zero block keeps the code total anyway.
            let width = layer.heads * layer.out_per_head;
            let opts = (self.kind(), batch.device());
            let counts = batch.counts().map(|n| n as i64);
            let or_zeros = |t: Option<Tensor>, n: i64| match t {
                Some(t) => Ok(t),
                None => Tensor::f_zeros([n, width], opts),
            };
            let [a, b, c] = acc;
            h = [
                or_zeros(a, counts[0])?,
                or_zeros(b, counts[1])?,
                or_zeros(c, counts[2])?,
            ];
            if l < last && self.cfg.activation == GatActivation::Elu {
                h = try_map3(h, |t| t.f_elu())?;
            }
        }
        Ok(h)
    }

    /// Copies the parameters to the host as `f64` (see [`GatWeights`]).
    ///
    /// # Errors
    ///
    /// [`PropagateError::Tch`] if libtorch fails.
    pub fn export_weights(&self) -> Result<GatWeights> {
        let layers = self
            .layers
            .iter()
            .map(|layer| {
                let relations = layer
                    .convs
                    .iter()
                    .map(|c| {
                        Ok(RelationWeights {
                            relation: c.relation,
                            in_src: c.lin_src.size()[1] as usize,
                            in_dst: c.lin_dst.size()[1] as usize,
                            lin_src: to_f64(&c.lin_src)?,
                            lin_dst: to_f64(&c.lin_dst)?,
                            att_src: to_f64(&c.att_src)?,
                            att_dst: to_f64(&c.att_dst)?,
                            bias: to_f64(&c.bias)?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(GatLayerWeights {
                    heads: layer.heads as usize,
                    out_per_head: layer.out_per_head as usize,
                    relations,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GatWeights {
            config: self.cfg.clone(),
            layers,
        })
    }

    /// Overwrites the parameters with `weights` (converted to the
    /// parameters' kind and device), without recording gradients.
    ///
    /// # Errors
    ///
    /// [`PropagateError::Config`] or [`PropagateError::DimMismatch`] if
    /// `weights` has another architecture (layers, widths, relations) or
    /// vectors of the wrong length, [`PropagateError::Tch`] if libtorch
    /// fails. Nothing is written unless every check passes.
    pub fn load_weights(&self, weights: &GatWeights) -> Result<()> {
        weights.validate()?;
        if weights.config.in_dims != self.cfg.in_dims || weights.config.layers != self.cfg.layers {
            return Err(PropagateError::Config {
                field: "layers",
                reason: format!(
                    "weights for in_dims {:?}, layers {:?} do not fit a network with in_dims {:?}, layers {:?}",
                    weights.config.in_dims, weights.config.layers, self.cfg.in_dims, self.cfg.layers
                ),
            });
        }
        let (kind, device) = (self.kind(), self.device());
        tch::no_grad(|| -> Result<()> {
            for (layer, lw) in self.layers.iter().zip(&weights.layers) {
                for (conv, rw) in layer.convs.iter().zip(&lw.relations) {
                    let values = [&rw.lin_src, &rw.lin_dst, &rw.att_src, &rw.att_dst, &rw.bias];
                    for (t, v) in conv.tensors().into_iter().zip(values) {
                        let src = Tensor::f_from_slice(v)?
                            .f_view(t.size().as_slice())?
                            .f_to_kind(kind)?
                            .f_to(device)?;
                        t.shallow_clone().f_copy_(&src)?;
                    }
                }
            }
            Ok(())
        })
    }
}

/// Copies a 2-D tensor (any float kind, any device) to the host as an
/// `f64` matrix, e.g. to compare with [`GatWeights::forward`].
///
/// # Errors
///
/// [`PropagateError::DimMismatch`] if `t` is not 2-D,
/// [`PropagateError::Tch`] if libtorch fails.
pub fn tensor_to_array2(t: &Tensor) -> Result<Array2<f64>> {
    let size = t.size();
    let [rows, cols] = size.as_slice() else {
        return Err(PropagateError::DimMismatch {
            what: "tensor rank for a matrix",
            expected: 2,
            got: size.len(),
        });
    };
    let v = to_f64(t)?;
    Array2::from_shape_vec((*rows as usize, *cols as usize), v).map_err(|_| {
        PropagateError::DimMismatch {
            what: "tensor elements vs. rows * cols",
            expected: (*rows * *cols) as usize,
            got: t.numel(),
        }
    })
}

/// A matrix as a `[rows, cols]` tensor of kind `kind` on `device`.
///
/// # Errors
///
/// [`PropagateError::Tch`] if libtorch fails.
pub fn array2_to_tensor(a: &Array2<f64>, kind: Kind, device: Device) -> Result<Tensor> {
    let (r, c) = a.dim();
    let v: Vec<f64> = a.iter().copied().collect();
    Ok(Tensor::f_from_slice(&v)?
        .f_view([r as i64, c as i64])?
        .f_to_kind(kind)?
        .f_to(device)?)
}

fn try_map3(
    h: [Tensor; 3],
    f: impl Fn(&Tensor) -> std::result::Result<Tensor, tch::TchError>,
) -> Result<[Tensor; 3]> {
    let [a, b, c] = h;
    Ok([f(&a)?, f(&b)?, f(&c)?])
}

fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    let flat = t
        .f_detach()?
        .f_to(Device::Cpu)?
        .f_to_kind(Kind::Double)?
        .f_contiguous()?
        .f_view([-1])?;
    Ok(Vec::<f64>::try_from(&flat)?)
}

/// `what` strings for the input checks, by [`NodeKind::index`].
const ROWS_WHAT: [&str; 3] = [
    "user feature rows vs. batch user nodes",
    "item feature rows vs. batch item nodes",
    "feature-node feature rows vs. batch feature nodes",
];
const COLS_WHAT: [&str; 3] = [
    "user feature columns vs. in_dims[0]",
    "item feature columns vs. in_dims[1]",
    "feature-node feature columns vs. in_dims[2]",
];
const RANK_WHAT: [&str; 3] = [
    "user feature tensor rank",
    "item feature tensor rank",
    "feature-node feature tensor rank",
];
const FINITE_WHAT: [&str; 3] = ["user features", "item features", "feature-node features"];

/// Shapes and finiteness of the per-type inputs.
fn check_inputs(x: &[Tensor; 3], counts: [usize; 3], in_dims: [usize; 3]) -> Result<()> {
    for k in 0..3 {
        let size = x[k].size();
        let [rows, cols] = size.as_slice() else {
            return Err(PropagateError::DimMismatch {
                what: RANK_WHAT[k],
                expected: 2,
                got: size.len(),
            });
        };
        if *rows as usize != counts[k] {
            return Err(PropagateError::DimMismatch {
                what: ROWS_WHAT[k],
                expected: counts[k],
                got: *rows as usize,
            });
        }
        if *cols as usize != in_dims[k] {
            return Err(PropagateError::DimMismatch {
                what: COLS_WHAT[k],
                expected: in_dims[k],
                got: *cols as usize,
            });
        }
    }
    for k in 0..3 {
        let bad = x[k].f_isfinite()?.f_logical_not()?;
        if bad.f_any()?.f_int64_value(&[])? != 0 {
            let first = bad.f_nonzero()?;
            let row = first.f_int64_value(&[0, 0])?;
            let col = first.f_int64_value(&[0, 1])?;
            return Err(PropagateError::NonFinite {
                what: FINITE_WHAT[k],
                row: row as usize,
                col: col as usize,
                value: x[k].f_double_value(&[row, col])? as f32,
            });
        }
    }
    Ok(())
}
