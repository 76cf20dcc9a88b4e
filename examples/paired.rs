//! Paired differences between two rows of `elmrec` results (`results.json`)
//! on the same test users: the bootstrap interval of the mean per-user
//! difference (A minus B) of HR@K and NDCG@K, for both tasks. Rows of
//! `elcorec` results (`FILE::MODEL`) give the paired AUC and LogLoss
//! differences on the same test samples.
//!
//! ```text
//! cargo run --release --example paired -- \
//!     "runs/elmrec/beauty-baselines/original-share0.535/results.json::LightGCN (BPR) [graph share:0.535]" \
//!     "runs/elmrec/beauty-baselines/original-train/results.json::LightGCN (BPR)"
//! ```
//! A row is `FILE::METHOD`, optionally `::N` for the N-th row (0-based) of
//! that method: a language model has two rows, the headline first.

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use graft_elcorec::report::{paired_markdown, read_results, PairedCtr};
use graft_elcorec::CtrResult;
use graft_elmrec::{ResultRow, RowRanks};
use graft_metrics::{paired_difference_ci, BootstrapConfig};

#[path = "common/cli.rs"]
mod cli;

#[derive(Parser, Debug)]
#[command(
    about = "Paired bootstrap differences (A - B) between two rows of elmrec or elcorec results"
)]
struct Args {
    /// Row A: `FILE::METHOD[::N]`.
    a: String,
    /// Row B: `FILE::METHOD[::N]`.
    b: String,
    /// Cutoffs.
    #[arg(long, value_delimiter = ',', default_value = "5,10")]
    ks: Vec<usize>,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 1000)]
    resamples: usize,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 2024)]
    seed: u64,
}

fn load(spec: &str) -> Result<(String, RowRanks), Box<dyn Error>> {
    let mut parts = spec.split("::");
    let file = PathBuf::from(parts.next().unwrap_or_default());
    let method = parts
        .next()
        .ok_or_else(|| format!("{spec:?}: expected FILE::METHOD[::N]"))?;
    let n: usize = match parts.next() {
        Some(n) => n
            .parse()
            .map_err(|_| format!("{spec:?}: {n:?} is not a row index"))?,
        None => 0,
    };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let rows: Vec<ResultRow> = serde_json::from_value(json["rows"].clone())
        .map_err(|e| format!("{}: rows: {e}", file.display()))?;
    let matching: Vec<&ResultRow> = rows.iter().filter(|r| r.method == method).collect();
    let row = matching.get(n).ok_or_else(|| {
        let names: Vec<&str> = rows.iter().map(|r| r.method.as_str()).collect();
        format!(
            "{}: no row {n} of method {method:?} (rows: {names:?})",
            file.display()
        )
    })?;
    let ranks = row.ranks.clone().ok_or_else(|| {
        format!(
            "{}: row {method:?} has no per-user ranks (written by an older graft)",
            file.display()
        )
    })?;
    Ok((format!("{method} ({})", row.inference), ranks))
}

fn main() -> std::process::ExitCode {
    cli::exit(run(Args::parse()))
}

/// `FILE::MODEL` of `elcorec` results, when `FILE` holds them.
fn ctr_row(spec: &str) -> Option<(PathBuf, String)> {
    let (file, model) = spec.split_once("::")?;
    let text = std::fs::read_to_string(file).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("results")?;
    Some((PathBuf::from(file), model.to_owned()))
}

fn run_ctr(
    a: (PathBuf, String),
    b: (PathBuf, String),
    boot: &BootstrapConfig,
) -> Result<(), Box<dyn Error>> {
    let row = |(file, model): &(PathBuf, String)| -> Result<CtrResult, Box<dyn Error>> {
        let rows = read_results(file)?;
        let names: Vec<String> = rows.iter().map(|r| r.model.clone()).collect();
        rows.into_iter()
            .find(|r| &r.model == model)
            .ok_or_else(|| format!("{}: no row {model:?} (rows: {names:?})", file.display()).into())
    };
    let paired = PairedCtr::new(&row(&a)?, &row(&b)?, boot)?;
    print!("{}", paired_markdown(&[paired]));
    Ok(())
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let boot = BootstrapConfig::new(args.resamples, 0.95, args.seed);
    if let (Some(a), Some(b)) = (ctr_row(&args.a), ctr_row(&args.b)) {
        return run_ctr(a, b, &boot);
    }
    let (na, a) = load(&args.a)?;
    let (nb, b) = load(&args.b)?;
    if a.users != b.users {
        return Err(format!(
            "the two rows were evaluated on different test users ({} vs {}): a paired comparison needs the same ones",
            a.users.len(),
            b.users.len()
        )
        .into());
    }
    println!("A = {na}\nB = {nb}\n{} paired test users\n", a.users.len());
    println!("| task | metric | A | B | A - B [95% paired CI] |");
    println!("|---|---|---|---|---|");
    for (task, direct) in [("direct", true), ("sequential", false)] {
        for &k in &args.ks {
            for (metric, ndcg) in [("HR", false), ("NDCG", true)] {
                let (x, y) = if ndcg {
                    (a.ndcg(direct, k), b.ndcg(direct, k))
                } else {
                    (a.hits(direct, k), b.hits(direct, k))
                };
                let ci = paired_difference_ci(&x, &y, &boot)?;
                let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
                println!(
                    "| {task} | {metric}@{k} | {:.4} | {:.4} | {:+.4} [{:+.4}, {:+.4}] |",
                    mean(&x),
                    mean(&y),
                    ci.estimate,
                    ci.lower,
                    ci.upper
                );
            }
        }
    }
    Ok(())
}
