//! Exchange of arrays with the Python reference scripts, as safetensors.
//!
//! The equivalence tests and the comparison command hand graphs and
//! embeddings to PyTorch and read its results back. The format is plain
//! [safetensors](https://huggingface.co/docs/safetensors) (little-endian,
//! `F32`, `F64` and `I64`), readable by `safetensors.torch.load_file` or by the
//! dependency-free reader in `python/st_io.py`.
//!
//! ```
//! use graft_propagate::exchange::{read_safetensors, write_safetensors, NamedArray};
//!
//! let dir = std::env::temp_dir().join(format!("graft-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("x.safetensors");
//! let arrays = vec![
//!     NamedArray::f32("e0", vec![2, 2], vec![1.0, 2.0, 3.0, 4.0])?,
//!     NamedArray::i64("edges", vec![1, 2], vec![0, 1])?,
//! ];
//! write_safetensors(&path, &arrays)?;
//! assert_eq!(read_safetensors(&path)?, arrays);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), graft_propagate::PropagateError>(())
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use graft_graph::BipartiteGraph;
use ndarray::Array2;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{PropagateError, Result};

/// Payload of a [`NamedArray`].
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
    /// 64-bit signed integers (indices).
    I64(Vec<i64>),
}

impl ArrayData {
    fn len(&self) -> usize {
        match self {
            ArrayData::F32(v) => v.len(),
            ArrayData::F64(v) => v.len(),
            ArrayData::I64(v) => v.len(),
        }
    }
}

/// A named, shaped, row-major array.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedArray {
    /// Tensor name in the file.
    pub name: String,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: ArrayData,
}

impl NamedArray {
    /// An `F32` array; errors if `shape` does not match `data.len()`.
    pub fn f32(name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        Self::new(name.into(), shape, ArrayData::F32(data))
    }

    /// An `I64` array; errors if `shape` does not match `data.len()`.
    pub fn i64(name: impl Into<String>, shape: Vec<usize>, data: Vec<i64>) -> Result<Self> {
        Self::new(name.into(), shape, ArrayData::I64(data))
    }

    /// A 2-D `F32` array from an ndarray matrix.
    pub fn from_array2(name: impl Into<String>, a: &Array2<f32>) -> Result<Self> {
        let (r, c) = a.dim();
        Self::f32(name, vec![r, c], a.iter().copied().collect())
    }

    fn new(name: String, shape: Vec<usize>, data: ArrayData) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(PropagateError::DimMismatch {
                what: "array shape product vs. data length",
                expected: n,
                got: data.len(),
            });
        }
        Ok(Self { name, shape, data })
    }

    /// The values of a 2-D `F32` or `F64` array as an `f64` matrix.
    ///
    /// # Errors
    ///
    /// [`PropagateError::Config`] if the array is not a 2-D float array.
    pub fn to_array2(&self) -> Result<Array2<f64>> {
        let v: Vec<f64> = match &self.data {
            ArrayData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::F64(v) => v.clone(),
            ArrayData::I64(_) => Vec::new(),
        };
        let (false, [r, c]) = (
            matches!(self.data, ArrayData::I64(_)),
            self.shape.as_slice(),
        ) else {
            return Err(PropagateError::Config {
                field: "array",
                reason: format!("{} is not a 2-D float array", self.name),
            });
        };
        Array2::from_shape_vec((*r, *c), v).map_err(|e| PropagateError::Config {
            field: "array",
            reason: e.to_string(),
        })
    }
}

/// Writes `arrays` to `path` atomically (a temporary file in the same
/// folder, then a rename).
///
/// # Errors
///
/// [`PropagateError::Io`] on file errors, [`PropagateError::Exchange`] if
/// serialisation fails (e.g. duplicate names).
pub fn write_safetensors(path: &Path, arrays: &[NamedArray]) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>)> = arrays
        .iter()
        .map(|a| {
            let b = match &a.data {
                ArrayData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ArrayData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ArrayData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            };
            (a.name.clone(), b)
        })
        .collect();
    let exchange_err = |reason: String| PropagateError::Exchange {
        path: path.to_path_buf(),
        reason,
    };
    let mut views = Vec::with_capacity(arrays.len());
    for (a, (name, b)) in arrays.iter().zip(&bytes) {
        let dtype = match a.data {
            ArrayData::F32(_) => Dtype::F32,
            ArrayData::F64(_) => Dtype::F64,
            ArrayData::I64(_) => Dtype::I64,
        };
        let view =
            TensorView::new(dtype, a.shape.clone(), b).map_err(|e| exchange_err(e.to_string()))?;
        views.push((name.clone(), view));
    }
    let mut names: Vec<&str> = views.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(exchange_err(format!("duplicate tensor name {}", w[0])));
    }
    let data = safetensors::serialize(views, None).map_err(|e| exchange_err(e.to_string()))?;
    let io = |source| PropagateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&data).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads every `F32`, `F64` and `I64` tensor of a safetensors file, sorted by name.
///
/// # Errors
///
/// [`PropagateError::Io`] if the file cannot be read,
/// [`PropagateError::Exchange`] if it is not valid safetensors or holds
/// another dtype.
pub fn read_safetensors(path: &Path) -> Result<Vec<NamedArray>> {
    let bytes = std::fs::read(path).map_err(|source| PropagateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let exchange_err = |reason: String| PropagateError::Exchange {
        path: path.to_path_buf(),
        reason,
    };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| exchange_err(e.to_string()))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data = match view.dtype() {
            Dtype::F32 => ArrayData::F32(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::F64 => ArrayData::F64(
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            Dtype::I64 => ArrayData::I64(
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            other => {
                return Err(exchange_err(format!(
                    "tensor {name}: unsupported dtype {other:?}"
                )))
            }
        };
        out.push(NamedArray::new(name, view.shape().to_vec(), data)?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// [`read_safetensors`] as a map from name to array.
///
/// # Errors
///
/// As [`read_safetensors`].
pub fn read_safetensors_map(path: &Path) -> Result<HashMap<String, NamedArray>> {
    Ok(read_safetensors(path)?
        .into_iter()
        .map(|a| (a.name.clone(), a))
        .collect())
}

/// Writes the input of `python/lightgcn_reference.py`: `edges` (`I64`,
/// `(E, 2)`, distinct `(user, item)` training pairs), `sizes` (`I64`,
/// `[n_users, n_items]`) and `e0` (`F32`, `(n_users + n_items, d)`).
///
/// # Errors
///
/// [`PropagateError::DimMismatch`] if `e0` does not have one row per node;
/// as [`write_safetensors`].
pub fn write_propagation_input(
    path: &Path,
    graph: &BipartiteGraph,
    e0: &Array2<f32>,
) -> Result<()> {
    if e0.nrows() != graph.n_nodes() {
        return Err(PropagateError::DimMismatch {
            what: "E0 rows vs. graph nodes",
            expected: graph.n_nodes(),
            got: e0.nrows(),
        });
    }
    let mut edges = Vec::with_capacity(2 * graph.n_edges());
    for (u, items) in graph.interactions().outer_iterator().enumerate() {
        for (i, _) in items.iter() {
            edges.extend([u as i64, i as i64]);
        }
    }
    let n_edges = edges.len() / 2;
    write_safetensors(
        path,
        &[
            NamedArray::i64("edges", vec![n_edges, 2], edges)?,
            NamedArray::i64(
                "sizes",
                vec![2],
                vec![graph.n_users() as i64, graph.n_items() as i64],
            )?,
            NamedArray::from_array2("e0", e0)?,
        ],
    )
}
