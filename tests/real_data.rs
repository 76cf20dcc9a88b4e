//! Loaders on the real datasets: exact published counts. Skips (with a
//! message) when `../shared/data` is absent, e.g. on a fresh clone elsewhere.

mod common;

use std::collections::HashSet;

use graft::data::formats::movielens;
use graft::data::LoadReport;
use graft::data::{load, CtrConfig, CtrSplit, Format, LeaveOneOut, LoadOptions, NegativeSampler};
use graft::graph::BipartiteGraph;

fn check_amazon(sub: &str, users: usize, items: usize, interactions: usize) {
    let Some(dir) = common::shared_data(sub) else {
        return;
    };
    let ds = load(Format::AmazonP5, &dir, &LoadOptions::default()).expect("load");
    assert_eq!(
        (ds.n_users(), ds.n_items(), ds.interactions.len()),
        (users, items, interactions)
    );
    assert!(!ds.has_ratings() && !ds.has_timestamps());
    // P5 ids are contiguous 1..=n, so dense = raw - 1, and every id has its Amazon id.
    assert_eq!(ds.users.raw(0), Some("1"));
    assert_eq!(
        ds.items.raw(items as u32 - 1),
        Some(items.to_string().as_str())
    );
    assert!(ds.user_info.iter().all(|u| u.external_id.is_some()));
    assert!(ds.item_info.iter().all(|i| i.external_id.is_some()));
    assert_eq!(
        ds.report.side_info_unmatched + ds.report.side_info_missing,
        0
    );
    let stats = ds.stats();
    assert!(stats.min_per_user >= 5, "5-core");

    let loo = LeaveOneOut::new(&ds);
    assert_eq!(loo.sizes().test, users);
    assert_eq!(loo.sizes().valid, users);
    assert_eq!(loo.sizes().train, interactions - 2 * users);
    let graph =
        BipartiteGraph::from_edges(ds.n_users(), ds.n_items(), loo.train_edges()).expect("graph");
    let distinct: HashSet<(u32, u32)> = loo.train_edges().collect();
    assert_eq!(graph.n_edges(), distinct.len());
    let negs = NegativeSampler::new(ds.n_items(), 2024)
        .sample_split(&loo, 99)
        .expect("negatives");
    for (u, n) in negs.iter().enumerate().step_by(997) {
        let all: HashSet<u32> = loo.all_items(u as u32).into_iter().collect();
        assert_eq!(n.len(), 99);
        assert!(n.iter().all(|i| !all.contains(i)));
    }
}

#[test]
fn amazon_beauty_counts() {
    check_amazon("amazon/beauty", 22_363, 12_101, 198_502);
}

#[test]
fn amazon_sports_counts() {
    check_amazon("amazon/sports", 35_598, 18_357, 296_337);
}

#[test]
fn movielens_100k_counts_and_side_info() {
    let Some(dir) = common::shared_data("ml-100k") else {
        return;
    };
    let ds = load(Format::Movielens100k, &dir, &LoadOptions::default()).expect("load");
    assert_eq!(
        (ds.n_users(), ds.n_items(), ds.interactions.len()),
        (943, 1_682, 100_000)
    );
    assert!(ds.has_ratings() && ds.has_timestamps());
    assert_eq!(ds.item_info[0].title.as_deref(), Some("Toy Story (1995)"));
    assert_eq!(
        ds.item_info[0].genres,
        ["Animation", "Children's", "Comedy"]
    );
    assert_eq!(ds.item_info[0].year, Some(1995));
    assert_eq!(ds.user_info[0].age, Some(24));
    assert_eq!(ds.user_info[0].occupation.as_deref(), Some("technician"));
    assert_eq!(ds.report.side_info_missing, 0);

    // ReLLa/ELCoRec CTR protocol: every user has >= 20 ratings, so each loses exactly 5 samples.
    let ctr = CtrSplit::new(&ds, &CtrConfig::default()).expect("ctr");
    let n = 100_000 - 943 * 5;
    assert_eq!(ctr.sizes().train + ctr.sizes().valid + ctr.sizes().test, n);
    assert_eq!(ctr.sizes().train, n * 8 / 10);
    let last_train = ctr.train.last().and_then(|s| s.timestamp);
    assert!(ctr.test.iter().all(|s| s.timestamp >= last_train));
}

#[test]
fn movielens_100k_recbole_matches_the_original_files() {
    let (Some(orig), Some(rb)) = (common::shared_data("ml-100k"), common::recbole_ml100k()) else {
        return;
    };
    let a = load(Format::Movielens100k, &orig, &LoadOptions::default()).expect("original");
    let b = load(Format::Recbole, &rb, &LoadOptions::default()).expect("recbole");
    assert_eq!(
        (b.n_users(), b.n_items(), b.interactions.len()),
        (943, 1_682, 100_000)
    );
    let raw = |d: &graft::data::Dataset| -> Vec<(String, String, Option<f32>, Option<i64>)> {
        d.interactions
            .iter()
            .map(|x| {
                (
                    d.users.raw(x.user).unwrap_or_default().to_owned(),
                    d.items.raw(x.item).unwrap_or_default().to_owned(),
                    x.rating,
                    x.timestamp,
                )
            })
            .collect()
    };
    assert_eq!(raw(&a), raw(&b));
    assert_eq!(a.user_info[0].location, b.user_info[0].location);
}

#[test]
fn movielens_1m_metadata_counts() {
    // ratings.dat is not available here; the metadata parsers run on the real files.
    let Some(dir) = common::shared_data("ml-1m") else {
        return;
    };
    let mut report = LoadReport::default();
    let movies = movielens::parse_1m_movies(
        &dir.join("movies.dat"),
        &LoadOptions::default(),
        &mut report,
    )
    .expect("movies");
    let users =
        movielens::parse_1m_users(&dir.join("users.dat"), &LoadOptions::default(), &mut report)
            .expect("users");
    assert_eq!(movies.len(), 3_883);
    assert_eq!(users.len(), 6_040);
    assert_eq!(movies[0].1.title.as_deref(), Some("Toy Story (1995)"));
    assert_eq!(movies[0].1.year, Some(1995));
    assert_eq!(users[0].1.occupation.as_deref(), Some("K-12 student"));
    // latin-1 titles decode (e.g. "Misérables")
    assert!(movies
        .iter()
        .any(|(_, m)| m.title.as_deref().is_some_and(|t| t.contains('é'))));
}
