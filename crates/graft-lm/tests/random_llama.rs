//! `Llama::random`: seeded, shaped like a loaded model of the same config,
//! initialised as Hugging Face initialises a fresh LLaMA, and usable.

#![cfg(feature = "tch")]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use graft_lm::llama::{KvCache, Llama, LlamaConfig};
use graft_lm::LmError;
use tch::{Device, Kind, Tensor};

/// The tiny Hugging Face fixture (GQA, untied head) and its config.
fn tiny() -> Llama {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_tiny");
    Llama::from_hf_dir(dir, Device::Cpu).unwrap().0
}

fn weights(m: &Llama) -> Vec<(String, Vec<i64>, Vec<f32>)> {
    m.named_parameters()
        .into_iter()
        .map(|(n, t)| (n, t.size(), Vec::<f32>::try_from(t.reshape([-1])).unwrap()))
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_weights_and_another_seed_others() {
    let cfg = tiny().config().clone();
    let a = weights(&Llama::random(cfg.clone(), 7, Device::Cpu).unwrap());
    let b = weights(&Llama::random(cfg.clone(), 7, Device::Cpu).unwrap());
    let c = weights(&Llama::random(cfg, 8, Device::Cpu).unwrap());
    assert_eq!(a, b);
    for ((name, _, x), (_, _, y)) in a.iter().zip(&c) {
        if !name.ends_with("norm.weight") {
            assert_ne!(x, y, "{name}");
        }
    }
    // No two matrices of one model share their draws.
    let firsts: std::collections::HashSet<u32> = a
        .iter()
        .filter(|(n, _, _)| !n.ends_with("norm.weight"))
        .map(|(_, _, v)| v[0].to_bits())
        .collect();
    assert_eq!(
        firsts.len(),
        a.iter()
            .filter(|(n, _, _)| !n.ends_with("norm.weight"))
            .count()
    );
}

#[test]
fn shaped_like_the_loaded_model_with_a_tied_head() {
    let loaded = tiny();
    let random = Llama::random(loaded.config().clone(), 0, Device::Cpu).unwrap();
    let shapes = |m: &Llama| -> Vec<(String, Vec<i64>)> {
        m.named_parameters()
            .into_iter()
            .map(|(n, t)| (n, t.size()))
            .collect()
    };
    // The fixture's head is untied; a random model ties it (SmolLM2 does).
    let mut want = shapes(&loaded);
    want.retain(|(n, _)| n != "lm_head.weight");
    assert_eq!(shapes(&random), want);
}

#[test]
fn initialised_as_hugging_face_does() {
    let cfg = LlamaConfig {
        vocab_size: 512,
        hidden: 64,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        ffn: 160,
        rope_theta: 10_000.0,
        rms_eps: 1e-5,
    };
    for (name, _, v) in weights(&Llama::random(cfg, 3, Device::Cpu).unwrap()) {
        if name.ends_with("norm.weight") {
            assert!(v.iter().all(|&x| x == 1.0), "{name}");
            continue;
        }
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let sd = (v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        // At least 2,048 draws each (k_proj, 32 x 64): standard errors at
        // most 0.00044 (mean), 0.00031 (sd), 0.0046 (tail share); the
        // bounds are 3.3 to 3.9 of them (and the draws are seeded).
        assert!(mean.abs() < 0.0015, "{name}: mean {mean}");
        assert!((sd - 0.02).abs() < 0.0012, "{name}: sd {sd}");
        let tail = v.iter().filter(|&&x| f64::from(x).abs() > 0.04).count() as f64 / n;
        // P(|z| > 2) = 0.0455 for a normal.
        assert!((tail - 0.0455).abs() < 0.015, "{name}: tail {tail}");
    }
}

#[test]
fn a_random_model_runs_forward_and_backward() {
    let mut model = Llama::random(tiny().config().clone(), 1, Device::Cpu).unwrap();
    model.set_requires_grad(true);
    let ids = Tensor::from_slice(&[1i64, 5, 9, 2, 7, 3]).view([1, 6]);
    let h = model
        .forward_embeds(&model.embed(&ids).unwrap(), &mut KvCache::default(), None)
        .unwrap();
    let logits = model.logits(&h).unwrap();
    assert_eq!(logits.size()[2], model.config().vocab_size as i64);
    assert!(bool::try_from(logits.isfinite().all()).unwrap());
    logits
        .to_kind(Kind::Float)
        .pow_tensor_scalar(2)
        .mean(Kind::Float)
        .backward();
    let (_, emb) = &model.named_parameters()[0];
    assert!(emb.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn an_inconsistent_shape_is_an_error() {
    let mut cfg = tiny().config().clone();
    cfg.n_kv_heads = cfg.n_heads + 1;
    assert!(matches!(
        Llama::random(cfg, 0, Device::Cpu),
        Err(LmError::Format { .. })
    ));
}

#[test]
fn absurd_sizes_are_an_error_not_an_allocation() {
    let mut cfg = tiny().config().clone();
    cfg.vocab_size = usize::MAX / 2;
    assert!(matches!(
        Llama::random(cfg.clone(), 0, Device::Cpu),
        Err(LmError::Format { .. })
    ));
    cfg.vocab_size = 1 << 30;
    cfg.n_layers = 1 << 20;
    assert!(matches!(
        Llama::random(cfg, 0, Device::Cpu),
        Err(LmError::Format { .. })
    ));
}
