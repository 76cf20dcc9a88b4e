//! Shared plumbing: atomic PNG writes, size checks, colours, tick labels.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use plotters::chart::SeriesLabelPosition;
use plotters::style::RGBColor;

use crate::error::{PlotError, Result};

/// Smallest accepted image side, in pixels.
pub const MIN_SIDE: u32 = 32;
/// Largest accepted image side, in pixels.
pub const MAX_SIDE: u32 = 16_384;

/// What a successful plot call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct PlotOutcome {
    /// Whether text (titles, axis labels, tick labels, legend) was drawn.
    /// `false` when text was disabled in the options or no font was found
    /// (see [`font`](crate::font)).
    pub text: bool,
    /// Points dropped because a coordinate was NaN or infinite (or, on a
    /// log-scale axis, not positive).
    pub dropped: usize,
}

/// Matplotlib's "tab10" palette; group / series `i` uses `PALETTE[i % 10]`.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub(crate) fn check_size(width: u32, height: u32) -> Result<()> {
    for (name, v) in [("width", width), ("height", height)] {
        if !(MIN_SIDE..=MAX_SIDE).contains(&v) {
            return Err(PlotError::Shape(format!(
                "image {name} {v} is outside [{MIN_SIDE}, {MAX_SIDE}]"
            )));
        }
    }
    Ok(())
}

/// Whether to draw text: requested and a font is available.
pub(crate) fn text_enabled(requested: bool) -> Result<bool> {
    if !requested {
        return Ok(false);
    }
    Ok(crate::font::font()?.is_some())
}

pub(crate) fn draw_err<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Removes the temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Render with `draw` into a hidden temporary `.png` next to `path`, then
/// rename it over `path`. On any error the temporary file is removed and
/// `path` is left untouched.
pub(crate) fn write_atomic(path: &Path, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path.file_name().ok_or_else(|| {
        PlotError::Shape(format!("output path {} has no file name", path.display()))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let meta = std::fs::metadata(&dir).map_err(|source| PlotError::Io {
        path: dir.clone(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(PlotError::Io {
            path: dir,
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}-{n}.tmp.png",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let mut guard = TempGuard(Some(tmp.clone()));
    draw(&tmp)?;
    if !tmp.is_file() {
        return Err(PlotError::Draw(format!(
            "the PNG encoder did not write {}",
            tmp.display()
        )));
    }
    std::fs::rename(&tmp, path).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    guard.0 = None;
    Ok(())
}

/// `[lo, hi]` padded by `frac` of the span; a degenerate span is widened.
pub(crate) fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let span = hi - lo;
    if span > 0.0 && span.is_finite() {
        (lo - frac * span, hi + frac * span)
    } else {
        let w = if lo.abs() > 0.0 { 0.5 * lo.abs() } else { 1.0 };
        (lo - w, hi + w)
    }
}

/// `[lo, hi]` widened multiplicatively for a log axis (`lo > 0`).
pub(crate) fn padded_log(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        let r = (hi / lo).powf(0.04);
        (lo / r, hi * r)
    } else {
        (lo / 2.0, hi * 2.0)
    }
}

/// Compact tick label: scientific outside `[1e-3, 1e5)`, else at most a few
/// decimals (enough to tell ticks `step` apart) with trailing zeros trimmed.
pub(crate) fn fmt_tick(v: f64, step: f64) -> String {
    if v == 0.0 {
        return "0".to_owned();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    let decimals = if step > 0.0 && step.is_finite() {
        (-step.log10().floor()).clamp(0.0, 6.0) as usize + 1
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// The legend corner holding the fewest points (ties: upper right, upper
/// left, lower right, lower left).
pub(crate) fn emptiest_corner(
    points: impl Iterator<Item = (f64, f64)>,
    x: (f64, f64),
    y: (f64, f64),
    y_log: bool,
) -> SeriesLabelPosition {
    let xm = 0.5 * (x.0 + x.1);
    let ym = if y_log && y.0 > 0.0 {
        (y.0 * y.1).sqrt()
    } else {
        0.5 * (y.0 + y.1)
    };
    // Count only points in the outer 40% of each axis (where a legend sits).
    let xw = 0.1 * (x.1 - x.0);
    let mut counts = [0usize; 4];
    for (px, py) in points {
        let right = px > xm + xw;
        let left = px < xm - xw;
        let up = py > ym;
        match (up, left, right) {
            (true, _, true) => counts[0] += 1,
            (true, true, _) => counts[1] += 1,
            (false, _, true) => counts[2] += 1,
            (false, true, _) => counts[3] += 1,
            _ => {}
        }
    }
    let mut best = 0;
    for i in 1..4 {
        if counts[i] < counts[best] {
            best = i;
        }
    }
    match best {
        0 => SeriesLabelPosition::UpperRight,
        1 => SeriesLabelPosition::UpperLeft,
        2 => SeriesLabelPosition::LowerRight,
        _ => SeriesLabelPosition::LowerLeft,
    }
}
