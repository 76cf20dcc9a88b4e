//! Where test suites find the real datasets, and what they do when one is
//! missing.
//!
//! The shared data folder is `$GRAFT_SHARED_DATA`, or `../shared/data`
//! next to the workspace. A test that needs a dataset asks
//! [`shared_dataset`]; when the dataset is not there the test is skipped
//! with a message, unless `GRAFT_REQUIRE_DATA` is set (`cargo xtask test`
//! sets it whenever the shared folder exists), in which case the missing
//! dataset is a failure: a moved file or a wrong path cannot pass
//! silently.

use std::path::{Path, PathBuf};

/// The environment variable that turns a missing dataset into a failure.
pub const REQUIRE_DATA: &str = "GRAFT_REQUIRE_DATA";

/// The shared data folder: `$GRAFT_SHARED_DATA`, else `../shared/data`
/// relative to `workspace_root`.
pub fn shared_data_dir(workspace_root: &Path) -> PathBuf {
    std::env::var_os("GRAFT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("../shared/data"))
}

/// `path` when it exists. Otherwise `None` after printing why the test is
/// skipped, or, when [`REQUIRE_DATA`] is set, a panic naming the path.
///
/// # Panics
/// When `path` is missing and [`REQUIRE_DATA`] is set: failing the calling
/// test is this function's job.
#[allow(clippy::panic)]
pub fn require_or_skip(path: PathBuf, hint: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os(REQUIRE_DATA).is_some() {
        panic!(
            "{} not found ({hint}); {REQUIRE_DATA} is set, so a missing dataset is a failure",
            path.display()
        );
    }
    eprintln!("SKIPPED: {} not found ({hint})", path.display());
    None
}

/// `sub` (e.g. `amazon/beauty`) inside the shared data folder of the
/// workspace at `workspace_root`, as [`require_or_skip`] finds it.
///
/// # Panics
/// As [`require_or_skip`].
pub fn shared_dataset(workspace_root: &Path, sub: &str) -> Option<PathBuf> {
    require_or_skip(
        shared_data_dir(workspace_root).join(sub),
        "set GRAFT_SHARED_DATA to the shared data folder",
    )
}
