//! The whole ELMRec pipeline on a tiny synthetic dataset with a tiny T5:
//! sampling, whole-word embeddings, training with checkpoints, resume,
//! constrained generation, candidate scoring, reranking, metrics.

use graft_baselines::{EvalSet, Split};
use graft_data::synthetic::{planted_clusters, SyntheticConfig};
use graft_data::LeaveOneOut;
use graft_elmrec::model::Example;
use graft_elmrec::pipeline::{train_and_evaluate, Runtime};
use graft_elmrec::{ElmrecConfig, ElmrecModel, EvalConfig, TargetPieces, TaskMix, Variant};
use graft_prompt::Task;
use tch::{Device, Kind};

mod common;
use common::{eval_cfg, split, tiny_t5, tokenizer};

fn cfg(variant: Variant) -> ElmrecConfig {
    common::tiny_cfg(tiny_t5()).with_variant(variant)
}

/// [`train_and_evaluate`] on the CPU without a progress bar.
fn run_cpu(
    cfg: &ElmrecConfig,
    eval: &EvalConfig,
    split: &LeaveOneOut,
    test: &EvalSet,
    tok: tokenizers::Tokenizer,
    dir: &std::path::Path,
) -> graft_elmrec::Result<graft_elmrec::pipeline::RunResult> {
    let rt = Runtime {
        device: Device::Cpu,
        progress: false,
    };
    train_and_evaluate(cfg, eval, split, test, tok, dir, rt)
}

#[test]
fn pipeline_trains_resumes_and_evaluates() {
    let _rng = global_rng();
    let Some(tok) = tokenizer() else { return };
    let split = split();
    let eval = eval_cfg();
    let test = common::test_set(&split, &eval);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(Variant::Elmrec);
    let first = run_cpu(&cfg, &eval, &split, &test, tok.clone(), dir.path()).expect("train");
    assert_eq!(first.training.steps, 12);
    assert_eq!(first.test.direct_score.n_users, 15);
    for r in [
        &first.test.direct_generate,
        &first.test.direct_score,
        &first.test.sequential,
        &first.test.sequential_reranked,
    ] {
        for c in &r.cutoffs {
            assert!((0.0..=1.0).contains(&c.hr) && c.ndcg <= c.hr + 1e-12);
        }
        // A hit in the top 5 is a hit in the top 10.
        let (c5, c10) = (&r.cutoffs[0], &r.cutoffs[1]);
        assert_eq!((c5.k, c10.k), (5, 10));
        assert!(c5.hr <= c10.hr && c5.ndcg <= c10.ndcg + 1e-12, "{r:?}");
    }
    // The model learned something in 12 steps: its training loss fell.
    let log = std::fs::read_to_string(dir.path().join("log.jsonl")).expect("log");
    let losses: Vec<f64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("loss").and_then(serde_json::Value::as_f64))
        .collect();
    assert_eq!(losses.len(), 12, "one log line per step");
    let head: f64 = losses[..3].iter().sum::<f64>() / 3.0;
    let tail: f64 = losses[9..].iter().sum::<f64>() / 3.0;
    assert!(tail < head, "loss fell: {head} -> {tail}");
    assert!(dir.path().join("metrics.json").is_file());
    // Every evaluation logs the validation loss of each task, whose
    // example-weighted mean is `eval`, and the popularity reference line.
    let evals: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("eval").is_some())
        .collect();
    assert_eq!(evals.len(), 3);
    for e in &evals {
        let f = |k: &str| e.get(k).and_then(serde_json::Value::as_f64).expect(k);
        let (d, s, mean) = (
            f("valid_loss_direct"),
            f("valid_loss_sequential"),
            -f("eval"),
        );
        assert!(mean >= d.min(s) - 1e-9 && mean <= d.max(s) + 1e-9, "{e}");
        let pop = f("popularity_loss");
        assert!(pop > 0.0 && pop < (split.n_items as f64).ln(), "{pop}");
    }
    // Per-user ranks are kept for paired comparisons.
    let ranks = first.test.ranks.as_ref().expect("ranks");
    assert_eq!(
        ranks.users,
        test.cases.iter().map(|c| c.user).collect::<Vec<_>>()
    );
    let hr10 = ranks
        .direct_score
        .iter()
        .filter(|r| r.is_some_and(|r| r <= 10))
        .count() as f64
        / 15.0;
    assert!((hr10 - first.test.direct_score.hr(10).expect("hr10")).abs() < 1e-12);
    // Without metrics.json, starting again resumes from the last checkpoint:
    // no new steps, the best parameters restored, the same numbers.
    std::fs::remove_file(dir.path().join("metrics.json")).expect("rm");
    let again = run_cpu(&cfg, &eval, &split, &test, tok, dir.path()).expect("resume");
    assert_eq!(again.training.resumed_from, Some(12));
    assert_eq!(
        serde_json::to_value(&again.test.direct_score).expect("json"),
        serde_json::to_value(&first.test.direct_score).expect("json")
    );
    assert_eq!(
        serde_json::to_value(&again.test.sequential_reranked).expect("json"),
        serde_json::to_value(&first.test.sequential_reranked).expect("json")
    );
    // With metrics.json the finished run is not trained or evaluated again.
    let log_before = std::fs::read(dir.path().join("log.jsonl")).expect("log");
    let stored = run_cpu(
        &cfg,
        &eval,
        &split,
        &test,
        tokenizer().expect("tokenizer"),
        dir.path(),
    )
    .expect("stored");
    assert_eq!(stored.training.resumed_from, Some(12));
    assert_eq!(
        std::fs::read(dir.path().join("log.jsonl")).expect("log"),
        log_before
    );
    assert_eq!(
        serde_json::to_value(&stored.test.direct_generate).expect("json"),
        serde_json::to_value(&again.test.direct_generate).expect("json")
    );
    // A larger step limit (constant learning rate) continues the finished
    // run, which is then tested again: its steps are those of a run that
    // had the larger limit from the start.
    let longer = ElmrecConfig {
        max_steps: 16,
        ..cfg.clone()
    };
    let tok = || tokenizer().expect("tokenizer");
    let extended = run_cpu(&longer, &eval, &split, &test, tok(), dir.path()).expect("extend");
    assert_eq!(extended.training.resumed_from, Some(12));
    assert_eq!(extended.training.steps, 16);
    let straight_dir = tempfile::tempdir().expect("tempdir");
    let straight =
        run_cpu(&longer, &eval, &split, &test, tok(), straight_dir.path()).expect("straight");
    let step_losses = |d: &std::path::Path| -> Vec<(u64, f64)> {
        std::fs::read_to_string(d.join("log.jsonl"))
            .expect("log")
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| Some((v.get("step")?.as_u64()?, v.get("loss")?.as_f64()?)))
            .collect()
    };
    assert_eq!(step_losses(dir.path()).len(), 16);
    assert_eq!(step_losses(dir.path()), step_losses(straight_dir.path()));
    assert_eq!(
        serde_json::to_value(&extended.test.direct_score).expect("json"),
        serde_json::to_value(&straight.test.direct_score).expect("json")
    );
    // Any other difference is refused in the same directory.
    let other = ElmrecConfig {
        seed: cfg.seed + 1,
        ..longer.clone()
    };
    assert!(train_and_evaluate(
        &other,
        &eval,
        &split,
        &test,
        tok(),
        dir.path(),
        Runtime::default(),
    )
    .is_err());
}

/// A finished run loads back without an optimizer and gives the test
/// numbers it stored; as a recommender it returns what its beam search and
/// ELMRec's reranking give, in the dataset's own numbering also for a run
/// trained under a random renumbering.
#[test]
fn a_finished_run_loads_and_recommends_in_the_datasets_numbering() {
    use graft_data::Reindex;
    use graft_elmrec::data::sequential_example;
    use graft_elmrec::eval::{evaluate, rerank};
    use graft_elmrec::ElmrecRecommender;
    use graft_recommend::{RankItems, Recommender, WithIds};

    let _rng = global_rng();
    let Some(tok) = tokenizer() else { return };
    let original = split();
    let eval = eval_cfg();
    let original_test = EvalSet::build(
        &original,
        Split::Test,
        eval.test_users,
        eval.negatives,
        eval.seed,
    )
    .expect("test set");
    let perm = Reindex::Random.permutation(original.n_items, eval.seed);
    let (split, test) = (
        perm.apply_split(&original).expect("renumbered split"),
        original_test.renamed(&perm).expect("renamed test set"),
    );
    let direct_cfg = ElmrecConfig {
        tasks: TaskMix::Direct,
        max_steps: 4,
        ..cfg(Variant::None)
    };
    let cfg = ElmrecConfig {
        max_steps: 8,
        reindex: Reindex::Random,
        ..cfg(Variant::Elmrec)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let trained = run_cpu(&cfg, &eval, &split, &test, tok.clone(), dir.path()).expect("train");

    // The loaded model is the evaluated one: the same per-user ranks.
    let (loaded, stored) =
        ElmrecModel::load(dir.path(), &split, tok.clone(), Device::Cpu).expect("load");
    assert_eq!(stored.model, cfg);
    let again = evaluate(&loaded, &test, &eval, cfg.history_len, false).expect("evaluate");
    assert_eq!(
        serde_json::to_value(&again.ranks).expect("json"),
        serde_json::to_value(&trained.test.ranks).expect("json")
    );

    // As a recommender over the original numbering.
    let rec = ElmrecRecommender::load(dir.path(), &original, tok.clone(), Device::Cpu)
        .expect("recommender");
    assert_eq!(rec.n_ranked_items(), original.n_items);
    let tables = loaded.tables().expect("tables");
    let back = |i: u32| (0..original.n_items as u32).find(|&o| perm.apply(o) == i);
    let (k, n) = (4, eval.rerank_n);
    for case in test.cases.iter().take(5) {
        let history: Vec<u32> = case
            .history
            .iter()
            .map(|&i| back(i).expect("renumbered item"))
            .collect();
        let got = rec
            .recommend_dense(case.user, &history, k, &history)
            .expect("recommend");
        let beams = eval.beams_sequential.max(k + n);
        let generated = loaded
            .generate(
                &sequential_example(case, cfg.history_len),
                &tables,
                loaded.trie(),
                beams,
            )
            .expect("generate");
        let want: Vec<u32> = rerank(&generated, &case.history, k + n)
            .into_iter()
            .take(k)
            .map(|i| back(i).expect("item"))
            .collect();
        assert_eq!(got.iter().map(|&(i, _)| i).collect::<Vec<_>>(), want);
        assert!(got.iter().all(|(i, _)| !history.contains(i)));
        assert!(
            got.windows(2).all(|w| w[0].1 >= w[1].1),
            "best first: {got:?}"
        );
    }

    // Over raw IDs; an unknown user is refused (ELMRec's prompts name the user).
    let raw = |prefix: &str, n: usize| {
        graft_data::IdMap::from_raw((0..n).map(|i| format!("{prefix}{i}")).collect())
    };
    let case = &test.cases[0];
    let history: Vec<String> = case
        .history
        .iter()
        .map(|&i| format!("i{}", back(i).expect("item")))
        .collect();
    let history: Vec<&str> = history.iter().map(String::as_str).collect();
    let with_ids = WithIds::new(
        rec,
        raw("u", original.n_users()),
        raw("i", original.n_items),
    )
    .expect("ids");
    let top = with_ids
        .recommend(&format!("u{}", case.user), &history, 3, true)
        .expect("top");
    assert!(!top.is_empty() && top.len() <= 3);
    assert!(top.iter().all(|r| !history.contains(&r.item.as_str())));
    assert!(with_ids.recommend("nobody", &history, 3, true).is_err());

    // A run on the direct task only cannot rank every item; data of
    // another size does not fit the run.
    let direct_dir = tempfile::tempdir().expect("tempdir");
    // Training can hand back the model it tested.
    let (kept, direct_result) = graft_elmrec::train_and_keep(
        &direct_cfg,
        &eval,
        &original,
        &original_test,
        tok.clone(),
        direct_dir.path(),
        Runtime {
            device: Device::Cpu,
            progress: false,
        },
    )
    .expect("direct run");
    let again = evaluate(&kept, &original_test, &eval, direct_cfg.history_len, false)
        .expect("evaluate the kept model");
    assert_eq!(
        serde_json::to_value(&again.ranks).expect("json"),
        serde_json::to_value(&direct_result.test.ranks).expect("json")
    );
    let err = ElmrecRecommender::load(direct_dir.path(), &original, tok.clone(), Device::Cpu)
        .expect_err("direct only");
    assert!(err.to_string().contains("direct task only"), "{err}");
    let other = LeaveOneOut::new(
        &planted_clusters(&SyntheticConfig {
            users: 30,
            items: 60,
            clusters: 3,
            interactions_per_user: 8,
            in_cluster: 0.9,
            seed: 1,
        })
        .expect("synthetic")
        .dataset,
    );
    let err = ElmrecModel::load(dir.path(), &other, tok.clone(), Device::Cpu).expect_err("size");
    assert!(err.to_string().contains("40 users"), "{err}");
    let err = ElmrecModel::load(
        direct_dir.path().join("nothing").as_path(),
        &original,
        tok,
        Device::Cpu,
    )
    .expect_err("no run");
    assert!(err.to_string().contains("not a run directory"), "{err}");
}

#[test]
fn prompt_pieces_targets_copy_the_prompt_tokens() {
    let _rng = global_rng();
    let Some(tok) = tokenizer() else { return };
    let split = split();
    let c = ElmrecConfig {
        target_pieces: TargetPieces::Prompt,
        ..cfg(Variant::None)
    };
    assert!(c.setting_names().0.contains("-prompt-pieces"));
    let json = serde_json::to_value(&c).expect("json");
    assert_eq!(json["target_pieces"], "prompt");
    // The default is not written, so older run directories still resume.
    let plain = serde_json::to_value(cfg(Variant::None)).expect("json");
    assert!(plain.get("target_pieces").is_none());
    let model = ElmrecModel::new(&c, &split, tok.clone(), Device::Cpu).expect("model");
    let number =
        ElmrecModel::new(&cfg(Variant::None), &split, tok.clone(), Device::Cpu).expect("model");
    let ids = |text: &str| tok.encode(text, false).expect("encode").get_ids().to_vec();
    let eos = *number.item_tokens(56).expect("item").last().expect("eos");
    for item in [5u32, 42, 56] {
        let target = model.item_tokens(item).expect("item");
        // The target is the number's pieces inside `item_N`, then EOS.
        let in_prompt = ids(&format!("item_{item}"));
        assert_eq!(
            &in_prompt[in_prompt.len() + 1 - target.len()..],
            &target[..target.len() - 1]
        );
        assert_eq!(*target.last().expect("eos"), eos);
    }
    // T5's tokenizer starts the bare number with another piece.
    assert_ne!(model.item_tokens(56), number.item_tokens(56));
    // Generation and scoring with these targets: in the next test.
}

#[test]
fn generation_stays_inside_the_trie_and_scores_every_candidate() {
    let _rng = global_rng();
    let Some(tok) = tokenizer() else { return };
    let split = split();
    let prompt_pieces = ElmrecConfig {
        target_pieces: TargetPieces::Prompt,
        ..cfg(Variant::None)
    };
    let configs = [
        cfg(Variant::None),
        cfg(Variant::Graph),
        cfg(Variant::Incremental),
        prompt_pieces,
    ];
    for c in &configs {
        let model = ElmrecModel::new(c, &split, tok.clone(), Device::Cpu).expect("model");
        let tables = model.tables().expect("tables");
        let cands = vec![3u32, 17, 42, 5, 8];
        let d = Example {
            task: Task::Direct,
            user: 2,
            history: vec![],
            candidates: cands.clone(),
            target: 42,
            template: None,
        };
        let out = model
            .generate(&d, &tables, &model.candidate_trie(&cands), 5)
            .expect("generate");
        assert!(
            !out.is_empty() && out.iter().all(|i| cands.contains(i)),
            "{out:?}"
        );
        let scores = model.score_candidates(&d, &tables).expect("score");
        assert_eq!(scores.len(), 5);
        assert!(scores.iter().all(|s| s.is_finite() && *s < 0.0));
        // Likelihood scoring agrees with the teacher-forced loss of each
        // candidate.
        for (&c, &score) in cands.iter().zip(&scores) {
            let one = Example {
                candidates: cands.clone(),
                target: c,
                ..d.clone()
            };
            let loss = model.loss(&[one], &tables).expect("loss").double_value(&[]);
            let n = model.item_tokens(c).expect("tokens").len() as f64;
            assert!(
                (-loss * n - f64::from(score)).abs() < 1e-3,
                "{c}: {loss} {scores:?}"
            );
        }
        let s = Example {
            task: Task::Sequential,
            user: 2,
            history: vec![1, 2, 3],
            candidates: vec![],
            target: 4,
            template: None,
        };
        let out = model
            .generate(&s, &tables, model.trie(), 6)
            .expect("generate");
        assert!(out.iter().all(|&i| (i as usize) < split.n_items));
    }
}

#[test]
fn per_step_graph_gradient_equals_backprop_through_each_micro_batch_on_either_kernel() {
    let _rng = global_rng();
    let Some(tok) = tokenizer() else { return };
    let split = split();
    let model = ElmrecModel::new(&cfg(Variant::Graph), &split, tok, Device::Cpu).expect("model");
    let sampler = graft_elmrec::data::Sampler::new(&split, &cfg(Variant::Graph));
    let batches = [sampler.micro_batch(0, 0), sampler.micro_batch(0, 1)];
    let e0 = model
        .named_parameters()
        .into_iter()
        .find(|(n, _)| n == "graph.e0")
        .expect("e0")
        .1;
    let zero = || {
        for (_, p) in model.named_parameters() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    };
    zero();
    let mut losses = Vec::new();
    for b in &batches {
        let t = model.tables().expect("tables");
        let l = model.loss(b, &t).expect("loss");
        losses.push(l.double_value(&[]));
        l.backward();
    }
    let direct = e0.grad().copy();
    zero();
    // On the CPU the leaf table and E0's gradient come from graft's own CSR
    // kernel, the differentiable table from libtorch's sparse product: the
    // same loss and gradient either way.
    let leaf = model.leaf_tables().expect("leaf");
    for (b, l_direct) in batches.iter().zip(&losses) {
        let l = model.loss(b, &leaf).expect("loss");
        let gap = (l.double_value(&[]) - l_direct).abs();
        assert!(gap <= 1e-5 * l_direct.abs(), "loss {l_direct} vs {gap}");
        l.backward();
    }
    model.backprop_tables(&leaf).expect("backprop");
    let once = e0.grad().copy();
    let scale = direct.abs().max().double_value(&[]);
    assert!(scale > 0.0);
    let diff = (&direct - &once).abs().max().double_value(&[]);
    assert!(diff <= 1e-5 * scale, "{diff} vs {scale}");
    let _ = Kind::Float;
}

#[test]
fn sampler_is_a_pure_function_of_step_and_micro_batch() {
    let _rng = global_rng();
    let split = split();
    let c = ElmrecConfig {
        tasks: TaskMix::Both,
        ..cfg(Variant::Elmrec)
    };
    let a = graft_elmrec::data::Sampler::new(&split, &c);
    let b = graft_elmrec::data::Sampler::new(&split, &c);
    assert_eq!(a.micro_batch(5, 1), b.micro_batch(5, 1));
    assert_ne!(a.micro_batch(5, 1), a.micro_batch(6, 1));
    assert_eq!(a.task(0, 0), Task::Sequential);
    assert_eq!(a.task(0, 1), Task::Direct);
    for e in a.micro_batch(3, 0).iter().chain(&a.micro_batch(3, 1)) {
        check_example(e, &split, &c);
    }
}

/// A training example is well formed: a sequential history followed by its
/// target is a window of the user's train items; a direct candidate list
/// holds the (train) target and only negatives besides.
fn check_example(e: &Example, split: &LeaveOneOut, c: &ElmrecConfig) {
    match e.task {
        Task::Sequential => {
            assert!(!e.history.is_empty() && e.history.len() <= c.history_len);
            let train = &split.train[e.user as usize];
            let mut seg = e.history.clone();
            seg.push(e.target);
            assert!(train.windows(seg.len()).any(|w| w == seg.as_slice()));
        }
        Task::Direct => {
            assert_eq!(e.candidates.len(), c.train_negatives + 1);
            assert!(split.train[e.user as usize].contains(&e.target));
            let all = split.all_items(e.user);
            assert_eq!(
                e.candidates.iter().filter(|i| all.contains(i)).count(),
                1,
                "only the target is a positive"
            );
        }
    }
}

#[test]
fn epoch_sampling_visits_every_user_once_per_epoch_and_task() {
    let _rng = global_rng();
    let split = split();
    let c = ElmrecConfig {
        tasks: TaskMix::Both,
        sampling: graft_elmrec::Sampling::Epochs,
        ..cfg(Variant::Elmrec)
    };
    let (n, mb) = (split.n_users(), c.micro_batch);
    assert_eq!((n, mb, c.accumulation()), (40, 4, 2));
    let s = graft_elmrec::data::Sampler::new(&split, &c);
    // Each step holds one sequential and one direct micro-batch of 4: an
    // epoch of 40 users per task is 10 steps.
    let epoch = |first: u64, task: Task| -> Vec<u32> {
        let mut users = Vec::new();
        for step in first..first + 10 {
            for micro in 0..2 {
                if s.task(step, micro) == task {
                    let b = s.micro_batch(step, micro);
                    assert_eq!(b.len(), mb);
                    for e in &b {
                        check_example(e, &split, &c);
                    }
                    users.extend(b.iter().map(|e| e.user));
                }
            }
        }
        users
    };
    for task in [Task::Sequential, Task::Direct] {
        let (e0, e1) = (epoch(0, task), epoch(10, task));
        for e in [&e0, &e1] {
            let mut sorted = e.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..40).collect::<Vec<u32>>(), "{task:?}");
        }
        assert_ne!(e0, e1, "a new order every epoch");
    }
    // A pure function of (step, micro), like the random sampler.
    let again = graft_elmrec::data::Sampler::new(&split, &c);
    assert_eq!(s.micro_batch(13, 1), again.micro_batch(13, 1));
}

#[test]
fn bf16_products_score_generate_and_agree_with_the_loss() {
    let _rng = global_rng();
    let Some(tok) = tokenizer() else { return };
    let split = split();
    let c = ElmrecConfig {
        t5_bf16: true,
        ..cfg(Variant::Graph)
    };
    let model = ElmrecModel::new(&c, &split, tok, Device::Cpu).expect("model");
    assert_eq!(model.t5().expect("t5").compute_kind(), Kind::BFloat16);
    let tables = model.tables().expect("tables");
    let cands = vec![3u32, 17, 42, 5, 8];
    let d = Example {
        task: Task::Direct,
        user: 2,
        history: vec![],
        candidates: cands.clone(),
        target: 17,
        template: None,
    };
    let scores = model.score_candidates(&d, &tables).expect("score");
    assert!(scores.iter().all(|s| s.is_finite() && *s < 0.0));
    let loss = model.loss(std::slice::from_ref(&d), &tables).expect("loss");
    assert_eq!(loss.kind(), Kind::Float);
    let n = model.item_tokens(17).expect("tokens").len() as f64;
    let (a, b) = (-loss.double_value(&[]) * n, f64::from(scores[1]));
    assert!((a - b).abs() < 2e-2 * b.abs().max(1.0), "{a} vs {b}");
    let out = model
        .generate(&d, &tables, &model.candidate_trie(&cands), 5)
        .expect("generate");
    assert!(!out.is_empty() && out.iter().all(|i| cands.contains(i)));
}

#[test]
fn validation_by_generation_early_stops_on_hit_rates() {
    let _rng = global_rng();
    let Some(tok) = tokenizer() else { return };
    let split = split();
    let eval = eval_cfg();
    let test =
        EvalSet::build(&split, Split::Test, Some(5), eval.negatives, eval.seed).expect("test set");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = ElmrecConfig {
        max_steps: 4,
        eval_every: 2,
        validation: graft_elmrec::Validation::Generation {
            k: 10,
            beams: 4,
            negatives: 19,
        },
        lr_warmup_steps: 2,
        ..cfg(Variant::Graph)
    };
    let run = run_cpu(&cfg, &eval, &split, &test, tok, dir.path()).expect("train");
    assert_eq!(run.training.steps, 4);
    let log = std::fs::read_to_string(dir.path().join("log.jsonl")).expect("log");
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let evals: Vec<&serde_json::Value> =
        records.iter().filter(|v| v.get("eval").is_some()).collect();
    assert_eq!(evals.len(), 2);
    for e in evals {
        let f = |k: &str| e.get(k).and_then(serde_json::Value::as_f64).expect(k);
        let (d, s) = (f("valid_hr_direct"), f("valid_hr_sequential"));
        assert!((0.0..=1.0).contains(&d) && (0.0..=1.0).contains(&s));
        // The metric is the mean of both tasks' hit rates, and the losses
        // are still logged.
        assert!((f("eval") - (d + s) / 2.0).abs() < 1e-12);
        assert!(f("valid_loss") > 0.0 && f("valid_loss_direct") > 0.0);
    }
    // The warm-up: step 1 at half the rate, step 2 on at the full rate.
    let lrs: Vec<f64> = records
        .iter()
        .filter_map(|v| v.get("lr").and_then(serde_json::Value::as_f64))
        .collect();
    assert_eq!(lrs, vec![0.0005, 0.001, 0.001, 0.001]);
}

#[test]
fn length_buckets_regroup_the_same_examples_of_a_step() {
    let _rng = global_rng();
    let split = split();
    let c = ElmrecConfig {
        batch_size: 16,
        micro_batch: 4,
        bucket_by_length: true,
        ..cfg(Variant::Elmrec)
    };
    let s = graft_elmrec::data::Sampler::new(&split, &c);
    let key = |e: &Example| {
        format!(
            "{:?}",
            (e.task, e.user, &e.history, e.target, &e.candidates)
        )
    };
    for step in [0u64, 7] {
        let plain: Vec<Vec<Example>> = (0..4).map(|m| s.micro_batch(step, m)).collect();
        let bucketed: Vec<Vec<Example>> = (0..4).map(|m| s.bucketed_micro_batch(step, m)).collect();
        let mut a: Vec<String> = plain.iter().flatten().map(key).collect();
        let mut b: Vec<String> = bucketed.iter().flatten().map(key).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "the same examples in step {step}");
        for m in 0..4 {
            assert_eq!(bucketed[m].len(), 4);
            assert!(bucketed[m].iter().all(|e| e.task == s.task(step, m)));
            if s.task(step, m) == Task::Direct {
                assert_eq!(bucketed[m], plain[m]);
            }
        }
        // Sequential micro-batches 0 and 2: the second holds the longer histories.
        let longest = bucketed[0].iter().map(|e| e.history.len()).max();
        let shortest = bucketed[2].iter().map(|e| e.history.len()).min();
        assert!(longest <= shortest, "{longest:?} > {shortest:?}");
    }
}

/// libtorch has one global CPU generator and the harness runs tests on
/// several threads: every test of this binary that seeds it or draws from
/// it (initialisation, dropout, sampling) holds this lock, so a seeded
/// section is never interleaved with another test's draws.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
