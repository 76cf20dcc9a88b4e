//! `LoraModel`: name matching over a model, var-store names, report,
//! merge_all/unmerge_all, state-dict construction.

#![allow(clippy::unwrap_used, clippy::panic)]

use graft_lora::{BaseLinear, LoraConfig, LoraError, LoraModel, TrainableReport};
use tch::{nn, Device, Kind, Tensor};

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

/// The linears of a tiny Llama (hidden 64, 2 layers, 4 heads / 2 KV heads,
/// intermediate 128): (name, out, in).
fn tiny_llama_linears() -> Vec<(String, i64, i64)> {
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
            v.push((format!("model.layers.{l}.{n}"), o, i));
        }
    }
    v
}

fn base() -> Vec<(String, Tensor)> {
    tiny_llama_linears()
        .into_iter()
        .map(|(n, o, i)| (n, Tensor::randn([o, i], CPU) / (i as f64).sqrt()))
        .collect()
}

#[test]
fn default_config_adapts_q_and_v_only() {
    let _rng = global_rng();
    let vs = nn::VarStore::new(Device::Cpu);
    let lora = LoraModel::new(&vs.root(), &LoraConfig::default(), base()).unwrap();
    assert_eq!(
        lora.names().collect::<Vec<_>>(),
        [
            "model.layers.0.self_attn.q_proj",
            "model.layers.0.self_attn.v_proj",
            "model.layers.1.self_attn.q_proj",
            "model.layers.1.self_attn.v_proj",
        ]
    );
    assert!(lora.get("model.layers.0.self_attn.k_proj").is_none());
    let q = lora.get("model.layers.1.self_attn.q_proj").unwrap();
    assert_eq!(
        (q.rank(), q.in_features(), q.out_features(), q.scaling()),
        (8, 64, 64, 2.0)
    );
    let mut names: Vec<String> = vs.variables().into_keys().collect();
    names.sort();
    assert_eq!(names.len(), 8);
    assert_eq!(names[0], "model.layers.0.self_attn.q_proj.lora_A.weight");
    assert_eq!(names[7], "model.layers.1.self_attn.v_proj.lora_B.weight");
    assert_eq!(vs.trainable_variables().len(), 8);
}

#[test]
fn report_numbers() {
    let _rng = global_rng();
    let vs = nn::VarStore::new(Device::Cpu);
    let lora = LoraModel::new(&vs.root(), &LoraConfig::default(), base()).unwrap();
    let base_total: i64 = tiny_llama_linears().iter().map(|(_, o, i)| o * i).sum();
    // q: 8 * (64 + 64), v: 8 * (64 + 32), two layers.
    let trainable = 2 * (8 * 128 + 8 * 96);
    let r = lora.report();
    assert_eq!(
        r,
        TrainableReport {
            trainable,
            total: base_total + trainable
        }
    );
    assert_eq!(trainable, 3584);
    assert_eq!(base_total, 2 * (4096 + 2048 + 2048 + 4096 + 3 * 8192));
    let total = base_total + trainable;
    assert_eq!(
        r.to_string(),
        format!(
            "trainable params: 3,584 || all params: {} || trainable%: {:.4}",
            format_thousands(total),
            100.0 * trainable as f64 / total as f64
        )
    );
    // Embeddings etc. outside the registry.
    let with = r.with_frozen(128 * 64);
    assert_eq!(with.total, total + 8192);
    assert_eq!(
        TrainableReport {
            trainable: 0,
            total: 0
        }
        .percent(),
        0.0
    );
    assert_eq!(
        TrainableReport {
            trainable: 1_234_567,
            total: 134_515_008
        }
        .to_string(),
        "trainable params: 1,234,567 || all params: 134,515,008 || trainable%: 0.9178"
    );
}

fn format_thousands(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn custom_targets_and_state_dict() {
    let _rng = global_rng();
    let vs = nn::VarStore::new(Device::Cpu);
    let mut sd: Vec<(String, Tensor)> = base()
        .into_iter()
        .map(|(n, t)| (format!("{n}.weight"), t))
        .collect();
    sd.push((
        "model.layers.0.mlp.up_proj.bias".into(),
        Tensor::zeros([128], CPU),
    ));
    sd.push((
        "model.embed_tokens.weight".into(),
        Tensor::zeros([128, 64], CPU),
    ));
    sd.push(("model.norm.weight".into(), Tensor::ones([64], CPU)));
    let cfg = LoraConfig::new(4, 12.0)
        .with_target_modules(["up_proj", "model.layers.1.self_attn.?_proj"]);
    let lora = LoraModel::from_state_dict(&vs.root(), &cfg, sd).unwrap();
    assert_eq!(
        lora.names().collect::<Vec<_>>(),
        [
            "model.layers.0.mlp.up_proj",
            "model.layers.1.mlp.up_proj",
            "model.layers.1.self_attn.k_proj",
            "model.layers.1.self_attn.o_proj",
            "model.layers.1.self_attn.q_proj",
            "model.layers.1.self_attn.v_proj",
        ]
    );
    assert!(lora
        .get("model.layers.0.mlp.up_proj")
        .unwrap()
        .bias()
        .is_some());
    let base_total: i64 = tiny_llama_linears()
        .iter()
        .map(|(_, o, i)| o * i)
        .sum::<i64>()
        + 128
        + 128 * 64
        + 64;
    let trainable = 4 * (2 * (64 + 128) + (64 + 64) + (64 + 32) + (64 + 64) + (64 + 32));
    assert_eq!(
        lora.report(),
        TrainableReport {
            trainable,
            total: base_total + trainable
        }
    );
}

#[test]
fn merge_all_and_unmerge_all() {
    let _rng = global_rng();
    tch::manual_seed(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let base = base();
    let originals: Vec<Tensor> = base.iter().map(|(_, t)| t.copy()).collect();
    let mut lora = LoraModel::new(
        &vs.root(),
        &LoraConfig::new(4, 12.0),
        base.iter().map(|(n, t)| (n.clone(), t.shallow_clone())),
    )
    .unwrap();
    tch::no_grad(|| {
        for (_, l) in lora.iter() {
            l.lora_b()
                .shallow_clone()
                .copy_(&(Tensor::randn(l.lora_b().size(), CPU) * 0.5));
        }
    });
    let x = Tensor::randn([5, 64], CPU);
    let names: Vec<String> = lora.names().map(str::to_owned).collect();
    let before: Vec<Tensor> = names
        .iter()
        .map(|n| lora.forward_t(n, &x, false).unwrap())
        .collect();
    lora.merge_all().unwrap();
    assert!(lora.is_merged());
    for (n, b) in names.iter().zip(&before) {
        let d = (lora.forward_t(n, &x, false).unwrap() - b)
            .abs()
            .max()
            .double_value(&[]);
        assert!(d < 1e-5, "{n}: {d:e}");
    }
    lora.unmerge_all().unwrap();
    assert!(!lora.is_merged());
    for ((n, t), o) in base.iter().zip(&originals) {
        let d = (t - o).abs().max().double_value(&[]);
        assert!(d < 1e-6, "{n}: {d:e}");
    }
    assert!(matches!(
        lora.forward_t("model.layers.0.self_attn.k_proj", &x, false),
        Err(LoraError::UnknownModule { .. })
    ));
}

#[test]
fn construction_errors() {
    let _rng = global_rng();
    let vs = nn::VarStore::new(Device::Cpu);
    let w = || Tensor::zeros([4, 4], CPU);
    let none = LoraModel::new(&vs.root(), &LoraConfig::default(), [("model.k_proj", w())]);
    assert!(matches!(none, Err(LoraError::NoTargetModules { .. })));
    let dup = LoraModel::new(
        &vs.root(),
        &LoraConfig::default(),
        [("a.q_proj", w()), ("a.q_proj", w())],
    );
    assert!(matches!(dup, Err(LoraError::Duplicate { .. })));
    let bad = LoraModel::new(&vs.root(), &LoraConfig::default(), [("a..q_proj", w())]);
    assert!(matches!(bad, Err(LoraError::InvalidName { .. })));
    let bias = LoraModel::new(
        &vs.root(),
        &LoraConfig::default(),
        [(
            "b.q_proj",
            BaseLinear::new(w(), Some(Tensor::zeros([3], CPU))),
        )],
    );
    assert!(matches!(bias, Err(LoraError::Shape { .. })));
}

/// libtorch has one global CPU generator and the harness runs tests on
/// several threads: every test of this binary that seeds it or draws from
/// it (initialisation, dropout, sampling) holds this lock, so a seeded
/// section is never interleaved with another test's draws.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
