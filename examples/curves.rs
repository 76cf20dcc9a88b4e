//! Training curves of finished runs, drawn from their `log.jsonl` files.
//!
//! Every graft training run (ELMRec, ELCoRec's GAT expert and LLM variants)
//! appends one JSON object per optimizer step (`{"step", "loss", ...}`) and
//! one per validation (`{"step", "eval"}`, higher is better) to
//! `RUN_DIR/log.jsonl`. This example draws one curve per run directory,
//! e.g. the three ELCoRec LLM variants of `docs/results/elcorec.md`:
//!
//! ```sh
//! cargo run --release --example curves -- --what eval --y-label "validation AUC" \
//!   --title "ELCoRec (SmolLM2 + LoRA) on ML-100K: validation AUC on 200 samples" \
//!   --out docs/results/img/elcorec_ml100k_validation_auc.png docs/results/elcorec/ml-100k/smollm2-*
//! ```
//!
//! A malformed line stops the example with its file, line and reason.

#[path = "common/cli.rs"]
mod cli;

use std::error::Error;
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use graft_plot::{line_chart_png, smooth, LineSeries};

/// Which records of `log.jsonl` to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum What {
    /// The training loss of every step (smoothed, see `--smooth`).
    Loss,
    /// The validation metric (`eval`, higher is better).
    Eval,
    /// Minus the validation metric (for runs that log minus a loss).
    NegEval,
    /// ELMRec's validation HR@10 of the direct task (`valid_hr_direct`).
    ValidDirect,
    /// ELMRec's validation HR@10 of the sequential task (`valid_hr_sequential`).
    ValidSequential,
}

#[derive(Debug, Parser)]
#[command(about = "Draws training curves of run directories from their log.jsonl files")]
struct Args {
    /// Run directories, each holding a `log.jsonl`; the legend names each by
    /// its folder name.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Which records to draw.
    #[arg(long, value_enum, default_value = "eval")]
    what: What,
    /// Moving-average window for `--what loss` (1 draws the raw losses).
    #[arg(long, default_value_t = 10)]
    smooth: usize,
    /// Chart title.
    #[arg(long, default_value = "training curves")]
    title: String,
    /// Y-axis name.
    #[arg(long)]
    y_label: Option<String>,
    /// Output PNG (written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Image width in pixels.
    #[arg(long, default_value_t = 1100)]
    width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 600)]
    height: u32,
}

/// The `(step, value)` points of one run's log.
fn points(log: &Path, what: What) -> Result<Vec<(f64, f64)>, Box<dyn Error>> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", log.display(), i + 1);
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{}: not JSON: {e}", at()))?;
        let key = match what {
            What::Loss => "loss",
            What::Eval | What::NegEval => "eval",
            What::ValidDirect => "valid_hr_direct",
            What::ValidSequential => "valid_hr_sequential",
        };
        let Some(y) = v.get(key) else { continue };
        let y = y
            .as_f64()
            .ok_or_else(|| format!("{}: \"{key}\" is not a number", at()))?;
        let step = v
            .get("step")
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| format!("{}: no numeric \"step\"", at()))?;
        out.push((step, if what == What::NegEval { -y } else { y }));
    }
    Ok(out)
}

fn main() -> std::process::ExitCode {
    cli::exit(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let mut series = Vec::new();
    for run in &args.runs {
        let name = run
            .file_name()
            .map_or_else(|| run.display().to_string(), |n| n.to_string_lossy().into());
        let pts = points(&run.join("log.jsonl"), args.what)?;
        if pts.is_empty() {
            return Err(format!(
                "{}: no {} records",
                run.join("log.jsonl").display(),
                args.what
                    .to_possible_value()
                    .map_or_else(String::new, |v| v.get_name().to_owned())
            )
            .into());
        }
        let pts = if args.what == What::Loss {
            smooth(&pts, args.smooth.max(1))
        } else {
            pts
        };
        series.push(LineSeries::new(name, pts));
    }
    let y_label = args.y_label.unwrap_or_else(|| {
        match args.what {
            What::Loss => "training loss",
            What::Eval => "validation metric",
            What::NegEval => "validation loss",
            What::ValidDirect => "validation HR@10, direct",
            What::ValidSequential => "validation HR@10, sequential",
        }
        .into()
    });
    let outcome = line_chart_png(
        &args.out,
        &args.title,
        "optimizer step",
        &y_label,
        &series,
        args.width,
        args.height,
    )?;
    println!(
        "wrote {}{}",
        args.out.display(),
        if outcome.text {
            ""
        } else {
            " (no font found: no text)"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn log(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_losses_and_validations_of_a_run_log() {
        let (_dir, path) = log(concat!(
            "{\"step\":1,\"loss\":0.9,\"lr\":0.1}\n",
            "{\"step\":2,\"loss\":0.7}\n",
            "\n",
            "{\"step\":2,\"eval\":-3.5}\n",
        ));
        assert_eq!(points(&path, What::Loss).unwrap(), [(1.0, 0.9), (2.0, 0.7)]);
        assert_eq!(points(&path, What::Eval).unwrap(), [(2.0, -3.5)]);
        assert_eq!(points(&path, What::NegEval).unwrap(), [(2.0, 3.5)]);
        let (_dir, path) = log(concat!(
            "{\"step\":5,\"loss\":0.9}\n",
            "{\"step\":5,\"eval\":0.1,\"valid_hr_direct\":0.15,\"valid_hr_sequential\":0.05}\n",
        ));
        assert_eq!(points(&path, What::ValidDirect).unwrap(), [(5.0, 0.15)]);
        assert_eq!(points(&path, What::ValidSequential).unwrap(), [(5.0, 0.05)]);
    }

    #[test]
    fn a_bad_line_is_named_by_file_and_line() {
        let (_dir, path) = log("{\"step\":1,\"loss\":0.9}\n{\"step\":2,\"loss\":\n");
        let e = points(&path, What::Loss).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{}:2: not JSON", path.display())),
            "{e}"
        );
        let (_dir, path) = log("{\"loss\":0.9}\n");
        let e = points(&path, What::Loss).unwrap_err().to_string();
        assert!(e.ends_with("log.jsonl:1: no numeric \"step\""), "{e}");
        let (_dir, path) = log("{\"step\":1,\"eval\":\"high\"}\n");
        let e = points(&path, What::Eval).unwrap_err().to_string();
        assert!(e.ends_with(":1: \"eval\" is not a number"), "{e}");
    }
}
