//! The two protocol leaks of the ELMRec/POD setting, as options to measure
//! them (neither paper has them):
//!
//! * [`Reindex`] / [`ItemPermutation`]: P5's `sequential.txt` numbers items
//!   in the order users' histories were read, so the next item's number is
//!   often `max(history) + 1`. A seeded random renumbering removes every
//!   order the numbers carry; applied to a [`LeaveOneOut`] split it renames
//!   items and changes nothing else.
//! * [`GraphEdges`]: the official ELMRec code builds its user-item graph
//!   from P5's *review* split (`explanation.json`'s train part), a random
//!   share of all pairs, which contains the same share of the leave-one-out
//!   test pairs. `Train` is the clean graph (train edges only); `Share(p)`
//!   a seeded random share `p` of all pairs (`0.535` mimics the official
//!   Beauty graph); `All` every pair.
//!
//! ```
//! use graft_data::leaks::{GraphEdges, ItemPermutation, Reindex};
//! use graft_data::{synthetic, LeaveOneOut};
//!
//! let data = synthetic::planted_clusters(&Default::default())?.dataset;
//! let split = LeaveOneOut::new(&data);
//! let perm = Reindex::Random.permutation(split.n_items, 7);
//! let renamed = perm.apply_split(&split)?;
//! assert_eq!(renamed.test[0], split.test[0].map(|i| perm.apply(i)));
//!
//! let edges: GraphEdges = "share:0.5".parse()?;
//! let half = edges.edges(&split, 7)?;
//! let all = GraphEdges::All.edges(&split, 7)?;
//! assert_eq!(half.len(), (all.len() as f64 * 0.5).round() as usize);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::rng::{shuffle, stream_rng};
use crate::split::LeaveOneOut;

/// How item numbers are assigned before prompts and graphs are built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reindex {
    /// The dataset's own numbering (P5: nearly sequential in reading order).
    #[default]
    Original,
    /// A seeded uniform random permutation: numbers carry no order.
    Random,
}

impl Reindex {
    /// The permutation this choice applies to `n_items` items.
    pub fn permutation(self, n_items: usize, seed: u64) -> ItemPermutation {
        match self {
            Reindex::Original => ItemPermutation::identity(n_items),
            Reindex::Random => ItemPermutation::random(n_items, seed),
        }
    }

    /// `"original"` or `"random"`.
    pub fn name(self) -> &'static str {
        match self {
            Reindex::Original => "original",
            Reindex::Random => "random",
        }
    }
}

impl fmt::Display for Reindex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Reindex {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "original" | "none" => Ok(Reindex::Original),
            "random" => Ok(Reindex::Random),
            _ => Err(format!(
                "unknown reindexing {s:?} (expected \"original\" or \"random\")"
            )),
        }
    }
}

const REINDEX_TAG: u64 = 0x0072_6569_6e64_6578;

/// A bijection of item ids `0..n`: `apply(old) = new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemPermutation {
    new_of_old: Vec<u32>,
}

impl ItemPermutation {
    /// Every item keeps its id.
    pub fn identity(n_items: usize) -> Self {
        Self {
            new_of_old: (0..n_items as u32).collect(),
        }
    }

    /// A uniform random permutation, deterministic for `(n_items, seed)`
    /// (graft-data's portable ChaCha8 stream, so identical on every machine).
    pub fn random(n_items: usize, seed: u64) -> Self {
        let mut new_of_old: Vec<u32> = (0..n_items as u32).collect();
        shuffle(&mut stream_rng(seed ^ REINDEX_TAG, 0), &mut new_of_old);
        Self { new_of_old }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.new_of_old.len()
    }

    /// Whether there is no item.
    pub fn is_empty(&self) -> bool {
        self.new_of_old.is_empty()
    }

    /// Whether every item keeps its id.
    pub fn is_identity(&self) -> bool {
        self.new_of_old
            .iter()
            .enumerate()
            .all(|(i, &n)| i as u32 == n)
    }

    /// The new id of `old`. Ids outside `0..len` are returned unchanged
    /// (callers check ranges with [`try_apply`](Self::try_apply)).
    pub fn apply(&self, old: u32) -> u32 {
        self.new_of_old.get(old as usize).copied().unwrap_or(old)
    }

    /// The new id of `old`.
    ///
    /// # Errors
    /// [`DataError::Config`] for an id outside `0..len`.
    pub fn try_apply(&self, old: u32) -> Result<u32> {
        self.new_of_old
            .get(old as usize)
            .copied()
            .ok_or(DataError::IdOutOfRange {
                kind: "item",
                id: old,
                n: self.len(),
            })
    }

    /// Renames every item of `items` in place.
    ///
    /// # Errors
    /// As [`try_apply`](Self::try_apply); `items` is left unchanged then.
    pub fn apply_all(&self, items: &mut [u32]) -> Result<()> {
        let renamed = items
            .iter()
            .map(|&i| self.try_apply(i))
            .collect::<Result<Vec<u32>>>()?;
        items.copy_from_slice(&renamed);
        Ok(())
    }

    /// The same split with every item renamed: users, time order and the
    /// train/validation/test assignment are unchanged.
    ///
    /// # Errors
    /// [`DataError::Config`] if the permutation's length is not
    /// `split.n_items` or an item is out of range.
    pub fn apply_split(&self, split: &LeaveOneOut) -> Result<LeaveOneOut> {
        if self.len() != split.n_items {
            return Err(DataError::Config(format!(
                "a permutation of {} items cannot renumber a split of {} items",
                self.len(),
                split.n_items
            )));
        }
        let mut train = split.train.clone();
        for items in &mut train {
            self.apply_all(items)?;
        }
        let map = |v: &[Option<u32>]| -> Result<Vec<Option<u32>>> {
            v.iter()
                .map(|o| o.map(|i| self.try_apply(i)).transpose())
                .collect()
        };
        Ok(LeaveOneOut {
            train,
            valid: map(&split.valid)?,
            test: map(&split.test)?,
            n_items: split.n_items,
        })
    }
}

/// Which (user, item) pairs the user-item graph is built from. Training
/// examples and evaluation never depend on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GraphEdges {
    /// Leave-one-out train pairs only (no validation or test pair): clean.
    #[default]
    Train,
    /// A seeded random share of *all* pairs (train, validation and test),
    /// as a random review split gives; `Share(0.535)` has the size of the
    /// official Beauty graph. Contains about that share of the test pairs.
    Share(f64),
    /// Every pair, test pairs included.
    All,
}

const SHARE_TAG: u64 = 0x7368_6172_6564_6765;

impl GraphEdges {
    /// Checks a `Share` fraction.
    ///
    /// # Errors
    /// [`DataError::Config`] for a share outside `(0, 1]` or not finite.
    pub fn validate(self) -> Result<()> {
        match self {
            GraphEdges::Share(p) if !(p.is_finite() && p > 0.0 && p <= 1.0) => Err(
                DataError::Config(format!("graph edge share {p} must lie in (0, 1]")),
            ),
            _ => Ok(()),
        }
    }

    /// Whether the graph may contain validation or test pairs.
    pub fn leaks(self) -> bool {
        !matches!(self, GraphEdges::Train)
    }

    /// The graph's (user, item) pairs from `split`, with repeats (the graph
    /// builder deduplicates). `Share(p)` shuffles the distinct pairs of
    /// every user's train, validation and test items with a ChaCha8 stream
    /// of `seed` and keeps the first `round(p * n)`: deterministic for
    /// `(split, p, seed)` on every machine.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    ///
    /// # Complexity
    /// O(interactions · log(per-user length)).
    pub fn edges(self, split: &LeaveOneOut, seed: u64) -> Result<Vec<(u32, u32)>> {
        self.validate()?;
        match self {
            GraphEdges::Train => Ok(split.train_edges().collect()),
            GraphEdges::All | GraphEdges::Share(_) => {
                let mut pairs = Vec::new();
                for u in 0..split.n_users() as u32 {
                    let mut items = split.all_items(u);
                    items.sort_unstable();
                    items.dedup();
                    pairs.extend(items.into_iter().map(|i| (u, i)));
                }
                if let GraphEdges::Share(p) = self {
                    let keep = (pairs.len() as f64 * p).round() as usize;
                    shuffle(&mut stream_rng(seed ^ SHARE_TAG, 0), &mut pairs);
                    pairs.truncate(keep);
                    pairs.sort_unstable();
                }
                Ok(pairs)
            }
        }
    }

    /// `"train"`, `"share:P"` or `"all"` (what [`FromStr`] reads).
    pub fn name(self) -> String {
        match self {
            GraphEdges::Train => "train".into(),
            GraphEdges::Share(p) => format!("share:{p}"),
            GraphEdges::All => "all".into(),
        }
    }
}

impl fmt::Display for GraphEdges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for GraphEdges {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let e = match s {
            "train" => GraphEdges::Train,
            "all" => GraphEdges::All,
            _ => match s.strip_prefix("share:") {
                Some(p) => GraphEdges::Share(p.parse::<f64>().map_err(|_| {
                    format!("graph edges {s:?}: {p:?} is not a number (expected share:P, 0 < P <= 1)")
                })?),
                None => {
                    return Err(format!(
                        "unknown graph edges {s:?} (expected \"train\", \"share:P\" with 0 < P <= 1, or \"all\")"
                    ))
                }
            },
        };
        e.validate().map_err(|e| e.to_string())?;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn split() -> LeaveOneOut {
        LeaveOneOut {
            train: vec![vec![0, 1, 2], vec![3, 4], vec![5]],
            valid: vec![Some(3), Some(5), None],
            test: vec![Some(4), Some(0), Some(1)],
            n_items: 6,
        }
    }

    #[test]
    fn random_permutation_is_a_seeded_bijection() {
        let p = ItemPermutation::random(1000, 3);
        let mut seen = vec![false; 1000];
        for i in 0..1000 {
            seen[p.apply(i) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(p, ItemPermutation::random(1000, 3));
        assert_ne!(p, ItemPermutation::random(1000, 4));
        assert!(!p.is_identity());
        assert!(ItemPermutation::identity(5).is_identity());
        assert!(Reindex::Original.permutation(9, 1).is_identity());
    }

    #[test]
    fn apply_split_renames_items_only() {
        let s = split();
        let p = ItemPermutation::random(6, 1);
        let r = p.apply_split(&s).unwrap();
        for u in 0..3 {
            let want: Vec<u32> = s.train[u].iter().map(|&i| p.apply(i)).collect();
            assert_eq!(r.train[u], want);
            assert_eq!(r.valid[u], s.valid[u].map(|i| p.apply(i)));
            assert_eq!(r.test[u], s.test[u].map(|i| p.apply(i)));
        }
        assert!(ItemPermutation::random(5, 1).apply_split(&s).is_err());
        assert!(p.try_apply(6).is_err());
    }

    #[test]
    fn graph_edge_sources() {
        let s = split();
        let train = GraphEdges::Train.edges(&s, 0).unwrap();
        assert_eq!(train, vec![(0, 0), (0, 1), (0, 2), (1, 3), (1, 4), (2, 5)]);
        let all = GraphEdges::All.edges(&s, 0).unwrap();
        assert_eq!(all.len(), 11);
        assert!(all.contains(&(1, 0)) && all.contains(&(2, 1)));
        let half = GraphEdges::Share(0.5).edges(&s, 9).unwrap();
        assert_eq!(half.len(), 6);
        assert!(half.iter().all(|e| all.contains(e)));
        assert_eq!(half, GraphEdges::Share(0.5).edges(&s, 9).unwrap());
        assert_eq!(GraphEdges::Share(1.0).edges(&s, 9).unwrap(), all);
    }

    #[test]
    fn share_contains_about_that_share_of_test_pairs() {
        let n = 2000;
        let s = LeaveOneOut {
            train: (0..n).map(|u| vec![u % 50, 50 + u % 7]).collect(),
            valid: (0..n).map(|u| Some(100 + u % 13)).collect(),
            test: (0..n).map(|u| Some(200 + u % 17)).collect(),
            n_items: 300,
        };
        let e = GraphEdges::Share(0.535).edges(&s, 1).unwrap();
        let test_in = (0..n)
            .filter(|&u| e.binary_search(&(u, 200 + u % 17)).is_ok())
            .count() as f64
            / n as f64;
        assert!((test_in - 0.535).abs() < 0.04, "{test_in}");
    }

    #[test]
    fn parsing_and_errors() {
        assert_eq!("train".parse::<GraphEdges>().unwrap(), GraphEdges::Train);
        assert_eq!("all".parse::<GraphEdges>().unwrap(), GraphEdges::All);
        assert_eq!(
            "share:0.535".parse::<GraphEdges>().unwrap(),
            GraphEdges::Share(0.535)
        );
        for bad in ["share:0", "share:1.5", "share:x", "some", "share:NaN"] {
            let e = bad.parse::<GraphEdges>().unwrap_err();
            assert!(e.contains("share") || e.contains("graph edges"), "{e}");
        }
        assert_eq!("random".parse::<Reindex>().unwrap(), Reindex::Random);
        let e = "sorted".parse::<Reindex>().unwrap_err();
        assert!(e.contains("unknown reindexing \"sorted\""), "{e}");
        let g = GraphEdges::Share(0.25);
        assert_eq!(g.name().parse::<GraphEdges>().unwrap(), g);
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(serde_json::from_str::<GraphEdges>(&json).unwrap(), g);
    }
}
