//! ELCoRec side information on the format fixtures: GAT codes, item texts
//! and prompt profiles.

#![allow(clippy::unwrap_used)]

mod common;

use graft_data::features::{item_text, item_title, ml1m_age_group, user_profile, CtrFeatures};
use graft_data::{Dataset, LoadOptions};

fn load(fx: &common::Fixture) -> Dataset {
    let (_dir, ds) = fx.load(&LoadOptions::default());
    ds.unwrap()
}

fn user(ds: &Dataset, raw: &str) -> u32 {
    ds.users.get(raw).unwrap()
}

fn item(ds: &Dataset, raw: &str) -> u32 {
    ds.items.get(raw).unwrap()
}

#[test]
fn movielens_100k_codes_texts_and_profiles() {
    let ds = load(&common::ml100k());
    let f = CtrFeatures::build(&ds);
    assert_eq!(f.user_fields, ["gender", "age", "occupation", "zip"]);
    assert_eq!(f.item_feature, "genre");
    assert_eq!(f.user_codes.len(), ds.n_users());
    assert_eq!(f.item_codes.len(), ds.n_items());
    // Codes decode back to the user's own fields.
    let u1 = user(&ds, "1");
    let codes = &f.user_codes[u1 as usize];
    let decoded: Vec<&str> = codes
        .iter()
        .zip(&f.user_vocabs)
        .map(|(&c, v)| v.name(c).unwrap())
        .collect();
    assert_eq!(decoded, ["M", "24", "technician", "85711"]);
    // The feature node is the first genre (in u.genre's order).
    let toy = item(&ds, "1");
    assert_eq!(
        f.item_vocab.name(f.item_codes[toy as usize]),
        Some("Animation")
    );
    assert_eq!(
        item_text(&ds, toy),
        "movie: Toy Story (1995), genre: Animation, Children's, Comedy"
    );
    assert_eq!(item_title(&ds, toy), "Toy Story (1995)");
    let p = user_profile(&ds, u1);
    assert_eq!(p.gender.as_deref(), Some("male"));
    assert_eq!(p.age.as_deref(), Some("24"));
    assert_eq!(p.occupation.as_deref(), Some("technician"));
    assert_eq!(p.location, None, "zip codes are not shown in prompts");
    // Every vocabulary code is in range.
    for (u, codes) in f.user_codes.iter().enumerate() {
        for (c, size) in codes.iter().zip(f.user_vocab_sizes()) {
            assert!((*c as usize) < size, "user {u}");
        }
    }
    assert!(f
        .item_codes
        .iter()
        .all(|&c| (c as usize) < f.item_vocab.size()));
}

#[test]
fn movielens_1m_age_groups() {
    let ds = load(&common::ml1m());
    // users.dat: "1::F::1::10::48067" -> under 18, K-12 student.
    let p = user_profile(&ds, user(&ds, "1"));
    assert_eq!(p.gender.as_deref(), Some("female"));
    assert_eq!(p.age.as_deref(), Some("under 18"));
    assert_eq!(p.occupation.as_deref(), Some("K-12 student"));
    let p = user_profile(&ds, user(&ds, "3"));
    assert_eq!(p.age.as_deref(), Some("25-34"));
    assert_eq!(ml1m_age_group(56), Some("56+"));
    assert_eq!(ml1m_age_group(2), None);
}

#[test]
fn bookcrossing_authors_and_locations() {
    let ds = load(&common::bookcrossing_clean());
    let f = CtrFeatures::build(&ds);
    assert_eq!(f.user_fields, ["location", "age"]);
    assert_eq!(f.item_feature, "author");
    let b = item(&ds, "034545104X");
    assert_eq!(
        f.item_vocab.name(f.item_codes[b as usize]),
        Some("M. J. Rose")
    );
    assert_eq!(
        item_text(&ds, b),
        "book: Flesh Tones: A Novel, author: M. J. Rose"
    );
    assert_eq!(item_title(&ds, b), "Flesh Tones: A Novel by M. J. Rose");
    let u = user(&ds, "276726");
    let p = user_profile(&ds, u);
    assert_eq!(p.location, ds.user_info[u as usize].location);
    assert!(p.location.is_some());
}

#[test]
fn formats_without_side_information_have_no_fields() {
    let ds = load(&common::amazon());
    let f = CtrFeatures::build(&ds);
    assert!(f.user_fields.is_empty() && f.user_codes.iter().all(Vec::is_empty));
    assert_eq!(f.item_feature, "none");
    assert!(f.item_codes.iter().all(|&c| c == 0));
    assert!(item_text(&ds, 0).starts_with("item: "));
    assert_eq!(user_profile(&ds, 0), Default::default());
}

#[test]
fn other_sources_use_the_fields_they_have() {
    // Synthetic data (like RecBole atomic files) names no format with
    // known fields: the present ones are used, in MovieLens order.
    let syn = graft_data::synthetic::planted_clusters(&graft_data::synthetic::SyntheticConfig {
        users: 6,
        items: 12,
        clusters: 2,
        interactions_per_user: 4,
        in_cluster: 0.9,
        seed: 1,
    })
    .unwrap();
    let f = CtrFeatures::build(&syn.dataset);
    assert_eq!(f.user_fields, ["gender", "age", "occupation", "location"]);
    assert_eq!(f.item_feature, "genre");
    assert!(f.item_codes.iter().all(|&c| c != 0));
    assert!(f
        .user_codes
        .iter()
        .all(|c| c.len() == 4 && c.iter().all(|&x| x != 0)));
}

#[test]
fn vocabularies_survive_serde() {
    let ds = load(&common::ml100k());
    let f = CtrFeatures::build(&ds);
    let mut back: CtrFeatures = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
    assert_eq!(back, f);
    let v = &mut back.user_vocabs[2];
    let writer = v.names.iter().position(|n| n == "writer").unwrap() as u32 + 1;
    assert_eq!(
        v.intern(Some("writer")),
        writer,
        "no duplicate after deserializing"
    );
    assert_eq!(v.intern(Some("astronaut")), v.size() as u32 - 1);
}
