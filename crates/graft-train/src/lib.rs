//! Training machinery shared by graft's pipelines (ELMRec, ELCoRec), on
//! libtorch via `tch`.
//!
//! * [`AdamW`]: PyTorch's `torch.optim.AdamW` update exactly (golden test
//!   against PyTorch: `tests/adamw.rs` with `python/adamw_golden.py`), over
//!   named tensors, with gradient clipping and a state that saves and
//!   restores bit-exactly.
//! * [`save_checkpoint`] / [`load_checkpoint`] / [`atomic_write`]:
//!   crash-safe checkpoints (temporary file, fsync, rename; `latest.json` is
//!   the commit point), so a kill at any moment leaves a readable one.
//! * [`RunDir`]: a run's directory with `config.json` (a resume must use the
//!   same configuration), an append-only `log.jsonl`, and result files.
//! * [`EarlyStopping`] and [`TrainProgress`] (an indicatif bar).
//! * [`train`](fn@train): the generic loop over a [`TrainTask`] with gradient
//!   accumulation, clipping, periodic evaluation, best-parameter saving,
//!   a wall-clock budget over resumed segments, early stopping, and exact
//!   resume: the seed of every step is a function of the step, and the log
//!   is truncated to its length at the checkpoint, so a run killed and
//!   resumed ends with bitwise the same parameters and one log line per step
//!   (`tests/train_loop.rs` kills a child process to prove it).
//!
//! ```
//! use graft_train::{restore_best, train, AdamW, AdamWConfig, LoopConfig, RunDir, StopReason, TrainTask};
//! use tch::{Kind, Tensor};
//!
//! /// Fits y = 3x with one weight.
//! struct Fit {
//!     w: Tensor,
//! }
//! impl TrainTask for Fit {
//!     fn loss(&mut self, step: u64, micro: usize) -> graft_train::Result<Tensor> {
//!         let x = Tensor::from_slice(&[(step % 5) as f32 + micro as f32 * 0.5 + 1.0]);
//!         Ok((&self.w * &x - &x * 3.0).square().mean(Kind::Float))
//!     }
//!     fn evaluate(&mut self, _step: u64) -> graft_train::Result<f64> {
//!         Ok(-(self.w.double_value(&[0]) - 3.0).abs())
//!     }
//! }
//!
//! let dir = tempfile::tempdir().expect("tempdir");
//! let cfg = LoopConfig { max_steps: 200, accumulation: 2, eval_every: Some(50), checkpoint_every: 100, ..LoopConfig::default() };
//! let run = RunDir::create(dir.path().join("fit"), &cfg)?;
//! let mut task = Fit { w: Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true) };
//! let mut opt = AdamW::new(AdamWConfig { lr: 0.1, weight_decay: 0.0, ..AdamWConfig::default() }, vec![("w".into(), task.w.shallow_clone())])?;
//! let out = train(&mut task, &mut opt, &run, &cfg)?;
//! assert_eq!((out.steps, out.stop), (200, StopReason::MaxSteps));
//! assert!(out.best_metric.unwrap_or(f64::NEG_INFINITY) > -0.05);
//! assert_eq!(run.read_log()?.len(), 200 + 4); // one line per step and per evaluation
//! assert!(restore_best(&run, &mut opt)?);
//!
//! // Calling `train` again resumes from the final checkpoint: nothing left to do.
//! let again = train(&mut task, &mut opt, &run, &cfg)?;
//! assert_eq!(again.resumed_from, Some(200));
//! # Ok::<(), graft_train::TrainError>(())
//! ```

pub mod adamw;
pub mod checkpoint;
pub mod early;
pub mod error;
pub mod progress;
pub mod rundir;
pub mod runtime;
pub mod schedule;
pub mod train;

pub use adamw::{AdamW, AdamWConfig};
pub use checkpoint::{atomic_write, atomic_write_safetensors, load_checkpoint, save_checkpoint};
pub use early::{EarlyStopping, Verdict};
pub use error::{Result, TrainError};
pub use progress::TrainProgress;
pub use rundir::RunDir;
pub use runtime::Runtime;
pub use schedule::{LrDecay, LrSchedule};
pub use tch;
pub use train::{
    load_best, mix_seed, restore_best, train, LoopConfig, LoopState, StopReason, TrainOutcome,
    TrainSummary, TrainTask, BEST_FILE,
};
