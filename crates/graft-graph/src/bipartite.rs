//! The user-item interaction graph of LightGCN / ELMRec.
//!
//! [`BipartiteGraph`] holds the binary interactions of the *training* split
//! as two sprs CSR matrices:
//!
//! * the `U x I` interaction matrix `R` ([`BipartiteGraph::interactions`]),
//! * the symmetric `(U+I) x (U+I)` adjacency `A = [[0, R], [R^T, 0]]`
//!   ([`BipartiteGraph::adjacency`]),
//!
//! and derives the symmetrically normalised adjacency
//! `A_hat = D^-1/2 A D^-1/2` ([`BipartiteGraph::normalized`]) that LightGCN
//! propagates embeddings (or ELMRec random features) with.
//!
//! # Node numbering
//!
//! The joint graph numbers users first and items after them:
//! user `u` is node `u`, item `i` is node `U + i`
//! ([`BipartiteGraph::user_node`], [`BipartiteGraph::item_node`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use sprs::CsMat;

use crate::coo::Coo;
use crate::error::{GraphError, NodeKind, Result};

/// Binary user-item interaction graph (train split only).
///
/// Duplicate interactions collapse to a single edge of weight 1, as in
/// LightGCN; there are no self-loops. Users and items without interactions
/// are kept as isolated nodes (their rows in every matrix are empty).
///
/// # Node numbering
///
/// Users are nodes `0..U`, items are nodes `U..U+I`.
#[derive(Debug, Clone, PartialEq)]
pub struct BipartiteGraph {
    n_users: usize,
    n_items: usize,
    /// `U x I` CSR, binary.
    interactions: CsMat<f32>,
    /// `(U+I) x (U+I)` CSR, binary and symmetric.
    adjacency: CsMat<f32>,
}

impl BipartiteGraph {
    /// Builds the graph from `(user id, item id)` pairs, both 0-based.
    ///
    /// Duplicates are removed; the order of `edges` does not matter.
    ///
    /// # Shapes
    ///
    /// `interactions()` is `n_users x n_items`, `adjacency()` and
    /// `normalized()` are `(n_users + n_items)` square.
    ///
    /// # Errors
    ///
    /// * [`GraphError::EdgeOutOfRange`] for the first edge whose user id is
    ///   `>= n_users` or whose item id is `>= n_items`;
    /// * [`GraphError::TooLarge`] if `n_users + n_items` overflows or exceeds
    ///   `i64::MAX` (the index type of the torch export).
    ///
    /// # Complexity
    ///
    /// `O(E log E + U + I)` time for `E` input edges (one sort, then counting
    /// sorts), `O(E + U + I)` memory. Tens of milliseconds for Amazon
    /// Beauty/Sports sized graphs.
    pub fn from_edges<E>(n_users: usize, n_items: usize, edges: E) -> Result<Self>
    where
        E: IntoIterator<Item = (u32, u32)>,
    {
        let n = n_users
            .checked_add(n_items)
            .filter(|&n| n as u128 <= i64::MAX as u128)
            .ok_or(GraphError::TooLarge {
                what: "n_users + n_items",
                got: n_users as u128 + n_items as u128,
                max: i64::MAX as u128,
            })?;

        let edges = edges.into_iter();
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(edges.size_hint().0);
        for (edge, (user, item)) in edges.enumerate() {
            let bad = if user as usize >= n_users {
                Some((NodeKind::User, user, n_users))
            } else if item as usize >= n_items {
                Some((NodeKind::Item, item, n_items))
            } else {
                None
            };
            if let Some((kind, id, n)) = bad {
                return Err(GraphError::EdgeOutOfRange {
                    edge,
                    user,
                    item,
                    kind,
                    id,
                    n,
                });
            }
            pairs.push((user, item));
        }
        pairs.sort_unstable();
        pairs.dedup();
        let nnz = pairs.len();

        // R (users x items): pairs are sorted by (user, item), so the column
        // indices of each row come out sorted.
        let mut r_indptr = vec![0usize; n_users + 1];
        for &(u, _) in &pairs {
            r_indptr[u as usize + 1] += 1;
        }
        prefix_sum(&mut r_indptr);
        let r_indices: Vec<usize> = pairs.iter().map(|&(_, i)| i as usize).collect();

        // R^T (items x users) by a counting sort over items; users are visited
        // in increasing order, so each item's user list is sorted too.
        let mut t_indptr = vec![0usize; n_items + 1];
        for &(_, i) in &pairs {
            t_indptr[i as usize + 1] += 1;
        }
        prefix_sum(&mut t_indptr);
        let mut next = t_indptr.clone();
        let mut t_indices = vec![0usize; nnz];
        for &(u, i) in &pairs {
            let slot = &mut next[i as usize];
            t_indices[*slot] = u as usize;
            *slot += 1;
        }

        // A = [[0, R], [R^T, 0]]: user rows point at item nodes (U + i), item
        // rows at user nodes (< U), so every row stays sorted.
        let mut indptr = Vec::with_capacity(n + 1);
        indptr.extend_from_slice(&r_indptr);
        indptr.extend(t_indptr[1..].iter().map(|&p| nnz + p));
        let mut indices = Vec::with_capacity(2 * nnz);
        indices.extend(r_indices.iter().map(|&i| n_users + i));
        indices.extend_from_slice(&t_indices);
        let adjacency = csr((n, n), indptr, indices, vec![1.0f32; 2 * nnz])?;
        let interactions = csr((n_users, n_items), r_indptr, r_indices, vec![1.0f32; nnz])?;

        Ok(Self {
            n_users,
            n_items,
            interactions,
            adjacency,
        })
    }

    /// Number of users `U`.
    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// Number of items `I`.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Number of nodes of the joint graph, `U + I`.
    pub fn n_nodes(&self) -> usize {
        self.n_users + self.n_items
    }

    /// Number of distinct user-item interactions (undirected edges).
    pub fn n_edges(&self) -> usize {
        self.interactions.nnz()
    }

    /// Joint node index of user `u` (equal to `u`).
    ///
    /// # Errors
    ///
    /// [`GraphError::NodeOutOfRange`] if `u >= U`.
    pub fn user_node(&self, u: u32) -> Result<usize> {
        let u = u as usize;
        if u < self.n_users {
            Ok(u)
        } else {
            Err(GraphError::NodeOutOfRange {
                kind: NodeKind::User,
                id: u as u64,
                n: self.n_users,
            })
        }
    }

    /// Joint node index of item `i` (equal to `U + i`).
    ///
    /// # Errors
    ///
    /// [`GraphError::NodeOutOfRange`] if `i >= I`.
    pub fn item_node(&self, i: u32) -> Result<usize> {
        let i = i as usize;
        if i < self.n_items {
            Ok(self.n_users + i)
        } else {
            Err(GraphError::NodeOutOfRange {
                kind: NodeKind::Item,
                id: i as u64,
                n: self.n_items,
            })
        }
    }

    /// Inverse of [`user_node`](Self::user_node) / [`item_node`](Self::item_node):
    /// the kind and id of joint node `node`, or `None` if `node >= U + I`.
    pub fn node_id(&self, node: usize) -> Option<(NodeKind, u32)> {
        if node < self.n_users {
            u32::try_from(node).ok().map(|u| (NodeKind::User, u))
        } else if node < self.n_nodes() {
            u32::try_from(node - self.n_users)
                .ok()
                .map(|i| (NodeKind::Item, i))
        } else {
            None
        }
    }

    /// The binary `U x I` interaction matrix `R` (CSR, sorted indices).
    pub fn interactions(&self) -> &CsMat<f32> {
        &self.interactions
    }

    /// The binary symmetric adjacency `A = [[0, R], [R^T, 0]]`.
    ///
    /// # Shapes
    ///
    /// `(U+I) x (U+I)`, CSR with sorted column indices, `2E` stored entries.
    pub fn adjacency(&self) -> &CsMat<f32> {
        &self.adjacency
    }

    /// Item ids the user interacted with, ascending.
    ///
    /// # Errors
    ///
    /// [`GraphError::NodeOutOfRange`] if `u >= U`.
    pub fn items_of(&self, u: u32) -> Result<&[usize]> {
        let u = self.user_node(u)?;
        let range = self.interactions.indptr().outer_inds_sz(u);
        Ok(&self.interactions.indices()[range])
    }

    /// Degree of every joint node (users first, then items).
    ///
    /// # Complexity
    ///
    /// `O(U + I)`.
    pub fn degrees(&self) -> Vec<usize> {
        self.adjacency.degrees()
    }

    /// Number of distinct items of every user.
    pub fn user_degrees(&self) -> Vec<usize> {
        let mut d = self.degrees();
        d.truncate(self.n_users);
        d
    }

    /// Number of distinct users of every item.
    pub fn item_degrees(&self) -> Vec<usize> {
        self.degrees().split_off(self.n_users)
    }

    /// Summary of [`user_degrees`](Self::user_degrees).
    pub fn user_degree_stats(&self) -> DegreeStats {
        DegreeStats::from_degrees(&self.user_degrees())
    }

    /// Summary of [`item_degrees`](Self::item_degrees).
    pub fn item_degree_stats(&self) -> DegreeStats {
        DegreeStats::from_degrees(&self.item_degrees())
    }

    /// `D^-1/2` as a vector: `1 / sqrt(d_v)` for every joint node, `0` for
    /// isolated nodes.
    pub fn inv_sqrt_degrees(&self) -> Vec<f32> {
        self.inv_sqrt_degrees_f64()
            .into_iter()
            .map(|x| x as f32)
            .collect()
    }

    fn inv_sqrt_degrees_f64(&self) -> Vec<f64> {
        self.degrees()
            .into_iter()
            .map(|d| if d == 0 { 0.0 } else { 1.0 / (d as f64).sqrt() })
            .collect()
    }

    /// The symmetrically normalised adjacency `A_hat = D^-1/2 A D^-1/2`,
    /// i.e. `A_hat[v, w] = 1 / sqrt(d_v d_w)` for every edge `(v, w)`, with
    /// `d` the row degrees of `A`.
    ///
    /// Isolated nodes (degree 0) have empty rows and columns, so the matrix
    /// never contains NaN or infinity. The product is computed in `f64` and
    /// rounded once, so `A_hat` is exactly symmetric.
    ///
    /// # Shapes
    ///
    /// `(U+I) x (U+I)`, CSR with the sparsity pattern of
    /// [`adjacency`](Self::adjacency) (sorted indices, `2E` entries).
    ///
    /// # Errors
    ///
    /// [`GraphError::SparseStructure`] only if an internal invariant broke.
    ///
    /// # Complexity
    ///
    /// `O(U + I + E)` time and memory: the structure of `A` is copied and
    /// only the values are computed; no sparse products are formed.
    pub fn normalized(&self) -> Result<CsMat<f32>> {
        let inv = self.inv_sqrt_degrees_f64();
        let indptr = self.adjacency.proper_indptr();
        let indices = self.adjacency.indices();
        let mut data = Vec::with_capacity(indices.len());
        for (row, w) in indptr.windows(2).enumerate() {
            let r = inv[row];
            data.extend(indices[w[0]..w[1]].iter().map(|&c| (r * inv[c]) as f32));
        }
        csr(
            self.adjacency.shape(),
            indptr.into_owned(),
            indices.to_vec(),
            data,
        )
    }

    /// [`normalized`](Self::normalized) exported as a row-major sorted COO
    /// with `i64` indices, ready for [`Coo::to_tch`](crate::Coo).
    ///
    /// # Errors
    ///
    /// As [`normalized`](Self::normalized).
    ///
    /// # Complexity
    ///
    /// `O(U + I + E)`.
    pub fn normalized_coo(&self) -> Result<Coo> {
        Coo::from_csr(&self.normalized()?)
    }
}

/// Summary statistics of a degree sequence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DegreeStats {
    /// Number of nodes.
    pub count: usize,
    /// Smallest degree (0 when `count == 0`).
    pub min: usize,
    /// Largest degree (0 when `count == 0`).
    pub max: usize,
    /// Mean degree (0 when `count == 0`).
    pub mean: f64,
    /// Median degree; the mean of the two middle values for even counts
    /// (0 when `count == 0`).
    pub median: f64,
    /// Number of nodes with degree 0.
    pub isolated: usize,
}

impl DegreeStats {
    /// Computes the statistics of `degrees`.
    ///
    /// # Complexity
    ///
    /// `O(n log n)` (one sort of a copy, for the median).
    pub fn from_degrees(degrees: &[usize]) -> Self {
        let count = degrees.len();
        if count == 0 {
            return Self {
                count: 0,
                min: 0,
                max: 0,
                mean: 0.0,
                median: 0.0,
                isolated: 0,
            };
        }
        let mut sorted = degrees.to_vec();
        sorted.sort_unstable();
        let min = sorted[0];
        let max = sorted[count - 1];
        let mean = sorted.iter().map(|&d| d as f64).sum::<f64>() / count as f64;
        let median = if count % 2 == 1 {
            sorted[count / 2] as f64
        } else {
            (sorted[count / 2 - 1] as f64 + sorted[count / 2] as f64) / 2.0
        };
        let isolated = sorted.iter().take_while(|&&d| d == 0).count();
        Self {
            count,
            min,
            max,
            mean,
            median,
            isolated,
        }
    }
}

impl fmt::Display for DegreeStats {
    /// One line, e.g. `n=3 min=0 max=4 mean=2.00 median=2.0 isolated=1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} min={} max={} mean={:.2} median={:.1} isolated={}",
            self.count, self.min, self.max, self.mean, self.median, self.isolated
        )
    }
}

fn prefix_sum(v: &mut [usize]) {
    let mut acc = 0;
    for x in v.iter_mut() {
        acc += *x;
        *x = acc;
    }
}

fn csr(
    shape: (usize, usize),
    indptr: Vec<usize>,
    indices: Vec<usize>,
    data: Vec<f32>,
) -> Result<CsMat<f32>> {
    CsMat::try_new(shape, indptr, indices, data).map_err(|(_, _, _, e)| {
        GraphError::SparseStructure {
            reason: e.to_string(),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use approx::{abs_diff_eq, assert_abs_diff_eq};
    use ndarray::Array2;

    fn assert_close(a: &Array2<f32>, b: &Array2<f32>, eps: f32) {
        assert_eq!(a.shape(), b.shape());
        for (x, y) in a.iter().zip(b.iter()) {
            assert!(abs_diff_eq!(x, y, epsilon = eps), "{a:?}\n!=\n{b:?}");
        }
    }

    /// users 0,1; items 0,1,2; edges u0-i0, u0-i1, u1-i1, u1-i2, u1-i0.
    fn small() -> BipartiteGraph {
        BipartiteGraph::from_edges(3, 4, [(0, 0), (0, 1), (1, 1), (1, 2), (1, 0)]).unwrap()
    }

    #[test]
    fn hand_computed_normalised_values() {
        // 2 users, 3 items: u0-{i0,i1}, u1-{i1,i2}.
        // degrees: u0=2, u1=2, i0=1, i1=2, i2=1.
        let g = BipartiteGraph::from_edges(2, 3, [(0, 0), (0, 1), (1, 1), (1, 2)]).unwrap();
        assert_eq!(g.n_nodes(), 5);
        assert_eq!(g.n_edges(), 4);
        assert_eq!(g.degrees(), vec![2, 2, 1, 2, 1]);
        let a = g.normalized().unwrap().to_dense();
        let h = 1.0 / 2f32.sqrt();
        #[rustfmt::skip]
        let expected = ndarray::arr2(&[
            // u0   u1   i0   i1   i2
            [0.0, 0.0, h,   0.5, 0.0], // u0
            [0.0, 0.0, 0.0, 0.5, h  ], // u1
            [h,   0.0, 0.0, 0.0, 0.0], // i0
            [0.5, 0.5, 0.0, 0.0, 0.0], // i1
            [0.0, h,   0.0, 0.0, 0.0], // i2
        ]);
        assert_close(&a, &expected, 1e-7);
    }

    #[test]
    fn node_numbering() {
        let g = small();
        assert_eq!(g.user_node(2).unwrap(), 2);
        assert_eq!(g.item_node(0).unwrap(), 3);
        assert_eq!(g.item_node(3).unwrap(), 6);
        assert!(matches!(
            g.user_node(3),
            Err(GraphError::NodeOutOfRange {
                kind: NodeKind::User,
                id: 3,
                n: 3
            })
        ));
        assert!(matches!(
            g.item_node(4),
            Err(GraphError::NodeOutOfRange {
                kind: NodeKind::Item,
                ..
            })
        ));
        assert_eq!(g.node_id(4), Some((NodeKind::Item, 1)));
        assert_eq!(g.node_id(1), Some((NodeKind::User, 1)));
        assert_eq!(g.node_id(7), None);
        assert_eq!(g.items_of(1).unwrap(), &[0, 1, 2]);
        assert_eq!(g.items_of(2).unwrap(), &[] as &[usize]);
    }

    #[test]
    fn isolated_nodes_give_zero_rows_not_nan() {
        // user 2 and item 3 have no interactions.
        let g = small();
        let a = g.normalized().unwrap();
        assert!(a.data().iter().all(|v| v.is_finite() && *v > 0.0));
        let dense = a.to_dense();
        for node in [2, 6] {
            assert!(dense.row(node).iter().all(|&v| v == 0.0));
            assert!(dense.column(node).iter().all(|&v| v == 0.0));
        }
        assert_eq!(g.inv_sqrt_degrees()[2], 0.0);
        assert_eq!(g.inv_sqrt_degrees()[6], 0.0);
        // A graph with no edges at all.
        let empty = BipartiteGraph::from_edges(2, 2, []).unwrap();
        let a = empty.normalized().unwrap();
        assert_eq!(a.nnz(), 0);
        assert_eq!(a.shape(), (4, 4));
    }

    #[test]
    fn normalised_is_symmetric() {
        let a = small().normalized().unwrap();
        let t = a.transpose_view().to_csr();
        assert_eq!(a, t);
    }

    #[test]
    fn out_of_range_edges_are_named() {
        let err = BipartiteGraph::from_edges(2, 2, [(0, 0), (1, 1), (2, 0)]).unwrap_err();
        assert!(matches!(
            err,
            GraphError::EdgeOutOfRange {
                edge: 2,
                user: 2,
                item: 0,
                kind: NodeKind::User,
                id: 2,
                n: 2
            }
        ));
        assert!(err.to_string().contains("edge #2"));
        let err = BipartiteGraph::from_edges(2, 2, [(0, 5)]).unwrap_err();
        assert!(matches!(
            err,
            GraphError::EdgeOutOfRange {
                kind: NodeKind::Item,
                id: 5,
                ..
            }
        ));
    }

    #[test]
    fn duplicates_collapse() {
        let g = BipartiteGraph::from_edges(2, 2, [(0, 1), (0, 1), (1, 0), (0, 1)]).unwrap();
        assert_eq!(g.n_edges(), 2);
        assert!(g.adjacency().data().iter().all(|&v| v == 1.0));
    }

    #[test]
    fn interactions_and_adjacency_agree() {
        let g = small();
        let r = g.interactions().to_dense();
        let a = g.adjacency().to_dense();
        let (u, i) = (g.n_users(), g.n_items());
        for x in 0..u {
            for y in 0..i {
                assert_eq!(r[[x, y]], a[[x, u + y]]);
                assert_eq!(r[[x, y]], a[[u + y, x]]);
            }
        }
    }

    #[test]
    fn degree_stats() {
        let g = small();
        assert_eq!(g.user_degrees(), vec![2, 3, 0]);
        assert_eq!(g.item_degrees(), vec![2, 2, 1, 0]);
        let s = g.user_degree_stats();
        assert_eq!((s.count, s.min, s.max, s.isolated), (3, 0, 3, 1));
        assert_abs_diff_eq!(s.mean, 5.0 / 3.0);
        assert_abs_diff_eq!(s.median, 2.0);
        let s = g.item_degree_stats();
        assert_abs_diff_eq!(s.median, 1.5);
        assert_eq!(
            s.to_string(),
            "n=4 min=0 max=2 mean=1.25 median=1.5 isolated=1"
        );
        let e = DegreeStats::from_degrees(&[]);
        assert_eq!((e.count, e.min, e.max, e.isolated), (0, 0, 0, 0));
        assert_eq!(e.mean, 0.0);
    }

    #[test]
    fn degree_stats_serialize_fields() {
        // serde derive: field names are part of the report format.
        fn assert_serialize<T: Serialize>() {}
        assert_serialize::<DegreeStats>();
    }

    #[test]
    fn coo_export_is_row_major_sorted() {
        let g = small();
        let coo = g.normalized_coo().unwrap();
        assert_eq!(coo.n, 7);
        assert_eq!(coo.nnz(), 10);
        assert!(coo.is_sorted_unique());
        let dense = g.normalized().unwrap().to_dense();
        for k in 0..coo.nnz() {
            let (r, c) = (coo.rows[k] as usize, coo.cols[k] as usize);
            assert_eq!(coo.values[k], dense[[r, c]]);
        }
        assert_close(&coo.to_dense().unwrap(), &dense, 0.0);
    }
}
