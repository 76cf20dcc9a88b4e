//! Property tests of the bipartite graph and its normalisation.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashSet;

use approx::abs_diff_eq;
use graft_graph::{BipartiteGraph, GraphError, NodeKind};
use ndarray::{Array1, Array2};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Regressions go next to this file (`bipartite_props.proptest-regressions`).
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// `(n_users, n_items, edges)` with possibly isolated nodes and duplicates.
fn graph_input() -> impl Strategy<Value = (usize, usize, Vec<(u32, u32)>)> {
    (1usize..15, 1usize..15).prop_flat_map(|(nu, ni)| {
        (
            Just(nu),
            Just(ni),
            prop::collection::vec((0..nu as u32, 0..ni as u32), 0..60),
        )
    })
}

/// Like [`graph_input`] but every user and item has at least one edge.
fn connected_input() -> impl Strategy<Value = (usize, usize, Vec<(u32, u32)>)> {
    graph_input().prop_map(|(nu, ni, mut edges)| {
        edges.extend((0..nu).map(|u| (u as u32, (u % ni) as u32)));
        edges.extend((0..ni).map(|i| ((i % nu) as u32, i as u32)));
        (nu, ni, edges)
    })
}

/// Obviously correct dense reference: D^-1/2 A D^-1/2 by loops.
fn dense_reference(nu: usize, ni: usize, edges: &[(u32, u32)]) -> Array2<f64> {
    let n = nu + ni;
    let mut a = Array2::<f64>::zeros((n, n));
    for &(u, i) in edges {
        a[[u as usize, nu + i as usize]] = 1.0;
        a[[nu + i as usize, u as usize]] = 1.0;
    }
    let d: Vec<f64> = (0..n).map(|v| a.row(v).sum()).collect();
    for v in 0..n {
        for w in 0..n {
            if a[[v, w]] != 0.0 {
                a[[v, w]] /= (d[v] * d[w]).sqrt();
            }
        }
    }
    a
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn normalised_matches_dense_reference((nu, ni, edges) in graph_input()) {
        let g = BipartiteGraph::from_edges(nu, ni, edges.iter().copied()).unwrap();
        let a = g.normalized().unwrap().to_dense();
        let r = dense_reference(nu, ni, &edges);
        for (x, y) in a.iter().zip(r.iter()) {
            prop_assert!(abs_diff_eq!(f64::from(*x), *y, epsilon = 1e-6));
        }
    }

    #[test]
    fn normalised_is_symmetric_finite_in_unit_interval((nu, ni, edges) in graph_input()) {
        let g = BipartiteGraph::from_edges(nu, ni, edges).unwrap();
        let a = g.normalized().unwrap();
        prop_assert!(a.data().iter().all(|v| v.is_finite() && *v > 0.0 && *v <= 1.0));
        let d = a.to_dense();
        prop_assert_eq!(&d, &d.t().to_owned());
        prop_assert_eq!(a.nnz(), 2 * g.n_edges());
        // Every row's indices are sorted and unique.
        for row in a.outer_iterator() {
            let idx = row.indices();
            prop_assert!(idx.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn degrees_count_distinct_neighbours((nu, ni, edges) in graph_input()) {
        let g = BipartiteGraph::from_edges(nu, ni, edges.iter().copied()).unwrap();
        let distinct: HashSet<(u32, u32)> = edges.iter().copied().collect();
        let mut du = vec![0usize; nu];
        let mut di = vec![0usize; ni];
        for &(u, i) in &distinct {
            du[u as usize] += 1;
            di[i as usize] += 1;
        }
        prop_assert_eq!(g.user_degrees(), du.clone());
        prop_assert_eq!(g.item_degrees(), di.clone());
        prop_assert_eq!(g.n_edges(), distinct.len());
        let a = g.normalized().unwrap();
        let row_nnz: Vec<usize> = a.outer_iterator().map(|r| r.nnz()).collect();
        let expected: Vec<usize> = du.iter().chain(&di).copied().collect();
        prop_assert_eq!(row_nnz, expected);
        let us = g.user_degree_stats();
        prop_assert_eq!(us.count, nu);
        prop_assert_eq!(us.isolated, du.iter().filter(|&&d| d == 0).count());
        prop_assert_eq!(us.max, du.iter().copied().max().unwrap_or(0));
        prop_assert!(us.min as f64 <= us.median && us.median <= us.max as f64);
        prop_assert!(us.min as f64 <= us.mean && us.mean <= us.max as f64);
    }

    #[test]
    fn duplicates_and_order_do_not_matter((nu, ni, edges) in graph_input(), seed in any::<u64>()) {
        let g = BipartiteGraph::from_edges(nu, ni, edges.iter().copied()).unwrap();
        let mut more = edges.clone();
        more.extend(edges.iter().rev().copied());
        // A deterministic shuffle.
        let mut s = seed | 1;
        for k in (1..more.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            more.swap(k, (s % (k as u64 + 1)) as usize);
        }
        let h = BipartiteGraph::from_edges(nu, ni, more).unwrap();
        prop_assert_eq!(g.adjacency(), h.adjacency());
        prop_assert_eq!(g.normalized().unwrap(), h.normalized().unwrap());
        prop_assert_eq!(g.normalized_coo().unwrap(), h.normalized_coo().unwrap());
    }

    #[test]
    fn sqrt_degree_is_eigenvector((nu, ni, edges) in connected_input()) {
        let g = BipartiteGraph::from_edges(nu, ni, edges).unwrap();
        prop_assert!(g.degrees().iter().all(|&d| d > 0));
        let a = g.normalized().unwrap();
        let s: Array1<f32> = g.degrees().iter().map(|&d| (d as f32).sqrt()).collect();
        let as_ = &a * &s;
        for (x, y) in as_.iter().zip(s.iter()) {
            prop_assert!(abs_diff_eq!(x, y, epsilon = 1e-5 * y.max(1.0)));
        }
    }

    #[test]
    fn coo_round_trips((nu, ni, edges) in graph_input()) {
        let g = BipartiteGraph::from_edges(nu, ni, edges).unwrap();
        let coo = g.normalized_coo().unwrap();
        prop_assert!(coo.is_sorted_unique());
        prop_assert!(coo.validate().is_ok());
        prop_assert_eq!(coo.n, nu + ni);
        prop_assert_eq!(coo.to_dense().unwrap(), g.normalized().unwrap().to_dense());
    }

    #[test]
    fn out_of_range_edge_is_reported(
        (nu, ni, mut edges) in graph_input(),
        pos in any::<prop::sample::Index>(),
        user_side in any::<bool>(),
    ) {
        let k = pos.index(edges.len() + 1);
        let bad = if user_side { (nu as u32, 0) } else { (0, ni as u32 + 3) };
        edges.insert(k, bad);
        let err = BipartiteGraph::from_edges(nu, ni, edges).unwrap_err();
        match err {
            GraphError::EdgeOutOfRange { edge, kind, id, n, .. } => {
                prop_assert_eq!(edge, k);
                if user_side {
                    prop_assert_eq!((kind, id, n), (NodeKind::User, nu as u32, nu));
                } else {
                    prop_assert_eq!((kind, id, n), (NodeKind::Item, ni as u32 + 3, ni));
                }
            }
            other => prop_assert!(false, "unexpected error {other}"),
        }
    }
}
