//! Line charts (training curves) and smoothing.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{PlotError, Result};
use crate::font::FAMILY;
use crate::render::{
    check_size, color, draw_err, emptiest_corner, fmt_tick, padded, padded_log, text_enabled,
    write_atomic, PlotOutcome,
};

/// Everything the drawing macro needs besides the chart.
struct Ctx<'a> {
    series: &'a [LineSeries],
    kept: &'a [Vec<(f64, f64)>],
    opts: &'a LineChartOptions,
    text: bool,
    label_px: f64,
    x_label: &'a str,
    y_label: &'a str,
    legend_pos: SeriesLabelPosition,
    x_step: f64,
    y_step: f64,
}

/// Key points of a log axis over `[lo, hi]` (`0 < lo < hi`): bold (labelled)
/// at mantissas 1, 2, 5 when the axis spans at most 1.5 decades, else at
/// powers of ten (every k-th power beyond 8 decades); light grid lines at
/// mantissas 1..9 when it spans at most 4 decades. An axis too narrow for
/// two such labels gets 5 geometrically spaced ones.
fn log_key_points(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (e0, e1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let decades = (hi / lo).log10();
    let stride = ((decades / 8.0).ceil() as i32).max(1);
    let mut bold = Vec::new();
    let mut light = Vec::new();
    for e in e0..=e1 {
        let p = 10f64.powi(e);
        for m in 1..10 {
            let v = p * f64::from(m);
            if v < lo || v > hi {
                continue;
            }
            let labelled = if decades <= 1.5 {
                matches!(m, 1 | 2 | 5)
            } else {
                m == 1 && e.rem_euclid(stride) == 0
            };
            if labelled {
                bold.push(v);
            }
            if decades <= 4.0 || m == 1 {
                light.push(v);
            }
        }
    }
    if bold.len() < 2 {
        // Narrow axis (less than one labelled step): 5 geometric ticks.
        bold = (0..5)
            .map(|i| lo * (hi / lo).powf(f64::from(i) / 4.0))
            .collect();
    }
    (bold, light)
}

/// Mesh, curves and legend on a chart whose coordinate type differs between
/// the linear and log branches (a macro avoids spelling plotters' bounds).
macro_rules! draw_lines {
    ($chart:ident, $ctx:ident, $xr:ident, $yr:ident) => {{
        let mut chart = $chart;
        let ctx = &$ctx;
        let (xs, ys) = (ctx.x_step, ctx.y_step);
        let fx = move |v: &f64| fmt_tick(*v, xs);
        let fy = move |v: &f64| {
            if ctx.opts.log_y && *v > 0.0 {
                fmt_tick(*v, 10f64.powf(v.log10().floor()))
            } else {
                fmt_tick(*v, ys)
            }
        };
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .x_labels(8)
            .y_labels(8)
            .x_label_formatter(&fx)
            .y_label_formatter(&fy)
            .label_style((FAMILY, ctx.label_px))
            .axis_desc_style((FAMILY, ctx.label_px * 1.1));
        if ctx.text {
            if !ctx.x_label.is_empty() {
                mesh.x_desc(ctx.x_label);
            }
            if !ctx.y_label.is_empty() {
                mesh.y_desc(ctx.y_label);
            }
        }
        mesh.draw().map_err(draw_err)?;
        if !ctx.text {
            chart
                .plotting_area()
                .draw(&Rectangle::new(
                    [($xr.0, $yr.0), ($xr.1, $yr.1)],
                    BLACK.stroke_width(1),
                ))
                .map_err(draw_err)?;
        }
        let mut any_label = false;
        for (i, (s, pts)) in ctx.series.iter().zip(ctx.kept).enumerate() {
            if pts.is_empty() {
                continue;
            }
            let c = color(i);
            let anno = chart
                .draw_series(plotters::series::LineSeries::new(
                    pts.iter().copied(),
                    c.stroke_width(2),
                ))
                .map_err(draw_err)?;
            if ctx.text && !s.label.is_empty() {
                any_label = true;
                let h = (ctx.label_px * 0.8) as i32;
                anno.label(s.label.clone()).legend(move |(lx, ly)| {
                    PathElement::new(vec![(lx, ly), (lx + 2 * h, ly)], c.stroke_width(2))
                });
            }
            let mark = ctx.opts.markers.unwrap_or(pts.len() <= 60);
            if mark {
                chart
                    .draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 3, c.filled())))
                    .map_err(draw_err)?;
            }
        }
        if any_label {
            chart
                .configure_series_labels()
                .position(ctx.legend_pos.clone())
                .margin(8)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(160, 160, 160))
                .label_font((FAMILY, ctx.label_px))
                .draw()
                .map_err(draw_err)?;
        }
    }};
}

/// One curve of a line chart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineSeries {
    /// Legend entry (an empty label is left out of the legend).
    pub label: String,
    /// The points `(x, y)`, drawn in the given order.
    pub points: Vec<(f64, f64)>,
}

impl LineSeries {
    /// A series from a label and points.
    #[must_use]
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
        }
    }
}

/// Drawing options of [`line_chart_png_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct LineChartOptions {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Logarithmic y axis (points with `y <= 0` are then dropped).
    pub log_y: bool,
    /// Mark each point with a dot: `None` marks series of at most 60 points
    /// (e.g. validation curves) and leaves denser ones plain.
    pub markers: Option<bool>,
    /// Draw text (title, axis names, tick labels, legend) when a font is
    /// available.
    pub text: bool,
}

impl LineChartOptions {
    /// Defaults for a `width x height` image: linear y, automatic markers,
    /// text on.
    #[must_use]
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            log_y: false,
            markers: None,
            text: true,
        }
    }

    /// Sets [`LineChartOptions::log_y`].
    #[must_use]
    pub fn with_log_y(mut self, log_y: bool) -> Self {
        self.log_y = log_y;
        self
    }
}

/// A line chart (e.g. training loss vs step, validation HR@10 vs step) with a
/// linear y axis; see [`line_chart_png_with`] for a log axis and the rules.
///
/// # Errors
/// As [`line_chart_png_with`].
pub fn line_chart_png(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[LineSeries],
    width: u32,
    height: u32,
) -> Result<PlotOutcome> {
    line_chart_png_with(
        path,
        title,
        x_label,
        y_label,
        series,
        &LineChartOptions::new(width, height),
    )
}

/// [`line_chart_png`] with explicit options (log y axis, markers, text).
///
/// Points with a NaN or infinite coordinate (and, with `log_y`, points with
/// `y <= 0`) are dropped and counted in [`PlotOutcome::dropped`]; a series
/// left without points is not drawn. Series `i` uses colour
/// [`PALETTE`](crate::PALETTE)`[i % 10]`. The legend goes into the corner
/// with the fewest points. The file is written atomically (temporary `.png`
/// in the same directory, then a rename).
///
/// # Errors
/// * [`PlotError::Empty`]: no series, a series with no points at all, or no
///   drawable point in any series;
/// * [`PlotError::Shape`]: size outside [`MIN_SIDE`](crate::MIN_SIDE)..=
///   [`MAX_SIDE`](crate::MAX_SIDE);
/// * [`PlotError::Io`]: the output directory is missing, or the rename fails;
/// * [`PlotError::Font`]: `GRAFT_FONT` is set to an unusable file;
/// * [`PlotError::Draw`]: plotters or the PNG encoder failed.
pub fn line_chart_png_with(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[LineSeries],
    opts: &LineChartOptions,
) -> Result<PlotOutcome> {
    check_size(opts.width, opts.height)?;
    if series.is_empty() {
        return Err(PlotError::Empty {
            what: "series".to_owned(),
        });
    }
    let mut dropped = 0usize;
    let mut kept: Vec<Vec<(f64, f64)>> = Vec::with_capacity(series.len());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (i, s) in series.iter().enumerate() {
        if s.points.is_empty() {
            return Err(PlotError::Empty {
                what: format!("series {i} ('{}')", s.label),
            });
        }
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!opts.log_y || y > 0.0))
            .collect();
        dropped += s.points.len() - pts.len();
        for &(x, y) in &pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        kept.push(pts);
    }
    if kept.iter().all(Vec::is_empty) {
        return Err(PlotError::Empty {
            what: if opts.log_y {
                "finite positive-y points".to_owned()
            } else {
                "finite points".to_owned()
            },
        });
    }
    let text = text_enabled(opts.text)?;
    let xr = padded(x0, x1, 0.02);
    let yr = if opts.log_y {
        padded_log(y0, y1)
    } else {
        padded(y0, y1, 0.05)
    };
    let legend_pos = emptiest_corner(kept.iter().flatten().copied(), xr, yr, opts.log_y);

    write_atomic(path, |tmp| {
        let root = BitMapBackend::new(tmp, (opts.width, opts.height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let title_px = (f64::from(opts.height) / 24.0).clamp(14.0, 30.0);
        let label_px = (f64::from(opts.height) / 45.0).clamp(10.0, 18.0);
        let mut builder = ChartBuilder::on(&root);
        builder.margin(12);
        if text {
            if !title.is_empty() {
                builder.caption(title, (FAMILY, title_px));
            }
            builder
                .x_label_area_size((label_px * 3.2) as u32)
                .y_label_area_size((label_px * 5.0) as u32);
        }
        let ctx = Ctx {
            series,
            kept: &kept,
            opts,
            text,
            label_px,
            x_label,
            y_label,
            legend_pos,
            x_step: (xr.1 - xr.0) / 8.0,
            y_step: (yr.1 - yr.0) / 8.0,
        };
        if opts.log_y {
            let (bold, light) = log_key_points(yr.0, yr.1);
            let chart = builder
                .build_cartesian_2d(
                    xr.0..xr.1,
                    (yr.0..yr.1)
                        .log_scale()
                        .with_key_points(bold)
                        .with_light_points(light),
                )
                .map_err(draw_err)?;
            draw_lines!(chart, ctx, xr, yr);
        } else {
            let chart = builder
                .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
                .map_err(draw_err)?;
            draw_lines!(chart, ctx, xr, yr);
        }
        root.present().map_err(draw_err)?;
        Ok(())
    })?;
    Ok(PlotOutcome { text, dropped })
}

/// Trailing moving average of `y` over the last `window` points (fewer at
/// the start), keeping each point's `x`; the output has one point per finite
/// input point.
///
/// Points with a NaN or infinite coordinate are dropped first (consistent
/// with the plots, which drop them too). `window` 0 or 1 returns the finite
/// points unchanged.
///
/// # Example
/// ```
/// let s = graft_plot::smooth(&[(0.0, 4.0), (1.0, 2.0), (2.0, 0.0), (3.0, f64::NAN)], 2);
/// assert_eq!(s, vec![(0.0, 4.0), (1.0, 3.0), (2.0, 1.0)]);
/// ```
#[must_use]
pub fn smooth(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let w = window.max(1);
    (0..finite.len())
        .map(|i| {
            let lo = (i + 1).saturating_sub(w);
            let win = &finite[lo..=i];
            let mean = win.iter().map(|p| p.1).sum::<f64>() / win.len() as f64;
            (finite[i].0, mean)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::log_key_points;

    #[test]
    fn log_ticks() {
        let (bold, light) = log_key_points(0.11, 2.3);
        assert_eq!(bold, vec![0.2, 0.5, 1.0, 2.0]);
        assert_eq!(light.len(), 8 + 2); // 0.2..0.9, 1, 2
        let (bold, _) = log_key_points(0.004, 120.0);
        assert_eq!(bold, vec![0.01, 0.1, 1.0, 10.0, 100.0]);
        let (bold, _) = log_key_points(1e-12, 1e6);
        assert_eq!(bold.len(), 7); // every 3rd power: 1e-12, 1e-9, ..., 1e6
        let (bold, _) = log_key_points(0.31, 0.34);
        assert_eq!(bold.len(), 5);
        assert!((bold[0] - 0.31).abs() < 1e-12 && (bold[4] - 0.34).abs() < 1e-12);
    }
}
