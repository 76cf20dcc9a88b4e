//! GGUF files: header, metadata, tensor table, and dequantisation of F32,
//! F16, BF16, Q8_0, Q4_0 and Q4_1 tensors to `f32`.
//!
//! Layout (little-endian, version 2 or 3): magic `GGUF`, `u32` version,
//! `u64` tensor count, `u64` metadata count; metadata key/value pairs
//! (strings are a `u64` length and UTF-8 bytes); one entry per tensor
//! (name, `u32` rank, `u64` dimensions innermost first, `u32` ggml type,
//! `u64` offset into the data section); then the data section, aligned to
//! `general.alignment` (default 32). A tensor listed with dimensions
//! `(576, 192)` is the row-major `[192, 576]` matrix, which
//! [`TensorInfo::shape`] returns.
//!
//! Parsing checks every length against the bytes that remain, so a
//! truncated, corrupted or hostile file gives [`LmError::Gguf`] (with the
//! byte offset), never a panic or a huge allocation. [`GgufWriter`] writes
//! the same format; the tests use it to build fixtures.
//!
//! ```
//! use graft_lm::gguf::{GgmlType, GgufFile, GgufValue, GgufWriter};
//!
//! let mut w = GgufWriter::new();
//! w.metadata("general.architecture", GgufValue::String("llama".into()));
//! let weights: Vec<f32> = (0..64).map(|i| i as f32 / 64.0).collect();
//! w.tensor_f32("tok.weight", &[2, 32], &weights, GgmlType::Q8_0)?;
//! let file = GgufFile::parse(w.to_bytes()?)?;
//! assert_eq!(file.metadata_str("general.architecture")?, "llama");
//! let (shape, values) = file.dequantize("tok.weight")?;
//! assert_eq!(shape, vec![2, 32]);
//! assert!(values.iter().zip(&weights).all(|(a, b)| (a - b).abs() < 0.01));
//! # Ok::<(), graft_lm::LmError>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use half::{bf16, f16};

use crate::error::{LmError, Result};

/// `GGUF` as a little-endian `u32`.
pub const MAGIC: u32 = 0x4655_4747;
/// Alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Largest tensor rank ggml supports.
pub const MAX_DIMS: u32 = 4;
/// Values per quantisation block of Q8_0, Q4_0 and Q4_1.
pub const QK: usize = 32;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// `uint8`.
    U8(u8),
    /// `int8`.
    I8(i8),
    /// `uint16`.
    U16(u16),
    /// `int16`.
    I16(i16),
    /// `uint32`.
    U32(u32),
    /// `int32`.
    I32(i32),
    /// `float32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// UTF-8 string.
    String(String),
    /// Homogeneous array (the element type is that of the first element;
    /// an empty array is written as an array of `uint8`).
    Array(Vec<GgufValue>),
    /// `uint64`.
    U64(u64),
    /// `int64`.
    I64(i64),
    /// `float64`.
    F64(f64),
}

impl GgufValue {
    fn type_code(&self) -> u32 {
        match self {
            GgufValue::U8(_) => 0,
            GgufValue::I8(_) => 1,
            GgufValue::U16(_) => 2,
            GgufValue::I16(_) => 3,
            GgufValue::U32(_) => 4,
            GgufValue::I32(_) => 5,
            GgufValue::F32(_) => 6,
            GgufValue::Bool(_) => 7,
            GgufValue::String(_) => 8,
            GgufValue::Array(_) => 9,
            GgufValue::U64(_) => 10,
            GgufValue::I64(_) => 11,
            GgufValue::F64(_) => 12,
        }
    }

    /// Name of the value's type, e.g. `"uint32"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            GgufValue::U8(_) => "uint8",
            GgufValue::I8(_) => "int8",
            GgufValue::U16(_) => "uint16",
            GgufValue::I16(_) => "int16",
            GgufValue::U32(_) => "uint32",
            GgufValue::I32(_) => "int32",
            GgufValue::F32(_) => "float32",
            GgufValue::Bool(_) => "bool",
            GgufValue::String(_) => "string",
            GgufValue::Array(_) => "array",
            GgufValue::U64(_) => "uint64",
            GgufValue::I64(_) => "int64",
            GgufValue::F64(_) => "float64",
        }
    }

    /// Any non-negative integer value as `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(x) => Some(x.into()),
            GgufValue::U16(x) => Some(x.into()),
            GgufValue::U32(x) => Some(x.into()),
            GgufValue::U64(x) => Some(x),
            GgufValue::I8(x) => u64::try_from(x).ok(),
            GgufValue::I16(x) => u64::try_from(x).ok(),
            GgufValue::I32(x) => u64::try_from(x).ok(),
            GgufValue::I64(x) => u64::try_from(x).ok(),
            _ => None,
        }
    }

    /// Any integer or float value as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(x) => Some(x.into()),
            GgufValue::F64(x) => Some(x),
            GgufValue::I8(x) => Some(x.into()),
            GgufValue::I16(x) => Some(x.into()),
            GgufValue::I32(x) => Some(x.into()),
            GgufValue::I64(x) => Some(x as f64),
            _ => self.as_u64().map(|x| x as f64),
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// Element type of a tensor (`ggml_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// Blocks of 32: `f16` scale `d`, 16 bytes of nibbles; `x = d (q - 8)`.
    Q4_0,
    /// Blocks of 32: `f16` scale `d`, `f16` minimum `m`, 16 bytes of
    /// nibbles (low nibbles are values 0-15, high nibbles 16-31);
    /// `x = d q + m`.
    Q4_1,
    /// Blocks of 32: `f16` scale `d`, 32 `i8`; `x = d q`.
    Q8_0,
    /// A type this crate does not dequantise (its ggml code).
    Other(u32),
}

impl GgmlType {
    /// From the ggml type code.
    pub fn from_code(code: u32) -> Self {
        match code {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    /// The ggml type code.
    pub fn code(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q8_0 => 8,
            GgmlType::BF16 => 30,
            GgmlType::Other(c) => c,
        }
    }

    /// `(values per block, bytes per block)`, `None` for unsupported types.
    pub fn block(self) -> Option<(usize, usize)> {
        match self {
            GgmlType::F32 => Some((1, 4)),
            GgmlType::F16 | GgmlType::BF16 => Some((1, 2)),
            GgmlType::Q4_0 => Some((QK, 2 + QK / 2)),
            GgmlType::Q4_1 => Some((QK, 4 + QK / 2)),
            GgmlType::Q8_0 => Some((QK, 2 + QK)),
            GgmlType::Other(_) => None,
        }
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GgmlType::Other(c) => write!(f, "ggml type {c}"),
            t => write!(f, "{t:?}"),
        }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions as stored: innermost (contiguous) first.
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Byte offset of the data from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Row-major shape, outermost first (the stored dimensions reversed).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Number of elements (checked: `None` on overflow).
    pub fn n_elements(&self) -> Option<u64> {
        self.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
    }

    /// Size of the data in bytes, `None` for unsupported types, overflow
    /// or an element count that is not a whole number of blocks.
    pub fn n_bytes(&self) -> Option<u64> {
        let (per_block, bytes) = self.ggml_type.block()?;
        let n = self.n_elements()?;
        if n % per_block as u64 != 0 {
            return None;
        }
        (n / per_block as u64).checked_mul(bytes as u64)
    }
}

/// A parsed GGUF file, owning its bytes.
#[derive(Clone)]
pub struct GgufFile {
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    data_offset: usize,
    bytes: Vec<u8>,
    path: Option<PathBuf>,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Bounds-checked little-endian reader.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: Option<&'a Path>,
}

impl<'a> Cursor<'a> {
    fn err(&self, reason: impl Into<String>) -> LmError {
        LmError::Gguf {
            path: self.path.map(Path::to_path_buf),
            offset: self.pos as u64,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                self.err(format!(
                    "truncated: {what} needs {n} bytes, {} left",
                    self.bytes.len() - self.pos
                ))
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count that must fit in the remaining bytes at `min_size` each.
    fn count(&mut self, what: &str, min_size: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n.saturating_mul(min_size.max(1) as u64) > left {
            return Err(self.err(format!("{what} = {n} cannot fit in the {left} bytes left")));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(what, 1)?;
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec()).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }

    fn value(&mut self, type_code: u32, depth: u32) -> Result<GgufValue> {
        Ok(match type_code {
            0 => GgufValue::U8(self.array::<1>("uint8")?[0]),
            1 => GgufValue::I8(i8::from_le_bytes(self.array("int8")?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array("uint16")?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array("int16")?)),
            4 => GgufValue::U32(self.u32("uint32")?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array("int32")?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array("float32")?)),
            7 => match self.array::<1>("bool")?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => return Err(self.err(format!("bool byte {b} is neither 0 nor 1"))),
            },
            8 => GgufValue::String(self.string("string length")?),
            9 => {
                if depth > 0 {
                    return Err(self.err("nested arrays are not supported"));
                }
                let elem = self.u32("array element type")?;
                let min = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => return Err(self.err("nested arrays are not supported")),
                    t => return Err(self.err(format!("unknown array element type {t}"))),
                };
                let n = self.count("array length", min)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(elem, depth + 1)?);
                }
                GgufValue::Array(v)
            }
            10 => GgufValue::U64(self.u64("uint64")?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array("int64")?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array("float64")?)),
            t => return Err(self.err(format!("unknown metadata value type {t}"))),
        })
    }
}

impl GgufFile {
    /// Reads and parses `path`.
    ///
    /// # Errors
    ///
    /// [`LmError::Io`] if the file cannot be read; [`LmError::Gguf`] as
    /// [`parse`](Self::parse), naming the file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| LmError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_inner(bytes, Some(path))
    }

    /// Parses GGUF bytes.
    ///
    /// # Errors
    ///
    /// [`LmError::Gguf`] for a wrong magic or version, truncation,
    /// duplicate keys or tensor names, unknown value types, ranks above
    /// 4, a bad alignment, or tensor data outside the file.
    pub fn parse(bytes: Vec<u8>) -> Result<Self> {
        Self::parse_inner(bytes, None)
    }

    fn parse_inner(bytes: Vec<u8>, path: Option<&Path>) -> Result<Self> {
        let mut c = Cursor {
            bytes: &bytes,
            pos: 0,
            path,
        };
        let magic = c.u32("magic")?;
        if magic != MAGIC {
            return Err(c.err(format!("not a GGUF file (magic {magic:#010x})")));
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(c.err(format!("unsupported GGUF version {version} (2 and 3 are)")));
        }
        // A tensor entry takes at least 8 + 4 + 4 + 8 bytes, a key/value 8 + 4 + 1.
        let n_tensors = c.count("tensor count", 24)?;
        let n_kv = c.count("metadata count", 13)?;
        let mut metadata = Vec::with_capacity(n_kv);
        let mut index = HashMap::with_capacity(n_kv);
        for _ in 0..n_kv {
            let key = c.string("metadata key length")?;
            let t = c.u32("metadata value type")?;
            let value = c.value(t, 0)?;
            if index.insert(key.clone(), metadata.len()).is_some() {
                return Err(c.err(format!("duplicate metadata key {key}")));
            }
            metadata.push((key, value));
        }
        let mut tensors = Vec::with_capacity(n_tensors);
        let mut tensor_index = HashMap::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = c.string("tensor name length")?;
            let rank = c.u32("tensor rank")?;
            if rank == 0 || rank > MAX_DIMS {
                return Err(c.err(format!("tensor {name}: rank {rank} not in 1..={MAX_DIMS}")));
            }
            let mut dims = Vec::with_capacity(rank as usize);
            for _ in 0..rank {
                dims.push(c.u64("tensor dimension")?);
            }
            let ggml_type = GgmlType::from_code(c.u32("tensor type")?);
            let offset = c.u64("tensor offset")?;
            if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                return Err(c.err(format!("duplicate tensor {name}")));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        let alignment = match index.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a,
                _ => return Err(c.err(format!("general.alignment {v:?} is not a power of two"))),
            },
        };
        let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
        let data_len = (bytes.len() as u64).saturating_sub(data_offset);
        for t in &tensors {
            if t.offset % alignment != 0 {
                return Err(c.err(format!(
                    "tensor {}: offset {} not aligned to {alignment}",
                    t.name, t.offset
                )));
            }
            // Unsupported types are listed; their size is only checked
            // when they are read.
            if t.ggml_type.block().is_none() {
                continue;
            }
            let size = t.n_bytes().ok_or_else(|| {
                c.err(format!(
                    "tensor {}: {:?} elements of {} is not a whole number of blocks (or overflows)",
                    t.name, t.dims, t.ggml_type
                ))
            })?;
            if t.offset.checked_add(size).is_none_or(|end| end > data_len) {
                return Err(c.err(format!(
                    "tensor {}: data {}..{} beyond the {data_len}-byte data section",
                    t.name,
                    t.offset,
                    t.offset.saturating_add(size)
                )));
            }
        }
        let data_offset = data_offset as usize;
        Ok(Self {
            version,
            metadata,
            index,
            tensors,
            tensor_index,
            data_offset,
            path: path.map(Path::to_path_buf),
            bytes,
        })
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Metadata in file order.
    pub fn metadata_entries(&self) -> &[(String, GgufValue)] {
        &self.metadata
    }

    /// One metadata value.
    pub fn metadata(&self, key: &str) -> Option<&GgufValue> {
        self.index.get(key).map(|&i| &self.metadata[i].1)
    }

    fn required(&self, key: &str) -> Result<&GgufValue> {
        self.metadata(key).ok_or_else(|| LmError::Missing {
            what: "metadata key",
            name: key.to_string(),
        })
    }

    fn wrong(key: &str, expected: &str, v: &GgufValue) -> LmError {
        LmError::WrongType {
            name: key.to_string(),
            expected: expected.to_string(),
            found: v.type_name().to_string(),
        }
    }

    /// A string value.
    ///
    /// # Errors
    ///
    /// [`LmError::Missing`] or [`LmError::WrongType`].
    pub fn metadata_str(&self, key: &str) -> Result<&str> {
        let v = self.required(key)?;
        v.as_str().ok_or_else(|| Self::wrong(key, "string", v))
    }

    /// A non-negative integer value of any width.
    ///
    /// # Errors
    ///
    /// [`LmError::Missing`] or [`LmError::WrongType`].
    pub fn metadata_u64(&self, key: &str) -> Result<u64> {
        let v = self.required(key)?;
        v.as_u64()
            .ok_or_else(|| Self::wrong(key, "non-negative integer", v))
    }

    /// A numeric value as `f64`.
    ///
    /// # Errors
    ///
    /// [`LmError::Missing`] or [`LmError::WrongType`].
    pub fn metadata_f64(&self, key: &str) -> Result<f64> {
        let v = self.required(key)?;
        v.as_f64().ok_or_else(|| Self::wrong(key, "number", v))
    }

    /// An array of strings (e.g. `tokenizer.ggml.tokens`).
    ///
    /// # Errors
    ///
    /// [`LmError::Missing`] or [`LmError::WrongType`].
    pub fn metadata_strings(&self, key: &str) -> Result<Vec<&str>> {
        let v = self.required(key)?;
        v.as_array()
            .and_then(|a| a.iter().map(GgufValue::as_str).collect::<Option<Vec<_>>>())
            .ok_or_else(|| Self::wrong(key, "array of strings", v))
    }

    /// The tensor table in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// One tensor's entry.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw bytes of a tensor.
    ///
    /// # Errors
    ///
    /// [`LmError::Missing`] for an unknown name, [`LmError::Gguf`] for an
    /// unsupported type.
    pub fn tensor_bytes(&self, name: &str) -> Result<(&TensorInfo, &[u8])> {
        let info = self.tensor_info(name).ok_or_else(|| LmError::Missing {
            what: "tensor",
            name: name.to_string(),
        })?;
        let size = info.n_bytes().ok_or_else(|| LmError::Gguf {
            path: self.path.clone(),
            offset: self.data_offset as u64 + info.offset,
            reason: format!("tensor {name}: unsupported type {}", info.ggml_type),
        })?;
        // In range: checked at parse time for every supported type.
        let start = self.data_offset + info.offset as usize;
        let end = start + size as usize;
        let bytes = self.bytes.get(start..end).ok_or_else(|| LmError::Gguf {
            path: self.path.clone(),
            offset: start as u64,
            reason: format!("tensor {name}: data beyond the end of the file"),
        })?;
        Ok((info, bytes))
    }

    /// A tensor dequantised to `f32`: `(row-major shape, values)`.
    ///
    /// # Errors
    ///
    /// As [`tensor_bytes`](Self::tensor_bytes).
    pub fn dequantize(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (info, bytes) = self.tensor_bytes(name)?;
        let n = info.n_elements().unwrap_or(0) as usize;
        Ok((info.shape(), dequantize(info.ggml_type, bytes, n)?))
    }
}

/// Dequantises `n` values of type `ty` from `bytes`.
///
/// # Errors
///
/// [`LmError::Gguf`] for an unsupported type, `n` not a whole number of
/// blocks, or `bytes` of the wrong length.
pub fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    let bad = |reason: String| LmError::Gguf {
        path: None,
        offset: 0,
        reason,
    };
    let (per_block, block_bytes) = ty
        .block()
        .ok_or_else(|| bad(format!("cannot dequantise {ty}")))?;
    if n % per_block != 0 || bytes.len() != n / per_block * block_bytes {
        return Err(bad(format!(
            "{n} values of {ty} need {} bytes, got {}",
            n / per_block * block_bytes,
            bytes.len()
        )));
    }
    let h = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
    let mut out = Vec::with_capacity(n);
    match ty {
        GgmlType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        GgmlType::F16 => out.extend(bytes.chunks_exact(2).map(h)),
        GgmlType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        GgmlType::Q8_0 => {
            for blk in bytes.chunks_exact(block_bytes) {
                let d = h(&blk[..2]);
                out.extend(blk[2..].iter().map(|&q| d * f32::from(q as i8)));
            }
        }
        GgmlType::Q4_0 => {
            for blk in bytes.chunks_exact(block_bytes) {
                let d = h(&blk[..2]);
                let qs = &blk[2..];
                out.extend(qs.iter().map(|&q| d * (f32::from(q & 0x0f) - 8.0)));
                out.extend(qs.iter().map(|&q| d * (f32::from(q >> 4) - 8.0)));
            }
        }
        GgmlType::Q4_1 => {
            for blk in bytes.chunks_exact(block_bytes) {
                let (d, m) = (h(&blk[..2]), h(&blk[2..4]));
                let qs = &blk[4..];
                out.extend(qs.iter().map(|&q| d * f32::from(q & 0x0f) + m));
                out.extend(qs.iter().map(|&q| d * f32::from(q >> 4) + m));
            }
        }
        GgmlType::Other(_) => return Err(bad(format!("cannot dequantise {ty}"))),
    }
    Ok(out)
}

/// Quantises `x` (a multiple of 32 values) to `ty` the way ggml's
/// reference quantisers do (Q8_0: `d = max|x| / 127`, round to nearest;
/// Q4_1: `d = (max - min) / 15`, `m = min`; Q4_0: `d = x_maxabs / -8`).
///
/// # Errors
///
/// [`LmError::Gguf`] for unsupported types or a length that is not a
/// multiple of the block size.
pub fn quantize(ty: GgmlType, x: &[f32]) -> Result<Vec<u8>> {
    let bad = |reason: String| LmError::Gguf {
        path: None,
        offset: 0,
        reason,
    };
    let (per_block, block_bytes) = ty
        .block()
        .ok_or_else(|| bad(format!("cannot quantise to {ty}")))?;
    if x.len() % per_block != 0 {
        return Err(bad(format!("{} values are not whole {ty} blocks", x.len())));
    }
    let mut out = Vec::with_capacity(x.len() / per_block * block_bytes);
    let f16b = |v: f32| f16::from_f32(v).to_le_bytes();
    match ty {
        GgmlType::F32 => out.extend(x.iter().flat_map(|v| v.to_le_bytes())),
        GgmlType::F16 => out.extend(x.iter().flat_map(|&v| f16b(v))),
        GgmlType::BF16 => out.extend(x.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes())),
        GgmlType::Q8_0 => {
            for blk in x.chunks_exact(QK) {
                let amax = blk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend(f16b(d));
                out.extend(
                    blk.iter()
                        .map(|&v| (v * id).round().clamp(-128.0, 127.0) as i8 as u8),
                );
            }
        }
        GgmlType::Q4_0 => {
            for blk in x.chunks_exact(QK) {
                let max = blk
                    .iter()
                    .copied()
                    .fold(0.0f32, |m, v| if v.abs() > m.abs() { v } else { m });
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend(f16b(d));
                let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
                for j in 0..QK / 2 {
                    out.push(q(blk[j]) | (q(blk[j + QK / 2]) << 4));
                }
            }
        }
        GgmlType::Q4_1 => {
            for blk in x.chunks_exact(QK) {
                let min = blk.iter().copied().fold(f32::INFINITY, f32::min);
                let max = blk.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend(f16b(d));
                out.extend(f16b(min));
                let q = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 15) as u8;
                for j in 0..QK / 2 {
                    out.push(q(blk[j]) | (q(blk[j + QK / 2]) << 4));
                }
            }
        }
        GgmlType::Other(_) => return Err(bad(format!("cannot quantise to {ty}"))),
    }
    Ok(out)
}

/// Builds GGUF files (version 3): metadata and tensors, written with the
/// default alignment of 32 unless `general.alignment` is set.
#[derive(Debug, Default, Clone)]
pub struct GgufWriter {
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<(String, Vec<u64>, GgmlType, Vec<u8>)>,
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// A file with every metadata entry of `file` and none of its tensors:
    /// the configuration and tokenizer of a model without its weights (a
    /// few MB instead of a few hundred; e.g. to carry SmolLM2's
    /// architecture and vocabulary to a machine the weights cannot reach,
    /// for `Llama::random`, feature `tch`).
    ///
    /// ```
    /// use graft_lm::gguf::{GgufFile, GgufValue, GgufWriter, GgmlType};
    ///
    /// let mut w = GgufWriter::new();
    /// w.metadata("general.name", GgufValue::String("tiny".into()));
    /// w.tensor_f32("t", &[2], &[1.0, 2.0], GgmlType::F32)?;
    /// let full = GgufFile::parse(w.to_bytes()?)?;
    /// let meta = GgufFile::parse(GgufWriter::metadata_of(&full).to_bytes()?)?;
    /// assert_eq!(meta.metadata_str("general.name")?, "tiny");
    /// assert!(meta.tensors().is_empty());
    /// # Ok::<(), graft_lm::LmError>(())
    /// ```
    pub fn metadata_of(file: &GgufFile) -> Self {
        Self {
            metadata: file.metadata_entries().to_vec(),
            tensors: Vec::new(),
        }
    }

    /// Adds (or replaces) a metadata entry.
    pub fn metadata(&mut self, key: &str, value: GgufValue) -> &mut Self {
        self.metadata.retain(|(k, _)| k != key);
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Adds a tensor of row-major `shape` (outermost first), quantised from
    /// `values` to `ty`.
    ///
    /// # Errors
    ///
    /// [`LmError::Gguf`] if `values` does not match `shape` or cannot be
    /// quantised to `ty`.
    pub fn tensor_f32(
        &mut self,
        name: &str,
        shape: &[usize],
        values: &[f32],
        ty: GgmlType,
    ) -> Result<&mut Self> {
        let n: usize = shape.iter().product();
        if n != values.len() {
            return Err(LmError::Gguf {
                path: None,
                offset: 0,
                reason: format!(
                    "tensor {name}: shape {shape:?} holds {n} values, got {}",
                    values.len()
                ),
            });
        }
        let data = quantize(ty, values)?;
        let dims = shape.iter().rev().map(|&d| d as u64).collect();
        self.tensors.push((name.to_string(), dims, ty, data));
        Ok(self)
    }

    /// The file's bytes.
    ///
    /// # Errors
    ///
    /// [`LmError::Gguf`] if `general.alignment` is not a power of two or an
    /// array value is nested or mixes element types.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let alignment = match self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT as usize,
            Some((_, v)) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a as usize,
                _ => {
                    return Err(LmError::Gguf {
                        path: None,
                        offset: 0,
                        reason: "general.alignment must be a power of two".into(),
                    })
                }
            },
        };
        for (k, v) in &self.metadata {
            if let GgufValue::Array(items) = v {
                let code = items.first().map_or(0, GgufValue::type_code);
                if code == 9 || items.iter().any(|it| it.type_code() != code) {
                    return Err(LmError::Gguf {
                        path: None,
                        offset: 0,
                        reason: format!(
                            "metadata {k}: arrays must be flat and of one element type"
                        ),
                    });
                }
            }
        }
        let mut b = Vec::new();
        b.extend(MAGIC.to_le_bytes());
        b.extend(3u32.to_le_bytes());
        b.extend((self.tensors.len() as u64).to_le_bytes());
        b.extend((self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_string(&mut b, k);
            b.extend(v.type_code().to_le_bytes());
            put_value(&mut b, v);
        }
        let mut offset = 0usize;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for (name, dims, ty, data) in &self.tensors {
            put_string(&mut b, name);
            b.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                b.extend(d.to_le_bytes());
            }
            b.extend(ty.code().to_le_bytes());
            b.extend((offset as u64).to_le_bytes());
            offsets.push(offset);
            offset = (offset + data.len()).div_ceil(alignment) * alignment;
        }
        b.resize(b.len().div_ceil(alignment) * alignment, 0);
        let base = b.len();
        for ((_, _, _, data), off) in self.tensors.iter().zip(offsets) {
            b.resize(base + off, 0);
            b.extend(data);
        }
        Ok(b)
    }
}

fn put_string(b: &mut Vec<u8>, s: &str) {
    b.extend((s.len() as u64).to_le_bytes());
    b.extend(s.as_bytes());
}

fn put_value(b: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => b.push(*x),
        GgufValue::I8(x) => b.extend(x.to_le_bytes()),
        GgufValue::U16(x) => b.extend(x.to_le_bytes()),
        GgufValue::I16(x) => b.extend(x.to_le_bytes()),
        GgufValue::U32(x) => b.extend(x.to_le_bytes()),
        GgufValue::I32(x) => b.extend(x.to_le_bytes()),
        GgufValue::F32(x) => b.extend(x.to_le_bytes()),
        GgufValue::Bool(x) => b.push(u8::from(*x)),
        GgufValue::String(s) => put_string(b, s),
        GgufValue::Array(items) => {
            let elem = items.first().map_or(0, GgufValue::type_code);
            b.extend(elem.to_le_bytes());
            b.extend((items.len() as u64).to_le_bytes());
            for it in items {
                put_value(b, it);
            }
        }
        GgufValue::U64(x) => b.extend(x.to_le_bytes()),
        GgufValue::I64(x) => b.extend(x.to_le_bytes()),
        GgufValue::F64(x) => b.extend(x.to_le_bytes()),
    }
}
