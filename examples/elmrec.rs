//! ELMRec end to end: baselines and T5 variants on one leave-one-out split
//! with the same seeded test users; prints a results table and writes
//! `results.json`, `results.md` and pictures to `--out`.
//!
//! ```text
//! cargo xtask demo      # runs this on MovieLens-100K at demo scale
//! cargo run --release --example elmrec -- --data ../shared/data/amazon/beauty \
//!     --alpha-direct 9 --alpha-seq 6 --sigma 6 --rerank-n 15 --budget-minutes 30 --out runs/elmrec/beauty
//! ```
//! A run interrupted (killed, out of time) resumes from its checkpoints
//! when started again with the same arguments.
//!
//! `--backbone smollm2-135m` swaps T5 for pretrained SmolLM2-135M (GGUF,
//! `--gguf`; tokenizer from the same file) with LoRA or full fine-tuning
//! (`--finetune`); its token embeddings are ~7x smaller than a random
//! T5's, so pass small alphas (e.g. `--alpha-direct 0.1 --alpha-seq 0.15`,
//! see `graft_elmrec::Backbone::Llama`).

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
use graft::data::{GraphEdges, LeaveOneOut, Reindex};
use graft_elmrec::experiment::{lm_rows, run_baselines, Baseline, BaselineSettings, Protocol};
use graft_elmrec::pipeline::{run_log, train_and_evaluate};
use graft_elmrec::{
    markdown_table, plots, Backbone, ElmrecConfig, EvalConfig, Finetune, Sampling, TargetPieces,
    TaskMix, Validation, Variant,
};
use graft_metrics::BootstrapConfig;
use graft_prompt::PromptStyle;
use graft_train::LrDecay;
use run_args::{write_results, DeviceArg, GgufArg, SlowBf16Arg, T5TokenizerArg};

#[derive(Parser, Debug)]
#[command(
    about = "ELMRec: baselines and T5 (or SmolLM2) whole-word-embedding variants on one split"
)]
struct Args {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    tokenizer: T5TokenizerArg,
    /// Backbone: t5-small (the paper's), t5-mini (4 layers, width 256) or
    /// smollm2-135m (pretrained, decoder-only; see --gguf, --finetune).
    #[arg(long, default_value = "t5-small")]
    backbone: Backbone,
    #[command(flatten)]
    gguf: GgufArg,
    /// Fine-tuning of a SmolLM2 backbone: lora (r 8, alpha 16, dropout 0.05
    /// on q_proj and v_proj) or full.
    #[arg(long, default_value = "lora")]
    finetune: Finetune,
    /// bf16 matrix products: for T5, mixed precision (f32 weights, norms
    /// and loss; see docs/benchmarks.md for the speed-up); with
    /// --finetune lora, the frozen SmolLM2's block projections in bf16
    /// (1.5-2.2x faster per step). Faster on CPUs with AVX512-BF16 or AMX;
    /// refused on CPUs with neither AVX-512 nor bf16 instructions, where
    /// it is far slower (see --allow-slow-bf16).
    #[arg(long)]
    bf16: bool,
    #[command(flatten)]
    slow_bf16: SlowBf16Arg,
    /// Start from this Hugging Face T5 checkpoint directory instead of random weights.
    #[arg(long)]
    init_dir: Option<PathBuf>,
    /// Comma-separated variants: elmrec, none (POD-like), graph, incremental.
    #[arg(long, value_delimiter = ',', default_value = "none,elmrec")]
    variants: Vec<Variant>,
    /// Skip the non-LLM baselines.
    #[arg(long)]
    no_baselines: bool,
    /// Run the non-LLM baselines only (no language-model variant).
    #[arg(long, conflicts_with = "no_baselines")]
    baselines_only: bool,
    /// Whole-word scale of the direct task (Beauty 9, Sports 5).
    #[arg(long, default_value_t = 9.0)]
    alpha_direct: f64,
    /// Whole-word scale of the sequential task (Beauty 6, Sports 1).
    #[arg(long, default_value_t = 6.0)]
    alpha_seq: f64,
    /// Standard deviation of the random features (Beauty 6, Sports 5).
    #[arg(long, default_value_t = 6.0)]
    sigma: f32,
    /// Propagation layers.
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// Negatives in training direct prompts (official code: 99).
    #[arg(long, default_value_t = 19)]
    train_negatives: usize,
    /// Trained tasks: both, direct, sequential.
    #[arg(long, default_value = "both", value_parser = parse_tasks)]
    tasks: TaskMix,
    /// Examples per optimizer step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Examples per forward pass (gradients accumulated up to the batch).
    #[arg(long, default_value_t = 16)]
    micro_batch: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Validation metric for early stopping and the kept checkpoint: loss
    /// (mean token cross-entropy; graft's first runs) or generation (HR@10
    /// of 20-beam constrained generation on the validation users, both
    /// tasks, 99 negatives on direct).
    #[arg(long, default_value = "loss")]
    validate: Validation,
    /// Training examples: random (each example's user drawn at random;
    /// graft's first runs) or epochs (every user once per epoch and task,
    /// as the official loaders).
    #[arg(long, default_value = "random")]
    sampling: Sampling,
    /// How a T5 target spells its item: number (the papers': `5678`, whose
    /// first piece differs from the same number's inside a prompt) or
    /// prompt (the pieces of the prompt's `item_5678`, a deviation).
    #[arg(long, default_value = "number")]
    target_pieces: TargetPieces,
    /// Sort each step's sequential examples by history length before
    /// cutting them into micro-batches (less padding; the same examples per
    /// step).
    #[arg(long)]
    bucket_by_length: bool,
    /// Steps of linear learning-rate warm-up (the official code has none).
    #[arg(long, default_value_t = 0)]
    warmup_steps: u64,
    /// Learning-rate decay after warm-up, to zero at --max-steps: constant
    /// (the official code), linear or cosine.
    #[arg(long, default_value = "constant")]
    lr_decay: LrDecay,
    /// Largest number of optimizer steps per variant.
    #[arg(long, default_value_t = 100_000)]
    max_steps: u64,
    /// Training wall-clock budget per variant, in minutes (a finished run
    /// started again with a larger budget continues where it stopped).
    #[arg(long, default_value_t = 30.0)]
    budget_minutes: f64,
    /// Validate every this many steps.
    #[arg(long, default_value_t = 50)]
    eval_every: u64,
    /// Validations without improvement before stopping.
    #[arg(long, default_value_t = 5)]
    patience: usize,
    /// Users in the validation sample.
    #[arg(long, default_value_t = 300)]
    valid_users: usize,
    /// Test users (seeded sample; 0 = all).
    #[arg(long, default_value_t = 1000)]
    test_users: usize,
    /// Negatives per direct candidate list.
    #[arg(long, default_value_t = 99)]
    negatives: usize,
    /// Beams for direct generation.
    #[arg(long, default_value_t = 20)]
    beams_direct: usize,
    /// Beams for sequential generation.
    #[arg(long, default_value_t = 30)]
    beams_seq: usize,
    /// Reranking: extra items N beyond K before history items are dropped.
    #[arg(long, default_value_t = 15)]
    rerank_n: usize,
    /// Prompts: official (the POD/ELMRec templates, one drawn per training
    /// example, `user_5 item_1 item_2` for validation and test) or
    /// pod-comma (graft's first runs: one POD phrasing, `item_1, item_2`).
    #[arg(long, default_value = "official")]
    prompts: PromptStyle,
    /// Item numbering (beyond both papers): original (P5's, nearly
    /// sequential) or random (a seeded renumbering before any prompt or
    /// graph is built, so ID numbers carry no order).
    #[arg(long, default_value = "original")]
    reindex: Reindex,
    /// Pairs the whole-word graph and the graph baselines are built from
    /// (beyond both papers): train (leave-one-out train pairs, clean),
    /// share:P (a seeded random share P of all pairs, test pairs included;
    /// 0.535 mimics the official Beauty graph) or all.
    #[arg(long, default_value = "train")]
    graph_edges: GraphEdges,
    /// Comma-separated baselines to run: popularity, sequential-index,
    /// random-propagation, lightgcn-bpr, sasrec.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "popularity,sequential-index,random-propagation,lightgcn-bpr,sasrec"
    )]
    baselines: Vec<Baseline>,
    /// SASRec wall-clock budget in minutes (0 = skip SASRec).
    #[arg(long, default_value_t = 15.0)]
    sasrec_minutes: f64,
    /// SASRec hidden width (50, the SASRec paper's; S3-Rec's code uses 64).
    #[arg(long, default_value_t = 50)]
    sasrec_hidden: usize,
    /// SASRec attention heads; must divide the width (1; S3-Rec's code: 2).
    #[arg(long, default_value_t = 1)]
    sasrec_heads: usize,
    /// SASRec users per training batch (128; S3-Rec's code: 256).
    #[arg(long, default_value_t = 128)]
    sasrec_batch: usize,
    /// LightGCN-BPR epochs (early-stopped on validation).
    #[arg(long, default_value_t = 200)]
    bpr_epochs: usize,
    /// LightGCN-BPR wall-clock budget in minutes.
    #[arg(long, default_value_t = 10.0)]
    bpr_minutes: f64,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 1000)]
    resamples: usize,
    /// Seed of everything: test users and negatives, item renumbering,
    /// baselines, and the language models' training (their validation
    /// users included) unless --train-seed is given.
    #[arg(long, default_value_t = 2024)]
    seed: u64,
    /// Seed of the language models' training alone: initialisation,
    /// example order, random features, validation users. The test users
    /// stay those of --seed, so runs of two training seeds are paired on
    /// the same users (seed-to-seed spread).
    #[arg(long)]
    train_seed: Option<u64>,
    /// Output folder (run directories, results, pictures).
    #[arg(long, default_value = "runs/elmrec/ml-100k")]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArg,
    /// Skip the pictures.
    #[arg(long)]
    no_plots: bool,
}

fn parse_tasks(s: &str) -> Result<TaskMix, String> {
    match s {
        "both" => Ok(TaskMix::Both),
        "direct" => Ok(TaskMix::Direct),
        "sequential" => Ok(TaskMix::Sequential),
        _ => Err(format!("unknown tasks {s:?} (both, direct, sequential)")),
    }
}

fn main() -> std::process::ExitCode {
    cli::exit(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let t0 = Instant::now();
    let rt = args.device.runtime()?;
    args.slow_bf16.check(args.bf16, rt.device)?;
    let (_, ds) = args.data.load()?;
    let split = LeaveOneOut::new(&ds);
    let s = ds.stats();
    println!(
        "# ELMRec on {} ({} users, {} items, {} interactions); output in {}",
        ds.name,
        s.users,
        s.items,
        s.interactions,
        args.out.display()
    );
    let eval = EvalConfig {
        test_users: (args.test_users > 0).then_some(args.test_users),
        negatives: args.negatives,
        beams_direct: args.beams_direct,
        beams_sequential: args.beams_seq,
        rerank_n: args.rerank_n,
        ks: vec![5, 10],
        resamples: args.resamples,
        seed: args.seed,
    };
    let protocol = Protocol::new(&split, args.reindex, &eval, args.valid_users)?;
    let (split, test) = (&protocol.split, &protocol.test);
    // Non-default protocol settings name every row and run directory.
    let mut tag = String::new();
    if args.reindex != Reindex::Original {
        tag.push_str(&format!(" [reindex {}]", args.reindex));
    }
    println!(
        "test: {} seeded users x (1 target + {} negatives); sequential over all {} items",
        test.cases.len(),
        eval.negatives,
        split.n_items
    );
    let backbone = match &args.backbone {
        Backbone::Llama { .. } => Backbone::Llama {
            weights: args.gguf.gguf.clone(),
            finetune: args.finetune.clone(),
            bf16_base: args.bf16,
        },
        b => b.clone(),
    };
    let label = match &backbone {
        Backbone::Llama {
            finetune: Finetune::Full,
            ..
        } => "smollm2-full",
        Backbone::Llama { .. } => "smollm2-lora",
        _ => "t5",
    };
    let base_cfg = ElmrecConfig {
        backbone: backbone.clone(),
        init_dir: args.init_dir.clone(),
        alpha_direct: args.alpha_direct,
        alpha_sequential: args.alpha_seq,
        sigma: args.sigma,
        layers: args.layers,
        train_negatives: args.train_negatives,
        tasks: args.tasks,
        batch_size: args.batch_size,
        micro_batch: args.micro_batch,
        optimizer: graft_train::AdamWConfig {
            lr: args.lr,
            ..graft_train::AdamWConfig::default()
        },
        max_steps: args.max_steps,
        max_seconds: Some(args.budget_minutes * 60.0),
        eval_every: args.eval_every,
        patience: Some(args.patience),
        valid_users: args.valid_users,
        seed: args.train_seed.unwrap_or(args.seed),
        graph_edges: args.graph_edges,
        reindex: args.reindex,
        prompt_style: args.prompts,
        t5_bf16: args.bf16 && !matches!(backbone, Backbone::Llama { .. }),
        lr_warmup_steps: args.warmup_steps,
        lr_decay: args.lr_decay,
        validation: args.validate,
        sampling: args.sampling,
        target_pieces: args.target_pieces,
        bucket_by_length: args.bucket_by_length,
        ..ElmrecConfig::default()
    };
    // Read before the baselines run, so that a wrong path fails at once
    // (and not at all when no language model is trained).
    let tok = match &backbone {
        _ if args.baselines_only => None,
        Backbone::Llama { weights, .. } => Some(graft_lm::tokenizer::tokenizer_from_gguf(
            &graft_lm::gguf::GgufFile::read(weights)?,
        )?),
        _ => Some(graft_lm::t5::t5_tokenizer(&args.tokenizer.tokenizer)?),
    };
    let boot = BootstrapConfig::new(args.resamples, 0.95, args.seed);
    let mut rows = Vec::new();
    if !args.no_baselines {
        let valid = &protocol.valid;
        let mut bs = BaselineSettings::new(64, args.layers, args.sigma, args.seed);
        bs.bpr.epochs = args.bpr_epochs;
        bs.bpr.max_seconds = Some(args.bpr_minutes * 60.0);
        bs.graph_edges = args.graph_edges;
        bs.run = args.baselines.clone();
        bs.sasrec = (args.sasrec_minutes > 0.0).then(|| graft_baselines::SasRecConfig {
            max_seconds: Some(args.sasrec_minutes * 60.0),
            hidden: args.sasrec_hidden,
            heads: args.sasrec_heads,
            batch: args.sasrec_batch,
            seed: args.seed,
            ..graft_baselines::SasRecConfig::default()
        });
        let names: Vec<String> = bs.run.iter().map(ToString::to_string).collect();
        println!(
            "baselines: {} (LightGCN-BPR and SASRec early-stopped on {} validation users)",
            names.join(", "),
            valid.cases.len()
        );
        let base = run_baselines(split, test, valid, &bs, &eval.ks, &boot, rt.device)?;
        rows.extend(base.into_iter().map(|mut r| {
            r.method.push_str(&tag);
            r
        }));
    }
    let mut curves = Vec::new();
    let variants = if args.baselines_only {
        &[][..]
    } else {
        &args.variants[..]
    };
    for v in variants {
        let cfg = base_cfg.clone().with_variant(*v);
        // T5 runs keep their directory names; SmolLM2 runs get their own.
        let mut name = match label {
            "t5" => v.name().to_string(),
            _ => format!("{label}-{}", v.name()),
        };
        let (suffix, mut row_tag) = cfg.setting_names();
        name.push_str(&suffix);
        if let Some(s) = args.train_seed.filter(|&s| s != args.seed) {
            name.push_str(&format!("-train-seed{s}"));
            row_tag.push_str(&format!(" [train seed {s}]"));
        }
        let dir = args.out.join(name);
        println!(
            "training {label} {} (direct: {}, sequential: {}) in {} (budget {:.0} min)",
            v.name(),
            cfg.direct_embedding.name(),
            cfg.sequential_embedding.name(),
            dir.display(),
            args.budget_minutes
        );
        let tok = tok.clone().ok_or("no tokenizer was read")?;
        let result = train_and_evaluate(&cfg, &eval, split, test, tok, &dir, rt)?;
        let best = match (result.training.best_step, result.training.best_metric) {
            (Some(step), Some(m)) if cfg.validation == Validation::Loss => {
                format!("best validation loss {:.4} at step {step}", -m)
            }
            (Some(step), Some(m)) => format!("best validation HR {m:.4} at step {step}"),
            _ => "no validation".to_owned(),
        };
        println!(
            "  {} steps ({}), {best}, {:.0} s training, {:.0} s evaluation",
            result.training.steps,
            result.training.stop_text(),
            result.training.seconds,
            result.test.seconds
        );
        rows.extend(lm_rows(&format!("{label} {}{row_tag}", v.name()), &result));
        curves.push((v.name().to_string(), run_log(&dir)?));
    }
    let table = markdown_table(&rows, &eval.ks);
    println!("\n{table}");
    println!("HR/NDCG ± half the 95% bootstrap interval over {} test users; direct: 1 target + {} negatives; seq: all items.", test.cases.len(), eval.negatives);
    write_results(
        &args.out,
        &table,
        &serde_json::json!({ "dataset": ds.name, "eval": eval, "rows": rows }),
    )?;
    if !args.no_plots {
        let prop = graft::propagate::LightGcnConfig {
            dim: 64,
            layers: args.layers,
            sigma: args.sigma,
            seed: args.seed,
            combine: graft::propagate::LayerCombine::Mean,
        };
        let p = args.out.join("embeddings_2d.png");
        let o = plots::embedding_panels(split, &prop, 4, &p)?;
        println!(
            "wrote {}{}",
            p.display(),
            if o.text {
                ""
            } else {
                " (no font found: no text)"
            }
        );
        if !curves.is_empty() {
            let p = args.out.join("training_curves.png");
            let _ = plots::loss_curves(&curves, &p)?;
            println!("wrote {}", p.display());
            let logged_hits = curves.iter().any(|(_, log)| {
                log.iter().any(|r| {
                    r.get("valid_hr_direct").is_some() || r.get("valid_hr_sequential").is_some()
                })
            });
            if logged_hits {
                let p = args.out.join("validation_hr.png");
                let _ = plots::hit_curves(&curves, &p)?;
                println!("wrote {}", p.display());
            }
        }
    }
    println!("done in {:.1?}", t0.elapsed());
    Ok(())
}
