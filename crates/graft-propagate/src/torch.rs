//! libtorch backend of LightGCN propagation (CPU or CUDA), differentiable.
//!
//! [`TchPropagator`] holds `Â` as a torch sparse tensor, COO (as the ELMRec
//! authors' code builds it) or CSR, on any device, and propagates a dense
//! `E0` with `torch.sparse.mm`. Gradients flow back to `E0`, so
//! [`GraphEmbedding`] can keep `E0` as a trainable parameter of a
//! [`tch::nn::VarStore`] and fine-tune it with the language model, or
//! freeze it.

use ndarray::{Array2, ArrayView2};
use sprs::CsMat;
use tch::{nn, Device, Kind, Tensor};

use crate::config::{LayerCombine, LightGcnConfig};
use crate::error::{PropagateError, Result};
use crate::lightgcn::{check_adjacency, check_embeddings, Propagator};

/// Storage format of the sparse adjacency tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SparseLayout {
    /// Coalesced COO (`torch.sparse_coo_tensor`), as in the ELMRec code.
    Coo,
    /// Compressed sparse rows (`torch.sparse_csr_tensor`).
    Csr,
}

impl SparseLayout {
    /// `"coo"` or `"csr"`.
    pub fn name(self) -> &'static str {
        match self {
            SparseLayout::Coo => "coo",
            SparseLayout::Csr => "csr",
        }
    }
}

/// LightGCN propagation with libtorch sparse matrix products.
///
/// ```
/// use graft_graph::BipartiteGraph;
/// use graft_propagate::{LayerCombine, SparseLayout, TchPropagator};
/// use graft_propagate::tch::{Device, Kind, Tensor};
///
/// let g = BipartiteGraph::from_edges(2, 2, [(0, 0), (1, 0), (1, 1)])?;
/// let prop = TchPropagator::new(&g.normalized()?, SparseLayout::Csr, Device::Cpu)?;
/// let e0 = Tensor::randn([4, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
/// let out = prop.forward(&e0, 3, &LayerCombine::Mean)?;
/// out.sum(Kind::Float).backward();
/// assert_eq!(e0.grad().size(), vec![4, 8]);
/// # Ok::<(), graft_propagate::PropagateError>(())
/// ```
#[derive(Debug)]
pub struct TchPropagator {
    adj: Tensor,
    layout: SparseLayout,
    device: Device,
    n: usize,
}

/// libtorch prints "Sparse CSR tensor support is in beta state ..." on
/// stderr the first time a process builds a sparse CSR tensor (a
/// `TORCH_WARN_ONCE`): a line in every run's output that says nothing about
/// the run. The first call builds a 1 x 1 CSR tensor with stderr muted
/// (libtorch then considers the warning given); later calls do nothing.
/// Nothing else is muted: if stderr cannot be redirected the warning is
/// simply printed.
fn silence_csr_beta_warning() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _muted = gag::Gag::stderr().ok();
        let one = |v: &[i64]| Tensor::f_from_slice(v);
        if let (Ok(crow), Ok(col), Ok(val)) =
            (one(&[0, 1]), one(&[0]), Tensor::f_from_slice(&[1f32]))
        {
            let _ = Tensor::f_sparse_csr_tensor_crow_col_value_size(
                &crow,
                &col,
                &val,
                [1, 1],
                (Kind::Float, Device::Cpu),
            );
        }
    });
}

impl TchPropagator {
    /// Uploads `adj` to `device` in the given layout.
    ///
    /// # Errors
    ///
    /// As [`check_adjacency`]; [`PropagateError::Tch`] if libtorch fails
    /// (e.g. CUDA requested on a machine without it).
    pub fn new(adj: &CsMat<f32>, layout: SparseLayout, device: Device) -> Result<Self> {
        let n = check_adjacency(adj)?;
        let csr_owned;
        let adj = if adj.is_csr() {
            adj
        } else {
            csr_owned = adj.to_csr();
            &csr_owned
        };
        let t = match layout {
            SparseLayout::Coo => graft_graph::Coo::from_csr(adj)?.to_tch(device)?,
            SparseLayout::Csr => {
                silence_csr_beta_warning();
                let n_i64 = to_i64(n)?;
                let crow: Vec<i64> = adj
                    .proper_indptr()
                    .iter()
                    .map(|&p| to_i64(p))
                    .collect::<Result<_>>()?;
                let col: Vec<i64> = adj
                    .indices()
                    .iter()
                    .map(|&c| to_i64(c))
                    .collect::<Result<_>>()?;
                Tensor::f_sparse_csr_tensor_crow_col_value_size(
                    &Tensor::f_from_slice(&crow)?.f_to(device)?,
                    &Tensor::f_from_slice(&col)?.f_to(device)?,
                    &Tensor::f_from_slice(adj.data())?.f_to(device)?,
                    [n_i64, n_i64],
                    (Kind::Float, device),
                )?
            }
        };
        Ok(Self {
            adj: t,
            layout,
            device,
            n,
        })
    }

    /// The sparse adjacency tensor.
    pub fn adjacency(&self) -> &Tensor {
        &self.adj
    }

    /// The storage layout.
    pub fn layout(&self) -> SparseLayout {
        self.layout
    }

    /// The device of the adjacency.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Propagates `e0` and combines the layers; differentiable in `e0`.
    ///
    /// # Shapes
    ///
    /// `e0`: `(n, d)` float on [`device`](Self::device); result `(n, d)`.
    ///
    /// # Errors
    ///
    /// [`PropagateError::DimMismatch`] for a wrong shape,
    /// [`PropagateError::NonFinite`] for NaN/infinite entries,
    /// [`PropagateError::Config`] for a wrong dtype/device or layer weights,
    /// [`PropagateError::Tch`] if libtorch fails.
    pub fn forward(&self, e0: &Tensor, layers: usize, combine: &LayerCombine) -> Result<Tensor> {
        let w = combine.weights(layers)?;
        self.check_tensor(e0)?;
        let mut cur = e0.shallow_clone();
        let mut acc = e0.f_mul_scalar(f64::from(w[0]))?;
        for &wl in &w[1..] {
            cur = self.adj.f_mm(&cur)?;
            acc = acc.f_add(&cur.f_mul_scalar(f64::from(wl))?)?;
        }
        Ok(acc)
    }

    fn check_tensor(&self, e0: &Tensor) -> Result<()> {
        let size = e0.size();
        if size.len() != 2 {
            return Err(PropagateError::DimMismatch {
                what: "E0 dimensions (must be a matrix)",
                expected: 2,
                got: size.len(),
            });
        }
        let rows = usize::try_from(size[0]).unwrap_or(0);
        if rows != self.n {
            return Err(PropagateError::DimMismatch {
                what: "E0 rows vs. adjacency nodes",
                expected: self.n,
                got: rows,
            });
        }
        if e0.kind() != Kind::Float {
            return Err(PropagateError::Config {
                field: "E0 dtype",
                reason: format!("expected Float (f32), got {:?}", e0.kind()),
            });
        }
        if e0.device() != self.device {
            return Err(PropagateError::Config {
                field: "E0 device",
                reason: format!("adjacency is on {:?}, E0 on {:?}", self.device, e0.device()),
            });
        }
        let finite = e0.f_isfinite()?;
        if !bool::try_from(finite.f_all()?)? {
            let bad = finite.f_logical_not()?.f_nonzero()?;
            let row = usize::try_from(bad.f_int64_value(&[0, 0])?).unwrap_or(0);
            let col = usize::try_from(bad.f_int64_value(&[0, 1])?).unwrap_or(0);
            let value = e0.f_double_value(&[row as i64, col as i64])? as f32;
            return Err(PropagateError::NonFinite {
                what: "E0",
                row,
                col,
                value,
            });
        }
        Ok(())
    }
}

impl Propagator for TchPropagator {
    fn name(&self) -> String {
        format!("tch-{}-{:?}", self.layout.name(), self.device).to_lowercase()
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
        combine.weights(layers)?;
        check_embeddings(self.n, e0)?;
        let (n, d) = e0.dim();
        if d == 0 {
            return Ok(Array2::zeros((n, 0)));
        }
        let data: Vec<f32> = e0.iter().copied().collect();
        let t = Tensor::f_from_slice(&data)?
            .f_view([to_i64(n)?, to_i64(d)?])?
            .f_to(self.device)?;
        let out = tch::no_grad(|| self.forward(&t, layers, combine))?;
        let v = Vec::<f32>::try_from(out.f_to(Device::Cpu)?.f_contiguous()?.f_view([-1])?)?;
        Array2::from_shape_vec((n, d), v).map_err(|e| PropagateError::Unsupported {
            reason: e.to_string(),
        })
    }
}

/// Propagates the `(n, d)` float CPU tensor `x` with any [`Propagator`]
/// (e.g. [`RustCsr`](crate::RustCsr)) outside autograd: the result is a new
/// tensor without history.
///
/// For propagations that need no gradient through them: a forward pass
/// under `no_grad`, or a gradient pushed back by propagating it (`Â` is
/// symmetric). On the CPU graft's CSR kernel is several times faster than
/// libtorch's sparse product (docs/benchmarks.md).
///
/// ```
/// use graft_graph::BipartiteGraph;
/// use graft_propagate::{propagate_tensor, LayerCombine, RustCsr};
/// use graft_propagate::tch::{Device, Kind, Tensor};
///
/// let g = BipartiteGraph::from_edges(2, 2, [(0, 0), (1, 0), (1, 1)])?;
/// let kernel = RustCsr::for_graph(&g)?.with_threads(1)?;
/// let e0 = Tensor::ones([4, 8], (Kind::Float, Device::Cpu));
/// let table = propagate_tensor(&kernel, &e0, 3, &LayerCombine::Mean)?;
/// assert_eq!(table.size(), vec![4, 8]);
/// # Ok::<(), graft_propagate::PropagateError>(())
/// ```
///
/// # Errors
///
/// [`PropagateError::DimMismatch`] unless `x` is a matrix;
/// [`PropagateError::Config`] unless it holds `f32` on the CPU;
/// [`PropagateError::Tch`] if libtorch cannot copy it out (e.g. a sparse
/// tensor); as [`Propagator::propagate`] otherwise (wrong row count, NaN or
/// infinity).
pub fn propagate_tensor(
    kernel: &dyn Propagator,
    x: &Tensor,
    layers: usize,
    combine: &LayerCombine,
) -> Result<Tensor> {
    let size = x.size();
    let &[rows, cols] = size.as_slice() else {
        return Err(PropagateError::DimMismatch {
            what: "tensor dimensions (must be a matrix)",
            expected: 2,
            got: size.len(),
        });
    };
    if x.kind() != Kind::Float || x.device() != Device::Cpu {
        return Err(PropagateError::Config {
            field: "tensor",
            reason: format!(
                "expected Float (f32) on the CPU, got {:?} on {:?}",
                x.kind(),
                x.device()
            ),
        });
    }
    let (n, d) = (
        usize::try_from(rows).unwrap_or(0),
        usize::try_from(cols).unwrap_or(0),
    );
    let mut buf = vec![0f32; n * d];
    tch::no_grad(|| x.f_contiguous())?.f_copy_data(&mut buf, n * d)?;
    let view = ArrayView2::from_shape((n, d), &buf).map_err(|e| PropagateError::Unsupported {
        reason: e.to_string(),
    })?;
    let out = kernel.propagate(view, layers, combine)?;
    let out = out.as_standard_layout();
    let flat = out.as_slice().ok_or_else(|| PropagateError::Unsupported {
        reason: "propagated matrix not contiguous".into(),
    })?;
    Ok(Tensor::f_from_slice(flat)?.f_view([rows, cols])?)
}

/// ELMRec's graph-aware embedding table: `E0` as a parameter of a
/// [`nn::VarStore`], propagated on every [`forward`](Self::forward).
///
/// `E0` is initialised from [`LightGcnConfig::initial_embeddings`] (the same
/// seeded values as every other backend), stored under the name `"e0"` of
/// the given path, trainable by default (the ELMRec code fine-tunes it with
/// the language model); [`set_trainable(false)`](Self::set_trainable)
/// freezes it.
///
/// ```
/// use graft_graph::BipartiteGraph;
/// use graft_propagate::{GraphEmbedding, LightGcnConfig, SparseLayout};
/// use graft_propagate::tch::{nn, Device, Kind};
///
/// let g = BipartiteGraph::from_edges(2, 2, [(0, 0), (1, 1)])?;
/// let vs = nn::VarStore::new(Device::Cpu);
/// let cfg = LightGcnConfig { dim: 4, layers: 2, ..LightGcnConfig::default() };
/// let emb = GraphEmbedding::new(&vs.root().sub("graph"), &g.normalized()?, SparseLayout::Coo, &cfg)?;
/// let table = emb.forward()?; // (4, 4): users then items
/// table.sum(Kind::Float).backward();
/// assert!(emb.e0().grad().defined());
/// # Ok::<(), graft_propagate::PropagateError>(())
/// ```
#[derive(Debug)]
pub struct GraphEmbedding {
    e0: Tensor,
    prop: TchPropagator,
    layers: usize,
    combine: LayerCombine,
}

impl GraphEmbedding {
    /// Creates `E0` under `path` and uploads `adj` to the path's device.
    ///
    /// # Errors
    ///
    /// As [`LightGcnConfig::validate`] and [`TchPropagator::new`].
    pub fn new(
        path: &nn::Path<'_>,
        adj: &CsMat<f32>,
        layout: SparseLayout,
        cfg: &LightGcnConfig,
    ) -> Result<Self> {
        let prop = TchPropagator::new(adj, layout, path.device())?;
        let init = cfg.initial_embeddings(prop.n)?;
        let t = Tensor::f_from_slice(init.as_slice().unwrap_or(&[]))?
            .f_view([to_i64(prop.n)?, to_i64(cfg.dim)?])?;
        let e0 = path.var_copy("e0", &t);
        Ok(Self {
            e0,
            prop,
            layers: cfg.layers,
            combine: cfg.combine.clone(),
        })
    }

    /// The propagated table `(n_users + n_items, dim)`, users first.
    ///
    /// # Errors
    ///
    /// As [`TchPropagator::forward`] (e.g. `E0` became NaN in training).
    pub fn forward(&self) -> Result<Tensor> {
        self.prop.forward(&self.e0, self.layers, &self.combine)
    }

    /// The parameter `E0`.
    pub fn e0(&self) -> &Tensor {
        &self.e0
    }

    /// The propagator.
    pub fn propagator(&self) -> &TchPropagator {
        &self.prop
    }

    /// Trains (`true`, the default) or freezes `E0`.
    pub fn set_trainable(&mut self, trainable: bool) {
        self.e0 = self.e0.set_requires_grad(trainable);
    }
}

fn to_i64(x: usize) -> Result<i64> {
    i64::try_from(x).map_err(|_| PropagateError::Unsupported {
        reason: format!("{x} does not fit in i64"),
    })
}
