//! The crate's error type.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The three node types of the graphs in this crate.
///
/// The bipartite graph only has [`NodeKind::User`] and [`NodeKind::Item`]
/// nodes; the heterogeneous per-sample graph also has [`NodeKind::Feature`]
/// nodes (a genre, a brand, an author, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NodeKind {
    /// A user.
    User,
    /// An item (product, book, movie, ...).
    Item,
    /// An item attribute such as a category or an author.
    Feature,
}

impl NodeKind {
    /// All node kinds, in the order used for per-type arrays.
    pub const ALL: [NodeKind; 3] = [NodeKind::User, NodeKind::Item, NodeKind::Feature];

    /// Lower-case name (`"user"`, `"item"`, `"feature"`), as DGL/PyG node
    /// type names.
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::User => "user",
            NodeKind::Item => "item",
            NodeKind::Feature => "feature",
        }
    }

    /// Position of this kind in [`NodeKind::ALL`].
    pub fn index(self) -> usize {
        match self {
            NodeKind::User => 0,
            NodeKind::Item => 1,
            NodeKind::Feature => 2,
        }
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong in `graft-graph`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// An input edge names a user or an item outside the declared range.
    #[error("edge #{edge} (user {user}, item {item}): {kind} id {id} out of range 0..{n}")]
    EdgeOutOfRange {
        /// Position of the offending edge in the input sequence (0-based).
        edge: usize,
        /// User id of the edge.
        user: u32,
        /// Item id of the edge.
        item: u32,
        /// Which endpoint is out of range.
        kind: NodeKind,
        /// The out-of-range id.
        id: u32,
        /// Number of nodes of that kind.
        n: usize,
    },
    /// A node id outside `0..n` was passed to an accessor.
    #[error("{kind} id {id} out of range 0..{n}")]
    NodeOutOfRange {
        /// Node kind of the id.
        kind: NodeKind,
        /// The out-of-range id.
        id: u64,
        /// Number of nodes of that kind.
        n: usize,
    },
    /// A graph has more nodes than the index types can address.
    #[error("graph too large: {what} = {got} exceeds the maximum {max}")]
    TooLarge {
        /// What overflowed (e.g. `"n_users + n_items"`).
        what: &'static str,
        /// The requested size.
        got: u128,
        /// The largest supported size.
        max: u128,
    },
    /// A batch was requested from zero graphs.
    #[error("cannot batch zero graphs")]
    EmptyBatch,
    /// The parallel arrays of a [`Coo`](crate::Coo) have different lengths.
    #[error("COO arrays differ in length: rows {rows}, cols {cols}, values {values}")]
    CooLength {
        /// Length of `rows`.
        rows: usize,
        /// Length of `cols`.
        cols: usize,
        /// Length of `values`.
        values: usize,
    },
    /// A [`Coo`](crate::Coo) entry lies outside the `n x n` matrix.
    #[error("COO entry #{position} at ({row}, {col}) outside the {n}x{n} matrix")]
    CooIndexOutOfRange {
        /// Position of the entry in the arrays.
        position: usize,
        /// Its row index.
        row: i64,
        /// Its column index.
        col: i64,
        /// Matrix dimension.
        n: usize,
    },
    /// A square matrix was expected.
    #[error("expected a square matrix, got {rows}x{cols}")]
    NotSquare {
        /// Number of rows.
        rows: usize,
        /// Number of columns.
        cols: usize,
    },
    /// sprs rejected a compressed structure (an internal invariant broke).
    #[error("invalid sparse structure: {reason}")]
    SparseStructure {
        /// sprs' description of the problem.
        reason: String,
    },
    /// An error raised by libtorch.
    #[cfg(feature = "tch")]
    #[error(transparent)]
    Tch(#[from] tch::TchError),
}

/// `Result` with [`GraphError`] as the error type.
pub type Result<T, E = GraphError> = std::result::Result<T, E>;
