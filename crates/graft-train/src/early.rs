//! Early stopping on a validation metric (higher is better).

use serde::{Deserialize, Serialize};

/// Tracks the best validation metric and stops after `patience`
/// evaluations in a row without improvement. Serializable, so a resumed run
/// continues with the same counters.
///
/// ```
/// use graft_train::{EarlyStopping, Verdict};
///
/// let mut es = EarlyStopping::new(2);
/// assert_eq!(es.update(100, 0.30), Verdict::Improved);
/// assert_eq!(es.update(200, 0.25), Verdict::NoImprovement);
/// assert_eq!(es.update(300, 0.31), Verdict::Improved);
/// assert_eq!(es.update(400, f64::NAN), Verdict::NoImprovement);
/// assert_eq!(es.update(500, 0.31), Verdict::Stop); // equal is not better
/// assert_eq!((es.best, es.best_step), (Some(0.31), Some(300)));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Evaluations without improvement that trigger [`Verdict::Stop`].
    pub patience: usize,
    /// The best metric so far.
    pub best: Option<f64>,
    /// The step of the best metric.
    pub best_step: Option<u64>,
    /// Evaluations since the last improvement.
    pub bad_evals: usize,
}

/// What [`EarlyStopping::update`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The metric is a new best.
    Improved,
    /// No improvement, but patience is not exhausted.
    NoImprovement,
    /// No improvement for `patience` evaluations: stop training.
    Stop,
}

impl EarlyStopping {
    /// A tracker with no metric seen yet. With `patience == 0` the first
    /// evaluation without improvement stops.
    pub fn new(patience: usize) -> Self {
        Self {
            patience,
            best: None,
            best_step: None,
            bad_evals: 0,
        }
    }

    /// Records the metric of the evaluation at `step` (higher is better).
    /// A NaN never improves; an equal metric does not either.
    pub fn update(&mut self, step: u64, metric: f64) -> Verdict {
        let improved = !metric.is_nan() && self.best.is_none_or(|b| metric > b);
        if improved {
            self.best = Some(metric);
            self.best_step = Some(step);
            self.bad_evals = 0;
            Verdict::Improved
        } else {
            self.bad_evals = self.bad_evals.saturating_add(1);
            if self.bad_evals >= self.patience {
                Verdict::Stop
            } else {
                Verdict::NoImprovement
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_metric_improves_and_resets_counter() {
        let mut es = EarlyStopping::new(3);
        assert_eq!(es.update(1, -5.0), Verdict::Improved);
        assert_eq!(es.update(2, -6.0), Verdict::NoImprovement);
        assert_eq!(es.bad_evals, 1);
        assert_eq!(es.update(3, -4.0), Verdict::Improved);
        assert_eq!(es.bad_evals, 0);
        assert_eq!(es.best, Some(-4.0));
        assert_eq!(es.best_step, Some(3));
    }

    #[test]
    fn stops_after_exactly_patience_bad_evals() {
        let mut es = EarlyStopping::new(3);
        es.update(1, 1.0);
        assert_eq!(es.update(2, 0.5), Verdict::NoImprovement);
        assert_eq!(es.update(3, 1.0), Verdict::NoImprovement);
        assert_eq!(es.update(4, 0.9), Verdict::Stop);
        assert_eq!(es.best_step, Some(1));
    }

    #[test]
    fn zero_patience_stops_on_first_non_improvement() {
        let mut es = EarlyStopping::new(0);
        assert_eq!(es.update(1, 1.0), Verdict::Improved);
        assert_eq!(es.update(2, 1.0), Verdict::Stop);
    }

    #[test]
    fn nan_never_improves_even_first() {
        let mut es = EarlyStopping::new(2);
        assert_eq!(es.update(1, f64::NAN), Verdict::NoImprovement);
        assert_eq!(es.best, None);
        assert_eq!(es.update(2, 0.0), Verdict::Improved);
        assert_eq!(es.update(3, f64::NAN), Verdict::NoImprovement);
        assert_eq!(es.update(4, f64::NAN), Verdict::Stop);
        assert_eq!(es.best, Some(0.0));
    }

    #[test]
    fn infinities_are_ordered() {
        let mut es = EarlyStopping::new(1);
        assert_eq!(es.update(1, f64::NEG_INFINITY), Verdict::Improved);
        assert_eq!(es.update(2, -1e300), Verdict::Improved);
        assert_eq!(es.update(3, f64::INFINITY), Verdict::Improved);
        assert_eq!(es.update(4, 1e300), Verdict::Stop);
    }

    #[test]
    fn serde_round_trip_continues_identically() {
        let mut a = EarlyStopping::new(2);
        a.update(10, 0.123_456_789_012_345_67);
        a.update(20, 0.1);
        let text = serde_json::to_string(&a).expect("serialize");
        let mut b: EarlyStopping = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(a, b);
        assert_eq!(a.update(30, 0.0), b.update(30, 0.0));
        assert_eq!(b.update(40, 0.2), Verdict::Improved);
    }
}
