//! Interaction graphs for graft.
//!
//! Two graph structures feed the two graph-aware recommenders graft
//! reproduces:
//!
//! * **ELMRec** propagates random features LightGCN-style over the
//!   user-item graph of the training split. [`BipartiteGraph`] builds that
//!   graph as sprs CSR matrices (users are nodes `0..U`, items `U..U+I`),
//!   with the symmetric normalisation `D^-1/2 A D^-1/2`
//!   ([`BipartiteGraph::normalized`]; isolated nodes give zero rows, never
//!   NaN), degree statistics ([`DegreeStats`]) and a row-major COO export
//!   with `i64` indices ([`Coo`]) that becomes a coalesced torch sparse
//!   tensor with the `tch` feature (`Coo::to_tch`).
//! * **ELCoRec** runs a heterogeneous GAT "expert network" over one small
//!   graph per sample (user, history items, target item, item features).
//!   [`SampleGraph`] builds it on petgraph ([`HeteroNode`], [`Relation`]),
//!   and [`HeteroBatch`] concatenates many of them block-diagonally into
//!   per-type node lists and per-relation `i64` edge lists.
//!
//! The crate takes plain ids and edges and does not depend on the dataset
//! crate; without the `tch` feature it does not link libtorch.
//!
//! ```
//! use graft_graph::BipartiteGraph;
//!
//! // 2 users, 3 items: user 0 bought items 0 and 1, user 1 item 1 and 2.
//! let g = BipartiteGraph::from_edges(2, 3, [(0, 0), (0, 1), (1, 1), (1, 2), (0, 1)])?;
//! let a_hat = g.normalized()?;
//! println!("normalised adjacency: {}x{}, nnz = {}", a_hat.rows(), a_hat.cols(), a_hat.nnz());
//! assert_eq!(a_hat.nnz(), 8); // 4 distinct interactions, both directions
//! // user 0 (degree 2) - item 1 (node 3, degree 2): 1 / sqrt(2 * 2)
//! assert_eq!(a_hat.get(0, g.item_node(1)?), Some(&0.5));
//! println!("items: {}", g.item_degree_stats());
//! # Ok::<(), graft_graph::GraphError>(())
//! ```
//!
//! # Features
//!
//! * `tch`: `Coo::to_tch` and `EdgeList::to_tch`, converting the exports
//!   into `tch::Tensor`s, and `GraphError::Tch`.

pub mod bipartite;
pub mod coo;
pub mod error;
pub mod hetero;

pub use bipartite::{BipartiteGraph, DegreeStats};
pub use coo::Coo;
pub use error::{GraphError, NodeKind, Result};
pub use hetero::{
    EdgeList, HeteroBatch, HeteroNode, ItemRole, NodeBlock, Relation, SampleGraph,
    SampleGraphOptions,
};
pub use petgraph::graph::NodeIndex;

/// Re-exported for dense views ([`Coo::to_dense`]); pinned to the version `tch` uses.
pub use ndarray;
/// Re-exported because [`BipartiteGraph`] exposes `sprs` matrices.
pub use sprs;
/// Re-exported with the `tch` feature, so dependents use the same `tch`.
#[cfg(feature = "tch")]
pub use tch;
