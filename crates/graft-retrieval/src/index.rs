//! Exact cosine top-k search over an `(n, d)` f32 matrix.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::Path;

use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;
use safetensors::Dtype;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RetrievalError};
use crate::store::{self, Owned};

const FORMAT: &str = "graft-retrieval/cosine-index";
const FORMAT_VERSION: &str = "1";
const TENSOR: &str = "embeddings";
/// Queries scored together per pass over the matrix in [`CosineIndex::top_k_batch`].
const QUERY_BLOCK: usize = 8;

/// One search result: a row of the index and its cosine with the query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Row of the indexed matrix (0-based).
    pub index: usize,
    /// Cosine similarity with the query, in `[-1, 1]` up to rounding.
    pub score: f32,
}

/// A hit ordered best first: higher score, then lower index (`a < b` means
/// `a` ranks above `b`). Scores are finite, so `==` and `total_cmp` agree.
#[derive(Clone, Copy, PartialEq)]
struct Ranked(Hit);
impl Eq for Ranked {}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .score
            .total_cmp(&self.0.score)
            .then(self.0.index.cmp(&other.0.index))
    }
}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Bounded collector of the `k` best hits: a max-heap whose top is the worst
/// hit kept, so a candidate costs O(1) when rejected and O(log k) when kept.
struct TopK {
    k: usize,
    heap: BinaryHeap<Ranked>,
}

impl TopK {
    fn new(k: usize, n: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k.min(n)),
        }
    }

    #[inline]
    fn push(&mut self, index: usize, score: f32) {
        let hit = Ranked(Hit { index, score });
        if self.heap.len() < self.k {
            self.heap.push(hit);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if hit < *worst {
                *worst = hit;
            }
        }
    }

    fn into_hits(self) -> Vec<Hit> {
        let mut v = self.heap.into_vec();
        v.sort_unstable();
        v.into_iter().map(|r| r.0).collect()
    }
}

/// Dot product with eight independent accumulators (vectorises; the
/// summation order is fixed, so results are deterministic).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (&x, &y) in ra.iter().zip(rb) {
        s += x * y;
    }
    // `+ 0.0` turns -0.0 into +0.0 so that equal scores compare equal.
    s + 0.0
}

/// Appends `v / ||v||` to `out` (norm in f64, so no overflow or underflow).
fn push_normalized(
    v: impl Iterator<Item = f32> + Clone,
    what: &'static str,
    row: usize,
    out: &mut Vec<f32>,
) -> Result<()> {
    let mut sq = 0.0f64;
    for x in v.clone() {
        if !x.is_finite() {
            return Err(RetrievalError::NonFinite { what, row });
        }
        sq += f64::from(x) * f64::from(x);
    }
    if sq == 0.0 {
        return Err(RetrievalError::ZeroNorm { what, row });
    }
    let inv = 1.0 / sq.sqrt();
    out.extend(v.map(|x| (f64::from(x) * inv) as f32));
    Ok(())
}

/// Exact cosine nearest-neighbour index over the rows of an `(n, d)` f32
/// matrix.
///
/// Rows are L2-normalised once when the index is built; a query is
/// normalised once per search, so a score is one dot product.
///
/// # Ordering
/// Results are sorted by score, descending; equal scores are ordered by
/// lower row index. Scores are computed the same way by every method, so
/// [`top_k`](Self::top_k), [`top_k_batch`](Self::top_k_batch) and
/// [`scores`](Self::scores) agree bit for bit.
///
/// # Complexity
/// Building: O(n·d). A search over `m` rows: O(m·d) for the scores plus
/// O(m log k) for a bounded heap (O(k) extra memory), then O(k log k) to
/// sort the winners; the full matrix is never sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct CosineIndex {
    /// Row-major normalised rows, `len * dim` values.
    data: Vec<f32>,
    dim: usize,
    model: String,
}

impl CosineIndex {
    /// Builds an index over the rows of `embeddings` (`(n, d)`, any layout).
    ///
    /// # Errors
    /// [`RetrievalError::InvalidInput`] if `d == 0`;
    /// [`RetrievalError::NonFinite`] or [`RetrievalError::ZeroNorm`] naming
    /// the first row that cannot be normalised.
    pub fn new(embeddings: ArrayView2<'_, f32>) -> Result<Self> {
        let (n, dim) = embeddings.dim();
        if dim == 0 {
            return Err(RetrievalError::InvalidInput {
                reason: "embeddings have zero columns".to_owned(),
            });
        }
        let mut data = Vec::with_capacity(n * dim);
        for (i, row) in embeddings.rows().into_iter().enumerate() {
            push_normalized(row.iter().copied(), "embeddings", i, &mut data)?;
        }
        Ok(Self {
            data,
            dim,
            model: String::new(),
        })
    }

    /// Records the name of the model that produced the embeddings (saved
    /// with the index; empty by default).
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Number of indexed rows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Whether the index holds no rows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Embedding dimension `d`.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Name of the model that produced the embeddings.
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The normalised rows, row-major (`len() * dim()` values).
    #[must_use]
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Normalised row `i`, or `None` if out of range.
    #[must_use]
    pub fn row(&self, i: usize) -> Option<ArrayView1<'_, f32>> {
        (i < self.len()).then(|| ArrayView1::from(&self.data[i * self.dim..(i + 1) * self.dim]))
    }

    fn normalize_query(&self, query: ArrayView1<'_, f32>, row: usize) -> Result<Vec<f32>> {
        if query.len() != self.dim {
            return Err(RetrievalError::Shape {
                what: "query dimension",
                expected: self.dim,
                got: query.len(),
            });
        }
        let mut q = Vec::with_capacity(self.dim);
        push_normalized(query.iter().copied(), "query", row, &mut q)?;
        Ok(q)
    }

    fn check(&self, what: &'static str, ids: &[usize]) -> Result<Vec<usize>> {
        let len = self.len();
        if let Some(&index) = ids.iter().find(|&&i| i >= len) {
            return Err(RetrievalError::IndexOutOfBounds { what, index, len });
        }
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    fn select(&self, q: &[f32], k: usize, rows: impl Iterator<Item = usize>) -> Vec<Hit> {
        let mut top = TopK::new(k, self.len());
        if k > 0 {
            for i in rows {
                top.push(i, dot(&self.data[i * self.dim..(i + 1) * self.dim], q));
            }
        }
        top.into_hits()
    }

    /// Cosine of `query` with every row, in row order.
    ///
    /// # Errors
    /// [`RetrievalError::Shape`] if `query.len() != dim()`;
    /// [`RetrievalError::ZeroNorm`] or [`RetrievalError::NonFinite`] if the
    /// query cannot be normalised.
    ///
    /// # Complexity
    /// O(n·d).
    pub fn scores(&self, query: ArrayView1<'_, f32>) -> Result<Vec<f32>> {
        let q = self.normalize_query(query, 0)?;
        Ok(self
            .data
            .chunks_exact(self.dim)
            .map(|r| dot(r, &q))
            .collect())
    }

    /// The `k` rows most similar to `query` (all rows if `k >= len()`, none
    /// if `k == 0`), best first.
    ///
    /// # Errors
    /// As [`scores`](Self::scores).
    ///
    /// # Complexity
    /// O(n·d + n log k) time, O(k) extra memory.
    pub fn top_k(&self, query: ArrayView1<'_, f32>, k: usize) -> Result<Vec<Hit>> {
        let q = self.normalize_query(query, 0)?;
        Ok(self.select(&q, k, 0..self.len()))
    }

    /// As [`top_k`](Self::top_k), skipping the rows in `exclude` (e.g. the
    /// query item itself, or items the user has already seen).
    ///
    /// # Errors
    /// As [`top_k`](Self::top_k), and [`RetrievalError::IndexOutOfBounds`]
    /// if an excluded id is `>= len()`.
    ///
    /// # Complexity
    /// O(n·d + n log k + e log e) for `e` exclusions.
    pub fn top_k_excluding(
        &self,
        query: ArrayView1<'_, f32>,
        k: usize,
        exclude: &[usize],
    ) -> Result<Vec<Hit>> {
        let q = self.normalize_query(query, 0)?;
        let ex = self.check("excluded row", exclude)?;
        let rows = (0..self.len()).filter(|i| ex.binary_search(i).is_err());
        Ok(self.select(&q, k, rows))
    }

    /// The `k` rows most similar to indexed row `item`, excluding `item`
    /// itself.
    ///
    /// # Errors
    /// [`RetrievalError::IndexOutOfBounds`] if `item >= len()`.
    ///
    /// # Complexity
    /// As [`top_k`](Self::top_k).
    pub fn neighbours(&self, item: usize, k: usize) -> Result<Vec<Hit>> {
        let len = self.len();
        let q = self.row(item).ok_or(RetrievalError::IndexOutOfBounds {
            what: "item",
            index: item,
            len,
        })?;
        self.top_k_excluding(q, k, &[item])
    }

    /// The `k` rows of `candidates` most similar to `query` (e.g. the items of
    /// one user's history, as in ELCoRec's retrieval-augmented prompt).
    /// A candidate listed twice counts once.
    ///
    /// # Errors
    /// As [`top_k`](Self::top_k), and [`RetrievalError::IndexOutOfBounds`]
    /// if a candidate is `>= len()`.
    ///
    /// # Complexity
    /// O(c·d + c log c) for `c` candidates.
    pub fn top_k_among(
        &self,
        query: ArrayView1<'_, f32>,
        candidates: &[usize],
        k: usize,
    ) -> Result<Vec<Hit>> {
        let q = self.normalize_query(query, 0)?;
        let cands = self.check("candidate", candidates)?;
        Ok(self.select(&q, k, cands.into_iter()))
    }

    /// [`top_k`](Self::top_k) for every row of `queries` (`(m, d)`), in
    /// parallel with rayon; result `i` belongs to query row `i` and equals
    /// `top_k(queries.row(i), k)` exactly.
    ///
    /// Queries are scored in blocks of 8 per pass over the matrix, so each
    /// indexed row is read from memory once per block; blocks run in
    /// parallel.
    ///
    /// # Errors
    /// As [`top_k`](Self::top_k), for the first offending query row
    /// ([`RetrievalError::ZeroNorm`]/[`RetrievalError::NonFinite`] name it).
    ///
    /// # Complexity
    /// O(m·n·d + m·n log k) work, O(m·(d + k)) extra memory.
    pub fn top_k_batch(&self, queries: ArrayView2<'_, f32>, k: usize) -> Result<Vec<Vec<Hit>>> {
        if queries.ncols() != self.dim {
            return Err(RetrievalError::Shape {
                what: "query dimension",
                expected: self.dim,
                got: queries.ncols(),
            });
        }
        let mut qs = Vec::with_capacity(queries.len());
        for (i, q) in queries.rows().into_iter().enumerate() {
            push_normalized(q.iter().copied(), "query", i, &mut qs)?;
        }
        if qs.is_empty() {
            return Ok(Vec::new());
        }
        let blocks: Vec<Vec<Vec<Hit>>> = qs
            .par_chunks(QUERY_BLOCK * self.dim)
            .map(|block| {
                let mut tops: Vec<TopK> = block
                    .chunks_exact(self.dim)
                    .map(|_| TopK::new(k, self.len()))
                    .collect();
                if k > 0 {
                    for (i, row) in self.data.chunks_exact(self.dim).enumerate() {
                        for (top, q) in tops.iter_mut().zip(block.chunks_exact(self.dim)) {
                            top.push(i, dot(row, q));
                        }
                    }
                }
                tops.into_iter().map(TopK::into_hits).collect()
            })
            .collect();
        Ok(blocks.into_iter().flatten().collect())
    }

    /// Saves the index to a safetensors file: tensor `embeddings` (the
    /// normalised `(n, d)` f32 matrix, little-endian) and `__metadata__` with
    /// `format`, `format_version`, `dim`, `count`, `model`, `normalized` and a
    /// `checksum` (FNV-1a 64 over the metadata and the tensor). The write is
    /// atomic (temporary file in the same folder, then rename).
    ///
    /// # Errors
    /// [`RetrievalError::Io`] naming the path if it cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let meta = store::meta([
            ("format", FORMAT.to_owned()),
            ("format_version", FORMAT_VERSION.to_owned()),
            ("dim", self.dim.to_string()),
            ("count", self.len().to_string()),
            ("model", self.model.clone()),
            ("normalized", "true".to_owned()),
        ]);
        let tensor = Owned(
            TENSOR,
            Dtype::F32,
            vec![self.len(), self.dim],
            store::f32_bytes(&self.data),
        );
        store::write_checked(path.as_ref(), &[tensor], meta)
    }

    /// Loads an index written by [`save`](Self::save).
    ///
    /// # Errors
    /// [`RetrievalError::Io`] if the file cannot be read;
    /// [`RetrievalError::Format`] naming the path if it is truncated or
    /// corrupt (checksum), of another format or version, or if its shape,
    /// metadata or rows (finite, unit norm) are inconsistent.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = store::read(path)?;
        let file = store::read_checked(path, &bytes)?;
        file.expect_meta("format", FORMAT)?;
        file.expect_meta("format_version", FORMAT_VERSION)?;
        file.expect_meta("normalized", "true")?;
        let dim = file.meta_usize("dim")?;
        let count = file.meta_usize("count")?;
        if dim == 0 {
            return Err(RetrievalError::format(path, "dim is 0"));
        }
        let data = store::f32s(file.tensor(TENSOR, Dtype::F32, &[count, dim])?);
        for (i, row) in data.chunks_exact(dim).enumerate() {
            let sq: f64 = row.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            if !sq.is_finite() || (sq - 1.0).abs() > 1e-3 {
                return Err(RetrievalError::format(
                    path,
                    format!("row {i} is not unit-norm"),
                ));
            }
        }
        Ok(Self {
            data,
            dim,
            model: file.meta("model")?.to_owned(),
        })
    }
}
