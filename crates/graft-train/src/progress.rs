//! A training progress bar.

use indicatif::{ProgressBar, ProgressStyle};

const TEMPLATE: &str =
    "{prefix} [{elapsed_precise}] {wide_bar:.cyan/blue} {pos}/{len} steps, ETA {eta_precise} {msg}";
const EMA_DECAY: f64 = 0.98;

/// A progress bar over optimizer steps (indicatif) showing step/total,
/// elapsed time, ETA, the running loss (an exponential moving average with
/// decay 0.98, bias-corrected like Adam's moments) and the last validation
/// metric. Drawn on stderr, and hidden when stderr is not a terminal.
#[derive(Debug)]
pub struct TrainProgress {
    bar: ProgressBar,
    ema: f64,
    updates: i32,
    metric: Option<(String, f64)>,
}

impl TrainProgress {
    /// A bar for `total_steps`, starting at `start_step` (a resume), with
    /// `label` in front.
    pub fn new(total_steps: u64, start_step: u64, label: &str) -> Self {
        let style = ProgressStyle::with_template(TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=>-");
        let bar = ProgressBar::new(total_steps)
            .with_style(style)
            .with_prefix(label.to_string())
            .with_position(start_step.min(total_steps));
        bar.reset_eta();
        Self {
            bar,
            ema: 0.0,
            updates: 0,
            metric: None,
        }
    }

    /// Records that `step` steps are done, the last with loss `loss`.
    pub fn update(&mut self, step: u64, loss: f64) {
        self.ema = EMA_DECAY * self.ema + (1.0 - EMA_DECAY) * loss;
        self.updates = self.updates.saturating_add(1);
        self.bar.set_position(step);
        self.refresh();
    }

    /// Shows `name = value` as the last validation metric.
    pub fn set_metric(&mut self, name: &str, value: f64) {
        self.metric = Some((name.to_string(), value));
        self.refresh();
    }

    /// The bias-corrected running loss (`None` before the first update).
    pub fn loss_ema(&self) -> Option<f64> {
        (self.updates > 0).then(|| self.ema / (1.0 - EMA_DECAY.powi(self.updates)))
    }

    /// The message shown after the bar.
    pub fn message(&self) -> String {
        let mut msg = String::new();
        if let Some(loss) = self.loss_ema() {
            msg.push_str(&format!("loss {loss:.4}"));
        }
        if let Some((name, value)) = &self.metric {
            if !msg.is_empty() {
                msg.push_str(" | ");
            }
            msg.push_str(&format!("{name} {value:.4}"));
        }
        msg
    }

    fn refresh(&self) {
        self.bar.set_message(self.message());
    }

    /// Leaves the bar in its final state.
    pub fn finish(&self) {
        self.bar.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_is_bias_corrected() {
        let mut p = TrainProgress::new(10, 0, "t");
        assert_eq!(p.loss_ema(), None);
        p.update(1, 2.0);
        assert!((p.loss_ema().unwrap_or(0.0) - 2.0).abs() < 1e-12);
        p.update(2, 4.0);
        // (0.98 * 0.02 * 2 + 0.02 * 4) / (1 - 0.98^2)
        let want = (0.98 * 0.02 * 2.0 + 0.02 * 4.0) / (1.0 - 0.98f64.powi(2));
        assert!((p.loss_ema().unwrap_or(0.0) - want).abs() < 1e-12);
        p.set_metric("ndcg", 0.5);
        assert_eq!(p.message(), format!("loss {want:.4} | ndcg 0.5000"));
        p.finish();
    }
}
