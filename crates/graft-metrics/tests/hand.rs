//! Hand-computed values, error cases and bootstrap behaviour.

use approx::assert_relative_eq;
use graft_metrics::{
    auc, auc_ci, bootstrap_ci, ctr_report, hit_at, log_loss, log_loss_terms, mean_ci, ndcg_at,
    paired_auc_difference_ci, paired_difference_ci, paired_log_loss_difference_ci, rank_among,
    rank_in_list, rank_of_positive, reciprocal_rank, BootstrapConfig, MetricsError,
    RankingEvaluator, DEFAULT_LOG_LOSS_EPS,
};

type TestResult = Result<(), MetricsError>;

// ---------------------------------------------------------------- ranking

#[test]
fn ranks_1_3_11_at_5_10_20() -> TestResult {
    let mut eval = RankingEvaluator::new(&[10, 5, 20, 5])?;
    assert_eq!(eval.ks(), &[5, 10, 20]);
    eval.try_extend([Some(1), Some(3), Some(11)])?;
    let r = eval.report()?;
    assert_eq!(r.n_users, 3);
    assert_relative_eq!(r.hr(5).expect("k=5"), 2.0 / 3.0, epsilon = 1e-12);
    assert_relative_eq!(r.hr(10).expect("k=10"), 2.0 / 3.0, epsilon = 1e-12);
    assert_relative_eq!(r.hr(20).expect("k=20"), 1.0, epsilon = 1e-12);
    // 1/log2(2) = 1, 1/log2(4) = 1/2, 1/log2(12)
    assert_relative_eq!(r.ndcg(5).expect("k=5"), 0.5, epsilon = 1e-12);
    assert_relative_eq!(r.ndcg(10).expect("k=10"), 0.5, epsilon = 1e-12);
    assert_relative_eq!(
        r.ndcg(20).expect("k=20"),
        (1.0 + 0.5 + 1.0 / 12f64.log2()) / 3.0,
        epsilon = 1e-12
    );
    // (1 + 1/3 + 1/11) / 3 = 47/99
    assert_relative_eq!(r.mrr, 47.0 / 99.0, epsilon = 1e-12);
    assert!(r.hr(7).is_none());
    assert!(r.mrr_ci.is_none());
    Ok(())
}

#[test]
fn misses_count_zero() -> TestResult {
    let mut eval = RankingEvaluator::new(&[1])?;
    eval.try_extend([None, Some(1), None, Some(2)])?;
    let r = eval.report()?;
    assert_relative_eq!(r.hr(1).expect("k=1"), 0.25);
    assert_relative_eq!(r.mrr, (1.0 + 0.5) / 4.0);
    Ok(())
}

#[test]
fn per_user_functions() {
    assert_eq!(hit_at(Some(5), 5), 1.0);
    assert_eq!(hit_at(Some(6), 5), 0.0);
    assert_eq!(hit_at(None, 5), 0.0);
    assert_eq!(hit_at(Some(1), 0), 0.0);
    assert_eq!(ndcg_at(Some(1), 1), 1.0);
    assert_relative_eq!(ndcg_at(Some(3), 3), 0.5);
    assert_relative_eq!(ndcg_at(Some(7), 10), 1.0 / 3.0);
    assert_eq!(ndcg_at(Some(11), 10), 0.0);
    assert_eq!(reciprocal_rank(Some(4)), 0.25);
    assert_eq!(reciprocal_rank(None), 0.0);
    assert!(hit_at(Some(0), 3).is_nan());
    assert!(ndcg_at(Some(0), 3).is_nan());
    assert!(reciprocal_rank(Some(0)).is_nan());
}

#[test]
fn pessimistic_ties() -> TestResult {
    // tied with two negatives -> ranked after both
    assert_eq!(rank_of_positive(0.5, &[0.5, 0.1, 0.5])?, 3);
    assert_eq!(rank_of_positive(0.5_f32, &[0.1, 0.2])?, 1);
    assert_eq!(rank_of_positive(0.5, &[0.9, 0.7, 0.1])?, 3);
    // a constant scorer gets the worst rank
    assert_eq!(rank_of_positive(1.0, &[1.0; 99])?, 100);
    // -0.0 and 0.0 tie
    assert_eq!(rank_of_positive(0.0, &[-0.0])?, 2);
    // infinities are ordered
    assert_eq!(
        rank_of_positive(f64::INFINITY, &[1e300, f64::NEG_INFINITY])?,
        1
    );
    assert_eq!(rank_among(&[0.3, 0.9, 0.3, 0.1], 0)?, 3);
    assert_eq!(rank_among(&[0.3, 0.9, 0.3, 0.1], 1)?, 1);
    assert_eq!(rank_among(&[0.3], 0)?, 1);
    Ok(())
}

#[test]
fn rank_in_generated_list() {
    let list = [17u32, 4, 4, 9];
    assert_eq!(rank_in_list(&list, &17), Some(1));
    assert_eq!(rank_in_list(&list, &4), Some(2));
    assert_eq!(rank_in_list(&list, &9), Some(4));
    assert_eq!(rank_in_list(&list, &5), None);
    assert_eq!(rank_in_list::<u32>(&[], &5), None);
}

#[test]
fn ranking_errors() {
    assert_eq!(
        rank_of_positive::<f64>(0.5, &[]),
        Err(MetricsError::Empty {
            what: "negative_scores"
        })
    );
    assert_eq!(
        rank_of_positive(0.5, &[0.1, f64::NAN]),
        Err(MetricsError::NaN {
            what: "negative_scores",
            index: 1
        })
    );
    assert!(matches!(
        rank_of_positive(f32::NAN, &[0.1]),
        Err(MetricsError::NaN { .. })
    ));
    assert!(matches!(
        rank_among(&[0.1, 0.2], 2),
        Err(MetricsError::IndexOutOfBounds {
            index: 2,
            len: 2,
            ..
        })
    ));
    assert!(matches!(
        rank_among::<f64>(&[], 0),
        Err(MetricsError::Empty { .. })
    ));
    assert!(matches!(
        RankingEvaluator::new(&[]),
        Err(MetricsError::Empty { .. })
    ));
    assert!(matches!(
        RankingEvaluator::new(&[5, 0]),
        Err(MetricsError::InvalidK { k: 0 })
    ));
}

#[test]
fn evaluator_errors() -> TestResult {
    let mut eval = RankingEvaluator::new(&[5])?;
    assert!(eval.is_empty());
    assert!(matches!(eval.report(), Err(MetricsError::Empty { .. })));
    eval.push(Some(2))?;
    assert_eq!(
        eval.try_extend([Some(1), Some(0), Some(3)]),
        Err(MetricsError::InvalidRank { user: 2 })
    );
    assert_eq!(eval.ranks(), &[Some(2), Some(1)]);
    assert_eq!(eval.len(), 2);
    Ok(())
}

// -------------------------------------------------------------------- CTR

#[test]
fn auc_hand_examples() -> TestResult {
    // pairs: (0.8 vs 0.8) = 1/2, (0.8 vs 0.1) = 1, (0.3 vs 0.8) = 0, (0.3 vs 0.1) = 1
    assert_relative_eq!(
        auc(&[true, false, true, false], &[0.8, 0.8, 0.3, 0.1])?,
        0.625,
        epsilon = 1e-15
    );
    assert_eq!(auc(&[false, true], &[0.1, 0.9])?, 1.0);
    assert_eq!(auc(&[false, true], &[0.9, 0.1])?, 0.0);
    assert_eq!(auc(&[false, true, true], &[0.4, 0.4, 0.4])?, 0.5);
    // 3 pos, 2 neg: pos {0.9, 0.5, 0.2}, neg {0.6, 0.2}
    // 0.9 beats both (2); 0.5 beats 0.2 (1); 0.2 ties 0.2 (0.5) -> 3.5 / 6
    assert_relative_eq!(
        auc(
            &[true, false, true, true, false],
            &[0.9_f32, 0.6, 0.5, 0.2, 0.2]
        )?,
        3.5 / 6.0,
        epsilon = 1e-15
    );
    Ok(())
}

#[test]
fn auc_errors() {
    assert_eq!(
        auc::<f64>(&[], &[]),
        Err(MetricsError::Empty { what: "labels" })
    );
    assert!(matches!(
        auc(&[true, false], &[0.1]),
        Err(MetricsError::LengthMismatch {
            left: 2,
            right: 1,
            ..
        })
    ));
    assert_eq!(
        auc(&[true, false, true], &[0.1, f64::NAN, 0.2]),
        Err(MetricsError::NaN {
            what: "scores",
            index: 1
        })
    );
    assert_eq!(
        auc(&[true, true], &[0.1, 0.2]),
        Err(MetricsError::SingleClass {
            positives: 2,
            negatives: 0
        })
    );
    assert_eq!(
        auc(&[false], &[0.1]),
        Err(MetricsError::SingleClass {
            positives: 0,
            negatives: 1
        })
    );
}

#[test]
fn log_loss_hand_values() -> TestResult {
    let l = log_loss(&[true, false], &[0.8, 0.4], DEFAULT_LOG_LOSS_EPS)?;
    // (-ln 0.8 - ln 0.6) / 2
    assert_relative_eq!(l, 0.366_984_587_540_100_2, epsilon = 1e-12);
    // perfect predictions are clipped, not zero: -ln(1 - 1e-7) ~ 1e-7
    let l = log_loss(&[true, false], &[1.0, 0.0], DEFAULT_LOG_LOSS_EPS)?;
    assert_relative_eq!(l, 1.000_000_05e-7, max_relative = 1e-6);
    // a confident mistake costs -ln(1e-7), not infinity
    let l = log_loss(&[true], &[0.0_f32], DEFAULT_LOG_LOSS_EPS)?;
    assert_relative_eq!(l, -(1e-7f64).ln(), epsilon = 1e-12);
    assert_relative_eq!(l, 16.118_095_650_958_32, epsilon = 1e-9);
    let l = log_loss(&[false, true], &[1.0, 0.0], 1e-3)?;
    assert_relative_eq!(l, -(1e-3f64).ln(), epsilon = 1e-12);
    // p = 0.5 costs ln 2 either way
    let l = log_loss(&[false, true], &[0.5, 0.5], DEFAULT_LOG_LOSS_EPS)?;
    assert_relative_eq!(l, std::f64::consts::LN_2, epsilon = 1e-15);
    let t = log_loss_terms(&[true, false], &[0.8, 0.4], DEFAULT_LOG_LOSS_EPS)?;
    assert_relative_eq!(t[0], -(0.8f64.ln()), epsilon = 1e-15);
    assert_relative_eq!(t[1], -(0.6f64.ln()), epsilon = 1e-15);
    Ok(())
}

#[test]
fn log_loss_errors() {
    let e = DEFAULT_LOG_LOSS_EPS;
    assert!(matches!(
        log_loss::<f64>(&[], &[], e),
        Err(MetricsError::Empty { .. })
    ));
    assert!(matches!(
        log_loss(&[true], &[0.1, 0.2], e),
        Err(MetricsError::LengthMismatch { .. })
    ));
    assert_eq!(
        log_loss(&[true, false], &[0.5, f64::NAN], e),
        Err(MetricsError::NaN {
            what: "probabilities",
            index: 1
        })
    );
    assert_eq!(
        log_loss(&[true, false], &[0.5, 1.5], e),
        Err(MetricsError::InvalidProbability {
            index: 1,
            value: 1.5
        })
    );
    assert!(matches!(
        log_loss(&[true], &[-0.1], e),
        Err(MetricsError::InvalidProbability { index: 0, .. })
    ));
    assert!(matches!(
        log_loss(&[true], &[f64::INFINITY], e),
        Err(MetricsError::InvalidProbability { .. })
    ));
    for bad in [0.0, -1.0, 0.5, f64::NAN] {
        assert!(matches!(
            log_loss(&[true], &[0.5], bad),
            Err(MetricsError::InvalidConfig { .. })
        ));
    }
}

#[test]
fn ctr_report_matches_parts() -> TestResult {
    let labels = [true, false, true, false, false, true];
    let probs = [0.9, 0.2, 0.6, 0.7, 0.1, 0.4];
    let r = ctr_report(&labels, &probs, DEFAULT_LOG_LOSS_EPS, None)?;
    assert_eq!(r.n, 6);
    assert_eq!(r.positives, 3);
    assert_eq!(r.auc, auc(&labels, &probs)?);
    assert_relative_eq!(
        r.log_loss,
        log_loss(&labels, &probs, DEFAULT_LOG_LOSS_EPS)?,
        epsilon = 1e-15
    );
    assert!(r.auc_ci.is_none());
    let cfg = BootstrapConfig::new(300, 0.9, 5).with_max_skipped_fraction(0.5);
    let r = ctr_report(&labels, &probs, DEFAULT_LOG_LOSS_EPS, Some(&cfg))?;
    assert_eq!(r.auc_ci, Some(auc_ci(&labels, &probs, &cfg)?));
    let terms = log_loss_terms(&labels, &probs, DEFAULT_LOG_LOSS_EPS)?;
    assert_eq!(r.log_loss_ci, Some(mean_ci(&terms, &cfg)?));
    Ok(())
}

// -------------------------------------------------------------- bootstrap

/// A fixed, well-behaved sample: 0/1 hits with rate about 0.3.
fn hits(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| if (i * 7919) % 10 < 3 { 1.0 } else { 0.0 })
        .collect()
}

fn mean_of(values: &[f64], idx: &[usize]) -> f64 {
    idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64
}

#[test]
fn bootstrap_contains_estimate_and_narrows() -> TestResult {
    let cfg = BootstrapConfig::new(500, 0.95, 11);
    let small = mean_ci(&hits(100), &cfg)?;
    let large = mean_ci(&hits(10_000), &cfg)?;
    for ci in [&small, &large] {
        assert!(ci.contains(ci.estimate), "{ci:?}");
        assert!(ci.lower < ci.upper);
        assert_eq!(ci.resamples, 500);
        assert_eq!(ci.skipped, 0);
        assert_eq!(ci.level, 0.95);
    }
    assert_relative_eq!(large.estimate, 0.3, epsilon = 1e-12);
    // standard error shrinks like 1/sqrt(n): 100x the data, ~1/10 the width
    assert!(large.width() < small.width() / 5.0, "{small:?} {large:?}");
    // the 95% width of a proportion near 0.3 with n=100 is about 0.18
    assert!((0.12..0.24).contains(&small.width()), "{small:?}");
    Ok(())
}

#[test]
fn bootstrap_is_deterministic_for_a_seed() -> TestResult {
    let x = hits(300);
    let cfg = BootstrapConfig::new(200, 0.95, 3);
    let a = mean_ci(&x, &cfg)?;
    let b = mean_ci(&x, &cfg)?;
    assert_eq!(a, b);
    let c = mean_ci(&x, &cfg.clone().with_seed(4))?;
    assert_ne!(a, c);
    Ok(())
}

#[test]
fn mean_ci_equals_generic_bootstrap() -> TestResult {
    let x: Vec<f64> = (0..257).map(|i| ((i * 37) % 101) as f64 / 7.0).collect();
    let cfg = BootstrapConfig::new(100, 0.9, 99);
    let fast = mean_ci(&x, &cfg)?;
    let slow = bootstrap_ci(x.len(), &cfg, |idx| Ok(mean_of(&x, idx)))?;
    assert_relative_eq!(fast.estimate, slow.estimate, epsilon = 1e-12);
    assert_relative_eq!(fast.lower, slow.lower, epsilon = 1e-12);
    assert_relative_eq!(fast.upper, slow.upper, epsilon = 1e-12);
    Ok(())
}

#[test]
fn auc_ci_equals_generic_bootstrap_and_skips_single_class() -> TestResult {
    // few positives, so some resamples draw none
    let labels: Vec<bool> = (0..12).map(|i| i % 6 == 0).collect();
    let scores: Vec<f64> = (0..12).map(|i| ((i * 5) % 7) as f64).collect();
    let cfg = BootstrapConfig::new(400, 0.95, 8).with_max_skipped_fraction(0.5);
    let fast = auc_ci(&labels, &scores, &cfg)?;
    let slow = bootstrap_ci(labels.len(), &cfg, |idx| {
        let l: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
        let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
        auc(&l, &s)
    })?;
    assert_eq!(fast, slow);
    assert!(fast.skipped > 0, "{fast:?}");
    assert_eq!(fast.skipped + fast.resamples, 400);
    // refuse when more than the allowed fraction is skipped
    let strict = cfg.with_max_skipped_fraction(0.0);
    assert!(matches!(
        auc_ci(&labels, &scores, &strict),
        Err(MetricsError::TooManySkipped { max_skipped: 0, .. })
    ));
    Ok(())
}

#[test]
fn paired_auc_difference_equals_generic_bootstrap_and_skips_single_class() -> TestResult {
    let labels: Vec<bool> = (0..15).map(|i| i % 5 == 0).collect();
    let a: Vec<f64> = (0..15).map(|i| ((i * 5) % 7) as f64).collect();
    let b: Vec<f64> = (0..15).map(|i| ((i * 3) % 11) as f64 / 2.0).collect();
    let cfg = BootstrapConfig::new(300, 0.9, 5).with_max_skipped_fraction(0.5);
    let fast = paired_auc_difference_ci(&labels, &a, &b, &cfg)?;
    let slow = bootstrap_ci(labels.len(), &cfg, |idx| {
        let l: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
        let sa: Vec<f64> = idx.iter().map(|&i| a[i]).collect();
        let sb: Vec<f64> = idx.iter().map(|&i| b[i]).collect();
        Ok(auc(&l, &sa)? - auc(&l, &sb)?)
    })?;
    assert_eq!(fast.resamples, slow.resamples);
    assert_eq!(fast.skipped, slow.skipped);
    assert!(fast.skipped > 0, "{fast:?}");
    assert_relative_eq!(fast.estimate, slow.estimate, epsilon = 1e-12);
    assert_relative_eq!(fast.lower, slow.lower, epsilon = 1e-12);
    assert_relative_eq!(fast.upper, slow.upper, epsilon = 1e-12);
    // A model against itself: exactly zero on every resample.
    let same = paired_auc_difference_ci(&labels, &a, &a, &cfg)?;
    assert_eq!((same.estimate, same.lower, same.upper), (0.0, 0.0, 0.0));
    assert!(matches!(
        paired_auc_difference_ci(&labels, &a, &b[..14], &cfg),
        Err(MetricsError::LengthMismatch { .. })
    ));
    Ok(())
}

#[test]
fn paired_log_loss_difference_is_the_paired_mean_of_terms() -> TestResult {
    let labels: Vec<bool> = (0..40).map(|i| i % 3 == 0).collect();
    let a: Vec<f64> = (0..40)
        .map(|i| 0.05 + 0.9 * ((i * 7) % 13) as f64 / 12.0)
        .collect();
    let b: Vec<f64> = (0..40)
        .map(|i| 0.1 + 0.8 * ((i * 5) % 9) as f64 / 8.0)
        .collect();
    let cfg = BootstrapConfig::new(200, 0.95, 17);
    let got = paired_log_loss_difference_ci(&labels, &a, &b, DEFAULT_LOG_LOSS_EPS, &cfg)?;
    let ta = log_loss_terms(&labels, &a, DEFAULT_LOG_LOSS_EPS)?;
    let tb = log_loss_terms(&labels, &b, DEFAULT_LOG_LOSS_EPS)?;
    assert_eq!(got, paired_difference_ci(&ta, &tb, &cfg)?);
    assert_relative_eq!(
        got.estimate,
        log_loss(&labels, &a, DEFAULT_LOG_LOSS_EPS)? - log_loss(&labels, &b, DEFAULT_LOG_LOSS_EPS)?,
        epsilon = 1e-12
    );
    Ok(())
}

#[test]
fn ranking_ci_matches_mean_ci_per_metric() -> TestResult {
    let mut eval = RankingEvaluator::new(&[1, 10])?;
    eval.try_extend((0..200).map(|u| {
        if u % 4 == 3 {
            None
        } else {
            Some(1 + (u * 13) % 17)
        }
    }))?;
    let cfg = BootstrapConfig::new(150, 0.95, 21);
    let r = eval.report_with_ci(&cfg)?;
    let plain = eval.report()?;
    let ranks = eval.ranks();
    for (c, p) in r.cutoffs.iter().zip(&plain.cutoffs) {
        assert_eq!(c.hr, p.hr);
        let hr: Vec<f64> = ranks.iter().map(|&x| hit_at(x, c.k)).collect();
        let nd: Vec<f64> = ranks.iter().map(|&x| ndcg_at(x, c.k)).collect();
        assert_eq!(c.hr_ci.as_ref(), Some(&mean_ci(&hr, &cfg)?));
        assert_eq!(c.ndcg_ci.as_ref(), Some(&mean_ci(&nd, &cfg)?));
        let hr_ci = c.hr_ci.as_ref().expect("requested");
        assert_eq!(hr_ci.estimate, c.hr);
    }
    let rr: Vec<f64> = ranks.iter().map(|&x| reciprocal_rank(x)).collect();
    assert_eq!(r.mrr_ci, Some(mean_ci(&rr, &cfg)?));
    Ok(())
}

/// Pinned values: the same seed must give the same interval on every machine
/// and build (ChaCha8 + our own bounded sampler). If this fails, resampling
/// changed and published intervals are no longer reproducible.
#[test]
fn bootstrap_pinned_values() -> TestResult {
    let x: Vec<f64> = (0..50u32).map(f64::from).collect();
    let ci = mean_ci(&x, &BootstrapConfig::new(100, 0.95, 42))?;
    let first: Vec<usize> = {
        let mut out = Vec::new();
        bootstrap_ci(10, &BootstrapConfig::new(1, 0.5, 42), |idx| {
            out.push(idx.to_vec());
            Ok(0.0)
        })?;
        out.pop().unwrap_or_default()
    };
    assert_relative_eq!(ci.estimate, 24.5);
    assert_relative_eq!(ci.lower, PIN_LOWER, epsilon = 1e-12);
    assert_relative_eq!(ci.upper, PIN_UPPER, epsilon = 1e-12);
    assert_eq!(first, PIN_FIRST);
    Ok(())
}
const PIN_LOWER: f64 = 21.096;
const PIN_UPPER: f64 = 29.169;
const PIN_FIRST: [usize; 10] = [6, 9, 4, 6, 2, 1, 3, 8, 7, 2];

#[test]
fn bootstrap_errors() {
    let ok = BootstrapConfig::default();
    assert_eq!(ok.resamples, 1000);
    assert_eq!(ok.level, 0.95);
    assert!(ok.validate().is_ok());
    for bad in [
        ok.clone().with_resamples(0),
        ok.clone().with_level(1.0),
        ok.clone().with_level(0.0),
        ok.clone().with_level(f64::NAN),
        ok.clone().with_max_skipped_fraction(1.0),
        ok.clone().with_max_skipped_fraction(-0.1),
    ] {
        assert!(matches!(
            mean_ci(&[1.0, 2.0], &bad),
            Err(MetricsError::InvalidConfig { .. })
        ));
    }
    assert!(matches!(mean_ci(&[], &ok), Err(MetricsError::Empty { .. })));
    assert!(matches!(
        mean_ci(&[1.0, f64::NAN], &ok),
        Err(MetricsError::NaN { index: 1, .. })
    ));
    assert!(matches!(
        mean_ci(&[1.0, f64::INFINITY], &ok),
        Err(MetricsError::NonFiniteStatistic { resample: None, .. })
    ));
    assert!(matches!(
        bootstrap_ci(0, &ok, |_| Ok(1.0)),
        Err(MetricsError::Empty { .. })
    ));
    assert!(matches!(
        bootstrap_ci(3, &ok, |idx| Ok(if idx == [0, 1, 2] {
            1.0
        } else {
            f64::NAN
        })),
        Err(MetricsError::NonFiniteStatistic {
            resample: Some(0),
            ..
        })
    ));
    // non-degenerate errors propagate
    assert!(matches!(
        bootstrap_ci(3, &ok, |_| Err(MetricsError::Empty { what: "x" })),
        Err(MetricsError::Empty { what: "x" })
    ));
    // single-class full sample: no estimate, so an error rather than a skip
    assert!(matches!(
        auc_ci(&[true, true], &[0.1, 0.2], &ok),
        Err(MetricsError::SingleClass { .. })
    ));
}
