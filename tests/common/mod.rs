//! Helpers for the root integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/data` (or `$GRAFT_SHARED_DATA`), when present. Tests that need
/// the real datasets call this and return early, printing why, when absent.
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    let base = std::env::var_os("GRAFT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let p = base.join(sub);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: real dataset {} not found (set GRAFT_SHARED_DATA to the shared data folder to run this test)",
            p.display()
        );
        None
    }
}

/// MovieLens-100K as RecBole atomic files, fetched by `cargo xtask fetch-data`
/// (`$GRAFT_ML100K_RECBOLE` or `.cache/data/ml-100k`), when present.
pub fn recbole_ml100k() -> Option<PathBuf> {
    let p = std::env::var_os("GRAFT_ML100K_RECBOLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/data/ml-100k"));
    if p.join("ml-100k.inter").is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} not found (run `cargo xtask fetch-data`, which `cargo xtask test` does)",
            p.display()
        );
        None
    }
}
