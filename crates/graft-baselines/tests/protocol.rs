//! The evaluation sets and the rank functions.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashSet;

use graft_baselines::{
    direct_rank, evaluate, full_rank, BaselineError, Constant, EvalCase, EvalSet, HistoryFilter,
    Split,
};
use graft_data::synthetic::{planted_clusters, SyntheticConfig};
use graft_data::{LeaveOneOut, NegativeSampler};
use graft_metrics::BootstrapConfig;

fn loo() -> LeaveOneOut {
    let cfg = SyntheticConfig {
        users: 150,
        items: 90,
        interactions_per_user: 8,
        ..SyntheticConfig::default()
    };
    LeaveOneOut::new(&planted_clusters(&cfg).unwrap().dataset)
}

#[test]
fn eval_set_is_deterministic_and_seed_dependent() {
    let loo = loo();
    let a = EvalSet::build(&loo, Split::Test, Some(60), 20, 11).unwrap();
    let b = EvalSet::build(&loo, Split::Test, Some(60), 20, 11).unwrap();
    assert_eq!(a, b);
    let c = EvalSet::build(&loo, Split::Test, Some(60), 20, 12).unwrap();
    assert_ne!(a.cases, c.cases);
    // Different seeds sample different users, not only different negatives.
    let users = |s: &EvalSet| s.cases.iter().map(|c| c.user).collect::<Vec<_>>();
    assert_ne!(users(&a), users(&c));
    // Round trip through JSON.
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(serde_json::from_str::<EvalSet>(&json).unwrap(), a);
}

#[test]
fn cases_are_well_formed() {
    let loo = loo();
    for split in [Split::Valid, Split::Test] {
        let set = EvalSet::build(&loo, split, None, 20, 5).unwrap();
        assert_eq!(set.cases.len(), loo.n_users());
        assert!(set.skipped_users.is_empty());
        assert_eq!(set.n_items, loo.n_items);
        let mut positions = HashSet::new();
        for case in &set.cases {
            let u = case.user as usize;
            assert_eq!(case.candidates.len(), 21);
            assert_eq!(
                case.candidates
                    .iter()
                    .filter(|&&c| c == case.target)
                    .count(),
                1
            );
            let distinct: HashSet<u32> = case.candidates.iter().copied().collect();
            assert_eq!(distinct.len(), 21, "candidates must be distinct");
            let all = loo.all_items(case.user);
            for &c in case.candidates.iter().filter(|&&c| c != case.target) {
                assert!(!all.contains(&c), "negative {c} was an item of user {u}");
                assert!((c as usize) < loo.n_items);
            }
            match split {
                Split::Valid => {
                    assert_eq!(Some(case.target), loo.valid[u]);
                    assert_eq!(case.history, loo.train[u]);
                }
                Split::Test => {
                    assert_eq!(Some(case.target), loo.test[u]);
                    let mut h = loo.train[u].clone();
                    h.push(loo.valid[u].unwrap());
                    assert_eq!(case.history, h);
                }
            }
            positions.insert(case.target_position().unwrap());
        }
        assert!(
            positions.len() > 10,
            "target positions barely vary: {positions:?}"
        );
        assert!(set.cases.windows(2).all(|w| w[0].user < w[1].user));
    }
}

#[test]
fn test_negatives_are_the_samplers_and_valid_ones_differ() {
    let loo = loo();
    let test = EvalSet::build(&loo, Split::Test, None, 20, 9).unwrap();
    let valid = EvalSet::build(&loo, Split::Valid, None, 20, 9).unwrap();
    let sampler = NegativeSampler::new(loo.n_items, 9);
    let sorted = |v: &[u32]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v
    };
    let mut same = 0;
    for (t, v) in test.cases.iter().zip(&valid.cases) {
        let negs = sampler.sample(t.user, &loo.all_items(t.user), 20).unwrap();
        let mut expect = negs.clone();
        expect.push(t.target);
        assert_eq!(sorted(&t.candidates), sorted(&expect));
        let tn: Vec<u32> = t
            .candidates
            .iter()
            .copied()
            .filter(|&c| c != t.target)
            .collect();
        let vn: Vec<u32> = v
            .candidates
            .iter()
            .copied()
            .filter(|&c| c != v.target)
            .collect();
        same += usize::from(sorted(&tn) == sorted(&vn));
    }
    assert_eq!(same, 0, "validation reuses the test negatives");
}

#[test]
fn max_users_is_respected_and_cases_do_not_depend_on_it() {
    let loo = loo();
    let full = EvalSet::build(&loo, Split::Test, None, 20, 3).unwrap();
    let big = EvalSet::build(&loo, Split::Test, Some(10_000), 20, 3).unwrap();
    assert_eq!(full, big);
    let small = EvalSet::build(&loo, Split::Test, Some(37), 20, 3).unwrap();
    assert_eq!(small.cases.len(), 37);
    assert!(small.cases.windows(2).all(|w| w[0].user < w[1].user));
    for c in &small.cases {
        assert_eq!(&full.cases[c.user as usize], c);
    }
    // The sample is spread over the users, not the first 37.
    assert!(small.cases.last().unwrap().user > 60);
    assert!(EvalSet::build(&loo, Split::Test, Some(0), 20, 3).is_err());
    assert!(EvalSet::build(&loo, Split::Test, None, 0, 3).is_err());
}

#[test]
fn users_without_enough_negatives_are_skipped() {
    // 10 items; user 0 has 8 (2 left), user 1 has 4 (6 left), user 2 has one
    // item only (no target).
    let loo = LeaveOneOut {
        train: vec![vec![0, 1, 2, 3, 4, 5], vec![0, 1], vec![7]],
        valid: vec![Some(6), Some(2), None],
        test: vec![Some(7), Some(3), None],
        n_items: 10,
    };
    let set = EvalSet::build(&loo, Split::Test, None, 4, 0).unwrap();
    assert_eq!(set.skipped_users, vec![0]);
    assert_eq!(set.cases.len(), 1);
    assert_eq!(set.cases[0].user, 1);
    assert_eq!(set.cases[0].history, vec![0, 1, 2]);
    let mut c = set.cases[0].candidates.clone();
    c.sort_unstable();
    assert!(c.iter().all(|i| ![0, 1, 2].contains(i)));
    assert!(c.contains(&3));
    // max_users counts cases, so a skipped user is replaced by another one.
    let one = EvalSet::build(&loo, Split::Test, Some(1), 4, 0).unwrap();
    assert_eq!(one.cases.len(), 1);
}

fn case(target: u32, candidates: Vec<u32>, history: Vec<u32>) -> EvalCase {
    EvalCase {
        user: 0,
        history,
        target,
        candidates,
    }
}

#[test]
fn direct_rank_by_hand_with_pessimistic_ties() {
    let scores = [0.5, 0.9, 0.5, 0.1, 0.7];
    // negatives 3 (0.1), 2 (0.5, tie: above), 4 (0.7): rank 3
    assert_eq!(
        direct_rank(&scores, &case(0, vec![3, 0, 2, 4], vec![])).unwrap(),
        3
    );
    assert_eq!(
        direct_rank(&scores, &case(1, vec![3, 1, 2], vec![])).unwrap(),
        1
    );
    assert_eq!(
        direct_rank(&scores, &case(3, vec![3, 1, 2], vec![])).unwrap(),
        3
    );
    // All tied: worst rank.
    assert_eq!(
        direct_rank(&[1.0; 5], &case(2, vec![0, 1, 2, 3, 4], vec![])).unwrap(),
        5
    );
    // Malformed cases.
    assert!(matches!(
        direct_rank(&scores, &case(0, vec![3, 2], vec![])),
        Err(BaselineError::Case { .. })
    ));
    assert!(matches!(
        direct_rank(&scores, &case(0, vec![0, 2, 0], vec![])),
        Err(BaselineError::Case { .. })
    ));
    assert!(matches!(
        direct_rank(&scores, &case(0, vec![0, 9], vec![])),
        Err(BaselineError::IdOutOfRange { id: 9, .. })
    ));
    assert!(matches!(
        direct_rank(&[0.5, f32::NAN], &case(0, vec![0, 1], vec![])),
        Err(BaselineError::Metrics(_))
    ));
}

#[test]
fn full_rank_by_hand_with_history_filter() {
    let scores = [0.5, 0.9, 0.5, 0.1, 0.7];
    let c = case(0, vec![0, 3], vec![1, 4]);
    // Keep: 1 (0.9), 2 (0.5 tie), 4 (0.7) rank above: 4
    assert_eq!(full_rank(&scores, &c, HistoryFilter::Keep).unwrap(), 4);
    // Drop 1 and 4: only 2 (tie) above: 2
    assert_eq!(full_rank(&scores, &c, HistoryFilter::Drop).unwrap(), 2);
    // A target that is also a history item stays ranked.
    let c = case(0, vec![0, 3], vec![0, 1]);
    assert_eq!(full_rank(&scores, &c, HistoryFilter::Drop).unwrap(), 3);
    // The best item.
    let c = case(1, vec![1, 3], vec![0]);
    assert_eq!(full_rank(&scores, &c, HistoryFilter::Keep).unwrap(), 1);
    // NaN only matters where it is ranked: dropped history may be NaN.
    let nan = [0.5, f32::NAN, 0.2];
    let c = case(0, vec![0, 2], vec![1]);
    assert!(matches!(
        full_rank(&nan, &c, HistoryFilter::Keep),
        Err(BaselineError::Metrics(_))
    ));
    assert_eq!(full_rank(&nan, &c, HistoryFilter::Drop).unwrap(), 1);
    assert!(matches!(
        full_rank(&scores, &case(0, vec![0, 3], vec![7]), HistoryFilter::Drop),
        Err(BaselineError::IdOutOfRange { id: 7, .. })
    ));
    assert!(full_rank(&scores, &case(8, vec![8, 3], vec![]), HistoryFilter::Keep).is_err());
}

#[test]
fn constant_scorer_ranks_every_target_last() {
    let loo = loo();
    let set = EvalSet::build(&loo, Split::Test, Some(50), 20, 1).unwrap();
    let boot = BootstrapConfig::new(50, 0.95, 1);
    let r = evaluate(&Constant::new(loo.n_items), &set, &[1, 10], &boot).unwrap();
    assert_eq!(r.direct.n_users, 50);
    assert_eq!(r.direct.hr(10), Some(0.0));
    assert!((r.direct.mrr - 1.0 / 21.0).abs() < 1e-12);
    assert!((r.sequential.mrr - 1.0 / loo.n_items as f64).abs() < 1e-12);
    // Dropping the history leaves fewer items to lose against.
    assert!(r.sequential_history_dropped.mrr > r.sequential.mrr);
    // A wrong-length score vector is an error, not a silent truncation.
    assert!(matches!(
        evaluate(&Constant::new(loo.n_items - 1), &set, &[10], &boot),
        Err(BaselineError::ScoreLength { .. })
    ));
}

#[test]
fn empty_evaluation_sets_are_clear_errors() {
    // Nobody has three interactions: test items exist, validation items do not.
    let two = LeaveOneOut {
        train: vec![vec![0], vec![1]],
        valid: vec![None, None],
        test: vec![Some(1), Some(2)],
        n_items: 30,
    };
    assert_eq!(
        EvalSet::build(&two, Split::Test, None, 5, 0).unwrap().len(),
        2
    );
    let e = EvalSet::build(&two, Split::Valid, None, 5, 0).unwrap_err();
    assert!(
        matches!(e, BaselineError::NoCases { split: "valid", .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("no user has a valid item") && msg.contains("at least 3 interactions"),
        "{msg}"
    );
    // Fewer items than the negatives asked for.
    let e = EvalSet::build(&two, Split::Test, None, 99, 0).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("fewer than 99 items")
            && msg.contains("30 items")
            && msg.contains("fewer negatives"),
        "{msg}"
    );
    assert!(!msg.contains("ranks is empty"));
}

#[test]
fn renamed_sets_keep_users_and_rename_items() {
    let loo = loo();
    let set = EvalSet::build(&loo, Split::Test, Some(40), 20, 3).unwrap();
    let perm = graft_data::ItemPermutation::random(loo.n_items, 9);
    let r = set.renamed(&perm).unwrap();
    assert_eq!(r.len(), set.len());
    for (a, b) in set.cases.iter().zip(&r.cases) {
        assert_eq!(a.user, b.user);
        assert_eq!(b.target, perm.apply(a.target));
        assert!(a
            .history
            .iter()
            .map(|&i| perm.apply(i))
            .eq(b.history.iter().copied()));
        assert!(a
            .candidates
            .iter()
            .map(|&i| perm.apply(i))
            .eq(b.candidates.iter().copied()));
    }
    // The renamed set is the evaluation of the renamed split.
    let split = perm.apply_split(&loo).unwrap();
    for c in &r.cases {
        assert_eq!(split.test[c.user as usize], Some(c.target));
    }
    assert!(set
        .renamed(&graft_data::ItemPermutation::identity(3))
        .is_err());
}

#[test]
fn sequential_index_reads_the_next_number() {
    use graft_baselines::{ItemScorer, SequentialIndex};
    // Users whose next item is max(history) + 1: the rule ranks it first.
    let loo = LeaveOneOut {
        train: vec![vec![3, 4, 5], vec![10, 2, 11]],
        valid: vec![Some(6), Some(12)],
        test: vec![Some(7), Some(13)],
        n_items: 40,
    };
    let set = EvalSet::build(&loo, Split::Test, None, 20, 1).unwrap();
    let boot = BootstrapConfig::new(50, 0.95, 1);
    let r = evaluate(&SequentialIndex::new(40), &set, &[1], &boot).unwrap();
    assert_eq!(r.sequential.hr(1), Some(1.0));
    assert_eq!(r.sequential_history_dropped.hr(1), Some(1.0));
    assert_eq!(r.direct.hr(1), Some(1.0));
    assert_eq!(SequentialIndex::new(40).name(), "sequential-index");
}
