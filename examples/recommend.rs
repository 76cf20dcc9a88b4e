//! Top-k recommendations for one user of your own data: loads a dataset
//! (any graft format, or a CSV with your own header names), trains a
//! baseline on every interaction or loads a trained ELMRec run, and prints
//! the user's top items (with titles where the dataset has them), the
//! items they already have left out.
//!
//! ```text
//! # a CSV whose header is customer,product,...
//! cargo run --release --example recommend -- --data my.csv --columns user=customer,item=product \
//!     --model bpr --user 42 -k 10
//! cargo run --release --example recommend -- --data ../shared/data/ml-100k --model popularity --user 1
//! # an ELMRec run trained by the elmrec example on the same data
//! cargo run --release --example recommend -- --data my.csv --columns user=customer,item=product \
//!     --model elmrec --run runs/my/elmrec --user 42
//! ```

use std::error::Error;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use graft::baselines::{BprConfig, LightGcnBpr, Popularity, Scored};
use graft::data::LeaveOneOut;
use graft::elmrec::ElmrecRecommender;
use graft::recommend::{Recommender, WithIds};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/data_args.rs"]
mod data_args;
#[path = "common/run_args.rs"]
#[allow(dead_code)]
mod run_args;
use data_args::DataArgs;
use run_args::{DeviceArg, T5TokenizerArg};

#[derive(Parser, Debug)]
#[command(about = "Top-k recommendations for one user from a baseline trained on your data")]
struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// The model.
    #[arg(long, value_enum, default_value_t = Model::Bpr)]
    model: Model,
    /// ELMRec: the run directory the elmrec example trained on this data
    /// (e.g. runs/my/elmrec).
    #[arg(long, required_if_eq("model", "elmrec"))]
    run: Option<PathBuf>,
    /// ELMRec: the T5 tokenizer.
    #[command(flatten)]
    tokenizer: T5TokenizerArg,
    /// ELMRec: where the model runs.
    #[command(flatten)]
    device: DeviceArg,
    /// The user, by the ID in your data.
    #[arg(long)]
    user: String,
    /// How many items.
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// Keep the items the user already has among the recommendations.
    #[arg(long)]
    keep_seen: bool,
    /// LightGCN-BPR: training epochs at most.
    #[arg(long, default_value_t = 50)]
    bpr_epochs: usize,
    /// LightGCN-BPR: stop after the epoch that ends past this many minutes.
    #[arg(long, default_value_t = 2.0)]
    bpr_minutes: f64,
    /// Seed.
    #[arg(long, default_value_t = 2024)]
    seed: u64,
}

/// Which model recommends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Model {
    /// The most frequent items.
    Popularity,
    /// LightGCN trained with BPR on every interaction.
    Bpr,
    /// A trained ELMRec run (`--run`): beam search over every item.
    Elmrec,
}

fn main() -> std::process::ExitCode {
    cli::exit(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let (format, ds) = args.data.load()?;
    println!(
        "{} ({format}): {} users, {} items, {} interactions",
        ds.name,
        ds.n_users(),
        ds.n_items(),
        ds.interactions.len()
    );
    let all = LeaveOneOut::everything_in_train(&ds);
    let history: Vec<&str> = match ds.users.get(&args.user) {
        Some(u) => all.train[u as usize]
            .iter()
            .filter_map(|&i| ds.items.raw(i))
            .collect(),
        None => Vec::new(),
    };
    let (users, items) = (ds.users.clone(), ds.items.clone());
    let exclude = !args.keep_seen;
    let top = match args.model {
        Model::Popularity => {
            let model = Scored::ignoring_user(Popularity::fit(&all), ds.n_items());
            WithIds::new(model, users, items)?.recommend(&args.user, &history, args.k, exclude)?
        }
        Model::Bpr => {
            let cfg = BprConfig {
                epochs: args.bpr_epochs,
                max_seconds: Some(args.bpr_minutes * 60.0),
                seed: args.seed,
                ..BprConfig::default()
            };
            println!(
                "training LightGCN-BPR on every interaction (at most {} epochs, {} min)",
                cfg.epochs, args.bpr_minutes
            );
            let (bpr, log) = LightGcnBpr::train(&all, &cfg, None)?;
            println!("  {} epochs", log.len());
            let model = Scored::new(bpr, ds.n_items());
            WithIds::new(model, users, items)?.recommend(&args.user, &history, args.k, exclude)?
        }
        Model::Elmrec => {
            let run = args.run.as_deref().ok_or("--model elmrec needs --run")?;
            let tok = graft::lm::t5::t5_tokenizer(&args.tokenizer.tokenizer)?;
            // The run was trained on the leave-one-out split of this data.
            let device = args.device.runtime()?.device;
            let model = ElmrecRecommender::load(run, &LeaveOneOut::new(&ds), tok, device)?;
            println!("loaded the ELMRec run in {}", run.display());
            WithIds::new(model, users, items)?.recommend(&args.user, &history, args.k, exclude)?
        }
    };
    println!(
        "\nuser {} ({} items in the data), top {} by {}:",
        args.user,
        history.len(),
        top.len(),
        args.model
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned())
    );
    for (rank, r) in top.iter().enumerate() {
        let title = ds
            .items
            .get(&r.item)
            .and_then(|i| ds.item_info.get(i as usize))
            .and_then(|info| info.title.as_deref())
            .unwrap_or("");
        println!("{:>3}. {:<16} {:>10.4}  {title}", rank + 1, r.item, r.score);
    }
    Ok(())
}
