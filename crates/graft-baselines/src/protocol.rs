//! The fixed, seeded evaluation sets of the ELMRec protocol.
//!
//! ELMRec (after POD/P5) evaluates every user on the leave-one-out split
//! ([`LeaveOneOut`]): the last item is the test target, the second-to-last
//! the validation target. Two tasks share one [`EvalCase`] per user:
//!
//! * **direct**: rank the target among itself and `negatives` (99 in the
//!   paper) sampled items the user never interacted with;
//! * **sequential**: rank the target among all items, given the history.
//!
//! The paper's `negative.txt` is not published, so the negatives are
//! re-sampled with [`NegativeSampler`] (uniform, without replacement,
//! outside [`LeaveOneOut::all_items`], one ChaCha8 stream per user). Test
//! sets use `NegativeSampler::new(n_items, seed)` itself, so their negatives
//! are those of the graft demo with the same seed; validation sets use a
//! seed derived from `seed`, so validation and test negatives differ.

use serde::{Deserialize, Serialize};

use graft_data::rng::{shuffle, stream_rng};
use graft_data::{DataError, ItemPermutation, LeaveOneOut, NegativeSampler};

use crate::error::{BaselineError, Result};

/// Which held-out item is the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Split {
    /// The second-to-last item; the history is the train items.
    Valid,
    /// The last item; the history is the train items and the validation item.
    Test,
}

impl Split {
    /// `"valid"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }

    fn tag(self) -> u64 {
        match self {
            Split::Valid => 0x0076_616c_6964,
            Split::Test => 0x7465_7374,
        }
    }
}

/// One user's evaluation case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalCase {
    /// Dense user id.
    pub user: u32,
    /// What the model may see, oldest first: train items (Valid) or train
    /// items + the validation item (Test).
    pub history: Vec<u32>,
    /// The held-out item.
    pub target: u32,
    /// Direct task: the target plus `negatives` sampled items the user never
    /// interacted with ([`NegativeSampler`], which excludes
    /// [`LeaveOneOut::all_items`]), in a seeded shuffled order (the target's
    /// position is not fixed).
    pub candidates: Vec<u32>,
}

impl EvalCase {
    /// Position of the target in [`candidates`](Self::candidates).
    pub fn target_position(&self) -> Option<usize> {
        self.candidates.iter().position(|&c| c == self.target)
    }
}

/// The evaluation cases of one split, deterministic for a seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSet {
    /// The split the targets come from.
    pub split: Split,
    /// Negatives per case (the paper: 99).
    pub negatives: usize,
    /// The seed of user sampling, negatives and candidate order.
    pub seed: u64,
    /// Number of items of the dataset (the length of every score vector).
    #[serde(default)]
    pub n_items: usize,
    /// The cases, sorted by user id.
    pub cases: Vec<EvalCase>,
    /// Users that had a target in the split but fewer than `negatives` items
    /// outside their interactions; they have no case.
    #[serde(default)]
    pub skipped_users: Vec<u32>,
}

/// SplitMix64 finaliser of `seed ^ tag`: independent sub-seeds.
pub(crate) fn derive_seed(seed: u64, tag: u64) -> u64 {
    let mut z = (seed ^ tag).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const USERS_TAG: u64 = 0x0075_7365_7273;
const SHUFFLE_TAG: u64 = 0x0073_6875_6666_6c65;
const NEGATIVES_TAG: u64 = 0x6e65_6773;

impl EvalSet {
    /// Builds the cases of `split`.
    ///
    /// Users with a target in `split` are visited in a seeded random order
    /// (without replacement) and kept until `max_users` cases exist (all of
    /// them when `max_users` is `None` or at least the number of eligible
    /// users); the cases are then sorted by user id. Users for whom fewer
    /// than `negatives` items lie outside [`LeaveOneOut::all_items`] get no
    /// case and are listed in [`skipped_users`](Self::skipped_users).
    ///
    /// Deterministic given `(loo, split, max_users, negatives, seed)`. A
    /// user's case (history, negatives, candidate order) depends only on the
    /// split, the seed and the user's own items, not on `max_users`.
    ///
    /// # Errors
    /// [`BaselineError::Config`] for `negatives == 0` or
    /// `max_users == Some(0)`; [`BaselineError::Data`] if an item id is out
    /// of range of `loo.n_items`; [`BaselineError::NoCases`] when no case
    /// can be built (no user has a target in `split`, or none has
    /// `negatives` items outside their own).
    ///
    /// # Complexity
    /// O(U + sum of history lengths + cases · negatives) expected.
    pub fn build(
        loo: &LeaveOneOut,
        split: Split,
        max_users: Option<usize>,
        negatives: usize,
        seed: u64,
    ) -> Result<Self> {
        if negatives == 0 {
            return Err(BaselineError::Config(
                "an evaluation set needs at least one negative per case".into(),
            ));
        }
        if max_users == Some(0) {
            return Err(BaselineError::Config("max_users must be at least 1".into()));
        }
        let targets = match split {
            Split::Valid => &loo.valid,
            Split::Test => &loo.test,
        };
        let mut eligible: Vec<u32> = targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_some())
            .map(|(u, _)| u as u32)
            .collect();
        let want = max_users.unwrap_or(usize::MAX).min(eligible.len());
        if want < eligible.len() {
            let mut rng = stream_rng(derive_seed(seed, split.tag() ^ USERS_TAG), 0);
            shuffle(&mut rng, &mut eligible);
        }
        let sampler_seed = match split {
            Split::Test => seed,
            Split::Valid => derive_seed(seed, split.tag() ^ NEGATIVES_TAG),
        };
        let sampler = NegativeSampler::new(loo.n_items, sampler_seed);
        let shuffle_seed = derive_seed(seed, split.tag() ^ SHUFFLE_TAG);
        let mut cases = Vec::with_capacity(want);
        let mut skipped_users = Vec::new();
        for &user in &eligible {
            if cases.len() == want {
                break;
            }
            let Some(target) = targets.get(user as usize).copied().flatten() else {
                continue;
            };
            let history = match split {
                Split::Valid => loo.train.get(user as usize).cloned().unwrap_or_default(),
                Split::Test => loo.test_input(user),
            };
            let mut candidates = match sampler.sample(user, &loo.all_items(user), negatives) {
                Ok(n) => n,
                Err(DataError::NotEnoughNegatives { .. }) => {
                    skipped_users.push(user);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            candidates.push(target);
            shuffle(
                &mut stream_rng(shuffle_seed, u64::from(user)),
                &mut candidates,
            );
            cases.push(EvalCase {
                user,
                history,
                target,
                candidates,
            });
        }
        if cases.is_empty() {
            let reason = if eligible.is_empty() {
                let needs = match split {
                    Split::Valid => "at least 3 interactions",
                    Split::Test => "at least 2 interactions",
                };
                format!(
                    "no user has a {} item (leave-one-out gives one only to users with {needs}; \
                     this dataset has {} users and none qualifies)",
                    split.name(),
                    loo.n_users()
                )
            } else {
                format!(
                    "every one of the {} eligible users has fewer than {negatives} items outside \
                     their own interactions (the dataset has {} items): ask for fewer negatives",
                    skipped_users.len(),
                    loo.n_items
                )
            };
            return Err(BaselineError::NoCases {
                split: split.name(),
                reason,
            });
        }
        cases.sort_by_key(|c| c.user);
        skipped_users.sort_unstable();
        Ok(EvalSet {
            split,
            negatives,
            seed,
            n_items: loo.n_items,
            cases,
            skipped_users,
        })
    }

    /// The same cases with every item renamed by `perm` (history, target
    /// and candidates; users and candidate order unchanged): the evaluation
    /// of a model trained on [`ItemPermutation::apply_split`]'s split sees
    /// exactly the items, negatives and users of the original set.
    ///
    /// # Errors
    /// [`BaselineError::Data`] for an item outside the permutation, or a
    /// permutation whose length is not [`n_items`](Self::n_items).
    pub fn renamed(&self, perm: &ItemPermutation) -> Result<Self> {
        if self.n_items != 0 && perm.len() != self.n_items {
            return Err(BaselineError::Config(format!(
                "a permutation of {} items cannot rename an evaluation set over {} items",
                perm.len(),
                self.n_items
            )));
        }
        let mut out = self.clone();
        for c in &mut out.cases {
            perm.apply_all(&mut c.history)?;
            perm.apply_all(&mut c.candidates)?;
            c.target = perm.try_apply(c.target)?;
        }
        Ok(out)
    }

    /// Number of cases.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// Whether there is no case.
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }
}
