//! `EmbeddingCache`: hits skip the encoder, order, persistence, model
//! isolation and errors.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::cell::RefCell;

use graft_retrieval::{fnv1a64, EmbeddingCache, RetrievalError};
use ndarray::Array2;

/// A deterministic stand-in encoder (`dim` columns derived from the text's
/// hash and a model salt) that records every batch it is given.
struct Encoder {
    dim: usize,
    salt: u64,
    calls: RefCell<Vec<Vec<String>>>,
}

impl Encoder {
    fn new(dim: usize, salt: u64) -> Self {
        Self {
            dim,
            salt,
            calls: RefCell::new(Vec::new()),
        }
    }

    fn row(&self, text: &str) -> Vec<f32> {
        let h = fnv1a64(text.as_bytes()) ^ self.salt;
        (0..self.dim)
            .map(|j| ((h >> (j * 5 % 60)) & 0xFF) as f32 / 17.0 - 7.0)
            .collect()
    }

    fn encode(&self, texts: &[&str]) -> Result<Array2<f32>, String> {
        self.calls
            .borrow_mut()
            .push(texts.iter().map(|t| (*t).to_owned()).collect());
        let flat: Vec<f32> = texts.iter().flat_map(|t| self.row(t)).collect();
        Ok(Array2::from_shape_vec((texts.len(), self.dim), flat).unwrap())
    }

    fn expected(&self, texts: &[&str]) -> Array2<f32> {
        let flat: Vec<f32> = texts.iter().flat_map(|t| self.row(t)).collect();
        Array2::from_shape_vec((texts.len(), self.dim), flat).unwrap()
    }

    fn calls(&self) -> usize {
        self.calls.borrow().len()
    }
}

const MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

#[test]
fn hits_skip_the_encoder_and_order_is_preserved() {
    let root = tempfile::tempdir().unwrap();
    let enc = Encoder::new(6, 0);
    let mut cache = EmbeddingCache::open(root.path(), MODEL).unwrap();
    let first = ["a red dress", "lipstick", "", "ünïcødé ☕"];
    assert_eq!(
        cache.get_or_compute(&first, |t| enc.encode(t)).unwrap(),
        enc.expected(&first)
    );
    assert_eq!(enc.calls(), 1);
    assert_eq!((cache.len(), cache.dim(), cache.pending()), (4, Some(6), 0));

    assert_eq!(
        cache.get_or_compute(&first, |t| enc.encode(t)).unwrap(),
        enc.expected(&first)
    );
    assert_eq!(
        enc.calls(),
        1,
        "a second call with the same texts must not encode"
    );

    // Mixed hits and misses; a repeated miss is encoded once, in first-seen order.
    let mixed = ["new 1", "lipstick", "new 2", "new 1", "a red dress", ""];
    assert_eq!(
        cache.get_or_compute(&mixed, |t| enc.encode(t)).unwrap(),
        enc.expected(&mixed)
    );
    assert_eq!(enc.calls.borrow()[1], ["new 1", "new 2"]);
    assert_eq!(cache.len(), 6);
    assert_eq!(cache.get("new 2").unwrap(), enc.expected(&["new 2"]).row(0));
    assert!(cache.get("unknown").is_none());

    let empty = cache.get_or_compute(&[], |t| enc.encode(t)).unwrap();
    assert_eq!(empty.dim(), (0, 6));
    assert_eq!(enc.calls(), 2);
}

#[test]
fn entries_persist_across_reopen() {
    let root = tempfile::tempdir().unwrap();
    let enc = Encoder::new(4, 0);
    let texts = ["one", "two", "three"];
    {
        let mut cache = EmbeddingCache::open(root.path(), MODEL)
            .unwrap()
            .with_flush_threshold(100);
        cache
            .get_or_compute(&texts[..2], |t| enc.encode(t))
            .unwrap();
        assert_eq!(cache.pending(), 2);
        cache.flush().unwrap();
        cache.get_or_compute(&texts, |t| enc.encode(t)).unwrap();
        assert_eq!(cache.pending(), 1); // flushed on drop
    }
    let mut cache = EmbeddingCache::open(root.path(), MODEL).unwrap();
    assert_eq!((cache.len(), cache.pending(), cache.dim()), (3, 0, Some(4)));
    let got = cache.get_or_compute(&texts, |t| enc.encode(t)).unwrap();
    assert_eq!(enc.calls(), 2);
    // Bitwise equal to what the encoder produced.
    let bits = |a: &Array2<f32>| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&enc.expected(&texts)));
}

#[test]
fn models_are_isolated() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (Encoder::new(4, 0), Encoder::new(3, 0xDEAD_BEEF));
    let texts = ["shared text", "other"];
    let mut ca = EmbeddingCache::open(root.path(), "model-a").unwrap();
    ca.get_or_compute(&texts, |t| a.encode(t)).unwrap();
    // Same slug ("model_a"), different id: still a different folder.
    let mut cb = EmbeddingCache::open(root.path(), "model/a").unwrap();
    assert!(cb.is_empty());
    assert_eq!(
        cb.get_or_compute(&texts, |t| b.encode(t)).unwrap(),
        b.expected(&texts)
    );
    assert_ne!(ca.dir(), cb.dir());
    drop((ca, cb));
    let mut ca = EmbeddingCache::open(root.path(), "model-a").unwrap();
    assert_eq!(
        ca.get_or_compute(&texts, |t| b.encode(t)).unwrap(),
        a.expected(&texts)
    );
    assert_eq!(b.calls(), 1);
}

#[test]
fn folder_name_is_pinned() {
    let root = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::open(root.path(), MODEL).unwrap();
    assert_eq!(fnv1a64(MODEL.as_bytes()), 0x32a1_ca9f_c172_587e);
    assert_eq!(
        cache.dir().file_name().unwrap(),
        "sentence-transformers_all-MiniLM-L6-v2-32a1ca9fc172587e"
    );
}

#[test]
fn bad_compute_output_is_an_error_and_adds_nothing() {
    let root = tempfile::tempdir().unwrap();
    let enc = Encoder::new(4, 0);
    let mut cache = EmbeddingCache::open(root.path(), MODEL).unwrap();
    cache.get_or_compute(&["x"], |t| enc.encode(t)).unwrap();
    let wrong_dim = Encoder::new(5, 0);
    assert!(matches!(
        cache.get_or_compute(&["y"], |t| wrong_dim.encode(t)),
        Err(RetrievalError::Shape {
            expected: 4,
            got: 5,
            ..
        })
    ));
    assert!(matches!(
        cache.get_or_compute(&["y", "z"], |t| enc.encode(&t[..1])),
        Err(RetrievalError::Shape {
            what: "compute output rows",
            expected: 2,
            got: 1
        })
    ));
    assert!(matches!(
        cache.get_or_compute(&["y", "z"], |_| Ok::<_, String>(Array2::from_elem(
            (2, 4),
            f32::NAN
        ))),
        Err(RetrievalError::NonFinite { row: 0, .. })
    ));
    let err = cache
        .get_or_compute(&["y"], |_| Err::<Array2<f32>, _>("encoder offline"))
        .unwrap_err();
    assert!(matches!(&err, RetrievalError::Compute(e) if e.to_string() == "encoder offline"));
    assert_eq!(cache.len(), 1);
}

#[test]
fn corrupt_files_are_errors() {
    let root = tempfile::tempdir().unwrap();
    let enc = Encoder::new(4, 0);
    let dir = {
        let mut cache = EmbeddingCache::open(root.path(), MODEL).unwrap();
        cache
            .get_or_compute(&["p", "q"], |t| enc.encode(t))
            .unwrap();
        cache.dir().to_path_buf()
    };
    let shard = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .unwrap();
    let good = std::fs::read(&shard).unwrap();
    for len in [0, 7, 8, 100, good.len() - 1] {
        std::fs::write(&shard, &good[..len]).unwrap();
        assert!(matches!(
            EmbeddingCache::open(root.path(), MODEL),
            Err(RetrievalError::Format { .. })
        ));
    }
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    std::fs::write(&shard, &flipped).unwrap();
    assert!(matches!(
        EmbeddingCache::open(root.path(), MODEL),
        Err(RetrievalError::Format { .. })
    ));
    std::fs::write(&shard, &good).unwrap();
    assert_eq!(EmbeddingCache::open(root.path(), MODEL).unwrap().len(), 2);

    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, &text[..text.len() / 2]).unwrap();
    assert!(matches!(
        EmbeddingCache::open(root.path(), MODEL),
        Err(RetrievalError::Format { .. })
    ));
    let escaped = text.replace("\"shard-", "\"../shard-");
    std::fs::write(&manifest, escaped).unwrap();
    assert!(matches!(
        EmbeddingCache::open(root.path(), MODEL),
        Err(RetrievalError::Format { .. })
    ));
    std::fs::write(&manifest, text.replace(MODEL, "other")).unwrap();
    assert!(matches!(
        EmbeddingCache::open(root.path(), MODEL),
        Err(RetrievalError::ModelMismatch { .. })
    ));
}
