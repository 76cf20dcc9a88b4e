//! `LoraLinear`: forward formula, merge/unmerge, dropout, gradients, init.

#![allow(clippy::unwrap_used, clippy::panic)]

use graft_lora::{LoraConfig, LoraError, LoraLinear};
use tch::{nn, Device, Kind, Tensor};

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// A layer with random, non-zero A and B at realistic scales: `W ~
/// N(0, 1/in)`, `A` from PEFT's Kaiming-uniform init, `B ~ N(0, 0.25)`
/// (outputs of order 1, so float32 rounding stays well below 1e-5).
fn random_layer(
    vs: &nn::VarStore,
    out: i64,
    inp: i64,
    cfg: &LoraConfig,
    bias: bool,
) -> (LoraLinear, Tensor) {
    let opts = (vs.kind(), Device::Cpu);
    let w = Tensor::randn([out, inp], opts) / (inp as f64).sqrt();
    let b = bias.then(|| Tensor::randn([out], opts));
    let layer = LoraLinear::new(&vs.root().sub("layer"), &w, b.as_ref(), cfg).unwrap();
    tch::no_grad(|| {
        layer
            .lora_b()
            .shallow_clone()
            .copy_(&(Tensor::randn([out, cfg.r as i64], opts) * 0.5));
    });
    (layer, w)
}

fn check_merge(vs: &nn::VarStore, seed: i64, tol: f64) {
    let cfg = LoraConfig::new(4, 12.0).with_dropout(0.1);
    assert_eq!(cfg.scaling(), 3.0);
    let (mut layer, _) = random_layer(vs, 24, 40, &cfg, seed % 2 == 0);
    let x = Tensor::randn([7, 3, 40], (vs.kind(), Device::Cpu));
    let unmerged = layer.forward_t(&x, false);
    // The LoRA branch matters: without it the output is clearly different.
    let base_only = x.linear(layer.weight(), layer.bias());
    assert!(max_abs(&unmerged, &base_only) > 0.1);
    assert!(layer.merge().unwrap());
    assert!(layer.is_merged());
    assert!(!layer.merge().unwrap(), "second merge is a no-op");
    let merged = layer.forward_t(&x, false);
    let d = max_abs(&merged, &unmerged);
    assert!(d < tol, "seed {seed}: merged vs unmerged {d:e}");
    // Merged forward ignores dropout entirely (train mode too).
    let merged_train = layer.forward_t(&x, true);
    assert!(max_abs(&merged_train, &merged) == 0.0);
}

#[test]
fn merged_forward_equals_unmerged_for_alpha_not_r() {
    let _rng = global_rng();
    for seed in 0..8 {
        tch::manual_seed(seed);
        check_merge(&nn::VarStore::new(Device::Cpu), seed, 1e-5);
    }
}

#[test]
fn merged_forward_equals_unmerged_in_double() {
    let _rng = global_rng();
    for seed in 0..4 {
        tch::manual_seed(seed);
        let mut vs = nn::VarStore::new(Device::Cpu);
        vs.set_kind(Kind::Double);
        check_merge(&vs, seed, 1e-12);
    }
}

#[test]
fn forward_matches_explicit_formula() {
    let _rng = global_rng();
    tch::manual_seed(3);
    let cfg = LoraConfig::new(3, 5.0);
    let vs = nn::VarStore::new(Device::Cpu);
    let (layer, w) = random_layer(&vs, 6, 9, &cfg, true);
    let x = Tensor::randn([4, 9], CPU).to_kind(Kind::Double);
    let (wd, bd) = (
        w.to_kind(Kind::Double),
        layer.bias().unwrap().to_kind(Kind::Double),
    );
    let a = layer.lora_a().detach().to_kind(Kind::Double);
    let b = layer.lora_b().detach().to_kind(Kind::Double);
    let expected = x.matmul(&wd.tr()) + &bd + x.matmul(&a.tr()).matmul(&b.tr()) * (5.0 / 3.0);
    let got = layer
        .forward_t(&x.to_kind(Kind::Float), false)
        .to_kind(Kind::Double);
    assert!(max_abs(&got, &expected) < 1e-4);
    let got_f = layer
        .f_forward_t(&x.to_kind(Kind::Float), false)
        .unwrap()
        .to_kind(Kind::Double);
    assert!(max_abs(&got_f, &expected) < 1e-4);
}

#[test]
fn unmerge_restores_base_weight() {
    let _rng = global_rng();
    tch::manual_seed(11);
    let cfg = LoraConfig::new(4, 12.0);
    let vs = nn::VarStore::new(Device::Cpu);
    let (mut layer, w) = random_layer(&vs, 16, 32, &cfg, false);
    let original = w.copy();
    layer.merge().unwrap();
    // The base weight is aliased: merge writes into the caller's tensor.
    assert!(max_abs(&w, &original) > 1e-2);
    let expected = &original + layer.lora_b().matmul(layer.lora_a()).detach() * 3.0;
    assert!(max_abs(&w, &expected) < 1e-5);
    assert!(layer.unmerge().unwrap());
    assert!(!layer.is_merged());
    assert!(!layer.unmerge().unwrap(), "second unmerge is a no-op");
    assert!(max_abs(&w, &original) < 1e-5);
    let x = Tensor::randn([5, 32], CPU);
    let y = layer.forward_t(&x, false);
    let expected = x.linear::<Tensor>(&original, None)
        + x.linear::<Tensor>(layer.lora_a(), None)
            .linear::<Tensor>(layer.lora_b(), None)
            * 3.0;
    assert!(max_abs(&y, &expected) < 1e-4);
}

#[test]
fn dropout_only_in_training_and_seeded() {
    let _rng = global_rng();
    let cfg = LoraConfig::new(4, 8.0).with_dropout(0.5);
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let (layer, _) = random_layer(&vs, 8, 64, &cfg, false);
    let x = Tensor::randn([16, 64], CPU);
    let e1 = layer.forward_t(&x, false);
    let e2 = layer.forward_t(&x, false);
    assert_eq!(max_abs(&e1, &e2), 0.0, "eval is deterministic");
    tch::manual_seed(42);
    let t1 = layer.forward_t(&x, true);
    let t2 = layer.forward_t(&x, true);
    tch::manual_seed(42);
    let t1_again = layer.forward_t(&x, true);
    assert!(max_abs(&t1, &e1) > 1e-3, "dropout active in training");
    assert!(max_abs(&t1, &t2) > 1e-3, "fresh masks per call");
    assert_eq!(max_abs(&t1, &t1_again), 0.0, "same seed, same mask");
    // Dropout touches only the LoRA branch: with B = 0, train == eval.
    tch::no_grad(|| {
        let _ = layer.lora_b().shallow_clone().zero_();
    });
    let t0 = layer.forward_t(&x, true);
    let e0 = layer.forward_t(&x, false);
    assert_eq!(max_abs(&t0, &e0), 0.0);
    // No dropout configured: train == eval.
    let vs = nn::VarStore::new(Device::Cpu);
    let (layer, _) = random_layer(
        &vs,
        8,
        64,
        &LoraConfig::new(4, 8.0).with_dropout(0.0),
        false,
    );
    assert_eq!(
        max_abs(&layer.forward_t(&x, true), &layer.forward_t(&x, false)),
        0.0
    );
}

#[test]
fn only_lora_matrices_get_gradients() {
    let _rng = global_rng();
    tch::manual_seed(9);
    let base_vs = nn::VarStore::new(Device::Cpu);
    // A base weight that is itself a trainable variable of another store.
    let w = base_vs.root().randn_standard("weight", &[6, 10]);
    let bias = base_vs.root().randn_standard("bias", &[6]);
    assert!(w.requires_grad());
    let vs = nn::VarStore::new(Device::Cpu);
    let layer = LoraLinear::new(
        &vs.root().sub("proj"),
        &w,
        Some(&bias),
        &LoraConfig::new(2, 4.0),
    )
    .unwrap();
    assert!(!layer.weight().requires_grad());
    let names: Vec<String> = {
        let mut v: Vec<String> = vs.variables().into_keys().collect();
        v.sort();
        v
    };
    assert_eq!(names, ["proj.lora_A.weight", "proj.lora_B.weight"]);
    assert_eq!(vs.trainable_variables().len(), 2);
    let x = Tensor::randn([3, 10], CPU);
    let loss = layer
        .forward_t(&x, true)
        .pow_tensor_scalar(2)
        .sum(Kind::Float);
    loss.backward();
    assert!(!w.grad().defined(), "base weight got a gradient");
    assert!(!bias.grad().defined(), "base bias got a gradient");
    // With B = 0 the gradient reaches B (not A, whose gradient is B^T (..) = 0).
    let gb = layer.lora_b().grad();
    assert!(gb.defined() && gb.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    assert!(layer.lora_a().grad().defined());
    // With non-zero B both get a non-zero gradient.
    tch::no_grad(|| {
        let _ = layer.lora_b().shallow_clone().fill_(0.5);
    });
    let _ = layer.lora_a().grad().zero_();
    let loss = layer
        .forward_t(&x, true)
        .pow_tensor_scalar(2)
        .sum(Kind::Float);
    loss.backward();
    assert!(
        layer
            .lora_a()
            .grad()
            .abs()
            .sum(Kind::Float)
            .double_value(&[])
            > 0.0
    );
}

#[test]
fn peft_initialisation() {
    let _rng = global_rng();
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let inp = 256;
    let w = Tensor::randn([32, inp], CPU);
    let layer = LoraLinear::new(&vs.root().sub("l"), &w, None, &LoraConfig::new(16, 32.0)).unwrap();
    let bound = 1.0 / (inp as f64).sqrt();
    let a = layer.lora_a();
    assert_eq!(a.size(), [16, inp]);
    assert_eq!(layer.lora_b().size(), [32, 16]);
    assert!(a.abs().max().double_value(&[]) <= bound);
    // Uniform(-b, b) has std b / sqrt(3).
    let std = a.std(true).double_value(&[]);
    assert!(
        (std - bound / 3f64.sqrt()).abs() < 0.05 * bound,
        "std {std}"
    );
    assert_eq!(layer.lora_b().abs().max().double_value(&[]), 0.0);
    // A fresh adapter is the identity update.
    let x = Tensor::randn([4, inp], CPU);
    assert_eq!(
        max_abs(&layer.forward_t(&x, true), &x.linear::<Tensor>(&w, None)),
        0.0
    );
    assert_eq!(layer.trainable_params(), 16 * (256 + 32));
    assert_eq!(layer.base_params(), 32 * 256);
}

#[test]
fn bad_inputs_are_errors() {
    let _rng = global_rng();
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = LoraConfig::default();
    let w3 = Tensor::zeros([2, 3, 4], CPU);
    assert!(matches!(
        LoraLinear::new(&vs.root().sub("a"), &w3, None, &cfg),
        Err(LoraError::Shape { .. })
    ));
    let w = Tensor::zeros([4, 3], CPU);
    let b = Tensor::zeros([3], CPU);
    assert!(matches!(
        LoraLinear::new(&vs.root().sub("b"), &w, Some(&b), &cfg),
        Err(LoraError::Shape { .. })
    ));
    let wi = Tensor::zeros([4, 3], (Kind::Int64, Device::Cpu));
    assert!(matches!(
        LoraLinear::new(&vs.root().sub("c"), &wi, None, &cfg),
        Err(LoraError::Tensor { .. })
    ));
    let bad = LoraConfig::new(0, 16.0);
    assert!(matches!(
        LoraLinear::new(&vs.root().sub("d"), &w, None, &bad),
        Err(LoraError::Config { field: "r", .. })
    ));
    let layer = LoraLinear::new(&vs.root().sub("e"), &w, None, &cfg).unwrap();
    let x = Tensor::zeros([2, 5], CPU);
    assert!(matches!(
        layer.f_forward_t(&x, false),
        Err(LoraError::Shape { .. })
    ));
}

#[test]
fn bf16_base_under_f32_adapters() {
    let _rng = global_rng();
    tch::manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = LoraConfig::new(4, 8.0);
    let (out, inp) = (16, 32);
    let w = (Tensor::randn([out, inp], CPU) / (inp as f64).sqrt()).to_kind(Kind::BFloat16);
    let b = Tensor::randn([out], CPU).to_kind(Kind::BFloat16);
    let mut layer = LoraLinear::new(&vs.root().sub("layer"), &w, Some(&b), &cfg).unwrap();
    tch::no_grad(|| {
        layer
            .lora_b()
            .shallow_clone()
            .copy_(&(Tensor::randn([out, 4], CPU) * 0.5));
    });
    assert_eq!(layer.lora_a().kind(), Kind::Float);
    let x = Tensor::randn([5, inp], CPU);
    let y = layer.f_forward_t(&x, false).unwrap();
    assert_eq!(y.kind(), Kind::Float);
    // The base product in bf16 (the bf16 rounding of x included), the
    // LoRA branch in f32.
    let base = x
        .to_kind(Kind::BFloat16)
        .linear(&w, Some(&b))
        .to_kind(Kind::Float);
    let expected = &base + x.matmul(&layer.lora_a().tr()).matmul(&layer.lora_b().tr()) * 2.0;
    assert!(max_abs(&y, &expected) < 1e-5);
    // Against the full-precision layer: bf16's ~3 significant digits.
    let exact = x.linear(&w.to_kind(Kind::Float), Some(&b.to_kind(Kind::Float)))
        + x.matmul(&layer.lora_a().tr()).matmul(&layer.lora_b().tr()) * 2.0;
    let err = max_abs(&y, &exact);
    assert!(err > 0.0 && err < 0.1, "bf16 error {err}");
    // Gradients reach the f32 adapters only.
    y.sum(Kind::Float).backward();
    assert!(layer.lora_b().grad().defined());
    assert!(!w.requires_grad());
    // Merging rounds the update into the bf16 base.
    let w_before = w.copy();
    layer.merge().unwrap();
    assert_eq!(layer.weight().kind(), Kind::BFloat16);
    let merged = tch::no_grad(|| layer.f_forward_t(&x, false).unwrap());
    assert!(max_abs(&merged, &exact) < 0.2);
    layer.unmerge().unwrap();
    assert!(
        max_abs(
            &layer.weight().to_kind(Kind::Float),
            &w_before.to_kind(Kind::Float)
        ) < 0.05
    );
}

/// libtorch has one global CPU generator and the harness runs tests on
/// several threads: every test of this binary that seeds it or draws from
/// it (initialisation, dropout, sampling) holds this lock, so a seeded
/// section is never interleaved with another test's draws.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
