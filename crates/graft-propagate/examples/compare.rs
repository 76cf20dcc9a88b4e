//! Side-by-side timing of our LightGCN propagation kernels and the PyTorch
//! reference, in one run with equal threads.
//!
//! ```text
//! cargo xtask compare                       # sets up the venv, then runs this
//! cargo run --release -p graft-propagate --features tch --example compare -- --threads 2
//! ```
//!
//! For each graph (the Amazon Beauty training graph when `../shared/data`
//! is present, else a synthetic power-law graph of the same size) it times
//! `L` layers of propagation plus the layer mean for every backend, runs
//! `python/lightgcn_reference.py bench` with the project venv's torch on
//! the same edges and `E0`, and prints the median times, the speed-up over
//! PyTorch COO and CSR, and the effective gather bandwidth against a copy
//! bandwidth measured in the same run. Then it times the GAT expert
//! network (forward + backward + AdamW) against `python/gat_peer.py`
//! (the same layer in plain PyTorch, and PyTorch Geometric). A JSON summary
//! goes to `runs/compare/summary.json`.

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use graft_data::{load, Format, LeaveOneOut, LoadOptions};
use graft_graph::BipartiteGraph;
use graft_propagate::bench::{
    copy_bandwidth, gathered_bytes, median_s, power_law_graph, time_runs,
};
use graft_propagate::exchange::write_propagation_input;
use graft_propagate::lightgcn::BlockWidth;
use graft_propagate::{
    normal_embeddings, LayerCombine, Propagator, RustCsr, SparseLayout, TchPropagator,
};
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(about = "Time graft's propagation kernels against PyTorch in one run")]
struct Args {
    /// Threads for every backend (rayon pool, torch intra-op threads).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Embedding dimensions to time.
    #[arg(long, value_delimiter = ',', default_values_t = [64usize, 512])]
    dims: Vec<usize>,
    /// Propagation layers.
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// Timed repetitions per backend (median reported).
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// Shared data folder (Amazon Beauty is read from `amazon/beauty`).
    #[arg(long, env = "GRAFT_SHARED_DATA", default_value = "../shared/data")]
    shared_data: PathBuf,
    /// Python interpreter with torch 2.13.0.
    #[arg(long, env = "GRAFT_PYTHON", default_value = ".venv/bin/python")]
    python: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "runs/compare")]
    out: PathBuf,
    /// Skip the PyTorch side (our kernels only).
    #[arg(long)]
    no_python: bool,
    /// Graphs per GAT batch (1 user + 16 items + 8 feature nodes each).
    #[arg(long, default_value_t = 1024)]
    gat_graphs: usize,
    /// Timed GAT training steps per implementation.
    #[arg(long, default_value_t = 10)]
    gat_iters: usize,
    /// Skip the GAT comparison.
    #[arg(long)]
    no_gat: bool,
    /// Device of the libtorch backends and the PyTorch peers: cpu, cuda or
    /// cuda:N (our pure-Rust kernel always runs on the CPU).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    device: tch::Device,
}

fn parse_device(s: &str) -> Result<tch::Device, String> {
    match s {
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" => Ok(tch::Device::Cuda(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(tch::Device::Cuda)
            .ok_or_else(|| format!("unknown device {s:?} (cpu, cuda, cuda:N)")),
    }
}

/// The device's name for the PyTorch scripts (`cpu`, `cuda:N`).
fn device_name(d: tch::Device) -> String {
    match d {
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

/// Waits for the device's queued work (timings of CUDA kernels).
fn sync(d: tch::Device) {
    if let tch::Device::Cuda(i) = d {
        tch::Cuda::synchronize(i as i64);
    }
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

type BoxResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: Args) -> BoxResult<()> {
    std::fs::create_dir_all(&args.out)?;
    tch::set_num_threads(args.threads as i32);
    if args.device.is_cuda() && !tch::Cuda::is_available() {
        return Err("--device cuda, but libtorch sees no CUDA device".into());
    }
    let (name, graph) = workload(&args)?;
    let adj = graph.normalized()?;
    let n = graph.n_nodes();
    let nnz = adj.nnz();
    println!(
        "graph {name}: {} users, {} items, {n} nodes, nnz(Â) = {nnz}; L = {}, threads = {}",
        graph.n_users(),
        graph.n_items(),
        args.layers,
        args.threads
    );
    let copy = copy_bandwidth(1 << 30, args.threads, 5)?;
    println!(
        "copy bandwidth ({} threads, 1 GiB buffer): {:.1} GB/s",
        args.threads,
        copy / 1e9
    );
    println!("machine: {}", machine());

    let mut rows: Vec<Value> = Vec::new();
    for &d in &args.dims {
        let e0 = normal_embeddings(n, d, 0.1, 2024);
        let gathered = gathered_bytes(nnz, d, args.layers);
        let mut results: Vec<(String, f64)> = Vec::new();
        // Our pure-Rust kernel at every block width, then libtorch from Rust.
        for (b, panels) in [
            (16, false),
            (64, false),
            (128, false),
            (64, true),
            (128, true),
        ] {
            let k = RustCsr::new(&adj)?;
            // Optional row panels: user rows, then item rows.
            let k = if panels {
                k.with_row_panels(vec![0, graph.n_users(), n])?
            } else {
                k
            };
            let k = k
                .with_threads(args.threads)?
                .with_block_width(BlockWidth::Columns(b))?;
            let t = time_runs(args.repeats, || {
                k.propagate(e0.view(), args.layers, &LayerCombine::Mean)
            })?;
            results.push((k.name(), median_s(&t)));
        }
        // The default kernel writing into a reused output buffer (no fresh
        // 4-KiB pages to fault in), as a training or serving loop would.
        {
            let k = RustCsr::for_graph(&graph)?.with_threads(args.threads)?;
            let mut buf = graft_propagate::ndarray::Array2::zeros(e0.dim());
            let t = time_runs(args.repeats, || {
                k.propagate_into(e0.view(), args.layers, &LayerCombine::Mean, &mut buf)
            })?;
            results.push((format!("{} into buffer", k.name()), median_s(&t)));
        }
        for layout in [SparseLayout::Coo, SparseLayout::Csr] {
            let k = TchPropagator::new(&adj, layout, args.device)?;
            let x = tch::Tensor::f_from_slice(e0.as_slice().unwrap_or(&[]))?
                .f_view([n as i64, d as i64])?
                .f_to(args.device)?;
            let t = time_runs(args.repeats, || {
                let out = tch::no_grad(|| k.forward(&x, args.layers, &LayerCombine::Mean));
                sync(args.device);
                out
            })?;
            let on = match args.device {
                tch::Device::Cpu => String::new(),
                other => format!(" on {}", device_name(other)),
            };
            results.push((
                format!("tch-{}{on} (libtorch from Rust)", layout.name()),
                median_s(&t),
            ));
        }
        if !args.no_python {
            results.extend(python_bench(&args, &graph, &e0, d)?);
        }
        let py = |k: &str| results.iter().find(|(n, _)| n == k).map(|(_, t)| *t);
        let (py_coo, py_csr) = (py("pytorch-coo"), py("pytorch-csr"));
        println!(
            "\nd = {d}: gathered rows {:.2} GB per propagation",
            gathered / 1e9
        );
        println!(
            "{:<40} {:>10} {:>10} {:>10} {:>12} {:>8}",
            "backend", "median s", "vs PT COO", "vs PT CSR", "gather GB/s", "of copy"
        );
        for (backend, t) in &results {
            let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.2}x", r / t));
            let bw = gathered / t;
            println!(
                "{backend:<40} {t:>10.4} {:>10} {:>10} {:>12.1} {:>7.0}%",
                ratio(py_coo),
                ratio(py_csr),
                bw / 1e9,
                100.0 * bw / copy
            );
            rows.push(json!({
                "graph": name, "d": d, "layers": args.layers, "threads": args.threads,
                "backend": backend, "median_s": t,
                "speedup_vs_pytorch_coo": py_coo.map(|r| r / t),
                "speedup_vs_pytorch_csr": py_csr.map(|r| r / t),
                "gather_gb_s": bw / 1e9, "fraction_of_copy": bw / copy,
            }));
        }
    }
    let gat = if args.no_gat {
        Value::Null
    } else {
        gat_comparison(&args)?
    };
    let summary = json!({
        "graph": name, "nodes": n, "nnz": nnz, "threads": args.threads,
        "copy_gb_s": copy / 1e9, "machine": machine(), "device": device_name(args.device),
        "results": rows, "gat": gat,
    });
    let path = args.out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)?;
    println!("\nwrote {}", path.display());
    Ok(())
}

/// GAT expert network, forward + backward + AdamW, ours (tch from Rust)
/// against `python/gat_peer.py` (plain PyTorch and PyG) on the same batch.
fn gat_comparison(args: &Args) -> BoxResult<Value> {
    use graft_graph::SampleGraphOptions;
    use graft_propagate::gat::{bench, HeteroGatConfig};
    let batch = bench::synthetic_batch(args.gat_graphs, 16, 8, 2, &SampleGraphOptions::default())?;
    let cfg = HeteroGatConfig::new([64, 64, 64]);
    let x = bench::random_features(&batch, cfg.in_dims, tch::Kind::Float, args.device, 7)?;
    println!(
        "\nGAT expert ({} graphs of 1 user + 16 items + 8 features, inputs 64, layers 8x32 then 1x32; \
         forward + backward + AdamW, {} threads, {} timed steps)",
        args.gat_graphs, args.threads, args.gat_iters
    );
    tch::manual_seed(0);
    let ours = bench::train_step_throughput(&cfg, &batch, &x, args.gat_iters, 3, args.device)?;
    let mut results = vec![(
        "graft HeteroGat (tch from Rust)".to_string(),
        ours.graphs_per_s,
        ours.seconds_per_step,
    )];
    if !args.no_python {
        let file = args.out.join("gat-batch.safetensors");
        bench::export_batch(&file, &batch, &x)?;
        let script = crate_dir().join("python/gat_peer.py");
        for imp in ["torch", "pyg"] {
            let out = Command::new(&args.python)
                .arg(&script)
                .arg("--batch")
                .arg(&file)
                .args(["--impl", imp, "--threads", &args.threads.to_string()])
                .args(["--device", &device_name(args.device)])
                .args(["--iters", &args.gat_iters.to_string(), "--warmup", "3"])
                .output()?;
            match out.status.code() {
                Some(0) => {
                    let line = String::from_utf8_lossy(&out.stdout);
                    let v: Value =
                        serde_json::from_str(line.trim().lines().last().unwrap_or("{}"))?;
                    let name = match imp {
                        "pyg" => "PyTorch Geometric HeteroConv(GATConv)",
                        _ => "PyTorch, same layer (python)",
                    };
                    results.push((
                        name.to_string(),
                        v["graphs_per_s"].as_f64().unwrap_or(f64::NAN),
                        v["seconds_per_step"].as_f64().unwrap_or(f64::NAN),
                    ));
                }
                Some(3) => eprintln!(
                    "note: torch_geometric not installed; `cargo xtask compare` installs it"
                ),
                _ => {
                    return Err(format!(
                        "gat_peer.py --impl {imp} failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                    .into())
                }
            }
        }
        let _ = std::fs::remove_file(&file);
    }
    let base = |k: &str| results.iter().find(|r| r.0.starts_with(k)).map(|r| r.1);
    let (pt, pyg) = (base("PyTorch,"), base("PyTorch Geometric"));
    println!(
        "{:<40} {:>10} {:>10} {:>10} {:>10}",
        "implementation", "graphs/s", "s/step", "vs PyTorch", "vs PyG"
    );
    let mut rows = Vec::new();
    for (name, gps, sps) in &results {
        let ratio = |b: Option<f64>| b.map_or("-".to_string(), |b| format!("{:.2}x", gps / b));
        println!(
            "{name:<40} {gps:>10.0} {sps:>10.4} {:>10} {:>10}",
            ratio(pt),
            ratio(pyg)
        );
        rows.push(json!({"implementation": name, "graphs_per_s": gps, "seconds_per_step": sps}));
    }
    Ok(
        json!({"n_graphs": args.gat_graphs, "threads": args.threads, "iters": args.gat_iters, "results": rows}),
    )
}

/// The Beauty training graph (leave-one-out train edges), or a synthetic
/// power-law graph of the same size when the data are absent.
fn workload(args: &Args) -> BoxResult<(String, BipartiteGraph)> {
    let dir = args.shared_data.join("amazon/beauty");
    match load(Format::AmazonP5, &dir, &LoadOptions::default()) {
        Ok(ds) => {
            let loo = LeaveOneOut::new(&ds);
            let g = BipartiteGraph::from_edges(ds.users.len(), ds.items.len(), loo.train_edges())?;
            Ok(("amazon-beauty-train".into(), g))
        }
        Err(e) => {
            eprintln!(
                "note: Beauty not available ({e}); using a synthetic power-law graph of its size"
            );
            Ok((
                "synthetic-power-law".into(),
                power_law_graph(22_363, 12_101, 7, 1.0, 7)?,
            ))
        }
    }
}

fn python_bench(
    args: &Args,
    graph: &BipartiteGraph,
    e0: &graft_propagate::ndarray::Array2<f32>,
    d: usize,
) -> BoxResult<Vec<(String, f64)>> {
    let input = args.out.join(format!("input-d{d}.safetensors"));
    write_propagation_input(&input, graph, e0)?;
    let script = crate_dir().join("python/lightgcn_reference.py");
    let out = Command::new(&args.python)
        .arg(&script)
        .args(["bench", "--input"])
        .arg(&input)
        .args(["--layers", &args.layers.to_string()])
        .args(["--threads", &args.threads.to_string()])
        .args(["--repeats", &args.repeats.to_string()])
        .args(["--device", &device_name(args.device)])
        .output()
        .map_err(|e| {
            format!(
                "cannot run {}: {e} (run `cargo xtask setup`)",
                args.python.display()
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let _ = std::fs::remove_file(&input);
    let mut res = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line)?;
        let name = v["impl"].as_str().unwrap_or("pytorch").to_string();
        let t = v["median_s"].as_f64().ok_or("python bench: no median_s")?;
        if let Some(torch) = v["torch"].as_str() {
            eprintln!(
                "{name}: torch {torch}, {} threads, on {}",
                v["threads"], v["device"]
            );
        }
        res.push((name, t));
    }
    Ok(res)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{cpu}, {} logical CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}
