//! Helpers for the root integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/data/<sub>` (or under `$GRAFT_SHARED_DATA`), when present;
/// a skip, or a failure under `cargo xtask test` (`GRAFT_REQUIRE_DATA`).
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    graft::data::shared::shared_dataset(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), sub)
}

/// MovieLens-100K as RecBole atomic files, fetched by `cargo xtask fetch-data`
/// (`$GRAFT_ML100K_RECBOLE` or `.cache/data/ml-100k`), when present; a
/// failure instead of a skip under `GRAFT_REQUIRE_DATA`.
pub fn recbole_ml100k() -> Option<PathBuf> {
    let p = std::env::var_os("GRAFT_ML100K_RECBOLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/data/ml-100k"));
    graft::data::shared::require_or_skip(
        p.join("ml-100k.inter"),
        "run `cargo xtask fetch-data`, which `cargo xtask test` does",
    )
    .map(|_| p)
}
