//! Recommendations from any graft model, over a dataset's raw IDs.
//!
//! [`Recommender`] is the one question a user asks of a trained model:
//! "which `k` items for this user, given what they did?", in the IDs of
//! their own data (`"A1B2C3"`, `"user_42"`), optionally without the items
//! they already have. [`ScoreAll`] is what most models can answer instead
//! (a score for every item by dense ID); [`WithIds`] turns one into the
//! other with the dataset's [`IdMap`]s. Models that rank without scoring
//! every item (a generative model's beam search) implement [`RankItems`]
//! instead, which every [`ScoreAll`] model also has. The crate needs no
//! libtorch; the models implement these traits in their own crates
//! (graft-baselines: popularity, LightGCN-BPR, SASRec, ...; graft-elmrec:
//! a trained ELMRec run).
//!
//! ```
//! use graft_data::IdMap;
//! use graft_recommend::{Recommender, ScoreAll, WithIds};
//!
//! /// Scores items by a fixed preference (a stand-in for a trained model).
//! struct Fixed(Vec<f32>);
//! impl ScoreAll for Fixed {
//!     fn n_items(&self) -> usize {
//!         self.0.len()
//!     }
//!     fn score_all(&self, _user: Option<u32>, _history: &[u32]) -> graft_recommend::Result<Vec<f32>> {
//!         Ok(self.0.clone())
//!     }
//! }
//!
//! let users = IdMap::from_raw(vec!["ann".into(), "bob".into()]);
//! let items = IdMap::from_raw(vec!["apple".into(), "book".into(), "cup".into()]);
//! let rec = WithIds::new(Fixed(vec![0.2, 0.9, 0.5]), users, items)?;
//! let top = rec.recommend("ann", &["book"], 2, true)?;
//! let names: Vec<&str> = top.iter().map(|r| r.item.as_str()).collect();
//! assert_eq!(names, ["cup", "apple"]); // "book" was seen
//! # Ok::<(), graft_recommend::RecommendError>(())
//! ```

use std::cmp::Ordering;

use graft_data::IdMap;

/// What can go wrong when recommending.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecommendError {
    /// A history item is not one of the dataset's items.
    #[error("item {0:?} is not in the dataset")]
    UnknownItem(String),
    /// The model needs to know the user, and this one is not in the dataset.
    #[error("user {0:?} is not in the dataset, and the model needs a known user")]
    UnknownUser(String),
    /// The model and the ID maps disagree.
    #[error("the model scores {model} items, the dataset has {dataset}")]
    ItemCount {
        /// Items the model scores.
        model: usize,
        /// Items in the dataset's map.
        dataset: usize,
    },
    /// The model failed.
    #[error("the model failed: {0}")]
    Model(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// `Result` with [`RecommendError`].
pub type Result<T, E = RecommendError> = std::result::Result<T, E>;

/// One recommended item and the model's score for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The item's raw ID, as in the dataset's files.
    pub item: String,
    /// The model's score (higher is better; scales differ between models).
    pub score: f64,
}

/// Top-`k` items for a user, over raw IDs.
pub trait Recommender {
    /// The `k` best items for `user` given `history` (raw item IDs, oldest
    /// first), best first; ties go to the lower dense ID. With
    /// `exclude_seen`, items in `history` are never recommended.
    ///
    /// # Errors
    /// [`RecommendError::UnknownItem`] for a history item the dataset does
    /// not have; [`RecommendError::UnknownUser`] when the model needs a
    /// known user; model errors.
    fn recommend(
        &self,
        user: &str,
        history: &[&str],
        k: usize,
        exclude_seen: bool,
    ) -> Result<Vec<Recommendation>>;
}

/// A model that scores every item, by dense item ID.
pub trait ScoreAll {
    /// Items scored (the length of [`score_all`](Self::score_all)'s result).
    fn n_items(&self) -> usize;

    /// A score for every item for `user` (`None`: a user the dataset does
    /// not know) given `history` (dense item IDs, oldest first).
    ///
    /// # Errors
    /// [`RecommendError::UnknownUser`] when the model needs a known user and
    /// gets `None`; [`RecommendError::Model`] for the model's own failures.
    fn score_all(&self, user: Option<u32>, history: &[u32]) -> Result<Vec<f32>>;
}

/// A model that ranks items itself, by dense item ID: every [`ScoreAll`]
/// model (by its scores, [`top_k`]) and models that produce a ranking
/// without scoring every item, such as a generative recommender's beam
/// search (graft-elmrec's `ElmrecRecommender`).
pub trait RankItems {
    /// Items of the model's ID space (dense IDs `0..n`).
    fn n_ranked_items(&self) -> usize;

    /// At most `k` items for `user` (`None`: a user the dataset does not
    /// know) given `history` (dense item IDs, oldest first), best first with
    /// the model's score, none of them in `excluded`. A model may return
    /// fewer than `k` (a beam search returns what its beams found).
    ///
    /// # Errors
    /// As [`ScoreAll::score_all`].
    fn rank_items(
        &self,
        user: Option<u32>,
        history: &[u32],
        k: usize,
        excluded: &[u32],
    ) -> Result<Vec<(u32, f32)>>;
}

impl<S: ScoreAll> RankItems for S {
    fn n_ranked_items(&self) -> usize {
        self.n_items()
    }

    fn rank_items(
        &self,
        user: Option<u32>,
        history: &[u32],
        k: usize,
        excluded: &[u32],
    ) -> Result<Vec<(u32, f32)>> {
        let scores = self.score_all(user, history)?;
        if scores.len() != self.n_items() {
            return Err(RecommendError::ItemCount {
                model: scores.len(),
                dataset: self.n_items(),
            });
        }
        Ok(top_k(&scores, k, excluded))
    }
}

/// A [`RankItems`] model (any [`ScoreAll`] model) with its dataset's ID
/// maps: a [`Recommender`].
#[derive(Debug, Clone)]
pub struct WithIds<S> {
    scorer: S,
    users: IdMap,
    items: IdMap,
}

impl<S: RankItems> WithIds<S> {
    /// Wraps `scorer`, whose dense IDs are those of `users` and `items`
    /// (e.g. `dataset.users.clone()`, `dataset.items.clone()`).
    ///
    /// # Errors
    /// [`RecommendError::ItemCount`] when the scorer and `items` disagree on
    /// the number of items.
    pub fn new(scorer: S, users: IdMap, items: IdMap) -> Result<Self> {
        if scorer.n_ranked_items() != items.len() {
            return Err(RecommendError::ItemCount {
                model: scorer.n_ranked_items(),
                dataset: items.len(),
            });
        }
        Ok(Self {
            scorer,
            users,
            items,
        })
    }

    /// The wrapped model.
    pub fn scorer(&self) -> &S {
        &self.scorer
    }
}

impl<S: RankItems> Recommender for WithIds<S> {
    fn recommend(
        &self,
        user: &str,
        history: &[&str],
        k: usize,
        exclude_seen: bool,
    ) -> Result<Vec<Recommendation>> {
        let dense: Vec<u32> = history
            .iter()
            .map(|&i| {
                self.items
                    .get(i)
                    .ok_or_else(|| RecommendError::UnknownItem(i.to_owned()))
            })
            .collect::<Result<_>>()?;
        let excluded: &[u32] = if exclude_seen { &dense } else { &[] };
        let ranked = self
            .scorer
            .rank_items(self.users.get(user), &dense, k, excluded)
            .map_err(|e| match e {
                RecommendError::UnknownUser(_) => RecommendError::UnknownUser(user.to_owned()),
                e => e,
            })?;
        ranked
            .into_iter()
            .take(k)
            .map(|(i, score)| {
                let raw = self.items.raw(i).ok_or(RecommendError::ItemCount {
                    model: i as usize + 1,
                    dataset: self.items.len(),
                })?;
                Ok(Recommendation {
                    item: raw.to_owned(),
                    score: f64::from(score),
                })
            })
            .collect()
    }
}

/// The `k` highest of `scores` as `(dense item, score)`, best first; ties
/// to the lower ID; NaN scores and the items in `excluded` never chosen.
///
/// ```
/// use graft_recommend::top_k;
///
/// assert_eq!(top_k(&[0.1, 0.7, 0.7, f32::NAN, 0.3], 3, &[2]), vec![(1, 0.7), (4, 0.3), (0, 0.1)]);
/// ```
pub fn top_k(scores: &[f32], k: usize, excluded: &[u32]) -> Vec<(u32, f32)> {
    let mut skip = vec![false; scores.len()];
    for &i in excluded {
        if let Some(s) = skip.get_mut(i as usize) {
            *s = true;
        }
    }
    let mut candidates: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .filter(|&(i, s)| !skip[i] && !s.is_nan())
        .map(|(i, &s)| (i as u32, s))
        .collect();
    let by_score = |a: &(u32, f32), b: &(u32, f32)| {
        b.1.partial_cmp(&a.1)
            .unwrap_or(Ordering::Equal)
            .then(a.0.cmp(&b.0))
    };
    if k < candidates.len() {
        candidates.select_nth_unstable_by(k, by_score);
        candidates.truncate(k);
    }
    candidates.sort_by(by_score);
    candidates
}
