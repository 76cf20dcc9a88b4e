//! LoRA inside the LLaMA backbone (SmolLM2, when the GGUF is present).

#![cfg(feature = "tch")]
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use graft_lm::llama::{KvCache, Llama};
use graft_lora::LoraConfig;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

fn smollm2() -> Option<Llama> {
    Some(Llama::from_gguf(&common::smollm2_gguf()?, Device::Cpu).unwrap())
}

fn logits(m: &Llama, ids: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let h = m
            .forward_embeds(&m.embed(ids).unwrap(), &mut KvCache::default(), None)
            .unwrap();
        m.logits(&h).unwrap()
    })
}

/// Three AdamW steps on a scoring loss lower it.
fn assert_loss_falls(model: &Llama, vs: &nn::VarStore) {
    let mut opt = nn::AdamW::default().build(vs, 1e-3).unwrap();
    let prompt: Vec<u32> = (100..120).collect();
    let answer: Vec<u32> = vec![42, 43];
    let mut losses = Vec::new();
    for _ in 0..3 {
        let lp = model.log_prob_sums_t(&[(&prompt, &answer)], true).unwrap();
        let loss = -lp.sum(Kind::Float);
        losses.push(loss.double_value(&[]));
        opt.backward_step(&loss);
    }
    assert!(losses[2] < losses[0], "{losses:?}");
}

#[test]
fn lora_on_smollm2_trains_only_the_adapters() {
    let _rng = global_rng();
    let Some(mut model) = smollm2() else { return };
    tch::manual_seed(0);
    let ids = Tensor::randint_low(3, 49_152, [2, 24], (Kind::Int64, Device::Cpu));
    let before = logits(&model, &ids);
    let w_before = model.lora().map(|_| ()).is_none();
    assert!(w_before);
    let vs = nn::VarStore::new(Device::Cpu);
    let report = model
        .attach_lora(&vs.root().sub("lora"), &LoraConfig::default())
        .unwrap();
    // PEFT's numbers for SmolLM2-135M with r 8 on q_proj and v_proj.
    assert_eq!((report.trainable, report.total), (460_800, 134_975_808));
    assert!(
        report
            .to_string()
            .starts_with("trainable params: 460,800 || all params: 134,975,808"),
        "{report}"
    );
    // B starts at zero: the adapted model is the base model.
    assert_eq!(
        (logits(&model, &ids) - &before)
            .abs()
            .max()
            .double_value(&[]),
        0.0
    );
    // A few AdamW steps on a scoring loss move the adapters, not the base.
    let q0 = model
        .lora()
        .unwrap()
        .get("model.layers.0.self_attn.q_proj")
        .unwrap()
        .weight()
        .copy();
    assert_loss_falls(&model, &vs);
    let lin = model
        .lora()
        .unwrap()
        .get("model.layers.0.self_attn.q_proj")
        .unwrap();
    assert_eq!(lin.weight(), &q0, "base weight changed");
    assert!(lin.lora_b().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    // Merged and unmerged forwards agree.
    let unmerged = logits(&model, &ids);
    model.lora_mut().unwrap().merge_all().unwrap();
    let merged = logits(&model, &ids);
    let d = (&merged - &unmerged).abs().max().double_value(&[]);
    assert!(d < 1e-3, "merged vs unmerged logits differ by {d}");
    model.lora_mut().unwrap().unmerge_all().unwrap();
    // Adapters save in PEFT's layout.
    let dir = tempfile::tempdir().unwrap();
    model
        .lora()
        .unwrap()
        .save_pretrained(dir.path(), Some("HuggingFaceTB/SmolLM2-135M-Instruct"))
        .unwrap();
    assert!(dir.path().join("adapter_model.safetensors").is_file());
    assert!(dir.path().join("adapter_config.json").is_file());
}

#[test]
fn bf16_projections_keep_smollm2_predictions_and_train_adapters() {
    let _rng = global_rng();
    let Some(f32_model) = smollm2() else { return };
    let mut model = smollm2().unwrap();
    model.set_projection_kind(Kind::BFloat16).unwrap();
    assert_eq!(model.projection_kind(), Kind::BFloat16);
    assert_eq!(f32_model.projection_kind(), Kind::Float);
    assert!(model.set_projection_kind(Kind::Int64).is_err());
    tch::manual_seed(1);
    let ids = Tensor::randint_low(3, 49_152, [2, 32], (Kind::Int64, Device::Cpu));
    let exact = logits(&f32_model, &ids).log_softmax(-1, Kind::Float);
    let fast = logits(&model, &ids).log_softmax(-1, Kind::Float);
    assert_eq!(fast.kind(), Kind::Float);
    // Same next-token choice almost everywhere, close log-probabilities of
    // the choices.
    let (a, b) = (exact.argmax(-1, false), fast.argmax(-1, false));
    let agree = a
        .eq_tensor(&b)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    assert!(agree >= 0.9, "top-1 agreement {agree}");
    let chosen = |lp: &Tensor| lp.gather(-1, &a.unsqueeze(-1), false);
    let gap = (chosen(&exact) - chosen(&fast))
        .abs()
        .max()
        .double_value(&[]);
    assert!(gap < 0.5, "log-prob gap {gap}");
    // LoRA over the bf16 base: f32 adapters that train.
    let vs = nn::VarStore::new(Device::Cpu);
    model
        .attach_lora(&vs.root().sub("lora"), &LoraConfig::default())
        .unwrap();
    assert!(model.set_projection_kind(Kind::Float).is_err());
    assert_loss_falls(&model, &vs);
}

/// libtorch has one global CPU generator and the harness runs tests on
/// several threads: every test of this binary that seeds it or draws from
/// it (initialisation, dropout, sampling) holds this lock, so a seeded
/// section is never interleaved with another test's draws.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
