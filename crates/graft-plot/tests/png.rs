//! PNG writing: signature, IHDR size, atomicity, text/no-text, errors.

#![allow(clippy::panic)]

use std::path::Path;

use graft_plot::{
    line_chart_png, line_chart_png_with, scatter_panels_png, scatter_panels_png_with, smooth,
    LineChartOptions, LineSeries, PlotError, ScatterOptions, ScatterPanel,
};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// Width and height from the IHDR chunk, after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).expect("read png");
    assert!(bytes.len() > 33, "file too short");
    assert_eq!(bytes[..8], PNG_SIGNATURE, "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR", "first chunk is not IHDR");
    let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    assert_eq!(
        &bytes[bytes.len() - 8..bytes.len() - 4],
        b"IEND",
        "no IEND chunk"
    );
    (w, h)
}

/// Only the expected files remain (no temporaries).
fn assert_only(dir: &Path, expected: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(names, want);
}

fn cluster_panel(title: &str, spread: f32) -> ScatterPanel {
    let mut points = Vec::new();
    let mut groups = Vec::new();
    for i in 0..300 {
        let t = i as f32 * 0.37;
        let g = i % 3;
        let (cx, cy) = [(-3.0, 0.0), (3.0, 1.0), (0.0, 4.0)][g];
        points.push((cx + spread * t.sin(), cy + spread * (1.7 * t).cos()));
        groups.push(g);
    }
    ScatterPanel {
        title: title.to_owned(),
        points,
        groups,
        group_names: vec!["cluster A".into(), "cluster B".into(), "cluster C".into()],
    }
}

fn curves() -> Vec<LineSeries> {
    let loss: Vec<(f64, f64)> = (0..500)
        .map(|s| {
            let s = s as f64;
            (s, 2.0 * (-s / 150.0).exp() + 0.1 + 0.05 * (s * 1.3).sin())
        })
        .collect();
    vec![
        LineSeries::new("train loss", loss.clone()),
        LineSeries::new("train loss (smoothed)", smooth(&loss, 25)),
        LineSeries::new(
            "val loss",
            (0..10)
                .map(|k| (k as f64 * 50.0, 2.0 * (-(k as f64) / 3.0).exp() + 0.2))
                .collect(),
        ),
    ]
}

#[test]
fn scatter_png_is_written_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("emb.png");
    let panels = [
        cluster_panel("after 1 layer", 2.0),
        cluster_panel("after 4 layers", 0.7),
    ];
    let out = scatter_panels_png(&path, "user embeddings (PCA)", &panels, 900, 420).expect("plot");
    assert_eq!(out.dropped, 0);
    assert_eq!(png_size(&path), (900, 420));
    assert_only(dir.path(), &["emb.png"]);
    // Overwrite in place.
    let _ = scatter_panels_png(&path, "again", &panels[..1], 300, 200).expect("overwrite");
    assert_eq!(png_size(&path), (300, 200));
    assert_only(dir.path(), &["emb.png"]);
    if let Ok(dirname) = std::env::var("GRAFT_PLOT_KEEP") {
        let keep = Path::new(&dirname);
        let _ = scatter_panels_png(
            &keep.join("scatter.png"),
            "user embeddings (PCA)",
            &panels,
            900,
            420,
        )
        .expect("keep");
    }
}

#[test]
fn line_png_is_written_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("loss.png");
    let out = line_chart_png(&path, "training", "step", "loss", &curves(), 640, 400).expect("plot");
    assert_eq!(out.dropped, 0);
    assert_eq!(png_size(&path), (640, 400));
    let log = dir.path().join("loss_log.png");
    let opts = LineChartOptions::new(500, 300).with_log_y(true);
    let _ =
        line_chart_png_with(&log, "training (log)", "step", "loss", &curves(), &opts).expect("log");
    assert_eq!(png_size(&log), (500, 300));
    assert_only(dir.path(), &["loss.png", "loss_log.png"]);
    if let Ok(dirname) = std::env::var("GRAFT_PLOT_KEEP") {
        let keep = Path::new(&dirname);
        let _ = line_chart_png(
            &keep.join("line.png"),
            "training",
            "step",
            "loss",
            &curves(),
            640,
            400,
        )
        .expect("keep");
        let _ = line_chart_png_with(
            &keep.join("line_log.png"),
            "training (log)",
            "step",
            "loss",
            &curves(),
            &opts,
        )
        .expect("keep");
    }
}

#[test]
fn text_can_be_disabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut so = ScatterOptions::new(400, 300);
    so.text = false;
    let out = scatter_panels_png_with(
        &dir.path().join("s.png"),
        "t",
        &[cluster_panel("p", 1.0)],
        &so,
    )
    .expect("scatter");
    assert!(!out.text);
    let mut lo = LineChartOptions::new(400, 300);
    lo.text = false;
    let out = line_chart_png_with(&dir.path().join("l.png"), "t", "x", "y", &curves(), &lo)
        .expect("line");
    assert!(!out.text);
    assert_eq!(png_size(&dir.path().join("s.png")), (400, 300));
    assert_eq!(png_size(&dir.path().join("l.png")), (400, 300));
    // With text requested, text is drawn exactly when a font is available.
    let with = line_chart_png(
        &dir.path().join("t.png"),
        "t",
        "x",
        "y",
        &curves(),
        400,
        300,
    )
    .expect("line");
    assert_eq!(with.text, graft_plot::font().expect("font").is_some());
}

#[test]
fn non_finite_points_are_dropped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut panel = cluster_panel("p", 1.0);
    panel.points[0] = (f32::NAN, 0.0);
    panel.points[1] = (0.0, f32::INFINITY);
    let out =
        scatter_panels_png(&dir.path().join("s.png"), "t", &[panel], 300, 200).expect("scatter");
    assert_eq!(out.dropped, 2);

    let series = [LineSeries::new(
        "a",
        vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 0.0), (3.0, 4.0)],
    )];
    let out =
        line_chart_png(&dir.path().join("l.png"), "t", "x", "y", &series, 300, 200).expect("line");
    assert_eq!(out.dropped, 1);
    let opts = LineChartOptions::new(300, 200).with_log_y(true);
    let out =
        line_chart_png_with(&dir.path().join("g.png"), "t", "x", "y", &series, &opts).expect("log");
    assert_eq!(out.dropped, 2, "NaN and y = 0 are dropped on a log axis");
}

#[test]
fn single_point_and_constant_inputs_plot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let panel = ScatterPanel {
        title: "one".into(),
        points: vec![(1.0, 1.0)],
        groups: vec![0],
        group_names: vec![],
    };
    let _ =
        scatter_panels_png(&dir.path().join("s.png"), "", &[panel], 200, 200).expect("one point");
    let series = [LineSeries::new("", vec![(5.0, 0.3)])];
    let _ = line_chart_png(&dir.path().join("l.png"), "", "", "", &series, 200, 200)
        .expect("one point");
    assert_only(dir.path(), &["l.png", "s.png"]);
}

#[test]
fn errors_leave_no_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("x.png");
    let good = cluster_panel("p", 1.0);

    assert!(matches!(
        scatter_panels_png(&p, "t", &[], 300, 200),
        Err(PlotError::Empty { .. })
    ));
    let mut bad = good.clone();
    bad.groups.pop();
    assert!(matches!(
        scatter_panels_png(&p, "t", &[bad], 300, 200),
        Err(PlotError::Shape(_))
    ));
    let mut bad = good.clone();
    bad.groups[5] = 7;
    assert!(matches!(
        scatter_panels_png(&p, "t", &[bad], 300, 200),
        Err(PlotError::Shape(_))
    ));
    let mut bad = good.clone();
    bad.points.iter_mut().for_each(|pt| pt.0 = f32::NAN);
    assert!(matches!(
        scatter_panels_png(&p, "t", &[bad], 300, 200),
        Err(PlotError::Empty { .. })
    ));
    assert!(matches!(
        scatter_panels_png(&p, "t", std::slice::from_ref(&good), 0, 200),
        Err(PlotError::Shape(_))
    ));
    assert!(matches!(
        scatter_panels_png(&p, "t", std::slice::from_ref(&good), 300, 100_000),
        Err(PlotError::Shape(_))
    ));
    let many = vec![good.clone(); 20];
    assert!(matches!(
        scatter_panels_png(&p, "t", &many, 300, 200),
        Err(PlotError::Shape(_))
    ));
    let mut so = ScatterOptions::new(300, 200);
    so.alpha = 1.5;
    assert!(matches!(
        scatter_panels_png_with(&p, "t", std::slice::from_ref(&good), &so),
        Err(PlotError::Shape(_))
    ));

    assert!(matches!(
        line_chart_png(&p, "t", "x", "y", &[], 300, 200),
        Err(PlotError::Empty { .. })
    ));
    let empty = [LineSeries::new("a", vec![])];
    assert!(matches!(
        line_chart_png(&p, "t", "x", "y", &empty, 300, 200),
        Err(PlotError::Empty { .. })
    ));
    let nan = [LineSeries::new(
        "a",
        vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)],
    )];
    assert!(matches!(
        line_chart_png(&p, "t", "x", "y", &nan, 300, 200),
        Err(PlotError::Empty { .. })
    ));
    let neg = [LineSeries::new("a", vec![(0.0, -1.0), (1.0, 0.0)])];
    let opts = LineChartOptions::new(300, 200).with_log_y(true);
    assert!(matches!(
        line_chart_png_with(&p, "t", "x", "y", &neg, &opts),
        Err(PlotError::Empty { .. })
    ));

    // Missing output directory: an Io error naming the directory.
    let missing = dir.path().join("no/such/dir/x.png");
    match scatter_panels_png(&missing, "t", std::slice::from_ref(&good), 300, 200) {
        Err(PlotError::Io { path, .. }) => assert!(path.ends_with("no/such/dir")),
        other => panic!("expected Io, got {other:?}"),
    }
    // The target is an existing directory: the rename fails, the temporary
    // file is cleaned up.
    std::fs::create_dir(dir.path().join("taken.png")).expect("mkdir");
    assert!(matches!(
        line_chart_png(
            &dir.path().join("taken.png"),
            "t",
            "x",
            "y",
            &curves(),
            300,
            200
        ),
        Err(PlotError::Io { .. })
    ));
    assert_only(dir.path(), &["taken.png"]);
}

#[test]
fn projection_panel() {
    let xy = ndarray::array![[0.0f32, 1.0], [2.0, 3.0]];
    let p = ScatterPanel::from_projection("t", xy.view(), vec![0, 1], vec![]).expect("panel");
    assert_eq!(p.points, vec![(0.0, 1.0), (2.0, 3.0)]);
    let xyz = ndarray::Array2::<f32>::zeros((2, 3));
    assert!(matches!(
        ScatterPanel::from_projection("t", xyz.view(), vec![0, 1], vec![]),
        Err(PlotError::Shape(_))
    ));
    assert!(matches!(
        ScatterPanel::from_projection("t", xy.view(), vec![0], vec![]),
        Err(PlotError::Shape(_))
    ));
}

#[test]
fn smoothing() {
    assert!(smooth(&[], 3).is_empty());
    let pts = [(0.0, 1.0), (1.0, 3.0), (2.0, 5.0), (3.0, 7.0)];
    assert_eq!(smooth(&pts, 0), pts.to_vec());
    assert_eq!(smooth(&pts, 1), pts.to_vec());
    assert_eq!(
        smooth(&pts, 3),
        vec![(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 5.0)]
    );
    assert_eq!(
        smooth(&pts, 100),
        vec![(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]
    );
    let with_nan = [
        (0.0, 1.0),
        (f64::NAN, 2.0),
        (2.0, f64::INFINITY),
        (3.0, 3.0),
    ];
    assert_eq!(smooth(&with_nan, 2), vec![(0.0, 1.0), (3.0, 2.0)]);
}

/// A log-scale chart of a curve over four decades, and text-free pictures
/// of both kinds, are written at the asked size. With `GRAFT_PLOT_KEEP=DIR`
/// they are written to `DIR` (to look at them) instead of a temporary folder.
#[test]
fn log_y_and_text_free_pictures() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let keep = std::env::var_os("GRAFT_PLOT_KEEP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let mut so = ScatterOptions::new(600, 300);
    so.text = false;
    let scatter = scatter_panels_png_with(
        &keep.join("scatter_notext.png"),
        "t",
        &[cluster_panel("a", 1.0), cluster_panel("b", 0.5)],
        &so,
    )
    .expect("scatter");
    assert!(!scatter.text);
    assert_eq!(png_size(&keep.join("scatter_notext.png")), (600, 300));
    let mut lo = LineChartOptions::new(400, 300);
    lo.text = false;
    let line = line_chart_png_with(&keep.join("line_notext.png"), "t", "x", "y", &curves(), &lo)
        .expect("line");
    assert!(!line.text);
    assert_eq!(png_size(&keep.join("line_notext.png")), (400, 300));
    let wide: Vec<(f64, f64)> = (0..200)
        .map(|s| (s as f64, 100.0 * (-(s as f64) / 20.0).exp()))
        .collect();
    assert!(wide.last().expect("points").1 < 0.01, "four decades");
    let opts = LineChartOptions::new(500, 300).with_log_y(true);
    let _ = line_chart_png_with(
        &keep.join("line_log_wide.png"),
        "4 decades",
        "step",
        "loss",
        &[LineSeries::new("x", wide)],
        &opts,
    )
    .expect("log");
    assert_eq!(png_size(&keep.join("line_log_wide.png")), (500, 300));
}
