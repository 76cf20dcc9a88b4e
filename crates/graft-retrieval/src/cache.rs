//! A folder-backed cache of text embeddings, so repeated runs skip the
//! encoder.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use ndarray::{Array2, ArrayView1};
use safetensors::Dtype;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RetrievalError};
use crate::hash::fnv1a64;
use crate::store::{self, Owned};

const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "graft-retrieval/embedding-cache";
const SHARD_FORMAT: &str = "graft-retrieval/embedding-shard";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    format_version: u32,
    model_id: String,
    dim: Option<usize>,
    shards: Vec<ShardRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardRecord {
    file: String,
    rows: usize,
}

/// The folder that holds the cache of `model_id` under `root`:
/// `<slug>-<fnv1a64(model_id) as 16 hex digits>`, where the slug keeps ASCII
/// letters, digits, `-`, `_` and `.` of the id (others become `_`, at most 64).
fn model_dir(root: &Path, model_id: &str) -> PathBuf {
    let slug: String = model_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    root.join(format!("{slug}-{:016x}", fnv1a64(model_id.as_bytes())))
}

/// A persistent map from text to embedding for one embedding model.
///
/// Entries are keyed by `(model id, FNV-1a 64 of the exact text bytes)`; the
/// text itself is stored and compared, so a hash collision can never return
/// another text's vector. Each model lives in its own folder under the cache
/// root (named by a slug and the hash of the model id, and recorded in the
/// manifest), so one model never sees another's vectors.
///
/// # On disk
/// `<root>/<model folder>/manifest.json` lists shard files; each shard is a
/// checksummed safetensors file with the embeddings (`(rows, dim)` f32), the
/// UTF-8 texts and their offsets. A flush writes a new shard (atomically)
/// and then atomically replaces the manifest, so a crash at any point
/// leaves the previous entries intact (at worst an unreferenced shard file
/// remains). One writer per model folder at a time: concurrent writers do
/// not corrupt the cache, but the last manifest written wins.
///
/// # Example
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use graft_retrieval::EmbeddingCache;
/// use ndarray::Array2;
///
/// let root = tempfile::tempdir()?;
/// // A stand-in encoder: one row per text.
/// let encode = |texts: &[&str]| -> Result<Array2<f32>, String> {
///     Ok(Array2::from_shape_fn((texts.len(), 2), |(i, j)| (texts[i].len() + j) as f32))
/// };
/// let mut cache = EmbeddingCache::open(root.path(), "all-MiniLM-L6-v2")?;
/// let a = cache.get_or_compute(&["red shoes", "blue hat"], encode)?;
/// assert_eq!(a.dim(), (2, 2));
/// // Reopened later: served from disk, the encoder is not called.
/// let mut cache = EmbeddingCache::open(root.path(), "all-MiniLM-L6-v2")?;
/// let b = cache.get_or_compute(&["blue hat"], |_: &[&str]| -> Result<Array2<f32>, String> {
///     Err("not called".into())
/// })?;
/// assert_eq!(b.row(0), a.row(1));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EmbeddingCache {
    dir: PathBuf,
    model_id: String,
    dim: Option<usize>,
    texts: Vec<String>,
    /// Row-major, `texts.len() * dim` values.
    data: Vec<f32>,
    /// Text hash -> entry ids with that hash (more than one only on collision).
    lookup: HashMap<u64, Vec<usize>>,
    shards: Vec<ShardRecord>,
    /// Entries `0..persisted` are on disk.
    persisted: usize,
    flush_threshold: usize,
}

impl EmbeddingCache {
    /// Opens (or starts) the cache of `model_id` under the folder `root`,
    /// loading every stored entry. Nothing is written until a flush.
    ///
    /// # Errors
    /// [`RetrievalError::InvalidInput`] if `model_id` is empty;
    /// [`RetrievalError::Io`] if a file cannot be read;
    /// [`RetrievalError::Format`] if the manifest or a shard is corrupt or
    /// truncated; [`RetrievalError::ModelMismatch`] if they record another
    /// model.
    pub fn open(root: impl AsRef<Path>, model_id: &str) -> Result<Self> {
        if model_id.is_empty() {
            return Err(RetrievalError::InvalidInput {
                reason: "empty model id".to_owned(),
            });
        }
        let dir = model_dir(root.as_ref(), model_id);
        let mut cache = Self {
            dir,
            model_id: model_id.to_owned(),
            dim: None,
            texts: Vec::new(),
            data: Vec::new(),
            lookup: HashMap::new(),
            shards: Vec::new(),
            persisted: 0,
            flush_threshold: 1,
        };
        let path = cache.dir.join(MANIFEST);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cache),
            Err(e) => return Err(RetrievalError::io(path, e)),
        };
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| RetrievalError::format(&path, e.to_string()))?;
        if m.format != FORMAT || m.format_version != FORMAT_VERSION {
            return Err(RetrievalError::format(
                &path,
                format!("format {:?} v{}", m.format, m.format_version),
            ));
        }
        if m.model_id != model_id {
            return Err(RetrievalError::ModelMismatch {
                path,
                expected: model_id.to_owned(),
                found: m.model_id,
            });
        }
        match m.dim {
            Some(d) if d > 0 => cache.dim = Some(d),
            None if m.shards.is_empty() => {}
            _ => return Err(RetrievalError::format(&path, "invalid dim")),
        }
        for rec in &m.shards {
            cache.load_shard(&path, rec)?;
        }
        cache.shards = m.shards;
        cache.persisted = cache.texts.len();
        Ok(cache)
    }

    fn load_shard(&mut self, manifest: &Path, rec: &ShardRecord) -> Result<()> {
        let plain = matches!(
            Path::new(&rec.file).components().collect::<Vec<_>>()[..],
            [Component::Normal(_)]
        );
        if !plain {
            return Err(RetrievalError::format(
                manifest,
                format!("bad shard name {:?}", rec.file),
            ));
        }
        let path = self.dir.join(&rec.file);
        let bytes = store::read(&path)?;
        let file = store::read_checked(&path, &bytes)?;
        file.expect_meta("format", SHARD_FORMAT)?;
        file.expect_meta("format_version", &FORMAT_VERSION.to_string())?;
        let found = file.meta("model_id")?;
        if found != self.model_id {
            return Err(RetrievalError::ModelMismatch {
                path: path.clone(),
                expected: self.model_id.clone(),
                found: found.to_owned(),
            });
        }
        let dim = self.dim.unwrap_or(0);
        if file.meta_usize("dim")? != dim || file.meta_usize("rows")? != rec.rows {
            return Err(RetrievalError::format(
                &path,
                "dim or rows disagree with manifest",
            ));
        }
        let emb = store::f32s(file.tensor("embeddings", Dtype::F32, &[rec.rows, dim])?);
        let offsets =
            store::u64s(file.tensor("text_offsets", Dtype::U64, &[rec.rows.saturating_add(1)])?);
        let end = offsets.last().copied().unwrap_or(0);
        let text = file.tensor("text_bytes", Dtype::U8, &[end as usize])?;
        let bad = |what: &str| RetrievalError::format(&path, what.to_owned());
        if offsets.first() != Some(&0) {
            return Err(bad("text offsets do not start at 0"));
        }
        for (i, w) in offsets.windows(2).enumerate() {
            let t = text
                .get(w[0] as usize..w[1] as usize)
                .ok_or_else(|| bad("text offsets out of order"))?;
            let t = std::str::from_utf8(t).map_err(|_| bad("text is not UTF-8"))?;
            let row = &emb[i * dim..(i + 1) * dim];
            if row.iter().any(|x| !x.is_finite()) {
                return Err(bad("non-finite embedding"));
            }
            if self.find(t).is_none() {
                self.insert(t.to_owned(), row);
            }
        }
        Ok(())
    }

    /// Sets how many new entries may wait in memory before
    /// [`get_or_compute`](Self::get_or_compute) flushes them (default 1:
    /// every call that computed something writes one shard). Larger values
    /// mean fewer, larger shards; pending entries are also flushed by
    /// [`flush`](Self::flush) and, best-effort, on drop.
    #[must_use]
    pub fn with_flush_threshold(mut self, rows: usize) -> Self {
        self.flush_threshold = rows.max(1);
        self
    }

    fn find(&self, text: &str) -> Option<usize> {
        let ids = self.lookup.get(&fnv1a64(text.as_bytes()))?;
        ids.iter().copied().find(|&i| self.texts[i] == text)
    }

    fn insert(&mut self, text: String, row: &[f32]) {
        let id = self.texts.len();
        self.lookup
            .entry(fnv1a64(text.as_bytes()))
            .or_default()
            .push(id);
        self.texts.push(text);
        self.data.extend_from_slice(row);
    }

    /// The cached embedding of `text`, if any.
    #[must_use]
    pub fn get(&self, text: &str) -> Option<ArrayView1<'_, f32>> {
        let (i, d) = (self.find(text)?, self.dim?);
        self.data.get(i * d..(i + 1) * d).map(ArrayView1::from)
    }

    /// The embeddings of `texts` (one row each, in order), calling `compute`
    /// once, with the distinct misses in first-seen order, only if some
    /// text is not cached. `compute` must return one row per text it is
    /// given. New entries are flushed per
    /// [`with_flush_threshold`](Self::with_flush_threshold).
    ///
    /// If `texts` is empty and the cache has no dimension yet, the result is
    /// `(0, 0)`.
    ///
    /// # Errors
    /// [`RetrievalError::Compute`] if `compute` fails;
    /// [`RetrievalError::Shape`] if its output has the wrong number of rows
    /// or a dimension other than the cache's;
    /// [`RetrievalError::NonFinite`] naming the first bad output row;
    /// [`RetrievalError::InvalidInput`] for a zero-dimensional output;
    /// flush errors as [`flush`](Self::flush). On a compute or validation
    /// error nothing is added; on a flush error the new entries stay pending.
    pub fn get_or_compute<E, F>(&mut self, texts: &[&str], mut compute: F) -> Result<Array2<f32>>
    where
        F: FnMut(&[&str]) -> std::result::Result<Array2<f32>, E>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut ids: Vec<Option<usize>> = Vec::with_capacity(texts.len());
        let mut misses: Vec<&str> = Vec::new();
        let mut miss_of: HashMap<&str, usize> = HashMap::new();
        for &t in texts {
            let hit = self.find(t);
            if hit.is_none() && !miss_of.contains_key(t) {
                miss_of.insert(t, misses.len());
                misses.push(t);
            }
            ids.push(hit);
        }
        if !misses.is_empty() {
            let out = compute(&misses).map_err(|e| RetrievalError::Compute(e.into()))?;
            let (rows, cols) = out.dim();
            if rows != misses.len() {
                return Err(RetrievalError::Shape {
                    what: "compute output rows",
                    expected: misses.len(),
                    got: rows,
                });
            }
            match self.dim {
                Some(d) if d != cols => {
                    return Err(RetrievalError::Shape {
                        what: "compute output dimension",
                        expected: d,
                        got: cols,
                    })
                }
                None if cols == 0 => {
                    return Err(RetrievalError::InvalidInput {
                        reason: "compute returned zero-dimensional embeddings".to_owned(),
                    })
                }
                _ => {}
            }
            if let Some(row) = out
                .rows()
                .into_iter()
                .position(|r| r.iter().any(|x| !x.is_finite()))
            {
                return Err(RetrievalError::NonFinite {
                    what: "compute output",
                    row,
                });
            }
            self.dim = Some(cols);
            let base = self.texts.len();
            for (t, row) in misses.iter().zip(out.rows()) {
                self.insert((*t).to_owned(), &row.to_vec());
            }
            for (id, t) in ids.iter_mut().zip(texts) {
                if id.is_none() {
                    *id = miss_of.get(t).map(|j| base + j);
                }
            }
        }
        let d = self.dim.unwrap_or(0);
        let out = Array2::from_shape_fn((texts.len(), d), |(r, c)| {
            ids[r].map_or(0.0, |i| self.data[i * d + c])
        });
        if self.pending() >= self.flush_threshold {
            self.flush()?;
        }
        Ok(out)
    }

    /// Writes the pending entries as one new shard, then atomically updates
    /// the manifest. Does nothing if nothing is pending.
    ///
    /// # Errors
    /// [`RetrievalError::Io`] naming the file that could not be written.
    /// The entries stay pending, so a later flush retries.
    pub fn flush(&mut self) -> Result<()> {
        let Some(dim) = self.dim else { return Ok(()) };
        let new = &self.texts[self.persisted..];
        if new.is_empty() {
            return Ok(());
        }
        let rows = new.len();
        let mut offsets = Vec::with_capacity(8 * (rows + 1));
        let mut text = Vec::new();
        offsets.extend_from_slice(&0u64.to_le_bytes());
        for t in new {
            text.extend_from_slice(t.as_bytes());
            offsets.extend_from_slice(&(text.len() as u64).to_le_bytes());
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let file = format!(
            "shard-{:06}-{}-{nanos}.safetensors",
            self.shards.len(),
            std::process::id()
        );
        let meta = store::meta([
            ("format", SHARD_FORMAT.to_owned()),
            ("format_version", FORMAT_VERSION.to_string()),
            ("model_id", self.model_id.clone()),
            ("dim", dim.to_string()),
            ("rows", rows.to_string()),
        ]);
        let tensors = [
            Owned(
                "embeddings",
                Dtype::F32,
                vec![rows, dim],
                store::f32_bytes(&self.data[self.persisted * dim..]),
            ),
            Owned("text_offsets", Dtype::U64, vec![rows + 1], offsets),
            Owned("text_bytes", Dtype::U8, vec![text.len()], text),
        ];
        store::write_checked(&self.dir.join(&file), &tensors, meta)?;
        let mut shards = self.shards.clone();
        shards.push(ShardRecord { file, rows });
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            format_version: FORMAT_VERSION,
            model_id: self.model_id.clone(),
            dim: Some(dim),
            shards,
        };
        let path = self.dir.join(MANIFEST);
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| RetrievalError::format(&path, e.to_string()))?;
        store::atomic_write(&path, &json)?;
        self.shards = manifest.shards;
        self.persisted = self.texts.len();
        Ok(())
    }

    /// Number of cached texts (on disk or pending).
    #[must_use]
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether the cache holds no text.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// Number of entries not yet flushed to disk.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.texts.len() - self.persisted
    }

    /// Embedding dimension, once known (from disk or the first computation).
    #[must_use]
    pub fn dim(&self) -> Option<usize> {
        self.dim
    }

    /// The model id this cache serves.
    #[must_use]
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The model's folder under the cache root.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for EmbeddingCache {
    /// Flushes pending entries, ignoring errors; call
    /// [`flush`](EmbeddingCache::flush) to see them.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A forged entry under the same hash but another text is never returned.
    #[test]
    fn hash_collisions_compare_the_text() {
        let root = tempfile::tempdir().unwrap();
        let mut cache = EmbeddingCache::open(root.path(), "m").unwrap();
        cache.dim = Some(1);
        cache.insert("impostor".to_owned(), &[1.0]);
        let id = cache.lookup.remove(&fnv1a64(b"impostor")).unwrap();
        cache.lookup.insert(fnv1a64(b"target"), id);
        assert!(cache.get("target").is_none());
        let got = cache
            .get_or_compute(&["target"], |_| Ok::<_, String>(ndarray::array![[2.0f32]]))
            .unwrap();
        assert_eq!(got, ndarray::array![[2.0f32]]);
        assert_eq!(cache.lookup[&fnv1a64(b"target")].len(), 2);
        assert_eq!(cache.get("target").unwrap()[0], 2.0);
    }
}
