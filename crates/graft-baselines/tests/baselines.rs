//! The baselines: popularity, random-feature propagation and LightGCN-BPR.

#![allow(clippy::unwrap_used, clippy::panic)]

use approx::assert_relative_eq;
#[cfg(feature = "tch")]
use graft_baselines::{direct_rank, BprConfig, LightGcnBpr, RandomScorer};
use graft_baselines::{evaluate, EvalSet, ItemScorer, Popularity, RandomPropagation, Split};
use graft_data::synthetic::{planted_clusters, SyntheticConfig};
use graft_data::{LeaveOneOut, NegativeSampler};
use graft_graph::BipartiteGraph;
use graft_metrics::{rank_of_positive, BootstrapConfig, RankingEvaluator};
use graft_propagate::{DenseReference, LayerCombine, LightGcnConfig, Propagator};

fn clusters(users: usize, seed: u64) -> LeaveOneOut {
    let cfg = SyntheticConfig {
        users,
        items: 120,
        clusters: 4,
        interactions_per_user: 12,
        in_cluster: 0.9,
        seed,
    };
    LeaveOneOut::new(&planted_clusters(&cfg).unwrap().dataset)
}

#[test]
fn popularity_matches_the_demo() {
    let _rng = global_rng();
    let loo = clusters(200, 1);
    // The hand computation the demo once did: train-graph item degrees, the test item among
    // NegativeSampler(seed) negatives, pessimistic ties.
    let graph = BipartiteGraph::from_edges(loo.n_users(), loo.n_items, loo.train_edges()).unwrap();
    let degrees = graph.item_degrees();
    let sampler = NegativeSampler::new(loo.n_items, 2024);
    let mut demo = RankingEvaluator::new(&[5, 10]).unwrap();
    for u in 0..loo.n_users() as u32 {
        let target = loo.test[u as usize].unwrap();
        let negs = sampler.sample(u, &loo.all_items(u), 99).unwrap();
        let ns: Vec<f64> = negs.iter().map(|&i| degrees[i as usize] as f64).collect();
        demo.push(Some(
            rank_of_positive(degrees[target as usize] as f64, &ns).unwrap(),
        ))
        .unwrap();
    }
    let demo = demo.report().unwrap();

    let pop = Popularity::fit(&loo);
    let expect: Vec<u32> = degrees.iter().map(|&d| d as u32).collect();
    assert_eq!(pop.degrees(), expect.as_slice());
    let scores = pop.score_all(3, &[]).unwrap();
    assert_eq!(scores.len(), loo.n_items);
    assert_eq!(scores[7], degrees[7] as f32);
    let set = EvalSet::build(&loo, Split::Test, None, 99, 2024).unwrap();
    let boot = BootstrapConfig::new(20, 0.95, 0);
    let r = evaluate(&pop, &set, &[5, 10], &boot).unwrap();
    assert_eq!(r.direct.n_users, demo.n_users);
    assert_eq!(r.direct.hr(5), demo.hr(5));
    assert_eq!(r.direct.hr(10), demo.hr(10));
    assert_eq!(r.direct.mrr, demo.mrr);
    assert_eq!(r.scorer, "popularity");
}

#[test]
fn random_propagation_is_the_dot_of_the_reference_vectors() {
    let _rng = global_rng();
    let loo = clusters(40, 2);
    let cfg = LightGcnConfig {
        dim: 16,
        layers: 3,
        sigma: 0.1,
        seed: 5,
        combine: LayerCombine::Mean,
    };
    let model = RandomPropagation::fit(&loo, &cfg).unwrap();
    let g = BipartiteGraph::from_edges(loo.n_users(), loo.n_items, loo.train_edges()).unwrap();
    let e0 = cfg.initial_embeddings(g.n_nodes()).unwrap();
    let reference = DenseReference::new(&g.normalized().unwrap())
        .unwrap()
        .propagate(e0.view(), cfg.layers, &cfg.combine)
        .unwrap();
    let nu = loo.n_users();
    assert_eq!(model.user_vectors().dim(), (nu, 16));
    assert_eq!(model.item_vectors().dim(), (loo.n_items, 16));
    for u in [0u32, 7, 39] {
        let scores = model.score_all(u, &[]).unwrap();
        assert_eq!(scores.len(), loo.n_items);
        for (i, &s) in scores.iter().enumerate() {
            let expect: f64 = (0..16)
                .map(|k| f64::from(reference[(u as usize, k)]) * f64::from(reference[(nu + i, k)]))
                .sum();
            assert_relative_eq!(f64::from(s), expect, epsilon = 1e-6, max_relative = 1e-4);
        }
    }
    assert!(model.score_all(40, &[]).is_err());
}

#[cfg(feature = "tch")]
#[test]
fn lightgcn_bpr_learns_the_clusters_and_is_deterministic() {
    let _rng = global_rng();
    let loo = clusters(300, 3);
    let valid = EvalSet::build(&loo, Split::Valid, None, 50, 8).unwrap();
    let test = EvalSet::build(&loo, Split::Test, None, 50, 8).unwrap();
    let cfg = BprConfig {
        dim: 32,
        layers: 2,
        lr: 0.01,
        batch: 256,
        epochs: 25,
        patience: None,
        eval_every: 5,
        seed: 4,
        ..BprConfig::default()
    };
    let (model, log) = LightGcnBpr::train(&loo, &cfg, Some(&valid)).unwrap();
    assert_eq!(log.len(), 25);
    let first = log[0].loss;
    let last = log[log.len() - 1].loss;
    assert!(
        first > 0.6 && last < 0.8 * first,
        "BPR loss {first} -> {last}"
    );
    assert!(log.iter().filter(|l| l.valid_hr10.is_some()).count() == 5);
    assert!(model.best_valid_hr10().is_some());

    let boot = BootstrapConfig::new(50, 0.95, 0);
    let ks = [10];
    let bpr = evaluate(&model, &test, &ks, &boot).unwrap();
    let pop = evaluate(&Popularity::fit(&loo), &test, &ks, &boot).unwrap();
    let rnd = evaluate(&RandomScorer::new(loo.n_items, 1), &test, &ks, &boot).unwrap();
    let (b, p, r) = (
        bpr.direct.hr(10).unwrap(),
        pop.direct.hr(10).unwrap(),
        rnd.direct.hr(10).unwrap(),
    );
    eprintln!("synthetic direct HR@10: bpr {b:.3} popularity {p:.3} random {r:.3}");
    assert!(
        b > p + 0.2 && b > r + 0.2,
        "bpr {b} popularity {p} random {r}"
    );
    assert!(b > 0.6, "bpr {b}");
    assert!(
        bpr.sequential.hr(10).unwrap() > pop.sequential.hr(10).unwrap(),
        "sequential: bpr {:?} popularity {:?}",
        bpr.sequential.hr(10),
        pop.sequential.hr(10)
    );

    // A second training gives identical scores.
    let (again, log2) = LightGcnBpr::train(&loo, &cfg, Some(&valid)).unwrap();
    assert_eq!(model.best_epoch(), again.best_epoch());
    assert_eq!(log.len(), log2.len());
    for (a, b) in log.iter().zip(&log2) {
        assert_eq!(a.loss, b.loss);
        assert_eq!(a.valid_hr10, b.valid_hr10);
    }
    for u in [0u32, 1, 150, 299] {
        assert_eq!(
            model.score_all(u, &[]).unwrap(),
            again.score_all(u, &[]).unwrap()
        );
    }
    // A different seed gives different embeddings.
    let (other, _) = LightGcnBpr::train(
        &loo,
        &BprConfig {
            seed: 5,
            epochs: 2,
            ..cfg.clone()
        },
        None,
    )
    .unwrap();
    assert_ne!(
        model.score_all(0, &[]).unwrap(),
        other.score_all(0, &[]).unwrap()
    );
}

#[cfg(feature = "tch")]
#[test]
fn early_stopping_keeps_the_best_epoch() {
    let _rng = global_rng();
    let loo = clusters(120, 6);
    let valid = EvalSet::build(&loo, Split::Valid, None, 30, 2).unwrap();
    let cfg = BprConfig {
        dim: 16,
        layers: 1,
        lr: 0.05,
        batch: 128,
        epochs: 60,
        patience: Some(2),
        eval_every: 1,
        seed: 1,
        ..BprConfig::default()
    };
    let (model, log) = LightGcnBpr::train(&loo, &cfg, Some(&valid)).unwrap();
    let best = log
        .iter()
        .filter_map(|l| l.valid_hr10)
        .fold(f64::MIN, f64::max);
    assert_eq!(model.best_valid_hr10(), Some(best));
    let kept = &log[model.best_epoch() - 1];
    assert_eq!(kept.valid_hr10, Some(best));
    // The kept embeddings reproduce the logged validation HR@10.
    let hits = valid
        .cases
        .iter()
        .filter(|c| direct_rank(&model.score_all(c.user, &[]).unwrap(), c).unwrap() <= 10)
        .count();
    assert_eq!(hits as f64 / valid.cases.len() as f64, best);
    if log.len() < 60 {
        // Stopped early: exactly `patience` evaluations after the best one.
        assert_eq!(log.len(), model.best_epoch() + 2);
    }
    // Invalid configurations are errors.
    for bad in [
        BprConfig {
            dim: 0,
            ..cfg.clone()
        },
        BprConfig {
            lr: -1.0,
            ..cfg.clone()
        },
        BprConfig {
            patience: Some(0),
            ..cfg.clone()
        },
    ] {
        assert!(LightGcnBpr::train(&loo, &bad, None).is_err());
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
