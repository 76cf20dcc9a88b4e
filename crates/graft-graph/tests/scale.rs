//! The builder handles Amazon-Sports-sized graphs (54k nodes, ~225k edges).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Instant;

use graft_graph::BipartiteGraph;

#[test]
fn sports_sized_graph() {
    let (nu, ni, ne) = (35_598usize, 18_357usize, 225_000usize);
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let edges: Vec<(u32, u32)> = (0..ne)
        .map(|_| ((next() % nu as u64) as u32, (next() % ni as u64) as u32))
        .collect();
    let t = Instant::now();
    let g = BipartiteGraph::from_edges(nu, ni, edges).unwrap();
    let built = t.elapsed();
    let a = g.normalized().unwrap();
    let normed = t.elapsed() - built;
    let coo = g.normalized_coo().unwrap();
    println!(
        "build {built:?}, normalise {normed:?}, total with COO {:?}; users: {}; items: {}",
        t.elapsed(),
        g.user_degree_stats(),
        g.item_degree_stats()
    );
    assert_eq!(a.shape(), (nu + ni, nu + ni));
    assert_eq!(a.nnz(), 2 * g.n_edges());
    assert_eq!(g.degrees().iter().sum::<usize>(), 2 * g.n_edges());
    assert!(a.data().iter().all(|v| v.is_finite()));
    assert!(coo.is_sorted_unique());
}
