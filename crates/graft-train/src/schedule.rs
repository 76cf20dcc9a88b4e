//! Learning-rate schedules: linear warm-up, then constant, linear or cosine
//! decay; a pure function of the step, so a resumed run follows the same
//! schedule.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// What the learning rate does after warm-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrDecay {
    /// Stays at the base rate (the official ELMRec/POD code).
    #[default]
    Constant,
    /// Falls linearly to zero at the last step.
    Linear,
    /// Follows half a cosine down to zero at the last step.
    Cosine,
}

impl std::str::FromStr for LrDecay {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "constant" => Ok(Self::Constant),
            "linear" => Ok(Self::Linear),
            "cosine" => Ok(Self::Cosine),
            _ => Err(format!(
                "unknown learning-rate decay {s:?} (constant, linear, cosine)"
            )),
        }
    }
}

impl std::fmt::Display for LrDecay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Constant => "constant",
            Self::Linear => "linear",
            Self::Cosine => "cosine",
        })
    }
}

/// The learning rate of every optimizer step: `base_lr` scaled by a linear
/// warm-up over the first `warmup_steps` steps (step `s`, counted from 0,
/// gets `(s + 1) / warmup_steps`), then by `decay` over the remaining steps
/// up to `total_steps`.
///
/// ```
/// use graft_train::{LrDecay, LrSchedule};
///
/// let s = LrSchedule { base_lr: 1e-3, warmup_steps: 10, decay: LrDecay::Linear, total_steps: 110 };
/// assert!((s.lr(0) - 1e-4).abs() < 1e-12);
/// assert!((s.lr(9) - 1e-3).abs() < 1e-12);
/// assert!((s.lr(60) - 0.5e-3).abs() < 1e-12);
/// assert_eq!(s.lr(110), 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// The rate after warm-up and before any decay.
    pub base_lr: f64,
    /// Steps of linear warm-up (0: none).
    pub warmup_steps: u64,
    /// The decay after warm-up.
    pub decay: LrDecay,
    /// The step at which a decaying rate reaches zero (the run's largest
    /// step count).
    pub total_steps: u64,
}

impl LrSchedule {
    /// Checks the values' domains.
    ///
    /// # Errors
    /// [`TrainError::Config`] for a negative or non-finite `base_lr`, or a
    /// decaying schedule whose warm-up does not end before `total_steps`.
    pub fn validate(&self) -> Result<()> {
        if !(self.base_lr.is_finite() && self.base_lr >= 0.0) {
            return Err(TrainError::Config(format!(
                "LrSchedule: base_lr = {} is out of range",
                self.base_lr
            )));
        }
        if self.decay != LrDecay::Constant && self.warmup_steps >= self.total_steps {
            return Err(TrainError::Config(format!(
                "LrSchedule: {} warm-up steps leave nothing to decay over {} steps",
                self.warmup_steps, self.total_steps
            )));
        }
        Ok(())
    }

    /// The learning rate of optimizer step `step` (0-based: the number of
    /// steps already taken).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.base_lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let done = ((step - self.warmup_steps) as f64 / span).min(1.0);
        self.base_lr
            * match self.decay {
                LrDecay::Constant => 1.0,
                LrDecay::Linear => 1.0 - done,
                LrDecay::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * done).cos()),
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_each_decay() {
        let s = |decay| LrSchedule {
            base_lr: 2.0,
            warmup_steps: 4,
            decay,
            total_steps: 14,
        };
        for d in [LrDecay::Constant, LrDecay::Linear, LrDecay::Cosine] {
            let lrs: Vec<f64> = (0..4).map(|t| s(d).lr(t)).collect();
            assert_eq!(lrs, vec![0.5, 1.0, 1.5, 2.0]);
            assert_eq!(s(d).lr(4), 2.0);
            assert!(s(d).validate().is_ok());
        }
        assert_eq!(s(LrDecay::Constant).lr(1000), 2.0);
        assert!((s(LrDecay::Linear).lr(9) - 1.0).abs() < 1e-12);
        assert!((s(LrDecay::Cosine).lr(9) - 1.0).abs() < 1e-12);
        assert_eq!(s(LrDecay::Linear).lr(14), 0.0);
        assert!(s(LrDecay::Cosine).lr(14).abs() < 1e-12);
        assert_eq!(s(LrDecay::Linear).lr(20), 0.0);
        // No warm-up: the base rate from the first step.
        let flat = LrSchedule {
            warmup_steps: 0,
            ..s(LrDecay::Constant)
        };
        assert_eq!(flat.lr(0), 2.0);
        assert!(LrSchedule {
            warmup_steps: 14,
            ..s(LrDecay::Linear)
        }
        .validate()
        .is_err());
        assert!(LrSchedule {
            base_lr: f64::NAN,
            ..flat
        }
        .validate()
        .is_err());
        assert_eq!("cosine".parse::<LrDecay>(), Ok(LrDecay::Cosine));
        assert!(matches!("step".parse::<LrDecay>(), Err(e) if e.contains("constant")));
        assert_eq!(LrDecay::Linear.to_string(), "linear");
    }
}
