//! Result rows and the markdown table the example and the docs print.

use graft_metrics::RankingReport;
use serde::{Deserialize, Serialize};

/// One row of a results table: a method under one inference mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultRow {
    /// Method (e.g. `popularity`, `t5 elmrec`).
    pub method: String,
    /// How the numbers were produced (e.g. `candidate likelihood / reranked`).
    pub inference: String,
    /// Direct recommendation (1 + 99 candidates).
    pub direct: Option<RankingReport>,
    /// Sequential recommendation (all items).
    pub sequential: Option<RankingReport>,
    /// Training seconds (0 for untrained methods).
    pub train_seconds: f64,
    /// Evaluation seconds.
    pub eval_seconds: f64,
    /// The per-user ranks behind the numbers, for paired comparisons
    /// between rows on the same test users (absent in results written
    /// before they were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranks: Option<RowRanks>,
}

/// Per-user ranks of one row, in test-user order; `None` = the target was
/// not among the generated items (counts as a miss at every cutoff).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowRanks {
    /// The test users.
    pub users: Vec<u32>,
    /// Direct recommendation.
    pub direct: Vec<Option<usize>>,
    /// Sequential recommendation.
    pub sequential: Vec<Option<usize>>,
}

impl RowRanks {
    /// Per-user HR@`k` (1 or 0) of a task (`direct` or not).
    pub fn hits(&self, direct: bool, k: usize) -> Vec<f64> {
        let v = if direct {
            &self.direct
        } else {
            &self.sequential
        };
        v.iter().map(|r| graft_metrics::hit_at(*r, k)).collect()
    }

    /// Per-user NDCG@`k` of a task.
    pub fn ndcg(&self, direct: bool, k: usize) -> Vec<f64> {
        let v = if direct {
            &self.direct
        } else {
            &self.sequential
        };
        v.iter().map(|r| graft_metrics::ndcg_at(*r, k)).collect()
    }
}

fn cell(r: Option<&RankingReport>, k: usize, ndcg: bool) -> String {
    let Some(c) = r.and_then(|r| r.at(k)) else {
        return "–".into();
    };
    let (v, ci) = if ndcg {
        (c.ndcg, c.ndcg_ci.as_ref())
    } else {
        (c.hr, c.hr_ci.as_ref())
    };
    match ci {
        Some(ci) => format!("{v:.4} ±{:.4}", (ci.upper - ci.lower) / 2.0),
        None => format!("{v:.4}"),
    }
}

/// A markdown table: HR/NDCG at each `k` for both tasks (value ± half the
/// 95% bootstrap interval), and the seconds spent.
pub fn markdown_table(rows: &[ResultRow], ks: &[usize]) -> String {
    let mut head = String::from("| method | inference |");
    let mut rule = String::from("|---|---|");
    for task in ["direct", "seq"] {
        for &k in ks {
            head.push_str(&format!(" {task} HR@{k} | {task} NDCG@{k} |"));
            rule.push_str("---|---|");
        }
    }
    head.push_str(" train s | eval s |\n");
    rule.push_str("---|---|\n");
    let mut out = head + &rule;
    for r in rows {
        out.push_str(&format!("| {} | {} |", r.method, r.inference));
        for rep in [r.direct.as_ref(), r.sequential.as_ref()] {
            for &k in ks {
                out.push_str(&format!(
                    " {} | {} |",
                    cell(rep, k, false),
                    cell(rep, k, true)
                ));
            }
        }
        out.push_str(&format!(
            " {:.0} | {:.0} |\n",
            r.train_seconds, r.eval_seconds
        ));
    }
    out
}
