//! PEFT-format save/load: bitwise round trip, file layout, and typed errors
//! for corrupted, mis-shaped, missing and extra tensors.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use graft_lora::peft::{
    self, lora_key, read_adapter, LoraWeight, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE,
};
use graft_lora::{LoraConfig, LoraError, LoraModel};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tch::{nn, Device, Kind, Tensor};

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

fn base(layers: usize) -> Vec<(String, Tensor)> {
    let mut v = Vec::new();
    for l in 0..layers {
        for (n, o, i) in [("q_proj", 16, 16), ("k_proj", 8, 16), ("v_proj", 8, 16)] {
            v.push((
                format!("model.layers.{l}.self_attn.{n}"),
                Tensor::randn([o, i], CPU),
            ));
        }
    }
    v
}

/// A model with random non-zero A and B.
fn model(vs: &nn::VarStore, cfg: &LoraConfig, seed: i64) -> LoraModel {
    tch::manual_seed(seed);
    let lora = LoraModel::new(&vs.root(), cfg, base(2)).unwrap();
    tch::no_grad(|| {
        for (_, l) in lora.iter() {
            l.lora_b()
                .shallow_clone()
                .copy_(&Tensor::randn(l.lora_b().size(), CPU));
        }
    });
    lora
}

fn assert_same(a: &LoraModel, b: &LoraModel) {
    assert_eq!(a.names().collect::<Vec<_>>(), b.names().collect::<Vec<_>>());
    for (n, la) in a.iter() {
        let lb = b.get(n).unwrap();
        assert!(la.lora_a().equal(lb.lora_a()), "{n} A");
        assert!(la.lora_b().equal(lb.lora_b()), "{n} B");
    }
}

#[test]
fn save_load_round_trip_is_bitwise() {
    let _rng = global_rng();
    let dir = tempfile::tempdir().unwrap();
    let cfg = LoraConfig::new(4, 12.0).with_dropout(0.1);
    let vs = nn::VarStore::new(Device::Cpu);
    let saved = model(&vs, &cfg, 1);
    saved
        .save_pretrained(dir.path(), Some("tiny-llama"))
        .unwrap();
    // Only the two files, no temporaries left behind.
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]);

    // Load into a fresh model with different random A.
    let vs2 = nn::VarStore::new(Device::Cpu);
    let mut loaded = model(&vs2, &cfg, 2);
    assert!(!loaded
        .get("model.layers.0.self_attn.q_proj")
        .unwrap()
        .lora_a()
        .equal(
            saved
                .get("model.layers.0.self_attn.q_proj")
                .unwrap()
                .lora_a()
        ));
    loaded.load_adapter(dir.path()).unwrap();
    assert_same(&saved, &loaded);

    // Loading into a merged model keeps it merged and consistent.
    let vs3 = nn::VarStore::new(Device::Cpu);
    let mut merged = model(&vs3, &cfg, 3);
    merged.merge_all().unwrap();
    merged.load_adapter(dir.path()).unwrap();
    assert!(merged.is_merged());
    assert_same(&saved, &merged);

    // from_pretrained takes the configuration from the file.
    let vs4 = nn::VarStore::new(Device::Cpu);
    tch::manual_seed(1);
    let fresh = LoraModel::from_pretrained(&vs4.root(), base(2), dir.path()).unwrap();
    assert_eq!(fresh.config(), &cfg);
    assert_same(&saved, &fresh);
}

#[test]
fn file_layout_matches_peft() {
    let _rng = global_rng();
    let dir = tempfile::tempdir().unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let lora = model(&vs, &LoraConfig::default(), 4);
    lora.save_pretrained(dir.path(), Some("HuggingFaceTB/SmolLM2-135M-Instruct"))
        .unwrap();
    let bytes = std::fs::read(dir.path().join(ADAPTER_WEIGHTS_FILE)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort_unstable();
    assert_eq!(names.len(), 8);
    assert_eq!(
        names[0],
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    );
    let a = st
        .tensor("base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight")
        .unwrap();
    let b = st
        .tensor("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight")
        .unwrap();
    assert_eq!((a.dtype(), a.shape()), (Dtype::F32, &[8usize, 16][..]));
    assert_eq!((b.dtype(), b.shape()), (Dtype::F32, &[8usize, 8][..]));
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(ADAPTER_CONFIG_FILE)).unwrap())
            .unwrap();
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["task_type"], "CAUSAL_LM");
    assert_eq!(json["r"], 8);
    assert_eq!(json["lora_alpha"], 16);
    assert_eq!(json["lora_dropout"], 0.05);
    assert_eq!(
        json["target_modules"],
        serde_json::json!(["q_proj", "v_proj"])
    );
    assert_eq!(json["bias"], "none");
    assert_eq!(json["fan_in_fan_out"], false);
    assert_eq!(json["inference_mode"], true);
    assert_eq!(
        json["base_model_name_or_path"],
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    );

    // Glob targets are written as the exact module names.
    let dir2 = tempfile::tempdir().unwrap();
    let vs2 = nn::VarStore::new(Device::Cpu);
    let cfg = LoraConfig::default().with_target_modules(["model.layers.1.*"]);
    let lora = LoraModel::new(&vs2.root(), &cfg, base(2)).unwrap();
    lora.save_pretrained(dir2.path(), None).unwrap();
    let cfg2 = peft::read_adapter_config(dir2.path()).unwrap();
    assert_eq!(
        cfg2.target_modules,
        Some(peft::TargetModules::List(vec![
            "model.layers.1.self_attn.k_proj".into(),
            "model.layers.1.self_attn.q_proj".into(),
            "model.layers.1.self_attn.v_proj".into(),
        ]))
    );
}

/// Rewrites the weights file with `edit` applied to the (key, tensor) list.
fn rewrite(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let path = dir.join(ADAPTER_WEIGHTS_FILE);
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut list: Vec<(String, Tensor)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| {
            let shape: Vec<i64> = v.shape().iter().map(|&d| d as i64).collect();
            (k, Tensor::from_data_size(v.data(), &shape, Kind::Float))
        })
        .collect();
    edit(&mut list);
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = list
        .iter()
        .map(|(k, t)| {
            let v: Vec<f32> = Vec::try_from(t.contiguous().view(-1)).unwrap();
            (
                k.clone(),
                t.size().iter().map(|&d| d as usize).collect(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(&str, TensorView<'_>)> = owned
        .iter()
        .map(|(k, s, b)| {
            (
                k.as_str(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(&path, safetensors::tensor::serialize(views, None).unwrap()).unwrap();
}

fn saved_dir(cfg: &LoraConfig) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    model(&vs, cfg, 5)
        .save_pretrained(dir.path(), None)
        .unwrap();
    dir
}

fn load_err(dir: &Path, cfg: &LoraConfig) -> LoraError {
    let vs = nn::VarStore::new(Device::Cpu);
    let mut m = model(&vs, cfg, 6);
    let before: Vec<Tensor> = m.iter().map(|(_, l)| l.lora_a().copy()).collect();
    let err = m.load_adapter(dir).unwrap_err();
    // The model is unchanged on error.
    for ((_, l), b) in m.iter().zip(&before) {
        assert!(l.lora_a().equal(b));
    }
    err
}

#[test]
fn corrupted_files_are_errors() {
    let _rng = global_rng();
    let cfg = LoraConfig::default();
    let dir = saved_dir(&cfg);
    let w = dir.path().join(ADAPTER_WEIGHTS_FILE);
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() - 10]).unwrap();
    assert!(matches!(
        load_err(dir.path(), &cfg),
        LoraError::Safetensors { .. }
    ));
    std::fs::write(&w, b"garbage").unwrap();
    assert!(matches!(
        load_err(dir.path(), &cfg),
        LoraError::Safetensors { .. }
    ));
    std::fs::remove_file(&w).unwrap();
    assert!(matches!(load_err(dir.path(), &cfg), LoraError::Io { .. }));

    let dir = saved_dir(&cfg);
    let c = dir.path().join(ADAPTER_CONFIG_FILE);
    std::fs::write(&c, "{\"r\": 8,").unwrap();
    let err = load_err(dir.path(), &cfg);
    assert!(matches!(err, LoraError::Json { .. }), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn mis_shaped_missing_and_extra_tensors_are_errors() {
    let _rng = global_rng();
    let cfg = LoraConfig::default();
    let q_a = lora_key("model.layers.0.self_attn.q_proj", LoraWeight::A);
    let q_b = lora_key("model.layers.0.self_attn.q_proj", LoraWeight::B);

    // Wrong rank in A: caught by the reader.
    let dir = saved_dir(&cfg);
    rewrite(dir.path(), |l| {
        for (k, t) in l.iter_mut() {
            if *k == q_a {
                *t = Tensor::zeros([7, 16], CPU);
            }
        }
    });
    match load_err(dir.path(), &cfg) {
        LoraError::Shape { expected, got, .. } => {
            assert_eq!((expected, got), (vec![8, 16], vec![7, 16]))
        }
        e => panic!("{e}"),
    }
    // Right rank, wrong input size: caught against the model.
    let dir = saved_dir(&cfg);
    rewrite(dir.path(), |l| {
        for (k, t) in l.iter_mut() {
            if *k == q_a {
                *t = Tensor::zeros([8, 15], CPU);
            }
        }
    });
    match load_err(dir.path(), &cfg) {
        LoraError::Shape { expected, got, .. } => {
            assert_eq!((expected, got), (vec![8, 16], vec![8, 15]))
        }
        e => panic!("{e}"),
    }
    // B without A.
    let dir = saved_dir(&cfg);
    rewrite(dir.path(), |l| l.retain(|(k, _)| *k != q_a));
    match load_err(dir.path(), &cfg) {
        LoraError::MissingTensor { key, .. } => assert_eq!(key, q_a),
        e => panic!("{e}"),
    }
    // A whole module missing.
    let dir = saved_dir(&cfg);
    rewrite(dir.path(), |l| l.retain(|(k, _)| *k != q_a && *k != q_b));
    match load_err(dir.path(), &cfg) {
        LoraError::MissingTensor { key, .. } => assert_eq!(key, q_a),
        e => panic!("{e}"),
    }
    // A module the model does not adapt.
    let dir = saved_dir(&cfg);
    let k_a = lora_key("model.layers.0.self_attn.k_proj", LoraWeight::A);
    let k_b = lora_key("model.layers.0.self_attn.k_proj", LoraWeight::B);
    rewrite(dir.path(), |l| {
        l.push((k_a.clone(), Tensor::zeros([8, 16], CPU)));
        l.push((k_b, Tensor::zeros([8, 8], CPU)));
    });
    match load_err(dir.path(), &cfg) {
        LoraError::UnexpectedTensor { key, .. } => assert_eq!(key, k_a),
        e => panic!("{e}"),
    }
    // A key that is not a LoRA key at all.
    let dir = saved_dir(&cfg);
    rewrite(dir.path(), |l| {
        l.push((
            "base_model.model.lm_head.weight".into(),
            Tensor::zeros([2, 2], CPU),
        ))
    });
    assert!(matches!(
        load_err(dir.path(), &cfg),
        LoraError::UnexpectedTensor { .. }
    ));
    assert!(matches!(
        read_adapter(dir.path()),
        Err(LoraError::UnexpectedTensor { .. })
    ));
}

#[test]
fn config_mismatch_and_unsupported_settings() {
    let _rng = global_rng();
    let dir = saved_dir(&LoraConfig::new(8, 32.0));
    match load_err(dir.path(), &LoraConfig::default()) {
        LoraError::ConfigMismatch { field, .. } => assert_eq!(field, "lora_alpha"),
        e => panic!("{e}"),
    }
    let dir = saved_dir(&LoraConfig::new(4, 16.0));
    match load_err(dir.path(), &LoraConfig::default()) {
        LoraError::ConfigMismatch { field, .. } => assert_eq!(field, "r"),
        e => panic!("{e}"),
    }
    for (field, value) in [
        ("use_dora", serde_json::json!(true)),
        ("use_rslora", serde_json::json!(true)),
        ("bias", serde_json::json!("all")),
        ("rank_pattern", serde_json::json!({"q_proj": 4})),
        ("target_modules", serde_json::json!(".*q_proj")),
        ("layers_to_transform", serde_json::json!([0])),
        ("exclude_modules", serde_json::json!(["k_proj"])),
        ("use_qalora", serde_json::json!(true)),
    ] {
        let dir = saved_dir(&LoraConfig::default());
        let c = dir.path().join(ADAPTER_CONFIG_FILE);
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&c).unwrap()).unwrap();
        json[field] = value;
        std::fs::write(&c, serde_json::to_vec(&json).unwrap()).unwrap();
        match load_err(dir.path(), &LoraConfig::default()) {
            LoraError::Unsupported { field: f, .. } => assert_eq!(f, field),
            e => panic!("{field}: {e}"),
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
