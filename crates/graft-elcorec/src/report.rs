//! The results table and paired differences between its rows.

use std::fmt::Write as _;
use std::path::Path;

use graft_metrics::{
    paired_auc_difference_ci, paired_log_loss_difference_ci, BootstrapConfig, ConfidenceInterval,
};
use serde::{Deserialize, Serialize};

use crate::error::{ElcorecError, Result};
use crate::pipeline::CtrResult;

/// ELCoRec's reported test AUC (Table 2 of the paper) for a dataset name
/// containing `ml-1m`, `ml-25m` or `book`.
pub fn paper_auc(dataset: &str) -> Option<f64> {
    let d = dataset.to_ascii_lowercase();
    if d.contains("25m") {
        Some(0.8468)
    } else if d.contains("1m") || d.contains("100k") {
        // ML-100K stands in for ML-1M in our CPU protocol.
        Some(0.8129)
    } else if d.contains("book") {
        Some(0.7536)
    } else {
        None
    }
}

fn ci(c: Option<&graft_metrics::ConfidenceInterval>) -> String {
    c.map_or_else(String::new, |c| {
        format!(" [{:.4}, {:.4}]", c.lower, c.upper)
    })
}

/// A markdown table: model, AUC and LogLoss with 95% CIs, training
/// samples, samples (prompts) seen in training, steps and seconds, test
/// seconds.
pub fn markdown_table(results: &[CtrResult]) -> String {
    let mut s = String::from(
        "| model | AUC [95% CI] | LogLoss [95% CI] | train samples | seen in training | steps | train s | test s |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {:.4}{} | {:.4}{} | {} | {} | {} | {:.0} | {:.0} |",
            r.model,
            r.test.auc,
            ci(r.test.auc_ci.as_ref()),
            r.test.log_loss,
            ci(r.test.log_loss_ci.as_ref()),
            r.train_samples,
            r.samples_seen,
            r.training.steps,
            r.training.seconds,
            r.test_seconds
        );
    }
    s
}

/// A paired comparison of two rows on the same test samples: `A - B` of
/// AUC and of LogLoss with 95% paired bootstrap intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedCtr {
    /// Row A's model.
    pub a: String,
    /// Row B's model.
    pub b: String,
    /// Paired test samples.
    pub n: usize,
    /// `auc(A) - auc(B)`.
    pub auc: ConfidenceInterval,
    /// `log_loss(A) - log_loss(B)` (negative: A is better).
    pub log_loss: ConfidenceInterval,
}

impl PairedCtr {
    /// Compares `a` with `b` on their stored test predictions.
    ///
    /// # Errors
    /// [`ElcorecError::Config`] when a row has no stored predictions
    /// (written by an older graft) or the two were scored on different
    /// samples (their labels differ); metric errors.
    pub fn new(a: &CtrResult, b: &CtrResult, boot: &BootstrapConfig) -> Result<Self> {
        for r in [a, b] {
            if r.probabilities.is_empty() || r.probabilities.len() != r.labels.len() {
                return Err(ElcorecError::Config(format!(
                    "row {} has no stored test predictions (written by an older graft); rerun it",
                    r.model
                )));
            }
        }
        if a.labels != b.labels {
            return Err(ElcorecError::Config(format!(
                "rows {} and {} were scored on different test samples ({} vs {}); a paired comparison needs the same ones",
                a.model,
                b.model,
                a.labels.len(),
                b.labels.len()
            )));
        }
        Ok(Self {
            a: a.model.clone(),
            b: b.model.clone(),
            n: a.labels.len(),
            auc: paired_auc_difference_ci(&a.labels, &a.probabilities, &b.probabilities, boot)?,
            log_loss: paired_log_loss_difference_ci(
                &a.labels,
                &a.probabilities,
                &b.probabilities,
                a.test.eps,
                boot,
            )?,
        })
    }
}

/// The comparisons the ELCoRec readings need, among the rows present:
/// `elcorec` against each expert row, LR, DIN and its ablations; each
/// expert row against LR and DIN; each expert option row against the
/// official expert (`gat`).
///
/// # Errors
/// As [`PairedCtr::new`].
pub fn paired_readings(results: &[CtrResult], boot: &BootstrapConfig) -> Result<Vec<PairedCtr>> {
    let find = |m: &str| results.iter().find(|r| r.model == m);
    let experts: Vec<&CtrResult> = results
        .iter()
        .filter(|r| r.model.starts_with("gat"))
        .collect();
    let mut pairs: Vec<(&CtrResult, &CtrResult)> = Vec::new();
    if let Some(llm) = find("elcorec") {
        pairs.extend(experts.iter().map(|&e| (llm, e)));
        for other in ["lr", "din", "no-rap", "no-gat-token"] {
            pairs.extend(find(other).map(|o| (llm, o)));
        }
    }
    for baseline in ["lr", "din"] {
        if let Some(b) = find(baseline) {
            pairs.extend(experts.iter().map(|&e| (e, b)));
        }
    }
    if let Some(official) = find("gat") {
        pairs.extend(
            experts
                .iter()
                .filter(|e| e.model != "gat")
                .map(|&e| (e, official)),
        );
    }
    pairs
        .into_iter()
        .map(|(a, b)| PairedCtr::new(a, b, boot))
        .collect()
}

/// A markdown table of paired differences.
pub fn paired_markdown(rows: &[PairedCtr]) -> String {
    let mut s = String::from(
        "| A - B | samples | AUC difference [95% paired CI] | LogLoss difference [95% paired CI] |\n|---|---|---|---|\n",
    );
    for p in rows {
        let _ = writeln!(
            s,
            "| {} - {} | {} | {:+.4} [{:+.4}, {:+.4}] | {:+.4} [{:+.4}, {:+.4}] |",
            p.a,
            p.b,
            p.n,
            p.auc.estimate,
            p.auc.lower,
            p.auc.upper,
            p.log_loss.estimate,
            p.log_loss.lower,
            p.log_loss.upper
        );
    }
    s
}

/// The rows of a `results.json` the `elcorec` example wrote.
///
/// # Errors
/// [`ElcorecError::Config`] naming the file for a missing or malformed
/// file.
pub fn read_results(path: &Path) -> Result<Vec<CtrResult>> {
    let bad = |e: &dyn std::fmt::Display| ElcorecError::Config(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e))?;
    serde_json::from_value(json["results"].clone()).map_err(|e| bad(&format!("results: {e}")))
}
