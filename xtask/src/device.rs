//! `cargo xtask device-bundle`: what a GPU machine needs to check graft's
//! CUDA paths, built here.
//!
//! The device machines this project may be lent have PyTorch
//! 2.11.0+cu130 and no Rust toolchain, and at most 64 MiB travels to them.
//! So the release binaries are built on this machine against the same
//! libtorch: PyPI's `torch==2.11.0` wheel (lib and include folders only,
//! in `.cache/device/`) and `tch` 0.24 (the tch release for PyTorch 2.11),
//! in a copy of the source tree under `target/device-bundle/src` whose
//! manifest asks for tch 0.24 instead of 0.26. On the device the binaries
//! load the image's own `torch/lib` (check.sh sets `LD_LIBRARY_PATH`).
//!
//! The bundle, `target/device-bundle/carry/` (name it in the device tool's
//! `carry`): the CUDA test binaries of graft-graph, graft-propagate,
//! graft-lm and graft-lora and the elmrec, elcorec and compare examples
//! (stripped, in `bin.tar.xz`), the fixtures and Python scripts they read,
//! Amazon Beauty and MovieLens-100K, the T5 tokenizer, SmolLM2's GGUF
//! metadata without its weights (architecture and tokenizer: the ELCoRec
//! timing runs SmolLM2's shape with seeded random weights, as the 98 MB
//! weights cannot travel), ML-100K's item embeddings (so the MiniLM files
//! need not travel either), `check.sh` and `summary.py`. It must stay
//! under 60 MiB. Before it is called done, its test binaries run their CPU
//! tests here against the same libtorch 2.11 (whose CUDA libraries come
//! from the project venv's `nvidia` folder, the same CUDA 13 family).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{cargo, check_sha256, fetch_models, output, root, run, setup, step, Result};

/// The PyTorch of the device image, and the tch release made for it.
const DEVICE_TORCH: &str = "2.11.0";
const DEVICE_TCH: &str = "0.24";
const DEVICE_TORCH_WHEEL: &str = "torch-2.11.0-cp312-cp312-manylinux_2_28_x86_64.whl";
const DEVICE_TORCH_WHEEL_SHA256: &str =
    "0f68f4ac6d95d12e896c3b7a912b5871619542ec54d3649cf48cc1edd4dd2756";
/// The bundle must leave room under the device tool's 64 MiB.
const BUNDLE_LIMIT: u64 = 60 << 20;
/// (package, test target) of the test binaries that hold CUDA tests.
const CUDA_TESTS: [(&str, &str); 6] = [
    ("graft-graph", "tch_coo"),
    ("graft-propagate", "tch_lightgcn"),
    ("graft-propagate", "gat"),
    ("graft-propagate", "battery"),
    ("graft-lm", "cuda"),
    ("graft-lora", "cuda"),
];
const CUDA_FEATURES: &str =
    "graft-graph/cuda-tests,graft-propagate/cuda-tests,graft-lm/cuda-tests,graft-lora/cuda-tests";

fn bundle_dir() -> PathBuf {
    root().join("target/device-bundle")
}

pub fn device_bundle() -> Result<()> {
    let python = setup()?;
    let models = fetch_models()?;
    let libtorch = device_libtorch(&python)?;
    let src = source_tree(&libtorch)?;
    let bins = build(&src)?;
    let carry = assemble(&src, &bins, &models.t5_tokenizer, &python)?;
    elcorec_inputs(&src, &carry, &bins, &libtorch, &models)?;
    check_size(&carry)?;
    self_test(&bins, &libtorch, &python)?;
    step(&format!(
        "bundle ready: {} (carry it; run `sh {}/check.sh $OUT` on the GPU machine)",
        carry.display(),
        carry.strip_prefix(root()).unwrap_or(&carry).display()
    ));
    Ok(())
}

/// PyPI's torch 2.11.0 wheel, unpacked to `.cache/device/libtorch-2.11.0/torch`
/// (lib, include), with `nvidia` beside `torch` pointing at the project
/// venv's CUDA libraries so that the libraries load here (their RPATH is
/// `$ORIGIN/../../nvidia/...`).
fn device_libtorch(python: &Path) -> Result<PathBuf> {
    let dir = super::cache_dir().join("device");
    let unpacked = dir.join(format!("libtorch-{DEVICE_TORCH}"));
    let torch = unpacked.join("torch");
    if !torch.join("lib/libtorch_cuda.so").is_file() {
        let wheel = dir.join(DEVICE_TORCH_WHEEL);
        if !wheel.is_file() {
            step(&format!(
                "downloading torch=={DEVICE_TORCH} for the device (PyPI, ~530 MB, one time)"
            ));
            run(Command::new(python)
                .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
                .args(["--python-version", "3.12", "--implementation", "cp"])
                .args([
                    "--platform",
                    "manylinux_2_28_x86_64",
                    "--disable-pip-version-check",
                ])
                .arg("-d")
                .arg(&dir)
                .arg(format!("torch=={DEVICE_TORCH}")))?;
        }
        check_sha256(&wheel, DEVICE_TORCH_WHEEL_SHA256)?;
        step(&format!(
            "unpacking libtorch {DEVICE_TORCH} into {}",
            unpacked.display()
        ));
        let script = "import sys, zipfile\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith(('torch/lib/', 'torch/include/'))])";
        run(Command::new(python)
            .args(["-c", script])
            .arg(&wheel)
            .arg(&unpacked))?;
        // The wheel is not needed once unpacked.
        let _ = fs::remove_file(&wheel);
    }
    let site = output(Command::new(python).args([
        "-c",
        "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))",
    ]))?;
    let link = unpacked.join("nvidia");
    let target = Path::new(&site).join("nvidia");
    if fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link)
            .map_err(|e| format!("cannot link {}: {e}", link.display()))?;
    }
    Ok(torch)
}

/// The tracked (and untracked, not ignored) files copied to
/// `target/device-bundle/src`, with tch 0.24 and LIBTORCH pointing at the
/// device's libtorch.
fn source_tree(libtorch: &Path) -> Result<PathBuf> {
    let src = bundle_dir().join("src");
    step(&format!("copying the source tree to {}", src.display()));
    let files = output(Command::new("git").current_dir(root()).args([
        "ls-files",
        "-co",
        "--exclude-standard",
    ]))?;
    for f in files.lines() {
        let from = root().join(f);
        if !from.is_file() {
            continue;
        }
        let to = src.join(f);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        if fs::read(&to).ok() != fs::read(&from).ok() {
            fs::copy(&from, &to).map_err(|e| format!("{}: {e}", to.display()))?;
        }
    }
    let manifest = src.join("Cargo.toml");
    let text = fs::read_to_string(&manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let text = replace_line(&text, "tch = \"", &format!("tch = \"{DEVICE_TCH}\""))?;
    let text = replace_line(
        &text,
        "torch-sys = \"",
        &format!("torch-sys = \"{DEVICE_TCH}\""),
    )?;
    write_if_changed(&manifest, &text)?;
    let config = src.join(".cargo/config.toml");
    let text = fs::read_to_string(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    let text = replace_line(
        &text,
        "LIBTORCH = ",
        &format!(
            "LIBTORCH = {{ value = \"{}\", force = true }}",
            libtorch.display()
        ),
    )?;
    write_if_changed(&config, &text)?;
    Ok(src)
}

/// `text` with its one line starting with `prefix` replaced by `line`.
fn replace_line(text: &str, prefix: &str, line: &str) -> Result<String> {
    let hits = text.lines().filter(|l| l.starts_with(prefix)).count();
    if hits != 1 {
        return Err(format!(
            "expected one line starting with {prefix:?}, found {hits}"
        ));
    }
    let mut out: Vec<&str> = text
        .lines()
        .map(|l| if l.starts_with(prefix) { line } else { l })
        .collect();
    out.push("");
    Ok(out.join("\n"))
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// A built binary of the bundle: its name there and where cargo put it.
struct Built {
    name: String,
    path: PathBuf,
}

fn bundle_cargo(src: &Path) -> Command {
    let mut c = cargo();
    c.current_dir(src)
        .env("CARGO_TARGET_DIR", bundle_dir().join("target"))
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
        .env("CARGO_PROFILE_BENCH_STRIP", "symbols");
    c
}

/// Release builds of the CUDA test binaries and the examples, in the copy.
fn build(src: &Path) -> Result<Vec<Built>> {
    step(&format!(
        "building the CUDA test binaries against libtorch {DEVICE_TORCH} (tch {DEVICE_TCH}, release)"
    ));
    let mut c = bundle_cargo(src);
    c.args([
        "test",
        "--release",
        "--no-run",
        "--tests",
        "--message-format=json",
    ]);
    for p in ["graft-graph", "graft-propagate", "graft-lm", "graft-lora"] {
        c.args(["-p", p]);
    }
    let json = output(c.args(["--features", CUDA_FEATURES]))?;
    let mut bins = Vec::new();
    for (package, target) in CUDA_TESTS {
        let path = json
            .lines()
            .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
            .filter(|l| l.contains(&format!("/{package}#")) || l.contains(&format!("#{package}@")))
            .filter(|l| {
                l.contains("\"kind\":[\"test\"]") && l.contains(&format!("\"name\":\"{target}\""))
            })
            .find_map(|l| field(l, "executable"))
            .ok_or_else(|| format!("cargo built no test binary {package}/{target}"))?;
        bins.push(Built {
            name: format!("test-{package}-{target}"),
            path: PathBuf::from(path),
        });
    }
    step("building the elmrec, elcorec and compare examples (release)");
    run(bundle_cargo(src).args([
        "build",
        "--release",
        "--example",
        "elmrec",
        "--example",
        "elcorec",
    ]))?;
    run(bundle_cargo(src).args([
        "build",
        "--release",
        "-p",
        "graft-propagate",
        "--features",
        "tch,bench",
        "--example",
        "compare",
    ]))?;
    for name in ["elmrec", "elcorec", "compare"] {
        bins.push(Built {
            name: name.into(),
            path: bundle_dir().join("target/release/examples").join(name),
        });
    }
    Ok(bins)
}

/// The string value of `"key":"..."` in one line of cargo's JSON (cargo
/// escapes no character of the paths this project has).
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}

/// `target/device-bundle/carry`: binaries (compressed), fixtures, scripts,
/// data, tokenizer, check script.
fn assemble(src: &Path, bins: &[Built], tokenizer: &Path, python: &Path) -> Result<PathBuf> {
    let carry = bundle_dir().join("carry");
    let _ = fs::remove_dir_all(&carry);
    let staging = bundle_dir().join("bin-staging/bin");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    for b in bins {
        copy(&b.path, &staging.join(&b.name))?;
    }
    fs::create_dir_all(&carry).map_err(|e| format!("{}: {e}", carry.display()))?;
    step("compressing the binaries (xz)");
    run(Command::new(python)
        .args([
            "-c",
            "import sys, tarfile\n\
             with tarfile.open(sys.argv[1], 'w:xz', preset=6) as t: t.add(sys.argv[2], 'bin')",
        ])
        .arg(carry.join("bin.tar.xz"))
        .arg(&staging))?;
    // What the test binaries and the compare example read, at the paths
    // they were built with (check.sh links the build root to `src`).
    for dir in [
        "crates/graft-lm/tests/fixtures",
        "crates/graft-propagate/python",
        "crates/graft-graph/tests",
    ] {
        copy_dir(&src.join(dir), &carry.join("src").join(dir))?;
    }
    fs::write(carry.join("build_root"), src.display().to_string())
        .map_err(|e| format!("build_root: {e}"))?;
    for data in ["amazon/beauty", "ml-100k"] {
        let from = super::shared_data().join(data);
        if !from.is_dir() {
            return Err(format!(
                "{} not found: the device check trains on it (set GRAFT_SHARED_DATA)",
                from.display()
            ));
        }
        copy_dir(&from, &carry.join("data").join(data))?;
    }
    copy(tokenizer, &carry.join("tokenizer.json"))?;
    for f in ["check.sh", "summary.py"] {
        copy(&root().join("device").join(f), &carry.join(f))?;
    }
    Ok(carry)
}

/// What the ELCoRec timing reads instead of files too large to carry:
/// SmolLM2's GGUF without its tensors, and the item embeddings of
/// ML-100K (computed here by the bundle's own elcorec binary).
fn elcorec_inputs(
    src: &Path,
    carry: &Path,
    bins: &[Built],
    libtorch: &Path,
    models: &super::Models,
) -> Result<()> {
    step("writing SmolLM2's metadata without its weights");
    run(bundle_cargo(src)
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            "graft-lm",
            "--example",
            "gguf",
            "--",
        ])
        .arg(&models.smollm2_gguf)
        .arg("--metadata-only")
        .arg(carry.join("smollm2-meta.gguf")))?;
    step("computing the ML-100K item embeddings (all-MiniLM-L6-v2)");
    let elcorec = bins
        .iter()
        .find(|b| b.name == "elcorec")
        .ok_or("no elcorec binary was built")?;
    run(Command::new(&elcorec.path)
        .arg("--data")
        .arg(carry.join("data/ml-100k"))
        .arg("--embed-only")
        .arg("--embedding-cache")
        .arg(carry.join("embeddings"))
        .arg("--minilm")
        .arg(&models.minilm_dir)
        .env("LD_LIBRARY_PATH", libtorch.join("lib")))
}

/// Refuses a bundle over the size limit.
fn check_size(carry: &Path) -> Result<()> {
    let size = dir_size(carry)?;
    step(&format!(
        "bundle size {:.1} MiB (limit {} MiB)",
        size as f64 / f64::from(1 << 20),
        BUNDLE_LIMIT >> 20
    ));
    if size > BUNDLE_LIMIT {
        return Err(format!(
            "the bundle is {size} bytes, over the {BUNDLE_LIMIT}-byte limit"
        ));
    }
    Ok(())
}

/// The bundled test binaries' CPU tests, here, against libtorch 2.11.
fn self_test(bins: &[Built], libtorch: &Path, python: &Path) -> Result<()> {
    step(&format!(
        "running the bundle's CPU tests against libtorch {DEVICE_TORCH}"
    ));
    for b in bins.iter().filter(|b| b.name.starts_with("test-")) {
        run(Command::new(&b.path)
            .args(["--skip", "cuda", "--test-threads", "2"])
            .env("LD_LIBRARY_PATH", libtorch.join("lib"))
            .env("GRAFT_PYTHON", python)
            .env("GRAFT_REQUIRE_TORCH_REFERENCE", "1"))
        .map_err(|e| format!("{}: {e}", b.name))?;
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let p = entry.map_err(|e| e.to_string())?.path();
        let name = p.file_name().unwrap_or_default();
        if p.is_dir() {
            copy_dir(&p, &to.join(name))?;
        } else {
            copy(&p, &to.join(name))?;
        }
    }
    Ok(())
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let p = entry.map_err(|e| e.to_string())?.path();
        total += if p.is_dir() {
            dir_size(&p)?
        } else {
            fs::metadata(&p).map_err(|e| e.to_string())?.len()
        };
    }
    Ok(total)
}
