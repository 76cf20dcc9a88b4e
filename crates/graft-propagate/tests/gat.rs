//! Heterogeneous GAT: the libtorch network against the `f64` loop
//! reference ([`GatWeights::forward`]) on random batches of per-sample
//! graphs, graph isolation, zero-in-degree destinations, dropout modes,
//! typed errors, autograd against finite differences, weight export, the
//! benchmark helpers, and (opt-in) CUDA and the Python peer.
#![cfg(feature = "tch")]
#![allow(clippy::unwrap_used, clippy::panic)]

use graft_graph::{HeteroBatch, NodeKind, Relation, SampleGraph, SampleGraphOptions};
use graft_propagate::exchange::{read_safetensors_map, ArrayData};
use graft_propagate::gat::bench::{
    export_batch, export_golden, random_features, synthetic_batch, train_step_throughput,
};
use graft_propagate::gat::{
    array2_to_tensor, tensor_to_array2, GatActivation, GatBatch, GatLayerSpec, GatWeights,
    HeteroGat, HeteroGatConfig,
};
use graft_propagate::PropagateError;
use ndarray::Array2;
use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::{Mutex, MutexGuard};
use tch::{nn, Device, Kind, Tensor};

// ---------------------------------------------------------------- helpers

/// libtorch has one global CPU generator and the test harness runs tests
/// on several threads: whoever seeds it with [`tch::manual_seed`], and
/// whoever draws from it (parameter initialisation, dropout), holds this
/// lock, so a seeded section is not interleaved with another test's draws.
fn global_rng() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn below(r: &mut ChaCha8Rng, n: u64) -> u64 {
    r.next_u64() % n
}

/// Item `i` has `(7 i + 3) % 4` features (0 to 3, so some items have none)
/// out of 11 ids.
fn item_features(i: u32) -> Vec<u32> {
    let n = (7 * i + 3) % 4;
    (0..n).map(|j| (13 * i + 5 * j) % 11).collect()
}

/// `n` random sample graphs: histories of length 0, 1, 2, 3, 5 or 8 over
/// 30 item ids (repeats allowed), random targets.
fn random_graphs(seed: u64, n: usize, opts: &SampleGraphOptions) -> Vec<SampleGraph> {
    let mut r = rng(seed);
    (0..n)
        .map(|g| {
            let len = [0usize, 1, 2, 3, 5, 8][below(&mut r, 6) as usize];
            let history: Vec<u32> = (0..len).map(|_| below(&mut r, 30) as u32).collect();
            let target = below(&mut r, 30) as u32;
            SampleGraph::build(g as u32, target, &history, item_features, opts)
        })
        .collect()
}

fn random_batch(seed: u64, n: usize, connect_target: bool) -> HeteroBatch {
    let opts = SampleGraphOptions::default().with_connect_target_to_user(connect_target);
    HeteroBatch::from_graphs(&random_graphs(seed, n, &opts)).unwrap()
}

/// A network with [`GatWeights::random`] weights (non-zero biases).
fn network(
    cfg: &HeteroGatConfig,
    kind: Kind,
    device: Device,
    seed: u64,
) -> (nn::VarStore, HeteroGat, GatWeights) {
    let mut vs = nn::VarStore::new(device);
    let gat = {
        let _rng = global_rng();
        HeteroGat::new(&vs.root().sub("gat"), cfg.clone()).unwrap()
    };
    if kind == Kind::Double {
        vs.double();
    }
    let w = GatWeights::random(cfg, seed).unwrap();
    gat.load_weights(&w).unwrap();
    (vs, gat, w)
}

fn arrays(x: &[Tensor; 3]) -> [Array2<f64>; 3] {
    [
        tensor_to_array2(&x[0]).unwrap(),
        tensor_to_array2(&x[1]).unwrap(),
        tensor_to_array2(&x[2]).unwrap(),
    ]
}

fn small_cfg() -> HeteroGatConfig {
    HeteroGatConfig::new([5, 4, 3]).with_layers([GatLayerSpec::new(3, 4), GatLayerSpec::new(2, 3)])
}

/// `|got - want| <= atol + rtol |want|` everywhere, with the worst entry in
/// the message.
fn assert_close(got: &Array2<f64>, want: &Array2<f64>, rtol: f64, atol: f64, what: &str) {
    assert_eq!(got.dim(), want.dim(), "{what}: shapes");
    let mut worst = (0.0, (0, 0));
    for ((i, g), w) in got.indexed_iter().zip(want.iter()) {
        let excess = (g - w).abs() - (atol + rtol * w.abs());
        if excess > worst.0 {
            worst = (excess, i);
        }
    }
    let (r, c) = worst.1;
    assert!(
        worst.0 <= 0.0,
        "{what}: entry ({r}, {c}) got {} want {}",
        got[[r, c]],
        want[[r, c]]
    );
}

/// The tch forward (eval) on `device` against the reference.
fn check_against_reference(
    cfg: &HeteroGatConfig,
    batch: &HeteroBatch,
    kind: Kind,
    device: Device,
    seed: u64,
    rtol: f64,
    atol: f64,
) {
    let (_vs, gat, w) = network(cfg, kind, device, seed);
    let x = random_features(batch, cfg.in_dims, kind, device, seed + 1).unwrap();
    let gb = GatBatch::new(batch, device).unwrap();
    let out = gat.forward_t(&x, &gb, false).unwrap();
    let want = w.forward(batch, &arrays(&x)).unwrap();
    for k in NodeKind::ALL {
        let got = tensor_to_array2(&out[k.index()]).unwrap();
        assert_eq!(got.dim(), (batch.nodes(k).len(), cfg.out_dim()));
        assert_close(&got, &want[k.index()], rtol, atol, k.name());
    }
}

// ------------------------------------------------- forward vs. reference

#[test]
fn forward_matches_reference_f32_elcorec_layers() {
    let cfg = HeteroGatConfig::new([16, 12, 8]);
    for (seed, connect) in [(1, true), (2, false), (3, true)] {
        let batch = random_batch(seed, 12, connect);
        check_against_reference(&cfg, &batch, Kind::Float, Device::Cpu, seed, 1e-4, 1e-5);
    }
}

#[test]
fn identity_activation_matches_reference_and_differs_from_elu() {
    let identity = small_cfg().with_activation(GatActivation::Identity);
    let batch = random_batch(4, 9, true);
    check_against_reference(
        &identity,
        &batch,
        Kind::Double,
        Device::Cpu,
        40,
        1e-10,
        1e-12,
    );
    let x = random_features(&batch, identity.in_dims, Kind::Double, Device::Cpu, 41).unwrap();
    let x = arrays(&x);
    let w = GatWeights::random(&identity, 42).unwrap();
    let mut elu = w.clone();
    elu.config.activation = GatActivation::Elu;
    let (a, b) = (
        w.forward(&batch, &x).unwrap(),
        elu.forward(&batch, &x).unwrap(),
    );
    let diff = (&a[1] - &b[1]).mapv(f64::abs).sum();
    assert!(diff > 1e-6, "the activation changes nothing ({diff})");
}

#[test]
fn forward_matches_reference_f64() {
    let three = small_cfg().with_layers([
        GatLayerSpec::new(3, 4),
        GatLayerSpec::new(2, 3),
        GatLayerSpec::new(1, 2),
    ]);
    for (cfg, seed, connect) in [
        (small_cfg(), 10, true),
        (small_cfg(), 11, false),
        (three, 12, true),
    ] {
        let batch = random_batch(seed, 9, connect);
        check_against_reference(&cfg, &batch, Kind::Double, Device::Cpu, seed, 1e-10, 1e-12);
    }
}

#[test]
fn negative_slope_is_applied() {
    // Slope 0 (ReLU) and 1 (no non-linearity) are the extremes.
    for slope in [0.0, 1.0, 0.37] {
        let cfg = small_cfg().with_negative_slope(slope);
        let batch = random_batch(20, 6, true);
        check_against_reference(&cfg, &batch, Kind::Double, Device::Cpu, 21, 1e-10, 1e-12);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Any mix of history lengths, feature counts and target links.
    #[test]
    fn forward_matches_reference_on_arbitrary_batches(
        samples in prop::collection::vec(
            (prop::collection::vec(0u32..20, 0..7), 0u32..20, any::<bool>()),
            1..6,
        ),
        max_features in prop::option::of(0usize..3),
        seed in 0u64..1000,
    ) {
        let graphs: Vec<SampleGraph> = samples
            .iter()
            .enumerate()
            .map(|(g, (history, target, connect))| {
                let opts = SampleGraphOptions::default()
                    .with_connect_target_to_user(*connect)
                    .with_max_features_per_item(max_features);
                SampleGraph::build(g as u32, *target, history, item_features, &opts)
            })
            .collect();
        let batch = HeteroBatch::from_graphs(&graphs).unwrap();
        check_against_reference(&small_cfg(), &batch, Kind::Double, Device::Cpu, seed, 1e-10, 1e-12);
    }
}

#[test]
fn zero_in_degree_destinations_get_bias_only() {
    // Graph 0: no history, target not linked to the user, target item 3
    // has no features: user and target have no incoming edge at all.
    // Graph 1: an ordinary sample.
    let opts = SampleGraphOptions::default().with_connect_target_to_user(false);
    let graphs = [
        SampleGraph::build(0, 3, &[], item_features, &opts),
        SampleGraph::build(1, 2, &[1, 2, 5], item_features, &opts),
    ];
    assert!(item_features(3).is_empty());
    let batch = HeteroBatch::from_graphs(&graphs).unwrap();
    let cfg = small_cfg().with_layers([GatLayerSpec::new(3, 4)]);
    let (_vs, gat, w) = network(&cfg, Kind::Double, Device::Cpu, 30);
    let x = random_features(&batch, cfg.in_dims, Kind::Double, Device::Cpu, 31).unwrap();
    let out = gat
        .forward_t(&x, &GatBatch::new(&batch, Device::Cpu).unwrap(), false)
        .unwrap();
    let bias = |r: Relation| {
        Array2::from_shape_vec((1, 12), w.relation(0, r).unwrap().bias.clone()).unwrap()
    };

    let user = tensor_to_array2(&out[0]).unwrap();
    let items = tensor_to_array2(&out[1]).unwrap();
    // The user only receives item_user messages: none here.
    assert_eq!(user.row(0), bias(Relation::ItemUser).row(0));
    // The target item receives user_item and feature_item: none here.
    let both = bias(Relation::UserItem) + bias(Relation::FeatureItem);
    let target = batch.target_index()[0] as usize;
    assert_close(
        &items.row(target).to_owned().insert_axis(ndarray::Axis(0)),
        &both,
        0.0,
        1e-15,
        "target",
    );
    // Graph 1's user has incoming edges, so it gets more than the bias.
    assert_ne!(user.row(1), bias(Relation::ItemUser).row(0));
    // And the whole output still agrees with the reference.
    let want = w.forward(&batch, &arrays(&x)).unwrap();
    assert_close(&user, &want[0], 1e-10, 1e-12, "user");
    assert_close(&items, &want[1], 1e-10, 1e-12, "item");
}

#[test]
fn batch_without_feature_nodes() {
    // No item has features: the feature block and both item-feature
    // relations are empty.
    let opts = SampleGraphOptions::default().with_max_features_per_item(Some(0));
    let batch = HeteroBatch::from_graphs(&random_graphs(35, 5, &opts)).unwrap();
    assert_eq!(batch.features().len(), 0);
    let cfg = small_cfg();
    let (_vs, gat, w) = network(&cfg, Kind::Double, Device::Cpu, 36);
    let x = random_features(&batch, cfg.in_dims, Kind::Double, Device::Cpu, 37).unwrap();
    let out = gat
        .forward_t(&x, &GatBatch::new(&batch, Device::Cpu).unwrap(), false)
        .unwrap();
    assert_eq!(out[2].size(), [0, 6]);
    let want = w.forward(&batch, &arrays(&x)).unwrap();
    for k in 0..3 {
        assert_close(
            &tensor_to_array2(&out[k]).unwrap(),
            &want[k],
            1e-10,
            1e-12,
            "no features",
        );
    }
}

#[test]
fn messages_never_cross_graphs() {
    let batch = random_batch(40, 8, true);
    let cfg = small_cfg();
    let (_vs, gat, _) = network(&cfg, Kind::Float, Device::Cpu, 41);
    let gb = GatBatch::new(&batch, Device::Cpu).unwrap();
    let x = random_features(&batch, cfg.in_dims, Kind::Float, Device::Cpu, 42).unwrap();
    let before = arrays(&gat.forward_t(&x, &gb, false).unwrap());

    let victim = 3;
    // Perturb every node of graph `victim`, of every type.
    let y = [x[0].copy(), x[1].copy(), x[2].copy()];
    for k in NodeKind::ALL {
        let range = batch.nodes(k).range(victim).unwrap();
        if !range.is_empty() {
            let noise = Tensor::randn(
                [range.len() as i64, cfg.in_dims[k.index()] as i64],
                (Kind::Float, Device::Cpu),
            );
            let _ = y[k.index()]
                .narrow(0, range.start as i64, range.len() as i64)
                .f_add_(&noise)
                .unwrap();
        }
    }
    let after = arrays(&gat.forward_t(&y, &gb, false).unwrap());
    for k in NodeKind::ALL {
        let block = batch.nodes(k);
        for g in 0..batch.n_graphs() {
            for i in block.range(g).unwrap() {
                let same = before[k.index()].row(i) == after[k.index()].row(i);
                if g == victim {
                    assert!(!same, "{k} node {i} of the perturbed graph did not change");
                } else {
                    assert!(same, "{k} node {i} of graph {g} changed (bitwise)");
                }
            }
        }
    }
}

// ---------------------------------------------------------------- modes

fn dropout_cfg() -> HeteroGatConfig {
    small_cfg().with_attn_dropout(0.5).with_feat_dropout(0.2)
}

fn outputs(gat: &HeteroGat, x: &[Tensor; 3], gb: &GatBatch, train: bool) -> [Array2<f64>; 3] {
    arrays(&gat.forward_t(x, gb, train).unwrap())
}

#[test]
fn eval_is_deterministic_and_ignores_dropout() {
    let batch = random_batch(50, 10, true);
    let cfg = dropout_cfg();
    let (_vs, gat, w) = network(&cfg, Kind::Double, Device::Cpu, 51);
    let gb = GatBatch::new(&batch, Device::Cpu).unwrap();
    let x = random_features(&batch, cfg.in_dims, Kind::Double, Device::Cpu, 52).unwrap();
    let a = outputs(&gat, &x, &gb, false);
    let b = outputs(&gat, &x, &gb, false);
    assert_eq!(a, b);
    let want = w.forward(&batch, &arrays(&x)).unwrap();
    for k in 0..3 {
        assert_close(
            &a[k],
            &want[k],
            1e-10,
            1e-12,
            "eval with dropout configured",
        );
    }
}

#[test]
fn train_mode_applies_dropout_reproducibly() {
    let batch = random_batch(60, 10, true);
    let cfg = dropout_cfg();
    let (_vs, gat, _) = network(&cfg, Kind::Float, Device::Cpu, 61);
    let gb = GatBatch::new(&batch, Device::Cpu).unwrap();
    let x = random_features(&batch, cfg.in_dims, Kind::Float, Device::Cpu, 62).unwrap();
    let eval = outputs(&gat, &x, &gb, false);
    let _rng = global_rng();
    tch::manual_seed(7);
    let t1 = outputs(&gat, &x, &gb, true);
    tch::manual_seed(7);
    let t2 = outputs(&gat, &x, &gb, true);
    tch::manual_seed(8);
    let t3 = outputs(&gat, &x, &gb, true);
    assert_ne!(t1, eval);
    assert_eq!(t1, t2);
    assert_ne!(t1, t3);
}

#[test]
fn train_mode_without_dropout_equals_eval() {
    let batch = random_batch(70, 6, false);
    let cfg = small_cfg().with_attn_dropout(0.0).with_feat_dropout(0.0);
    let (_vs, gat, _) = network(&cfg, Kind::Float, Device::Cpu, 71);
    let gb = GatBatch::new(&batch, Device::Cpu).unwrap();
    let x = random_features(&batch, cfg.in_dims, Kind::Float, Device::Cpu, 72).unwrap();
    assert_eq!(outputs(&gat, &x, &gb, true), outputs(&gat, &x, &gb, false));
}

// --------------------------------------------------------------- errors

#[test]
fn wrong_input_shapes_are_typed_errors() {
    let batch = random_batch(80, 4, true);
    let cfg = small_cfg();
    let (_vs, gat, _) = network(&cfg, Kind::Float, Device::Cpu, 81);
    let gb = GatBatch::new(&batch, Device::Cpu).unwrap();
    let x = random_features(&batch, cfg.in_dims, Kind::Float, Device::Cpu, 82).unwrap();
    let n_items = batch.items().len();

    let mut bad = [
        x[0].copy(),
        x[1].narrow(0, 0, n_items as i64 - 1),
        x[2].copy(),
    ];
    match gat.forward_t(&bad, &gb, false) {
        Err(PropagateError::DimMismatch {
            expected,
            got,
            what,
        }) => {
            assert_eq!((expected, got), (n_items, n_items - 1));
            assert!(what.contains("item"), "{what}");
        }
        other => panic!("expected DimMismatch, got {other:?}"),
    }
    bad[1] = x[1].copy();
    bad[2] = Tensor::zeros(
        [batch.features().len() as i64, 4],
        (Kind::Float, Device::Cpu),
    );
    assert!(matches!(
        gat.forward_t(&bad, &gb, false),
        Err(PropagateError::DimMismatch {
            expected: 3,
            got: 4,
            ..
        })
    ));
    bad[2] = Tensor::zeros(
        [batch.features().len() as i64 * 3],
        (Kind::Float, Device::Cpu),
    );
    assert!(matches!(
        gat.forward_t(&bad, &gb, false),
        Err(PropagateError::DimMismatch {
            expected: 2,
            got: 1,
            ..
        })
    ));
    // A batch of another shape with the right widths: rows mismatch.
    let other = GatBatch::new(&random_batch(83, 5, true), Device::Cpu).unwrap();
    assert!(matches!(
        gat.forward_t(&x, &other, false),
        Err(PropagateError::DimMismatch { .. })
    ));
    // Wrong kind: a libtorch error, not a panic.
    let doubles = [
        x[0].to_kind(Kind::Double),
        x[1].to_kind(Kind::Double),
        x[2].to_kind(Kind::Double),
    ];
    assert!(matches!(
        gat.forward_t(&doubles, &gb, false),
        Err(PropagateError::Tch(_))
    ));
}

#[test]
fn non_finite_inputs_report_the_first_position() {
    let batch = random_batch(90, 4, true);
    let cfg = small_cfg();
    let (_vs, gat, w) = network(&cfg, Kind::Float, Device::Cpu, 91);
    let gb = GatBatch::new(&batch, Device::Cpu).unwrap();
    let x = random_features(&batch, cfg.in_dims, Kind::Float, Device::Cpu, 92).unwrap();
    for (k, value) in [
        (1usize, f64::NAN),
        (2, f64::INFINITY),
        (0, f64::NEG_INFINITY),
    ] {
        let y = [x[0].copy(), x[1].copy(), x[2].copy()];
        let _ = y[k].get(2).get(1).fill_(value);
        let _ = y[k].get(3).get(0).fill_(f64::NAN);
        match gat.forward_t(&y, &gb, false) {
            Err(PropagateError::NonFinite {
                row, col, value: v, ..
            }) => {
                assert_eq!((row, col), (2, 1));
                assert_eq!(v.is_nan(), value.is_nan());
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
        match w.forward(&batch, &arrays(&y)) {
            Err(PropagateError::NonFinite { row, col, .. }) => assert_eq!((row, col), (2, 1)),
            other => panic!("reference: expected NonFinite, got {other:?}"),
        }
    }
}

#[test]
fn invalid_configs_are_rejected() {
    let ok = HeteroGatConfig::default();
    ok.validate().unwrap();
    let cases: Vec<(HeteroGatConfig, &str)> = vec![
        (HeteroGatConfig::new([8, 0, 8]), "in_dims"),
        (ok.clone().with_layers(Vec::new()), "layers"),
        (ok.clone().with_layers([GatLayerSpec::new(0, 4)]), "layers"),
        (ok.clone().with_layers([GatLayerSpec::new(2, 0)]), "layers"),
        (ok.clone().with_negative_slope(-0.1), "negative_slope"),
        (ok.clone().with_negative_slope(f64::NAN), "negative_slope"),
        (ok.clone().with_attn_dropout(1.0), "attn_dropout"),
        (ok.clone().with_feat_dropout(-0.5), "feat_dropout"),
    ];
    for (cfg, want) in cases {
        match cfg.validate() {
            Err(PropagateError::Config { field, .. }) => assert_eq!(field, want),
            other => panic!("{cfg:?}: expected Config error, got {other:?}"),
        }
        let vs = nn::VarStore::new(Device::Cpu);
        assert!(matches!(
            HeteroGat::new(&vs.root(), cfg.clone()),
            Err(PropagateError::Config { .. })
        ));
        assert!(GatWeights::random(&cfg, 0).is_err());
    }
}

#[test]
fn config_defaults_and_json() {
    let cfg = HeteroGatConfig::default();
    assert_eq!(cfg.layers, HeteroGatConfig::ELCOREC_LAYERS.to_vec());
    assert_eq!(
        (cfg.negative_slope, cfg.feat_dropout, cfg.attn_dropout),
        (0.2, 0.0, 0.1)
    );
    assert_eq!(cfg.activation, GatActivation::Elu);
    let json =
        serde_json::to_string(&small_cfg().with_activation(GatActivation::Identity)).unwrap();
    assert!(json.contains(r#""activation":"identity""#), "{json}");
    let back: HeteroGatConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, small_cfg().with_activation(GatActivation::Identity));
    let partial: HeteroGatConfig = serde_json::from_str(
        r#"{"in_dims": [4, 4, 2], "layers": [{"heads": 2, "out_per_head": 5}]}"#,
    )
    .unwrap();
    assert_eq!(partial.out_dim(), 10);
    assert_eq!(partial.attn_dropout, 0.1);
}

#[test]
fn load_weights_rejects_other_architectures() {
    let cfg = small_cfg();
    let (_vs, gat, w) = network(&cfg, Kind::Float, Device::Cpu, 100);
    let other = GatWeights::random(&cfg.clone().with_layers([GatLayerSpec::new(3, 4)]), 1).unwrap();
    assert!(matches!(
        gat.load_weights(&other),
        Err(PropagateError::Config { .. })
    ));
    let mut short = w.clone();
    short
        .relation_mut(1, Relation::FeatureItem)
        .unwrap()
        .bias
        .pop();
    assert!(matches!(
        gat.load_weights(&short),
        Err(PropagateError::DimMismatch { .. })
    ));
    let mut swapped = w.clone();
    swapped.layers[0].relations.swap(0, 1);
    assert!(matches!(
        gat.load_weights(&swapped),
        Err(PropagateError::Config { .. })
    ));
    // A failed load leaves the parameters untouched.
    assert!(gat.export_weights().unwrap() == round_f32(&w));
}

fn round_f32(w: &GatWeights) -> GatWeights {
    let mut w = w.clone();
    for l in &mut w.layers {
        for r in &mut l.relations {
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
    w
}

// ------------------------------------------------------ parameters, grads

#[test]
fn parameters_have_stable_pytorch_names_and_round_trip() {
    let cfg = small_cfg();
    let (vs, gat, w) = network(&cfg, Kind::Double, Device::Cpu, 110);
    let names: Vec<String> = gat.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 2 * 4 * 5);
    assert_eq!(
        &names[..5],
        &[
            "gat.layers.0.user_item.lin_src.weight",
            "gat.layers.0.user_item.lin_dst.weight",
            "gat.layers.0.user_item.att_src",
            "gat.layers.0.user_item.att_dst",
            "gat.layers.0.user_item.bias",
        ]
    );
    assert_eq!(names[39], "gat.layers.1.feature_item.bias");
    let store = vs.variables();
    let mut store_names: Vec<&String> = store.keys().collect();
    store_names.sort();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(store_names, sorted.iter().collect::<Vec<_>>());
    assert_eq!(vs.trainable_variables().len(), names.len());
    let n: i64 = gat
        .named_parameters()
        .iter()
        .map(|(_, t)| t.numel() as i64)
        .sum();
    assert_eq!(n as usize, cfg.n_parameters());
    // Shapes in PyTorch layout.
    let p = &store["gat.layers.1.item_feature.lin_src.weight"];
    assert_eq!(p.size(), [6, 12]);
    assert_eq!(
        store["gat.layers.0.user_item.lin_dst.weight"].size(),
        [12, 4]
    );
    assert_eq!(store["gat.layers.0.user_item.att_src"].size(), [3, 4]);
    // f64 export/load is exact, and weights serialise to JSON and back.
    assert_eq!(gat.export_weights().unwrap(), w);
    let back: GatWeights = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
    assert_eq!(back.config, w.config);
    let (a, b) = (flatten(&back), flatten(&w));
    assert_eq!(a.len(), b.len());
    // serde_json's float parsing may be off by an ulp.
    assert!(a
        .iter()
        .zip(&b)
        .all(|(x, y)| (x - y).abs() <= 1e-15 * y.abs().max(1.0)));
}

fn flatten(w: &GatWeights) -> Vec<f64> {
    w.layers
        .iter()
        .flat_map(|l| &l.relations)
        .flat_map(|r| [&r.lin_src, &r.lin_dst, &r.att_src, &r.att_dst, &r.bias])
        .flatten()
        .copied()
        .collect()
}

#[test]
fn gradients_match_finite_differences() {
    let batch = random_batch(120, 4, true);
    let cfg = small_cfg().with_attn_dropout(0.0);
    let (_vs, gat, w) = network(&cfg, Kind::Double, Device::Cpu, 121);
    let gb = GatBatch::new(&batch, Device::Cpu).unwrap();
    let x = random_features(&batch, cfg.in_dims, Kind::Double, Device::Cpu, 122).unwrap();
    let x: [Tensor; 3] = [
        x[0].set_requires_grad(true),
        x[1].set_requires_grad(true),
        x[2].set_requires_grad(true),
    ];
    // loss = sum_k <out_k, R_k> with fixed random R_k.
    let r = random_features(&batch, [cfg.out_dim(); 3], Kind::Double, Device::Cpu, 123).unwrap();
    let loss_of = |gat: &HeteroGat, x: &[Tensor; 3]| -> Tensor {
        let out = gat.forward_t(x, &gb, false).unwrap();
        (0..3)
            .map(|k| (&out[k] * &r[k]).sum(Kind::Double))
            .fold(Tensor::from(0.0f64), |a, b| a + b)
    };
    let loss = loss_of(&gat, &x);
    loss.backward();
    let grads: Vec<Vec<f64>> = gat
        .named_parameters()
        .iter()
        .map(|(_, t)| Vec::<f64>::try_from(&t.grad().reshape([-1])).unwrap())
        .collect();
    let x_grads: Vec<Array2<f64>> = x
        .iter()
        .map(|t| tensor_to_array2(&t.grad()).unwrap())
        .collect();

    let eps = 1e-6;
    let check = |analytic: f64, plus: f64, minus: f64, what: &str| {
        let fd = (plus - minus) / (2.0 * eps);
        assert!(
            (fd - analytic).abs() <= 1e-6 * (1.0 + analytic.abs()),
            "{what}: autograd {analytic}, finite differences {fd}"
        );
    };
    // Parameters: three entries of every tensor (first, middle, last),
    // perturbed through the exported weights.
    let mut r_idx = rng(124);
    let mut p = 0;
    for l in 0..cfg.layers.len() {
        for rel in Relation::ALL {
            for field in 0..5 {
                let len = grads[p].len();
                for j in [0, below(&mut r_idx, len as u64) as usize, len - 1] {
                    let eval = |delta: f64| {
                        let mut v = w.clone();
                        let rw = v.relation_mut(l, rel).unwrap();
                        [
                            &mut rw.lin_src,
                            &mut rw.lin_dst,
                            &mut rw.att_src,
                            &mut rw.att_dst,
                            &mut rw.bias,
                        ][field][j] += delta;
                        gat.load_weights(&v).unwrap();
                        tch::no_grad(|| loss_of(&gat, &x).double_value(&[]))
                    };
                    let (plus, minus) = (eval(eps), eval(-eps));
                    check(
                        grads[p][j],
                        plus,
                        minus,
                        &format!("layer {l} {rel} field {field} entry {j}"),
                    );
                }
                p += 1;
            }
        }
    }
    gat.load_weights(&w).unwrap();
    // Inputs: four entries of every node type.
    for k in 0..3 {
        let (n, d) = x_grads[k].dim();
        for _ in 0..4 {
            let (i, c) = (
                below(&mut r_idx, n as u64) as i64,
                below(&mut r_idx, d as u64) as i64,
            );
            let eval = |delta: f64| {
                let y = [
                    x[0].detach().copy(),
                    x[1].detach().copy(),
                    x[2].detach().copy(),
                ];
                let _ = y[k].get(i).get(c).f_add_scalar_(delta).unwrap();
                tch::no_grad(|| loss_of(&gat, &y).double_value(&[]))
            };
            let (plus, minus) = (eval(eps), eval(-eps));
            check(
                x_grads[k][[i as usize, c as usize]],
                plus,
                minus,
                &format!("x[{k}][{i}, {c}]"),
            );
        }
    }
}

// ------------------------------------------------------------ benchmarks

#[test]
fn synthetic_batch_has_the_documented_shape() {
    let b = synthetic_batch(3, 16, 8, 2, &SampleGraphOptions::default()).unwrap();
    assert_eq!(b.n_graphs(), 3);
    assert_eq!(
        [b.users().len(), b.items().len(), b.features().len()],
        [3, 48, 24]
    );
    assert_eq!(b.edges(Relation::UserItem).len(), 48);
    assert_eq!(b.edges(Relation::ItemFeature).len(), 96);
    assert!(synthetic_batch(0, 16, 8, 2, &SampleGraphOptions::default()).is_err());
    assert!(synthetic_batch(2, 16, 1, 2, &SampleGraphOptions::default()).is_err());
}

#[test]
fn train_step_throughput_reports_a_consistent_run() {
    let batch = synthetic_batch(8, 5, 3, 2, &SampleGraphOptions::default()).unwrap();
    let cfg = HeteroGatConfig::new([6, 6, 4])
        .with_layers([GatLayerSpec::new(2, 4), GatLayerSpec::new(1, 4)]);
    let x = random_features(&batch, cfg.in_dims, Kind::Float, Device::Cpu, 130).unwrap();
    let _rng = global_rng();
    tch::manual_seed(0);
    let t = train_step_throughput(&cfg, &batch, &x, 3, 1, Device::Cpu).unwrap();
    assert_eq!((t.n_graphs, t.iters, t.warmup), (8, 3, 1));
    assert!(t.seconds_per_step > 0.0 && t.final_loss.is_finite());
    assert!((t.graphs_per_s * t.seconds_per_step - 8.0).abs() < 1e-6);
    assert_eq!(t.nodes, 8 * (1 + 5 + 3));
    assert_eq!(t.parameters, cfg.n_parameters());
    assert!(matches!(
        train_step_throughput(&cfg, &batch, &x, 0, 1, Device::Cpu),
        Err(PropagateError::Config { field: "iters", .. })
    ));
    // The loss goes down over a few AdamW steps.
    tch::manual_seed(0);
    let longer = train_step_throughput(
        &cfg.clone().with_attn_dropout(0.0),
        &batch,
        &x,
        30,
        0,
        Device::Cpu,
    )
    .unwrap();
    tch::manual_seed(0);
    let first =
        train_step_throughput(&cfg.with_attn_dropout(0.0), &batch, &x, 1, 0, Device::Cpu).unwrap();
    assert!(
        longer.final_loss < first.final_loss,
        "{} vs {}",
        longer.final_loss,
        first.final_loss
    );
}

#[test]
fn export_batch_writes_the_documented_layout() {
    let batch = random_batch(140, 5, true);
    let x = random_features(&batch, [3, 2, 2], Kind::Float, Device::Cpu, 141).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.safetensors");
    export_batch(&path, &batch, &x).unwrap();
    let m = read_safetensors_map(&path).unwrap();
    for r in Relation::ALL {
        let e = batch.edges(r);
        assert_eq!(
            m[&format!("{}.src", r.name())].data,
            ArrayData::I64(e.src().to_vec())
        );
        assert_eq!(
            m[&format!("{}.dst", r.name())].data,
            ArrayData::I64(e.dst().to_vec())
        );
    }
    for k in NodeKind::ALL {
        let a = &m[&format!("x.{}", k.name())];
        assert_eq!(
            a.to_array2().unwrap().mapv(f64::from),
            tensor_to_array2(&x[k.index()]).unwrap()
        );
    }
    let counts: Vec<i64> = NodeKind::ALL
        .iter()
        .map(|&k| batch.nodes(k).len() as i64)
        .collect();
    assert_eq!(m["counts"].data, ArrayData::I64(counts));
    assert_eq!(m["n_graphs"].data, ArrayData::I64(vec![5]));
    assert_eq!(
        m["target_index"].data,
        ArrayData::I64(batch.target_index().to_vec())
    );
    // Features that do not fit the batch are refused.
    let wrong = [x[0].copy(), x[1].narrow(0, 0, 1), x[2].copy()];
    assert!(export_batch(&path, &batch, &wrong).is_err());
}

#[test]
fn export_golden_writes_weights_and_reference_outputs() {
    let batch = random_batch(150, 4, false);
    let cfg = small_cfg();
    let x = random_features(&batch, cfg.in_dims, Kind::Float, Device::Cpu, 151).unwrap();
    let w = GatWeights::random(&cfg, 152).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("golden.safetensors");
    let y = export_golden(&path, &batch, &x, &w).unwrap();
    let m = read_safetensors_map(&path).unwrap();
    assert_eq!(m["w.layers.1.item_user.lin_src.weight"].shape, vec![6, 12]);
    assert_eq!(m["w.layers.0.feature_item.att_dst"].shape, vec![3, 4]);
    assert_eq!(m["w.config.layers"].data, ArrayData::I64(vec![3, 4, 2, 3]));
    assert_eq!(m["y.item"].shape, vec![batch.items().len(), 6]);
    // The written outputs are those of the f32-rounded weights, which the
    // f32 network reproduces.
    let (_vs, gat, _) = network(&cfg, Kind::Float, Device::Cpu, 0);
    gat.load_weights(&w).unwrap();
    let out = gat
        .forward_t(&x, &GatBatch::new(&batch, Device::Cpu).unwrap(), false)
        .unwrap();
    for k in 0..3 {
        assert_close(
            &tensor_to_array2(&out[k]).unwrap(),
            &y[k],
            1e-4,
            1e-5,
            "golden",
        );
    }
}

#[test]
fn array_tensor_helpers_round_trip() {
    let a = Array2::from_shape_fn((3, 2), |(i, j)| i as f64 - 0.5 * j as f64);
    let t = array2_to_tensor(&a, Kind::Double, Device::Cpu).unwrap();
    assert_eq!(t.size(), [3, 2]);
    assert_eq!(tensor_to_array2(&t).unwrap(), a);
    assert!(tensor_to_array2(&Tensor::zeros([4], (Kind::Float, Device::Cpu))).is_err());
}

// ------------------------------------------------------- opt-in checks

/// Opt-in (`--features cuda-tests`, on a GPU machine): fails rather than
/// skips when CUDA is missing.
#[cfg(feature = "cuda-tests")]
#[test]
fn forward_matches_reference_on_cuda() {
    assert!(
        tch::Cuda::is_available(),
        "cuda-tests enabled but libtorch sees no CUDA device (is libtorch_cuda linked? see graft-build)"
    );
    let cuda = Device::Cuda(0);
    for (seed, connect) in [(200, true), (201, false)] {
        let batch = random_batch(seed, 12, connect);
        check_against_reference(
            &HeteroGatConfig::new([16, 12, 8]),
            &batch,
            Kind::Float,
            cuda,
            seed,
            1e-4,
            1e-5,
        );
        check_against_reference(&small_cfg(), &batch, Kind::Double, cuda, seed, 1e-10, 1e-12);
    }
    // A training step runs on the device.
    let batch = synthetic_batch(16, 6, 4, 2, &SampleGraphOptions::default()).unwrap();
    let cfg = HeteroGatConfig::new([8, 8, 8]);
    let x = random_features(&batch, cfg.in_dims, Kind::Float, cuda, 202).unwrap();
    let t = train_step_throughput(&cfg, &batch, &x, 2, 1, cuda).unwrap();
    assert!(t.final_loss.is_finite());
}

/// PyG's `HeteroConv` of `GATConv` (and the plain-PyTorch layer of
/// `python/gat_peer.py`) reproduce the reference outputs. Needs
/// `torch_geometric` in the project venv (or `GRAFT_PYTHON` naming an
/// interpreter with it); run with `--ignored`.
#[test]
#[ignore = "needs torch_geometric: pip install torch_geometric into the venv, then run with --ignored"]
fn python_peer_reproduces_reference() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("GRAFT_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../.venv/bin/python"));
    let batch = random_batch(300, 10, true);
    for activation in [GatActivation::Elu, GatActivation::Identity] {
        let cfg = HeteroGatConfig::new([6, 5, 4])
            .with_layers([GatLayerSpec::new(4, 3), GatLayerSpec::new(2, 5)])
            .with_activation(activation);
        let x = random_features(&batch, cfg.in_dims, Kind::Float, Device::Cpu, 301).unwrap();
        let w = GatWeights::random(&cfg, 302).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("golden.safetensors");
        export_golden(&path, &batch, &x, &w).unwrap();
        for implementation in ["pyg", "torch"] {
            let out = std::process::Command::new(&python)
                .arg(manifest.join("python/gat_peer.py"))
                .args(["--impl", implementation, "--check", "--batch"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{implementation} {activation:?}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
