//! Checksummed safetensors files and atomic writes (crate-internal).
//!
//! Every file the crate writes is a safetensors file whose `__metadata__`
//! holds a `checksum`: FNV-1a 64 over the other metadata entries and every
//! tensor (name, dtype, shape, bytes), in sorted order. Any single changed
//! byte is therefore detected: in the header it breaks UTF-8/JSON or a
//! checked field, in the payload it changes the checksum.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Result, RetrievalError};
use crate::hash::Fnv64;

const CHECKSUM_KEY: &str = "checksum";

/// A tensor to write: name, dtype, shape and little-endian bytes.
pub(crate) struct Owned(pub &'static str, pub Dtype, pub Vec<usize>, pub Vec<u8>);

/// Metadata from `(key, value)` pairs.
pub(crate) fn meta<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn dtype_name(d: Dtype) -> Option<&'static str> {
    match d {
        Dtype::F32 => Some("F32"),
        Dtype::U8 => Some("U8"),
        Dtype::U64 => Some("U64"),
        _ => None,
    }
}

fn checksum<'b>(
    meta: impl Iterator<Item = (&'b String, &'b String)>,
    tensors: &[(&str, &str, &[usize], &[u8])],
) -> u64 {
    let mut meta: Vec<_> = meta.filter(|(k, _)| k.as_str() != CHECKSUM_KEY).collect();
    meta.sort();
    let mut h = Fnv64::new();
    for (k, v) in meta {
        for part in [k.as_bytes(), b"\0", v.as_bytes(), b"\0"] {
            h.update(part);
        }
    }
    let mut tensors = tensors.to_vec();
    tensors.sort_by(|a, b| a.0.cmp(b.0));
    for (name, dtype, shape, bytes) in tensors {
        for part in [name.as_bytes(), b"\0", dtype.as_bytes(), b"\0"] {
            h.update(part);
        }
        h.update(&(shape.len() as u64).to_le_bytes());
        for &s in shape {
            h.update(&(s as u64).to_le_bytes());
        }
        h.update(bytes);
    }
    h.finish()
}

/// Writes `tensors` with `meta` (plus a checksum) to `path`, atomically.
pub(crate) fn write_checked(
    path: &Path,
    tensors: &[Owned],
    mut meta: BTreeMap<String, String>,
) -> Result<()> {
    let mut parts = Vec::with_capacity(tensors.len());
    let mut views = Vec::with_capacity(tensors.len());
    for Owned(name, dtype, shape, bytes) in tensors {
        let dname =
            dtype_name(*dtype).ok_or_else(|| RetrievalError::format(path, "unsupported dtype"))?;
        parts.push((*name, dname, shape.as_slice(), bytes.as_slice()));
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| RetrievalError::format(path, e.to_string()))?;
        views.push((*name, view));
    }
    let sum = checksum(meta.iter(), &parts);
    meta.insert(CHECKSUM_KEY.to_owned(), format!("{sum:016x}"));
    let bytes = safetensors::serialize(views, Some(meta.into_iter().collect()))
        .map_err(|e| RetrievalError::format(path, e.to_string()))?;
    atomic_write(path, &bytes)
}

/// A parsed file whose checksum matched.
pub(crate) struct Checked<'a> {
    path: &'a Path,
    meta: HashMap<String, String>,
    tensors: SafeTensors<'a>,
}

/// Parses `bytes` (the contents of `path`) and verifies its checksum.
pub(crate) fn read_checked<'a>(path: &'a Path, bytes: &'a [u8]) -> Result<Checked<'a>> {
    let bad = |e: safetensors::SafeTensorError| RetrievalError::format(path, e.to_string());
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let meta = header.metadata().clone().unwrap_or_default();
    let tensors = SafeTensors::deserialize(bytes).map_err(bad)?;
    let views = tensors.tensors();
    let mut parts = Vec::with_capacity(views.len());
    for (name, v) in &views {
        let dtype = dtype_name(v.dtype()).ok_or_else(|| {
            RetrievalError::format(path, format!("tensor {name:?} has unsupported dtype"))
        })?;
        parts.push((name.as_str(), dtype, v.shape(), v.data()));
    }
    let stored = meta
        .get(CHECKSUM_KEY)
        .ok_or_else(|| RetrievalError::format(path, "missing checksum"))?;
    if *stored != format!("{:016x}", checksum(meta.iter(), &parts)) {
        return Err(RetrievalError::format(path, "checksum mismatch"));
    }
    Ok(Checked {
        path,
        meta,
        tensors,
    })
}

impl<'a> Checked<'a> {
    /// A metadata entry.
    pub fn meta(&self, key: &str) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| RetrievalError::format(self.path, format!("missing metadata {key:?}")))
    }

    /// A metadata entry parsed as an integer.
    pub fn meta_usize(&self, key: &str) -> Result<usize> {
        let v = self.meta(key)?;
        v.parse().map_err(|_| {
            RetrievalError::format(
                self.path,
                format!("metadata {key:?} = {v:?} is not an integer"),
            )
        })
    }

    /// Fails unless metadata `key` equals `value`.
    pub fn expect_meta(&self, key: &str, value: &str) -> Result<()> {
        let v = self.meta(key)?;
        if v == value {
            Ok(())
        } else {
            Err(RetrievalError::format(
                self.path,
                format!("metadata {key:?} is {v:?}, expected {value:?}"),
            ))
        }
    }

    /// The bytes of tensor `name`, which must have `dtype` and `shape`.
    pub fn tensor(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<&'a [u8]> {
        let v = self
            .tensors
            .tensor(name)
            .map_err(|e| RetrievalError::format(self.path, e.to_string()))?;
        if v.dtype() != dtype || v.shape() != shape {
            return Err(RetrievalError::format(
                self.path,
                format!(
                    "tensor {name:?} is {:?} {:?}, expected {dtype:?} {shape:?}",
                    v.dtype(),
                    v.shape()
                ),
            ));
        }
        Ok(v.data())
    }
}

/// Little-endian bytes of `values`.
pub(crate) fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Decodes little-endian `f32`s (a trailing partial value is ignored; the
/// callers have checked the length).
pub(crate) fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Decodes little-endian `u64`s.
pub(crate) fn u64s(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

/// Reads a whole file, naming it on error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| RetrievalError::io(path, e))
}

/// Writes a file atomically: the contents go to a temporary file in the same
/// folder, which is synced and then renamed over `path`. A crash leaves
/// either the old file or the new one, never a torn one.
pub(crate) fn atomic_write(path: &Path, contents: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| RetrievalError::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        RetrievalError::io(path, e)
    })?;
    // Make the rename itself durable where folders can be synced (Unix).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
