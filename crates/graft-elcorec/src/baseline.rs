//! The CTR baselines' common shape ([`CtrBaseline`]: LR, FM, DIN) and
//! their training task ([`EpochTrainer`]: epochs of shuffled batches of the
//! train split, validation AUC on the validation subset).

use graft_data::CtrSample;
use graft_train::TrainTask;
use tch::{nn, Device, Kind, Tensor};

use crate::data::{CtrData, EpochOrder};
use crate::error::{task_err, valid_auc, Result};
use crate::expert::bce_with_logits;

/// A CTR model trained on whole train-split batches with binary
/// cross-entropy, scored by its click probabilities. Implementors give
/// their variable store and their logits; loss, prediction and parameter
/// listing follow.
pub trait CtrBaseline {
    /// Row and directory name (`lr`, `fm`, `din`).
    fn name(&self) -> &'static str;

    /// Samples per optimizer step.
    fn batch_size(&self) -> usize;

    /// Seed of the batch order.
    fn seed(&self) -> u64;

    /// The variable store holding every trainable tensor.
    fn var_store(&self) -> &nn::VarStore;

    /// Click logits `[B]` and 0/1 labels `[B]` of `samples`.
    ///
    /// # Errors
    /// [`crate::ElcorecError::Sample`] for a sample that does not fit
    /// `data`; libtorch errors.
    fn logits_and_labels(&self, data: &CtrData, samples: &[CtrSample]) -> Result<(Tensor, Tensor)>;

    /// Trainable tensors by name, sorted.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.var_store().variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Mean binary cross-entropy of a batch (training mode).
    ///
    /// # Errors
    /// As [`logits_and_labels`](Self::logits_and_labels).
    fn loss(&self, data: &CtrData, samples: &[CtrSample]) -> Result<Tensor> {
        let (logits, labels) = self.logits_and_labels(data, samples)?;
        bce_with_logits(&logits, &labels)
    }

    /// Click probabilities (evaluation mode, no gradients), in chunks of
    /// 2,048 samples.
    ///
    /// # Errors
    /// As [`logits_and_labels`](Self::logits_and_labels).
    fn predict(&self, data: &CtrData, samples: &[CtrSample]) -> Result<Vec<f64>> {
        let _guard = tch::no_grad_guard();
        let mut out = Vec::with_capacity(samples.len());
        for chunk in samples.chunks(2048) {
            let p = self.logits_and_labels(data, chunk)?.0.f_sigmoid()?;
            out.extend(Vec::<f64>::try_from(
                p.f_to_kind(Kind::Double)?.f_to(Device::Cpu)?,
            )?);
        }
        Ok(out)
    }

    /// Optimizer steps per pass over `data`'s train split (the last batch
    /// may be smaller).
    fn steps_per_epoch(&self, data: &CtrData) -> u64 {
        (data.split.train.len().div_ceil(self.batch_size().max(1))).max(1) as u64
    }
}

/// graft-train's task for a [`CtrBaseline`]: a new seeded order of the
/// train split every epoch (a function of the seed and the epoch, so a
/// resumed run sees the same batches), validation AUC on `data.valid`.
pub struct EpochTrainer<'a, M: CtrBaseline> {
    model: &'a M,
    data: &'a CtrData,
    order: EpochOrder,
}

impl<'a, M: CtrBaseline> EpochTrainer<'a, M> {
    /// The task over `data.split.train`, validated on `data.valid`.
    pub fn new(model: &'a M, data: &'a CtrData) -> Self {
        Self {
            model,
            data,
            order: EpochOrder::new(data.split.train.len(), model.seed()),
        }
    }
}

impl<M: CtrBaseline> TrainTask for EpochTrainer<'_, M> {
    fn loss(&mut self, step: u64, _micro: usize) -> graft_train::Result<Tensor> {
        let per_epoch = self.model.steps_per_epoch(self.data);
        let (epoch, k) = (step / per_epoch, (step % per_epoch) as usize);
        let train = &self.data.split.train;
        let bs = self.model.batch_size().max(1);
        let end = ((k + 1) * bs).min(train.len());
        let samples: Vec<CtrSample> = self.order.get(epoch)[k * bs..end]
            .iter()
            .map(|&i| train[i])
            .collect();
        self.model.loss(self.data, &samples).map_err(task_err)
    }

    fn evaluate(&mut self, _step: u64) -> graft_train::Result<f64> {
        let p = self
            .model
            .predict(self.data, &self.data.valid)
            .map_err(task_err)?;
        valid_auc(&CtrData::labels(&self.data.valid), &p)
    }
}
