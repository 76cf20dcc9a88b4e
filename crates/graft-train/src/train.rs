//! The generic, resumable training loop.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::adamw::AdamW;
use crate::checkpoint::{atomic_write_safetensors, load_checkpoint, save_checkpoint};
use crate::early::{EarlyStopping, Verdict};
use crate::error::{Result, TrainError};
use crate::progress::TrainProgress;
use crate::rundir::RunDir;
use crate::schedule::LrSchedule;

/// File name of the best parameters in the run directory.
pub const BEST_FILE: &str = "best.safetensors";
/// Name (without `.json`) of the best metric's record in the run directory.
pub const BEST_JSON: &str = "best";
/// File (in the checkpoint directory) recording the log length at the start
/// of a fresh run, so that a restart before the first checkpoint drops the
/// killed attempt's lines.
const LOG_START: &str = "log_start.json";

/// Settings of [`train`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopConfig {
    /// Optimizer steps to run in total (over all resumed segments).
    pub max_steps: u64,
    /// Micro-batches per optimizer step (`>= 1`); their losses are averaged.
    pub accumulation: usize,
    /// Validation every `n` steps; with or without it, validation also runs
    /// when training stops (unless it just ran at that step).
    pub eval_every: Option<u64>,
    /// Steps between checkpoints (`>= 1`); one is also taken when training
    /// stops.
    pub checkpoint_every: u64,
    /// Wall-clock budget in seconds, summed over all resumed segments;
    /// checked after each step (and before the first step of a resumed
    /// segment; a fresh run takes at least one step).
    pub max_seconds: Option<f64>,
    /// Clip the gradients' joint L2 norm to this value before each step.
    pub clip_norm: Option<f64>,
    /// Early stopping: stop after this many evaluations without a new best.
    pub patience: Option<usize>,
    /// Seed: `tch::manual_seed(mix(seed, step))` runs before every step (and
    /// a different mix before every evaluation), so dropout and other
    /// libtorch randomness is a function of the step and resume is exact.
    pub seed: u64,
    /// Learning rate of every step ([`LrSchedule::lr`], set on the
    /// optimizer before each update); `None` leaves the optimizer's rate
    /// alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<LrSchedule>,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            max_steps: 1000,
            accumulation: 1,
            eval_every: None,
            checkpoint_every: 100,
            max_seconds: None,
            clip_norm: None,
            patience: None,
            seed: 0,
            schedule: None,
        }
    }
}

impl LoopConfig {
    /// Checks the values' domains.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(TrainError::Config(format!("LoopConfig: {m}")));
        if self.accumulation == 0 {
            return bad("accumulation must be at least 1");
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every must be at least 1");
        }
        if self.eval_every == Some(0) {
            return bad("eval_every must be at least 1");
        }
        if self.max_seconds.is_some_and(|s| s.is_nan() || s < 0.0) {
            return bad("max_seconds must be >= 0");
        }
        if self.clip_norm.is_some_and(|c| !(c.is_finite() && c >= 0.0)) {
            return bad("clip_norm must be finite and >= 0");
        }
        if let Some(s) = &self.schedule {
            s.validate()?;
        }
        Ok(())
    }
}

/// The work [`train`] drives.
pub trait TrainTask {
    /// Scalar loss of micro-batch `micro` of optimizer step `step` (`step` =
    /// the number of optimizer steps already taken). Must be a deterministic
    /// function of `(step, micro)` and the parameters (that is what makes
    /// resume exact). The loop divides it by `accumulation` and calls
    /// backward.
    ///
    /// # Errors
    /// Any error aborts training (without a checkpoint for this step).
    fn loss(&mut self, step: u64, micro: usize) -> Result<Tensor>;

    /// Validation metric after `step` optimizer steps, higher is better.
    /// Switch off dropout here (and back on before returning).
    ///
    /// # Errors
    /// Any error aborts training.
    fn evaluate(&mut self, step: u64) -> Result<f64>;

    /// Named numbers behind the last [`evaluate`](Self::evaluate) (e.g.
    /// one validation loss per task), written into the same `log.jsonl`
    /// line as `eval`. Names must not be `step` or `eval`. None by default.
    fn eval_details(&self) -> Vec<(String, f64)> {
        Vec::new()
    }

    /// Called once per optimizer step after every micro-batch's backward
    /// pass and before clipping and the update (`step` as in
    /// [`loss`](Self::loss)): the place to finish gradients a task
    /// accumulated outside autograd's graph. Does nothing by default.
    ///
    /// # Errors
    /// Any error aborts training (without a checkpoint for this step).
    fn before_optimizer_step(&mut self, step: u64) -> Result<()> {
        let _ = step;
        Ok(())
    }
}

/// Why [`train`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// `max_steps` optimizer steps are done.
    MaxSteps,
    /// The wall-clock budget `max_seconds` is spent.
    Budget,
    /// The validation metric stopped improving for `patience` evaluations.
    EarlyStopping,
}

impl StopReason {
    /// The reason of a [`TrainSummary::stop`] name (`None` for another
    /// string).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "MaxSteps" => Some(Self::MaxSteps),
            "Budget" => Some(Self::Budget),
            "EarlyStopping" => Some(Self::EarlyStopping),
            _ => None,
        }
    }
}

/// Words for people: `step limit reached`, `time budget spent`, `early
/// stopping`.
impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MaxSteps => "step limit reached",
            Self::Budget => "time budget spent",
            Self::EarlyStopping => "early stopping",
        })
    }
}

/// What [`train`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutcome {
    /// Optimizer steps done in total (over all segments).
    pub steps: u64,
    /// Why training stopped.
    pub stop: StopReason,
    /// The best validation metric (over all segments).
    pub best_metric: Option<f64>,
    /// The step of the best validation metric.
    pub best_step: Option<u64>,
    /// Training seconds over all segments.
    pub seconds: f64,
    /// The checkpoint step this call resumed from, if it resumed.
    pub resumed_from: Option<u64>,
}

/// A serializable summary of a [`TrainOutcome`], as pipelines store it in
/// their `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Optimizer steps done.
    pub steps: u64,
    /// Why training stopped ([`StopReason`]'s name).
    pub stop: String,
    /// Best validation metric.
    pub best_metric: Option<f64>,
    /// Its step.
    pub best_step: Option<u64>,
    /// Training seconds over all segments.
    pub seconds: f64,
    /// Step a resumed run started from.
    pub resumed_from: Option<u64>,
}

impl TrainSummary {
    /// Why training stopped, in words ([`StopReason`]'s `Display`; the
    /// stored name itself if it is not one).
    pub fn stop_text(&self) -> String {
        StopReason::from_name(&self.stop).map_or_else(|| self.stop.clone(), |r| r.to_string())
    }
}

impl From<&TrainOutcome> for TrainSummary {
    fn from(o: &TrainOutcome) -> Self {
        Self {
            steps: o.steps,
            stop: format!("{:?}", o.stop),
            best_metric: o.best_metric,
            best_step: o.best_step,
            seconds: o.seconds,
            resumed_from: o.resumed_from,
        }
    }
}

/// The loop's state stored in every checkpoint (as `latest.json`'s `state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Optimizer steps done.
    pub step: u64,
    /// Training seconds over all segments so far.
    pub seconds: f64,
    /// Length of `log.jsonl` in bytes at checkpoint time; a resume truncates
    /// the log to it.
    pub log_len: u64,
    /// Best-metric tracking (also kept without `patience`).
    pub early: EarlyStopping,
    /// The step of the last evaluation.
    pub last_eval_step: Option<u64>,
    /// Set when training stopped at this checkpoint.
    pub stopped: Option<StopReason>,
}

#[derive(Serialize, Deserialize)]
struct LogStart {
    log_len: u64,
}

#[derive(Serialize)]
struct StepRecord {
    step: u64,
    loss: f64,
    lr: f64,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    grad_norm: Option<f64>,
}

#[derive(Serialize)]
struct EvalRecord {
    step: u64,
    eval: f64,
    /// Named parts of the evaluation ([`TrainTask::eval_details`]).
    #[serde(flatten)]
    details: std::collections::BTreeMap<String, f64>,
}

#[derive(Serialize)]
struct BestRecord {
    step: u64,
    metric: f64,
}

/// SplitMix64 of `seed` and `step`, as a libtorch seed.
pub fn mix_seed(seed: u64, step: u64) -> i64 {
    let mut z = seed ^ step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    i64::from_ne_bytes(z.to_ne_bytes())
}

const EVAL_SALT: u64 = 0x5EED_E7A1;

fn scalar_value(loss: &Tensor, step: u64, micro: usize) -> Result<f64> {
    if loss.numel() != 1 {
        return Err(TrainError::Config(format!(
            "loss of step {step} micro-batch {micro} has shape {:?}; it must be a scalar",
            loss.size()
        )));
    }
    Ok(loss.f_detach()?.f_reshape([1])?.f_double_value(&[0])?)
}

/// Runs (or resumes, if `run.checkpoint_dir()` holds a checkpoint) training.
///
/// Each step: `tch::manual_seed(mix_seed(seed, step))`, zero the gradients,
/// `accumulation` calls of [`TrainTask::loss`] each divided by
/// `accumulation` and back-propagated, optional clipping, [`AdamW::step`].
/// Logs one JSON line per step `{"step", "loss", "lr", "seconds"}` (plus
/// `"grad_norm"` when clipping; `step` counts the steps done, from 1) and one
/// per evaluation `{"step", "eval"}`; on a new best metric saves the
/// parameters to `best.safetensors` in the run dir (atomically) and the
/// metric to `best.json`; checkpoints every `checkpoint_every` steps and when
/// stopping. Shows a progress bar while running.
///
/// On resume the optimizer state, step, seconds, early-stopping counters and
/// the log (truncated to its length at the checkpoint, so no step is logged
/// twice) are restored; with a deterministic task the result is bitwise the
/// same as an uninterrupted run. A run that already stopped early returns at
/// once; one that reached `max_steps` or its budget continues if `cfg` now
/// allows more. One training per run directory.
///
/// `best.safetensors` written after the last checkpoint of a killed run is
/// rewritten when the resumed run reaches the same best again (it does, being
/// deterministic), unless the resumed run stops earlier (budget).
///
/// # Errors
/// [`TrainError::Config`] for an invalid `cfg` or a non-scalar loss; errors
/// of the task, of libtorch, and of the checkpoint and log files.
pub fn train<T: TrainTask>(
    task: &mut T,
    opt: &mut AdamW,
    run: &RunDir,
    cfg: &LoopConfig,
) -> Result<TrainOutcome> {
    cfg.validate()?;
    let ckpt_dir = run.checkpoint_dir();
    let patience = cfg.patience.unwrap_or(usize::MAX);
    let (mut state, resumed_from) = match load_checkpoint::<LoopState>(&ckpt_dir, opt)? {
        Some((step, state)) => {
            if state.step != step {
                return Err(TrainError::Checkpoint {
                    path: ckpt_dir.join(crate::checkpoint::LATEST),
                    reason: format!(
                        "step {step} disagrees with the loop state's step {}",
                        state.step
                    ),
                });
            }
            run.truncate_log(state.log_len)?;
            (state, Some(step))
        }
        None => {
            prepare_fresh_log(run, &ckpt_dir)?;
            let state = LoopState {
                step: 0,
                seconds: 0.0,
                log_len: 0,
                early: EarlyStopping::new(patience),
                last_eval_step: None,
                stopped: None,
            };
            (state, None)
        }
    };
    state.early.patience = patience;
    let outcome = |state: &LoopState, stop| TrainOutcome {
        steps: state.step,
        stop,
        best_metric: state.early.best,
        best_step: state.early.best_step,
        seconds: state.seconds,
        resumed_from,
    };
    let over_budget = |seconds: f64| cfg.max_seconds.is_some_and(|max| seconds >= max);
    if state.stopped == Some(StopReason::EarlyStopping) {
        return Ok(outcome(&state, StopReason::EarlyStopping));
    }
    if state.step >= cfg.max_steps {
        return Ok(outcome(&state, StopReason::MaxSteps));
    }
    if resumed_from.is_some() && over_budget(state.seconds) {
        return Ok(outcome(&state, StopReason::Budget));
    }

    let label = run
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut progress = TrainProgress::new(cfg.max_steps, state.step, &label);
    let base_seconds = state.seconds;
    let segment_start = Instant::now();
    let acc = cfg.accumulation;
    let stop = loop {
        let step = state.step;
        tch::manual_seed(mix_seed(cfg.seed, step));
        opt.zero_grad();
        let mut loss_sum = 0.0;
        for micro in 0..acc {
            let loss = task.loss(step, micro)?;
            loss_sum += scalar_value(&loss, step, micro)?;
            loss.f_div_scalar(acc as f64)?.f_backward()?;
        }
        let loss = loss_sum / acc as f64;
        task.before_optimizer_step(step)?;
        let grad_norm = cfg.clip_norm.map(|c| opt.clip_grad_norm(c)).transpose()?;
        if let Some(s) = &cfg.schedule {
            opt.set_lr(s.lr(step));
        }
        opt.step()?;
        state.step = step + 1;
        state.seconds = base_seconds + segment_start.elapsed().as_secs_f64();
        run.log(&StepRecord {
            step: state.step,
            loss,
            lr: opt.lr(),
            seconds: state.seconds,
            grad_norm,
        })?;
        progress.update(state.step, loss);

        let mut reason = if state.step >= cfg.max_steps {
            Some(StopReason::MaxSteps)
        } else if over_budget(state.seconds) {
            Some(StopReason::Budget)
        } else {
            None
        };
        let periodic = cfg.eval_every.is_some_and(|n| state.step % n == 0);
        if periodic || (reason.is_some() && state.last_eval_step != Some(state.step)) {
            tch::manual_seed(mix_seed(cfg.seed ^ EVAL_SALT, state.step));
            let metric = task.evaluate(state.step)?;
            state.last_eval_step = Some(state.step);
            run.log(&EvalRecord {
                step: state.step,
                eval: metric,
                details: task
                    .eval_details()
                    .into_iter()
                    .filter(|(k, _)| k != "step" && k != "eval")
                    .collect(),
            })?;
            progress.set_metric("eval", metric);
            match state.early.update(state.step, metric) {
                Verdict::Improved => save_best(run, opt, state.step, metric)?,
                Verdict::Stop if cfg.patience.is_some() && reason.is_none() => {
                    reason = Some(StopReason::EarlyStopping);
                }
                Verdict::Stop | Verdict::NoImprovement => {}
            }
        }
        if reason.is_some() || state.step % cfg.checkpoint_every == 0 {
            state.stopped = reason;
            run.sync_log()?;
            state.log_len = run.log_len()?;
            save_checkpoint(&ckpt_dir, state.step, opt, &state)?;
        }
        if let Some(reason) = reason {
            break reason;
        }
    };
    progress.finish();
    Ok(outcome(&state, stop))
}

/// At a fresh start, drops log lines of an attempt killed before its first
/// checkpoint (and remembers where this attempt's lines begin).
fn prepare_fresh_log(run: &RunDir, ckpt_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(ckpt_dir).map_err(crate::error::io_err(ckpt_dir))?;
    let start_path = ckpt_dir.join(LOG_START);
    match std::fs::read(&start_path) {
        Ok(bytes) => {
            let start: LogStart =
                serde_json::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
                    path: start_path.clone(),
                    reason: e.to_string(),
                })?;
            run.truncate_log(start.log_len)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let start = LogStart {
                log_len: run.log_len()?,
            };
            let bytes = serde_json::to_vec(&start).map_err(crate::error::json_err(&start_path))?;
            crate::checkpoint::atomic_write(&start_path, &bytes)
        }
        Err(e) => Err(TrainError::Io {
            path: start_path,
            source: e,
        }),
    }
}

fn save_best(run: &RunDir, opt: &AdamW, step: u64, metric: f64) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = opt
        .params()
        .iter()
        .map(|(n, p)| (n.clone(), p.detach()))
        .collect();
    atomic_write_safetensors(&run.path().join(BEST_FILE), &tensors)?;
    run.write_json(BEST_JSON, &BestRecord { step, metric })
}

/// Copies `best.safetensors` (if any) back into the optimizer's parameters
/// (under `no_grad`); returns whether it did.
///
/// # Errors
/// [`TrainError::Checkpoint`] naming the file when it is corrupt or a
/// parameter is missing or has the wrong shape or dtype (nothing is copied
/// then).
pub fn restore_best(run: &RunDir, opt: &mut AdamW) -> Result<bool> {
    load_best(run, opt.params())
}

/// Copies `best.safetensors` (if any) into `params` (name, tensor) under
/// `no_grad`, with no optimizer: how a trained model is loaded for
/// inference from a run directory opened with [`RunDir::open`]. Returns
/// whether the file exists. Extra tensors in the file are ignored.
///
/// # Errors
/// [`TrainError::Checkpoint`] naming the file when it is corrupt or a
/// parameter is missing or has the wrong shape or dtype (nothing is copied
/// then).
pub fn load_best(run: &RunDir, params: &[(String, Tensor)]) -> Result<bool> {
    let path = run.path().join(BEST_FILE);
    if !path.is_file() {
        return Ok(false);
    }
    let fail = |reason: String| TrainError::Checkpoint {
        path: path.clone(),
        reason,
    };
    let mut saved: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&path)
        .map_err(|e| fail(format!("cannot read tensors: {e}")))?
        .into_iter()
        .collect();
    let mut values = Vec::with_capacity(params.len());
    for (name, p) in params {
        let t = saved
            .remove(name)
            .ok_or_else(|| fail(format!("missing tensor {name:?}")))?;
        if t.size() != p.size() || t.kind() != p.kind() {
            return Err(fail(format!(
                "tensor {name:?}: expected {:?} {:?}, got {:?} {:?}",
                p.kind(),
                p.size(),
                t.kind(),
                t.size()
            )));
        }
        values.push(t);
    }
    let _guard = tch::no_grad_guard();
    for ((_, p), t) in params.iter().zip(values) {
        p.shallow_clone().f_copy_(&t)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::StopReason;

    #[test]
    fn stop_reasons_read_back_from_their_stored_names() {
        for r in [
            StopReason::MaxSteps,
            StopReason::Budget,
            StopReason::EarlyStopping,
        ] {
            assert_eq!(StopReason::from_name(&format!("{r:?}")), Some(r));
            assert!(!r.to_string().contains(&format!("{r:?}")));
        }
        assert_eq!(StopReason::from_name("budget"), None);
    }
}
