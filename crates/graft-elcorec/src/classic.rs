//! Classic CTR baselines on the GAT's fields: logistic regression and a
//! factorization machine (Rendle 2010) over one-hot user id, item id,
//! profile codes and the item's feature code, plus two numeric history
//! features (mean rating and liked fraction of the `k_gat` most recent
//! items, both scaled to [0, 1]).

use graft_data::CtrSample;
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use crate::baseline::CtrBaseline;
use crate::config::ClassicConfig;
use crate::data::CtrData;
use crate::error::Result;

/// Numeric features per sample.
const DENSE: usize = 2;

/// A logistic regression or factorization machine.
#[derive(Debug)]
pub struct ClassicCtr {
    vs: nn::VarStore,
    cfg: ClassicConfig,
    /// Start of each field's rows in the shared tables.
    offsets: Vec<i64>,
    bias: Tensor,
    weights: Tensor,
    dense: Tensor,
    factors: Option<Tensor>,
    k_gat: usize,
}

/// The field rows and numeric features of a batch.
#[derive(Debug)]
pub struct ClassicBatch {
    rows: Tensor,
    dense: Tensor,
    labels: Tensor,
}

impl ClassicCtr {
    /// A fresh model for `data` (seeded by `cfg.seed`).
    pub fn new(data: &CtrData, cfg: &ClassicConfig, device: Device) -> Self {
        tch::manual_seed(cfg.seed as i64);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut sizes = vec![data.dataset.n_users(), data.dataset.n_items()];
        sizes.extend(data.features.user_vocab_sizes());
        sizes.push(data.features.item_vocab.size());
        let mut offsets = Vec::with_capacity(sizes.len());
        let mut total = 0i64;
        for s in &sizes {
            offsets.push(total);
            total += (*s).max(1) as i64;
        }
        let bias = root.var("bias", &[1], Init::Const(0.0));
        let weights = root.var("weights", &[total, 1], Init::Const(0.0));
        let dense = root.var("dense", &[DENSE as i64, 1], Init::Const(0.0));
        let factors = cfg.factors.map(|k| {
            root.var(
                "factors",
                &[total, k as i64],
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.01,
                },
            )
        });
        Self {
            vs,
            cfg: cfg.clone(),
            offsets,
            bias,
            weights,
            dense,
            factors,
            k_gat: data.config.k_gat,
        }
    }

    /// Field rows and numeric features of `samples`.
    ///
    /// # Errors
    /// [`crate::ElcorecError::Sample`] for a sample that does not fit
    /// `data` ([`CtrData::check`]); libtorch errors.
    pub fn batch(&self, data: &CtrData, samples: &[CtrSample]) -> Result<ClassicBatch> {
        let n_fields = self.offsets.len();
        let mut rows = Vec::with_capacity(samples.len() * n_fields);
        let mut dense = Vec::with_capacity(samples.len() * DENSE);
        let max = data.max_rating().max(1) as f32;
        for s in samples {
            data.check(s)?;
            let profile = data.features.user_codes.get(s.user as usize);
            let n_profile = n_fields - 3;
            let mut codes = vec![i64::from(s.user), i64::from(s.item)];
            codes.extend(
                (0..n_profile)
                    .map(|f| i64::from(profile.and_then(|p| p.get(f)).copied().unwrap_or(0))),
            );
            codes.push(i64::from(
                data.features
                    .item_codes
                    .get(s.item as usize)
                    .copied()
                    .unwrap_or(0),
            ));
            rows.extend(codes.iter().zip(&self.offsets).map(|(c, o)| c + o));
            let recent = data.recent(s, self.k_gat);
            let n = recent.len().max(1) as f32;
            let mean = recent.iter().map(|e| e.rating).sum::<f32>() / n / max;
            let liked = recent
                .iter()
                .filter(|e| data.split.label.label(e.rating))
                .count() as f32
                / n;
            dense.extend([mean, liked]);
        }
        let dev = self.vs.device();
        let b = samples.len() as i64;
        let labels: Vec<f32> = samples
            .iter()
            .map(|s| f32::from(u8::from(s.label)))
            .collect();
        Ok(ClassicBatch {
            rows: Tensor::f_from_slice(&rows)?
                .f_view([b, n_fields as i64])?
                .f_to(dev)?,
            dense: Tensor::f_from_slice(&dense)?
                .f_view([b, DENSE as i64])?
                .f_to(dev)?,
            labels: Tensor::f_from_slice(&labels)?.f_to(dev)?,
        })
    }

    /// Logits `[B]`.
    fn logits(&self, b: &ClassicBatch) -> Result<Tensor> {
        let linear = Tensor::f_embedding(&self.weights, &b.rows, -1, false, false)?
            .f_sum_dim_intlist(&[1i64, 2][..], false, Kind::Float)?;
        let mut out = linear
            .f_add(&b.dense.f_matmul(&self.dense)?.f_squeeze_dim(1)?)?
            .f_add(&self.bias)?;
        if let Some(v) = &self.factors {
            // 1/2 sum_k ((sum_f v_fk)^2 - sum_f v_fk^2)
            let e = Tensor::f_embedding(v, &b.rows, -1, false, false)?;
            let sum_sq = e
                .f_sum_dim_intlist(&[1i64][..], false, Kind::Float)?
                .f_square()?;
            let sq_sum = e
                .f_square()?
                .f_sum_dim_intlist(&[1i64][..], false, Kind::Float)?;
            out = out.f_add(
                &sum_sq
                    .f_sub(&sq_sum)?
                    .f_sum_dim_intlist(&[1i64][..], false, Kind::Float)?
                    .f_mul_scalar(0.5)?,
            )?;
        }
        Ok(out)
    }
}

impl CtrBaseline for ClassicCtr {
    /// `"lr"` or `"fm"`.
    fn name(&self) -> &'static str {
        if self.factors.is_some() {
            "fm"
        } else {
            "lr"
        }
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }

    fn seed(&self) -> u64 {
        self.cfg.seed
    }

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn logits_and_labels(&self, data: &CtrData, samples: &[CtrSample]) -> Result<(Tensor, Tensor)> {
        let b = self.batch(data, samples)?;
        Ok((self.logits(&b)?, b.labels.shallow_clone()))
    }
}
