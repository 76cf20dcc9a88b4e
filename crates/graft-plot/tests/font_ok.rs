//! `GRAFT_FONT` naming a real font is used first. Its own test binary: the
//! font is resolved once per process.

use graft_plot::{font, FontSource, SYSTEM_DEJAVU};

#[test]
fn graft_font_takes_precedence() {
    if !std::path::Path::new(SYSTEM_DEJAVU).is_file() {
        return; // no known font on this machine to point at
    }
    std::env::set_var("GRAFT_FONT", SYSTEM_DEJAVU);
    let info = font().expect("font").expect("found");
    assert_eq!(info.source, FontSource::Env);
    assert_eq!(info.path, std::path::Path::new(SYSTEM_DEJAVU));
}
