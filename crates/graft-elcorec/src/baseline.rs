//! The CTR baselines' common shape ([`CtrBaseline`]: LR, FM, DIN) and
//! their training task ([`EpochTrainer`]: epochs of shuffled batches of the
//! train split, validation AUC on the validation subset).

use graft_data::CtrSample;
use graft_train::TrainTask;
use tch::Tensor;

use crate::data::{CtrData, EpochOrder};
use crate::error::{task_err, valid_auc, Result};

/// A CTR model trained on whole train-split batches with binary
/// cross-entropy, scored by its click probabilities.
pub trait CtrBaseline {
    /// Row and directory name (`lr`, `fm`, `din`).
    fn name(&self) -> &'static str;

    /// Samples per optimizer step.
    fn batch_size(&self) -> usize;

    /// Seed of the batch order.
    fn seed(&self) -> u64;

    /// Trainable tensors by name, sorted.
    fn named_parameters(&self) -> Vec<(String, Tensor)>;

    /// Mean binary cross-entropy of a batch (training mode).
    ///
    /// # Errors
    /// [`crate::ElcorecError::Sample`] for a sample that does not fit
    /// `data`; libtorch errors.
    fn loss(&self, data: &CtrData, samples: &[CtrSample]) -> Result<Tensor>;

    /// Click probabilities (evaluation mode, no gradients).
    ///
    /// # Errors
    /// As [`loss`](Self::loss).
    fn predict(&self, data: &CtrData, samples: &[CtrSample]) -> Result<Vec<f64>>;

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
