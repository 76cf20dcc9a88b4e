//! Criterion benches of the LightGCN backends side by side: synthetic
//! power-law graphs and the Amazon Beauty training graph (when
//! `../shared/data` is present), d = 64 and 512, L = 4, thread counts set
//! explicitly (`GRAFT_BENCH_THREADS`, default 2). With the `tch` feature
//! (default) libtorch COO/CSR are included, and the GAT expert network's
//! forward + backward + AdamW step.
//!
//! `cargo bench -p graft-propagate --bench propagate`
//!
//! For ratios against Python PyTorch in one run use the comparison command
//! (`cargo xtask compare`); criterion only times the Rust side.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use graft_data::{load, Format, LeaveOneOut, LoadOptions};
use graft_graph::BipartiteGraph;
use graft_propagate::bench::power_law_graph;
use graft_propagate::lightgcn::BlockWidth;
use graft_propagate::{normal_embeddings, LayerCombine, Propagator, RustCsr};

const LAYERS: usize = 4;

fn threads() -> usize {
    std::env::var("GRAFT_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

fn graphs() -> Vec<(String, BipartiteGraph)> {
    let mut out = Vec::new();
    for (users, items) in [(5_000, 2_500), (20_000, 10_000)] {
        match power_law_graph(users, items, 8, 1.0, 7) {
            Ok(g) => out.push((format!("powerlaw-{}", users + items), g)),
            Err(e) => eprintln!("SKIPPED synthetic graph: {e}"),
        }
    }
    let beauty = std::env::var_os("GRAFT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
        .join("amazon/beauty");
    match load(Format::AmazonP5, &beauty, &LoadOptions::default()) {
        Ok(ds) => {
            let loo = LeaveOneOut::new(&ds);
            match BipartiteGraph::from_edges(ds.users.len(), ds.items.len(), loo.train_edges()) {
                Ok(g) => out.push(("beauty".into(), g)),
                Err(e) => eprintln!("SKIPPED beauty: {e}"),
            }
        }
        Err(e) => eprintln!("SKIPPED beauty (set GRAFT_SHARED_DATA): {e}"),
    }
    out
}

fn backends(adj: &graft_propagate::sprs::CsMat<f32>, t: usize) -> Vec<Box<dyn Propagator>> {
    let mut v: Vec<Box<dyn Propagator>> = Vec::new();
    for b in [16, 64, 128] {
        if let Ok(k) = RustCsr::new(adj)
            .and_then(|k| k.with_threads(t))
            .and_then(|k| k.with_block_width(BlockWidth::Columns(b)))
        {
            v.push(Box::new(k));
        }
    }
    #[cfg(feature = "tch")]
    for layout in [
        graft_propagate::SparseLayout::Coo,
        graft_propagate::SparseLayout::Csr,
    ] {
        if let Ok(k) = graft_propagate::TchPropagator::new(adj, layout, tch::Device::Cpu) {
            v.push(Box::new(k));
        }
    }
    v
}

fn bench_lightgcn(c: &mut Criterion) {
    let t = threads();
    #[cfg(feature = "tch")]
    tch::set_num_threads(t as i32);
    let mut group = c.benchmark_group(format!("lightgcn_L{LAYERS}_t{t}"));
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    for (name, g) in graphs() {
        let Ok(adj) = g.normalized() else { continue };
        for d in [64, 512] {
            let e0 = normal_embeddings(g.n_nodes(), d, 0.1, 2024);
            group.throughput(Throughput::Bytes(graft_propagate::bench::gathered_bytes(
                adj.nnz(),
                d,
                LAYERS,
            ) as u64));
            for k in backends(&adj, t) {
                group.bench_with_input(
                    BenchmarkId::new(k.name(), format!("{name}/d{d}")),
                    &e0,
                    |b, e0| b.iter(|| k.propagate(e0.view(), LAYERS, &LayerCombine::Mean)),
                );
            }
        }
    }
    group.finish();
}

/// GAT expert network: forward (eval) and forward + backward + AdamW on an
/// ELCoRec-sized batch (1 user + 16 items + 8 feature nodes per graph).
#[cfg(feature = "tch")]
fn bench_gat(c: &mut Criterion) {
    use graft_graph::SampleGraphOptions;
    use graft_propagate::gat::{bench, GatBatch, HeteroGat, HeteroGatConfig};
    use tch::nn::OptimizerConfig;
    use tch::{nn, Device, Kind};

    let t = threads();
    tch::set_num_threads(t as i32);
    tch::manual_seed(0);
    let mut group = c.benchmark_group(format!("gat_t{t}"));
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    for n_graphs in [256, 1024] {
        let Ok(batch) = bench::synthetic_batch(n_graphs, 16, 8, 2, &SampleGraphOptions::default())
        else {
            continue;
        };
        let cfg = HeteroGatConfig::new([64, 64, 64]);
        let (Ok(x), Ok(gb)) = (
            bench::random_features(&batch, cfg.in_dims, Kind::Float, Device::Cpu, 7),
            GatBatch::new(&batch, Device::Cpu),
        ) else {
            continue;
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let Ok(gat) = HeteroGat::new(&vs.root().sub("gat"), cfg) else {
            continue;
        };
        let Ok(mut opt) = nn::AdamW::default().build(&vs, 1e-3) else {
            continue;
        };
        group.throughput(Throughput::Elements(n_graphs as u64));
        group.bench_function(BenchmarkId::new("forward_eval", n_graphs), |b| {
            b.iter(|| tch::no_grad(|| gat.forward_t(&x, &gb, false)))
        });
        group.bench_function(BenchmarkId::new("train_step", n_graphs), |b| {
            b.iter(|| {
                if let Ok(out) = gat.forward_t(&x, &gb, true) {
                    let loss = out.iter().map(|o| o.square().mean(Kind::Float)).fold(
                        tch::Tensor::zeros([], (Kind::Float, Device::Cpu)),
                        |a, b| a + b,
                    );
                    opt.backward_step(&loss);
                }
            })
        });
    }
    group.finish();
}

#[cfg(feature = "tch")]
criterion_group!(benches, bench_lightgcn, bench_gat);
#[cfg(not(feature = "tch"))]
criterion_group!(benches, bench_lightgcn);
criterion_main!(benches);
