//! The GAT expert's inputs and heads: the user-ID field reaches the user
//! node, the beyond-the-paper options do what they say, and the defaults
//! are the official design.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use graft_data::synthetic::{planted_clusters, SyntheticConfig};
use graft_data::CtrSample;
use graft_elcorec::classic::ClassicCtr;
use graft_elcorec::config::{ClassicConfig, GatActivation, GatExpertConfig, SampleConfig};
use graft_elcorec::{CtrBaseline, CtrData, Din, DinConfig, ElcorecError, GatExpert};
use graft_prompt::rap::Domain;
use tch::{Device, Tensor};

/// 30 users in 3 taste clusters with profiles, 12 interactions each,
/// split by `ctr`.
fn data_with(ctr: graft_data::CtrConfig) -> CtrData {
    let syn = planted_clusters(&SyntheticConfig {
        users: 30,
        items: 45,
        clusters: 3,
        interactions_per_user: 12,
        in_cluster: 0.7,
        seed: 11,
    })
    .expect("synthetic");
    CtrData::with_domain(
        syn.dataset,
        Domain::Movies,
        SampleConfig {
            k_gat: 5,
            valid_samples: 30,
            test_samples: 30,
            ctr,
            ..SampleConfig::default()
        },
    )
    .expect("ctr data")
}

fn data() -> CtrData {
    data_with(graft_data::CtrConfig::default())
}

/// libtorch's global generator is shared by the tests of this binary,
/// which run on several threads; every test that seeds it holds this lock.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// User `b` becomes a copy of user `a` (same interactions, same profile
/// codes); only the user ID tells them apart.
fn twin_users(data: &mut CtrData, a: u32, b: u32) {
    data.split.sequences[b as usize] = data.split.sequences[a as usize].clone();
    data.features.user_codes[b as usize] = data.features.user_codes[a as usize].clone();
}

#[test]
fn the_user_id_reaches_the_user_node() {
    let _rng = global_rng();
    let mut data = data();
    let s = *data
        .split
        .test
        .iter()
        .find(|s| s.user != 0)
        .expect("a test sample");
    let twin = if s.user == 1 { 2 } else { 1 };
    twin_users(&mut data, s.user, twin);
    let mut other = s;
    other.user = twin;
    for user_id in [true, false] {
        let cfg = GatExpertConfig {
            user_id,
            ..GatExpertConfig::default()
        };
        let expert = GatExpert::new(&data, &cfg, Device::Cpu).expect("expert");
        let (u1, t1) = expert
            .forward_t(&expert.batch(&data, &[s]).unwrap(), false)
            .unwrap();
        let (u2, t2) = expert
            .forward_t(&expert.batch(&data, &[other]).unwrap(), false)
            .unwrap();
        let (du, dt) = (max_abs_diff(&u1, &u2), max_abs_diff(&t1, &t2));
        if user_id {
            assert!(du > 1e-6, "two user IDs, the same user vector ({du})");
            assert!(dt > 1e-6, "the user ID does not reach the target ({dt})");
        } else {
            assert_eq!((du, dt), (0.0, 0.0), "without the ID field twins are equal");
        }
    }
}

#[test]
fn the_self_term_adds_the_nodes_own_inputs() {
    let _rng = global_rng();
    let data = data();
    let cfg = GatExpertConfig {
        self_term: true,
        ..GatExpertConfig::default()
    };
    let expert = GatExpert::new(&data, &cfg, Device::Cpu).expect("expert");
    let names: Vec<String> = expert
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.contains(&"self_user.weight".to_string()), "{names:?}");
    assert!(names.contains(&"self_item.weight".to_string()), "{names:?}");
    let b = expert.batch(&data, &data.test[..6]).unwrap();
    let (u1, t1) = expert.forward_t(&b, false).unwrap();
    tch::no_grad(|| {
        for (name, mut t) in expert.named_parameters() {
            if name.starts_with("self_") {
                let _ = t.zero_();
            }
        }
    });
    let (u0, t0) = expert.forward_t(&b, false).unwrap();
    assert!(max_abs_diff(&u1, &u0) > 1e-6 && max_abs_diff(&t1, &t0) > 1e-6);
    // Without the maps the outputs are the GAT's alone: no self parameters.
    let plain = GatExpert::new(&data, &GatExpertConfig::default(), Device::Cpu).unwrap();
    assert!(plain
        .named_parameters()
        .iter()
        .all(|(n, _)| !n.starts_with("self_") && !n.starts_with("cos_")));
}

#[test]
fn the_scaled_cosine_is_sigmoid_of_a_cos_plus_b() {
    let _rng = global_rng();
    let data = data();
    let cfg = GatExpertConfig {
        scaled_cosine: true,
        ..GatExpertConfig::default()
    };
    let expert = GatExpert::new(&data, &cfg, Device::Cpu).expect("expert");
    let samples = &data.test[..8];
    // Initialised at a = 1, b = 0: the official sigmoid(cos), inside [0.27, 0.73].
    let p0 = expert.predict(&data, samples).unwrap();
    let lo = 1.0 / (1.0 + 1f64.exp());
    assert!(p0.iter().all(|&p| p >= lo - 1e-6 && p <= 1.0 - lo + 1e-6));
    tch::no_grad(|| {
        for (name, mut t) in expert.named_parameters() {
            match name.as_str() {
                "cos_scale" => {
                    let _ = t.fill_(4.0);
                }
                "cos_bias" => {
                    let _ = t.fill_(-0.5);
                }
                _ => {}
            }
        }
    });
    let p1 = expert.predict(&data, samples).unwrap();
    for (a, b) in p0.iter().zip(&p1) {
        let cos = (a / (1.0 - a)).ln();
        let want = 1.0 / (1.0 + (-(4.0 * cos - 0.5)).exp());
        assert!((b - want).abs() < 1e-5, "{b} vs {want}");
    }
}

#[test]
fn defaults_are_the_official_design_and_names_mark_the_options() {
    let cfg = GatExpertConfig::default();
    assert_eq!(cfg.name(), "gat");
    assert_eq!(cfg.activation, GatActivation::Identity);
    assert_eq!((cfg.dropout, cfg.attn_dropout), (0.0, 0.0));
    assert_eq!(
        (cfg.max_epochs, cfg.batch_size, cfg.patience),
        (10, 1024, Some(4))
    );
    assert!(cfg.full_validation);
    // 76,228 ML-100K train samples: 74 steps an epoch, validation every 37.
    assert_eq!(cfg.steps_per_epoch(76_228), 74);
    assert_eq!(cfg.eval_every(76_228), 37);
    assert_eq!(cfg.total_steps(76_228), 740);
    let capped = GatExpertConfig {
        max_steps: Some(20),
        ..GatExpertConfig::default()
    };
    assert_eq!(capped.total_steps(76_228), 20);
    let all = GatExpertConfig {
        self_term: true,
        scaled_cosine: true,
        activation: GatActivation::Elu,
        user_id: false,
        ..GatExpertConfig::default()
    };
    assert_eq!(all.name(), "gat-self-scaled-elu-no-user-id");
    for bad in [
        GatExpertConfig {
            head_dim: 0,
            ..GatExpertConfig::default()
        },
        GatExpertConfig {
            evals_per_epoch: 0,
            ..GatExpertConfig::default()
        },
        GatExpertConfig {
            max_steps: Some(0),
            ..GatExpertConfig::default()
        },
        GatExpertConfig {
            attn_dropout: 1.0,
            ..GatExpertConfig::default()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

#[test]
fn the_first_layer_is_eight_heads_of_thirty_two() {
    let _rng = global_rng();
    let data = data();
    let expert = GatExpert::new(&data, &GatExpertConfig::default(), Device::Cpu).unwrap();
    let params = expert.named_parameters();
    let (_, w) = params
        .iter()
        .find(|(n, _)| n.starts_with("gat.layers.0.") && n.ends_with("lin_src.weight"))
        .expect("a first-layer projection");
    assert_eq!(w.size(), vec![256, 32]);
    let (_, w2) = params
        .iter()
        .find(|(n, _)| n.starts_with("gat.layers.1.") && n.ends_with("lin_src.weight"))
        .expect("a second-layer projection");
    assert_eq!(w2.size(), vec![32, 256]);
}

#[test]
fn ctr_data_follows_the_split_settings_of_its_config() {
    let base = data();
    let strict = data_with(graft_data::CtrConfig {
        min_history: 8,
        label: Some(graft_data::LabelRule::AtLeast(5.0)),
        ..graft_data::CtrConfig::default()
    });
    let n = |d: &CtrData| d.split.train.len() + d.split.valid.len() + d.split.test.len();
    // 12 interactions per user: 7 samples each with 5 earlier ones, 4 with 8.
    assert_eq!((n(&base), n(&strict)), (30 * 7, 30 * 4));
    assert!(strict
        .split
        .train
        .iter()
        .all(|s| s.label == (s.rating >= 5.0)));
}

#[test]
fn malformed_samples_are_errors_naming_the_sample() {
    let _rng = global_rng();
    let mut data = data();
    let expert = GatExpert::new(&data, &GatExpertConfig::default(), Device::Cpu).unwrap();
    let classic = ClassicCtr::new(&data, &ClassicConfig::default(), Device::Cpu);
    let good = data.test[0];
    assert!(data.check(&good).is_ok());
    let off_scale = CtrSample {
        rating: 7.0,
        ..good
    };
    let unknown_item = CtrSample {
        item: 10_000,
        ..good
    };
    for (s, want) in [
        (off_scale, "rating 7 is outside [0, 5]"),
        (unknown_item, "item #10000 is not one of the 45 items"),
    ] {
        for err in [
            expert.batch(&data, &[good, s]).unwrap_err(),
            classic.batch(&data, &[s]).unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(matches!(err, ElcorecError::Sample { .. }), "{msg}");
            assert!(msg.contains(want), "{msg}");
            assert!(
                msg.contains(&format!("position {}", good.position)),
                "{msg}"
            );
        }
    }
    // A history item unknown to the vocabulary (a sequence edited by hand).
    let seq = &mut data.split.sequences[good.user as usize];
    seq[0].item = 999;
    let msg = expert.batch(&data, &[good]).unwrap_err().to_string();
    assert!(
        msg.contains("history entry 0: item #999 is unknown"),
        "{msg}"
    );
}

#[test]
fn din_attends_to_history_items_only() {
    let _rng = global_rng();
    let data = data();
    let din = Din::new(
        &data,
        &DinConfig {
            history: 20,
            ..DinConfig::default()
        },
        Device::Cpu,
    )
    .unwrap();
    // Samples have 5 to 11 earlier items: the rest of the 20 slots are padding.
    let samples = &data.test[..4];
    let b = din.batch(&data, samples).unwrap();
    let w = din.attention_weights(&b).unwrap();
    assert_eq!(w.size(), vec![4, 20]);
    for (k, s) in samples.iter().enumerate() {
        let n = data.recent(s, 20).len() as i64;
        let row = w.get(k as i64);
        let pad = row
            .narrow(0, n, 20 - n)
            .abs()
            .sum(tch::Kind::Float)
            .double_value(&[]);
        assert_eq!(pad, 0.0, "sample {k}: padding has weight");
        let real = row
            .narrow(0, 0, n)
            .abs()
            .sum(tch::Kind::Float)
            .double_value(&[]);
        assert!(real > 0.0, "sample {k}: no weight on its {n} items");
    }
    assert!(din
        .predict(&data, samples)
        .unwrap()
        .iter()
        .all(|p| (0.0..=1.0).contains(p)));
}
