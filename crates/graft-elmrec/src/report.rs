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
