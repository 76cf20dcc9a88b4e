//! Coordinate-format export of a square sparse matrix, for libtorch.

use ndarray::Array2;
use sprs::CsMat;

use crate::error::{GraphError, Result};

/// A square sparse matrix in coordinate format with `i64` indices, the
/// layout `torch.sparse_coo_tensor` takes (`indices` = `[rows; cols]`).
///
/// [`Coo::from_csr`] (and [`BipartiteGraph::normalized_coo`](crate::BipartiteGraph::normalized_coo))
/// produce entries sorted row-major (by row, then column) without duplicates,
/// i.e. already coalesced in torch's sense.
///
/// # Shapes
///
/// `rows`, `cols` and `values` all have length `nnz`; the matrix is `n x n`.
#[derive(Debug, Clone, PartialEq)]
pub struct Coo {
    /// Row index of every entry.
    pub rows: Vec<i64>,
    /// Column index of every entry.
    pub cols: Vec<i64>,
    /// Value of every entry.
    pub values: Vec<f32>,
    /// Dimension of the square matrix.
    pub n: usize,
}

impl Coo {
    /// Converts a square CSR (or CSC) matrix; the entries come out row-major
    /// sorted when the input has sorted indices (sprs guarantees that).
    ///
    /// # Errors
    ///
    /// [`GraphError::NotSquare`] if the matrix is not square,
    /// [`GraphError::TooLarge`] if its dimension does not fit an `i64`.
    ///
    /// # Complexity
    ///
    /// `O(n + nnz)` for CSR input; CSC input is first converted (`O(nnz)`
    /// extra memory).
    pub fn from_csr(m: &CsMat<f32>) -> Result<Self> {
        let (nr, nc) = m.shape();
        if nr != nc {
            return Err(GraphError::NotSquare { rows: nr, cols: nc });
        }
        let n = nr;
        check_i64(n)?;
        let owned;
        let m = if m.is_csr() {
            m
        } else {
            owned = m.to_csr();
            &owned
        };
        let nnz = m.nnz();
        let mut rows = Vec::with_capacity(nnz);
        let mut cols = Vec::with_capacity(nnz);
        let mut values = Vec::with_capacity(nnz);
        for (r, row) in m.outer_iterator().enumerate() {
            for (c, &v) in row.iter() {
                rows.push(r as i64);
                cols.push(c as i64);
                values.push(v);
            }
        }
        Ok(Self {
            rows,
            cols,
            values,
            n,
        })
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// Checks that the three arrays have one length and every index lies in
    /// `0..n`.
    ///
    /// # Errors
    ///
    /// [`GraphError::CooLength`], [`GraphError::CooIndexOutOfRange`] or
    /// [`GraphError::TooLarge`] (if `n` does not fit an `i64`).
    ///
    /// # Complexity
    ///
    /// `O(nnz)`.
    pub fn validate(&self) -> Result<()> {
        let (rows, cols, values) = (self.rows.len(), self.cols.len(), self.values.len());
        if rows != values || cols != values {
            return Err(GraphError::CooLength { rows, cols, values });
        }
        let n = check_i64(self.n)?;
        for (position, (&row, &col)) in self.rows.iter().zip(&self.cols).enumerate() {
            if !(0..n).contains(&row) || !(0..n).contains(&col) {
                return Err(GraphError::CooIndexOutOfRange {
                    position,
                    row,
                    col,
                    n: self.n,
                });
            }
        }
        Ok(())
    }

    /// Whether the entries are strictly increasing in `(row, col)` order
    /// (sorted row-major, no duplicates), i.e. coalesced in torch's sense.
    ///
    /// # Complexity
    ///
    /// `O(nnz)`.
    pub fn is_sorted_unique(&self) -> bool {
        let pairs = || self.rows.iter().zip(&self.cols);
        pairs().zip(pairs().skip(1)).all(|(a, b)| a < b)
    }

    /// The `[2, nnz]` index matrix flattened row-major: all row indices,
    /// then all column indices (what `torch.sparse_coo_tensor` expects after
    /// a `view(2, nnz)`).
    pub fn indices_flat(&self) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.rows.len() + self.cols.len());
        out.extend_from_slice(&self.rows);
        out.extend_from_slice(&self.cols);
        out
    }

    /// Dense `n x n` copy, summing duplicate entries (reference for tests on
    /// small matrices).
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    ///
    /// # Complexity
    ///
    /// `O(n^2 + nnz)` memory and time.
    pub fn to_dense(&self) -> Result<Array2<f32>> {
        self.validate()?;
        let mut out = Array2::zeros((self.n, self.n));
        for ((&r, &c), &v) in self.rows.iter().zip(&self.cols).zip(&self.values) {
            out[[r as usize, c as usize]] += v;
        }
        Ok(out)
    }

    /// Builds a coalesced `n x n` `f32` sparse COO tensor on `device`.
    ///
    /// Sorted unique input (what [`Coo::from_csr`] produces) is passed to
    /// libtorch as already coalesced, so no sort happens; otherwise the
    /// tensor is coalesced (duplicates summed) by libtorch.
    ///
    /// # Shapes
    ///
    /// `[n, n]`, layout `torch.sparse_coo`, `nnz` stored entries.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate); [`GraphError::Tch`] if libtorch fails
    /// (e.g. an unavailable device).
    ///
    /// # Complexity
    ///
    /// `O(nnz)` copies (host, then device); `O(nnz log nnz)` on the device
    /// for unsorted input.
    #[cfg(feature = "tch")]
    pub fn to_tch(&self, device: tch::Device) -> Result<tch::Tensor> {
        use tch::{Kind, Tensor};
        self.validate()?;
        let nnz = i64::try_from(self.nnz()).map_err(|_| GraphError::TooLarge {
            what: "nnz",
            got: self.nnz() as u128,
            max: i64::MAX as u128,
        })?;
        let n = check_i64(self.n)?;
        let indices = Tensor::f_from_slice(&self.indices_flat())?
            .f_view([2, nnz])?
            .f_to(device)?;
        let values = Tensor::f_from_slice(&self.values)?.f_to(device)?;
        let sorted = self.is_sorted_unique();
        let t = Tensor::f_sparse_coo_tensor_indices_size(
            &indices,
            &values,
            [n, n],
            (Kind::Float, device),
            sorted,
        )?;
        if sorted {
            Ok(t)
        } else {
            Ok(t.f_coalesce()?)
        }
    }
}

fn check_i64(n: usize) -> Result<i64> {
    i64::try_from(n).map_err(|_| GraphError::TooLarge {
        what: "matrix dimension",
        got: n as u128,
        max: i64::MAX as u128,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn validate_catches_bad_input() {
        let c = Coo {
            rows: vec![0, 1],
            cols: vec![1],
            values: vec![1.0, 2.0],
            n: 2,
        };
        assert!(matches!(
            c.validate(),
            Err(GraphError::CooLength {
                rows: 2,
                cols: 1,
                values: 2
            })
        ));
        let c = Coo {
            rows: vec![0, 2],
            cols: vec![1, 0],
            values: vec![1.0, 2.0],
            n: 2,
        };
        assert!(matches!(
            c.validate(),
            Err(GraphError::CooIndexOutOfRange {
                position: 1,
                row: 2,
                col: 0,
                n: 2
            })
        ));
        let c = Coo {
            rows: vec![0, -1],
            cols: vec![1, 0],
            values: vec![1.0, 2.0],
            n: 2,
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn sortedness() {
        let mut c = Coo {
            rows: vec![0, 0, 1],
            cols: vec![0, 1, 0],
            values: vec![1.0, 2.0, 3.0],
            n: 2,
        };
        assert!(c.is_sorted_unique());
        c.cols[1] = 0;
        assert!(!c.is_sorted_unique());
        assert_eq!(c.to_dense().unwrap()[[0, 0]], 3.0);
        assert_eq!(c.indices_flat(), vec![0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn from_csr_rejects_non_square() {
        let m = CsMat::<f32>::zero((2, 3));
        assert!(Coo::from_csr(&m).is_err());
    }

    #[test]
    fn from_csc_is_row_major() {
        let m = CsMat::new_csc((2, 2), vec![0, 2, 3], vec![0, 1, 0], vec![1.0f32, 2.0, 3.0]);
        let c = Coo::from_csr(&m).unwrap();
        assert_eq!(c.rows, vec![0, 0, 1]);
        assert_eq!(c.cols, vec![0, 1, 0]);
        assert_eq!(c.values, vec![1.0, 3.0, 2.0]);
    }
}
