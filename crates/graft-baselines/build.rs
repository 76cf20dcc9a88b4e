//! Build script: embeds the libtorch RPATH (this crate always links
//! libtorch through the LightGCN-BPR baseline); see
//! `graft_build::link_libtorch`.

fn main() {
    graft_build::link_libtorch();
}
