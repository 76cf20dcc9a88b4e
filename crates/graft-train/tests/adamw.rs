//! AdamW against torch.optim.AdamW (fixture from `python/adamw_golden.py`),
//! decoupled weight decay, skipped parameters, and exact state round trips.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;

use graft_train::{load_checkpoint, save_checkpoint, AdamW, AdamWConfig, TrainError};
use tch::{Device, Kind, Tensor};

fn fixture() -> HashMap<String, Tensor> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/adamw_golden.safetensors");
    Tensor::read_safetensors(&path)
        .unwrap()
        .into_iter()
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn param(values: &[f32], shape: &[i64]) -> Tensor {
    Tensor::from_slice(values)
        .reshape(shape)
        .set_requires_grad(true)
}

/// Sets every listed parameter's gradient to exactly `g` (d/dp sum(p * g) = g).
fn set_grads(opt: &mut AdamW, grads: &[(&Tensor, &Tensor)]) {
    opt.zero_grad();
    let mut loss = Tensor::zeros([], (Kind::Float, Device::Cpu));
    for (p, g) in grads {
        loss += (*p * *g).sum(Kind::Float);
    }
    loss.backward();
}

#[test]
fn matches_pytorch_adamw() {
    let _rng = global_rng();
    let fx = fixture();
    let c = &fx["config"];
    let cfg = AdamWConfig {
        lr: c.double_value(&[0]),
        beta1: c.double_value(&[1]),
        beta2: c.double_value(&[2]),
        eps: c.double_value(&[3]),
        weight_decay: c.double_value(&[4]),
    };
    assert_eq!(cfg.weight_decay, 0.1);
    let names = ["w", "b", "u"];
    let params: Vec<(String, Tensor)> = names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                fx[&format!("init.{n}")].copy().set_requires_grad(true),
            )
        })
        .collect();
    let handles: Vec<Tensor> = params.iter().map(|(_, p)| p.shallow_clone()).collect();
    let mut opt = AdamW::new(cfg, params).unwrap();
    let lrs = &fx["lrs"];
    let steps = lrs.size()[0];
    let mut clipped = 0;
    for t in 0..steps {
        opt.set_lr(lrs.double_value(&[t]));
        let gw = &fx[&format!("grad.{t}.w")];
        let gb = &fx[&format!("grad.{t}.b")];
        set_grads(&mut opt, &[(&handles[0], gw), (&handles[1], gb)]);
        if let Some(norm) = fx.get(&format!("norm.{t}")) {
            let got = opt.clip_grad_norm(0.5).unwrap();
            let want = norm.double_value(&[0]);
            assert!(
                (got - want).abs() < 1e-5 * want.max(1.0),
                "step {t}: norm {got} vs {want}"
            );
            assert!(got > 0.5, "the fixture must actually clip");
            clipped += 1;
        }
        opt.step().unwrap();
        for (i, n) in names.iter().enumerate() {
            let want = &fx[&format!("after.{t}.{n}")];
            let d = max_abs_diff(&handles[i], want);
            assert!(d < 1e-6, "step {t}, param {n}: max |diff| = {d}");
        }
    }
    assert_eq!(clipped, 2);
    assert_eq!(opt.steps(), steps as u64);
    // `u` never had a gradient: bitwise untouched.
    assert!(handles[2].equal(&fx["init.u"]));
    let state: HashMap<String, Tensor> = opt.state_tensors().into_iter().collect();
    for n in ["w", "b"] {
        assert!(max_abs_diff(&state[&format!("adam_m.{n}")], &fx[&format!("exp_avg.{n}")]) < 1e-6);
        assert!(
            max_abs_diff(
                &state[&format!("adam_v.{n}")],
                &fx[&format!("exp_avg_sq.{n}")]
            ) < 1e-6
        );
        assert_eq!(state[&format!("adam_step.{n}")].int64_value(&[0]), steps);
    }
    assert_eq!(state["adam_step.u"].int64_value(&[0]), 0);
    assert_eq!(
        state["adam_m.u"].abs().sum(Kind::Float).double_value(&[]),
        0.0
    );
}

#[test]
fn weight_decay_is_decoupled() {
    let _rng = global_rng();
    // A zero (but defined) gradient: the Adam term is exactly 0, so only the
    // decoupled decay p *= 1 - lr * wd acts. L2-coupled decay would instead
    // move p by about lr against sign(p).
    let p = param(&[1.0, -2.0, 3.0], &[3]);
    let cfg = AdamWConfig {
        lr: 0.1,
        weight_decay: 0.5,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::new(cfg, vec![("p".into(), p.shallow_clone())]).unwrap();
    set_grads(
        &mut opt,
        &[(&p, &Tensor::zeros([3], (Kind::Float, Device::Cpu)))],
    );
    opt.step().unwrap();
    let want = Tensor::from_slice(&[0.95f32, -1.9, 2.85]);
    assert!(max_abs_diff(&p, &want) < 1e-7, "{p}");

    // And the decay does not depend on the gradient's scale (Adam's update
    // is scale-invariant, the decoupled decay is not folded into it).
    let run = |scale: f32| {
        let p = param(&[1.0, -2.0, 3.0], &[3]);
        let cfg = AdamWConfig {
            lr: 0.1,
            weight_decay: 0.5,
            eps: 0.0,
            ..AdamWConfig::default()
        };
        let mut opt = AdamW::new(cfg, vec![("p".into(), p.shallow_clone())]).unwrap();
        for k in 0..3 {
            let g = Tensor::from_slice(&[0.3f32, -0.1, 0.2 + k as f32]) * f64::from(scale);
            set_grads(&mut opt, &[(&p, &g)]);
            opt.step().unwrap();
        }
        p
    };
    let (small, large) = (run(1.0), run(1000.0));
    assert!(max_abs_diff(&small, &large) < 1e-6);
}

#[test]
fn params_without_grad_are_skipped_with_their_own_step_count() {
    let _rng = global_rng();
    let a = param(&[0.5, -0.5], &[2]);
    let b = param(&[2.0, 1.0], &[2]);
    let cfg = AdamWConfig {
        lr: 0.05,
        weight_decay: 0.2,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::new(
        cfg.clone(),
        vec![
            ("a".into(), a.shallow_clone()),
            ("b".into(), b.shallow_clone()),
        ],
    )
    .unwrap();
    let ga = Tensor::from_slice(&[1.0f32, 2.0]);
    for _ in 0..4 {
        set_grads(&mut opt, &[(&a, &ga)]);
        opt.step().unwrap();
    }
    assert!(
        b.equal(&Tensor::from_slice(&[2.0f32, 1.0])),
        "b must be untouched"
    );
    let state: HashMap<String, Tensor> = opt.state_tensors().into_iter().collect();
    assert_eq!(state["adam_step.a"].int64_value(&[0]), 4);
    assert_eq!(state["adam_step.b"].int64_value(&[0]), 0);
    assert_eq!(
        state["adam_v.b"].abs().sum(Kind::Float).double_value(&[]),
        0.0
    );

    // b's first update uses bias correction for t = 1, like a fresh optimizer.
    let gb = Tensor::from_slice(&[-0.7f32, 0.3]);
    set_grads(&mut opt, &[(&a, &ga), (&b, &gb)]);
    opt.step().unwrap();
    let fresh = param(&[2.0, 1.0], &[2]);
    let mut opt2 = AdamW::new(cfg, vec![("b".into(), fresh.shallow_clone())]).unwrap();
    set_grads(&mut opt2, &[(&fresh, &gb)]);
    opt2.step().unwrap();
    assert!(b.equal(&fresh), "{b} vs {fresh}");
}

#[test]
fn config_errors() {
    let _rng = global_rng();
    let p = param(&[1.0], &[1]);
    let no_grad = Tensor::from_slice(&[1.0f32]);
    let cfg = AdamWConfig::default();
    assert!(matches!(
        AdamW::new(cfg.clone(), vec![("x".into(), no_grad)]),
        Err(TrainError::Config(m)) if m.contains("\"x\"") && m.contains("require grad")
    ));
    assert!(matches!(
        AdamW::new(cfg.clone(), vec![("x".into(), p.shallow_clone()), ("x".into(), p.shallow_clone())]),
        Err(TrainError::Config(m)) if m.contains("duplicate")
    ));
    let bad = AdamWConfig { beta2: 1.0, ..cfg };
    assert!(
        matches!(AdamW::new(bad, vec![("x".into(), p)]), Err(TrainError::Config(m)) if m.contains("beta2"))
    );
}

/// A deterministic loss of the parameters, so continuing runs see the same
/// gradients.
fn quad_step(opt: &mut AdamW, ps: &[Tensor], k: i64) {
    opt.zero_grad();
    let mut loss = Tensor::zeros([], (Kind::Float, Device::Cpu));
    for (i, p) in ps.iter().enumerate() {
        let target = Tensor::arange(p.numel() as i64, (Kind::Float, Device::Cpu)).reshape(p.size())
            * (0.1 * (k + i as i64) as f64);
        loss = loss + (p - target).pow_tensor_scalar(2).sum(Kind::Float) + p.sin().sum(Kind::Float);
    }
    loss.backward();
    opt.clip_grad_norm(5.0).unwrap();
    opt.step().unwrap();
}

fn make(seed: i64, lr: f64) -> (AdamW, Vec<Tensor>) {
    tch::manual_seed(seed);
    let ps = vec![
        Tensor::randn([4, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true),
        Tensor::randn([5], (Kind::Float, Device::Cpu)).set_requires_grad(true),
    ];
    let named = vec![
        ("layer.w".to_string(), ps[0].shallow_clone()),
        ("layer.b".to_string(), ps[1].shallow_clone()),
    ];
    let cfg = AdamWConfig {
        lr,
        weight_decay: 0.05,
        ..AdamWConfig::default()
    };
    (AdamW::new(cfg, named).unwrap(), ps)
}

#[test]
fn state_round_trip_through_a_checkpoint_is_bitwise() {
    let _rng = global_rng();
    let dir = tempfile::tempdir().unwrap();
    let (mut a, pa) = make(1, 0.01);
    for k in 0..3 {
        quad_step(&mut a, &pa, k);
    }
    a.set_lr(0.02); // a schedule changed the rate: the checkpoint keeps it
    save_checkpoint(dir.path(), 3, &a, &"state").unwrap();

    // A fresh optimizer with other initial values and another rate.
    let (mut b, pb) = make(2, 0.5);
    assert!(!pb[0].equal(&pa[0]));
    let (step, state): (u64, String) = load_checkpoint(dir.path(), &mut b).unwrap().unwrap();
    assert_eq!((step, state.as_str()), (3, "state"));
    assert_eq!(b.steps(), 3);
    assert_eq!(b.lr(), 0.02);
    for k in 3..7 {
        quad_step(&mut a, &pa, k);
        quad_step(&mut b, &pb, k);
    }
    for (x, y) in pa.iter().zip(&pb) {
        assert!(x.equal(y), "parameters differ after resume");
    }
    for ((na, ta), (nb, tb)) in a.state_tensors().iter().zip(b.state_tensors().iter()) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after resume");
    }

    // In memory as well.
    let (mut c, pc) = make(3, 0.1);
    c.load_state_tensors(
        a.state_tensors()
            .into_iter()
            .map(|(n, t)| (n, t.copy()))
            .collect(),
    )
    .unwrap();
    quad_step(&mut a, &pa, 7);
    quad_step(&mut c, &pc, 7);
    assert!(pa[0].equal(&pc[0]) && pa[1].equal(&pc[1]));
}

#[test]
fn load_state_tensors_rejects_bad_states_without_copying() {
    let _rng = global_rng();
    let (a, _) = make(1, 0.01);
    let (mut b, pb) = make(2, 0.01);
    let before = pb[0].copy();
    let state = || {
        a.state_tensors()
            .into_iter()
            .map(|(n, t)| (n, t.copy()))
            .collect::<Vec<_>>()
    };

    let missing: Vec<_> = state()
        .into_iter()
        .filter(|(n, _)| n != "adam_v.layer.b")
        .collect();
    let err = b.load_state_tensors(missing).unwrap_err();
    assert!(
        matches!(&err, TrainError::Checkpoint { reason, .. } if reason.contains("adam_v.layer.b")),
        "{err}"
    );

    let reshaped: Vec<_> = state()
        .into_iter()
        .map(|(n, t)| {
            if n == "param.layer.w" {
                (n, t.reshape([3, 4]))
            } else {
                (n, t)
            }
        })
        .collect();
    let err = b.load_state_tensors(reshaped).unwrap_err();
    assert!(
        matches!(&err, TrainError::Checkpoint { reason, .. } if reason.contains("param.layer.w") && reason.contains("shape")),
        "{err}"
    );

    let retyped: Vec<_> = state()
        .into_iter()
        .map(|(n, t)| {
            if n == "adam_m.layer.w" {
                (n, t.to_kind(Kind::Double))
            } else {
                (n, t)
            }
        })
        .collect();
    assert!(b.load_state_tensors(retyped).is_err());

    let mut extra = state();
    extra.push((
        "param.other".into(),
        Tensor::zeros([1], (Kind::Float, Device::Cpu)),
    ));
    let err = b.load_state_tensors(extra).unwrap_err();
    assert!(err.to_string().contains("param.other"), "{err}");

    assert!(
        pb[0].equal(&before),
        "a rejected state must not be partially applied"
    );
    assert_eq!(b.steps(), 0);
}

/// libtorch has one global CPU generator and the harness runs tests on
/// several threads: every test of this binary that seeds it or draws from
/// it (initialisation, dropout, sampling) holds this lock, so a seeded
/// section is never interleaved with another test's draws.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
