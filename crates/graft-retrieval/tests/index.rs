//! `CosineIndex`: selection against a brute-force full sort, batch vs
//! single, errors, and save/load (round trip, truncation, corruption).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::cmp::Ordering;

use approx::assert_abs_diff_eq;
use graft_retrieval::{CosineIndex, Hit, RetrievalError};
use ndarray::{array, Array1, Array2};
use proptest::prelude::*;

/// Every score, fully sorted by (score desc, index asc), restricted to `rows`.
fn brute_force(index: &CosineIndex, q: &Array1<f32>, rows: &[usize], k: usize) -> Vec<Hit> {
    let scores = index.scores(q.view()).unwrap();
    let mut rows = rows.to_vec();
    rows.sort_unstable();
    rows.dedup();
    let mut hits: Vec<Hit> = rows
        .into_iter()
        .map(|index| Hit {
            index,
            score: scores[index],
        })
        .collect();
    hits.sort_by(|a, b| match b.score.partial_cmp(&a.score).unwrap() {
        Ordering::Equal => a.index.cmp(&b.index),
        o => o,
    });
    hits.truncate(k);
    hits
}

/// Small integer entries so that exact ties (duplicate directions) are common;
/// an all-zero vector gets a 1 in its first entry.
fn vectors(n: std::ops::Range<usize>, d: usize) -> impl Strategy<Value = Array2<f32>> {
    n.prop_flat_map(move |n| {
        proptest::collection::vec(-2i8..=2, n * d).prop_map(move |v| {
            let mut a = Array2::from_shape_fn((n, d), |(i, j)| f32::from(v[i * d + j]));
            for mut row in a.rows_mut() {
                if row.iter().all(|&x| x == 0.0) {
                    row[0] = 1.0;
                }
            }
            a
        })
    })
}

fn case() -> impl Strategy<Value = (Array2<f32>, Array2<f32>, usize)> {
    (1usize..6).prop_flat_map(|d| (vectors(1..40, d), vectors(1..20, d), 0usize..45))
}

proptest! {
    #[test]
    fn top_k_matches_brute_force((items, queries, k) in case()) {
        let index = CosineIndex::new(items.view()).unwrap();
        let all: Vec<usize> = (0..index.len()).collect();
        for q in queries.rows() {
            let q = q.to_owned();
            prop_assert_eq!(index.top_k(q.view(), k).unwrap(), brute_force(&index, &q, &all, k));
        }
    }

    #[test]
    fn top_k_among_and_excluding_match_brute_force(
        (items, queries, k) in case(),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
    ) {
        let index = CosineIndex::new(items.view()).unwrap();
        let n = index.len();
        let subset: Vec<usize> = picks.iter().map(|p| p.index(n)).collect();
        let rest: Vec<usize> = (0..n).filter(|i| !subset.contains(i)).collect();
        for q in queries.rows() {
            let q = q.to_owned();
            prop_assert_eq!(
                index.top_k_among(q.view(), &subset, k).unwrap(),
                brute_force(&index, &q, &subset, k)
            );
            prop_assert_eq!(
                index.top_k_excluding(q.view(), k, &subset).unwrap(),
                brute_force(&index, &q, &rest, k)
            );
        }
    }

    #[test]
    fn batch_equals_single((items, queries, k) in case()) {
        let index = CosineIndex::new(items.view()).unwrap();
        let batch = index.top_k_batch(queries.view(), k).unwrap();
        prop_assert_eq!(batch.len(), queries.nrows());
        for (q, hits) in queries.rows().into_iter().zip(&batch) {
            prop_assert_eq!(&index.top_k(q, k).unwrap(), hits);
        }
    }
}

#[test]
fn scores_are_cosines() {
    let items = array![
        [3.0f32, 4.0, 0.0],
        [1e-30, 0.0, 0.0],
        [1e30, -1e30, 2e30],
        [0.0, 0.0, -1.0]
    ];
    let q = array![1.0f32, 2.0, -2.0];
    let index = CosineIndex::new(items.view()).unwrap();
    let scores = index.scores(q.view()).unwrap();
    for (row, s) in items.rows().into_iter().zip(scores) {
        let (mut dot, mut a, mut b) = (0.0f64, 0.0f64, 0.0f64);
        for (&x, &y) in row.iter().zip(&q) {
            let (x, y) = (f64::from(x), f64::from(y));
            dot += x * y;
            a += x * x;
            b += y * y;
        }
        assert_abs_diff_eq!(f64::from(s), dot / (a.sqrt() * b.sqrt()), epsilon = 1e-6);
    }
}

#[test]
fn k_bounds_and_ties() {
    let items = array![[1.0f32, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 0.0]];
    let index = CosineIndex::new(items.view()).unwrap();
    let q = array![1.0f32, 0.0];
    assert!(index.top_k(q.view(), 0).unwrap().is_empty());
    let all = index.top_k(q.view(), 100).unwrap();
    let order: Vec<usize> = all.iter().map(|h| h.index).collect();
    assert_eq!(order, [0, 1, 3, 2]); // three exact ties, lower index first
    assert_eq!(
        index
            .neighbours(1, 2)
            .unwrap()
            .iter()
            .map(|h| h.index)
            .collect::<Vec<_>>(),
        [0, 3]
    );
    assert_eq!(index.top_k_among(q.view(), &[3, 2, 3], 5).unwrap().len(), 2);
    let empty = CosineIndex::new(Array2::<f32>::zeros((0, 4)).view()).unwrap();
    assert!(empty.is_empty());
    assert!(empty
        .top_k(array![1.0f32, 0.0, 0.0, 0.0].view(), 3)
        .unwrap()
        .is_empty());
    assert!(index
        .top_k_batch(Array2::<f32>::zeros((0, 2)).view(), 3)
        .unwrap()
        .is_empty());
}

#[test]
fn bad_input_is_a_typed_error() {
    let zero_row = array![[1.0f32, 0.0], [0.0, 1.0], [0.0, 0.0]];
    assert!(matches!(
        CosineIndex::new(zero_row.view()),
        Err(RetrievalError::ZeroNorm {
            what: "embeddings",
            row: 2
        })
    ));
    let nan_row = array![[1.0f32, 0.0], [f32::NAN, 1.0]];
    assert!(matches!(
        CosineIndex::new(nan_row.view()),
        Err(RetrievalError::NonFinite { row: 1, .. })
    ));
    assert!(matches!(
        CosineIndex::new(Array2::<f32>::zeros((3, 0)).view()),
        Err(RetrievalError::InvalidInput { .. })
    ));
    let index = CosineIndex::new(array![[1.0f32, 0.0], [0.0, 1.0]].view()).unwrap();
    assert!(matches!(
        index.top_k(array![1.0f32].view(), 1),
        Err(RetrievalError::Shape {
            expected: 2,
            got: 1,
            ..
        })
    ));
    assert!(matches!(
        index.top_k(array![0.0f32, 0.0].view(), 1),
        Err(RetrievalError::ZeroNorm { what: "query", .. })
    ));
    assert!(matches!(
        index.top_k(array![f32::INFINITY, 0.0].view(), 1),
        Err(RetrievalError::NonFinite { what: "query", .. })
    ));
    let q = array![1.0f32, 1.0];
    assert!(matches!(
        index.top_k_among(q.view(), &[0, 2], 1),
        Err(RetrievalError::IndexOutOfBounds {
            what: "candidate",
            index: 2,
            len: 2
        })
    ));
    assert!(matches!(
        index.top_k_excluding(q.view(), 1, &[5]),
        Err(RetrievalError::IndexOutOfBounds { .. })
    ));
    assert!(matches!(
        index.neighbours(2, 1),
        Err(RetrievalError::IndexOutOfBounds { .. })
    ));
    let queries = Array2::from_shape_fn((12, 2), |(i, _)| if i == 9 { 0.0 } else { 1.0 });
    assert!(matches!(
        index.top_k_batch(queries.view(), 1),
        Err(RetrievalError::ZeroNorm { row: 9, .. })
    ));
}

fn sample_index() -> CosineIndex {
    let items = Array2::from_shape_fn((7, 5), |(i, j)| ((i * 31 + j * 17) % 13) as f32 - 6.5);
    CosineIndex::new(items.view())
        .unwrap()
        .with_model("sentence-transformers/all-MiniLM-L6-v2")
}

#[test]
fn save_load_round_trip_is_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    for index in [
        sample_index(),
        CosineIndex::new(Array2::<f32>::zeros((0, 3)).view()).unwrap(),
    ] {
        let path = dir.path().join("index.safetensors");
        index.save(&path).unwrap();
        let loaded = CosineIndex::load(&path).unwrap();
        let bits = |i: &CosineIndex| i.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&loaded), bits(&index));
        assert_eq!(
            (loaded.len(), loaded.dim(), loaded.model()),
            (index.len(), index.dim(), index.model())
        );
    }
    // No temporary files are left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn truncated_or_corrupted_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.safetensors");
    sample_index().save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();
    let bad = dir.path().join("bad.safetensors");
    for len in 0..good.len() {
        std::fs::write(&bad, &good[..len]).unwrap();
        let err = CosineIndex::load(&bad).unwrap_err();
        assert!(
            matches!(&err, RetrievalError::Format { path, .. } if *path == bad),
            "len {len}: {err}"
        );
    }
    for pos in 0..good.len() {
        let mut bytes = good.clone();
        bytes[pos] ^= 0xFF;
        std::fs::write(&bad, &bytes).unwrap();
        assert!(
            matches!(CosineIndex::load(&bad), Err(RetrievalError::Format { .. })),
            "flip at {pos}"
        );
    }
    let missing = dir.path().join("missing.safetensors");
    assert!(
        matches!(CosineIndex::load(&missing), Err(RetrievalError::Io { path, .. }) if path == missing)
    );
}
