//! Heterogeneous per-sample graphs for ELCoRec's GAT expert network.
//!
//! Every training/evaluation sample (a user, the `K` items of their recent
//! history and one target item) becomes a small heterogeneous graph
//! ([`SampleGraph`]) with three node types — user, item, feature — and four
//! relations, each direction of an undirected link being its own relation
//! type, as in a DGL heterograph or PyG `HeteroData`:
//!
//! | relation | source | destination |
//! |---|---|---|
//! | [`Relation::UserItem`] | user | item |
//! | [`Relation::ItemUser`] | item | user |
//! | [`Relation::ItemFeature`] | item | feature |
//! | [`Relation::FeatureItem`] | feature | item |
//!
//! [`HeteroBatch`] flattens many sample graphs into one block-diagonal graph:
//! per node type a flat node list with per-graph offsets, and per relation an
//! edge list in type-local indices. A heterogeneous GAT runs over the whole
//! batch with one gather (`x_src[src]`, `x_dst[dst]`), one per-destination
//! softmax and one scatter-add (`index_add(dst)`) per relation; since the
//! blocks never share nodes, messages never cross samples.
//!
//! ```
//! use graft_graph::{HeteroBatch, NodeKind, Relation, SampleGraph, SampleGraphOptions};
//!
//! let genres = |item: u32| vec![item % 3];
//! let opts = SampleGraphOptions::default();
//! let a = SampleGraph::build(7, 10, &[4, 5], genres, &opts);
//! let b = SampleGraph::build(8, 11, &[4], genres, &opts);
//! let batch = HeteroBatch::from_graphs(&[a, b])?;
//! assert_eq!(batch.nodes(NodeKind::Item).len(), 3 + 2);
//! assert_eq!(batch.target_index(), &[0, 3]);
//! // User 8 (type-local index 1) links to items 3 and 4 of the second block.
//! let ui = batch.edges(Relation::UserItem);
//! assert_eq!(&ui.src()[3..], &[1, 1]);
//! assert_eq!(&ui.dst()[3..], &[3, 4]);
//! # Ok::<(), graft_graph::GraphError>(())
//! ```

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use petgraph::graph::{Graph, NodeIndex};
use serde::{Deserialize, Serialize};

use crate::error::{GraphError, NodeKind, Result};

/// Role of an item node in its sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ItemRole {
    /// The item whose rating/click is predicted.
    Target,
    /// The `position`-th of the `K` history items shown, `0` = oldest.
    History {
        /// Chronological position among the history items, `0` = oldest.
        position: usize,
    },
}

impl ItemRole {
    /// Integer code for an embedding table: `0` for the target, `1 + p` for
    /// history position `p`.
    pub fn code(self) -> i64 {
        match self {
            ItemRole::Target => 0,
            ItemRole::History { position } => 1 + position as i64,
        }
    }
}

/// Node payload of a [`SampleGraph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HeteroNode {
    /// The sample's user.
    User {
        /// User id.
        id: u32,
    },
    /// The target item or one history item.
    Item {
        /// Item id.
        id: u32,
        /// Target or history position.
        role: ItemRole,
    },
    /// An item attribute (genre, brand, author, ...).
    Feature {
        /// Feature id.
        id: u32,
    },
}

impl HeteroNode {
    /// The node's type.
    pub fn kind(&self) -> NodeKind {
        match self {
            HeteroNode::User { .. } => NodeKind::User,
            HeteroNode::Item { .. } => NodeKind::Item,
            HeteroNode::Feature { .. } => NodeKind::Feature,
        }
    }

    /// The node's id within its type.
    pub fn id(&self) -> u32 {
        match *self {
            HeteroNode::User { id } | HeteroNode::Item { id, .. } | HeteroNode::Feature { id } => {
                id
            }
        }
    }
}

/// Edge type of a [`SampleGraph`]; both directions of a link are separate
/// relations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Relation {
    /// user → item.
    UserItem,
    /// item → user.
    ItemUser,
    /// item → feature.
    ItemFeature,
    /// feature → item.
    FeatureItem,
}

impl Relation {
    /// All relations, in the order used for per-relation arrays.
    pub const ALL: [Relation; 4] = [
        Relation::UserItem,
        Relation::ItemUser,
        Relation::ItemFeature,
        Relation::FeatureItem,
    ];

    /// Position of this relation in [`Relation::ALL`].
    pub fn index(self) -> usize {
        match self {
            Relation::UserItem => 0,
            Relation::ItemUser => 1,
            Relation::ItemFeature => 2,
            Relation::FeatureItem => 3,
        }
    }

    /// Node type of the edge sources.
    pub fn src_kind(self) -> NodeKind {
        match self {
            Relation::UserItem => NodeKind::User,
            Relation::ItemUser | Relation::ItemFeature => NodeKind::Item,
            Relation::FeatureItem => NodeKind::Feature,
        }
    }

    /// Node type of the edge destinations.
    pub fn dst_kind(self) -> NodeKind {
        match self {
            Relation::ItemUser => NodeKind::User,
            Relation::UserItem | Relation::FeatureItem => NodeKind::Item,
            Relation::ItemFeature => NodeKind::Feature,
        }
    }

    /// The same link in the other direction.
    pub fn reverse(self) -> Relation {
        match self {
            Relation::UserItem => Relation::ItemUser,
            Relation::ItemUser => Relation::UserItem,
            Relation::ItemFeature => Relation::FeatureItem,
            Relation::FeatureItem => Relation::ItemFeature,
        }
    }

    /// Name such as `"user_item"` (source type, destination type), usable
    /// as a parameter-name component.
    pub fn name(self) -> &'static str {
        match self {
            Relation::UserItem => "user_item",
            Relation::ItemUser => "item_user",
            Relation::ItemFeature => "item_feature",
            Relation::FeatureItem => "feature_item",
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Options of [`SampleGraph::build`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SampleGraphOptions {
    /// Link the user to the target item (in both directions); default
    /// `true`. Turn off to keep the target's only evidence its features.
    pub connect_target_to_user: bool,
    /// Keep at most this many distinct features per item (the first ones
    /// the feature function yields); default `None` (all).
    pub max_features_per_item: Option<usize>,
}

impl Default for SampleGraphOptions {
    fn default() -> Self {
        Self {
            connect_target_to_user: true,
            max_features_per_item: None,
        }
    }
}

impl SampleGraphOptions {
    /// Sets [`connect_target_to_user`](Self::connect_target_to_user).
    pub fn with_connect_target_to_user(mut self, yes: bool) -> Self {
        self.connect_target_to_user = yes;
        self
    }

    /// Sets [`max_features_per_item`](Self::max_features_per_item).
    pub fn with_max_features_per_item(mut self, max: Option<usize>) -> Self {
        self.max_features_per_item = max;
        self
    }
}

/// The heterogeneous graph of one sample, stored as a directed
/// `petgraph::Graph<HeteroNode, Relation>`.
///
/// # Layout
///
/// Nodes are inserted in a fixed order, which also defines the type-local
/// index of every node (see [`SampleGraph::local_index`]):
///
/// 1. the user (user-local 0),
/// 2. the target item (item-local 0),
/// 3. one node per history entry, oldest first (item-local `1 + position`);
///    repeated items stay separate nodes, since each occurrence later
///    carries its own rating and time gap,
/// 4. one node per *distinct* feature id of all the sample's items, in
///    ascending id order (feature-local `0..F`).
///
/// Edges: user ↔ every history item, user ↔ target (unless
/// [`SampleGraphOptions::connect_target_to_user`] is off), item ↔ each of
/// its distinct features. Each link is added as a forward edge immediately
/// followed by its reverse, so listing one relation and its reverse in
/// edge-index order gives swapped copies of the same list.
#[derive(Debug, Clone)]
pub struct SampleGraph {
    graph: Graph<HeteroNode, Relation>,
    user: NodeIndex,
    target: NodeIndex,
    history: Vec<NodeIndex>,
    features: Vec<NodeIndex>,
}

impl SampleGraph {
    /// Builds the graph of one sample.
    ///
    /// `item_features(item)` yields the feature ids of an item (it is
    /// called once per item node); repeated ids are ignored.
    ///
    /// # Complexity
    ///
    /// `O(N + L log L)` for `N` item nodes and `L` item-feature links, plus
    /// the cost of the feature function.
    pub fn build<F, I>(
        user: u32,
        target: u32,
        history: &[u32],
        mut item_features: F,
        opts: &SampleGraphOptions,
    ) -> Self
    where
        F: FnMut(u32) -> I,
        I: IntoIterator<Item = u32>,
    {
        let cap = opts.max_features_per_item.unwrap_or(usize::MAX);
        let items: Vec<(u32, ItemRole)> = std::iter::once((target, ItemRole::Target))
            .chain(
                history
                    .iter()
                    .enumerate()
                    .map(|(position, &id)| (id, ItemRole::History { position })),
            )
            .collect();

        // Distinct features of every item, in the order the function gives.
        let mut seen = HashSet::new();
        let per_item: Vec<Vec<u32>> = items
            .iter()
            .map(|&(id, _)| {
                seen.clear();
                item_features(id)
                    .into_iter()
                    .filter(|f| seen.insert(*f))
                    .take(cap)
                    .collect()
            })
            .collect();
        let mut feature_ids: Vec<u32> = per_item.iter().flatten().copied().collect();
        feature_ids.sort_unstable();
        feature_ids.dedup();

        let n_links: usize = per_item.iter().map(Vec::len).sum();
        let mut graph = Graph::with_capacity(
            1 + items.len() + feature_ids.len(),
            2 * (items.len() + n_links),
        );
        let user = graph.add_node(HeteroNode::User { id: user });
        let item_nodes: Vec<NodeIndex> = items
            .iter()
            .map(|&(id, role)| graph.add_node(HeteroNode::Item { id, role }))
            .collect();
        let features: Vec<NodeIndex> = feature_ids
            .iter()
            .map(|&id| graph.add_node(HeteroNode::Feature { id }))
            .collect();

        for (k, &item) in item_nodes.iter().enumerate() {
            if k > 0 || opts.connect_target_to_user {
                graph.add_edge(user, item, Relation::UserItem);
                graph.add_edge(item, user, Relation::ItemUser);
            }
        }
        for (&item, feats) in item_nodes.iter().zip(&per_item) {
            for f in feats {
                // Every id of `per_item` is in `feature_ids`.
                if let Ok(pos) = feature_ids.binary_search(f) {
                    let feat = features[pos];
                    graph.add_edge(item, feat, Relation::ItemFeature);
                    graph.add_edge(feat, item, Relation::FeatureItem);
                }
            }
        }

        let target = item_nodes[0];
        let history = item_nodes[1..].to_vec();
        Self {
            graph,
            user,
            target,
            history,
            features,
        }
    }

    /// The underlying directed petgraph graph (read-only).
    pub fn graph(&self) -> &Graph<HeteroNode, Relation> {
        &self.graph
    }

    /// Index of the user node.
    pub fn user_node(&self) -> NodeIndex {
        self.user
    }

    /// Index of the target item node.
    pub fn target_node(&self) -> NodeIndex {
        self.target
    }

    /// Indices of the history item nodes, oldest first.
    pub fn history_nodes(&self) -> &[NodeIndex] {
        &self.history
    }

    /// Indices of the feature nodes, ascending by feature id.
    pub fn feature_nodes(&self) -> &[NodeIndex] {
        &self.features
    }

    /// Payload of a node, `None` if `node` is not in the graph.
    pub fn node(&self, node: NodeIndex) -> Option<&HeteroNode> {
        self.graph.node_weight(node)
    }

    /// The user id.
    pub fn user_id(&self) -> u32 {
        self.id_of(self.user)
    }

    /// The target item id.
    pub fn target_id(&self) -> u32 {
        self.id_of(self.target)
    }

    /// The history item ids, oldest first (with repetitions).
    pub fn history_ids(&self) -> Vec<u32> {
        self.history.iter().map(|&n| self.id_of(n)).collect()
    }

    /// The distinct feature ids, ascending.
    pub fn feature_ids(&self) -> Vec<u32> {
        self.features.iter().map(|&n| self.id_of(n)).collect()
    }

    fn id_of(&self, node: NodeIndex) -> u32 {
        self.graph.node_weight(node).map_or(0, HeteroNode::id)
    }

    /// Number of nodes of a type: 1 user, `1 + K` items, `F` features.
    pub fn node_count(&self, kind: NodeKind) -> usize {
        match kind {
            NodeKind::User => 1,
            NodeKind::Item => 1 + self.history.len(),
            NodeKind::Feature => self.features.len(),
        }
    }

    /// Number of edges of a relation.
    pub fn edge_count(&self, relation: Relation) -> usize {
        self.edges(relation).count()
    }

    /// The `(source, destination)` pairs of a relation, in insertion order.
    ///
    /// # Complexity
    ///
    /// `O(total edges)` (one pass over the edge array).
    pub fn edges(&self, relation: Relation) -> impl Iterator<Item = (NodeIndex, NodeIndex)> + '_ {
        self.graph
            .raw_edges()
            .iter()
            .filter(move |e| e.weight == relation)
            .map(|e| (e.source(), e.target()))
    }

    /// Type and type-local index of a node (see the layout in the type
    /// docs), `None` if `node` is not in the graph.
    pub fn local_index(&self, node: NodeIndex) -> Option<(NodeKind, usize)> {
        let i = node.index();
        let n_items = self.node_count(NodeKind::Item);
        if i == 0 {
            Some((NodeKind::User, 0))
        } else if i <= n_items {
            Some((NodeKind::Item, i - 1))
        } else if i < self.graph.node_count() {
            Some((NodeKind::Feature, i - 1 - n_items))
        } else {
            None
        }
    }
}

/// The nodes of one type across a [`HeteroBatch`].
///
/// Graph `g` owns the type-local indices `offsets[g]..offsets[g + 1]`, in
/// the order of the [`SampleGraph`] layout.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeBlock {
    ids: Vec<u32>,
    offsets: Vec<usize>,
    graph_of_node: Vec<i64>,
}

impl NodeBlock {
    fn new() -> Self {
        Self {
            ids: Vec::new(),
            offsets: vec![0],
            graph_of_node: Vec::new(),
        }
    }

    fn push(&mut self, id: u32, graph: usize) {
        self.ids.push(id);
        self.graph_of_node.push(graph as i64);
    }

    fn close_graph(&mut self) {
        self.offsets.push(self.ids.len());
    }

    /// Node ids (user, item or feature ids), by type-local index.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Number of nodes of this type in the batch.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the batch has no node of this type.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Prefix sums of the per-graph counts (length `n_graphs + 1`).
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// Type-local index range of graph `g`, `None` if `g >= n_graphs`.
    pub fn range(&self, g: usize) -> Option<Range<usize>> {
        Some(*self.offsets.get(g)?..*self.offsets.get(g + 1)?)
    }

    /// First type-local index of graph `g`, `None` if `g >= n_graphs`.
    pub fn offset(&self, g: usize) -> Option<usize> {
        self.range(g).map(|r| r.start)
    }

    /// Number of nodes of this type in graph `g`, `None` if `g >= n_graphs`.
    pub fn count(&self, g: usize) -> Option<usize> {
        self.range(g).map(|r| r.len())
    }

    /// Graph index of every node (the segment ids for pooling), `i64` for
    /// torch.
    pub fn graph_of_node(&self) -> &[i64] {
        &self.graph_of_node
    }
}

/// Edges of one relation across a [`HeteroBatch`], in type-local indices of
/// the relation's source and destination types.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EdgeList {
    src: Vec<i64>,
    dst: Vec<i64>,
    offsets: Vec<usize>,
}

impl EdgeList {
    fn new() -> Self {
        Self {
            src: Vec::new(),
            dst: Vec::new(),
            offsets: vec![0],
        }
    }

    /// Source node of every edge (index into the source type's nodes).
    pub fn src(&self) -> &[i64] {
        &self.src
    }

    /// Destination node of every edge (index into the destination type's
    /// nodes).
    pub fn dst(&self) -> &[i64] {
        &self.dst
    }

    /// Number of edges.
    pub fn len(&self) -> usize {
        self.src.len()
    }

    /// Whether there is no edge.
    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
    }

    /// Prefix sums of the per-graph edge counts (length `n_graphs + 1`).
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// Edge position range of graph `g`, `None` if `g >= n_graphs`.
    pub fn range(&self, g: usize) -> Option<Range<usize>> {
        Some(*self.offsets.get(g)?..*self.offsets.get(g + 1)?)
    }

    /// `(src, dst)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.src.iter().copied().zip(self.dst.iter().copied())
    }

    /// The `[2, E]` edge index flattened row-major (all sources, then all
    /// destinations), PyG's `edge_index` layout.
    pub fn edge_index_flat(&self) -> Vec<i64> {
        let mut out = Vec::with_capacity(2 * self.len());
        out.extend_from_slice(&self.src);
        out.extend_from_slice(&self.dst);
        out
    }

    /// The edge index as an `int64` tensor on `device`.
    ///
    /// # Shapes
    ///
    /// `[2, E]`: row 0 sources, row 1 destinations.
    ///
    /// # Errors
    ///
    /// [`GraphError::Tch`] if libtorch fails.
    #[cfg(feature = "tch")]
    pub fn to_tch(&self, device: tch::Device) -> Result<tch::Tensor> {
        let e = self.len() as i64;
        Ok(tch::Tensor::f_from_slice(&self.edge_index_flat())?
            .f_view([2, e])?
            .f_to(device)?)
    }
}

/// Many [`SampleGraph`]s as one block-diagonal heterogeneous graph: the
/// input format of a GAT that processes a whole mini-batch at once.
///
/// * Per node type, a [`NodeBlock`]: flat ids with per-graph offsets, so
///   the type-local index of local node `l` of graph `g` is
///   `offset(g) + l`, and `graph_of_node` for segment pooling.
/// * Per item node its [`ItemRole`]. Within graph `g` the target is item
///   `offset(g)` and history position `p` is item `offset(g) + 1 + p`.
/// * Per relation an [`EdgeList`] in type-local indices (`int64`). Edges of
///   graph `g` come before those of graph `g + 1` and never connect nodes of
///   different graphs; the edge list of `r.reverse()` equals that of `r`
///   with `src` and `dst` swapped, position by position.
/// * `user_index[g]` / `target_index[g]`: the type-local index of graph
///   `g`'s user node / target item node (to read out the GAT's result as
///   the soft-prompt token).
///
/// A GAT layer for relation `r` gathers `h_src[src]` and `h_dst[dst]`,
/// computes one attention logit per edge, normalises the logits with a
/// softmax grouped by `dst` (scatter-max/scatter-sum over
/// `dst_kind` nodes) and scatter-adds the weighted messages into `dst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeteroBatch {
    n_graphs: usize,
    nodes: [NodeBlock; 3],
    item_roles: Vec<ItemRole>,
    edges: [EdgeList; 4],
    user_index: Vec<i64>,
    target_index: Vec<i64>,
}

impl HeteroBatch {
    /// Concatenates sample graphs, in order, into one batch.
    ///
    /// # Errors
    ///
    /// [`GraphError::EmptyBatch`] if `graphs` is empty.
    ///
    /// # Complexity
    ///
    /// `O(total nodes + total edges)`.
    pub fn from_graphs<'a, G>(graphs: G) -> Result<Self>
    where
        G: IntoIterator<Item = &'a SampleGraph>,
    {
        let mut nodes = [NodeBlock::new(), NodeBlock::new(), NodeBlock::new()];
        let mut edges = [
            EdgeList::new(),
            EdgeList::new(),
            EdgeList::new(),
            EdgeList::new(),
        ];
        let mut item_roles = Vec::new();
        let mut user_index = Vec::new();
        let mut target_index = Vec::new();
        let mut global: Vec<i64> = Vec::new();
        let mut n_graphs = 0;

        for (g, sample) in graphs.into_iter().enumerate() {
            n_graphs += 1;
            let graph = sample.graph();
            // Batch-wide type-local index of every node of this sample.
            global.clear();
            global.resize(graph.node_count(), 0);
            for idx in graph.node_indices() {
                let Some(node) = graph.node_weight(idx) else {
                    continue;
                };
                let block = &mut nodes[node.kind().index()];
                global[idx.index()] = block.len() as i64;
                block.push(node.id(), g);
                if let HeteroNode::Item { role, .. } = *node {
                    item_roles.push(role);
                }
            }
            user_index.push(global[sample.user_node().index()]);
            target_index.push(global[sample.target_node().index()]);
            for block in &mut nodes {
                block.close_graph();
            }
            for e in graph.raw_edges() {
                let list = &mut edges[e.weight.index()];
                list.src.push(global[e.source().index()]);
                list.dst.push(global[e.target().index()]);
            }
            for list in &mut edges {
                list.offsets.push(list.src.len());
            }
        }
        if n_graphs == 0 {
            return Err(GraphError::EmptyBatch);
        }
        Ok(Self {
            n_graphs,
            nodes,
            item_roles,
            edges,
            user_index,
            target_index,
        })
    }

    /// Number of graphs in the batch.
    pub fn n_graphs(&self) -> usize {
        self.n_graphs
    }

    /// The nodes of one type.
    pub fn nodes(&self, kind: NodeKind) -> &NodeBlock {
        &self.nodes[kind.index()]
    }

    /// The user nodes (one per graph).
    pub fn users(&self) -> &NodeBlock {
        self.nodes(NodeKind::User)
    }

    /// The item nodes.
    pub fn items(&self) -> &NodeBlock {
        self.nodes(NodeKind::Item)
    }

    /// The feature nodes.
    pub fn features(&self) -> &NodeBlock {
        self.nodes(NodeKind::Feature)
    }

    /// Role of every item node, by item-local index.
    pub fn item_roles(&self) -> &[ItemRole] {
        &self.item_roles
    }

    /// [`ItemRole::code`] of every item node (`0` target, `1 + position`
    /// history), for a role/position embedding.
    pub fn item_role_codes(&self) -> Vec<i64> {
        self.item_roles.iter().map(|r| r.code()).collect()
    }

    /// The edges of one relation.
    pub fn edges(&self, relation: Relation) -> &EdgeList {
        &self.edges[relation.index()]
    }

    /// Type-local index of each graph's user node.
    pub fn user_index(&self) -> &[i64] {
        &self.user_index
    }

    /// Item-local index of each graph's target item node.
    pub fn target_index(&self) -> &[i64] {
        &self.target_index
    }

    /// Item-local indices of graph `g`'s history nodes, oldest first;
    /// `None` if `g >= n_graphs`.
    pub fn history_index(&self, g: usize) -> Option<Range<usize>> {
        let r = self.items().range(g)?;
        Some(r.start + 1..r.end)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn feats(item: u32) -> Vec<u32> {
        // Item i has features {i % 4, 10 + i % 2} (and a repeated id).
        vec![item % 4, 10 + item % 2, item % 4]
    }

    #[test]
    fn single_graph_layout() {
        let opts = SampleGraphOptions::default();
        let g = SampleGraph::build(5, 9, &[1, 2, 1], feats, &opts);
        assert_eq!(g.user_id(), 5);
        assert_eq!(g.target_id(), 9);
        assert_eq!(g.history_ids(), vec![1, 2, 1]);
        // features: 9 -> {1, 11}, 1 -> {1, 11}, 2 -> {2, 10}
        assert_eq!(g.feature_ids(), vec![1, 2, 10, 11]);
        assert_eq!(g.node_count(NodeKind::Item), 4);
        assert_eq!(g.graph().node_count(), 1 + 4 + 4);
        assert_eq!(g.edge_count(Relation::UserItem), 4);
        assert_eq!(g.edge_count(Relation::ItemUser), 4);
        assert_eq!(g.edge_count(Relation::ItemFeature), 8);
        assert_eq!(g.edge_count(Relation::FeatureItem), 8);
        assert_eq!(
            g.node(g.history_nodes()[2]),
            Some(&HeteroNode::Item {
                id: 1,
                role: ItemRole::History { position: 2 }
            })
        );
        assert_eq!(g.local_index(g.user_node()), Some((NodeKind::User, 0)));
        assert_eq!(g.local_index(g.target_node()), Some((NodeKind::Item, 0)));
        assert_eq!(
            g.local_index(g.history_nodes()[1]),
            Some((NodeKind::Item, 2))
        );
        assert_eq!(
            g.local_index(g.feature_nodes()[3]),
            Some((NodeKind::Feature, 3))
        );
        assert_eq!(g.local_index(NodeIndex::new(9)), None);
        // Every edge connects the kinds its relation says.
        for e in g.graph().raw_edges() {
            let s = g.node(e.source()).unwrap().kind();
            let d = g.node(e.target()).unwrap().kind();
            assert_eq!((s, d), (e.weight.src_kind(), e.weight.dst_kind()));
        }
    }

    #[test]
    fn options() {
        let opts = SampleGraphOptions::default()
            .with_connect_target_to_user(false)
            .with_max_features_per_item(Some(1));
        let g = SampleGraph::build(0, 9, &[2], feats, &opts);
        assert_eq!(g.edge_count(Relation::UserItem), 1);
        assert_eq!(
            g.edges(Relation::UserItem).next(),
            Some((g.user_node(), g.history_nodes()[0]))
        );
        assert_eq!(g.edge_count(Relation::ItemFeature), 2);
        assert_eq!(g.feature_ids(), vec![1, 2]);
        let empty = SampleGraph::build(0, 3, &[], |_| Vec::new(), &opts);
        assert_eq!(empty.graph().node_count(), 2);
        assert_eq!(empty.graph().edge_count(), 0);
    }

    #[test]
    fn batch_of_three() {
        let opts = SampleGraphOptions::default();
        let graphs = vec![
            SampleGraph::build(0, 9, &[1, 2, 1], feats, &opts),
            SampleGraph::build(1, 4, &[], feats, &opts),
            SampleGraph::build(2, 3, &[5, 6], feats, &opts),
        ];
        let b = HeteroBatch::from_graphs(&graphs).unwrap();
        assert_eq!(b.n_graphs(), 3);
        assert_eq!(b.users().ids(), &[0, 1, 2]);
        assert_eq!(b.items().offsets(), &[0, 4, 5, 8]);
        assert_eq!(b.items().ids(), &[9, 1, 2, 1, 4, 3, 5, 6]);
        assert_eq!(b.items().graph_of_node(), &[0, 0, 0, 0, 1, 2, 2, 2]);
        assert_eq!(b.target_index(), &[0, 4, 5]);
        assert_eq!(b.user_index(), &[0, 1, 2]);
        assert_eq!(b.history_index(2), Some(6..8));
        assert_eq!(b.history_index(3), None);
        assert_eq!(b.item_role_codes(), vec![0, 1, 2, 3, 0, 0, 1, 2]);
        // features: g0 {1,2,10,11}; g1 item 4 -> {0,10}; g2 3->{3,11}, 5->{1,11}, 6->{2,10}
        assert_eq!(b.features().offsets(), &[0, 4, 6, 11]);
        assert_eq!(b.features().ids(), &[1, 2, 10, 11, 0, 10, 1, 2, 3, 10, 11]);
        for kind in NodeKind::ALL {
            let total: usize = graphs.iter().map(|g| g.node_count(kind)).sum();
            assert_eq!(b.nodes(kind).len(), total);
        }
        for rel in Relation::ALL {
            let list = b.edges(rel);
            let total: usize = graphs.iter().map(|g| g.edge_count(rel)).sum();
            assert_eq!(list.len(), total);
            let (sg, dg) = (
                b.nodes(rel.src_kind()).graph_of_node(),
                b.nodes(rel.dst_kind()).graph_of_node(),
            );
            for g in 0..3 {
                for k in list.range(g).unwrap() {
                    assert_eq!(sg[list.src()[k] as usize], g as i64);
                    assert_eq!(dg[list.dst()[k] as usize], g as i64);
                }
            }
            let rev = b.edges(rel.reverse());
            assert_eq!(rev.src(), list.dst());
            assert_eq!(rev.dst(), list.src());
            assert_eq!(rev.offsets(), list.offsets());
        }
        // The user of graph 2 links to items 5, 6, 7.
        let ui = b.edges(Relation::UserItem);
        let r = ui.range(2).unwrap();
        assert_eq!(&ui.src()[r.clone()], &[2, 2, 2]);
        assert_eq!(&ui.dst()[r], &[5, 6, 7]);
        assert_eq!(ui.edge_index_flat().len(), 2 * ui.len());
    }

    #[test]
    fn empty_batch_is_an_error() {
        let none: Vec<SampleGraph> = Vec::new();
        assert!(matches!(
            HeteroBatch::from_graphs(&none),
            Err(GraphError::EmptyBatch)
        ));
    }
}
