//! Property tests of the per-sample heterogeneous graphs and their batching.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;

use graft_graph::{
    HeteroBatch, HeteroNode, ItemRole, NodeKind, Relation, SampleGraph, SampleGraphOptions,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Regressions go next to this file (`hetero_props.proptest-regressions`).
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

const N_ITEMS: u32 = 20;

#[derive(Debug, Clone)]
struct Sample {
    user: u32,
    target: u32,
    history: Vec<u32>,
}

fn sample() -> impl Strategy<Value = Sample> {
    (
        0u32..50,
        0..N_ITEMS,
        prop::collection::vec(0..N_ITEMS, 0..6),
    )
        .prop_map(|(user, target, history)| Sample {
            user,
            target,
            history,
        })
}

/// Feature table: item -> feature ids (may repeat within an item).
fn feature_table() -> impl Strategy<Value = Vec<Vec<u32>>> {
    prop::collection::vec(prop::collection::vec(0u32..8, 0..4), N_ITEMS as usize)
}

fn distinct(v: &[u32]) -> BTreeSet<u32> {
    v.iter().copied().collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sample_graph_structure(
        s in sample(),
        table in feature_table(),
        connect in any::<bool>(),
    ) {
        let opts = SampleGraphOptions::default().with_connect_target_to_user(connect);
        let g = SampleGraph::build(s.user, s.target, &s.history, |i| table[i as usize].clone(), &opts);
        let k = s.history.len();
        prop_assert_eq!(g.user_id(), s.user);
        prop_assert_eq!(g.target_id(), s.target);
        prop_assert_eq!(g.history_ids(), s.history.clone());
        let items: Vec<u32> = std::iter::once(s.target).chain(s.history.iter().copied()).collect();
        let all_feats: BTreeSet<u32> = items.iter().flat_map(|&i| table[i as usize].clone()).collect();
        prop_assert_eq!(g.feature_ids(), all_feats.into_iter().collect::<Vec<_>>());
        prop_assert_eq!(g.node_count(NodeKind::Item), 1 + k);
        prop_assert_eq!(g.edge_count(Relation::UserItem), k + usize::from(connect));
        prop_assert_eq!(g.edge_count(Relation::ItemUser), k + usize::from(connect));
        let links: usize = items.iter().map(|&i| distinct(&table[i as usize]).len()).sum();
        prop_assert_eq!(g.edge_count(Relation::ItemFeature), links);
        prop_assert_eq!(g.edge_count(Relation::FeatureItem), links);
        for (item, feat) in g.edges(Relation::ItemFeature) {
            let i = g.node(item).unwrap().id();
            let f = g.node(feat).unwrap().id();
            prop_assert!(table[i as usize].contains(&f));
        }
        for (pos, &n) in g.history_nodes().iter().enumerate() {
            prop_assert_eq!(
                g.node(n),
                Some(&HeteroNode::Item { id: s.history[pos], role: ItemRole::History { position: pos } })
            );
        }
        for e in g.graph().raw_edges() {
            let src = g.node(e.source()).unwrap().kind();
            let dst = g.node(e.target()).unwrap().kind();
            prop_assert_eq!((src, dst), (e.weight.src_kind(), e.weight.dst_kind()));
        }
    }

    #[test]
    fn batch_is_block_diagonal(
        samples in prop::collection::vec(sample(), 1..6),
        table in feature_table(),
        connect in any::<bool>(),
    ) {
        let opts = SampleGraphOptions::default().with_connect_target_to_user(connect);
        let graphs: Vec<SampleGraph> = samples
            .iter()
            .map(|s| SampleGraph::build(s.user, s.target, &s.history, |i| table[i as usize].clone(), &opts))
            .collect();
        let b = HeteroBatch::from_graphs(&graphs).unwrap();
        let n = graphs.len();
        prop_assert_eq!(b.n_graphs(), n);

        for kind in NodeKind::ALL {
            let block = b.nodes(kind);
            prop_assert_eq!(block.offsets().len(), n + 1);
            let mut acc = 0;
            for (g, graph) in graphs.iter().enumerate() {
                prop_assert_eq!(block.offset(g), Some(acc));
                prop_assert_eq!(block.count(g), Some(graph.node_count(kind)));
                for l in 0..graph.node_count(kind) {
                    prop_assert_eq!(block.graph_of_node()[acc + l], g as i64);
                }
                acc += graph.node_count(kind);
            }
            prop_assert_eq!(block.len(), acc);
            prop_assert_eq!(block.graph_of_node().len(), acc);
            prop_assert_eq!(block.range(n), None);
        }
        prop_assert_eq!(b.item_roles().len(), b.items().len());

        for (g, (s, graph)) in samples.iter().zip(&graphs).enumerate() {
            let u = b.user_index()[g] as usize;
            let t = b.target_index()[g] as usize;
            prop_assert_eq!(b.users().ids()[u], s.user);
            prop_assert_eq!(b.items().ids()[t], s.target);
            prop_assert_eq!(b.item_roles()[t], ItemRole::Target);
            let h = b.history_index(g).unwrap();
            prop_assert_eq!(&b.items().ids()[h.clone()], &s.history[..]);
            for (p, k) in h.enumerate() {
                prop_assert_eq!(b.item_roles()[k], ItemRole::History { position: p });
            }
            let feats = b.features().range(g).unwrap();
            prop_assert_eq!(b.features().ids()[feats].to_vec(), graph.feature_ids());
        }

        for rel in Relation::ALL {
            let list = b.edges(rel);
            prop_assert_eq!(list.src().len(), list.dst().len());
            let total: usize = graphs.iter().map(|g| g.edge_count(rel)).sum();
            prop_assert_eq!(list.len(), total);
            let src_block = b.nodes(rel.src_kind());
            let dst_block = b.nodes(rel.dst_kind());
            for (g, graph) in graphs.iter().enumerate() {
                let r = list.range(g).unwrap();
                prop_assert_eq!(r.len(), graph.edge_count(rel));
                // Edges of graph g stay inside its blocks...
                let (sr, dr) = (src_block.range(g).unwrap(), dst_block.range(g).unwrap());
                for k in r.clone() {
                    prop_assert!(sr.contains(&(list.src()[k] as usize)));
                    prop_assert!(dr.contains(&(list.dst()[k] as usize)));
                }
                // ...and are the sample's edges, shifted by the offsets.
                let local: Vec<(i64, i64)> = graph
                    .edges(rel)
                    .map(|(s, d)| {
                        let (_, ls) = graph.local_index(s).unwrap();
                        let (_, ld) = graph.local_index(d).unwrap();
                        ((sr.start + ls) as i64, (dr.start + ld) as i64)
                    })
                    .collect();
                let batched: Vec<(i64, i64)> = list.iter().skip(r.start).take(r.len()).collect();
                prop_assert_eq!(local, batched);
            }
            let rev = b.edges(rel.reverse());
            prop_assert_eq!(rev.src(), list.dst());
            prop_assert_eq!(rev.dst(), list.src());
            prop_assert_eq!(rev.offsets(), list.offsets());
        }
    }
}
