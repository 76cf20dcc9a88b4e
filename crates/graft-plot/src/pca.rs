//! Deterministic two-component PCA.

use ndarray::{s, Array1, Array2, ArrayView2, Axis};

use crate::error::{PlotError, Result};

/// Rows per block when streaming over the data matrix (bounds the temporary
/// centred copy to `BLOCK_ROWS x d` `f64`s).
const BLOCK_ROWS: usize = 2048;
/// Up to this dimension [`PcaMethod::Auto`] uses the exact Jacobi
/// eigen-decomposition of the covariance matrix.
const AUTO_EXACT_MAX_DIM: usize = 64;
/// Up to this dimension the covariance matrix is formed explicitly; above it
/// subspace iteration applies `Xcᵀ Xc` implicitly, block by block.
const EXPLICIT_COV_MAX_DIM: usize = 2048;
/// Block size of the subspace iteration (top 2 wanted; the extra vectors
/// speed up convergence when the 2nd and 3rd eigenvalues are close).
const SUBSPACE_BLOCK: usize = 10;
/// Iteration cap of the subspace iteration.
const SUBSPACE_MAX_ITER: usize = 1000;
/// Relative residual `‖C v − θ v‖ / θ₁` at which a Ritz pair is accepted.
const SUBSPACE_TOL: f64 = 1e-9;

/// How [`pca_2d_with`] finds the top two eigenvectors of the covariance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PcaMethod {
    /// [`PcaMethod::Jacobi`] for `d <= 64`, [`PcaMethod::Subspace`] above.
    #[default]
    Auto,
    /// Full eigen-decomposition of the `d x d` covariance by cyclic Jacobi
    /// rotations: exact, `O(n d² + d³)`.
    Jacobi,
    /// Block power (subspace) iteration with Rayleigh–Ritz, started from a
    /// fixed pseudo-random block: `O(n d²)` once plus `O(d² k)` per
    /// iteration (`O(n d k)` per iteration for `d > 2048`, where the
    /// covariance is never formed).
    Subspace,
}

/// Top-2 principal components of the rows of `x`.
///
/// The rows are centred (column means subtracted, in `f64`), the top two
/// eigenvectors `v₁, v₂` of the sample covariance `Xcᵀ Xc / (n − 1)` are
/// found, and each row is projected: row `r` of the result is
/// `(xc_r · v₁, xc_r · v₂)`. Each eigenvector's sign is fixed so that its
/// largest-|loading| coordinate (the first one on ties) is positive, so the
/// picture does not flip between runs or machines.
///
/// The explained-variance ratios are `λᵢ / trace(C)`; they are in `[0, 1]`
/// and sum to at most 1. Degenerate cases are not errors: with `d == 1` the
/// second column is zero (ratio 0), and when every row is identical (zero
/// total variance) the projection is all zeros with ratios `[0, 0]`.
///
/// Deterministic: same input, same output (no randomness, serial sums).
///
/// # Shapes
/// `x` is `n x d` (one point per row); the result is `n x 2`.
///
/// # Errors
/// [`PlotError::Empty`] if `n == 0` or `d == 0`, [`PlotError::Shape`] if
/// `n < 2`, [`PlotError::NonFinite`] for the first NaN or infinite entry.
///
/// # Complexity
/// See [`PcaMethod`]; this uses [`PcaMethod::Auto`].
///
/// # Example
/// ```
/// use ndarray::array;
/// let x = array![[0.0f32, 0.0], [2.0, 0.1], [4.0, -0.1], [6.0, 0.0]];
/// let (proj, ratio) = graft_plot::pca_2d(x.view())?;
/// assert_eq!(proj.dim(), (4, 2));
/// assert!(ratio[0] > 0.99 && ratio[0] + ratio[1] <= 1.0 + 1e-12);
/// # Ok::<(), graft_plot::PlotError>(())
/// ```
pub fn pca_2d(x: ArrayView2<'_, f32>) -> Result<(Array2<f32>, [f64; 2])> {
    pca_2d_with(x, PcaMethod::Auto)
}

/// [`pca_2d`] with an explicit eigen-solver choice.
///
/// # Errors
/// As [`pca_2d`].
pub fn pca_2d_with(x: ArrayView2<'_, f32>, method: PcaMethod) -> Result<(Array2<f32>, [f64; 2])> {
    let (n, d) = x.dim();
    if n == 0 || d == 0 {
        return Err(PlotError::Empty {
            what: format!("pca input ({n} x {d})"),
        });
    }
    if n < 2 {
        return Err(PlotError::Shape(format!(
            "pca needs at least 2 rows, got {n}"
        )));
    }
    for ((row, col), &value) in x.indexed_iter() {
        if !value.is_finite() {
            return Err(PlotError::NonFinite {
                what: "pca input",
                row,
                col,
                value,
            });
        }
    }

    let mean = column_means(x);
    let denom = (n - 1) as f64;
    let total: f64 = x
        .rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .zip(mean.iter())
                .map(|(&v, &m)| {
                    let c = f64::from(v) - m;
                    c * c
                })
                .sum::<f64>()
        })
        .sum::<f64>()
        / denom;
    if total <= 0.0 || !total.is_finite() {
        return Ok((Array2::zeros((n, 2)), [0.0, 0.0]));
    }

    let exact = match method {
        PcaMethod::Jacobi => true,
        PcaMethod::Subspace => false,
        PcaMethod::Auto => d <= AUTO_EXACT_MAX_DIM,
    };
    let (lambda, mut vecs) = if exact {
        let cov = covariance(x, &mean, denom);
        let (vals, v) = jacobi_eigh(cov);
        top2_columns(&vals, &v)
    } else {
        let op = if d <= EXPLICIT_COV_MAX_DIM {
            Operator::Explicit(covariance(x, &mean, denom))
        } else {
            Operator::Implicit {
                x,
                mean: &mean,
                denom,
            }
        };
        subspace_top2(&op, d)
    };
    for v in vecs.columns_mut() {
        fix_sign(v);
    }

    let mut proj = Array2::<f32>::zeros((n, 2));
    for start in (0..n).step_by(BLOCK_ROWS) {
        let end = (start + BLOCK_ROWS).min(n);
        let block = centred_block(x, &mean, start, end);
        let p = block.dot(&vecs);
        proj.slice_mut(s![start..end, ..])
            .assign(&p.mapv(|v| v as f32));
    }
    let ratio = [
        (lambda[0] / total).clamp(0.0, 1.0),
        (lambda[1] / total).clamp(0.0, 1.0),
    ];
    Ok((proj, ratio))
}

fn column_means(x: ArrayView2<'_, f32>) -> Array1<f64> {
    let (n, d) = x.dim();
    let mut mean = Array1::<f64>::zeros(d);
    for row in x.rows() {
        for (m, &v) in mean.iter_mut().zip(row.iter()) {
            *m += f64::from(v);
        }
    }
    mean /= n as f64;
    mean
}

/// Rows `start..end` of `x`, centred, as `f64`.
fn centred_block(
    x: ArrayView2<'_, f32>,
    mean: &Array1<f64>,
    start: usize,
    end: usize,
) -> Array2<f64> {
    let mut b = x.slice(s![start..end, ..]).mapv(f64::from);
    b -= &mean.view().insert_axis(Axis(0));
    b
}

/// Sample covariance `Xcᵀ Xc / denom`, accumulated block by block.
fn covariance(x: ArrayView2<'_, f32>, mean: &Array1<f64>, denom: f64) -> Array2<f64> {
    let (n, d) = x.dim();
    let mut cov = Array2::<f64>::zeros((d, d));
    for start in (0..n).step_by(BLOCK_ROWS) {
        let end = (start + BLOCK_ROWS).min(n);
        let b = centred_block(x, mean, start, end);
        cov += &b.t().dot(&b);
    }
    cov /= denom;
    symmetrize(&mut cov);
    cov
}

fn symmetrize(a: &mut Array2<f64>) {
    let k = a.nrows();
    for i in 0..k {
        for j in (i + 1)..k {
            let m = 0.5 * (a[[i, j]] + a[[j, i]]);
            a[[i, j]] = m;
            a[[j, i]] = m;
        }
    }
}

/// The covariance as a linear operator.
enum Operator<'a, 'x> {
    Explicit(Array2<f64>),
    Implicit {
        x: ArrayView2<'x, f32>,
        mean: &'a Array1<f64>,
        denom: f64,
    },
}

impl Operator<'_, '_> {
    fn apply(&self, q: &Array2<f64>) -> Array2<f64> {
        match self {
            Self::Explicit(c) => c.dot(q),
            Self::Implicit { x, mean, denom } => {
                let n = x.nrows();
                let mut z = Array2::<f64>::zeros(q.raw_dim());
                for start in (0..n).step_by(BLOCK_ROWS) {
                    let end = (start + BLOCK_ROWS).min(n);
                    let b = centred_block(*x, mean, start, end);
                    z += &b.t().dot(&b.dot(q));
                }
                z /= *denom;
                z
            }
        }
    }
}

/// Eigenvalues (descending) and matching eigenvectors (columns) of a
/// symmetric matrix by cyclic Jacobi rotations.
fn jacobi_eigh(mut a: Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut v = Array2::<f64>::eye(n);
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    if scale > 0.0 {
        for _sweep in 0..100 {
            let mut off = 0.0;
            for p in 0..n {
                for q in (p + 1)..n {
                    off += a[[p, q]] * a[[p, q]];
                }
            }
            if off.sqrt() <= 1e-15 * scale {
                break;
            }
            for p in 0..n {
                for q in (p + 1)..n {
                    let apq = a[[p, q]];
                    if apq.abs() <= f64::MIN_POSITIVE {
                        continue;
                    }
                    let app = a[[p, p]];
                    let aqq = a[[q, q]];
                    let theta = (aqq - app) / (2.0 * apq);
                    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                    let t = if theta == 0.0 { 1.0 } else { t };
                    let c = 1.0 / (t * t + 1.0).sqrt();
                    let s = t * c;
                    for k in 0..n {
                        let akp = a[[k, p]];
                        let akq = a[[k, q]];
                        a[[k, p]] = c * akp - s * akq;
                        a[[k, q]] = s * akp + c * akq;
                    }
                    for k in 0..n {
                        let apk = a[[p, k]];
                        let aqk = a[[q, k]];
                        a[[p, k]] = c * apk - s * aqk;
                        a[[q, k]] = s * apk + c * aqk;
                    }
                    a[[p, q]] = 0.0;
                    a[[q, p]] = 0.0;
                    for k in 0..n {
                        let vkp = v[[k, p]];
                        let vkq = v[[k, q]];
                        v[[k, p]] = c * vkp - s * vkq;
                        v[[k, q]] = s * vkp + c * vkq;
                    }
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    // Stable sort: equal eigenvalues keep index order (deterministic).
    order.sort_by(|&i, &j| a[[j, j]].total_cmp(&a[[i, i]]));
    let vals: Vec<f64> = order.iter().map(|&i| a[[i, i]]).collect();
    let mut vecs = Array2::<f64>::zeros((n, n));
    for (dst, &src) in order.iter().enumerate() {
        vecs.column_mut(dst).assign(&v.column(src));
    }
    (vals, vecs)
}

/// The first two eigenpairs (eigenvalues clamped at 0), padding with a zero
/// vector when `d == 1`.
fn top2_columns(vals: &[f64], vecs: &Array2<f64>) -> ([f64; 2], Array2<f64>) {
    let d = vecs.nrows();
    let mut out = Array2::<f64>::zeros((d, 2));
    let mut lambda = [0.0; 2];
    for i in 0..2.min(vals.len()).min(vecs.ncols()) {
        out.column_mut(i).assign(&vecs.column(i));
        lambda[i] = vals[i].max(0.0);
    }
    (lambda, out)
}

/// Flip `v` so that its largest-|loading| coordinate is positive.
fn fix_sign(mut v: ndarray::ArrayViewMut1<'_, f64>) {
    let mut best = 0usize;
    let mut best_abs = -1.0f64;
    for (i, &x) in v.iter().enumerate() {
        if x.abs() > best_abs {
            best = i;
            best_abs = x.abs();
        }
    }
    if v.get(best).copied().unwrap_or(0.0) < 0.0 {
        v.mapv_inplace(|x| -x);
    }
}

/// Deterministic SplitMix64 stream in `[-1, 1)`, for the starting block.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// Orthonormalise the columns of `q` in place (modified Gram–Schmidt, two
/// passes). A column that collapses (rank deficiency) is replaced by a fresh
/// pseudo-random vector and orthogonalised again.
fn orthonormalize(q: &mut Array2<f64>, rng: &mut SplitMix) {
    let (d, k) = q.dim();
    for j in 0..k {
        let original = q.column(j).dot(&q.column(j)).sqrt();
        for attempt in 0..4 {
            for _pass in 0..2 {
                for i in 0..j {
                    let proj = q.column(i).dot(&q.column(j));
                    let qi = q.column(i).to_owned();
                    q.column_mut(j).scaled_add(-proj, &qi);
                }
            }
            let norm = q.column(j).dot(&q.column(j)).sqrt();
            let reference = if attempt == 0 { original } else { 1.0 };
            if norm > 1e-10 * reference && norm > 0.0 {
                q.column_mut(j).mapv_inplace(|x| x / norm);
                break;
            }
            for r in 0..d {
                q[[r, j]] = rng.next_f64();
            }
        }
    }
}

/// Top-2 eigenpairs of the operator by subspace iteration + Rayleigh–Ritz.
fn subspace_top2(op: &Operator<'_, '_>, d: usize) -> ([f64; 2], Array2<f64>) {
    let k = SUBSPACE_BLOCK.min(d);
    let mut rng = SplitMix(0x6772_6166_742d_7063); // "graft-pc"
    let mut q = Array2::<f64>::zeros((d, k));
    for x in q.iter_mut() {
        *x = rng.next_f64();
    }
    orthonormalize(&mut q, &mut rng);

    let mut best = ([0.0; 2], Array2::<f64>::zeros((d, 2)));
    for _it in 0..SUBSPACE_MAX_ITER {
        let z = op.apply(&q);
        let mut b = q.t().dot(&z);
        symmetrize(&mut b);
        let (theta, w) = jacobi_eigh(b);
        let v = q.dot(&w);
        let zw = z.dot(&w);
        let theta0 = theta.first().copied().unwrap_or(0.0).max(0.0);
        let mut converged = true;
        for (i, &t) in theta.iter().enumerate().take(2) {
            let mut r = zw.column(i).to_owned();
            r.scaled_add(-t, &v.column(i));
            let res = r.dot(&r).sqrt();
            if res > SUBSPACE_TOL * theta0 {
                converged = false;
            }
        }
        best = top2_columns(&theta, &v);
        if converged || theta0 == 0.0 {
            break;
        }
        q = zw;
        orthonormalize(&mut q, &mut rng);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises() {
        let a = ndarray::array![[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 1.0]];
        let (vals, v) = jacobi_eigh(a.clone());
        for (i, &lambda) in vals.iter().enumerate() {
            let av = a.dot(&v.column(i));
            let lv = &v.column(i) * lambda;
            let err: f64 = (&av - &lv).iter().map(|x| x.abs()).sum();
            assert!(err < 1e-10, "eigenpair {i}: err {err}");
        }
        assert!(vals[0] >= vals[1] && vals[1] >= vals[2]);
        let trace: f64 = vals.iter().sum();
        assert!((trace - 8.0).abs() < 1e-10);
    }
}
