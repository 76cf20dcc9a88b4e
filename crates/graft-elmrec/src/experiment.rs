//! One experiment = the baselines and the language-model variants on the
//! same split and the same fixed test users; what the `elmrec` example and
//! the demo run.

use std::time::Instant;

use graft_baselines::{evaluate, BprConfig, EvalSet, LightGcnBpr, Popularity, RandomPropagation};
use graft_data::LeaveOneOut;
use graft_metrics::BootstrapConfig;
use graft_propagate::{LayerCombine, LightGcnConfig};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::pipeline::RunResult;
use crate::report::ResultRow;

/// Settings of the non-LLM baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineSettings {
    /// LightGCN trained with BPR.
    pub bpr: BprConfig,
    /// Random-feature propagation scored by dot product (ELMRec's
    /// graph-aware vectors with no language model).
    pub propagation: LightGcnConfig,
}

impl BaselineSettings {
    /// BPR defaults; propagation with ELMRec's L and sigma at width `dim`.
    pub fn new(dim: usize, layers: usize, sigma: f32, seed: u64) -> Self {
        Self {
            bpr: BprConfig {
                seed,
                ..BprConfig::default()
            },
            propagation: LightGcnConfig {
                dim,
                layers,
                sigma,
                seed,
                combine: LayerCombine::Mean,
            },
        }
    }
}

fn row(method: &str, r: graft_baselines::ProtocolReport, train_seconds: f64) -> ResultRow {
    ResultRow {
        method: method.to_string(),
        inference: "score all items; seq: history dropped".into(),
        direct: Some(r.direct),
        sequential: Some(r.sequential_history_dropped),
        train_seconds,
        eval_seconds: r.seconds,
    }
}

/// Popularity, random propagation and LightGCN-BPR (early-stopped on
/// `valid`), each evaluated on `test`.
///
/// # Errors
///
/// Baseline failures.
pub fn run_baselines(
    split: &LeaveOneOut,
    test: &EvalSet,
    valid: &EvalSet,
    s: &BaselineSettings,
    ks: &[usize],
    boot: &BootstrapConfig,
) -> Result<Vec<ResultRow>> {
    let mut rows = Vec::new();
    let pop = Popularity::fit(split);
    rows.push(row("popularity", evaluate(&pop, test, ks, boot)?, 0.0));
    let t0 = Instant::now();
    let rp = RandomPropagation::fit(split, &s.propagation)?;
    let secs = t0.elapsed().as_secs_f64();
    rows.push(row(
        "random propagation · dot",
        evaluate(&rp, test, ks, boot)?,
        secs,
    ));
    let t0 = Instant::now();
    let (bpr, _log) = LightGcnBpr::train(split, &s.bpr, Some(valid))?;
    let secs = t0.elapsed().as_secs_f64();
    rows.push(row("LightGCN (BPR)", evaluate(&bpr, test, ks, boot)?, secs));
    Ok(rows)
}

/// The two rows of a trained language model: candidate likelihood with
/// reranked sequential beams, and constrained generation for both tasks
/// without reranking.
pub fn lm_rows(method: &str, r: &RunResult) -> Vec<ResultRow> {
    vec![
        ResultRow {
            method: method.to_string(),
            inference: "direct: candidate likelihood; seq: beam + rerank".into(),
            direct: Some(r.test.direct_score.clone()),
            sequential: Some(r.test.sequential_reranked.clone()),
            train_seconds: r.training.seconds,
            eval_seconds: r.test.seconds,
        },
        ResultRow {
            method: method.to_string(),
            inference: "direct: constrained beam; seq: beam, no rerank".into(),
            direct: Some(r.test.direct_generate.clone()),
            sequential: Some(r.test.sequential.clone()),
            train_seconds: r.training.seconds,
            eval_seconds: r.test.seconds,
        },
    ]
}
