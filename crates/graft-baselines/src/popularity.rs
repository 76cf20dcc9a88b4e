//! The train-degree popularity baseline.

use graft_data::{GraphEdges, LeaveOneOut};

use crate::error::{BaselineError, Result};
use crate::scoring::ItemScorer;

/// Train-degree popularity: `score(u, i)` = number of distinct users with
/// `i` among their train items (the degree of `i` in the train graph,
/// [`graft_graph::BipartiteGraph::item_degrees`]), the same for every user.
/// Validation and test items never count.
#[derive(Debug, Clone, PartialEq)]
pub struct Popularity {
    degrees: Vec<u32>,
}

impl Popularity {
    /// Counts the train degrees of `loo`. Train items `>= loo.n_items` (which
    /// a split built by [`LeaveOneOut::new`] never holds) are ignored.
    ///
    /// # Complexity
    /// O(train interactions · log(per-user length)).
    pub fn fit(loo: &LeaveOneOut) -> Self {
        let mut degrees = vec![0u32; loo.n_items];
        let mut items = Vec::new();
        for train in &loo.train {
            items.clear();
            items.extend_from_slice(train);
            items.sort_unstable();
            items.dedup();
            for &i in &items {
                if let Some(d) = degrees.get_mut(i as usize) {
                    *d += 1;
                }
            }
        }
        Self { degrees }
    }

    /// The train degree of every item.
    pub fn degrees(&self) -> &[u32] {
        &self.degrees
    }
}

impl ItemScorer for Popularity {
    fn name(&self) -> String {
        "popularity".into()
    }

    fn score_all(&self, _user: u32, _history: &[u32]) -> Result<Vec<f32>> {
        Ok(self.degrees.iter().map(|&d| d as f32).collect())
    }
}

/// Scores every item with the same constant: with pessimistic ties it ranks
/// every target last, the floor any model must beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constant {
    n_items: usize,
}

impl Constant {
    /// A constant scorer over `n_items` items.
    pub fn new(n_items: usize) -> Self {
        Self { n_items }
    }
}

impl ItemScorer for Constant {
    fn name(&self) -> String {
        "constant".into()
    }

    fn score_all(&self, _user: u32, _history: &[u32]) -> Result<Vec<f32>> {
        Ok(vec![0.0; self.n_items])
    }
}

/// Seeded uniformly random scores, a fresh draw per user (deterministic for
/// `(seed, user)`): the chance level of every protocol (direct HR@10 ≈ 10 /
/// (1 + negatives)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomScorer {
    n_items: usize,
    seed: u64,
}

impl RandomScorer {
    /// A random scorer over `n_items` items.
    pub fn new(n_items: usize, seed: u64) -> Self {
        Self { n_items, seed }
    }
}

impl ItemScorer for RandomScorer {
    fn name(&self) -> String {
        "random".into()
    }

    fn score_all(&self, user: u32, _history: &[u32]) -> Result<Vec<f32>> {
        let mut rng = graft_data::rng::stream_rng(self.seed, u64::from(user));
        Ok((0..self.n_items)
            .map(|_| graft_data::rng::unit_f64(&mut rng) as f32)
            .collect())
    }
}

/// The user-item graph of `loo` from the pairs `edges` selects
/// ([`GraphEdges::edges`]; `seed` draws a `Share`).
///
/// # Errors
/// [`BaselineError::Data`] for an invalid share, [`BaselineError::Graph`]
/// for an item id `>= loo.n_items`.
pub fn graph_from(
    loo: &LeaveOneOut,
    edges: GraphEdges,
    seed: u64,
) -> Result<graft_graph::BipartiteGraph> {
    let pairs = edges.edges(loo, seed)?;
    graft_graph::BipartiteGraph::from_edges(loo.n_users(), loo.n_items, pairs)
        .map_err(BaselineError::from)
}

/// The train graph of `loo` (train edges only).
///
/// # Errors
/// [`BaselineError::Graph`] for an item id `>= loo.n_items`.
pub fn train_graph(loo: &LeaveOneOut) -> Result<graft_graph::BipartiteGraph> {
    graft_graph::BipartiteGraph::from_edges(loo.n_users(), loo.n_items, loo.train_edges())
        .map_err(BaselineError::from)
}
