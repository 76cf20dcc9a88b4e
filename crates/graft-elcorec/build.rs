//! Build script: embeds the libtorch RPATH (this crate always links
//! libtorch); see `graft_build::link_libtorch`.

fn main() {
    graft_build::link_libtorch();
}
