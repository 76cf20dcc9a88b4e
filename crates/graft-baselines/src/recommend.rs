//! The baselines as graft-recommend models: [`Scored`] wraps any
//! [`ItemScorer`] as a [`ScoreAll`], so `graft_recommend::WithIds` gives
//! top-k recommendations over a dataset's raw IDs.

use graft_recommend::{RecommendError, ScoreAll};

use crate::scoring::ItemScorer;

/// An [`ItemScorer`] over `n_items` items as a [`ScoreAll`].
///
/// Scorers that read the user (LightGCN-BPR, random propagation) refuse a
/// user the dataset does not know; scorers that do not (popularity, the
/// sequential-index rule, SASRec) score for anyone
/// ([`ignoring_user`](Self::ignoring_user)).
///
/// ```
/// use graft_baselines::{Popularity, Scored};
/// use graft_data::{synthetic, LeaveOneOut};
/// use graft_recommend::{Recommender, WithIds};
///
/// let ds = synthetic::planted_clusters(&Default::default())?.dataset;
/// let split = LeaveOneOut::new(&ds);
/// let popularity = Scored::ignoring_user(Popularity::fit(&split), ds.n_items());
/// let rec = WithIds::new(popularity, ds.users.clone(), ds.items.clone())?;
/// let user = ds.users.raw(0).unwrap();
/// let seen: Vec<&str> = split.train[0].iter().map(|&i| ds.items.raw(i).unwrap()).collect();
/// let top = rec.recommend(user, &seen, 10, true)?;
/// assert_eq!(top.len(), 10);
/// assert!(top.iter().all(|r| !seen.contains(&r.item.as_str())));
/// assert!(top.windows(2).all(|w| w[0].score >= w[1].score));
/// // A new user gets the same popular items.
/// assert_eq!(rec.recommend("someone new", &[], 3, true)?.len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Scored<S> {
    scorer: S,
    n_items: usize,
    needs_user: bool,
}

impl<S: ItemScorer> Scored<S> {
    /// A scorer that reads the user: an unknown user is
    /// [`RecommendError::UnknownUser`].
    pub fn new(scorer: S, n_items: usize) -> Self {
        Self {
            scorer,
            n_items,
            needs_user: true,
        }
    }

    /// A scorer whose scores do not depend on the user (only on the
    /// history, or on nothing): it scores for users it never saw.
    pub fn ignoring_user(scorer: S, n_items: usize) -> Self {
        Self {
            scorer,
            n_items,
            needs_user: false,
        }
    }

    /// The wrapped scorer.
    pub fn scorer(&self) -> &S {
        &self.scorer
    }
}

impl<S: ItemScorer> ScoreAll for Scored<S> {
    fn n_items(&self) -> usize {
        self.n_items
    }

    fn score_all(&self, user: Option<u32>, history: &[u32]) -> graft_recommend::Result<Vec<f32>> {
        let user = match (user, self.needs_user) {
            (Some(u), _) => u,
            // Any ID will do: the scorer does not read it.
            (None, false) => 0,
            (None, true) => return Err(RecommendError::UnknownUser(String::new())),
        };
        self.scorer
            .score_all(user, history)
            .map_err(|e| RecommendError::Model(e.to_string().into()))
    }
}
