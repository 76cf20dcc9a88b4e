//! Build script: embeds the libtorch RPATH for the umbrella crate's tests,
//! examples and benches when the `tch` feature is on; see
//! `graft_build::link_libtorch`.

fn main() {
    graft_build::link_libtorch();
}
