//! `WithIds` and `top_k`: raw IDs in and out, exclusion, ties, errors.

#![allow(clippy::unwrap_used, clippy::panic)]

use graft_data::IdMap;
use graft_recommend::{top_k, RecommendError, Recommender, ScoreAll, WithIds};

/// Scores item i by `prefs[i]`, plus 10 for the user's own favourite
/// (item == user) when the user is known; refuses unknown users when
/// `needs_user`.
struct Toy {
    prefs: Vec<f32>,
    needs_user: bool,
}

impl ScoreAll for Toy {
    fn n_items(&self) -> usize {
        self.prefs.len()
    }

    fn score_all(&self, user: Option<u32>, _history: &[u32]) -> graft_recommend::Result<Vec<f32>> {
        match (user, self.needs_user) {
            (None, true) => Err(RecommendError::UnknownUser(String::new())),
            _ => Ok(self
                .prefs
                .iter()
                .enumerate()
                .map(|(i, &p)| p + if user == Some(i as u32) { 10.0 } else { 0.0 })
                .collect()),
        }
    }
}

fn maps() -> (IdMap, IdMap) {
    (
        IdMap::from_raw(vec!["u0".into(), "u1".into()]),
        IdMap::from_raw(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
    )
}

fn rec(needs_user: bool) -> WithIds<Toy> {
    let (users, items) = maps();
    let toy = Toy {
        prefs: vec![0.4, 0.3, 0.2, 0.1],
        needs_user,
    };
    WithIds::new(toy, users, items).unwrap()
}

fn items(r: &[graft_recommend::Recommendation]) -> Vec<&str> {
    r.iter().map(|x| x.item.as_str()).collect()
}

#[test]
fn raw_ids_in_and_out_with_and_without_seen_items() {
    let r = rec(true);
    // u1's favourite is b (dense 1).
    assert_eq!(items(&r.recommend("u1", &[], 2, true).unwrap()), ["b", "a"]);
    assert_eq!(
        items(&r.recommend("u1", &["b"], 2, true).unwrap()),
        ["a", "c"]
    );
    assert_eq!(
        items(&r.recommend("u1", &["b"], 2, false).unwrap()),
        ["b", "a"]
    );
    // k beyond the catalogue gives every unseen item once.
    assert_eq!(
        items(&r.recommend("u0", &["a", "a"], 10, true).unwrap()),
        ["b", "c", "d"]
    );
    assert!(r.recommend("u0", &[], 0, true).unwrap().is_empty());
    let top = r.recommend("u0", &[], 1, true).unwrap();
    assert!((top[0].score - 10.4).abs() < 1e-5);
}

#[test]
fn unknown_items_and_users_are_named() {
    let r = rec(true);
    match r.recommend("u0", &["zzz"], 2, true) {
        Err(RecommendError::UnknownItem(i)) => assert_eq!(i, "zzz"),
        other => panic!("{other:?}"),
    }
    match r.recommend("nobody", &["a"], 2, true) {
        Err(e @ RecommendError::UnknownUser(_)) => assert!(e.to_string().contains("nobody")),
        other => panic!("{other:?}"),
    }
    // A model that does not need the user recommends for a new one.
    let open = rec(false);
    assert_eq!(
        items(&open.recommend("nobody", &["a"], 2, true).unwrap()),
        ["b", "c"]
    );
}

#[test]
fn a_model_of_another_catalogue_is_refused() {
    let (users, _) = maps();
    let toy = Toy {
        prefs: vec![1.0; 3],
        needs_user: false,
    };
    let items = IdMap::from_raw(vec!["a".into(), "b".into()]);
    assert!(matches!(
        WithIds::new(toy, users, items),
        Err(RecommendError::ItemCount {
            model: 3,
            dataset: 2
        })
    ));
}

#[test]
fn top_k_orders_by_score_then_id_and_skips_nan_and_excluded() {
    let s = [0.5, f32::NAN, 0.9, 0.5, 0.1];
    assert_eq!(top_k(&s, 3, &[]), vec![(2, 0.9), (0, 0.5), (3, 0.5)]);
    assert_eq!(top_k(&s, 2, &[2, 0]), vec![(3, 0.5), (4, 0.1)]);
    assert_eq!(
        top_k(&s, 10, &[99]).len(),
        4,
        "NaN dropped, unknown exclusions ignored"
    );
    // select_nth must agree with a full sort on every k.
    let many: Vec<f32> = (0..200).map(|i| ((i * 37) % 101) as f32).collect();
    let full = top_k(&many, 200, &[]);
    for k in [1, 7, 50, 199] {
        assert_eq!(top_k(&many, k, &[]), full[..k].to_vec(), "k = {k}");
    }
}
