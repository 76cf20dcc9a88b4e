//! Building the normalised user-item graph: synthetic planted-cluster data
//! of growing size, plus Amazon Beauty when `../shared/data` is present.
//! Single-threaded code; run with `cargo bench --bench graph`.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use graft::data::synthetic::{planted_clusters, SyntheticConfig};
use graft::data::{load, Dataset, Format, LeaveOneOut, LoadOptions};
use graft::graph::BipartiteGraph;

fn datasets() -> Vec<(String, Dataset)> {
    let mut out = Vec::new();
    for users in [1_000usize, 10_000] {
        let cfg = SyntheticConfig {
            users,
            items: users / 2,
            clusters: 8,
            interactions_per_user: 20,
            ..Default::default()
        };
        if let Ok(s) = planted_clusters(&cfg) {
            out.push((format!("synthetic-{users}"), s.dataset));
        }
    }
    let beauty = std::env::var_os("GRAFT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
        .join("amazon/beauty");
    match load(Format::AmazonP5, &beauty, &LoadOptions::default()) {
        Ok(ds) => out.push(("beauty".into(), ds)),
        Err(e) => eprintln!("SKIPPED beauty: {e}"),
    }
    out
}

fn bench_graph(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalized_adjacency");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for (name, ds) in datasets() {
        let loo = LeaveOneOut::new(&ds);
        let edges: Vec<(u32, u32)> = loo.train_edges().collect();
        group.throughput(Throughput::Elements(edges.len() as u64));
        group.bench_with_input(BenchmarkId::new("sprs-csr", &name), &edges, |b, edges| {
            b.iter(|| {
                BipartiteGraph::from_edges(ds.n_users(), ds.n_items(), edges.iter().copied())
                    .and_then(|g| g.normalized())
                    .map(|a| a.nnz())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_graph);
criterion_main!(benches);
