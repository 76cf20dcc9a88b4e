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

criterion_group!(benches, bench_lightgcn);
criterion_main!(benches);
