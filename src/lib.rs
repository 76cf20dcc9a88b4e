//! graft: graph-aware LLM recommendation (umbrella crate).
pub use graft_data as data;
pub use graft_graph as graph;
pub use graft_metrics as metrics;
