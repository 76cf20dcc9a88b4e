//! ELMRec's graph-aware vectors with no language model.

use ndarray::ArrayView2;

use graft_data::{GraphEdges, LeaveOneOut};
use graft_propagate::{LightGcnConfig, Propagator, RustCsr};

use crate::embedding::DotScorer;
use crate::error::Result;
use crate::popularity::graph_from;
use crate::scoring::ItemScorer;

/// LightGCN random-feature propagation of the train graph, scored by dot
/// product: `E0 ~ N(0, sigma^2)` ([`LightGcnConfig::initial_embeddings`]),
/// `L` layers of `Â = D^-1/2 A D^-1/2`, layers combined by `cfg.combine`
/// (the mean in ELMRec), computed with [`RustCsr`]; `score(u, i) =
/// <e_u, e_i>`.
///
/// This isolates what ELMRec's graph-aware whole-word embeddings carry
/// before any language model sees them: `E[<e_u, e_i>]` is proportional to
/// a sum of `Â^k[u, i]` terms, so it ranks items close to the user in the
/// train graph first, with noise that shrinks as `dim` grows.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomPropagation {
    scorer: DotScorer,
    cfg: LightGcnConfig,
}

impl RandomPropagation {
    /// Propagates the seeded random features over the train graph of `loo`.
    ///
    /// # Errors
    /// [`BaselineError::Propagate`](crate::BaselineError::Propagate) for an
    /// invalid `cfg`; [`BaselineError::Graph`](crate::BaselineError::Graph)
    /// for item ids out of range.
    ///
    /// # Complexity
    /// O(L · nnz · dim) with nnz = 2 · train edges.
    pub fn fit(loo: &LeaveOneOut, cfg: &LightGcnConfig) -> Result<Self> {
        Self::fit_on(loo, cfg, GraphEdges::Train)
    }

    /// As [`fit`](Self::fit), over the graph `edges` selects (a `Share` is
    /// drawn with `cfg.seed`): [`GraphEdges::Share`] and
    /// [`GraphEdges::All`] put validation and test pairs into the graph,
    /// to measure what that leak is worth.
    ///
    /// # Errors
    /// As [`fit`](Self::fit), and [`BaselineError::Data`](crate::BaselineError::Data)
    /// for an invalid share.
    pub fn fit_on(loo: &LeaveOneOut, cfg: &LightGcnConfig, edges: GraphEdges) -> Result<Self> {
        let g = graph_from(loo, edges, cfg.seed)?;
        let e0 = cfg.initial_embeddings(g.n_nodes())?;
        let table = RustCsr::for_graph(&g)?.propagate(e0.view(), cfg.layers, &cfg.combine)?;
        let graph = match edges {
            GraphEdges::Train => String::new(),
            e => format!(",graph={e}"),
        };
        let name = format!(
            "random-propagation(d={},L={},sigma={}{graph})",
            cfg.dim, cfg.layers, cfg.sigma
        );
        let scorer = DotScorer::from_node_table(name, table, g.n_users(), g.n_items())?;
        Ok(Self {
            scorer,
            cfg: cfg.clone(),
        })
    }

    /// User vectors `(U, dim)`.
    pub fn user_vectors(&self) -> ArrayView2<'_, f32> {
        self.scorer.user_vectors()
    }

    /// Item vectors `(I, dim)`.
    pub fn item_vectors(&self) -> ArrayView2<'_, f32> {
        self.scorer.item_vectors()
    }

    /// The configuration.
    pub fn config(&self) -> &LightGcnConfig {
        &self.cfg
    }

    /// The underlying dot-product scorer.
    pub fn scorer(&self) -> &DotScorer {
        &self.scorer
    }
}

impl ItemScorer for RandomPropagation {
    fn name(&self) -> String {
        self.scorer.name()
    }

    fn score_all(&self, user: u32, history: &[u32]) -> Result<Vec<f32>> {
        self.scorer.score_all(user, history)
    }
}
