//! Property tests: AUC against brute force and its invariances, ranking
//! metric relations, log loss as a mean of -ln terms.

use approx::relative_eq;
use graft_metrics::{
    auc, auc_ci, hit_at, log_loss, log_loss_terms, ndcg_at, rank_among, rank_of_positive,
    BootstrapConfig, RankingEvaluator,
};
use proptest::prelude::*;

/// O(n²) AUC: correctly ordered positive–negative pairs, ties 1/2.
fn brute_auc(labels: &[bool], scores: &[f64]) -> Option<f64> {
    let (mut num, mut pairs) = (0.0, 0.0);
    for (i, &yi) in labels.iter().enumerate() {
        for (j, &yj) in labels.iter().enumerate() {
            if yi && !yj {
                pairs += 1.0;
                num += match scores[i].partial_cmp(&scores[j]) {
                    Some(std::cmp::Ordering::Greater) => 1.0,
                    Some(std::cmp::Ordering::Equal) => 0.5,
                    _ => 0.0,
                };
            }
        }
    }
    (pairs > 0.0).then(|| num / pairs)
}

/// Labels with both classes and scores on a coarse grid (so ties are common).
fn ctr_sample() -> impl Strategy<Value = (Vec<bool>, Vec<f64>)> {
    (2usize..60)
        .prop_flat_map(|n| {
            (
                proptest::collection::vec(any::<bool>(), n),
                proptest::collection::vec(0u32..12, n),
            )
        })
        .prop_map(|(mut labels, grid)| {
            labels[0] = true;
            labels[1] = false;
            let scores = grid.iter().map(|&g| f64::from(g) / 11.0).collect();
            (labels, scores)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn auc_equals_brute_force((labels, scores) in ctr_sample()) {
        let fast = auc(&labels, &scores).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let slow = brute_auc(&labels, &scores).ok_or_else(|| TestCaseError::fail("one class"))?;
        prop_assert!(relative_eq!(fast, slow, epsilon = 1e-12), "{fast} vs {slow}");
        prop_assert!((0.0..=1.0).contains(&fast));
    }

    #[test]
    fn auc_invariant_under_monotone_transforms((labels, scores) in ctr_sample()) {
        let base = auc(&labels, &scores).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let transforms: [fn(f64) -> f64; 4] = [
            f64::exp,
            |x| 3.0 * x + 1.0,
            |x| (x - 0.5).powi(3),
            |x| 1.0 / (1.0 + (-10.0 * x).exp()),
        ];
        for t in transforms {
            let moved: Vec<f64> = scores.iter().map(|&s| t(s)).collect();
            let a = auc(&labels, &moved).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(relative_eq!(a, base, epsilon = 1e-12), "{a} vs {base}");
        }
        // f32 scores give the same AUC when the f32 rounding keeps the order
        let as_f32: Vec<f32> = scores.iter().map(|&s| s as f32).collect();
        let a = auc(&labels, &as_f32).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(relative_eq!(a, base, epsilon = 1e-12));
    }

    #[test]
    fn auc_of_complement_is_one_minus((labels, scores) in ctr_sample()) {
        let a = auc(&labels, &scores).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let flipped: Vec<f64> = scores.iter().map(|&p| 1.0 - p).collect();
        let b = auc(&labels, &flipped).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(relative_eq!(a + b, 1.0, epsilon = 1e-12), "{a} + {b}");
        // swapping the labels also mirrors the AUC
        let swapped: Vec<bool> = labels.iter().map(|&y| !y).collect();
        let c = auc(&swapped, &scores).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(relative_eq!(a + c, 1.0, epsilon = 1e-12));
    }

    #[test]
    fn auc_of_perfect_ranking_is_one(labels in proptest::collection::vec(any::<bool>(), 2..80)) {
        let mut labels = labels;
        labels[0] = true;
        labels[1] = false;
        // every positive above every negative, with ties inside each class
        let scores: Vec<f64> = labels
            .iter()
            .enumerate()
            .map(|(i, &y)| if y { 2.0 + (i % 3) as f64 } else { (i % 2) as f64 })
            .collect();
        let a = auc(&labels, &scores).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(a, 1.0);
    }

    #[test]
    fn auc_ci_brackets_a_well_behaved_estimate(seed in any::<u64>()) {
        // a fixed, separable-ish sample of 200: AUC well inside (0, 1)
        let labels: Vec<bool> = (0..200).map(|i| i % 3 == 0).collect();
        let scores: Vec<f64> = (0..200)
            .map(|i| f64::from((i * 37) % 101) / 101.0 + if i % 3 == 0 { 0.3 } else { 0.0 })
            .collect();
        let ci = auc_ci(&labels, &scores, &BootstrapConfig::new(200, 0.95, seed))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(ci.lower < ci.estimate && ci.estimate < ci.upper, "{ci:?}");
        prop_assert_eq!(ci.skipped, 0);
    }

    #[test]
    fn rank_matches_definition(pos in 0u32..10, negs in proptest::collection::vec(0u32..10, 1..40)) {
        let p = f64::from(pos);
        let n: Vec<f64> = negs.iter().map(|&x| f64::from(x)).collect();
        let r = rank_of_positive(p, &n).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(r, 1 + n.iter().filter(|&&x| x >= p).count());
        // the full-ranking variant agrees when the positive is inserted anywhere
        let at = negs.len() / 2;
        let mut all = n.clone();
        all.insert(at, p);
        prop_assert_eq!(rank_among(&all, at).map_err(|e| TestCaseError::fail(e.to_string()))?, r);
    }

    #[test]
    fn hr_monotone_in_k_and_ndcg_below_hr(
        ranks in proptest::collection::vec(proptest::option::of(1usize..60), 1..100),
    ) {
        let ks = [1, 2, 5, 10, 20, 50, 100];
        let mut eval = RankingEvaluator::new(&ks).map_err(|e| TestCaseError::fail(e.to_string()))?;
        eval.try_extend(ranks.iter().copied()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let r = eval.report().map_err(|e| TestCaseError::fail(e.to_string()))?;
        for w in r.cutoffs.windows(2) {
            prop_assert!(w[0].hr <= w[1].hr);
            prop_assert!(w[0].ndcg <= w[1].ndcg);
        }
        for c in &r.cutoffs {
            prop_assert!(0.0 <= c.ndcg && c.ndcg <= c.hr + 1e-12 && c.hr <= 1.0);
        }
        // HR@1 == NDCG@1 == fraction of rank-1 users; MRR between HR@1 and HR@inf
        prop_assert!(relative_eq!(r.cutoffs[0].hr, r.cutoffs[0].ndcg));
        prop_assert!(r.cutoffs[0].hr <= r.mrr + 1e-12);
        let found = ranks.iter().filter(|r| r.is_some()).count() as f64 / ranks.len() as f64;
        prop_assert!(r.mrr <= found + 1e-12);
        // per-user values are consistent with the report
        for (k, c) in ks.iter().zip(&r.cutoffs) {
            let hr = ranks.iter().map(|&x| hit_at(x, *k)).sum::<f64>() / ranks.len() as f64;
            let nd = ranks.iter().map(|&x| ndcg_at(x, *k)).sum::<f64>() / ranks.len() as f64;
            prop_assert!(relative_eq!(c.hr, hr) && relative_eq!(c.ndcg, nd));
        }
    }

    #[test]
    fn log_loss_is_mean_of_neg_ln_terms(
        data in proptest::collection::vec((any::<bool>(), 0.0f64..=1.0), 1..80),
        eps in prop_oneof![Just(1e-7), Just(1e-3), Just(0.1)],
    ) {
        let labels: Vec<bool> = data.iter().map(|d| d.0).collect();
        let probs: Vec<f64> = data.iter().map(|d| d.1).collect();
        let l = log_loss(&labels, &probs, eps).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected = labels
            .iter()
            .zip(&probs)
            .map(|(&y, &p)| {
                let p = p.clamp(eps, 1.0 - eps);
                -(if y { p.ln() } else { (1.0 - p).ln() })
            })
            .sum::<f64>()
            / labels.len() as f64;
        prop_assert!(l >= 0.0 && l.is_finite());
        prop_assert!(l <= -(eps.ln()) + 1e-12);
        prop_assert!(relative_eq!(l, expected, epsilon = 1e-12, max_relative = 1e-9), "{l} vs {expected}");
        let terms = log_loss_terms(&labels, &probs, eps).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(terms.iter().all(|&t| t >= 0.0));
        prop_assert!(relative_eq!(terms.iter().sum::<f64>() / terms.len() as f64, l, epsilon = 1e-12));
    }
}
