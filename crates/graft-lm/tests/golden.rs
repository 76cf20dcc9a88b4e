//! Golden test against Hugging Face transformers: the fixture
//! `tests/fixtures/smollm2_golden.safetensors` was written by
//! `python/golden.py` (transformers loading the same GGUF). Needs the GGUF
//! file (`cargo xtask fetch-models`, done by `cargo xtask test`); skips
//! with a message without it.

#![cfg(feature = "tch")]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

mod common;

use graft_lm::gguf::GgufFile;
use graft_lm::llama::{KvCache, Llama};
use graft_lm::tokenizer::tokenizer_from_gguf;
use safetensors::SafeTensors;
use tch::{Device, Kind, Tensor};

fn gguf() -> Option<GgufFile> {
    common::smollm2_gguf()
}

fn i64s(st: &SafeTensors<'_>, name: &str) -> Vec<i64> {
    let t = st.tensor(name).unwrap();
    t.data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn f32s(st: &SafeTensors<'_>, name: &str) -> Vec<f32> {
    let t = st.tensor(name).unwrap();
    t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn smollm2_matches_transformers() {
    let Some(f) = gguf() else { return };
    let bytes = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2_golden.safetensors"),
    )
    .unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let prompts: Vec<String> =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["prompts"]).unwrap();
    let tok = tokenizer_from_gguf(&f).unwrap();
    let model = Llama::from_gguf(&f, Device::Cpu).unwrap();
    let fixed = i64s(&st, "fixed_ids");
    let mut worst = 0.0f32;
    for (i, p) in prompts.iter().enumerate() {
        // Tokenisation is identical to the Hugging Face tokenizer.
        let want_ids = i64s(&st, &format!("p{i}.ids"));
        let ids: Vec<i64> = tok
            .encode(p.as_str(), false)
            .unwrap()
            .get_ids()
            .iter()
            .map(|&x| i64::from(x))
            .collect();
        assert_eq!(ids, want_ids, "prompt {i} tokens");
        let input = Tensor::from_slice(&ids).view([1, -1]);
        let logits = tch::no_grad(|| {
            let h = model
                .forward_embeds(&model.embed(&input).unwrap(), &mut KvCache::default(), None)
                .unwrap();
            model.logits(&h.get(0).get(ids.len() as i64 - 1)).unwrap()
        });
        let at = |id: i64| logits.double_value(&[id]) as f32;
        let lse = logits.logsumexp([0i64].as_slice(), false).double_value(&[]) as f32;
        let want_lse = f32s(&st, &format!("p{i}.logsumexp"))[0];
        let mut check = |got: f32, want: f32, what: &str| {
            let err = (got - want).abs();
            worst = worst.max(err);
            assert!(
                err <= 5e-4 * want.abs().max(1.0),
                "prompt {i} {what}: ours {got}, transformers {want}"
            );
        };
        check(lse, want_lse, "logsumexp");
        let top_ids = i64s(&st, &format!("p{i}.top_ids"));
        let top = f32s(&st, &format!("p{i}.top_logits"));
        assert_eq!(
            logits.argmax(0, false).int64_value(&[]),
            top_ids[0],
            "prompt {i} argmax"
        );
        for (&id, &want) in top_ids.iter().zip(&top) {
            check(at(id), want, &format!("top logit of token {id}"));
        }
        for (&id, &want) in fixed.iter().zip(&f32s(&st, &format!("p{i}.fixed_logits"))) {
            check(at(id), want, &format!("logit of token {id}"));
        }
        assert_eq!(logits.kind(), Kind::Float);
    }
    eprintln!("largest absolute logit difference to transformers: {worst:.2e}");
}

/// A tiny random Hugging Face LLaMA (unpermuted Q/K, rotate-half RoPE,
/// GQA, untied head), written with its logits by `python/golden_llama.py`.
#[test]
fn hf_llama_checkpoint_matches_transformers() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_tiny");
    let (model, report) = Llama::from_hf_dir(&dir, Device::Cpu).unwrap();
    assert!(
        report.missing.is_empty() && report.unused.is_empty(),
        "{report}"
    );
    let g = graft_lm::weights::Weights::read(dir.join("golden.safetensors")).unwrap();
    let ids = g.get("input_ids").unwrap();
    let want = g.get("logits").unwrap();
    let got = tch::no_grad(|| {
        let h = model
            .forward_embeds(&model.embed(ids).unwrap(), &mut KvCache::default(), None)
            .unwrap();
        model.logits(&h).unwrap()
    });
    let d = (&got - want).abs().max().double_value(&[]);
    eprintln!("tiny HF LLaMA: max logit difference {d:.2e}");
    assert!(d < 1e-5, "{d}");
    // Incremental decoding reproduces the full pass.
    let mut cache = KvCache::default();
    let first = ids.narrow(1, 0, 12);
    let rest = ids.narrow(1, 12, 8);
    let _ = tch::no_grad(|| model.forward_embeds(&model.embed(&first).unwrap(), &mut cache, None))
        .unwrap();
    let h = tch::no_grad(|| model.forward_embeds(&model.embed(&rest).unwrap(), &mut cache, None))
        .unwrap();
    let inc = model.logits(&h).unwrap();
    assert!((&inc - want.narrow(1, 12, 8)).abs().max().double_value(&[]) < 1e-5);
}
