//! libtorch bridge: the COO export becomes a coalesced sparse tensor whose
//! product with a dense matrix matches sprs CSR x ndarray. Also proves the
//! libtorch set-up links and runs (RPATH from build.rs).
#![cfg(feature = "tch")]
#![allow(clippy::unwrap_used, clippy::panic)]

use approx::abs_diff_eq;
use graft_graph::{BipartiteGraph, Coo, HeteroBatch, Relation, SampleGraph, SampleGraphOptions};
use ndarray::Array2;
use tch::{Device, Kind, Tensor};

/// Deterministic pseudo-random numbers in [-1, 1).
fn uniform(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn test_graph() -> BipartiteGraph {
    let (nu, ni) = (40usize, 30usize);
    let mut r = uniform(7);
    // ~150 random edges; users 38, 39 and items 28, 29 stay isolated.
    let edges: Vec<(u32, u32)> = (0..150)
        .map(|_| {
            let u = ((r() + 1.0) / 2.0 * 38.0) as u32;
            let i = ((r() + 1.0) / 2.0 * 28.0) as u32;
            (u.min(37), i.min(27))
        })
        .collect();
    BipartiteGraph::from_edges(nu, ni, edges).unwrap()
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.f_flatten(0, -1).unwrap().f_to(Device::Cpu).unwrap()).unwrap()
}

fn check_spmm(device: Device) {
    let g = test_graph();
    let n = g.n_nodes();
    let coo = g.normalized_coo().unwrap();
    let a = coo.to_tch(device).unwrap();
    assert_eq!(a.size(), vec![n as i64, n as i64]);
    assert!(a.is_coalesced());
    assert_eq!(a.f_internal_nnz().unwrap(), coo.nnz() as i64);

    let d = 16;
    let mut r = uniform(42);
    let x = Array2::from_shape_fn((n, d), |_| r());
    let xt = Tensor::from_slice(x.as_slice().unwrap())
        .view([n as i64, d as i64])
        .to(device);
    let y = a.mm(&xt);
    assert_eq!(y.size(), vec![n as i64, d as i64]);
    let reference = &g.normalized().unwrap() * &x;
    let got = to_vec(&y);
    assert_eq!(got.len(), reference.len());
    for (p, q) in got.iter().zip(reference.iter()) {
        assert!(abs_diff_eq!(p, q, epsilon = 1e-5), "{p} vs {q}");
    }
    // Isolated nodes (user 39, item 29) propagate nothing.
    for node in [39, n - 1] {
        assert!(got[node * d..(node + 1) * d].iter().all(|&v| v == 0.0));
    }
}

#[test]
fn sparse_mm_matches_sprs_on_cpu() {
    check_spmm(Device::Cpu);
}

/// Opt-in (`--features cuda-tests`, on a GPU machine): fails rather than
/// skips when CUDA is missing, so a green run never pretends to cover CUDA.
#[cfg(feature = "cuda-tests")]
#[test]
fn sparse_mm_matches_sprs_on_cuda() {
    assert!(
        tch::Cuda::is_available(),
        "cuda-tests enabled but libtorch sees no CUDA device (is libtorch_cuda linked? see graft-build)"
    );
    check_spmm(Device::Cuda(0));
}

#[test]
fn unsorted_coo_is_coalesced_by_torch() {
    // Entries out of order and (0, 1) split in two halves.
    let coo = Coo {
        rows: vec![1, 0, 0, 2],
        cols: vec![0, 1, 1, 2],
        values: vec![3.0, 0.5, 1.5, 4.0],
        n: 3,
    };
    assert!(!coo.is_sorted_unique());
    let t = coo.to_tch(Device::Cpu).unwrap();
    assert!(t.is_coalesced());
    assert_eq!(t.f_internal_nnz().unwrap(), 3);
    let dense = to_vec(&t.to_dense(None, false));
    let expected = coo.to_dense().unwrap();
    assert_eq!(dense, expected.iter().copied().collect::<Vec<_>>());

    let bad = Coo {
        rows: vec![0],
        cols: vec![3],
        values: vec![1.0],
        n: 3,
    };
    assert!(bad.to_tch(Device::Cpu).is_err());
}

#[test]
fn empty_graph_gives_empty_sparse_tensor() {
    let g = BipartiteGraph::from_edges(2, 2, []).unwrap();
    let t = g.normalized_coo().unwrap().to_tch(Device::Cpu).unwrap();
    assert_eq!(t.size(), vec![4, 4]);
    assert_eq!(t.f_internal_nnz().unwrap(), 0);
}

#[test]
fn edge_index_tensor() {
    let opts = SampleGraphOptions::default();
    let graphs = [
        SampleGraph::build(0, 3, &[1, 2], |i| vec![i % 2], &opts),
        SampleGraph::build(1, 4, &[2], |i| vec![i % 2], &opts),
    ];
    let b = HeteroBatch::from_graphs(&graphs).unwrap();
    let list = b.edges(Relation::UserItem);
    let t = list.to_tch(Device::Cpu).unwrap();
    assert_eq!(t.size(), vec![2, list.len() as i64]);
    assert_eq!(t.kind(), Kind::Int64);
    let flat = Vec::<i64>::try_from(&t.flatten(0, -1)).unwrap();
    assert_eq!(flat, list.edge_index_flat());
}
