//! `GRAFT_FONT` pointing at a file that is not a font is a typed error (an
//! explicit request is never silently ignored). Its own test binary: the
//! font is resolved once per process.

use graft_plot::{font, line_chart_png, LineSeries, PlotError};

#[test]
fn bad_graft_font_is_a_font_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("fake.ttf");
    std::fs::write(&fake, b"definitely not a font").expect("write");
    std::env::set_var("GRAFT_FONT", &fake);
    assert!(matches!(font(), Err(PlotError::Font(_))));
    let out = dir.path().join("x.png");
    let series = [LineSeries::new("a", vec![(0.0, 1.0), (1.0, 2.0)])];
    assert!(matches!(
        line_chart_png(&out, "t", "x", "y", &series, 200, 200),
        Err(PlotError::Font(_))
    ));
    assert!(!out.exists());
}
