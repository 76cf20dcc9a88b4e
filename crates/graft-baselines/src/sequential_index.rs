//! The ID-arithmetic rule that P5's nearly sequential item numbers reward.

use crate::error::{BaselineError, Result};
use crate::scoring::ItemScorer;

/// Recommends `max(history) + 1, + 2, ...`: scores every item by how far
/// its number lies above the largest item number in the user's history,
/// closest first.
///
/// P5's `sequential.txt` numbered items in the order users' histories were
/// read, so a user's next item is often the next unused number. This rule
/// learns nothing and sees only numbers; whatever it scores is what a
/// model can get from ID arithmetic alone. Under a random renumbering
/// ([`graft_data::Reindex::Random`]) it falls to chance.
///
/// Order (every score distinct, so no ties): items above `m =
/// max(history)`, nearest first (`m + 1` scores highest); then items below
/// `m`, nearest first; history items last, lower numbers first (the rule
/// never recommends what the user already has). With an empty history,
/// lower numbers first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequentialIndex {
    n_items: usize,
}

impl SequentialIndex {
    /// The rule over `n_items` items.
    pub fn new(n_items: usize) -> Self {
        Self { n_items }
    }
}

impl ItemScorer for SequentialIndex {
    fn name(&self) -> String {
        "sequential-index".into()
    }

    fn score_all(&self, _user: u32, history: &[u32]) -> Result<Vec<f32>> {
        let n = self.n_items;
        if let Some(&bad) = history.iter().find(|&&h| h as usize >= n) {
            return Err(BaselineError::IdOutOfRange {
                kind: "item",
                id: bad,
                n,
            });
        }
        // f32 holds every integer up to 2^24 exactly; 3n stays below that
        // for any catalogue under 5.5 million items.
        if 3 * n >= 1 << 24 {
            return Err(BaselineError::Config(format!(
                "sequential-index scores {n} items exactly only below {} items",
                (1 << 24) / 3
            )));
        }
        let nf = n as f32;
        let mut scores: Vec<f32> = match history.iter().max() {
            None => (0..n).map(|i| -(i as f32)).collect(),
            Some(&m) => (0..n as u32)
                .map(|i| {
                    if i > m {
                        -((i - m) as f32)
                    } else {
                        -nf - (m - i) as f32
                    }
                })
                .collect(),
        };
        for &h in history {
            scores[h as usize] = -2.0 * nf - h as f32;
        }
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn order(scores: &[f32]) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        idx
    }

    #[test]
    fn next_numbers_first_then_below_then_history() {
        let s = SequentialIndex::new(10).score_all(0, &[2, 6, 4]).unwrap();
        assert_eq!(order(&s), vec![7, 8, 9, 5, 3, 1, 0, 2, 4, 6]);
        let mut sorted = s.clone();
        sorted.sort_by(f32::total_cmp);
        sorted.dedup();
        assert_eq!(sorted.len(), 10, "no ties");
    }

    #[test]
    fn empty_history_and_bad_ids() {
        let s = SequentialIndex::new(4).score_all(0, &[]).unwrap();
        assert_eq!(order(&s), vec![0, 1, 2, 3]);
        assert!(matches!(
            SequentialIndex::new(4).score_all(0, &[4]),
            Err(BaselineError::IdOutOfRange { id: 4, .. })
        ));
    }
}
