//! One experiment = the baselines and the language-model variants on the
//! same split and the same fixed test users; what the `elmrec` example and
//! the demo run.

use std::time::Instant;

use graft_baselines::{
    rank_cases, report_from_ranks, BprConfig, EvalSet, ItemScorer, LightGcnBpr, Popularity,
    RandomPropagation, SasRec, SasRecConfig, SequentialIndex, Split,
};
use graft_data::{GraphEdges, ItemPermutation, LeaveOneOut, Reindex};
use graft_metrics::BootstrapConfig;
use graft_propagate::{LayerCombine, LightGcnConfig};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::config::EvalConfig;
use crate::error::Result;
use crate::pipeline::RunResult;
use crate::report::{ResultRow, RowRanks};

/// The split and the fixed evaluation users of one experiment, after the
/// optional renumbering of items ([`Reindex`]).
///
/// The test set (and the baselines' validation set) is built on the
/// original numbering and then renamed ([`EvalSet::renamed`]), so a run
/// under [`Reindex::Random`] is evaluated on exactly the users, targets and
/// negatives of the original run: only the numbers change.
#[derive(Debug, Clone)]
pub struct Protocol {
    /// The leave-one-out split, renumbered.
    pub split: LeaveOneOut,
    /// The renumbering applied (identity for [`Reindex::Original`]).
    pub permutation: ItemPermutation,
    /// Which renumbering.
    pub reindex: Reindex,
    /// The seeded test users.
    pub test: EvalSet,
    /// The seeded validation users of the baselines' early stopping.
    pub valid: EvalSet,
}

/// Tag of the baselines' validation seed (`seed ^ VALID_TAG`).
pub const VALID_TAG: u64 = 0x7a11d;

impl Protocol {
    /// Builds the test set (`eval`) and `valid_users` validation cases on
    /// `original`, then renumbers everything with `reindex` (seeded with
    /// `eval.seed`).
    ///
    /// # Errors
    /// As [`EvalSet::build`] (e.g. no user with a target, too few items for
    /// the negatives).
    pub fn new(
        original: &LeaveOneOut,
        reindex: Reindex,
        eval: &EvalConfig,
        valid_users: usize,
    ) -> Result<Self> {
        let test = EvalSet::build(
            original,
            Split::Test,
            eval.test_users,
            eval.negatives,
            eval.seed,
        )?;
        let valid = EvalSet::build(
            original,
            Split::Valid,
            Some(valid_users),
            eval.negatives,
            eval.seed ^ VALID_TAG,
        )?;
        let permutation = reindex.permutation(original.n_items, eval.seed);
        Ok(Self {
            split: permutation.apply_split(original)?,
            test: test.renamed(&permutation)?,
            valid: valid.renamed(&permutation)?,
            permutation,
            reindex,
        })
    }
}

/// One non-LLM baseline of [`run_baselines`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// Train-degree popularity.
    Popularity,
    /// The `max(history) + 1` rule.
    SequentialIndex,
    /// Random-feature propagation, dot product.
    RandomPropagation,
    /// LightGCN trained with BPR.
    LightGcnBpr,
    /// SASRec.
    SasRec,
}

impl Baseline {
    /// Every baseline, in table order.
    pub const ALL: [Baseline; 5] = [
        Baseline::Popularity,
        Baseline::SequentialIndex,
        Baseline::RandomPropagation,
        Baseline::LightGcnBpr,
        Baseline::SasRec,
    ];
}

/// The name [`FromStr`](std::str::FromStr) reads back:
///
/// ```
/// use graft_elmrec::experiment::Baseline;
///
/// for b in Baseline::ALL {
///     assert_eq!(b.to_string().parse::<Baseline>(), Ok(b));
/// }
/// ```
impl std::fmt::Display for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Baseline::Popularity => "popularity",
            Baseline::SequentialIndex => "sequential-index",
            Baseline::RandomPropagation => "random-propagation",
            Baseline::LightGcnBpr => "lightgcn-bpr",
            Baseline::SasRec => "sasrec",
        })
    }
}

impl std::str::FromStr for Baseline {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "popularity" => Ok(Baseline::Popularity),
            "sequential-index" => Ok(Baseline::SequentialIndex),
            "random-propagation" => Ok(Baseline::RandomPropagation),
            "lightgcn-bpr" | "bpr" => Ok(Baseline::LightGcnBpr),
            "sasrec" => Ok(Baseline::SasRec),
            _ => Err(format!(
                "unknown baseline {s:?} (popularity, sequential-index, random-propagation, lightgcn-bpr, sasrec)"
            )),
        }
    }
}

/// Settings of the non-LLM baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineSettings {
    /// LightGCN trained with BPR (its `graph` field is set from
    /// [`graph_edges`](Self::graph_edges)).
    pub bpr: BprConfig,
    /// Random-feature propagation scored by dot product (ELMRec's
    /// graph-aware vectors with no language model).
    pub propagation: LightGcnConfig,
    /// SASRec; `None` skips it.
    pub sasrec: Option<SasRecConfig>,
    /// The graph of the random-propagation and LightGCN baselines.
    pub graph_edges: GraphEdges,
    /// Which baselines run (all by default; SASRec also needs `sasrec`).
    pub run: Vec<Baseline>,
}

impl BaselineSettings {
    /// BPR and SASRec defaults; propagation with ELMRec's L and sigma at
    /// width `dim`; the clean (train-only) graph.
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
            sasrec: Some(SasRecConfig {
                seed,
                ..SasRecConfig::default()
            }),
            graph_edges: GraphEdges::Train,
            run: Baseline::ALL.to_vec(),
        }
    }
}

/// A baseline's row on `test`, with its per-user ranks (sequential:
/// history dropped).
fn row(
    method: &str,
    scorer: &dyn ItemScorer,
    test: &EvalSet,
    ks: &[usize],
    boot: &BootstrapConfig,
    train_seconds: f64,
) -> Result<ResultRow> {
    let t0 = Instant::now();
    let ranks = rank_cases(scorer, test)?;
    let secs = t0.elapsed().as_secs_f64();
    let r = report_from_ranks(scorer.name(), test.split, &ranks, ks, boot, secs)?;
    Ok(ResultRow {
        method: method.to_string(),
        inference: "score all items; seq: history dropped".into(),
        direct: Some(r.direct),
        sequential: Some(r.sequential_history_dropped),
        train_seconds,
        eval_seconds: r.seconds,
        ranks: Some(RowRanks {
            users: ranks.iter().map(|c| c.user).collect(),
            direct: ranks.iter().map(|c| Some(c.direct)).collect(),
            sequential: ranks
                .iter()
                .map(|c| Some(c.sequential_history_dropped))
                .collect(),
        }),
    })
}

/// Popularity, the sequential-index rule, random propagation and
/// LightGCN-BPR (both over the graph `s.graph_edges` selects; BPR
/// early-stopped on `valid`) and SASRec (early-stopped on `valid`, trained
/// on `device`), each evaluated on `test`.
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
    device: Device,
) -> Result<Vec<ResultRow>> {
    let mut rows = Vec::new();
    let on = |b: Baseline| s.run.contains(&b);
    if on(Baseline::Popularity) {
        let pop = Popularity::fit(split);
        rows.push(row("popularity", &pop, test, ks, boot, 0.0)?);
    }
    if on(Baseline::SequentialIndex) {
        let si = SequentialIndex::new(split.n_items);
        rows.push(row("sequential-index", &si, test, ks, boot, 0.0)?);
    }
    let graph = match s.graph_edges {
        GraphEdges::Train => String::new(),
        e => format!(" [graph {e}]"),
    };
    if on(Baseline::RandomPropagation) {
        let t0 = Instant::now();
        let rp = RandomPropagation::fit_on(split, &s.propagation, s.graph_edges)?;
        let secs = t0.elapsed().as_secs_f64();
        rows.push(row(
            &format!("random propagation · dot{graph}"),
            &rp,
            test,
            ks,
            boot,
            secs,
        )?);
    }
    if on(Baseline::LightGcnBpr) {
        let t0 = Instant::now();
        let bpr_cfg = BprConfig {
            graph: s.graph_edges,
            ..s.bpr.clone()
        };
        let (bpr, _log) = LightGcnBpr::train(split, &bpr_cfg, Some(valid))?;
        let secs = t0.elapsed().as_secs_f64();
        rows.push(row(
            &format!("LightGCN (BPR){graph}"),
            &bpr,
            test,
            ks,
            boot,
            secs,
        )?);
    }
    if let (true, Some(cfg)) = (on(Baseline::SasRec), &s.sasrec) {
        let t0 = Instant::now();
        let (model, log) = SasRec::train(split, cfg, Some(valid), device)?;
        let secs = t0.elapsed().as_secs_f64();
        rows.push(row(
            &format!("SASRec (epoch {} of {})", model.best_epoch(), log.len()),
            &model,
            test,
            ks,
            boot,
            secs,
        )?);
    }
    Ok(rows)
}

/// The two rows of a trained language model. The first is the papers'
/// protocol and the headline: direct recommendation by beam search (20
/// beams) constrained to the candidates' IDs, as POD and ELMRec score it,
/// with ELMRec's reranked sequential beams. The second ranks all candidates
/// by likelihood (not the papers' protocol; kept as a second, labelled row)
/// with the sequential beams not reranked.
pub fn lm_rows(method: &str, r: &RunResult) -> Vec<ResultRow> {
    vec![
        ResultRow {
            method: method.to_string(),
            inference: "direct: constrained beam (papers' protocol); seq: beam + rerank".into(),
            direct: Some(r.test.direct_generate.clone()),
            sequential: Some(r.test.sequential_reranked.clone()),
            train_seconds: r.training.seconds,
            eval_seconds: r.test.seconds,
            ranks: r.test.ranks.as_ref().map(|x| RowRanks {
                users: x.users.clone(),
                direct: x.direct_generate.clone(),
                sequential: x.sequential_reranked.clone(),
            }),
        },
        ResultRow {
            method: method.to_string(),
            inference: "direct: candidate likelihood (not the papers'); seq: beam, no rerank"
                .into(),
            direct: Some(r.test.direct_score.clone()),
            sequential: Some(r.test.sequential.clone()),
            train_seconds: r.training.seconds,
            eval_seconds: r.test.seconds,
            ranks: r.test.ranks.as_ref().map(|x| RowRanks {
                users: x.users.clone(),
                direct: x.direct_score.clone(),
                sequential: x.sequential.clone(),
            }),
        },
    ]
}
