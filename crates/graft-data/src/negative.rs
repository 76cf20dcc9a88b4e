//! Seeded negative sampling, identical across runs and machines.
//!
//! The paper's POD/ELMRec evaluation uses 99 negatives per user from a
//! `negative.txt` that is not published; we re-sample them: uniformly,
//! without replacement, from the items the user never interacted with (train,
//! validation and test), with a ChaCha8 stream per user
//! ([`crate::rng::stream_rng`]), so a user's negatives depend only on the
//! seed, the user id, the item count and the user's items.

use std::collections::HashSet;

use crate::error::{DataError, Result};
use crate::rng::{below, stream_rng};
use crate::split::LeaveOneOut;

/// Draws negatives for users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegativeSampler {
    n_items: usize,
    seed: u64,
}

impl NegativeSampler {
    /// A sampler over items `0..n_items`.
    pub fn new(n_items: usize, seed: u64) -> Self {
        NegativeSampler { n_items, seed }
    }

    /// `n` distinct items outside `history`, in draw order.
    ///
    /// # Errors
    /// [`DataError::NotEnoughNegatives`] when fewer than `n` items lie outside
    /// the history; [`DataError::IdOutOfRange`] for a history item `>= n_items`.
    ///
    /// # Complexity
    /// Expected O(n + |history|) by rejection when at least half the items are
    /// free, else O(n_items) through the explicit complement.
    pub fn sample(&self, user: u32, history: &[u32], n: usize) -> Result<Vec<u32>> {
        let mut taken: HashSet<u32> = HashSet::with_capacity(history.len() + n);
        for &i in history {
            if i as usize >= self.n_items {
                return Err(DataError::IdOutOfRange {
                    kind: "item",
                    id: i,
                    n: self.n_items,
                });
            }
            taken.insert(i);
        }
        let available = self.n_items - taken.len();
        if available < n {
            return Err(DataError::NotEnoughNegatives {
                user,
                available,
                wanted: n,
            });
        }
        let mut rng = stream_rng(self.seed, u64::from(user));
        let mut out = Vec::with_capacity(n);
        if available >= 2 * n && available * 2 >= self.n_items {
            while out.len() < n {
                let i = below(&mut rng, self.n_items as u32);
                if taken.insert(i) {
                    out.push(i);
                }
            }
        } else {
            let mut free: Vec<u32> = (0..self.n_items as u32)
                .filter(|i| !taken.contains(i))
                .collect();
            for k in 0..n {
                let j = k + below(&mut rng, (free.len() - k) as u32) as usize;
                free.swap(k, j);
                out.push(free[k]);
            }
        }
        Ok(out)
    }

    /// `n` negatives for every user of a leave-one-out split, avoiding all of
    /// the user's items ([`LeaveOneOut::all_items`]).
    ///
    /// # Errors
    /// As [`NegativeSampler::sample`].
    pub fn sample_split(&self, split: &LeaveOneOut, n: usize) -> Result<Vec<Vec<u32>>> {
        (0..split.n_users() as u32)
            .map(|u| self.sample(u, &split.all_items(u), n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_outside_history_and_reproducible() {
        let s = NegativeSampler::new(50, 42);
        let hist = [1, 2, 3, 10, 20];
        let a = s.sample(7, &hist, 30).unwrap_or_default();
        let b = s.sample(7, &hist, 30).unwrap_or_default();
        assert_eq!(a, b);
        assert_eq!(a.len(), 30);
        let set: HashSet<u32> = a.iter().copied().collect();
        assert_eq!(set.len(), 30);
        assert!(a.iter().all(|i| !hist.contains(i) && *i < 50));
        assert_ne!(a, s.sample(8, &hist, 30).unwrap_or_default());
        assert_ne!(
            a,
            NegativeSampler::new(50, 43)
                .sample(7, &hist, 30)
                .unwrap_or_default()
        );
    }

    #[test]
    fn pinned_values_guard_portability() {
        // If this fails, negatives changed: results are no longer comparable
        // with earlier runs. Only update it deliberately.
        let s = NegativeSampler::new(12_101, 2024);
        let got = s.sample(0, &[0, 1, 2], 5).unwrap_or_default();
        assert_eq!(got, PINNED.to_vec());
    }
    const PINNED: [u32; 5] = [9097, 2021, 11695, 11888, 8106];

    #[test]
    fn exhausts_exactly_and_errors_beyond() {
        let s = NegativeSampler::new(6, 1);
        let mut got = s.sample(0, &[0, 2], 4).unwrap_or_default();
        got.sort_unstable();
        assert_eq!(got, vec![1, 3, 4, 5]);
        assert!(matches!(
            s.sample(0, &[0, 2], 5),
            Err(DataError::NotEnoughNegatives {
                available: 4,
                wanted: 5,
                ..
            })
        ));
        assert!(matches!(
            s.sample(0, &[6], 1),
            Err(DataError::IdOutOfRange { .. })
        ));
    }
}
