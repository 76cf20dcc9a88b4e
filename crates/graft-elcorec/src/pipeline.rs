//! One run directory per model: train (or resume) under graft-train's
//! loop, restore the best validation checkpoint, score the test subset,
//! write `metrics.json`. A directory that already holds `metrics.json`
//! returns it without training again.

use std::path::Path;
use std::time::Instant;

use graft_data::CtrSample;
use graft_lm::Llama;
use graft_metrics::{ctr_report, BootstrapConfig, CtrReport, DEFAULT_LOG_LOSS_EPS};
use graft_train::{
    restore_best, AdamW, AdamWConfig, LoopConfig, LrSchedule, RunDir, TrainSummary, TrainTask,
};
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tokenizers::Tokenizer;

use crate::baseline::{CtrBaseline, EpochTrainer};
use crate::classic::ClassicCtr;
use crate::config::{ClassicConfig, DinConfig, GatExpertConfig, KeptWeights, LlmConfig};
use crate::data::CtrData;
use crate::din::Din;
use crate::error::Result;
use crate::expert::{GatExpert, GatPretrainer};
use crate::llm::{CtrLlm, LlmTrainer, PromptSet};
use crate::rap::RapBuilder;

pub use graft_train::Runtime;

/// What every run writes to `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CtrResult {
    /// Model name (`lr`, `fm`, `gat`, or an LLM variant).
    pub model: String,
    /// AUC and LogLoss on the test subset, with 95% bootstrap CIs.
    pub test: CtrReport,
    /// Training summary.
    pub training: TrainSummary,
    /// Samples the model was trained on.
    pub train_samples: usize,
    /// Samples (prompts, for an LLM) seen in training: steps times the
    /// batch (0 in files written before it was stored).
    #[serde(default)]
    pub samples_seen: u64,
    /// Trainable parameters.
    pub parameters: i64,
    /// Seconds spent scoring the test subset.
    pub test_seconds: f64,
    /// Labels of the test subset, in its order (paired comparisons; empty
    /// in files written before they were stored).
    #[serde(default)]
    pub labels: Vec<bool>,
    /// The predicted click probability of every test sample, in the same
    /// order (empty in older files).
    #[serde(default)]
    pub probabilities: Vec<f64>,
}

/// The bootstrap of every reported CI: 1000 resamples, 95%, seed 0.
pub fn bootstrap() -> BootstrapConfig {
    BootstrapConfig::new(1000, 0.95, 0)
}

/// The stored result of a finished run directory; `samples_seen` is filled
/// in from the steps and the run's `batch` for files written before it was
/// stored.
fn finished(run: &RunDir, batch: usize) -> Result<Option<CtrResult>> {
    let done: Option<CtrResult> = run.read_json("metrics")?;
    Ok(done.map(|mut r| {
        if r.samples_seen == 0 {
            r.samples_seen = r.training.steps * batch as u64;
        }
        r
    }))
}

/// The sample settings a GAT or classic run depends on (not the LLM's
/// prompt length or training subset, so LLM runs with other prompts reuse
/// these runs).
fn shared_samples(data: &CtrData) -> serde_json::Value {
    let c = &data.config;
    let mut v = serde_json::json!({
        "k_gat": c.k_gat,
        "valid_samples": c.valid_samples,
        "test_samples": c.test_samples,
        "seed": c.seed,
    });
    // The split's settings only when changed, so earlier runs still resume.
    if c.ctr != graft_data::CtrConfig::default() {
        v["ctr"] = serde_json::json!(c.ctr);
    }
    v
}

/// Number of scalars in `params`.
fn count(params: &[(String, Tensor)]) -> i64 {
    params.iter().map(|(_, t)| t.numel() as i64).sum()
}

/// Trains `task` in `run` (resuming a checkpoint), restores the best
/// validation weights and returns the training summary.
fn fit<T: TrainTask>(
    task: &mut T,
    opt: &mut AdamW,
    run: &RunDir,
    lc: &LoopConfig,
) -> Result<TrainSummary> {
    let outcome = graft_train::train(task, opt, run, lc)?;
    restore_best(run, opt)?;
    Ok(TrainSummary::from(&outcome))
}

/// Scores the test subset with `predict`, writes `metrics.json`.
#[allow(clippy::too_many_arguments)] // the parts of one result
fn finish(
    run: &RunDir,
    model: &str,
    test: &[CtrSample],
    training: TrainSummary,
    train_samples: usize,
    batch: usize,
    parameters: i64,
    predict: impl FnOnce() -> Result<Vec<f64>>,
) -> Result<CtrResult> {
    let start = Instant::now();
    let p = predict()?;
    let test_seconds = start.elapsed().as_secs_f64();
    let labels = CtrData::labels(test);
    let result = CtrResult {
        model: model.to_owned(),
        test: ctr_report(&labels, &p, DEFAULT_LOG_LOSS_EPS, Some(&bootstrap()))?,
        samples_seen: training.steps * batch as u64,
        training,
        train_samples,
        parameters,
        test_seconds,
        labels,
        probabilities: p,
    };
    run.write_json("metrics", &result)?;
    Ok(result)
}

/// Pre-trains the GAT expert in `run_dir` (or loads a finished run's best
/// weights) and scores it alone on the test subset.
///
/// # Errors
/// Any failure of the parts.
pub fn pretrain_gat(
    data: &CtrData,
    cfg: &GatExpertConfig,
    run_dir: &Path,
    rt: Runtime,
) -> Result<(GatExpert, CtrResult)> {
    let run = RunDir::create(
        run_dir,
        &serde_json::json!({ "gat": cfg, "samples": shared_samples(data), "dataset": data.dataset.name }),
    )?;
    let expert = GatExpert::new(data, cfg, rt.device)?;
    if let Some(done) = finished(&run, cfg.batch_size.min(data.split.train.len()))? {
        expert.load(&run_dir.join(graft_train::train::BEST_FILE))?;
        return Ok((expert, done));
    }
    let params = expert.named_parameters();
    let n_params = count(&params);
    let mut opt = AdamW::new(cfg.optimizer.clone(), params)?;
    let n_train = data.split.train.len();
    let lc = LoopConfig {
        max_steps: cfg.total_steps(n_train),
        accumulation: 1,
        eval_every: Some(cfg.eval_every(n_train)),
        checkpoint_every: cfg.eval_every(n_train),
        max_seconds: None,
        clip_norm: None,
        patience: cfg.patience,
        seed: cfg.seed,
        schedule: None,
    };
    let training = fit(&mut GatPretrainer::new(&expert, data), &mut opt, &run, &lc)?;
    let result = finish(
        &run,
        &cfg.name(),
        &data.test,
        training,
        data.split.train.len(),
        cfg.batch_size.min(data.split.train.len()),
        n_params,
        || expert.predict(data, &data.test),
    )?;
    Ok((expert, result))
}

/// Trains and scores a classic baseline (LR, or FM with `cfg.factors`).
///
/// # Errors
/// Any failure of the parts.
pub fn run_classic(
    data: &CtrData,
    cfg: &ClassicConfig,
    run_dir: &Path,
    rt: Runtime,
) -> Result<CtrResult> {
    let config = serde_json::json!({ "classic": cfg, "samples": shared_samples(data), "dataset": data.dataset.name });
    let epochs = (cfg.max_epochs, cfg.patience);
    run_baseline(data, &config, epochs, &cfg.optimizer, run_dir, || {
        Ok(ClassicCtr::new(data, cfg, rt.device))
    })
}

/// Trains and scores DIN.
///
/// # Errors
/// Any failure of the parts.
pub fn run_din(data: &CtrData, cfg: &DinConfig, run_dir: &Path, rt: Runtime) -> Result<CtrResult> {
    let config = serde_json::json!({ "din": cfg, "samples": shared_samples(data), "dataset": data.dataset.name });
    let epochs = (cfg.max_epochs, cfg.patience);
    run_baseline(data, &config, epochs, &cfg.optimizer, run_dir, || {
        Din::new(data, cfg, rt.device)
    })
}

/// Trains a [`CtrBaseline`] in `run_dir` (or reads back a finished run):
/// at most `max_epochs` epochs, validation every epoch, stopping after
/// `patience` epochs without a better AUC; the best weights score the test
/// subset.
fn run_baseline<M: CtrBaseline>(
    data: &CtrData,
    config: &serde_json::Value,
    (max_epochs, patience): (usize, usize),
    optimizer: &AdamWConfig,
    run_dir: &Path,
    build: impl FnOnce() -> Result<M>,
) -> Result<CtrResult> {
    let run = RunDir::create(run_dir, config)?;
    let model = build()?;
    let batch = model.batch_size().min(data.split.train.len());
    if let Some(done) = finished(&run, batch)? {
        return Ok(done);
    }
    let params = model.named_parameters();
    let n_params = count(&params);
    let mut opt = AdamW::new(optimizer.clone(), params)?;
    let per_epoch = model.steps_per_epoch(data);
    let lc = LoopConfig {
        max_steps: per_epoch * max_epochs as u64,
        accumulation: 1,
        eval_every: Some(per_epoch),
        checkpoint_every: per_epoch,
        max_seconds: None,
        clip_norm: None,
        patience: Some(patience),
        seed: model.seed(),
        schedule: None,
    };
    let training = fit(&mut EpochTrainer::new(&model, data), &mut opt, &run, &lc)?;
    finish(
        &run,
        model.name(),
        &data.test,
        training,
        data.split.train.len(),
        batch,
        n_params,
        || model.predict(data, &data.test),
    )
}

/// Prompts (and GAT vectors, with `expert`) of `samples`.
///
/// # Errors
/// Retrieval, template, tokenizer and expert errors.
pub fn prompt_set(
    llm: &CtrLlm,
    rap: &RapBuilder,
    data: &CtrData,
    expert: Option<&GatExpert>,
    samples: &[CtrSample],
) -> Result<PromptSet> {
    let prompts = samples
        .iter()
        .map(|s| llm.encode(&rap.prompt(data, s)?))
        .collect::<Result<Vec<_>>>()?;
    let gat = expert
        .map(|e| e.target_vectors(data, samples))
        .transpose()?;
    Ok(PromptSet {
        prompts,
        gat,
        labels: CtrData::labels(samples),
    })
}

/// Fine-tunes the LLM variant `cfg.variant` (LoRA + projection) in
/// `run_dir` and scores it on the test subset. `rap` must write prompts
/// of the variant (its RAP lists; a placeholder exactly when the variant
/// has the GAT token); `expert` is the frozen, pre-trained GAT (needed by
/// variants with the token).
///
/// # Errors
/// [`crate::ElcorecError::Config`] if the variant needs the expert and it
/// is missing; any failure of the parts.
#[allow(clippy::too_many_arguments)] // each is a separate part the caller owns
pub fn run_llm(
    data: &CtrData,
    expert: Option<&GatExpert>,
    rap: &RapBuilder,
    llama: Llama,
    tok: Tokenizer,
    cfg: &LlmConfig,
    run_dir: &Path,
    rt: Runtime,
) -> Result<CtrResult> {
    // A variant that reads the expert's token records which expert it read.
    let expert_cfg = expert
        .filter(|_| cfg.variant.gat_token())
        .map(GatExpert::config);
    let run = RunDir::create(
        run_dir,
        &serde_json::json!({ "llm": cfg, "rap": rap.config(), "samples": data.config, "dataset": data.dataset.name, "expert": expert_cfg }),
    )?;
    if let Some(done) = finished(&run, cfg.batch())? {
        return Ok(done);
    }
    let expert = if cfg.variant.gat_token() {
        Some(expert.ok_or_else(|| {
            crate::ElcorecError::Config(format!(
                "the variant {} needs the pre-trained GAT expert",
                cfg.variant.name()
            ))
        })?)
    } else {
        None
    };
    let llm = CtrLlm::new(llama, tok, cfg, expert.map(GatExpert::dim))?;
    let train_samples = data.llm_train();
    let train = prompt_set(&llm, rap, data, expert, &train_samples)?;
    // With the last weights kept, the loop still validates once when
    // training stops: recorded in the log, not used to choose anything.
    let valid = prompt_set(&llm, rap, data, expert, &data.valid)?.head(cfg.valid_samples)?;
    let params = llm.named_parameters();
    let n_params = count(&params);
    let mut opt = AdamW::new(cfg.optimizer.clone(), params)?;
    let total = cfg.total_steps(train.len());
    let best = cfg.keep == KeptWeights::BestValidation;
    let lc = LoopConfig {
        max_steps: total,
        accumulation: cfg.accumulation,
        eval_every: best.then_some(cfg.eval_every),
        checkpoint_every: cfg.checkpoint_every,
        max_seconds: cfg.max_seconds,
        clip_norm: cfg.clip_norm,
        patience: None,
        seed: cfg.seed,
        schedule: Some(LrSchedule {
            base_lr: cfg.optimizer.lr,
            warmup_steps: cfg.warmup_steps,
            decay: cfg.lr_decay,
            total_steps: total,
        }),
    };
    let mut task = LlmTrainer::new(&llm, &train, &valid);
    let training = if best {
        fit(&mut task, &mut opt, &run, &lc)?
    } else {
        TrainSummary::from(&graft_train::train(&mut task, &mut opt, &run, &lc)?)
    };
    let test = prompt_set(&llm, rap, data, expert, &data.test)?;
    finish(
        &run,
        cfg.variant.name(),
        &data.test,
        training,
        train.len(),
        cfg.batch(),
        n_params,
        || llm.predict(&test.prompts, test.gat.as_ref(), rt.progress),
    )
}
