//! Atomic files, checkpoints and run directories.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::io::Write;
use std::path::Path;

use graft_train::{
    atomic_write, load_checkpoint, save_checkpoint, AdamW, AdamWConfig, RunDir, TrainError,
};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

fn opt_with(shape: &[i64], fill: f64) -> AdamW {
    let p = Tensor::full(shape, fill, (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let q = Tensor::full([2], fill, (Kind::Float, Device::Cpu)).set_requires_grad(true);
    AdamW::new(
        AdamWConfig::default(),
        vec![("enc.w".into(), p), ("enc.b".into(), q)],
    )
    .unwrap()
}

fn one_step(opt: &mut AdamW) {
    opt.zero_grad();
    let loss = opt
        .params()
        .iter()
        .map(|(_, p)| p.square().sum(Kind::Float))
        .fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b);
    loss.backward();
    opt.step().unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct St {
    epoch: u32,
    note: String,
}

fn checkpoint_err(err: TrainError) -> (std::path::PathBuf, String) {
    match err {
        TrainError::Checkpoint { path, reason } => (path, reason),
        other => panic!("expected a Checkpoint error, got {other}"),
    }
}

#[test]
fn atomic_write_replaces_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    atomic_write(&path, b"one").unwrap();
    atomic_write(&path, b"two").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two");
    assert_eq!(names(dir.path()), vec!["a.json"]);
}

#[test]
fn checkpoints_round_trip_and_older_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let mut opt = opt_with(&[3, 2], 1.0);
    assert!(load_checkpoint::<St>(&ckpt, &mut opt).unwrap().is_none());
    for step in 1..=3 {
        one_step(&mut opt);
        save_checkpoint(
            &ckpt,
            step,
            &opt,
            &St {
                epoch: step as u32,
                note: "x".into(),
            },
        )
        .unwrap();
    }
    assert_eq!(
        names(&ckpt),
        vec!["ckpt-00000003.safetensors", "latest.json"]
    );
    let latest: serde_json::Value =
        serde_json::from_slice(&fs::read(ckpt.join("latest.json")).unwrap()).unwrap();
    assert_eq!(latest["file"], "ckpt-00000003.safetensors");
    assert_eq!(latest["step"], 3);
    assert_eq!(latest["state"]["epoch"], 3);

    let mut fresh = opt_with(&[3, 2], 7.0);
    let (step, st): (u64, St) = load_checkpoint(&ckpt, &mut fresh).unwrap().unwrap();
    assert_eq!(
        (step, st),
        (
            3,
            St {
                epoch: 3,
                note: "x".into()
            }
        )
    );
    assert_eq!(fresh.steps(), 3);
    for ((_, a), (_, b)) in opt.params().iter().zip(fresh.params()) {
        assert!(a.equal(b));
    }
}

#[test]
fn a_kill_between_the_two_renames_keeps_the_previous_checkpoint() {
    // Simulate the states a kill can leave: temporary files, and a new tensor
    // file whose latest.json was never committed.
    let dir = tempfile::tempdir().unwrap();
    let mut opt = opt_with(&[2, 2], 1.0);
    one_step(&mut opt);
    save_checkpoint(dir.path(), 1, &opt, &1u32).unwrap();
    let saved: Vec<Tensor> = opt.params().iter().map(|(_, p)| p.copy()).collect();
    fs::write(
        dir.path().join(".ckpt-00000002.safetensors.tmp"),
        b"half a fi",
    )
    .unwrap();
    fs::write(
        dir.path().join("ckpt-00000002.safetensors"),
        b"garbage, never committed",
    )
    .unwrap();
    fs::write(
        dir.path().join(".latest.json.tmp"),
        b"{\"file\": \"ckpt-0000",
    )
    .unwrap();

    let mut fresh = opt_with(&[2, 2], 5.0);
    let (step, st): (u64, u32) = load_checkpoint(dir.path(), &mut fresh).unwrap().unwrap();
    assert_eq!((step, st), (1, 1));
    for ((_, p), s) in fresh.params().iter().zip(&saved) {
        assert!(p.equal(s));
    }
    // The next save cleans up the debris.
    one_step(&mut opt);
    save_checkpoint(dir.path(), 2, &opt, &2u32).unwrap();
    let left: Vec<String> = names(dir.path())
        .into_iter()
        .filter(|n| n != ".latest.json.tmp")
        .collect();
    assert_eq!(left, vec!["ckpt-00000002.safetensors", "latest.json"]);
    let (step, _): (u64, u32) = load_checkpoint(dir.path(), &mut fresh).unwrap().unwrap();
    assert_eq!(step, 2);
}

#[test]
fn corrupt_latest_json_is_a_checkpoint_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut opt = opt_with(&[2], 1.0);
    save_checkpoint(dir.path(), 4, &opt, &0u8).unwrap();
    fs::write(dir.path().join("latest.json"), b"{\"file\": \"ckpt-000").unwrap();
    let (path, reason) = checkpoint_err(load_checkpoint::<u8>(dir.path(), &mut opt).unwrap_err());
    assert!(path.ends_with("latest.json"), "{}", path.display());
    assert!(
        reason.contains("EOF") || reason.contains("pointer"),
        "{reason}"
    );

    // A state of the wrong type is reported against latest.json too.
    save_checkpoint(dir.path(), 5, &opt, &"text").unwrap();
    let (path, reason) = checkpoint_err(load_checkpoint::<u8>(dir.path(), &mut opt).unwrap_err());
    assert!(
        path.ends_with("latest.json") && reason.contains("state"),
        "{reason}"
    );

    // A file name escaping the directory is refused.
    fs::write(
        dir.path().join("latest.json"),
        br#"{"file": "../x.safetensors", "step": 1, "state": 0}"#,
    )
    .unwrap();
    let (path, _) = checkpoint_err(load_checkpoint::<u8>(dir.path(), &mut opt).unwrap_err());
    assert!(path.ends_with("latest.json"));
}

#[test]
fn missing_or_corrupt_tensor_file_is_a_checkpoint_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut opt = opt_with(&[2], 1.0);
    save_checkpoint(dir.path(), 7, &opt, &0u8).unwrap();
    let file = dir.path().join("ckpt-00000007.safetensors");
    let bytes = fs::read(&file).unwrap();

    fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let (path, reason) = checkpoint_err(load_checkpoint::<u8>(dir.path(), &mut opt).unwrap_err());
    assert_eq!(path, file, "{reason}");

    fs::remove_file(&file).unwrap();
    let (path, reason) = checkpoint_err(load_checkpoint::<u8>(dir.path(), &mut opt).unwrap_err());
    assert_eq!(path, file);
    assert!(reason.contains("missing"), "{reason}");
    let msg = TrainError::Checkpoint { path, reason }.to_string();
    assert!(msg.contains("ckpt-00000007.safetensors"), "{msg}");
}

#[test]
fn wrong_shapes_are_a_checkpoint_error_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let opt = opt_with(&[2, 3], 1.0);
    save_checkpoint(dir.path(), 1, &opt, &0u8).unwrap();
    let mut other = opt_with(&[3, 2], 2.0);
    let (path, reason) = checkpoint_err(load_checkpoint::<u8>(dir.path(), &mut other).unwrap_err());
    assert!(path.ends_with("ckpt-00000001.safetensors"));
    assert!(
        reason.contains("param.enc.w") && reason.contains("[3, 2]") && reason.contains("[2, 3]"),
        "{reason}"
    );
    // Nothing was copied.
    assert!(other.params()[0]
        .1
        .equal(&Tensor::full([3, 2], 2.0, (Kind::Float, Device::Cpu))));

    // A model with a parameter the checkpoint lacks.
    let p = Tensor::ones([2, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let q = Tensor::ones([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let mut renamed = AdamW::new(
        AdamWConfig::default(),
        vec![("enc.w".into(), p), ("dec.b".into(), q)],
    )
    .unwrap();
    let (_, reason) = checkpoint_err(load_checkpoint::<u8>(dir.path(), &mut renamed).unwrap_err());
    assert!(reason.contains("dec.b"), "{reason}");
}

#[derive(Serialize)]
struct Cfg {
    lr: f64,
    layers: Vec<u32>,
    name: &'static str,
}

#[test]
fn run_dir_refuses_a_different_config_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs/a");
    let cfg = Cfg {
        lr: 0.1 + 0.2,
        layers: vec![4, 8],
        name: "x",
    };
    let run = RunDir::create(&path, &cfg).unwrap();
    assert_eq!(run.path(), path);
    assert_eq!(run.checkpoint_dir(), path.join("checkpoints"));
    let stored: serde_json::Value =
        serde_json::from_slice(&fs::read(path.join("config.json")).unwrap()).unwrap();
    assert_eq!(stored["layers"][1], 8);
    // Same config (including a float without a short decimal form): accepted.
    RunDir::create(&path, &cfg).unwrap();
    let changed = Cfg {
        layers: vec![4, 16],
        ..cfg
    };
    let err = RunDir::create(&path, &changed).unwrap_err();
    match err {
        TrainError::Config(m) => {
            assert!(
                m.contains("same config") && m.contains("/layers/1") && m.contains("config.json"),
                "{m}"
            )
        }
        other => panic!("{other}"),
    }
    // The stored config is unchanged.
    let again: serde_json::Value =
        serde_json::from_slice(&fs::read(path.join("config.json")).unwrap()).unwrap();
    assert_eq!(again, stored);
}

#[test]
fn log_lines_and_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path(), &serde_json::json!({"k": 1})).unwrap();
    assert!(run.read_log().unwrap().is_empty());
    run.log(&serde_json::json!({"step": 1, "loss": 0.5}))
        .unwrap();
    run.log(&serde_json::json!({"step": 2, "loss": 0.25}))
        .unwrap();
    let len = run.log_len().unwrap();
    // A kill in the middle of a write.
    fs::OpenOptions::new()
        .append(true)
        .open(run.path().join("log.jsonl"))
        .unwrap()
        .write_all(b"{\"step\": 3, \"lo")
        .unwrap();
    let log = run.read_log().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1]["loss"], 0.25);
    // Resume truncates back to the checkpointed length; appending continues cleanly.
    run.truncate_log(len).unwrap();
    run.log(&serde_json::json!({"step": 3, "loss": 0.125}))
        .unwrap();
    let log = run.read_log().unwrap();
    assert_eq!(
        log.iter()
            .map(|v| v["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );

    // A corrupt line in the middle is an error with its line number.
    fs::write(
        run.path().join("log.jsonl"),
        b"{\"a\":1}\nnot json\n{\"a\":3}\n",
    )
    .unwrap();
    match run.read_log().unwrap_err() {
        TrainError::LogLine { line, path, .. } => {
            assert_eq!(line, 2);
            assert!(path.ends_with("log.jsonl"));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn write_json_is_pretty_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path(), &1u8).unwrap();
    run.write_json("metrics", &serde_json::json!({"ndcg": 0.5}))
        .unwrap();
    let text = fs::read_to_string(dir.path().join("metrics.json")).unwrap();
    assert!(text.contains("\n  \"ndcg\": 0.5"), "{text}");
    let back: Option<serde_json::Value> = run.read_json("metrics").unwrap();
    assert_eq!(back.unwrap()["ndcg"], 0.5);
    assert!(run.read_json::<u8>("absent").unwrap().is_none());
    assert!(matches!(
        run.write_json("../escape", &1),
        Err(TrainError::Config(_))
    ));
}

#[test]
fn run_dir_extends_only_its_budget_fields() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        |lr: f64, seconds: f64| serde_json::json!({"lr": lr, "stop": {"max_seconds": seconds}});
    let budget = ["/stop/max_seconds"];
    let run = RunDir::create_extendable(dir.path(), &cfg(0.1, 60.0), &budget).unwrap();
    assert!(!run.extended());
    // The same budget again: not an extension.
    assert!(
        !RunDir::create_extendable(dir.path(), &cfg(0.1, 60.0), &budget)
            .unwrap()
            .extended()
    );
    // A larger one replaces the stored value.
    assert!(
        RunDir::create_extendable(dir.path(), &cfg(0.1, 90.0), &budget)
            .unwrap()
            .extended()
    );
    let stored: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(stored["stop"]["max_seconds"], 90.0);
    // Without the pointer, or for another field, a difference is refused
    // and the stored file is unchanged.
    assert!(RunDir::create(dir.path(), &cfg(0.1, 120.0)).is_err());
    assert!(RunDir::create_extendable(dir.path(), &cfg(0.2, 120.0), &budget).is_err());
    let after: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(after, stored);
}
