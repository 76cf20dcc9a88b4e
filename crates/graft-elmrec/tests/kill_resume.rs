//! A run killed in the middle (SIGKILL, from outside, at whatever point it
//! has reached) and started again with the same configuration continues to
//! the same numbers as a run that was never interrupted: the same loss and
//! learning rate at every step, the same validations, the same test
//! results. With the long-run settings: users visited per epoch, length
//! buckets, warm-up then linear decay, validation by generation.
//!
//! The killed run is this test binary started again as a child process
//! (running the ignored test `child_trains_until_killed`), so the kill is a
//! real one: no destructor, no last checkpoint.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use graft_elmrec::pipeline::{train_and_evaluate, RunResult, Runtime};
use graft_elmrec::{ElmrecConfig, Sampling, TaskMix, Validation, Variant};
use graft_train::LrDecay;
use tch::Device;

mod common;

/// Where the child trains (set by the parent only).
const CHILD_DIR: &str = "GRAFT_KILL_TEST_DIR";

fn cfg() -> ElmrecConfig {
    ElmrecConfig {
        tasks: TaskMix::Both,
        sampling: Sampling::Epochs,
        bucket_by_length: true,
        lr_warmup_steps: 5,
        lr_decay: LrDecay::Linear,
        max_steps: 60,
        eval_every: 10,
        checkpoint_every: 3,
        patience: Some(100),
        validation: Validation::Generation {
            k: 10,
            beams: 4,
            negatives: 19,
        },
        ..common::tiny_cfg(common::tiny_t5())
    }
    .with_variant(Variant::Elmrec)
}

fn run(dir: &Path) -> RunResult {
    let split = common::split();
    let eval = common::eval_cfg();
    let test = common::test_set(&split, &eval);
    let tok = common::tokenizer().expect("tokenizer");
    let rt = Runtime {
        device: Device::Cpu,
        progress: false,
    };
    train_and_evaluate(&cfg(), &eval, &split, &test, tok, dir, rt).expect("run")
}

/// The last record per step of `log.jsonl`: step -> (loss, lr) of training
/// records and step -> every field of validation records.
fn records(dir: &Path) -> (BTreeMap<u64, (f64, f64)>, BTreeMap<u64, serde_json::Value>) {
    let (mut steps, mut evals) = (BTreeMap::new(), BTreeMap::new());
    for line in std::fs::read_to_string(dir.join("log.jsonl"))
        .expect("log")
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        let step = v["step"].as_u64().expect("step");
        if v.get("eval").is_some() {
            evals.insert(step, v);
        } else if let (Some(l), Some(lr)) = (v["loss"].as_f64(), v["lr"].as_f64()) {
            steps.insert(step, (l, lr));
        }
    }
    (steps, evals)
}

/// Steps logged so far (0 while the log does not exist yet).
fn logged_steps(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["step"].as_u64())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[test]
#[ignore = "the child process of killed_run_resumes_to_the_same_numbers"]
fn child_trains_until_killed() {
    let dir = std::env::var_os(CHILD_DIR).expect("started by the parent test");
    run(Path::new(&dir));
}

#[test]
fn killed_run_resumes_to_the_same_numbers() {
    if common::tokenizer().is_none() {
        return;
    }
    let killed = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "child_trains_until_killed",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DIR, killed.path())
        .spawn()
        .expect("child");
    // Kill it somewhere past the first validation (step 10) and before the
    // end (step 60), between or inside steps, wherever it is.
    let t0 = Instant::now();
    while logged_steps(killed.path()) < 13 {
        assert!(
            child.try_wait().expect("child status").is_none(),
            "the child ended before it was killed"
        );
        assert!(t0.elapsed() < Duration::from_secs(300), "child too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed, not finished: {status}");
    let at_kill = logged_steps(killed.path());
    assert!(at_kill < 60, "killed at step {at_kill}");
    assert!(!killed.path().join("metrics.json").exists());

    let resumed = run(killed.path());
    let straight_dir = tempfile::tempdir().expect("tempdir");
    let straight = run(straight_dir.path());

    assert!(resumed.training.resumed_from.is_some_and(|s| s < at_kill));
    assert_eq!(resumed.training.steps, 60);
    let (steps_a, evals_a) = records(killed.path());
    let (steps_b, evals_b) = records(straight_dir.path());
    assert_eq!(steps_a.len(), 60);
    assert_eq!(steps_a, steps_b, "every step's loss and learning rate");
    let numbers = |m: &BTreeMap<u64, serde_json::Value>| -> Vec<(u64, f64)> {
        m.iter()
            .map(|(&s, v)| (s, v["eval"].as_f64().expect("eval")))
            .collect()
    };
    assert_eq!(numbers(&evals_a), numbers(&evals_b), "every validation");
    assert_eq!(
        (resumed.training.best_step, resumed.training.best_metric),
        (straight.training.best_step, straight.training.best_metric)
    );
    let json = |r: &RunResult| serde_json::to_value(&r.test).expect("json");
    let (mut a, mut b) = (json(&resumed), json(&straight));
    for v in [&mut a, &mut b] {
        v["seconds"] = serde_json::Value::Null;
    }
    assert_eq!(a, b, "the same test results");
}
