//! Host copy of the GAT parameters and the loop-based reference forward
//! pass (the test oracle).

use graft_graph::{EdgeList, HeteroBatch, NodeKind, Relation};
use ndarray::{Array2, ArrayView2};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use super::config::{GatActivation, HeteroGatConfig};
use crate::error::{PropagateError, Result};
#[cfg(feature = "bench")]
use crate::exchange::NamedArray;

/// One relation's parameters at one layer, row-major `f64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationWeights {
    /// The relation (source type → destination type).
    pub relation: Relation,
    /// Input width of the source type at this layer.
    pub in_src: usize,
    /// Input width of the destination type at this layer.
    pub in_dst: usize,
    /// Source projection, `[H*F, in_src]` (PyTorch `Linear` layout).
    pub lin_src: Vec<f64>,
    /// Destination projection, `[H*F, in_dst]`.
    pub lin_dst: Vec<f64>,
    /// Source attention vector per head, `[H, F]`.
    pub att_src: Vec<f64>,
    /// Destination attention vector per head, `[H, F]`.
    pub att_dst: Vec<f64>,
    /// Output bias, `[H*F]`.
    pub bias: Vec<f64>,
}

/// One layer's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatLayerWeights {
    /// Attention heads `H`.
    pub heads: usize,
    /// Channels per head `F`.
    pub out_per_head: usize,
    /// One entry per relation, in [`Relation::ALL`] order.
    pub relations: Vec<RelationWeights>,
}

/// All parameters of a [`HeteroGat`](super::HeteroGat) as plain `f64`
/// vectors, with the network's configuration.
///
/// Obtained from [`HeteroGat::export_weights`](super::HeteroGat::export_weights),
/// written back with [`HeteroGat::load_weights`](super::HeteroGat::load_weights),
/// or drawn with [`GatWeights::random`]. [`GatWeights::forward`] is the
/// **reference implementation**: the same network written as plain loops
/// over the edges in `f64`, without libtorch, in evaluation mode. It is slow
/// and obviously correct, meant as the oracle for tests of this and other
/// backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatWeights {
    /// The architecture these weights belong to.
    pub config: HeteroGatConfig,
    /// One entry per layer.
    pub layers: Vec<GatLayerWeights>,
}

/// Uniform draws in `[-a, a)` from a ChaCha8 stream (portable: the same
/// values on every platform and `rand` version).
struct Uniform(ChaCha8Rng);

impl Uniform {
    fn draw(&mut self, a: f64) -> f64 {
        let u = (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (2.0 * u - 1.0) * a
    }

    fn vec(&mut self, n: usize, a: f64) -> Vec<f64> {
        (0..n).map(|_| self.draw(a)).collect()
    }
}

impl GatWeights {
    /// Random weights for `cfg`, deterministic in `seed`: Glorot-uniform
    /// projections and attention vectors as at initialisation, and biases
    /// uniform in `[-0.5, 0.5)` (unlike the zero initial biases, so tests
    /// exercise the bias path).
    ///
    /// # Errors
    ///
    /// [`PropagateError::Config`] if `cfg` is invalid.
    pub fn random(cfg: &HeteroGatConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let mut rng = Uniform(ChaCha8Rng::seed_from_u64(seed));
        let glorot = |a: usize, b: usize| (6.0 / (a + b) as f64).sqrt();
        let mut layers = Vec::with_capacity(cfg.layers.len());
        for (l, spec) in cfg.layers.iter().enumerate() {
            let (h, f) = (spec.heads, spec.out_per_head);
            let hf = spec.out_dim();
            let mut relations = Vec::with_capacity(4);
            for relation in Relation::ALL {
                let (in_src, in_dst) =
                    cfg.relation_in_dims(l, relation)
                        .ok_or_else(|| PropagateError::Config {
                            field: "layers",
                            reason: format!("no input widths for layer {l}"),
                        })?;
                relations.push(RelationWeights {
                    relation,
                    in_src,
                    in_dst,
                    lin_src: rng.vec(hf * in_src, glorot(in_src, hf)),
                    lin_dst: rng.vec(hf * in_dst, glorot(in_dst, hf)),
                    att_src: rng.vec(hf, glorot(h, f)),
                    att_dst: rng.vec(hf, glorot(h, f)),
                    bias: rng.vec(hf, 0.5),
                });
            }
            layers.push(GatLayerWeights {
                heads: h,
                out_per_head: f,
                relations,
            });
        }
        Ok(Self {
            config: cfg.clone(),
            layers,
        })
    }

    /// Checks that the weights fit their configuration: one entry per layer
    /// with the configured heads and channels, the four relations in
    /// [`Relation::ALL`] order with the right input widths, and vectors of
    /// the right lengths.
    ///
    /// # Errors
    ///
    /// [`PropagateError::Config`] for an invalid configuration or a
    /// structural mismatch, [`PropagateError::DimMismatch`] for a vector of
    /// the wrong length.
    pub fn validate(&self) -> Result<()> {
        self.config.validate()?;
        let structure = |reason: String| PropagateError::Config {
            field: "layers",
            reason,
        };
        if self.layers.len() != self.config.layers.len() {
            return Err(structure(format!(
                "{} layers of weights for {} configured layers",
                self.layers.len(),
                self.config.layers.len()
            )));
        }
        for (l, (lw, spec)) in self.layers.iter().zip(&self.config.layers).enumerate() {
            if (lw.heads, lw.out_per_head) != (spec.heads, spec.out_per_head) {
                return Err(structure(format!(
                    "layer {l}: weights for {}x{}, configured {}x{}",
                    lw.heads, lw.out_per_head, spec.heads, spec.out_per_head
                )));
            }
            let relations: Vec<Relation> = lw.relations.iter().map(|r| r.relation).collect();
            if relations != Relation::ALL {
                return Err(structure(format!(
                    "layer {l}: relations {relations:?}, expected {:?}",
                    Relation::ALL
                )));
            }
            let hf = spec.out_dim();
            for rw in &lw.relations {
                let dims = self.config.relation_in_dims(l, rw.relation);
                if dims != Some((rw.in_src, rw.in_dst)) {
                    return Err(structure(format!(
                        "layer {l} {}: input widths ({}, {}), configured {dims:?}",
                        rw.relation, rw.in_src, rw.in_dst
                    )));
                }
                for (what, v, n) in [
                    ("lin_src length vs. H*F*in_src", &rw.lin_src, hf * rw.in_src),
                    ("lin_dst length vs. H*F*in_dst", &rw.lin_dst, hf * rw.in_dst),
                    ("att_src length vs. H*F", &rw.att_src, hf),
                    ("att_dst length vs. H*F", &rw.att_dst, hf),
                    ("bias length vs. H*F", &rw.bias, hf),
                ] {
                    if v.len() != n {
                        return Err(PropagateError::DimMismatch {
                            what,
                            expected: n,
                            got: v.len(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The weights of `relation` at layer `layer`, if both exist.
    pub fn relation(&self, layer: usize, relation: Relation) -> Option<&RelationWeights> {
        self.layers
            .get(layer)?
            .relations
            .iter()
            .find(|r| r.relation == relation)
    }

    /// Mutable access to the weights of `relation` at layer `layer`.
    pub fn relation_mut(
        &mut self,
        layer: usize,
        relation: Relation,
    ) -> Option<&mut RelationWeights> {
        self.layers
            .get_mut(layer)?
            .relations
            .iter_mut()
            .find(|r| r.relation == relation)
    }

    /// The reference forward pass in evaluation mode (no dropout): the same
    /// function as [`HeteroGat::forward_t`](super::HeteroGat::forward_t)
    /// with `train = false`, computed with `f64` loops over the edges of
    /// `batch`.
    ///
    /// # Shapes
    ///
    /// `x[k]`: `[nodes of type k in batch, in_dims[k]]`; result `[k]`:
    /// `[nodes of type k, out_dim]`.
    ///
    /// # Errors
    ///
    /// As [`GatWeights::validate`]; [`PropagateError::DimMismatch`] for an
    /// input of the wrong shape, [`PropagateError::NonFinite`] for the first
    /// NaN or infinity of an input.
    ///
    /// # Complexity
    ///
    /// Per layer and relation `O(N in H F + E H F)`, single-threaded.
    pub fn forward(&self, batch: &HeteroBatch, x: &[Array2<f64>; 3]) -> Result<[Array2<f64>; 3]> {
        self.validate()?;
        for kind in NodeKind::ALL {
            let k = kind.index();
            let (rows, cols) = x[k].dim();
            let n = batch.nodes(kind).len();
            if rows != n {
                return Err(PropagateError::DimMismatch {
                    what: "reference input rows vs. batch nodes of that type",
                    expected: n,
                    got: rows,
                });
            }
            if cols != self.config.in_dims[k] {
                return Err(PropagateError::DimMismatch {
                    what: "reference input columns vs. in_dims",
                    expected: self.config.in_dims[k],
                    got: cols,
                });
            }
            if let Some(((row, col), &value)) = x[k].indexed_iter().find(|(_, v)| !v.is_finite()) {
                return Err(PropagateError::NonFinite {
                    what: "reference input",
                    row,
                    col,
                    value: value as f32,
                });
            }
        }
        let slope = self.config.negative_slope;
        let mut h = x.clone();
        let last = self.layers.len().saturating_sub(1);
        for (l, lw) in self.layers.iter().enumerate() {
            let hf = lw.heads * lw.out_per_head;
            let mut next = NodeKind::ALL.map(|k| Array2::<f64>::zeros((batch.nodes(k).len(), hf)));
            for rw in &lw.relations {
                let (s, d) = (
                    rw.relation.src_kind().index(),
                    rw.relation.dst_kind().index(),
                );
                let out = relation_forward(
                    rw,
                    lw.heads,
                    lw.out_per_head,
                    h[s].view(),
                    h[d].view(),
                    batch.edges(rw.relation),
                    slope,
                );
                next[d] += &out;
            }
            if l < last && self.config.activation == GatActivation::Elu {
                for t in &mut next {
                    t.mapv_inplace(|v| if v > 0.0 { v } else { v.exp_m1() });
                }
            }
            h = next;
        }
        Ok(h)
    }

    /// The weights as `F32` [`NamedArray`]s under the variable names of
    /// [`HeteroGat`](super::HeteroGat), prefixed with `prefix`
    /// (e.g. `"w."` gives `w.layers.0.user_item.lin_src.weight`), plus
    /// `{prefix}config.layers` (`I64 [L, 2]`: heads, channels per layer),
    /// `{prefix}config.in_dims` (`I64 [3]`) and
    /// `{prefix}config.negative_slope` (`F32 [1]`) and `{prefix}config.elu`
    /// (`I64 [1]`: 1 when ELU follows the inner layers), for the Python peer.
    ///
    /// # Errors
    ///
    /// As [`GatWeights::validate`].
    #[cfg(feature = "bench")]
    pub fn to_named_arrays(&self, prefix: &str) -> Result<Vec<NamedArray>> {
        self.validate()?;
        let mut out = Vec::new();
        for (l, lw) in self.layers.iter().enumerate() {
            let (h, f) = (lw.heads, lw.out_per_head);
            for rw in &lw.relations {
                let base = format!("{prefix}layers.{l}.{}", rw.relation.name());
                let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
                out.push(NamedArray::f32(
                    format!("{base}.lin_src.weight"),
                    vec![h * f, rw.in_src],
                    f32s(&rw.lin_src),
                )?);
                out.push(NamedArray::f32(
                    format!("{base}.lin_dst.weight"),
                    vec![h * f, rw.in_dst],
                    f32s(&rw.lin_dst),
                )?);
                out.push(NamedArray::f32(
                    format!("{base}.att_src"),
                    vec![h, f],
                    f32s(&rw.att_src),
                )?);
                out.push(NamedArray::f32(
                    format!("{base}.att_dst"),
                    vec![h, f],
                    f32s(&rw.att_dst),
                )?);
                out.push(NamedArray::f32(
                    format!("{base}.bias"),
                    vec![h * f],
                    f32s(&rw.bias),
                )?);
            }
        }
        let specs: Vec<i64> = self
            .config
            .layers
            .iter()
            .flat_map(|s| [s.heads as i64, s.out_per_head as i64])
            .collect();
        out.push(NamedArray::i64(
            format!("{prefix}config.layers"),
            vec![self.config.layers.len(), 2],
            specs,
        )?);
        out.push(NamedArray::i64(
            format!("{prefix}config.in_dims"),
            vec![3],
            self.config.in_dims.iter().map(|&d| d as i64).collect(),
        )?);
        out.push(NamedArray::f32(
            format!("{prefix}config.negative_slope"),
            vec![1],
            vec![self.config.negative_slope as f32],
        )?);
        out.push(NamedArray::i64(
            format!("{prefix}config.elu"),
            vec![1],
            vec![i64::from(self.config.activation == GatActivation::Elu)],
        )?);
        Ok(out)
    }
}

/// `rows x w^T` for a row-major `[out, in]` weight.
fn project(x: ArrayView2<'_, f64>, w: &[f64], out: usize) -> Array2<f64> {
    let (n, d) = x.dim();
    let mut y = Array2::<f64>::zeros((n, out));
    for i in 0..n {
        for o in 0..out {
            let wo = &w[o * d..(o + 1) * d];
            y[[i, o]] = (0..d).map(|k| x[[i, k]] * wo[k]).sum();
        }
    }
    y
}

/// Per-node attention halves `[N, H]`: `<h[n, head, :], att[head, :]>`.
fn attention_half(h: &Array2<f64>, att: &[f64], heads: usize, f: usize) -> Array2<f64> {
    Array2::from_shape_fn((h.nrows(), heads), |(n, hd)| {
        (0..f).map(|c| h[[n, hd * f + c]] * att[hd * f + c]).sum()
    })
}

/// One relation's output `[N_D, H*F]`, bias included.
fn relation_forward(
    rw: &RelationWeights,
    heads: usize,
    f: usize,
    x_src: ArrayView2<'_, f64>,
    x_dst: ArrayView2<'_, f64>,
    edges: &EdgeList,
    slope: f64,
) -> Array2<f64> {
    let hf = heads * f;
    let n_dst = x_dst.nrows();
    let h_src = project(x_src, &rw.lin_src, hf);
    let h_dst = project(x_dst, &rw.lin_dst, hf);
    let el = attention_half(&h_src, &rw.att_src, heads, f);
    let er = attention_half(&h_dst, &rw.att_dst, heads, f);

    let pairs: Vec<(usize, usize)> = edges
        .iter()
        .map(|(s, d)| (s as usize, d as usize))
        .collect();
    // Logits per edge and head, and their maximum per destination and head.
    let mut logits = vec![0.0; pairs.len() * heads];
    let mut max = vec![f64::NEG_INFINITY; n_dst * heads];
    for (e, &(s, d)) in pairs.iter().enumerate() {
        for hd in 0..heads {
            let z = el[[s, hd]] + er[[d, hd]];
            let z = if z > 0.0 { z } else { slope * z };
            logits[e * heads + hd] = z;
            max[d * heads + hd] = max[d * heads + hd].max(z);
        }
    }
    let mut denom = vec![0.0; n_dst * heads];
    for (e, &(_, d)) in pairs.iter().enumerate() {
        for hd in 0..heads {
            let w = (logits[e * heads + hd] - max[d * heads + hd]).exp();
            logits[e * heads + hd] = w;
            denom[d * heads + hd] += w;
        }
    }
    let mut out = Array2::<f64>::zeros((n_dst, hf));
    for (e, &(s, d)) in pairs.iter().enumerate() {
        for hd in 0..heads {
            let alpha = logits[e * heads + hd] / denom[d * heads + hd];
            for c in 0..f {
                out[[d, hd * f + c]] += alpha * h_src[[s, hd * f + c]];
            }
        }
    }
    for mut row in out.rows_mut() {
        for (v, b) in row.iter_mut().zip(&rw.bias) {
            *v += b;
        }
    }
    out
}
