//! The whole ELCoRec pipeline on a tiny synthetic dataset: classic
//! baselines, GAT pre-training, RAP prompts with retrieval, and LLM
//! fine-tuning with the soft-prompt token on graft-lm's tiny random LLaMA
//! fixture (character-level tokenizer with the placeholder registered as a
//! special token).

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::path::PathBuf;

use graft_data::synthetic::{planted_clusters, SyntheticConfig};
use graft_elcorec::config::{
    ClassicConfig, DinConfig, GatExpertConfig, LlmConfig, LlmVariant, SampleConfig,
};
use graft_elcorec::pipeline::{pretrain_gat, prompt_set, run_classic, run_din, run_llm, Runtime};
use graft_elcorec::report::{paired_markdown, paired_readings, PairedCtr};
use graft_elcorec::{CtrData, CtrLlm, ElcorecError, RapBuilder};
use graft_lm::Llama;
use graft_prompt::rap::{Domain, RapConfig};
use graft_retrieval::CosineIndex;
use ndarray::Array2;
use tch::{Device, Kind, Tensor};

const PLACEHOLDER: &str = "<ph>";

fn rt() -> Runtime {
    Runtime {
        device: Device::Cpu,
        progress: false,
    }
}

/// 60 users in 3 taste clusters; ratings 4-5 inside the user's cluster,
/// 1-3 outside (so the MovieLens label rule, rating > 3, is the cluster
/// match); profiles have gender, age, occupation (the cluster) and location.
fn data(k_prompt: usize) -> CtrData {
    let syn = planted_clusters(&SyntheticConfig {
        users: 60,
        items: 60,
        clusters: 3,
        interactions_per_user: 20,
        in_cluster: 0.6,
        seed: 3,
    })
    .expect("synthetic");
    CtrData::with_domain(
        syn.dataset,
        Domain::Movies,
        SampleConfig {
            k_gat: 6,
            k_prompt,
            llm_train_samples: Some(48),
            valid_samples: 120,
            test_samples: 90,
            seed: 0,
            ..SampleConfig::default()
        },
    )
    .expect("ctr data")
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../graft-lm/tests/fixtures/llama_tiny")
}

/// Characters of the fixture's 64-token vocabulary (`<unk>` 0, `<s>` 1,
/// `</s>` 2, lower-case letters, digits, punctuation) plus the placeholder
/// as an atomic special token.
fn tokenizer() -> tokenizers::Tokenizer {
    let chars = ('a'..='z')
        .chain('0'..='9')
        .chain(['_', ',', '.', ':', '?', '(', ')', '*', '\'', '-']);
    let tok =
        graft_lm::tokenizer::char_level_tokenizer(chars, &[PLACEHOLDER], true).expect("tokenizer");
    assert!(tok.get_vocab_size(true) <= 64);
    tok
}

/// Item "text embeddings" that put items of one cluster close together.
fn index(data: &CtrData) -> CosineIndex {
    let n = data.dataset.n_items();
    let mut e = Array2::<f32>::zeros((n, 4));
    for i in 0..n {
        let name = data.dataset.items.raw(i as u32).expect("raw id");
        let raw: usize = name.parse().expect("numeric id");
        e[[i, (raw - 1) % 3]] = 1.0;
        e[[i, 3]] = 0.1 * (i as f32).sin();
    }
    CosineIndex::new(e.view()).expect("index")
}

fn llama() -> Llama {
    Llama::from_hf_dir(fixture(), Device::Cpu)
        .expect("fixture")
        .0
}

fn llm_cfg(variant: LlmVariant) -> LlmConfig {
    LlmConfig {
        variant,
        placeholder: PLACEHOLDER.into(),
        cue: "\nanswer:".into(),
        answers: (" yes".into(), " no".into()),
        micro_batch: 2,
        accumulation: 2,
        max_steps: 4,
        eval_every: 2,
        checkpoint_every: 2,
        valid_samples: 12,
        ..LlmConfig::default()
    }
}

fn rap(data: &CtrData, variant: LlmVariant) -> RapBuilder {
    let mut cfg = RapConfig::new(data.domain).with_variant(variant.rap());
    if variant.gat_token() {
        cfg = cfg.with_placeholder(PLACEHOLDER);
    }
    RapBuilder::new(index(data), cfg, data.config.k_prompt)
}

#[test]
fn gat_and_fm_learn_the_planted_taste_clusters() {
    let _rng = global_rng();
    let data = data(3);
    let dir = tempfile::tempdir().expect("tmp");
    let gat_cfg = GatExpertConfig {
        batch_size: 64,
        max_epochs: 30,
        ..GatExpertConfig::default()
    };
    let (_expert, gat) = pretrain_gat(&data, &gat_cfg, &dir.path().join("gat"), rt()).expect("gat");
    let fm = run_classic(
        &data,
        &ClassicConfig {
            factors: Some(4),
            max_epochs: 30,
            patience: 5,
            ..ClassicConfig::default()
        },
        &dir.path().join("fm"),
        rt(),
    )
    .expect("fm");
    let lr = run_classic(
        &data,
        &ClassicConfig::default(),
        &dir.path().join("lr"),
        rt(),
    )
    .expect("lr");
    let din = run_din(
        &data,
        &DinConfig {
            history: 6,
            batch_size: 64,
            max_epochs: 30,
            patience: 5,
            ..DinConfig::default()
        },
        &dir.path().join("din"),
        rt(),
    )
    .expect("din");
    eprintln!(
        "AUC gat {:.3} fm {:.3} lr {:.3} din {:.3}",
        gat.test.auc, fm.test.auc, lr.test.auc, din.test.auc
    );
    assert!(din.test.auc > 0.75, "DIN AUC {}", din.test.auc);
    assert_eq!(din.model, "din");
    assert_eq!(gat.test.n, data.test.len());
    // The label is the user-cluster x item-cluster match: models with
    // interactions recover it, a linear model only through biases.
    assert!(gat.test.auc > 0.75, "GAT AUC {}", gat.test.auc);
    assert!(fm.test.auc > 0.75, "FM AUC {}", fm.test.auc);
    for r in [&gat, &fm, &lr] {
        assert!(r.test.log_loss.is_finite() && r.test.auc_ci.is_some());
    }
    // A finished run is read back, not retrained.
    let again = run_classic(
        &data,
        &ClassicConfig::default(),
        &dir.path().join("lr"),
        rt(),
    )
    .expect("lr again");
    assert_eq!(again.test.auc, lr.test.auc);
    assert_eq!(again.training.steps, lr.training.steps);
    assert_eq!(again.probabilities, lr.probabilities);
    // Paired differences on the stored test predictions.
    let boot = graft_elcorec::pipeline::bootstrap();
    let readings = paired_readings(&[gat.clone(), fm.clone(), lr.clone()], &boot).expect("paired");
    let names: Vec<(&str, &str)> = readings
        .iter()
        .map(|p| (p.a.as_str(), p.b.as_str()))
        .collect();
    assert_eq!(names, [("gat", "lr")]);
    let p = &readings[0];
    assert_eq!(p.n, data.test.len());
    assert!((p.auc.estimate - (gat.test.auc - lr.test.auc)).abs() < 1e-12);
    assert!((p.log_loss.estimate - (gat.test.log_loss - lr.test.log_loss)).abs() < 1e-12);
    assert!(p.auc.lower <= p.auc.estimate && p.auc.estimate <= p.auc.upper);
    assert!(paired_markdown(&readings).contains("| gat - lr | 90 |"));
    let mut other = fm.clone();
    other.labels.pop();
    other.probabilities.pop();
    assert!(PairedCtr::new(&gat, &other, &boot).is_err());
    other.probabilities.clear();
    assert!(PairedCtr::new(&gat, &other, &boot).is_err());
}

#[test]
fn rap_prompts_retrieve_from_the_history_and_place_the_token() {
    let _rng = global_rng();
    let data = data(3);
    let s = data.test[0];
    let builder = rap(&data, LlmVariant::Elcorec);
    let positions = builder.retrieved_positions(&data, &s).expect("retrieve");
    assert_eq!(positions.len(), 3);
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "time order: {positions:?}"
    );
    // Retrieval prefers the target's cluster (synthetic raw id - 1 mod 3).
    let cluster = |item: u32| {
        (data
            .dataset
            .items
            .raw(item)
            .expect("raw")
            .parse::<usize>()
            .expect("id")
            - 1)
            % 3
    };
    let history = data.history(&s);
    let same = history
        .iter()
        .filter(|e| cluster(e.item) == cluster(s.item))
        .count();
    let hits = positions
        .iter()
        .filter(|&&p| cluster(history[p].item) == cluster(s.item))
        .count();
    assert_eq!(hits, same.min(3));
    let prompt = builder.prompt(&data, &s).expect("prompt");
    assert!(prompt.text.contains(PLACEHOLDER));
    let llm = CtrLlm::new(
        llama(),
        tokenizer(),
        &llm_cfg(LlmVariant::Elcorec),
        Some(32),
    )
    .expect("llm");
    let enc = llm.encode(&prompt).expect("encode");
    let ph = enc.placeholder.expect("placeholder position");
    assert_eq!(Some(enc.ids[ph]), tokenizer().token_to_id(PLACEHOLDER));
    // Recent-only prompts have no retrieved list.
    let recent = rap(&data, LlmVariant::NoRap)
        .prompt(&data, &s)
        .expect("prompt");
    assert!(!recent.text.contains("which reflect"));
}

#[test]
fn the_gat_vector_reaches_the_answer_logits() {
    let _rng = global_rng();
    let data = data(2);
    let llm =
        CtrLlm::new(llama(), tokenizer(), &llm_cfg(LlmVariant::Elcorec), Some(8)).expect("llm");
    let builder = rap(&data, LlmVariant::Elcorec);
    let enc = llm
        .encode(&builder.prompt(&data, &data.test[0]).expect("prompt"))
        .expect("encode");
    let a = Tensor::zeros([1, 8], (Kind::Float, Device::Cpu));
    let b = Tensor::ones([1, 8], (Kind::Float, Device::Cpu));
    let la = llm.answer_logits(&[&enc], Some(&a), false).expect("logits");
    let lb = llm.answer_logits(&[&enc], Some(&b), false).expect("logits");
    assert_eq!(la.size(), [1, 2]);
    assert!(f64::try_from(la.subtract(&lb).abs().max()).expect("max") > 1e-6);
    // Without vectors the model refuses to run.
    let err = llm
        .answer_logits(&[&enc], None, false)
        .expect_err("no vectors");
    assert!(matches!(err, ElcorecError::Config(_)), "{err}");
    // Batched scoring equals one-by-one scoring (padding never leaks).
    let encs: Vec<_> = data.test[..3]
        .iter()
        .map(|s| {
            llm.encode(&builder.prompt(&data, s).expect("prompt"))
                .expect("encode")
        })
        .collect();
    let g = Tensor::randn([3, 8], (Kind::Float, Device::Cpu));
    let batch = llm.predict(&encs, Some(&g), false).expect("batch");
    for (i, e) in encs.iter().enumerate() {
        let one = llm
            .predict(
                std::slice::from_ref(e),
                Some(&g.narrow(0, i as i64, 1)),
                false,
            )
            .expect("one");
        assert!(
            (one[0] - batch[i]).abs() < 1e-5,
            "{} vs {}",
            one[0],
            batch[i]
        );
    }
    // A bf16 base (same seed, so the same adapters and projection) scores
    // like the f32 one, up to bf16 rounding.
    let cfg16 = LlmConfig {
        bf16_base: true,
        ..llm_cfg(LlmVariant::Elcorec)
    };
    let llm16 = CtrLlm::new(llama(), tokenizer(), &cfg16, Some(8)).expect("bf16 llm");
    let fast = llm16.predict(&encs, Some(&g), false).expect("bf16 batch");
    for (f, e) in fast.iter().zip(&batch) {
        assert!((f - e).abs() < 0.02, "bf16 {f} vs f32 {e}");
    }
}

#[test]
fn llm_variants_train_score_and_resume_from_metrics() {
    let _rng = global_rng();
    let data = data(2);
    let dir = tempfile::tempdir().expect("tmp");
    let gat_cfg = GatExpertConfig {
        batch_size: 64,
        max_steps: Some(20),
        ..GatExpertConfig::default()
    };
    let (expert, _) = pretrain_gat(&data, &gat_cfg, &dir.path().join("gat"), rt()).expect("gat");
    for v in [LlmVariant::Elcorec, LlmVariant::NoGatToken] {
        let mut cfg = llm_cfg(v);
        if v == LlmVariant::Elcorec {
            // One epoch of the 48 training prompts in steps of 4: 12 steps
            // (the official budget), the learning rate decaying linearly.
            cfg.max_steps = 1000;
        }
        let run_dir = dir.path().join(v.name());
        let r = run_llm(
            &data,
            Some(&expert),
            &rap(&data, v),
            llama(),
            tokenizer(),
            &cfg,
            &run_dir,
            rt(),
        )
        .expect("llm run");
        assert_eq!(r.model, v.name());
        assert_eq!(r.test.n, data.test.len());
        let steps = if v == LlmVariant::Elcorec { 12 } else { 4 };
        assert_eq!(r.training.steps, steps);
        assert_eq!(r.samples_seen, steps * 4);
        assert_eq!(r.probabilities.len(), data.test.len());
        if v == LlmVariant::Elcorec {
            let lrs: Vec<f64> = std::fs::read_to_string(run_dir.join("log.jsonl"))
                .unwrap()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|j| j["lr"].as_f64())
                .collect();
            assert_eq!(lrs.len(), 12);
            assert!((lrs[0] - 1e-3).abs() < 1e-12, "{lrs:?}");
            assert!((lrs[11] - 1e-3 / 12.0).abs() < 1e-12, "{lrs:?}");
            assert!(lrs.windows(2).all(|w| w[1] < w[0]), "{lrs:?}");
        }
        assert!((0.0..=1.0).contains(&r.test.auc) && r.test.log_loss.is_finite());
        assert!(
            run_dir.join("metrics.json").is_file() && run_dir.join("best.safetensors").is_file()
        );
        let again = run_llm(
            &data,
            Some(&expert),
            &rap(&data, v),
            llama(),
            tokenizer(),
            &cfg,
            &run_dir,
            rt(),
        )
        .expect("stored");
        assert_eq!(again.test.auc, r.test.auc);
    }
    // The token variant needs the expert.
    let err = run_llm(
        &data,
        None,
        &rap(&data, LlmVariant::NoRap),
        llama(),
        tokenizer(),
        &llm_cfg(LlmVariant::NoRap),
        &dir.path().join("no-expert"),
        rt(),
    )
    .expect_err("needs the expert");
    assert!(err.to_string().contains("GAT expert"), "{err}");
    // Prompt sets carry one vector per prompt.
    let llm = CtrLlm::new(
        llama(),
        tokenizer(),
        &llm_cfg(LlmVariant::Elcorec),
        Some(expert.dim()),
    )
    .expect("llm");
    let set = prompt_set(
        &llm,
        &rap(&data, LlmVariant::Elcorec),
        &data,
        Some(&expert),
        &data.test[..5],
    )
    .expect("set");
    assert_eq!(set.gat.as_ref().map(Tensor::size), Some(vec![5, 32]));
    assert_eq!(set.len(), 5);
}

#[test]
fn non_ctr_formats_are_refused_with_a_reason() {
    let _rng = global_rng();
    let syn = planted_clusters(&SyntheticConfig {
        users: 10,
        items: 20,
        clusters: 2,
        interactions_per_user: 8,
        in_cluster: 0.9,
        seed: 1,
    })
    .expect("synthetic");
    let err = CtrData::new(syn.dataset, SampleConfig::default()).expect_err("format");
    assert!(err.to_string().contains("movies or books"), "{err}");
}

/// libtorch has one global CPU generator and the harness runs tests on
/// several threads: every test of this binary that seeds it or draws from
/// it (initialisation, dropout, sampling) holds this lock, so a seeded
/// section is never interleaved with another test's draws.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
