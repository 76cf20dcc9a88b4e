//! Training an [`ElmrecModel`] with graft-train's loop (AdamW, gradient
//! accumulation, early stopping on validation loss, atomic checkpoints,
//! exact resume), then evaluating it.

use std::path::Path;

use graft_baselines::{EvalSet, Split};
use graft_data::LeaveOneOut;
use graft_prompt::Task;
use graft_train::{AdamW, LoopConfig, LrDecay, RunDir, TrainError, TrainOutcome, TrainTask};
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tokenizers::Tokenizer;

use crate::config::{ElmrecConfig, EvalConfig, TaskMix, Validation};
use crate::data::{validation_batches, Sampler};
use crate::error::{ElmrecError, Result};
use crate::eval::{evaluate, generation_hits, GenerationHits, LmReport};
use crate::model::{ElmrecModel, Example, Tables};
use crate::recommend::StoredRun;

fn task_err(e: ElmrecError) -> TrainError {
    TrainError::Task(Box::new(e))
}

/// The [`TrainTask`] of ELMRec: one micro-batch of one task per call.
///
/// The propagated table is computed once per optimizer step, without
/// autograd, as a leaf every micro-batch reads; before the optimizer step
/// its accumulated gradient is pushed back through the propagation to the
/// random features `E0` (one backward pass instead of one per micro-batch;
/// the same gradient, since propagation is linear).
#[derive(Debug)]
pub struct ElmrecTrainer<'a> {
    model: &'a ElmrecModel,
    sampler: Sampler<'a>,
    valid: Vec<Vec<Example>>,
    step_tables: Option<(u64, Tables)>,
    popularity_loss: Option<f64>,
    last: Option<ValidationLosses>,
    /// Validation by generation: its set and settings, and the last hits.
    generation: Option<GenerationValidation>,
    bucket_by_length: bool,
}

#[derive(Debug)]
struct GenerationValidation {
    set: EvalSet,
    tasks: TaskMix,
    k: usize,
    beams: usize,
    history_len: usize,
    last: Option<GenerationHits>,
}

/// The validation losses of one evaluation (mean cross-entropy per target
/// token, nats).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValidationLosses {
    /// Over all validation examples (what early stopping uses).
    pub mean: f64,
    /// Direct examples only (`None` when the task is not trained).
    pub direct: Option<f64>,
    /// Sequential examples only.
    pub sequential: Option<f64>,
}

/// The loss, in nats per target token, of a decoder that knows only how
/// often each item is a training target: the entropy of the item
/// distribution `p` (train interactions counted, as the samplers draw
/// targets from train items) divided by the mean target length in tokens
/// (EOS included) under `p`. A model whose validation loss sits above this
/// line has learned less than item popularity. `None` for an empty split.
pub fn popularity_loss(model: &ElmrecModel, split: &LeaveOneOut) -> Option<f64> {
    let mut counts = vec![0u64; split.n_items];
    for (_, i) in split.train_edges() {
        if let Some(c) = counts.get_mut(i as usize) {
            *c += 1;
        }
    }
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let (mut entropy, mut tokens) = (0.0f64, 0.0f64);
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let p = c as f64 / total as f64;
        entropy -= p * p.ln();
        tokens += p * model.item_tokens(i as u32).map_or(0, <[u32]>::len) as f64;
    }
    (tokens > 0.0).then(|| entropy / tokens)
}

impl<'a> ElmrecTrainer<'a> {
    /// A trainer for `model` on `split`, validating on `valid`.
    ///
    /// # Errors
    ///
    /// With [`Validation::Generation`], as [`EvalSet::build`] (the
    /// generation set: the same users, the configured negatives).
    pub fn new(
        model: &'a ElmrecModel,
        split: &'a LeaveOneOut,
        cfg: &ElmrecConfig,
        valid: &EvalSet,
    ) -> Result<Self> {
        let generation = match cfg.validation {
            Validation::Loss => None,
            Validation::Generation {
                k,
                beams,
                negatives,
            } => Some(GenerationValidation {
                set: EvalSet::build(
                    split,
                    Split::Valid,
                    Some(cfg.valid_users),
                    negatives,
                    cfg.seed ^ 0x7a11d,
                )?,
                tasks: cfg.tasks,
                k,
                beams,
                history_len: cfg.history_len,
                last: None,
            }),
        };
        Ok(Self {
            model,
            sampler: Sampler::new(split, cfg),
            valid: validation_batches(valid, cfg.history_len, cfg.micro_batch, cfg.tasks),
            step_tables: None,
            popularity_loss: popularity_loss(model, split),
            last: None,
            generation,
            bucket_by_length: cfg.bucket_by_length,
        })
    }

    /// Mean validation loss (lower is better).
    ///
    /// # Errors
    ///
    /// Model failures; `Config` if there is nothing to validate on.
    pub fn validation_loss(&self) -> Result<f64> {
        Ok(self.validation_losses()?.mean)
    }

    /// The validation loss overall and per task.
    ///
    /// # Errors
    ///
    /// Model failures; `Config` if there is nothing to validate on.
    pub fn validation_losses(&self) -> Result<ValidationLosses> {
        let _guard = tch::no_grad_guard();
        let tables = self.model.tables()?;
        // (sum, examples) for direct, sequential.
        let mut acc = [(0.0f64, 0usize); 2];
        for b in &self.valid {
            let l = self.model.loss(b, &tables)?.f_double_value(&[])?;
            let t = usize::from(b.first().is_some_and(|e| e.task == Task::Sequential));
            acc[t].0 += l * b.len() as f64;
            acc[t].1 += b.len();
        }
        let n = acc[0].1 + acc[1].1;
        if n == 0 {
            return Err(ElmrecError::Config("no validation examples".into()));
        }
        let part = |(s, k): (f64, usize)| (k > 0).then(|| s / k as f64);
        Ok(ValidationLosses {
            mean: (acc[0].0 + acc[1].0) / n as f64,
            direct: part(acc[0]),
            sequential: part(acc[1]),
        })
    }

    /// [`popularity_loss`] of this trainer's model and split.
    pub fn popularity_loss(&self) -> Option<f64> {
        self.popularity_loss
    }
}

impl TrainTask for ElmrecTrainer<'_> {
    fn loss(&mut self, step: u64, micro: usize) -> graft_train::Result<Tensor> {
        let fresh = !matches!(&self.step_tables, Some((s, _)) if *s == step);
        if fresh {
            let t = self.model.leaf_tables().map_err(task_err)?;
            self.step_tables = Some((step, t));
        }
        let tables = match &self.step_tables {
            Some((_, t)) => t,
            None => return Err(TrainError::Config("no tables".into())),
        };
        let batch = if self.bucket_by_length {
            self.sampler.bucketed_micro_batch(step, micro)
        } else {
            self.sampler.micro_batch(step, micro)
        };
        self.model.loss_t(&batch, tables, true).map_err(task_err)
    }

    fn before_optimizer_step(&mut self, step: u64) -> graft_train::Result<()> {
        if let Some((s, t)) = self.step_tables.take() {
            if s == step {
                self.model.backprop_tables(&t).map_err(task_err)?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, _step: u64) -> graft_train::Result<f64> {
        let v = self.validation_losses().map_err(task_err)?;
        self.last = Some(v);
        let Some(g) = &mut self.generation else {
            return Ok(-v.mean);
        };
        let hits = generation_hits(self.model, &g.set, g.tasks, g.k, g.beams, g.history_len)
            .map_err(task_err)?;
        g.last = Some(hits);
        hits.mean()
            .ok_or_else(|| TrainError::Config("validation by generation measured no task".into()))
    }

    /// `valid_loss_direct`, `valid_loss_sequential`, the
    /// `popularity_loss` reference line and, when validating by
    /// generation, `valid_loss` (the mean loss) and `valid_hr_direct` /
    /// `valid_hr_sequential`.
    fn eval_details(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        if let Some(h) = self.generation.as_ref().and_then(|g| g.last) {
            out.extend(h.direct.map(|x| ("valid_hr_direct".to_string(), x)));
            out.extend(h.sequential.map(|x| ("valid_hr_sequential".to_string(), x)));
            out.extend(self.last.map(|v| ("valid_loss".to_string(), v.mean)));
        }
        if let Some(v) = self.last {
            out.extend(v.direct.map(|x| ("valid_loss_direct".to_string(), x)));
            out.extend(
                v.sequential
                    .map(|x| ("valid_loss_sequential".to_string(), x)),
            );
        }
        out.extend(
            self.popularity_loss
                .map(|x| ("popularity_loss".to_string(), x)),
        );
        out
    }
}

/// What [`train_and_evaluate`] returns and writes to `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Steps trained, stop reason, best validation metric.
    pub training: TrainSummary,
    /// Test metrics.
    pub test: LmReport,
    /// Trainable parameters.
    pub parameters: i64,
}

pub use graft_train::TrainSummary;

/// The fixed validation sample of a configuration (validation items of
/// `cfg.valid_users` seeded users, `cfg.train_negatives` negatives).
///
/// # Errors
///
/// As [`EvalSet::build`].
pub fn validation_set(split: &LeaveOneOut, cfg: &ElmrecConfig) -> Result<EvalSet> {
    Ok(EvalSet::build(
        split,
        Split::Valid,
        Some(cfg.valid_users),
        cfg.train_negatives,
        cfg.seed ^ 0x7a11d,
    )?)
}

pub use graft_train::Runtime;

/// Trains (or resumes) a model in `run_dir`, restores the best validation
/// checkpoint and evaluates it on `test`; writes `metrics.json`. A run
/// directory that already holds `metrics.json` for the same configuration
/// (the run directory refuses a different one) is finished: its stored
/// result is returned without training or evaluating again.
///
/// # Errors
///
/// Any failure of the parts.
pub fn train_and_evaluate(
    cfg: &ElmrecConfig,
    eval: &EvalConfig,
    split: &LeaveOneOut,
    test: &EvalSet,
    tok: Tokenizer,
    run_dir: &Path,
    rt: Runtime,
) -> Result<RunResult> {
    // The wall-clock budget never changes what a run computes before it
    // stops, nor does the step limit under a constant learning rate: a run
    // started again with more of either continues (and is tested again).
    let budget: &[&str] = if cfg.lr_decay == LrDecay::Constant {
        &["/model/max_seconds", "/model/max_steps"]
    } else {
        &["/model/max_seconds"]
    };
    let run = RunDir::create_extendable(
        run_dir,
        &StoredRun {
            model: cfg.clone(),
            eval: eval.clone(),
            users: split.n_users(),
            items: split.n_items,
        },
        budget,
    )?;
    let done = run_dir.join("metrics.json");
    if run.extended() && done.is_file() {
        std::fs::remove_file(&done)
            .map_err(|e| ElmrecError::Config(format!("{}: {e}", done.display())))?;
    }
    if done.is_file() {
        let text = std::fs::read_to_string(&done)
            .map_err(|e| ElmrecError::Config(format!("{}: {e}", done.display())))?;
        return serde_json::from_str(&text)
            .map_err(|e| ElmrecError::Config(format!("{}: {e}", done.display())));
    }
    let model = ElmrecModel::new(cfg, split, tok, rt.device)?;
    let valid = validation_set(split, cfg)?;
    let params = model.named_parameters();
    let parameters = params.iter().map(|(_, t)| t.numel() as i64).sum();
    let mut opt = AdamW::new(cfg.optimizer.clone(), params)?;
    let lc = LoopConfig {
        max_steps: cfg.max_steps,
        accumulation: cfg.accumulation(),
        eval_every: Some(cfg.eval_every),
        checkpoint_every: cfg.checkpoint_every,
        max_seconds: cfg.max_seconds,
        clip_norm: cfg.clip_norm,
        patience: cfg.patience,
        seed: cfg.seed,
        schedule: cfg.lr_schedule(),
    };
    let outcome: TrainOutcome = {
        let mut task = ElmrecTrainer::new(&model, split, cfg, &valid)?;
        graft_train::train(&mut task, &mut opt, &run, &lc)?
    };
    graft_train::restore_best(&run, &mut opt)?;
    let test_report = evaluate(&model, test, eval, cfg.history_len, rt.progress)?;
    let result = RunResult {
        training: TrainSummary::from(&outcome),
        test: test_report,
        parameters,
    };
    run.write_json("metrics", &result)?;
    Ok(result)
}

/// As [`train_and_evaluate`], also returning the trained model with the
/// weights it was tested with (its best validation), loaded back from
/// `run_dir` as [`ElmrecModel::load`] does, so that it can recommend
/// ([`crate::ElmrecRecommender`] loads the same way) or be evaluated again.
///
/// # Errors
///
/// As [`train_and_evaluate`] and [`ElmrecModel::load`].
pub fn train_and_keep(
    cfg: &ElmrecConfig,
    eval: &EvalConfig,
    split: &LeaveOneOut,
    test: &EvalSet,
    tok: Tokenizer,
    run_dir: &Path,
    rt: Runtime,
) -> Result<(ElmrecModel, RunResult)> {
    let result = train_and_evaluate(cfg, eval, split, test, tok.clone(), run_dir, rt)?;
    let (model, _) = ElmrecModel::load(run_dir, split, tok, rt.device)?;
    Ok((model, result))
}

/// The `log.jsonl` records of a run directory (a torn last line, left by
/// a kill, is skipped).
///
/// # Errors
///
/// `Config` if the file cannot be read or a complete line is not JSON.
pub fn run_log(run_dir: &Path) -> Result<Vec<serde_json::Value>> {
    let path = run_dir.join("log.jsonl");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ElmrecError::Config(format!("{}: {e}", path.display())))?;
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) if i + 1 == lines.len() && !complete => {}
            Err(e) => {
                return Err(ElmrecError::Config(format!(
                    "{}:{}: {e}",
                    path.display(),
                    i + 1
                )))
            }
        }
    }
    Ok(out)
}
