//! Equivalence with Python PyTorch: `python/lightgcn_reference.py` builds
//! the normalised adjacency from the raw training edges the way the ELMRec
//! code does and propagates a fixed `E0` with `torch.sparse.mm`; our
//! backends must match it within 1e-5 relative (per node: the L2 norm of
//! the difference of its embedding over the L2 norm of torch's).
//!
//! Needs the project venv (`cargo xtask setup`; override the interpreter
//! with `GRAFT_PYTHON`). Without it the tests skip with a message, unless
//! `GRAFT_REQUIRE_TORCH_REFERENCE=1` (set by `cargo xtask test`, hence in
//! CI) turns the skip into a failure. The Beauty case also needs
//! `../shared/data` (`GRAFT_SHARED_DATA`).

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use graft_data::{load, Format, LeaveOneOut, LoadOptions};
use graft_graph::BipartiteGraph;
use graft_propagate::exchange::{read_safetensors_map, write_propagation_input};
use graft_propagate::ndarray::Array2;
use graft_propagate::{normal_embeddings, LayerCombine, Propagator, RustCsr};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("GRAFT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(p);
    }
    let msg = format!(
        "{} with torch not found (run `cargo xtask setup` or set GRAFT_PYTHON)",
        p.display()
    );
    if std::env::var("GRAFT_REQUIRE_TORCH_REFERENCE").as_deref() == Ok("1") {
        panic!("GRAFT_REQUIRE_TORCH_REFERENCE=1 but {msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// Runs the reference; returns (float32 result, float64 result).
fn reference(
    py: &Path,
    g: &BipartiteGraph,
    e0: &Array2<f32>,
    layers: usize,
    layout: &str,
) -> (Array2<f64>, Array2<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    let output = dir.path().join("out.safetensors");
    write_propagation_input(&input, g, e0).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/lightgcn_reference.py");
    let out = Command::new(py)
        .arg(&script)
        .arg("propagate")
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--layers", &layers.to_string(), "--layout", layout])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = read_safetensors_map(&output).unwrap();
    (
        m["out"].to_array2().unwrap(),
        m["out64"].to_array2().unwrap(),
    )
}

/// Per node (row), `||a_r - b_r|| <= tol * ||b_r||` in the L2 norm: every
/// node's embedding agrees to `tol` relative. Returns the largest ratio.
fn check(a: &Array2<f32>, b: &Array2<f64>, tol: f64, what: &str) -> f64 {
    assert_eq!(a.dim(), b.dim(), "{what}: shape");
    let mut worst = 0.0f64;
    for (r, (ra, rb)) in a.outer_iter().zip(b.outer_iter()).enumerate() {
        let err = ra
            .iter()
            .zip(rb)
            .map(|(&x, &y)| (f64::from(x) - y).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm = rb.iter().map(|y| y * y).sum::<f64>().sqrt();
        if norm == 0.0 {
            assert_eq!(err, 0.0, "{what}: row {r} should be zero");
            continue;
        }
        let rel = err / norm;
        worst = worst.max(rel);
        assert!(
            rel <= tol,
            "{what}: node {r}: relative L2 difference {rel:.3e} > {tol:e}"
        );
    }
    worst
}

fn compare_all(py: &Path, g: &BipartiteGraph, d: usize, layers: usize, label: &str) {
    let e0 = normal_embeddings(g.n_nodes(), d, 0.1, 2024);
    let (t32, t64) = reference(py, g, &e0, layers, "coo");
    #[allow(unused_mut)]
    let mut backends: Vec<Box<dyn Propagator>> = vec![Box::new(RustCsr::for_graph(g).unwrap())];
    #[cfg(feature = "tch")]
    for layout in [
        graft_propagate::SparseLayout::Coo,
        graft_propagate::SparseLayout::Csr,
    ] {
        let adj = g.normalized().unwrap();
        backends.push(Box::new(
            graft_propagate::TchPropagator::new(&adj, layout, tch::Device::Cpu).unwrap(),
        ));
    }
    for k in backends {
        let ours = k.propagate(e0.view(), layers, &LayerCombine::Mean).unwrap();
        let r32 = check(
            &ours,
            &t32,
            1e-5,
            &format!("{label} {} vs torch f32", k.name()),
        );
        let r64 = check(
            &ours,
            &t64,
            1e-5,
            &format!("{label} {} vs torch f64", k.name()),
        );
        eprintln!(
            "{label} {}: max rel. diff {r32:.2e} (torch f32), {r64:.2e} (torch f64)",
            k.name()
        );
    }
    // The CSR layout of the reference gives the same answer.
    let (c32, _) = reference(py, g, &e0, layers, "csr");
    check(
        &c32.mapv(|x| x as f32),
        &t64,
        1e-5,
        &format!("{label} torch csr vs coo"),
    );
}

#[test]
fn small_graph_matches_pytorch() {
    let Some(py) = python() else { return };
    // Includes an isolated user (3) and an isolated item (4).
    let g = BipartiteGraph::from_edges(
        5,
        6,
        [
            (0, 0),
            (0, 1),
            (1, 1),
            (1, 2),
            (2, 0),
            (2, 5),
            (4, 3),
            (4, 1),
            (0, 5),
        ],
    )
    .unwrap();
    compare_all(&py, &g, 16, 4, "small");
    let g = graft_propagate::bench::power_law_graph(800, 500, 6, 1.0, 3).unwrap();
    compare_all(&py, &g, 70, 3, "power-law");
}

#[test]
fn beauty_train_graph_matches_pytorch() {
    let Some(py) = python() else { return };
    let Some(dir) = graft_data::shared::shared_dataset(&workspace(), "amazon/beauty") else {
        return;
    };
    let ds = load(Format::AmazonP5, &dir, &LoadOptions::default()).unwrap();
    let loo = LeaveOneOut::new(&ds);
    let g = BipartiteGraph::from_edges(ds.users.len(), ds.items.len(), loo.train_edges()).unwrap();
    compare_all(&py, &g, 64, 4, "beauty");
}
