//! Round trip with Hugging Face PEFT: our adapter directory is loaded by
//! `PeftModel.from_pretrained` on a tiny random Llama
//! (`python/peft_roundtrip.py` checks every LoRA tensor against ours, that
//! PEFT adapted exactly our modules, and merged == unmerged logits within
//! 1e-5), PEFT saves it back with `save_pretrained`, and our loader reads
//! PEFT's files bitwise equal to what we wrote.
//!
//! Needs the project venv with `peft` (`pip install peft`; override the
//! interpreter with `GRAFT_PYTHON`). Without it the tests print `SKIPPED`,
//! unless both `GRAFT_REQUIRE_TORCH_REFERENCE=1` and `GRAFT_REQUIRE_PEFT=1`
//! are set, which turns the skip into a failure.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use graft_lora::peft::{read_adapter, ADAPTER_WEIGHTS_FILE};
use graft_lora::{LoraConfig, LoraModel};
use safetensors::SafeTensors;
use tch::{nn, Device, Kind, Tensor};

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("GRAFT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import torch, transformers, peft, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(p);
    }
    let msg = format!(
        "{} with torch, transformers and peft not found (run `cargo xtask setup` and `pip install peft`, or set GRAFT_PYTHON)",
        p.display()
    );
    let required = |v: &str| std::env::var(v).as_deref() == Ok("1");
    if required("GRAFT_REQUIRE_TORCH_REFERENCE") && required("GRAFT_REQUIRE_PEFT") {
        panic!("GRAFT_REQUIRE_TORCH_REFERENCE=1 and GRAFT_REQUIRE_PEFT=1 but {msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// The linear layers of the script's tiny Llama (hidden 64, 2 layers,
/// 4 heads / 2 KV heads of dim 16, intermediate 128).
fn tiny_llama_linears() -> Vec<(String, Tensor)> {
    let mut v = Vec::new();
    for l in 0..2 {
        for (n, o, i) in [
            ("self_attn.q_proj", 64, 64),
            ("self_attn.k_proj", 32, 64),
            ("self_attn.v_proj", 32, 64),
            ("self_attn.o_proj", 64, 64),
            ("mlp.gate_proj", 128, 64),
            ("mlp.up_proj", 128, 64),
            ("mlp.down_proj", 64, 128),
        ] {
            v.push((format!("model.layers.{l}.{n}"), Tensor::randn([o, i], CPU)));
        }
    }
    v
}

fn round_trip(py: &std::path::Path, cfg: &LoraConfig, expected_modules: usize, seed: i64) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let lora = LoraModel::new(&vs.root(), cfg, tiny_llama_linears()).unwrap();
    assert_eq!(lora.len(), expected_modules);
    // Random non-zero B (A keeps PEFT's Kaiming init), small enough that
    // the tiny model stays well conditioned but the adapter has an effect.
    tch::no_grad(|| {
        for (_, l) in lora.iter() {
            l.lora_b()
                .shallow_clone()
                .copy_(&(Tensor::randn(l.lora_b().size(), CPU) * 0.05));
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours");
    let theirs = tmp.path().join("peft");
    let outputs = tmp.path().join("logits.safetensors");
    lora.save_pretrained(&ours, Some("tiny-random-llama"))
        .unwrap();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/peft_roundtrip.py");
    let out = Command::new(py)
        .arg(&script)
        .arg("--adapter")
        .arg(&ours)
        .arg("--save")
        .arg(&theirs)
        .arg("--outputs")
        .arg(&outputs)
        .args(["--seed", &seed.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "peft_roundtrip.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("python: {stdout}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        summary["trainable_params"],
        lora.report().trainable,
        "PEFT's trainable count"
    );

    // PEFT's saved adapter, read by our loader, equals ours bitwise.
    let peft_adapter = read_adapter(&theirs).unwrap();
    let back = peft_adapter.config.to_lora_config().unwrap();
    assert_eq!(
        (back.r, back.alpha, back.dropout),
        (cfg.r, cfg.alpha, cfg.dropout)
    );
    assert_eq!(
        peft_adapter
            .weights
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        lora.names().collect::<Vec<_>>()
    );
    for (name, pair) in &peft_adapter.weights {
        let l = lora.get(name).unwrap();
        assert_eq!(pair.lora_a.kind(), Kind::Float);
        assert!(
            pair.lora_a.equal(l.lora_a()),
            "{name}: lora_A differs after PEFT"
        );
        assert!(
            pair.lora_b.equal(l.lora_b()),
            "{name}: lora_B differs after PEFT"
        );
    }
    // And loads into a fresh model of ours.
    let vs2 = nn::VarStore::new(Device::Cpu);
    let mut fresh = LoraModel::new(&vs2.root(), cfg, tiny_llama_linears()).unwrap();
    fresh.load_adapter(&theirs).unwrap();
    for (name, l) in lora.iter() {
        let f = fresh.get(name).unwrap();
        assert!(
            f.lora_a().equal(l.lora_a()) && f.lora_b().equal(l.lora_b()),
            "{name}"
        );
    }
    // The raw tensor bytes in both files are identical too.
    let ours_bytes = std::fs::read(ours.join(ADAPTER_WEIGHTS_FILE)).unwrap();
    let theirs_bytes = std::fs::read(theirs.join(ADAPTER_WEIGHTS_FILE)).unwrap();
    let (a, b) = (
        SafeTensors::deserialize(&ours_bytes).unwrap(),
        SafeTensors::deserialize(&theirs_bytes).unwrap(),
    );
    let (mut na, mut nb) = (a.names(), b.names());
    na.sort_unstable();
    nb.sort_unstable();
    assert_eq!(na, nb);
    for n in na {
        let (ta, tb) = (a.tensor(n).unwrap(), b.tensor(n).unwrap());
        assert_eq!(
            (ta.dtype(), ta.shape(), ta.data()),
            (tb.dtype(), tb.shape(), tb.data()),
            "{n}"
        );
    }

    // PEFT's merged and unmerged logits agree; the adapter changed them.
    let logits = std::fs::read(&outputs).unwrap();
    let st = SafeTensors::deserialize(&logits).unwrap();
    let get = |k: &str| {
        let v = st.tensor(k).unwrap();
        let shape: Vec<i64> = v.shape().iter().map(|&d| d as i64).collect();
        Tensor::from_data_size(v.data(), &shape, Kind::Float)
    };
    let (unmerged, merged, base) = (get("unmerged"), get("merged"), get("base"));
    assert_eq!(unmerged.size(), [2, 12, 128]);
    let d = (&merged - &unmerged).abs().max().double_value(&[]);
    assert!(d < 1e-5, "PEFT merged vs unmerged: {d:e}");
    assert!((&unmerged - &base).abs().max().double_value(&[]) > 1e-4);
}

#[test]
fn peft_round_trip_default_config() {
    let _rng = global_rng();
    let Some(py) = python() else { return };
    round_trip(&py, &LoraConfig::default(), 4, 0);
}

#[test]
fn peft_round_trip_glob_targets_alpha_not_r() {
    let _rng = global_rng();
    let Some(py) = python() else { return };
    let cfg = LoraConfig::new(4, 12.0)
        .with_dropout(0.1)
        .with_target_modules(["o_proj", "model.layers.1.mlp.*_proj"]);
    round_trip(&py, &cfg, 5, 7);
}

/// libtorch has one global CPU generator and the harness runs tests on
/// several threads: every test of this binary that seeds it or draws from
/// it (initialisation, dropout, sampling) holds this lock, so a seeded
/// section is never interleaved with another test's draws.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
