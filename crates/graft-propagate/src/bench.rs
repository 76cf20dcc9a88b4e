//! Benchmark workloads and measurements shared by the criterion benches
//! and the comparison command (`examples/compare.rs`).

use std::time::{Duration, Instant};

use graft_graph::BipartiteGraph;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;

use crate::error::{PropagateError, Result};

/// A random user-item graph with power-law item popularity, like real
/// interaction data: every user gets `edges_per_user` draws of an item
/// whose rank `k` (0-based) has probability proportional to
/// `(k + 1)^-exponent` (duplicates collapse, so degrees vary slightly).
///
/// # Errors
///
/// [`PropagateError::Config`] for zero users or items or a non-finite
/// exponent; graph errors from [`BipartiteGraph::from_edges`].
///
/// ```
/// let g = graft_propagate::bench::power_law_graph(1000, 500, 8, 1.0, 7)?;
/// let stats = g.item_degree_stats();
/// assert!(stats.max > 10 * stats.median as usize);
/// # Ok::<(), graft_propagate::PropagateError>(())
/// ```
pub fn power_law_graph(
    n_users: usize,
    n_items: usize,
    edges_per_user: usize,
    exponent: f64,
    seed: u64,
) -> Result<BipartiteGraph> {
    if n_users == 0 || n_items == 0 || !exponent.is_finite() {
        return Err(PropagateError::Config {
            field: "power_law_graph",
            reason: format!(
                "need users, items > 0 and a finite exponent (got {n_users}, {n_items}, {exponent})"
            ),
        });
    }
    // Inverse-CDF table over item ranks.
    let mut cdf: Vec<f64> = Vec::with_capacity(n_items);
    let mut total = 0.0;
    for k in 0..n_items {
        total += ((k + 1) as f64).powf(-exponent);
        cdf.push(total);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut edges = Vec::with_capacity(n_users * edges_per_user);
    for u in 0..n_users {
        for _ in 0..edges_per_user {
            let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
            let item = cdf.partition_point(|&c| c < x).min(n_items - 1);
            edges.push((u as u32, item as u32));
        }
    }
    Ok(BipartiteGraph::from_edges(n_users, n_items, edges)?)
}

/// Robust timing of `f`: one warm-up call, then `repeats` timed calls;
/// returns the sorted durations.
///
/// # Errors
///
/// The first error `f` returns.
pub fn time_runs<T>(repeats: usize, mut f: impl FnMut() -> Result<T>) -> Result<Vec<Duration>> {
    f()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t0 = Instant::now();
        let out = f()?;
        times.push(t0.elapsed());
        drop(out);
    }
    times.sort();
    Ok(times)
}

/// Median of sorted durations, in seconds (`NaN` for none).
pub fn median_s(sorted: &[Duration]) -> f64 {
    sorted
        .get(sorted.len() / 2)
        .map_or(f64::NAN, Duration::as_secs_f64)
}

/// Memory copy bandwidth in bytes/s with `threads` threads: the best of
/// `repeats` parallel copies of a `bytes`-sized buffer, counting the bytes
/// read plus the bytes written.
///
/// # Errors
///
/// [`PropagateError::Config`] for zero threads or a pool that cannot be
/// created.
pub fn copy_bandwidth(bytes: usize, threads: usize, repeats: usize) -> Result<f64> {
    let pool = crate::lightgcn::thread_pool(threads)?;
    let n = bytes / 4;
    let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut dst = vec![0.0f32; n];
    let chunk = n.div_ceil(threads * 8).max(1);
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let t0 = Instant::now();
        pool.install(|| {
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(d, s)| d.copy_from_slice(s));
        });
        best = best.min(t0.elapsed().as_secs_f64());
    }
    std::hint::black_box(&dst);
    Ok(2.0 * (n * 4) as f64 / best)
}

/// Bytes of embedding rows that `L` layers of `Â x` must gather: one
/// `d`-float row per stored entry per layer (`L * nnz * d * 4`). Dividing
/// by a propagation time gives its effective gather bandwidth.
pub fn gathered_bytes(nnz: usize, d: usize, layers: usize) -> f64 {
    layers as f64 * nnz as f64 * d as f64 * 4.0
}
