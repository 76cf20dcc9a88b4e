//! The training loop: kill/resume equality (a child process is SIGKILLed),
//! resume after a failure with gradient accumulation, budget accounting over
//! segments, early stopping and best parameters.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use graft_train::{
    mix_seed, restore_best, train, AdamW, AdamWConfig, LoopConfig, LrDecay, LrSchedule, RunDir,
    StopReason, TrainError, TrainTask,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

/// libtorch's seed and thread count are process-global: the tests of this
/// binary take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const CHILD_ENV: &str = "GRAFT_TRAIN_TEST_CHILD_RUN_DIR";
const N: i64 = 64;
const BATCH: usize = 8;

/// A 2-layer MLP regressing a fixed synthetic target, with dropout.
struct Mlp {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    x: Tensor,
    y: Tensor,
    sleep: Duration,
    /// Step at whose second micro-batch the task hangs (for the kill test).
    hang_at: Option<u64>,
    fail_at: Option<(u64, usize)>,
    /// Scripted validation metrics by step (the real metric otherwise).
    script: Vec<(u64, f64)>,
}

impl Mlp {
    fn new(param_seed: i64) -> Self {
        tch::set_num_threads(1);
        let opts = (Kind::Float, Device::Cpu);
        tch::manual_seed(123);
        let x = Tensor::randn([N, 4], opts);
        let y = (x.sum_dim_intlist(1, true, Kind::Float) * 0.7).sin() + x.narrow(1, 0, 1) * 0.3;
        tch::manual_seed(param_seed);
        let p = |shape: &[i64], scale: f64| {
            (Tensor::randn(shape, opts) * scale).set_requires_grad(true)
        };
        Self {
            w1: p(&[16, 4], 0.5),
            b1: p(&[16], 0.1),
            w2: p(&[1, 16], 0.25),
            b2: p(&[1], 0.1),
            x,
            y,
            sleep: Duration::ZERO,
            hang_at: None,
            fail_at: None,
            script: Vec::new(),
        }
    }

    fn named(&self) -> Vec<(String, Tensor)> {
        [
            ("l1.weight", &self.w1),
            ("l1.bias", &self.b1),
            ("l2.weight", &self.w2),
            ("l2.bias", &self.b2),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t.shallow_clone()))
        .collect()
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let h = (x.matmul(&self.w1.tr()) + &self.b1)
            .relu()
            .dropout(0.3, train);
        h.matmul(&self.w2.tr()) + &self.b2
    }
}

impl TrainTask for Mlp {
    fn loss(&mut self, step: u64, micro: usize) -> graft_train::Result<Tensor> {
        if self.fail_at == Some((step, micro)) {
            return Err(TrainError::Config(format!(
                "injected failure at step {step} micro {micro}"
            )));
        }
        std::thread::sleep(self.sleep);
        if self.hang_at == Some(step) && micro == 1 {
            std::thread::sleep(Duration::from_secs(120));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(step * 1_000 + micro as u64);
        let idx: Vec<i64> = (0..BATCH)
            .map(|_| (rng.next_u64() % N as u64) as i64)
            .collect();
        let idx = Tensor::from_slice(&idx);
        let (xb, yb) = (self.x.index_select(0, &idx), self.y.index_select(0, &idx));
        Ok(self.forward(&xb, true).mse_loss(&yb, tch::Reduction::Mean))
    }

    fn evaluate(&mut self, step: u64) -> graft_train::Result<f64> {
        if let Some(&(_, m)) = self.script.iter().find(|(s, _)| *s == step) {
            return Ok(m);
        }
        let _guard = tch::no_grad_guard();
        Ok(-self
            .forward(&self.x, false)
            .mse_loss(&self.y, tch::Reduction::Mean)
            .double_value(&[]))
    }
}

fn adamw(task: &Mlp) -> AdamW {
    let cfg = AdamWConfig {
        lr: 0.01,
        weight_decay: 0.01,
        ..AdamWConfig::default()
    };
    AdamW::new(cfg, task.named()).unwrap()
}

fn kill_cfg() -> LoopConfig {
    LoopConfig {
        max_steps: 40,
        accumulation: 2,
        eval_every: Some(5),
        checkpoint_every: 2,
        max_seconds: None,
        clip_norm: Some(1.0),
        patience: None,
        seed: 7,
        // Warm-up and decay, so the kill test also proves the schedule
        // resumes where it was.
        schedule: Some(LrSchedule {
            base_lr: 0.01,
            warmup_steps: 5,
            decay: LrDecay::Cosine,
            total_steps: 40,
        }),
    }
}

/// The log without the wall-clock field.
fn log_without_seconds(run: &RunDir) -> Vec<Value> {
    run.read_log()
        .unwrap()
        .into_iter()
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("seconds");
            }
            v
        })
        .collect()
}

fn step_lines(log: &[Value]) -> Vec<u64> {
    log.iter()
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect()
}

fn assert_same_params(a: &Mlp, b: &Mlp) {
    for ((name, x), (_, y)) in a.named().iter().zip(b.named().iter()) {
        assert!(x.equal(y), "parameter {name} differs");
    }
}

fn latest_step(ckpt_dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(ckpt_dir.join("latest.json")).ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?["step"].as_u64()
}

fn edit_latest_state(run: &RunDir, f: impl FnOnce(&mut Value)) {
    let path = run.checkpoint_dir().join("latest.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut v["state"]);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn kill_and_resume_is_bitwise_identical() {
    let _serial = serial();
    let cfg = kill_cfg();
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        // The child: train slowly, hang in the middle of step 8 (after the
        // checkpoint at 6 and the log line of step 7) until the parent kills
        // us.
        let run = RunDir::create(&dir, &cfg).unwrap();
        let mut task = Mlp::new(1);
        task.sleep = Duration::from_millis(8);
        task.hang_at = Some(7);
        let mut opt = adamw(&task);
        train(&mut task, &mut opt, &run, &cfg).unwrap();
        return;
    }
    let tmp = tempfile::tempdir().unwrap();

    // A: uninterrupted.
    let run_a = RunDir::create(tmp.path().join("a"), &cfg).unwrap();
    let mut task_a = Mlp::new(1);
    let mut opt_a = adamw(&task_a);
    let out_a = train(&mut task_a, &mut opt_a, &run_a, &cfg).unwrap();
    assert_eq!(
        (out_a.steps, out_a.stop, out_a.resumed_from),
        (40, StopReason::MaxSteps, None)
    );

    // B: a child process trains and is SIGKILLed once checkpoints exist.
    let dir_b: PathBuf = tmp.path().join("b");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_and_resume_is_bitwise_identical",
            "--nocapture",
        ])
        .env(CHILD_ENV, &dir_b)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ckpt_b = dir_b.join("checkpoints");
    let t0 = Instant::now();
    let log_b = dir_b.join("log.jsonl");
    loop {
        let logged = std::fs::read_to_string(&log_b).unwrap_or_default();
        if logged.contains("\"step\":7,\"loss\"") {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child exited before it was killed: {status}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "child made no progress"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = latest_step(&ckpt_b).unwrap();
    assert_eq!(killed_at, 6);
    let before = RunDir::create(&dir_b, &cfg).unwrap().read_log().unwrap();
    let latest: Value =
        serde_json::from_slice(&std::fs::read(ckpt_b.join("latest.json")).unwrap()).unwrap();
    let child_seconds = latest["state"]["seconds"].as_f64().unwrap();
    // Step 7 was logged after the checkpoint: the resume must drop that line.
    assert_eq!(step_lines(&before), (1..=7).collect::<Vec<u64>>());

    // Resume in-process with differently initialised parameters.
    let run_b = RunDir::create(&dir_b, &cfg).unwrap();
    let mut task_b = Mlp::new(99);
    let mut opt_b = adamw(&task_b);
    let out_b = train(&mut task_b, &mut opt_b, &run_b, &cfg).unwrap();
    assert_eq!(out_b.resumed_from, Some(killed_at));
    assert_eq!((out_b.steps, out_b.stop), (40, StopReason::MaxSteps));
    assert_same_params(&task_a, &task_b);
    assert_eq!(out_a.best_metric, out_b.best_metric);
    assert_eq!(out_a.best_step, out_b.best_step);

    // Exactly one log line per step (and per evaluation), the same as A's.
    let (log_a, log_b) = (log_without_seconds(&run_a), log_without_seconds(&run_b));
    assert_eq!(step_lines(&log_b), (1..=40).collect::<Vec<u64>>());
    // Every step ran at its scheduled learning rate, across the kill.
    let schedule = cfg.schedule.unwrap();
    for v in log_b.iter().filter(|v| v.get("loss").is_some()) {
        let step = v["step"].as_u64().unwrap();
        assert_eq!(
            v["lr"].as_f64().unwrap(),
            schedule.lr(step - 1),
            "step {step}"
        );
    }
    let evals: Vec<u64> = log_b
        .iter()
        .filter(|v| v.get("eval").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(evals, vec![5, 10, 15, 20, 25, 30, 35, 40]);
    assert_eq!(log_a, log_b);
    // Seconds accumulate over both segments.
    let last = run_b
        .read_log()
        .unwrap()
        .into_iter()
        .rev()
        .find(|v| v.get("loss").is_some())
        .unwrap();
    assert_eq!(last["seconds"].as_f64().unwrap(), out_b.seconds);
    // The child slept 2 x 8 ms per step before its checkpoint.
    assert!(child_seconds >= killed_at as f64 * 0.016, "{child_seconds}");
    assert!(out_b.seconds > child_seconds);

    // restore_best brings back the parameters of the best evaluation.
    let best_step = out_b.best_step.unwrap();
    let run_r = RunDir::create(
        tmp.path().join("r"),
        &LoopConfig {
            max_steps: best_step,
            ..cfg.clone()
        },
    )
    .unwrap();
    let mut task_r = Mlp::new(1);
    let mut opt_r = adamw(&task_r);
    train(
        &mut task_r,
        &mut opt_r,
        &run_r,
        &LoopConfig {
            max_steps: best_step,
            ..cfg
        },
    )
    .unwrap();
    assert!(restore_best(&run_b, &mut opt_b).unwrap());
    assert_same_params(&task_r, &task_b);
}

#[test]
fn dropout_depends_on_the_seed() {
    let _serial = serial();
    // Guards the kill test: without per-step seeding it could not pass, and
    // different seeds must give different runs.
    let tmp = tempfile::tempdir().unwrap();
    let run = |seed: u64, name: &str| {
        let cfg = LoopConfig {
            max_steps: 3,
            checkpoint_every: 10,
            seed,
            ..LoopConfig::default()
        };
        let run = RunDir::create(tmp.path().join(name), &cfg).unwrap();
        let mut task = Mlp::new(1);
        let mut opt = adamw(&task);
        train(&mut task, &mut opt, &run, &cfg).unwrap();
        task
    };
    let (a, b, c) = (run(1, "a"), run(1, "b"), run(2, "c"));
    assert_same_params(&a, &b);
    assert!(!a.w1.equal(&c.w1));
}

#[test]
fn accumulation_averages_micro_batches() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LoopConfig {
        max_steps: 1,
        accumulation: 2,
        checkpoint_every: 1,
        seed: 3,
        ..LoopConfig::default()
    };
    let run = RunDir::create(tmp.path(), &cfg).unwrap();
    let mut task = Mlp::new(1);
    let mut opt = adamw(&task);
    train(&mut task, &mut opt, &run, &cfg).unwrap();

    let mut manual = Mlp::new(1);
    let mut mopt = adamw(&manual);
    tch::manual_seed(mix_seed(3, 0));
    mopt.zero_grad();
    let mut total = 0.0;
    for micro in 0..2 {
        let loss = manual.loss(0, micro).unwrap();
        total += loss.double_value(&[]);
        (loss / 2.0).backward();
    }
    mopt.step().unwrap();
    assert_same_params(&task, &manual);
    let log = run.read_log().unwrap();
    assert_eq!(log[0]["loss"].as_f64().unwrap(), total / 2.0);
}

#[test]
fn resume_after_failures_with_accumulation() {
    let _serial = serial();
    let cfg = LoopConfig {
        max_steps: 10,
        accumulation: 3,
        eval_every: Some(4),
        checkpoint_every: 3,
        max_seconds: None,
        clip_norm: None,
        patience: None,
        seed: 11,
        schedule: None,
    };
    let tmp = tempfile::tempdir().unwrap();
    let run_a = RunDir::create(tmp.path().join("a"), &cfg).unwrap();
    let mut task_a = Mlp::new(5);
    let mut opt_a = adamw(&task_a);
    train(&mut task_a, &mut opt_a, &run_a, &cfg).unwrap();

    let run_b = RunDir::create(tmp.path().join("b"), &cfg).unwrap();
    run_b
        .log(&serde_json::json!({"note": "written before training"}))
        .unwrap();
    let mut task_b = Mlp::new(5);
    let mut opt_b = adamw(&task_b);

    // Fails before the first checkpoint: step 1 was logged, nothing saved.
    task_b.fail_at = Some((1, 2));
    assert!(train(&mut task_b, &mut opt_b, &run_b, &cfg).is_err());
    assert_eq!(step_lines(&run_b.read_log().unwrap()), vec![1]);
    assert!(!run_b.checkpoint_dir().join("latest.json").exists());

    // Restarts from scratch (parameters reset by the caller) and fails in
    // the middle of step 6's micro-batches: steps 1..=5 logged, checkpoint 3.
    let mut task_b = Mlp::new(5);
    let mut opt_b = adamw(&task_b);
    task_b.fail_at = Some((5, 1));
    let err = train(&mut task_b, &mut opt_b, &run_b, &cfg).unwrap_err();
    assert!(
        err.to_string()
            .contains("injected failure at step 5 micro 1"),
        "{err}"
    );
    assert_eq!(step_lines(&run_b.read_log().unwrap()), vec![1, 2, 3, 4, 5]);

    // Resumes from checkpoint 3; the log lines of steps 4 and 5 are dropped
    // and written again.
    task_b.fail_at = None;
    let out = train(&mut task_b, &mut opt_b, &run_b, &cfg).unwrap();
    assert_eq!(out.resumed_from, Some(3));
    assert_eq!(out.steps, 10);
    assert_same_params(&task_a, &task_b);
    let log_b = log_without_seconds(&run_b);
    assert_eq!(
        log_b[0],
        serde_json::json!({"note": "written before training"})
    );
    assert_eq!(log_b[1..], log_without_seconds(&run_a)[..]);
    assert_eq!(step_lines(&log_b), (1..=10).collect::<Vec<u64>>());
}

#[test]
fn budget_is_summed_over_segments() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let base = LoopConfig {
        max_steps: 4,
        checkpoint_every: 2,
        eval_every: Some(100),
        ..LoopConfig::default()
    };
    let run = RunDir::create(tmp.path().join("run"), &"budget test").unwrap();
    let mut task = Mlp::new(2);
    let mut opt = adamw(&task);
    let out = train(&mut task, &mut opt, &run, &base).unwrap();
    assert_eq!((out.steps, out.stop), (4, StopReason::MaxSteps));

    // Pretend the first segment took 1000 s: a budget of 1000 s is spent, so
    // a resume with more steps does nothing.
    edit_latest_state(&run, |s| s["seconds"] = 1000.0.into());
    let spent = LoopConfig {
        max_steps: 10,
        max_seconds: Some(1000.0),
        ..base.clone()
    };
    let out = train(&mut task, &mut opt, &run, &spent).unwrap();
    assert_eq!(
        (out.steps, out.stop, out.resumed_from),
        (4, StopReason::Budget, Some(4))
    );
    assert_eq!(out.seconds, 1000.0);

    // 999 s spent of 999 s + 1 ns: exactly one more step runs (the budget is
    // checked after each step), then the final evaluation and checkpoint.
    edit_latest_state(&run, |s| s["seconds"] = 999.0.into());
    let tight = LoopConfig {
        max_steps: 10,
        max_seconds: Some(999.0 + 1e-9),
        ..base.clone()
    };
    let out = train(&mut task, &mut opt, &run, &tight).unwrap();
    assert_eq!((out.steps, out.stop), (5, StopReason::Budget));
    assert!(
        out.seconds > 999.0 && out.seconds < 1100.0,
        "{}",
        out.seconds
    );
    let log = run.read_log().unwrap();
    let last_step = log.iter().rev().find(|v| v.get("loss").is_some()).unwrap();
    assert_eq!(last_step["step"], 5);
    assert!(last_step["seconds"].as_f64().unwrap() > 999.0);
    assert_eq!(log.last().unwrap()["step"], 5);
    assert!(
        log.last().unwrap().get("eval").is_some(),
        "evaluation when stopping"
    );
    assert_eq!(latest_step(&run.checkpoint_dir()), Some(5));

    // Without a budget the run continues from there, keeping the seconds.
    let free = LoopConfig {
        max_steps: 7,
        ..base
    };
    let out = train(&mut task, &mut opt, &run, &free).unwrap();
    assert_eq!(
        (out.steps, out.stop, out.resumed_from),
        (7, StopReason::MaxSteps, Some(5))
    );
    assert!(out.seconds > 999.0);
    assert_eq!(
        step_lines(&run.read_log().unwrap()),
        (1..=7).collect::<Vec<u64>>()
    );

    // A fresh run with a zero budget does one step.
    let run0 = RunDir::create(tmp.path().join("zero"), &0).unwrap();
    let cfg0 = LoopConfig {
        max_steps: 10,
        max_seconds: Some(0.0),
        ..LoopConfig::default()
    };
    let mut task0 = Mlp::new(2);
    let mut opt0 = adamw(&task0);
    let out = train(&mut task0, &mut opt0, &run0, &cfg0).unwrap();
    assert_eq!((out.steps, out.stop), (1, StopReason::Budget));
}

#[test]
fn early_stopping_saves_and_restores_the_best() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LoopConfig {
        max_steps: 100,
        eval_every: Some(2),
        checkpoint_every: 5,
        patience: Some(2),
        seed: 5,
        ..LoopConfig::default()
    };
    let run = RunDir::create(tmp.path().join("es"), &cfg).unwrap();
    assert!(
        !restore_best(&run, &mut adamw(&Mlp::new(0))).unwrap(),
        "no best yet"
    );
    let mut task = Mlp::new(3);
    task.script = vec![(2, 0.9), (4, 1.0), (6, 0.5), (8, 1.0), (10, 2.0)];
    let mut opt = adamw(&task);
    let out = train(&mut task, &mut opt, &run, &cfg).unwrap();
    assert_eq!((out.steps, out.stop), (8, StopReason::EarlyStopping));
    assert_eq!((out.best_metric, out.best_step), (Some(1.0), Some(4)));
    let best: Value = run.read_json("best").unwrap().unwrap();
    assert_eq!(best["step"], 4);
    assert_eq!(
        latest_step(&run.checkpoint_dir()),
        Some(8),
        "checkpoint when stopping"
    );

    // The early-stopped run stays stopped.
    let again = train(&mut task, &mut opt, &run, &cfg).unwrap();
    assert_eq!(
        (again.steps, again.stop, again.resumed_from),
        (8, StopReason::EarlyStopping, Some(8))
    );

    // Reference: the same training for 4 steps.
    let cfg4 = LoopConfig {
        max_steps: 4,
        patience: None,
        ..cfg.clone()
    };
    let run4 = RunDir::create(tmp.path().join("ref"), &cfg4).unwrap();
    let mut reference = Mlp::new(3);
    let mut ropt = adamw(&reference);
    train(&mut reference, &mut ropt, &run4, &cfg4).unwrap();
    assert!(!reference.w1.equal(&task.w1));
    assert!(restore_best(&run, &mut opt).unwrap());
    assert_same_params(&reference, &task);

    // A corrupt best file is an error naming it.
    std::fs::write(run.path().join("best.safetensors"), b"junk").unwrap();
    match restore_best(&run, &mut opt).unwrap_err() {
        TrainError::Checkpoint { path, .. } => assert!(path.ends_with("best.safetensors")),
        other => panic!("{other}"),
    }
}

#[test]
fn invalid_loop_config_is_refused() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::create(tmp.path(), &0).unwrap();
    let mut task = Mlp::new(0);
    let mut opt = adamw(&task);
    for cfg in [
        LoopConfig {
            accumulation: 0,
            ..LoopConfig::default()
        },
        LoopConfig {
            checkpoint_every: 0,
            ..LoopConfig::default()
        },
        LoopConfig {
            eval_every: Some(0),
            ..LoopConfig::default()
        },
        LoopConfig {
            clip_norm: Some(f64::NAN),
            ..LoopConfig::default()
        },
    ] {
        assert!(
            matches!(
                train(&mut task, &mut opt, &run, &cfg),
                Err(TrainError::Config(_))
            ),
            "{cfg:?}"
        );
    }
}

/// The hook runs once per optimizer step, after every micro-batch's
/// backward pass and before the update, and what it does to gradients is
/// what the update uses.
#[test]
fn before_optimizer_step_hook_sees_full_gradients() {
    struct Hooked {
        inner: Mlp,
        calls: Vec<u64>,
        frozen: Option<Tensor>,
    }
    impl TrainTask for Hooked {
        fn loss(&mut self, step: u64, micro: usize) -> graft_train::Result<Tensor> {
            self.inner.loss(step, micro)
        }
        fn evaluate(&mut self, step: u64) -> graft_train::Result<f64> {
            self.inner.evaluate(step)
        }
        fn before_optimizer_step(&mut self, step: u64) -> graft_train::Result<()> {
            self.calls.push(step);
            let g = self.inner.w2.grad();
            assert!(g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0);
            // Zero w1's gradient: with no weight decay w1 must not move.
            let _ = self.inner.w1.grad().zero_();
            if self.frozen.is_none() {
                self.frozen = Some(self.inner.w1.detach().copy());
            }
            Ok(())
        }
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LoopConfig {
        max_steps: 3,
        accumulation: 2,
        checkpoint_every: 10,
        seed: 5,
        ..LoopConfig::default()
    };
    let run = RunDir::create(tmp.path(), &cfg).unwrap();
    let mut task = Hooked {
        inner: Mlp::new(2),
        calls: Vec::new(),
        frozen: None,
    };
    let opt_cfg = AdamWConfig {
        lr: 0.01,
        weight_decay: 0.0,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::new(opt_cfg, task.inner.named()).unwrap();
    train(&mut task, &mut opt, &run, &cfg).unwrap();
    assert_eq!(task.calls, vec![0, 1, 2]);
    assert!(task.inner.w1.equal(task.frozen.as_ref().unwrap()));
}
