//! The interaction graph is built from the training split only.

use graft::data::synthetic::{planted_clusters, SyntheticConfig};
use graft::data::LeaveOneOut;
use graft::graph::BipartiteGraph;

#[test]
fn validation_and_test_interactions_are_not_edges() {
    let syn = planted_clusters(&SyntheticConfig {
        users: 150,
        items: 90,
        seed: 3,
        ..Default::default()
    })
    .expect("synthetic");
    let ds = &syn.dataset;
    let loo = LeaveOneOut::new(ds);
    let g =
        BipartiteGraph::from_edges(ds.n_users(), ds.n_items(), loo.train_edges()).expect("graph");
    let adj = g.adjacency();
    let edge = |u: u32, i: u32| {
        let (row, col) = (g.user_node(u).expect("user"), g.item_node(i).expect("item"));
        adj.get(row, col).is_some() && adj.get(col, row).is_some()
    };
    for u in 0..ds.n_users() as u32 {
        // synthetic users never repeat an item, so held-out items must be absent
        for held in [loo.valid[u as usize], loo.test[u as usize]]
            .into_iter()
            .flatten()
        {
            assert!(!edge(u, held), "user {u}: held-out item {held} is an edge");
        }
        for &i in &loo.train[u as usize] {
            assert!(edge(u, i), "user {u}: train item {i} is missing");
        }
    }
    assert_eq!(g.n_edges(), loo.sizes().train);
    assert_eq!(g.n_edges() + 2 * ds.n_users(), ds.interactions.len());
}

#[test]
fn propagation_over_the_train_graph_separates_planted_clusters() {
    // Sanity that the normalised graph carries the planted structure: after
    // two rounds of propagation from one-hot user features, a user's mass
    // lies mostly on users of its own cluster.
    let syn = planted_clusters(&SyntheticConfig {
        users: 120,
        items: 80,
        seed: 5,
        ..Default::default()
    })
    .expect("synthetic");
    let ds = &syn.dataset;
    let loo = LeaveOneOut::new(ds);
    let g =
        BipartiteGraph::from_edges(ds.n_users(), ds.n_items(), loo.train_edges()).expect("graph");
    let a = g.normalized().expect("normalised");
    let n = g.n_nodes();
    let mut own = 0.0;
    let mut total = 0.0;
    for u in 0..ds.n_users() {
        let mut x = vec![0.0f32; n];
        x[u] = 1.0;
        for _ in 0..2 {
            let mut y = vec![0.0f32; n];
            for (r, row) in a.outer_iterator().enumerate() {
                y[r] = row.iter().map(|(c, v)| v * x[c]).sum();
            }
            x = y;
        }
        for (v, mass) in x.iter().enumerate().take(ds.n_users()) {
            total += mass;
            if syn.user_cluster[v] == syn.user_cluster[u] {
                own += mass;
            }
        }
    }
    let share = own / total;
    assert!(share > 0.7, "own-cluster share after two hops {share}");
}
