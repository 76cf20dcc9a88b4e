//! Exact cosine top-10 over a 100k x 384 catalogue (MiniLM-sized rows):
//! 64 queries one at a time vs `top_k_batch`, threads set explicitly
//! (`GRAFT_BENCH_THREADS`, default 2). Under `cargo test` (no `--bench`)
//! the catalogue shrinks to 2k rows so the smoke run stays fast.
//!
//! `cargo bench -p graft-retrieval --bench topk`
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use graft_retrieval::CosineIndex;
use ndarray::Array2;

/// Deterministic values in [-1, 1) from a xorshift64 stream.
fn matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut s = seed | 1;
    Array2::from_shape_simple_fn((rows, cols), || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    })
}

fn bench_topk(c: &mut Criterion) {
    let threads = std::env::var("GRAFT_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let n = if std::env::args().any(|a| a == "--bench") {
        100_000
    } else {
        2_000
    };
    let (d, m, k) = (384, 64, 10);
    let index = CosineIndex::new(matrix(n, d, 7).view()).unwrap();
    let queries = matrix(m, d, 11);
    let mut g = c.benchmark_group("cosine_top10");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .throughput(Throughput::Elements((n * m) as u64));
    g.bench_function(BenchmarkId::new("single-1thread", n), |b| {
        b.iter(|| {
            queries
                .rows()
                .into_iter()
                .map(|q| index.top_k(q, k).unwrap())
                .collect::<Vec<_>>()
        })
    });
    g.bench_function(
        BenchmarkId::new(format!("batch-{threads}threads"), n),
        |b| b.iter(|| pool.install(|| index.top_k_batch(queries.view(), k).unwrap())),
    );
    g.finish();
}

criterion_group!(benches, bench_topk);
criterion_main!(benches);
