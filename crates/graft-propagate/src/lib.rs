//! Propagation kernels for graft.
//!
//! Two kernel families, one trait each:
//!
//! * **LightGCN random-feature propagation** (ELMRec's graph-aware
//!   whole-word embedding). Random features `E0 ~ N(0, sigma^2)` over all
//!   users and items are propagated over the normalised training graph,
//!   `E(l+1) = Â E(l)` with `Â = D^-1/2 A D^-1/2`, and the layers are
//!   combined into one vector per node ([`LayerCombine`]: the mean of
//!   `E0..EL` as in the paper, per-layer weights, or the last layer). The
//!   [`Propagator`] trait has several implementations: [`RustCsr`] (sprs
//!   CSR, rayon, column-blocked), [`DenseReference`] (obviously correct,
//!   for tests) and, with the `tch` feature, [`TchPropagator`] (libtorch
//!   sparse COO or CSR on CPU or CUDA, differentiable, so `E0` can be
//!   trained together with a language model: [`GraphEmbedding`]).
//! * **Heterogeneous GAT** (ELCoRec's expert network, `tch` feature):
//!   `HeteroGat` over a batch of per-sample graphs (`GatBatch`), with an
//!   `f64` reference (`GatWeights::forward`); see the `gat` module.
//!
//! Benchmarks against PyTorch: `cargo xtask compare` (the `compare`
//! example), recorded in `docs/benchmarks.md`.
//!
//! ```
//! use graft_graph::BipartiteGraph;
//! use graft_propagate::{LayerCombine, LightGcnConfig, Propagator, RustCsr};
//!
//! let g = BipartiteGraph::from_edges(2, 3, [(0, 0), (0, 1), (1, 1), (1, 2)])?;
//! let cfg = LightGcnConfig { dim: 8, layers: 2, sigma: 0.1, seed: 7, combine: LayerCombine::Mean };
//! let e0 = cfg.initial_embeddings(g.n_nodes())?;
//! let kernel = RustCsr::new(&g.normalized()?)?;
//! let out = kernel.propagate(e0.view(), cfg.layers, &cfg.combine)?;
//! assert_eq!(out.dim(), (5, 8));
//! # Ok::<(), graft_propagate::PropagateError>(())
//! ```
//!
//! # Features
//!
//! * `tch` (off by default, as candle's `cuda`): [`TchPropagator`],
//!   [`GraphEmbedding`] and the GAT. Without it the crate is pure Rust and
//!   needs no libtorch: `graft-propagate = { version = "0.1", features =
//!   ["tch"] }` for the libtorch backends.
//! * `bench` (off): the benchmark workloads ([`bench`](mod@bench),
//!   `gat::bench`) and the safetensors exchange with the Python reference
//!   scripts ([`exchange`]) that the benches, the `compare` example and
//!   the equivalence tests use; not needed to propagate or train.
//! * `cuda-tests`: runs the CUDA tests (they fail, not skip, without a GPU).

#[cfg(feature = "bench")]
pub mod bench;
pub mod config;
pub mod error;
#[cfg(feature = "bench")]
pub mod exchange;
#[cfg(feature = "tch")]
pub mod gat;
pub mod init;
pub mod lightgcn;
#[cfg(feature = "tch")]
pub mod torch;

pub use config::{LayerCombine, LightGcnConfig};
pub use error::{PropagateError, Result};
#[cfg(feature = "tch")]
pub use gat::{GatBatch, GatLayerSpec, GatWeights, HeteroGat, HeteroGatConfig};
pub use init::normal_embeddings;
pub use lightgcn::{DenseReference, Propagator, RustCsr};
#[cfg(feature = "tch")]
pub use torch::{propagate_tensor, GraphEmbedding, SparseLayout, TchPropagator};

pub use graft_graph;
pub use ndarray;
pub use sprs;
#[cfg(feature = "tch")]
pub use tch;
