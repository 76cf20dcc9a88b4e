//! LightGCN random-feature propagation: the [`Propagator`] trait and its
//! pure-Rust implementations.
//!
//! Every backend computes the same function of the normalised adjacency
//! `Â` (`n x n`, e.g. [`BipartiteGraph::normalized`]) and the random
//! features `E0` (`n x d`):
//!
//! ```text
//! E(l+1) = Â E(l),   l = 0..L-1
//! out    = sum_l w_l E(l)        (w from LayerCombine; Mean: w_l = 1/(L+1))
//! ```
//!
//! [`BipartiteGraph::normalized`]: graft_graph::BipartiteGraph::normalized

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use sprs::CsMat;

use crate::config::LayerCombine;
use crate::error::{PropagateError, Result};

/// A LightGCN propagation kernel bound to one adjacency matrix.
///
/// Implementations: [`RustCsr`], [`DenseReference`] and, with the `tch`
/// feature, [`TchPropagator`](crate::TchPropagator). All of them pass the
/// same test battery (`tests/battery.rs`) against [`DenseReference`].
pub trait Propagator: Send + std::fmt::Debug {
    /// Short name of the backend for reports, e.g. `"rust-csr(b=64,t=2)"`.
    fn name(&self) -> String;

    /// Number of graph nodes `n` (rows of `Â` and of `E0`).
    fn n_nodes(&self) -> usize;

    /// Propagates `e0` over `layers` layers and combines the layer outputs.
    ///
    /// # Shapes
    ///
    /// `e0`: `(n, d)`; result `(n, d)`. `d = 0` gives an empty result.
    ///
    /// # Errors
    ///
    /// [`PropagateError::DimMismatch`] if `e0` does not have `n` rows,
    /// [`PropagateError::NonFinite`] if it holds NaN or infinity,
    /// [`PropagateError::Config`] if `combine` does not fit `layers`.
    fn propagate(
        &self,
        e0: ArrayView2<'_, f32>,
        layers: usize,
        combine: &LayerCombine,
    ) -> Result<Array2<f32>>;

    /// [`propagate`](Self::propagate) into a caller-owned `(n, d)` buffer,
    /// which repeated calls can reuse (no fresh allocation). The default
    /// implementation computes into a new matrix and copies.
    ///
    /// # Errors
    ///
    /// As [`propagate`](Self::propagate), and
    /// [`PropagateError::DimMismatch`] if `out` is not `(n, d)`. After an
    /// error the contents of `out` are unspecified.
    fn propagate_into(
        &self,
        e0: ArrayView2<'_, f32>,
        layers: usize,
        combine: &LayerCombine,
        out: &mut Array2<f32>,
    ) -> Result<()> {
        check_output(e0, out)?;
        out.assign(&self.propagate(e0, layers, combine)?);
        Ok(())
    }
}

/// A rayon pool of exactly `threads` threads.
///
/// # Errors
///
/// [`PropagateError::Config`] for `threads == 0` or if the pool cannot be
/// created.
pub(crate) fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    if threads == 0 {
        return Err(PropagateError::Config {
            field: "threads",
            reason: "must be at least 1".into(),
        });
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| PropagateError::Config {
            field: "threads",
            reason: e.to_string(),
        })
}

/// Checks that `out` has the shape of `e0`.
fn check_output(e0: ArrayView2<'_, f32>, out: &Array2<f32>) -> Result<()> {
    for (what, expected, got) in [
        ("output rows vs. E0 rows", e0.nrows(), out.nrows()),
        ("output columns vs. E0 columns", e0.ncols(), out.ncols()),
    ] {
        if expected != got {
            return Err(PropagateError::DimMismatch {
                what,
                expected,
                got,
            });
        }
    }
    Ok(())
}

/// Checks that `e0` has `n` rows and only finite values.
///
/// # Errors
///
/// [`PropagateError::DimMismatch`] or [`PropagateError::NonFinite`].
pub fn check_embeddings(n: usize, e0: ArrayView2<'_, f32>) -> Result<()> {
    if e0.nrows() != n {
        return Err(PropagateError::DimMismatch {
            what: "E0 rows vs. adjacency nodes",
            expected: n,
            got: e0.nrows(),
        });
    }
    // Fast path: one parallel pass over contiguous data; the position of a
    // bad value is only looked up when there is one.
    let all_finite = match e0.as_slice() {
        Some(flat) => flat
            .par_chunks(1 << 16)
            .all(|c| c.iter().all(|x| x.is_finite())),
        None => e0.iter().all(|x| x.is_finite()),
    };
    if all_finite {
        return Ok(());
    }
    if let Some(((row, col), &value)) = e0.indexed_iter().find(|(_, x)| !x.is_finite()) {
        return Err(PropagateError::NonFinite {
            what: "E0",
            row,
            col,
            value,
        });
    }
    Ok(())
}

/// Checks that `adj` is square with finite values; returns `n`.
///
/// # Errors
///
/// [`PropagateError::NotSquare`] or [`PropagateError::NonFinite`].
pub fn check_adjacency(adj: &CsMat<f32>) -> Result<usize> {
    let (rows, cols) = adj.shape();
    if rows != cols {
        return Err(PropagateError::NotSquare { rows, cols });
    }
    // sprs' iterator yields (row, col) for CSR and CSC storage alike.
    for (&value, (row, col)) in adj.iter() {
        if !value.is_finite() {
            return Err(PropagateError::NonFinite {
                what: "adjacency",
                row,
                col,
                value,
            });
        }
    }
    Ok(rows)
}

/// Dense `f64` propagation: slow and obviously correct, the oracle of the
/// test battery. Refuses graphs above 20,000 nodes.
///
/// ```
/// use graft_propagate::{DenseReference, LayerCombine, Propagator};
/// use graft_propagate::ndarray::array;
/// use graft_propagate::sprs::CsMat;
///
/// // Two nodes joined by an edge of weight 1: propagation swaps the rows.
/// let adj = CsMat::new((2, 2), vec![0, 1, 2], vec![1, 0], vec![1.0f32, 1.0]);
/// let e0 = array![[1.0f32, 0.0], [0.0, 2.0]];
/// let out = DenseReference::new(&adj)?.propagate(e0.view(), 1, &LayerCombine::Last)?;
/// assert_eq!(out, array![[0.0, 2.0], [1.0, 0.0]]);
/// # Ok::<(), graft_propagate::PropagateError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DenseReference {
    adj: Array2<f64>,
}

impl DenseReference {
    /// Largest supported number of nodes.
    pub const MAX_NODES: usize = 20_000;

    /// Densifies `adj`.
    ///
    /// # Errors
    ///
    /// As [`check_adjacency`], and [`PropagateError::Unsupported`] above
    /// [`MAX_NODES`](Self::MAX_NODES).
    pub fn new(adj: &CsMat<f32>) -> Result<Self> {
        let n = check_adjacency(adj)?;
        if n > Self::MAX_NODES {
            return Err(PropagateError::Unsupported {
                reason: format!(
                    "dense reference limited to {} nodes, got {n}",
                    Self::MAX_NODES
                ),
            });
        }
        let mut dense = Array2::<f64>::zeros((n, n));
        for (&v, (r, c)) in adj.iter() {
            dense[(r, c)] += f64::from(v);
        }
        Ok(Self { adj: dense })
    }
}

impl Propagator for DenseReference {
    fn name(&self) -> String {
        "dense-f64".into()
    }

    fn n_nodes(&self) -> usize {
        self.adj.nrows()
    }

    fn propagate(
        &self,
        e0: ArrayView2<'_, f32>,
        layers: usize,
        combine: &LayerCombine,
    ) -> Result<Array2<f32>> {
        let w = combine.weights(layers)?;
        check_embeddings(self.n_nodes(), e0)?;
        let mut cur = e0.mapv(f64::from);
        let mut acc = &cur * f64::from(w[0]);
        for &wl in &w[1..] {
            cur = self.adj.dot(&cur);
            acc.scaled_add(f64::from(wl), &cur);
        }
        Ok(acc.mapv(|x| x as f32))
    }
}

/// Column-block width of [`RustCsr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockWidth {
    /// The width measured fastest on the development machine
    /// ([`RustCsr::DEFAULT_BLOCK`] columns).
    #[default]
    Auto,
    /// Blocks of this many columns; one of 16, 32, 64, 128.
    Columns(usize),
}

/// Pure-Rust CSR propagation: `f32`, rayon over rows, blocked over the
/// embedding dimension.
///
/// How it is fast:
///
/// * **Column blocks.** `E0` is processed in blocks of `B` columns, each
///   packed into a contiguous, cache-line-aligned `n x B` buffer; all `L`
///   layers run on that buffer before the next block starts. A gathered
///   row is `B` contiguous floats (whole cache lines) and the working set
///   is `n B` floats instead of `n d`.
/// * **Horner evaluation.** `sum_l w_l Â^l E0` is computed as
///   `w_0 E0 + Â(w_1 E0 + Â(... + Â(w_L E0)))`: each layer reads `E0`,
///   gathers the previous result and writes the new one, so no separate
///   accumulator is read and written per layer.
/// * **Row panels** (optional, [`with_row_panels`](Self::with_row_panels)).
///   Rows can be processed in panels, one after another (all threads on
///   one panel). With panels at the user/item boundary, user rows gather
///   only item rows and item rows only user rows, so each phase's gathered
///   working set is one side of the graph. On the Beauty graph this was
///   5-10% *slower* on the development machine (docs/benchmarks.md), so it
///   is off by default.
/// * **SIMD.** Each 16-float line of an output row is summed over the
///   neighbours in registers; the row kernel is also compiled for AVX2 +
///   FMA and chosen at run time when the CPU has them.
/// * **No fresh memory.** The packed buffers are kept between calls, the
///   finiteness check of `E0` rides on the packing pass, and
///   [`propagate_into`](Propagator::propagate_into) reuses the caller's
///   output (a fresh 70 MB result costs 10-15 ms of page faults here).
///
/// Each output row is summed in CSR order, so on one machine the result
/// does not depend on the thread count, the block width or the panels
/// (the AVX2 + FMA and portable paths differ by rounding).
///
/// ```
/// use graft_graph::BipartiteGraph;
/// use graft_propagate::{DenseReference, LayerCombine, Propagator, RustCsr};
///
/// let g = BipartiteGraph::from_edges(3, 2, [(0, 0), (1, 0), (1, 1), (2, 1)])?;
/// let e0 = graft_propagate::normal_embeddings(g.n_nodes(), 20, 1.0, 1);
/// let fast = RustCsr::for_graph(&g)?.with_threads(2)?.propagate(e0.view(), 3, &LayerCombine::Mean)?;
/// let slow = DenseReference::new(&g.normalized()?)?.propagate(e0.view(), 3, &LayerCombine::Mean)?;
/// assert!(fast.iter().zip(&slow).all(|(a, b)| (a - b).abs() < 1e-6));
/// # Ok::<(), graft_propagate::PropagateError>(())
/// ```
pub struct RustCsr {
    n: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
    block: BlockWidth,
    panels: Vec<usize>,
    pool: Option<Arc<rayon::ThreadPool>>,
    /// Packed buffers, kept between calls: fresh multi-megabyte
    /// allocations cost a page fault per 4 KiB on first touch, which on
    /// the development VM took as long as the propagation itself.
    scratch: Arc<Mutex<Vec<Line>>>,
}

impl Clone for RustCsr {
    /// A copy with its own (empty) scratch buffers, so clones never wait
    /// for each other.
    fn clone(&self) -> Self {
        Self {
            n: self.n,
            indptr: self.indptr.clone(),
            indices: self.indices.clone(),
            values: self.values.clone(),
            block: self.block,
            panels: self.panels.clone(),
            pool: self.pool.clone(),
            scratch: Arc::default(),
        }
    }
}

impl std::fmt::Debug for RustCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustCsr")
            .field("n", &self.n)
            .field("nnz", &self.values.len())
            .field("block", &self.block)
            .field("panels", &self.panels)
            .field(
                "threads",
                &self.pool.as_ref().map(|p| p.current_num_threads()),
            )
            .finish()
    }
}

/// Rows per rayon task.
const ROWS_PER_TASK: usize = 256;

/// Block widths with a compiled kernel.
const SUPPORTED_WIDTHS: [usize; 4] = [16, 32, 64, 128];

/// Lanes of one accumulator chunk: 16 floats, one cache line.
const LANES: usize = 16;

/// One cache line of a packed row. A packed block of `B = 16 K` columns
/// stores row `r` as lines `r K .. r K + K`.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; LANES]);

impl Line {
    const ZERO: Self = Line([0.0; LANES]);
}

impl RustCsr {
    /// Default column-block width.
    pub const DEFAULT_BLOCK: usize = 128;

    /// Copies `adj` (CSR or CSC; converted to CSR with `u32` indices).
    ///
    /// # Errors
    ///
    /// As [`check_adjacency`]; [`PropagateError::Unsupported`] for more
    /// than `u32::MAX` nodes.
    pub fn new(adj: &CsMat<f32>) -> Result<Self> {
        let n = check_adjacency(adj)?;
        if u32::try_from(n).is_err() {
            return Err(PropagateError::Unsupported {
                reason: format!("{n} nodes exceed the u32 column indices"),
            });
        }
        let csr;
        let adj = if adj.is_csr() {
            adj
        } else {
            csr = adj.to_csr();
            &csr
        };
        let indptr = adj.proper_indptr().into_owned();
        // Indices fit in u32 because they are < n <= u32::MAX.
        let indices = adj.indices().iter().map(|&c| c as u32).collect();
        Ok(Self {
            n,
            indptr,
            indices,
            values: adj.data().to_vec(),
            block: BlockWidth::Auto,
            panels: vec![0, n],
            pool: None,
            scratch: Arc::default(),
        })
    }

    /// The normalised adjacency of `g` ([`BipartiteGraph::normalized`]).
    /// Add `.with_row_panels(vec![0, g.n_users(), g.n_nodes()])` to process
    /// user rows and item rows in separate phases.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new) and [`BipartiteGraph::normalized`].
    ///
    /// [`BipartiteGraph::normalized`]: graft_graph::BipartiteGraph::normalized
    pub fn for_graph(g: &graft_graph::BipartiteGraph) -> Result<Self> {
        Self::new(&g.normalized()?)
    }

    /// Processes the rows in panels `panels[k]..panels[k + 1]`, one panel
    /// after the other.
    ///
    /// # Errors
    ///
    /// [`PropagateError::Config`] unless `panels` starts at 0, ends at `n`
    /// and does not decrease.
    pub fn with_row_panels(mut self, panels: Vec<usize>) -> Result<Self> {
        let ok = panels.first() == Some(&0)
            && panels.last() == Some(&self.n)
            && panels.windows(2).all(|w| w[0] <= w[1]);
        if !ok {
            return Err(PropagateError::Config {
                field: "row panels",
                reason: format!("{panels:?} must rise from 0 to n = {}", self.n),
            });
        }
        self.panels = panels;
        Ok(self)
    }

    /// Runs on a dedicated pool of `threads` threads instead of rayon's
    /// global pool.
    ///
    /// # Errors
    ///
    /// [`PropagateError::Config`] for `threads == 0` or if the pool cannot
    /// be created.
    pub fn with_threads(mut self, threads: usize) -> Result<Self> {
        self.pool = Some(Arc::new(thread_pool(threads)?));
        Ok(self)
    }

    /// Sets the column-block width.
    ///
    /// # Errors
    ///
    /// [`PropagateError::Config`] unless the width is one of 16, 32, 64,
    /// 128.
    pub fn with_block_width(mut self, block: BlockWidth) -> Result<Self> {
        if let BlockWidth::Columns(w) = block {
            if !SUPPORTED_WIDTHS.contains(&w) {
                return Err(PropagateError::Config {
                    field: "block width",
                    reason: format!("{w} is not one of {SUPPORTED_WIDTHS:?}"),
                });
            }
        }
        self.block = block;
        Ok(self)
    }

    /// Number of stored entries of `Â`.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    fn block_width(&self) -> usize {
        match self.block {
            BlockWidth::Auto => Self::DEFAULT_BLOCK,
            BlockWidth::Columns(w) => w,
        }
    }

    fn threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
    }

    /// Writes `sum_l w_l Â^l e0` into `out` (`n x d`, any contents).
    ///
    /// Returns `false`, with `out` unspecified, as soon as a non-finite
    /// value of `e0` is packed (the check rides on the packing pass).
    fn run(&self, e0: ArrayView2<'_, f32>, w: &[f32], out: &mut Array2<f32>) -> bool {
        let d = e0.ncols();
        if d == 0 {
            return true;
        }
        let bw = self.block_width();
        let rest = d % bw;
        let padded_rest = SUPPORTED_WIDTHS
            .iter()
            .copied()
            .find(|&s| s >= rest)
            .unwrap_or(bw);
        let widest = if d >= bw { bw } else { padded_rest };
        // A poisoned lock only means another call panicked mid-way; the
        // buffers are overwritten before use, so they are still fine.
        let mut guard = self
            .scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let need = 3 * self.n * (widest / LANES);
        if guard.len() < need {
            guard.resize(need, Line::ZERO);
        }
        let starts: Vec<usize> = (0..d / bw).map(|b| b * bw).collect();
        self.blocks(bw / LANES, e0, &starts, bw, w, &mut guard, out)
            && (rest == 0
                || self.blocks(
                    padded_rest / LANES,
                    e0,
                    &[d - rest],
                    rest,
                    w,
                    &mut guard,
                    out,
                ))
    }

    /// Columns `c0..c0 + width` of the result for every `c0` in `starts`,
    /// computed in packed rows of `k` lines (`16 k >= width` columns);
    /// `false` if a packed value is not finite.
    #[allow(clippy::too_many_arguments)]
    fn blocks(
        &self,
        k: usize,
        e0: ArrayView2<'_, f32>,
        starts: &[usize],
        width: usize,
        w: &[f32],
        scratch: &mut [Line],
        out: &mut Array2<f32>,
    ) -> bool {
        let n = self.n;
        if starts.is_empty() || scratch.len() < 3 * n * k {
            // Nothing to do (no full block), or (never) too little scratch.
            return true;
        }
        let bad = AtomicBool::new(false);
        let (x0, rest) = scratch.split_at_mut(n * k);
        let (mut cur, rest) = rest.split_at_mut(n * k);
        let mut next = &mut rest[..n * k];
        let layers = w.len() - 1;
        let d = out.ncols();
        let chunk = ROWS_PER_TASK * k;
        for &c0 in starts {
            let src = e0.slice(ndarray::s![.., c0..c0 + width]);
            // Pack E0's columns (zero padding only in a partial block).
            let padded = width < k * LANES;
            x0.par_chunks_mut(chunk).enumerate().for_each(|(t, xs)| {
                for (i, xr) in xs.chunks_exact_mut(k).enumerate() {
                    let row = src.row(t * ROWS_PER_TASK + i);
                    if padded {
                        xr.fill(Line::ZERO);
                    }
                    match row.as_slice() {
                        Some(vals) => {
                            for (dst, part) in xr.iter_mut().zip(vals.chunks(LANES)) {
                                dst.0[..part.len()].copy_from_slice(part);
                            }
                        }
                        None => {
                            for (j, &v) in row.iter().enumerate() {
                                xr[j / LANES].0[j % LANES] = v;
                            }
                        }
                    }
                    if !xr.iter().all(|l| l.0.iter().all(|v| v.is_finite())) {
                        bad.store(true, Ordering::Relaxed);
                    }
                }
            });
            if bad.load(Ordering::Relaxed) {
                return false;
            }
            // Horner: S = w_L E0, then S = w_l E0 + Â S for l = L-1 .. 0.
            // The first step reads E0 itself with w_L folded into Â.
            if layers == 0 {
                let w0 = w[0];
                cur.par_iter_mut().zip(x0.par_iter()).for_each(|(c, x)| {
                    c.0 = x.0.map(|v| w0 * v);
                });
            } else {
                self.layer(k, x0, w[layers], x0, w[layers - 1], cur);
                for l in (0..layers - 1).rev() {
                    self.layer(k, cur, 1.0, x0, w[l], next);
                    std::mem::swap(&mut cur, &mut next);
                }
            }
            if let Some(flat) = out.as_slice_mut() {
                flat.par_chunks_mut(d * ROWS_PER_TASK)
                    .zip(cur.par_chunks(chunk))
                    .for_each(|(o, rows)| {
                        for (orow, r) in o.chunks_exact_mut(d).zip(rows.chunks_exact(k)) {
                            for (dst, line) in orow[c0..c0 + width].chunks_mut(LANES).zip(r) {
                                dst.copy_from_slice(&line.0[..dst.len()]);
                            }
                        }
                    });
            }
        }
        true
    }

    /// `y = wl * x0 + scale * Â x` on packed rows of `k` lines, panel by
    /// panel, rows of a panel in parallel.
    #[allow(clippy::too_many_arguments)]
    fn layer(&self, k: usize, x: &[Line], scale: f32, x0: &[Line], wl: f32, y: &mut [Line]) {
        let a = CsrView {
            indptr: &self.indptr,
            indices: &self.indices,
            values: &self.values,
        };
        let fma = simd::has_avx2_fma();
        for p in self.panels.windows(2) {
            let (lo_row, hi_row) = (p[0], p[1]);
            y[lo_row * k..hi_row * k]
                .par_chunks_mut(ROWS_PER_TASK * k)
                .zip(x0[lo_row * k..hi_row * k].par_chunks(ROWS_PER_TASK * k))
                .enumerate()
                .for_each(|(t, (ys, x0s))| {
                    let r0 = lo_row + t * ROWS_PER_TASK;
                    if fma {
                        simd::rows_fma(&a, k, x, scale, r0, ys, x0s, wl);
                    } else {
                        rows::<false>(&a, k, x, scale, r0, ys, x0s, wl);
                    }
                });
        }
    }
}

/// Borrowed CSR arrays.
struct CsrView<'a> {
    indptr: &'a [usize],
    indices: &'a [u32],
    values: &'a [f32],
}

/// Rows `r0..` of `y = wl * x0 + scale * Â x` (packed rows of `k` lines; `ys` and
/// `x0s` hold the rows' lines). Per row, each line is summed over the
/// neighbours in registers (one cache line of every neighbour per pass),
/// in CSR order; `FUSED` uses fused multiply-adds.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rows<const FUSED: bool>(
    a: &CsrView<'_>,
    k: usize,
    x: &[Line],
    scale: f32,
    r0: usize,
    ys: &mut [Line],
    x0s: &[Line],
    wl: f32,
) {
    let rows = ys.chunks_exact_mut(k).zip(x0s.chunks_exact(k));
    for (i, (yr, x0r)) in rows.enumerate() {
        let r = r0 + i;
        let (lo, hi) = (a.indptr[r], a.indptr[r + 1]);
        let (cols, vals) = (&a.indices[lo..hi], &a.values[lo..hi]);
        for (ch, (yl, x0l)) in yr.iter_mut().zip(x0r).enumerate() {
            let mut s = [0.0f32; LANES];
            for (&c, &v) in cols.iter().zip(vals) {
                let xl = &x[c as usize * k + ch].0;
                for (sj, &xj) in s.iter_mut().zip(xl) {
                    *sj = if FUSED {
                        v.mul_add(xj, *sj)
                    } else {
                        *sj + v * xj
                    };
                }
            }
            for ((yj, &sj), &ej) in yl.0.iter_mut().zip(&s).zip(&x0l.0) {
                *yj = if FUSED {
                    wl.mul_add(ej, scale * sj)
                } else {
                    scale * sj + wl * ej
                };
            }
        }
    }
}

/// Runtime dispatch to an AVX2 + FMA build of the row kernel.
///
/// The portable build targets baseline x86-64 (SSE2). On CPUs with AVX2
/// and FMA (checked with `is_x86_feature_detected!`, which caches the
/// answer) the same kernel is compiled with those features enabled, about
/// 1.3x faster on the development machine. The two paths differ only by
/// rounding (fused multiply-add); on one machine results do not depend on
/// the thread count, block width or panels.
mod simd {
    use super::{rows, CsrView, Line};

    /// Whether the AVX2 + FMA kernel can run here.
    pub(super) fn has_avx2_fma() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// [`rows`] with fused multiply-adds, compiled for AVX2 + FMA; falls
    /// back to the portable kernel when the CPU lacks them.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rows_fma(
        a: &CsrView<'_>,
        k: usize,
        x: &[Line],
        scale: f32,
        r0: usize,
        ys: &mut [Line],
        x0s: &[Line],
        wl: f32,
    ) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            #[allow(unsafe_code)]
            // SAFETY: the only requirement of a `#[target_feature]` function
            // is that the CPU supports the features; checked just above.
            unsafe {
                rows_x86_avx2_fma(a, k, x, scale, r0, ys, x0s, wl)
            };
            return;
        }
        rows::<false>(a, k, x, scale, r0, ys, x0s, wl);
    }

    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn rows_x86_avx2_fma(
        a: &CsrView<'_>,
        k: usize,
        x: &[Line],
        scale: f32,
        r0: usize,
        ys: &mut [Line],
        x0s: &[Line],
        wl: f32,
    ) {
        rows::<true>(a, k, x, scale, r0, ys, x0s, wl);
    }
}

impl Propagator for RustCsr {
    fn name(&self) -> String {
        format!(
            "rust-csr(b={},t={}{})",
            self.block_width(),
            self.threads(),
            if self.panels.len() > 2 { ",panels" } else { "" }
        )
    }

    fn n_nodes(&self) -> usize {
        self.n
    }

    fn propagate(
        &self,
        e0: ArrayView2<'_, f32>,
        layers: usize,
        combine: &LayerCombine,
    ) -> Result<Array2<f32>> {
        let mut out = Array2::zeros((self.n, e0.ncols()));
        self.propagate_into(e0, layers, combine, &mut out)?;
        Ok(out)
    }

    fn propagate_into(
        &self,
        e0: ArrayView2<'_, f32>,
        layers: usize,
        combine: &LayerCombine,
        out: &mut Array2<f32>,
    ) -> Result<()> {
        let w = combine.weights(layers)?;
        if e0.nrows() != self.n {
            return check_embeddings(self.n, e0);
        }
        check_output(e0, out)?;
        if !out.is_standard_layout() {
            *out = Array2::zeros(out.dim());
        }
        let finite = match &self.pool {
            Some(pool) => pool.install(|| self.run(e0, &w, out)),
            None => self.run(e0, &w, out),
        };
        if finite {
            Ok(())
        } else {
            // Locate the first bad value for the error.
            check_embeddings(self.n, e0)
        }
    }
}
