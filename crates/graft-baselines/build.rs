//! Build script: embeds the libtorch RPATH when the `tch` feature is on
//! (LightGCN-BPR and SASRec; a no-op otherwise); see
//! `graft_build::link_libtorch`.

fn main() {
    graft_build::link_libtorch();
}
