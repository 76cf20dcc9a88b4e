//! The graft demo: load a dataset, split it both papers' ways, build the
//! interaction graph and evaluate two simple baselines with graft-metrics.
//!
//! ```text
//! cargo xtask demo                       # MovieLens-100K, fetched by xtask
//! cargo run --release --example demo -- --data ../shared/data/amazon/beauty
//! ```
//! Later issues extend it into the ELMRec and ELCoRec pipelines.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/data_args.rs"]
mod data_args;

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use data_args::DataArgs;
use graft::baselines::{evaluate, EvalSet, Popularity, Split};
use graft::data::{self, CtrConfig, CtrSplit, LeaveOneOut};
use graft::graph::BipartiteGraph;
use graft::metrics::{self, BootstrapConfig};

#[derive(Parser, Debug)]
#[command(about = "Load a dataset, split it, build its graph, evaluate baselines")]
struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// Seed for negatives, shuffles and bootstrap.
    #[arg(long, default_value_t = 2024)]
    seed: u64,
    /// Negatives per test user (the ELMRec protocol uses 99).
    #[arg(long, default_value_t = 99)]
    negatives: usize,
    /// Bootstrap resamples for the 95% confidence intervals.
    #[arg(long, default_value_t = 1000)]
    resamples: usize,
    /// Where to write the summary as JSON.
    #[arg(long, default_value = "runs/demo/summary.json")]
    out: PathBuf,
}

fn main() -> std::process::ExitCode {
    cli::exit(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let t0 = Instant::now();
    let (format, ds) = args.data.load()?;
    let stats = ds.stats();
    println!(
        "# graft demo: {} ({format}) from {}",
        ds.name,
        args.data.data.display()
    );
    println!(
        "users {}  items {}  interactions {}  density {:.5}  per user min/mean/max {}/{:.1}/{}  ratings {}  timestamps {}",
        stats.users, stats.items, stats.interactions, stats.density, stats.min_per_user,
        stats.mean_per_user, stats.max_per_user, stats.has_ratings, stats.has_timestamps
    );
    let r = &ds.report;
    println!(
        "loaded {} lines from {} files in {:.2?}; skipped {}; side-info rows without interactions {}; entities without side info {}",
        r.lines_parsed, r.files.len(), t0.elapsed(), r.lines_skipped, r.side_info_unmatched, r.side_info_missing
    );
    for s in r.skipped_examples.iter().take(3) {
        println!("  skipped {}:{}: {}", s.path.display(), s.line, s.reason);
    }
    if let (Some(item), Some(raw)) = (ds.item_info.first(), ds.items.raw(0)) {
        let year = item
            .year
            .map_or_else(|| "unknown".to_owned(), |y| y.to_string());
        println!(
            "item {raw}: title \"{}\", genres {}, year {year}",
            item.title.as_deref().unwrap_or("unknown"),
            if item.genres.is_empty() {
                "none".to_owned()
            } else {
                item.genres.join(", ")
            },
        );
    }

    // --- ELMRec protocol: leave-one-out, graph from train only ---
    let loo = LeaveOneOut::new(&ds);
    let sizes = loo.sizes();
    println!(
        "\n## leave-one-out (ELMRec/POD): train {}  valid {}  test {}",
        sizes.train, sizes.valid, sizes.test
    );
    let graph = BipartiteGraph::from_edges(ds.n_users(), ds.n_items(), loo.train_edges())?;
    let norm = graph.normalized()?;
    println!(
        "train graph: {} nodes, {} distinct edges, normalised adjacency nnz {}",
        graph.n_nodes(),
        graph.n_edges(),
        norm.nnz()
    );
    println!("  user degrees: {}", graph.user_degree_stats());
    println!("  item degrees: {}", graph.item_degree_stats());
    #[cfg(feature = "tch")]
    tch_check(&norm)?;

    // Popularity baseline (graft-baselines' protocol): score = train
    // degree; each user's test item among N seeded negatives.
    let test = EvalSet::build(&loo, Split::Test, None, args.negatives, args.seed)?;
    let boot = BootstrapConfig::new(args.resamples, 0.95, args.seed);
    let pop = evaluate(&Popularity::fit(&loo), &test, &[5, 10], &boot)?.direct;
    println!(
        "\npopularity baseline, {} test users x (1 + {} negatives), ties pessimistic:",
        pop.n_users, args.negatives
    );
    println!("| metric | value | 95% CI |\n|---|---|---|");
    for c in &pop.cutoffs {
        for (name, v, ci) in [("HR", c.hr, &c.hr_ci), ("NDCG", c.ndcg, &c.ndcg_ci)] {
            let ci = ci
                .as_ref()
                .map(|ci| format!("[{:.4}, {:.4}]", ci.lower, ci.upper))
                .unwrap_or_default();
            println!("| {name}@{} | {v:.4} | {ci} |", c.k);
        }
    }

    // --- ELCoRec protocol: CTR samples ordered by time, 8/1/1 ---
    let mut ctr_summary = None;
    if ds.has_ratings() {
        let ctr = CtrSplit::new(
            &ds,
            &CtrConfig {
                seed: args.seed,
                ..CtrConfig::default()
            },
        )?;
        let s = ctr.sizes();
        println!(
            "\n## CTR samples (ELCoRec/ReLLa, label {}, min history {}, order {}): train {} ({:.1}% positive)  valid {}  test {} ({:.1}% positive)",
            ctr.label, ctr.config.min_history, ctr.order, s.train,
            100.0 * CtrSplit::positive_rate(&ctr.train), s.valid, s.test, 100.0 * CtrSplit::positive_rate(&ctr.test)
        );
        // Item-prior baseline: smoothed positive rate of the target item in train.
        let prior = CtrSplit::positive_rate(&ctr.train);
        let (mut pos, mut cnt) = (vec![0.0f64; ds.n_items()], vec![0.0f64; ds.n_items()]);
        for x in &ctr.train {
            pos[x.item as usize] += f64::from(u8::from(x.label));
            cnt[x.item as usize] += 1.0;
        }
        let probs: Vec<f64> = ctr
            .test
            .iter()
            .map(|x| (pos[x.item as usize] + 5.0 * prior) / (cnt[x.item as usize] + 5.0))
            .collect();
        let labels: Vec<bool> = ctr.test.iter().map(|x| x.label).collect();
        let rep = metrics::ctr_report(&labels, &probs, metrics::DEFAULT_LOG_LOSS_EPS, Some(&boot))?;
        let ci = |c: &Option<metrics::ConfidenceInterval>| {
            c.as_ref()
                .map(|c| format!("[{:.4}, {:.4}]", c.lower, c.upper))
                .unwrap_or_default()
        };
        println!(
            "item-prior baseline on {} test samples: AUC {:.4} {}  LogLoss {:.4} {}",
            rep.n,
            rep.auc,
            ci(&rep.auc_ci),
            rep.log_loss,
            ci(&rep.log_loss_ci)
        );
        ctr_summary = Some((s, rep));
    } else {
        println!("\n(no ratings: CTR samples need them; skipped)");
    }

    let summary = serde_json::json!({
        "dataset": ds.name, "format": format, "stats": stats, "load_report": ds.report,
        "leave_one_out": sizes,
        "graph": { "nodes": graph.n_nodes(), "edges": graph.n_edges(),
                   "user_degrees": graph.user_degree_stats(), "item_degrees": graph.item_degree_stats() },
        "popularity": pop, "seed": args.seed,
        "ctr": ctr_summary.map(|(s, r)| serde_json::json!({ "sizes": s, "item_prior": r })),
    });
    data::read::atomic_write(
        &args.out,
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    println!(
        "\nsummary written to {} ({:.2?} in all)",
        args.out.display(),
        t0.elapsed()
    );
    Ok(())
}

/// One propagation step through libtorch's sparse kernel, checked against sprs.
#[cfg(feature = "tch")]
fn tch_check(norm: &graft::graph::sprs::CsMat<f32>) -> Result<(), Box<dyn Error>> {
    use graft::graph::{ndarray::Array2, tch};
    let coo = graft::graph::Coo::from_csr(norm)?;
    let a = coo.to_tch(tch::Device::Cpu)?;
    tch::manual_seed(0);
    let dim = 8;
    let e = tch::Tensor::randn(
        [coo.n as i64, dim as i64],
        (tch::Kind::Float, tch::Device::Cpu),
    );
    let to_array = |t: &tch::Tensor| -> Result<Array2<f32>, Box<dyn Error>> {
        let v = Vec::<f32>::try_from(&t.flatten(0, -1))?;
        Ok(Array2::from_shape_vec((coo.n, dim), v)?)
    };
    let torch_out = to_array(&a.mm(&e))?;
    let sprs_out = norm * &to_array(&e)?;
    let diff = (&torch_out - &sprs_out)
        .iter()
        .fold(0.0f32, |m, x| m.max(x.abs()));
    println!("  libtorch sparse COO x dense (d={dim}) vs sprs CSR: max |diff| {diff:.2e}");
    Ok(())
}
