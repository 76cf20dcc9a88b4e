//! Build-script helper shared by every graft package whose binaries, tests,
//! benches or examples link libtorch.
//!
//! `torch-sys` reports the libtorch library folder to packages that depend on
//! it *directly* (as `DEP_TCH_LIBTORCH_LIB`, from its `links = "tch"` key).
//! `cargo:rustc-link-arg` does not propagate to dependents, so each such
//! package has a `build.rs` that calls [`link_libtorch`]:
//!
//! ```text
//! // build.rs
//! fn main() {
//!     graft_build::link_libtorch();
//! }
//! ```
//!
//! It embeds an RPATH to libtorch (so nobody has to export `LD_LIBRARY_PATH`)
//! and links `libtorch` with `--no-as-needed` (otherwise the linker drops
//! `libtorch_cuda.so` and `tch::Cuda::is_available()` is false even on a GPU
//! machine). Packages built without their `tch` feature see no
//! `DEP_TCH_LIBTORCH_LIB` and the call does nothing.

use std::path::PathBuf;

/// Emits the link arguments described in the crate docs; a no-op when the
/// package does not depend on `torch-sys` in this build.
pub fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(dir) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    // Resolve symlinks (`.venv/libtorch` is one): libtorch finds its CUDA
    // runtime through an `$ORIGIN/../../nvidia/...` RPATH, which only works
    // from the real site-packages location.
    let dir = std::fs::canonicalize(&dir).unwrap_or_else(|_| PathBuf::from(dir));
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
}
