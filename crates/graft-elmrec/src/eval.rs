//! Evaluating a trained model on a fixed evaluation set: direct
//! recommendation by constrained generation over the candidate list and by
//! candidate log-likelihood, sequential recommendation by constrained
//! generation over all items, with and without reranking.

use std::time::Instant;

use graft_baselines::EvalSet;
use graft_metrics::{rank_among, BootstrapConfig, RankingEvaluator, RankingReport};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::config::{EvalConfig, TaskMix};
use crate::data::{direct_example, sequential_example};
use crate::error::{ElmrecError, Result};
use crate::model::ElmrecModel;

/// HR/NDCG of one model under every inference mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmReport {
    /// Direct: beam search constrained to the 1 + negatives candidates.
    pub direct_generate: RankingReport,
    /// Direct: candidates ranked by the log-likelihood of their tokens.
    pub direct_score: RankingReport,
    /// Sequential: beam search constrained to all items, no reranking.
    pub sequential: RankingReport,
    /// Sequential with ELMRec's reranking: the top K + N generated items,
    /// history items dropped.
    pub sequential_reranked: RankingReport,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Per-user ranks of every mode, for paired comparisons (absent in
    /// reports written before they were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranks: Option<LmRanks>,
}

/// Per-user ranks of [`LmReport`]'s four modes, in test-user order (`None`:
/// not generated).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LmRanks {
    /// The test users.
    pub users: Vec<u32>,
    /// [`LmReport::direct_generate`].
    pub direct_generate: Vec<Option<usize>>,
    /// [`LmReport::direct_score`].
    pub direct_score: Vec<Option<usize>>,
    /// [`LmReport::sequential`].
    pub sequential: Vec<Option<usize>>,
    /// [`LmReport::sequential_reranked`].
    pub sequential_reranked: Vec<Option<usize>>,
}

/// Position (1-based) of `target` in `list`.
fn position(list: &[u32], target: u32) -> Option<usize> {
    list.iter().position(|&i| i == target).map(|p| p + 1)
}

/// ELMRec's reranking: keep the first `keep` generated items, drop those
/// in the history, return the rest in order.
pub fn rerank(generated: &[u32], history: &[u32], keep: usize) -> Vec<u32> {
    generated
        .iter()
        .take(keep)
        .filter(|i| !history.contains(i))
        .copied()
        .collect()
}

/// Evaluates `model` on every case of `set` (history truncated to
/// `history_len` in sequential prompts; reranking compares against the
/// whole history).
///
/// # Errors
///
/// Model failures; metric failures (e.g. no cases).
pub fn evaluate(
    model: &ElmrecModel,
    set: &EvalSet,
    cfg: &EvalConfig,
    history_len: usize,
    progress: bool,
) -> Result<LmReport> {
    let t0 = Instant::now();
    let _guard = tch::no_grad_guard();
    let tables = model.tables()?;
    let mut gen_ev = RankingEvaluator::new(&cfg.ks)?;
    let mut score_ev = RankingEvaluator::new(&cfg.ks)?;
    let mut seq_ev = RankingEvaluator::new(&cfg.ks)?;
    let mut rr_ev = RankingEvaluator::new(&cfg.ks)?;
    let max_k = cfg.ks.iter().copied().max().unwrap_or(10);
    let bar = if progress {
        ProgressBar::new(set.cases.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} users, {elapsed} elapsed, eta {eta}",
        )
        .map_err(|e| ElmrecError::Config(e.to_string()))?
        .progress_chars("=> "),
    );
    bar.set_message("evaluating");
    for case in &set.cases {
        let d = direct_example(case);
        let trie = model.candidate_trie(&d.candidates);
        let generated = model.generate(&d, &tables, &trie, cfg.beams_direct)?;
        gen_ev.push(position(&generated, case.target))?;
        let scores = model.score_candidates(&d, &tables)?;
        let idx = d
            .candidates
            .iter()
            .position(|&i| i == case.target)
            .ok_or_else(|| ElmrecError::Config("target not among the candidates".into()))?;
        score_ev.push(Some(rank_among(&scores, idx)?))?;
        let s = sequential_example(case, history_len);
        let generated = model.generate(&s, &tables, model.trie(), cfg.beams_sequential)?;
        seq_ev.push(position(&generated, case.target))?;
        let kept = rerank(&generated, &case.history, max_k + cfg.rerank_n);
        rr_ev.push(position(&kept, case.target))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let boot = BootstrapConfig::new(cfg.resamples, 0.95, cfg.seed);
    let ranks = LmRanks {
        users: set.cases.iter().map(|c| c.user).collect(),
        direct_generate: gen_ev.ranks().to_vec(),
        direct_score: score_ev.ranks().to_vec(),
        sequential: seq_ev.ranks().to_vec(),
        sequential_reranked: rr_ev.ranks().to_vec(),
    };
    Ok(LmReport {
        direct_generate: gen_ev.report_with_ci(&boot)?,
        direct_score: score_ev.report_with_ci(&boot)?,
        sequential: seq_ev.report_with_ci(&boot)?,
        sequential_reranked: rr_ev.report_with_ci(&boot)?,
        seconds: t0.elapsed().as_secs_f64(),
        ranks: Some(ranks),
    })
}

/// Validation hit rates of constrained generation: the share of `set`'s
/// cases whose target is among the first `k` items generated with `beams`
/// beams, direct (over each case's candidates) and sequential (over all
/// items, no reranking); `None` for a task not in `tasks`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GenerationHits {
    /// Direct HR@k.
    pub direct: Option<f64>,
    /// Sequential HR@k.
    pub sequential: Option<f64>,
}

impl GenerationHits {
    /// The mean over the tasks measured (`None` if neither was).
    pub fn mean(&self) -> Option<f64> {
        let v: Vec<f64> = [self.direct, self.sequential]
            .into_iter()
            .flatten()
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// [`GenerationHits`] of `model` on `set`.
///
/// # Errors
///
/// Model failures; `Config` for an empty set.
pub fn generation_hits(
    model: &ElmrecModel,
    set: &EvalSet,
    tasks: TaskMix,
    k: usize,
    beams: usize,
    history_len: usize,
) -> Result<GenerationHits> {
    if set.cases.is_empty() {
        return Err(ElmrecError::Config("no validation cases".into()));
    }
    let _guard = tch::no_grad_guard();
    let tables = model.tables()?;
    let hit = |generated: &[u32], target: u32| {
        usize::from(position(generated, target).is_some_and(|p| p <= k))
    };
    let (mut direct, mut seq) = (0usize, 0usize);
    for case in &set.cases {
        if tasks != TaskMix::Sequential {
            let d = direct_example(case);
            let trie = model.candidate_trie(&d.candidates);
            direct += hit(&model.generate(&d, &tables, &trie, beams)?, case.target);
        }
        if tasks != TaskMix::Direct {
            let s = sequential_example(case, history_len);
            seq += hit(
                &model.generate(&s, &tables, model.trie(), beams)?,
                case.target,
            );
        }
    }
    let n = set.cases.len() as f64;
    Ok(GenerationHits {
        direct: (tasks != TaskMix::Sequential).then(|| direct as f64 / n),
        sequential: (tasks != TaskMix::Direct).then(|| seq as f64 / n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rerank_drops_history_within_the_kept_prefix() {
        assert_eq!(rerank(&[5, 3, 9, 1, 7], &[3, 7], 4), vec![5, 9, 1]);
        assert_eq!(position(&[5, 9, 1], 1), Some(3));
        assert_eq!(position(&[5, 9, 1], 2), None);
    }
}
