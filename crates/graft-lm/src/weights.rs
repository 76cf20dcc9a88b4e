//! safetensors weight loading for Hugging Face checkpoints, with a load
//! report.
//!
//! [`Weights::read`] parses a `.safetensors` file (an 8-byte little-endian
//! header length, a JSON header, then the raw tensor bytes) with every
//! offset bounds-checked: a truncated or corrupted file is an error, never
//! a panic or an out-of-bounds read. `F32`, `F16`, `BF16` and `I64` tensors
//! are supported (kept in their own kind); any other dtype is
//! [`LmError::WrongType`]. The file is read into memory once (no mmap) and
//! each tensor copied into libtorch, so the bytes are dropped after
//! loading.
//!
//! Model builders look tensors up by their PyTorch `state_dict` names.
//! [`Weights::take`] checks the shape and records the name as applied; a
//! name that is absent is recorded as missing; what was never taken is
//! unused. [`Weights::report`] gathers the three lists in a [`LoadReport`].
//! A prefix ([`Weights::with_prefix`], or [`Weights::detect_prefix`] from a
//! probe name) is prepended to every lookup, so the same builder loads a
//! bare `BertModel` checkpoint (`embeddings.word_embeddings.weight`) and
//! one saved from a task head (`bert.embeddings.word_embeddings.weight`).
//!
//! Malformed files are reported as [`LmError::Io`] with
//! [`LmError::Format`], naming the file and the byte offset.
//!
//! ```no_run
//! use graft_lm::weights::Weights;
//!
//! let mut w = Weights::read("model.safetensors")?;
//! if let Some(p) = w.detect_prefix("embeddings.word_embeddings.weight") {
//!     w = w.with_prefix(p);
//! }
//! let word = w.take("embeddings.word_embeddings.weight", &[30522, 384])?;
//! println!("{:?}\n{}", word.size(), w.report());
//! # Ok::<(), graft_lm::LmError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use crate::error::{LmError, Result};

/// Largest JSON header accepted (the format's own reference limit).
const MAX_HEADER: u64 = 100_000_000;

/// Element types of safetensors files that [`Weights`] loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// IEEE single precision.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// Signed 64-bit integer (e.g. `position_ids`).
    I64,
}

impl Dtype {
    /// Parses the header's dtype string (`"F32"`, `"F16"`, `"BF16"`,
    /// `"I64"`); `None` for any other.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "F32" => Some(Self::F32),
            "F16" => Some(Self::F16),
            "BF16" => Some(Self::BF16),
            "I64" => Some(Self::I64),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
            Self::I64 => 8,
        }
    }

    /// The libtorch kind of the loaded tensor.
    pub fn kind(self) -> Kind {
        match self {
            Self::F32 => Kind::Float,
            Self::F16 => Kind::Half,
            Self::BF16 => Kind::BFloat16,
            Self::I64 => Kind::Int64,
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        !matches!(self, Self::I64)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::I64 => "I64",
        })
    }
}

/// What a model builder did with a checkpoint: full tensor names (prefix
/// included), each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Tensors loaded into the model.
    pub applied: Vec<String>,
    /// Tensors the model asked for that the checkpoint lacks (optional ones
    /// the model did without, or the required one that failed the load).
    pub missing: Vec<String>,
    /// Tensors of the checkpoint the model never used.
    pub unused: Vec<String>,
}

impl LoadReport {
    /// Whether every tensor asked for was found and every tensor used.
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.unused.is_empty()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} applied, {} missing, {} unused",
            self.applied.len(),
            self.missing.len(),
            self.unused.len()
        )?;
        for (what, names) in [("missing", &self.missing), ("unused", &self.unused)] {
            for n in names {
                write!(f, "\n  {what}: {n}")?;
            }
        }
        Ok(())
    }
}

/// One tensor of a checkpoint.
#[derive(Debug)]
struct Entry {
    dtype: Dtype,
    tensor: Tensor,
}

/// The tensors of a safetensors checkpoint, looked up by name (after an
/// optional prefix), with the bookkeeping of a [`LoadReport`].
///
/// Tensors live on the CPU in their stored kind until a builder
/// [`take`](Weights::take)s them.
#[derive(Debug)]
pub struct Weights {
    path: Option<PathBuf>,
    prefix: String,
    tensors: BTreeMap<String, Entry>,
    applied: Vec<String>,
    missing: Vec<String>,
    metadata: BTreeMap<String, String>,
}

fn invalid(path: Option<&Path>, offset: u64, reason: impl fmt::Display) -> LmError {
    LmError::Format {
        path: path.map(Path::to_path_buf),
        offset,
        reason: format!("safetensors: {reason}"),
    }
}

fn json_u64s(v: Option<&serde_json::Value>) -> Option<Vec<u64>> {
    v?.as_array()?
        .iter()
        .map(serde_json::Value::as_u64)
        .collect()
}

impl Weights {
    /// Reads a `.safetensors` file.
    ///
    /// # Errors
    ///
    /// [`LmError::Io`] if the file cannot be read, [`LmError::Format`] if
    /// it is truncated or malformed: header length past
    /// the end, header not JSON, an entry without `dtype`/`shape`/
    /// `data_offsets`, offsets out of the data or inconsistent with the
    /// shape; [`LmError::WrongType`] for a dtype other than `F32`, `F16`,
    /// `BF16`, `I64`; [`LmError::Tch`] if libtorch fails.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LmError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut w = Self::parse(&bytes, Some(path))?;
        w.path = Some(path.to_path_buf());
        Ok(w)
    }

    /// Parses the bytes of a safetensors file.
    ///
    /// # Errors
    ///
    /// As [`Weights::read`] (the path in errors is `<safetensors bytes>`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::parse(bytes, None)
    }

    /// Wraps tensors already in memory (e.g. built in a test); names are
    /// kept as given. Tensor kinds other than float, half, bfloat16 and
    /// int64 are [`LmError::WrongType`].
    ///
    /// # Errors
    ///
    /// [`LmError::WrongType`] for an unsupported kind.
    pub fn from_tensors(tensors: impl IntoIterator<Item = (String, Tensor)>) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (name, tensor) in tensors {
            let dtype = match tensor.kind() {
                Kind::Float => Dtype::F32,
                Kind::Half => Dtype::F16,
                Kind::BFloat16 => Dtype::BF16,
                Kind::Int64 => Dtype::I64,
                k => {
                    return Err(LmError::WrongType {
                        name,
                        expected: "F32, F16, BF16 or I64".into(),
                        found: format!("{k:?}"),
                    })
                }
            };
            map.insert(name, Entry { dtype, tensor });
        }
        Ok(Self {
            path: None,
            prefix: String::new(),
            tensors: map,
            applied: Vec::new(),
            missing: Vec::new(),
            metadata: BTreeMap::new(),
        })
    }

    fn parse(bytes: &[u8], path: Option<&Path>) -> Result<Self> {
        let len = bytes.len() as u64;
        let Some(head) = bytes.get(..8) else {
            return Err(invalid(
                path,
                0,
                format!("file of {len} bytes has no header length"),
            ));
        };
        let mut n = [0u8; 8];
        n.copy_from_slice(head);
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER || n > len - 8 {
            return Err(invalid(
                path,
                0,
                format!("header of {n} bytes does not fit in a file of {len} bytes"),
            ));
        }
        // n <= len - 8 <= usize::MAX, so the casts are exact.
        let header = &bytes[8..8 + n as usize];
        let data = &bytes[8 + n as usize..];
        let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header)
            .map_err(|e| invalid(path, 8, format!("header is not a JSON object: {e}")))?;
        let data_start = 8 + n;
        let mut tensors = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        for (name, v) in &header {
            if name == "__metadata__" {
                if let Some(m) = v.as_object() {
                    for (k, v) in m {
                        if let Some(s) = v.as_str() {
                            metadata.insert(k.clone(), s.to_string());
                        }
                    }
                }
                continue;
            }
            let bad = |reason: String| invalid(path, 8, format!("tensor {name:?}: {reason}"));
            let dtype_str = v
                .get("dtype")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| bad("no dtype string".into()))?;
            let dtype = Dtype::parse(dtype_str).ok_or_else(|| LmError::WrongType {
                name: name.clone(),
                expected: "F32, F16, BF16 or I64".into(),
                found: dtype_str.to_string(),
            })?;
            let shape = json_u64s(v.get("shape"))
                .ok_or_else(|| bad("shape is not a list of sizes".into()))?;
            let offsets = json_u64s(v.get("data_offsets"))
                .ok_or_else(|| bad("data_offsets is not a list of offsets".into()))?;
            let &[begin, end] = offsets.as_slice() else {
                return Err(bad(format!("data_offsets {offsets:?} is not [begin, end]")));
            };
            let numel = shape
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .and_then(|e| e.checked_mul(dtype.size() as u64));
            if begin > end || end > data.len() as u64 {
                return Err(invalid(
                    path,
                    data_start.saturating_add(begin),
                    format!(
                        "tensor {name:?}: data [{begin}, {end}) outside the {} data bytes (file truncated?)",
                        data.len()
                    ),
                ));
            }
            if numel != Some(end - begin) {
                return Err(bad(format!(
                    "shape {shape:?} of {dtype} needs {numel:?} bytes, data_offsets give {}",
                    end - begin
                )));
            }
            let dims: Vec<i64> = shape
                .iter()
                .map(|&d| i64::try_from(d))
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| bad(format!("shape {shape:?} too large")))?;
            // begin <= end <= data.len(), so the casts are exact.
            let slice = &data[begin as usize..end as usize];
            let tensor = Tensor::f_from_data_size(slice, &dims, dtype.kind())?;
            tensors.insert(name.clone(), Entry { dtype, tensor });
        }
        Ok(Self {
            path: path.map(Path::to_path_buf),
            prefix: String::new(),
            tensors,
            applied: Vec::new(),
            missing: Vec::new(),
            metadata,
        })
    }

    /// Sets the prefix prepended to every name looked up (e.g. `"bert."`);
    /// `""` for none.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The current lookup prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The prefix under which `probe` (a name without prefix, e.g.
    /// `"embeddings.word_embeddings.weight"`) is stored: `Some("")` when it
    /// is stored bare, `Some("bert.")` for `bert.embeddings...`, the
    /// shortest such prefix if several match, `None` if no name ends with
    /// `probe` at a `.` boundary.
    pub fn detect_prefix(&self, probe: &str) -> Option<String> {
        self.tensors
            .keys()
            .filter_map(|k| {
                let p = k.strip_suffix(probe)?;
                (p.is_empty() || p.ends_with('.')).then(|| p.to_string())
            })
            .min_by_key(String::len)
    }

    /// The file the tensors came from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The string metadata of the header (`__metadata__`).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Full names of the tensors not yet taken, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors not yet taken.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether no tensor is left.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    fn full(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The tensor `prefix + name` (stored kind, CPU), without taking it.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(&self.full(name)).map(|e| &e.tensor)
    }

    /// The stored dtype of `prefix + name`.
    pub fn dtype(&self, name: &str) -> Option<Dtype> {
        self.tensors.get(&self.full(name)).map(|e| e.dtype)
    }

    /// Whether `prefix + name` is present (and not yet taken).
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(&self.full(name))
    }

    /// Removes `prefix + name`, checks its shape and records it as applied;
    /// the tensor keeps its stored kind.
    ///
    /// # Errors
    ///
    /// [`LmError::Missing`] (recorded as missing) if absent;
    /// [`LmError::WrongType`] if the shape differs (the tensor stays).
    pub fn take(&mut self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let full = self.full(name);
        let Some(e) = self.tensors.get(&full) else {
            self.missing.push(full.clone());
            return Err(LmError::Missing {
                what: "tensor",
                name: full,
            });
        };
        let got = e.tensor.size();
        if got != shape {
            return Err(LmError::WrongType {
                name: full,
                expected: format!("shape {shape:?}"),
                found: format!("shape {got:?}"),
            });
        }
        self.applied.push(full.clone());
        match self.tensors.remove(&full) {
            Some(e) => Ok(e.tensor),
            None => Err(LmError::Missing {
                what: "tensor",
                name: full,
            }),
        }
    }

    /// [`take`](Weights::take), then converts a floating-point tensor to
    /// `kind` (e.g. `F16` weights to `Kind::Float`).
    ///
    /// # Errors
    ///
    /// As [`take`](Weights::take); [`LmError::WrongType`] for an integer
    /// tensor (it stays).
    pub fn take_float(&mut self, name: &str, shape: &[i64], kind: Kind) -> Result<Tensor> {
        if let Some(d) = self.dtype(name).filter(|d| !d.is_float()) {
            return Err(LmError::WrongType {
                name: self.full(name),
                expected: "a floating-point tensor".into(),
                found: d.to_string(),
            });
        }
        Ok(self.take(name, shape)?.f_to_kind(kind)?)
    }

    /// [`take_float`](Weights::take_float) for a tensor a model can do
    /// without: `Ok(None)` (recorded as missing) if absent.
    ///
    /// # Errors
    ///
    /// As [`take_float`](Weights::take_float) for a present tensor.
    pub fn take_float_optional(
        &mut self,
        name: &str,
        shape: &[i64],
        kind: Kind,
    ) -> Result<Option<Tensor>> {
        if !self.contains(name) {
            self.missing.push(self.full(name));
            return Ok(None);
        }
        self.take_float(name, shape, kind).map(Some)
    }

    /// What was applied, missing and (still here) unused so far.
    pub fn report(&self) -> LoadReport {
        let mut applied = self.applied.clone();
        let mut missing = self.missing.clone();
        applied.sort();
        applied.dedup();
        missing.sort();
        missing.dedup();
        LoadReport {
            applied,
            missing,
            unused: self.tensors.keys().cloned().collect(),
        }
    }
}

/// Shape helper: `usize` dimensions as libtorch's `i64`.
pub(crate) fn dims(d: &[usize]) -> Vec<i64> {
    d.iter()
        .map(|&x| i64::try_from(x).unwrap_or(i64::MAX))
        .collect()
}
