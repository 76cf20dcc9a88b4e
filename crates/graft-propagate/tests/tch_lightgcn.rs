//! The libtorch LightGCN backend as a differentiable layer: gradients to
//! `E0`, trainable and frozen `GraphEmbedding`, dtype/device errors.

#![cfg(feature = "tch")]
#![allow(clippy::unwrap_used, clippy::panic)]

use graft_graph::BipartiteGraph;
use graft_propagate::bench::power_law_graph;
use graft_propagate::ndarray::Array2;
use graft_propagate::tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};
use graft_propagate::{
    normal_embeddings, propagate_tensor, DenseReference, GraphEmbedding, LayerCombine,
    LightGcnConfig, PropagateError, Propagator, RustCsr, SparseLayout, TchPropagator,
};

fn to_tensor(a: &Array2<f32>) -> Tensor {
    let (r, c) = a.dim();
    Tensor::from_slice(a.as_slice().unwrap()).view([r as i64, c as i64])
}

fn to_array(t: &Tensor) -> Array2<f32> {
    let s = t.size();
    let v = Vec::<f32>::try_from(t.to(Device::Cpu).contiguous().view([-1])).unwrap();
    Array2::from_shape_vec((s[0] as usize, s[1] as usize), v).unwrap()
}

fn graph() -> BipartiteGraph {
    power_law_graph(120, 80, 5, 1.0, 4).unwrap()
}

/// d/dE0 of sum(out * G) is sum_l w_l Â^l G (Â symmetric): the same
/// propagation applied to G. Checked against the dense reference.
#[test]
fn gradient_is_the_propagation_of_the_upstream_gradient() {
    let g = graph();
    let adj = g.normalized().unwrap();
    let dense = DenseReference::new(&adj).unwrap();
    let up = normal_embeddings(g.n_nodes(), 12, 1.0, 99);
    for layout in [SparseLayout::Coo, SparseLayout::Csr] {
        let k = TchPropagator::new(&adj, layout, Device::Cpu).unwrap();
        for combine in [
            LayerCombine::Mean,
            LayerCombine::Weighted(vec![0.3, -0.5, 1.0, 2.0]),
        ] {
            let e0 = to_tensor(&normal_embeddings(g.n_nodes(), 12, 0.1, 1)).set_requires_grad(true);
            let out = k.forward(&e0, 3, &combine).unwrap();
            (out * to_tensor(&up)).sum(Kind::Float).backward();
            let grad = to_array(&e0.grad());
            let want = dense.propagate(up.view(), 3, &combine).unwrap();
            for (a, b) in grad.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1e-2),
                    "{layout:?} {combine:?}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn graph_embedding_trains_and_freezes() {
    let g = graph();
    let adj = g.normalized().unwrap();
    let cfg = LightGcnConfig {
        dim: 8,
        layers: 2,
        sigma: 0.1,
        seed: 5,
        combine: LayerCombine::Mean,
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let mut emb =
        GraphEmbedding::new(&vs.root().sub("graph"), &adj, SparseLayout::Coo, &cfg).unwrap();
    // E0 is the seeded init, stored as "graph.e0".
    let init = cfg.initial_embeddings(g.n_nodes()).unwrap();
    assert_eq!(to_array(emb.e0()), init);
    assert!(vs.variables().contains_key("graph.e0"));
    // Forward equals the plain propagation of the same E0.
    let want = DenseReference::new(&adj)
        .unwrap()
        .propagate(init.view(), 2, &LayerCombine::Mean)
        .unwrap();
    let got = to_array(&emb.forward().unwrap().detach());
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-6);
    }
    // One optimiser step on a loss pulling node 0 towards ones moves E0.
    let mut opt = nn::Sgd::default().build(&vs, 0.5).unwrap();
    let loss = (emb.forward().unwrap().get(0) - 1.0)
        .square()
        .sum(Kind::Float);
    opt.backward_step(&loss);
    let after = to_array(emb.e0());
    assert_ne!(after, init);
    // Frozen: no gradient reaches E0, the step changes nothing.
    emb.set_trainable(false);
    let frozen = to_array(emb.e0());
    let out = emb.forward().unwrap();
    assert!(!out.requires_grad());
    let mut opt = nn::Sgd::default().build(&vs, 0.5).unwrap();
    opt.zero_grad();
    opt.step();
    assert_eq!(to_array(emb.e0()), frozen);
}

#[test]
fn typed_errors_for_tensors() {
    let g = graph();
    let k = TchPropagator::new(&g.normalized().unwrap(), SparseLayout::Csr, Device::Cpu).unwrap();
    let n = g.n_nodes() as i64;
    let cases: Vec<(Tensor, &str)> = vec![
        (
            Tensor::zeros([n - 1, 4], (Kind::Float, Device::Cpu)),
            "rows",
        ),
        (Tensor::zeros([n, 4, 1], (Kind::Float, Device::Cpu)), "rank"),
        (Tensor::zeros([n, 4], (Kind::Double, Device::Cpu)), "dtype"),
    ];
    for (t, what) in cases {
        match k.forward(&t, 2, &LayerCombine::Mean) {
            Err(PropagateError::DimMismatch { .. }) if what != "dtype" => {}
            Err(PropagateError::Config {
                field: "E0 dtype", ..
            }) if what == "dtype" => {}
            other => panic!("{what}: unexpected {other:?}"),
        }
    }
    let bad = Tensor::zeros([n, 4], (Kind::Float, Device::Cpu));
    let _ = bad.get(5).get(3).fill_(f64::INFINITY);
    match k.forward(&bad, 2, &LayerCombine::Mean) {
        Err(PropagateError::NonFinite {
            what: "E0",
            row: 5,
            col: 3,
            value,
        }) => assert!(value.is_infinite()),
        other => panic!("expected NonFinite at (5, 3), got {other:?}"),
    }
}

#[cfg(feature = "cuda-tests")]
#[test]
fn cuda_gradient_matches_cpu() {
    assert!(
        tch::Cuda::is_available(),
        "cuda-tests enabled but CUDA is not available"
    );
    let g = graph();
    let adj = g.normalized().unwrap();
    let e0 = normal_embeddings(g.n_nodes(), 16, 0.1, 1);
    let cpu = TchPropagator::new(&adj, SparseLayout::Coo, Device::Cpu).unwrap();
    let want = cpu.propagate(e0.view(), 3, &LayerCombine::Mean).unwrap();
    for layout in [SparseLayout::Coo, SparseLayout::Csr] {
        let k = TchPropagator::new(&adj, layout, Device::Cuda(0)).unwrap();
        let x = to_tensor(&e0).to(Device::Cuda(0)).set_requires_grad(true);
        let out = k.forward(&x, 3, &LayerCombine::Mean).unwrap();
        out.sum(Kind::Float).backward();
        assert!(x.grad().defined());
        let got = to_array(&out.detach());
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1e-2));
        }
        // Device mismatch is a typed error.
        let on_cpu = to_tensor(&e0);
        assert!(matches!(
            k.forward(&on_cpu, 1, &LayerCombine::Mean),
            Err(PropagateError::Config {
                field: "E0 device",
                ..
            })
        ));
    }
}

/// `propagate_tensor` runs a pure-Rust kernel on a tensor: the values of
/// the dense reference and of libtorch's product, no autograd history, and
/// typed errors for what it cannot take.
#[test]
fn propagate_tensor_matches_libtorch_and_refuses_what_it_cannot_take() {
    let g = graph();
    let adj = g.normalized().unwrap();
    let rust = RustCsr::new(&adj).unwrap().with_threads(2).unwrap();
    let dense = DenseReference::new(&adj).unwrap();
    let torch = TchPropagator::new(&adj, SparseLayout::Csr, Device::Cpu).unwrap();
    let e0 = normal_embeddings(g.n_nodes(), 20, 0.5, 3);
    let x = to_tensor(&e0).set_requires_grad(true);
    for combine in [
        LayerCombine::Mean,
        LayerCombine::Weighted(vec![0.3, -0.5, 1.0, 2.0]),
    ] {
        let out = propagate_tensor(&rust, &x, 3, &combine).unwrap();
        assert_eq!(out.size(), vec![g.n_nodes() as i64, 20]);
        let want = dense.propagate(e0.view(), 3, &combine).unwrap();
        let lib = to_array(&torch.forward(&x, 3, &combine).unwrap().detach());
        for ((a, b), c) in to_array(&out).iter().zip(&want).zip(&lib) {
            assert!((a - b).abs() < 1e-5 && (a - c).abs() < 1e-5, "{a} {b} {c}");
        }
    }
    // A transposed (non-contiguous) view and a narrowed one read the same
    // values; zero columns give zero columns.
    let mean = LayerCombine::Mean;
    let want = to_array(&propagate_tensor(&rust, &x, 2, &mean).unwrap());
    let t = to_tensor(&e0).tr().contiguous().tr();
    assert!(!t.is_contiguous());
    let got = to_array(&propagate_tensor(&rust, &t, 2, &mean).unwrap());
    assert!(got.iter().zip(&want).all(|(a, b)| a == b));
    let wide = Tensor::cat(&[to_tensor(&e0), to_tensor(&e0)], 1).narrow(1, 20, 20);
    let got = to_array(&propagate_tensor(&rust, &wide, 2, &mean).unwrap());
    assert!(got.iter().zip(&want).all(|(a, b)| a == b));
    let none = Tensor::zeros([g.n_nodes() as i64, 0], (Kind::Float, Device::Cpu));
    let out = propagate_tensor(&rust, &none, 2, &mean).unwrap();
    assert_eq!(out.size(), vec![g.n_nodes() as i64, 0]);
    let err = |t: &Tensor| propagate_tensor(&rust, t, 2, &mean).unwrap_err();
    assert!(matches!(
        err(&to_tensor(&e0).view([-1])),
        PropagateError::DimMismatch {
            expected: 2,
            got: 1,
            ..
        }
    ));
    assert!(matches!(
        err(&to_tensor(&e0).to_kind(Kind::Double)),
        PropagateError::Config {
            field: "tensor",
            ..
        }
    ));
    let short = Tensor::zeros([3, 20], (Kind::Float, Device::Cpu));
    assert!(matches!(err(&short), PropagateError::DimMismatch { .. }));
    let bad = to_tensor(&e0);
    let _ = bad.get(5).get(7).fill_(f64::NAN);
    assert!(matches!(
        err(&bad),
        PropagateError::NonFinite { row: 5, col: 7, .. }
    ));
}
