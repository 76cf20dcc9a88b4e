//! The language models on CUDA (`--features cuda-tests`, on a GPU machine):
//! the committed tiny T5 and LLaMA checkpoints give transformers' logits
//! there too, bf16 products stay close, beam search finds what it finds on
//! the CPU, and LoRA adapters train on the GPU. Every test fails, never
//! skips, when libtorch sees no CUDA device, so a green run never pretends
//! to cover CUDA.

#![cfg(feature = "cuda-tests")]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use graft_lm::llama::{KvCache, Llama};
use graft_lm::t5::T5;
use graft_lm::weights::Weights;
use graft_lm::BeamConfig;
use graft_lora::LoraConfig;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

const GPU: Device = Device::Cuda(0);

fn gpu() -> Device {
    assert!(
        tch::Cuda::is_available(),
        "cuda-tests enabled but libtorch sees no CUDA device (is libtorch_cuda linked? see graft-build)"
    );
    GPU
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_device(Device::Cpu) - b.to_device(Device::Cpu))
        .abs()
        .max()
        .double_value(&[])
}

/// Logits of the tiny T5 checkpoint on `device` for its golden inputs, and
/// transformers' logits.
fn t5_logits(name: &str, device: Device, bf16: bool) -> (Tensor, Tensor) {
    let (mut model, _) = T5::load(fixture(name), device).unwrap();
    if bf16 {
        model.set_compute_kind(Kind::BFloat16).unwrap();
    }
    let w = Weights::read(fixture(name).join("golden.safetensors")).unwrap();
    let g = |n: &str| w.get(n).unwrap().to_device(device);
    let (ids, mask, dec) = (g("input_ids"), g("attention_mask"), g("decoder_input_ids"));
    let out = tch::no_grad(|| model.decode(&dec, &model.encode(&ids, &mask)?, &mask)).unwrap();
    assert_eq!(out.device(), device);
    (out, w.get("logits").unwrap().shallow_clone())
}

#[test]
fn t5_checkpoints_match_transformers_on_cuda() {
    let device = gpu();
    for name in ["t5_tiny_relu", "t5_tiny_gated"] {
        let (out, want) = t5_logits(name, device, false);
        let d = max_diff(&out, &want);
        eprintln!("{name} on CUDA: logits max diff {d:.2e}");
        assert!(d < 1e-4, "{name}: {d}");
        let (out, _) = t5_logits(name, device, true);
        let rel = max_diff(&out, &want) / want.abs().max().double_value(&[]);
        eprintln!("{name} on CUDA, bf16: logits rel diff {rel:.2e}");
        assert!(rel < 2e-2 && rel > 0.0, "{name} bf16: {rel}");
    }
}

#[test]
fn t5_beam_search_on_cuda_finds_the_cpu_hypotheses() {
    let device = gpu();
    let cfg = BeamConfig {
        beams: 4,
        max_new: 5,
        eos: Some(1),
        length_penalty: 1.0,
        num_return: 4,
    };
    let run = |device: Device| {
        let (model, _) = T5::load(fixture("t5_tiny_relu"), device).unwrap();
        let ids = Tensor::from_slice(&[5_i64, 9, 13, 2, 7, 1])
            .view([1, 6])
            .to_device(device);
        let mask = ids.ones_like();
        let enc = tch::no_grad(|| model.encode(&ids, &mask)).unwrap();
        model.beam_search(&enc, &mask, &cfg).unwrap()
    };
    let (cpu, cuda) = (run(Device::Cpu), run(device));
    assert_eq!(
        cpu.iter().map(|h| h.tokens.clone()).collect::<Vec<_>>(),
        cuda.iter().map(|h| h.tokens.clone()).collect::<Vec<_>>()
    );
    for (a, b) in cpu.iter().zip(&cuda) {
        assert!(
            (a.score - b.score).abs() < 1e-4,
            "{} vs {}",
            a.score,
            b.score
        );
    }
}

fn llama(device: Device) -> Llama {
    Llama::from_hf_dir(fixture("llama_tiny"), device).unwrap().0
}

fn llama_logits(m: &Llama, ids: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let h = m
            .forward_embeds(&m.embed(ids).unwrap(), &mut KvCache::default(), None)
            .unwrap();
        m.logits(&h).unwrap()
    })
}

#[test]
fn llama_checkpoint_matches_transformers_on_cuda() {
    let device = gpu();
    let m = llama(device);
    let g = Weights::read(fixture("llama_tiny").join("golden.safetensors")).unwrap();
    let ids = g.get("input_ids").unwrap().to_device(device);
    let got = llama_logits(&m, &ids);
    let d = max_diff(&got, g.get("logits").unwrap());
    eprintln!("tiny HF LLaMA on CUDA: max logit difference {d:.2e}");
    assert!(d < 1e-4, "{d}");
}

#[test]
fn lora_adapters_train_on_cuda() {
    let device = gpu();
    let mut m = llama(device);
    let vs = nn::VarStore::new(device);
    m.attach_lora(&vs.root().sub("lora"), &LoraConfig::default())
        .unwrap();
    assert!(vs.variables().values().all(|t| t.device() == device));
    let mut opt = nn::AdamW::default().build(&vs, 1e-2).unwrap();
    let prompt: Vec<u32> = (3..15).collect();
    let answer: Vec<u32> = vec![20, 21];
    let mut losses = Vec::new();
    for _ in 0..5 {
        let lp = m.log_prob_sums_t(&[(&prompt, &answer)], true).unwrap();
        assert_eq!(lp.device(), device);
        let loss = -lp.sum(Kind::Float);
        losses.push(loss.double_value(&[]));
        opt.backward_step(&loss);
    }
    assert!(losses[4] < losses[0], "{losses:?}");
}
