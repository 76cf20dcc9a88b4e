//! Side-by-side 2-D scatter panels (e.g. embeddings after 1 and L rounds).

use std::path::Path;

use ndarray::ArrayView2;
use plotters::prelude::*;

use crate::error::{PlotError, Result};
use crate::font::FAMILY;
use crate::render::{
    check_size, color, draw_err, emptiest_corner, fmt_tick, padded, text_enabled, write_atomic,
    PlotOutcome,
};

/// One panel of a scatter figure.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScatterPanel {
    /// Panel caption (e.g. `"after 1 layer"`).
    pub title: String,
    /// The points, `(x, y)`.
    pub points: Vec<(f32, f32)>,
    /// Colour (group) index of each point; same length as `points`.
    pub groups: Vec<usize>,
    /// Legend entry of each group index. Empty: no legend, any group index
    /// allowed; otherwise every group index must be `< group_names.len()`.
    pub group_names: Vec<String>,
}

impl ScatterPanel {
    /// A panel from an `n x 2` projection (e.g. the output of
    /// [`pca_2d`](crate::pca_2d)).
    ///
    /// # Errors
    /// [`PlotError::Shape`] if `xy` does not have 2 columns or `groups` has a
    /// different length than its rows.
    pub fn from_projection(
        title: impl Into<String>,
        xy: ArrayView2<'_, f32>,
        groups: Vec<usize>,
        group_names: Vec<String>,
    ) -> Result<Self> {
        if xy.ncols() != 2 {
            return Err(PlotError::Shape(format!(
                "projection must be n x 2, got {} x {}",
                xy.nrows(),
                xy.ncols()
            )));
        }
        if groups.len() != xy.nrows() {
            return Err(PlotError::Shape(format!(
                "{} groups for {} points",
                groups.len(),
                xy.nrows()
            )));
        }
        Ok(Self {
            title: title.into(),
            points: xy.rows().into_iter().map(|r| (r[0], r[1])).collect(),
            groups,
            group_names,
        })
    }
}

/// Drawing options of [`scatter_panels_png_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterOptions {
    /// Image width in pixels (all panels together).
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Point radius in pixels (0 draws single pixels).
    pub point_radius: u32,
    /// Point opacity in `[0, 1]`.
    pub alpha: f64,
    /// Draw text (titles, tick labels, legend) when a font is available.
    pub text: bool,
}

impl ScatterOptions {
    /// Defaults for a `width x height` image: radius 2, opacity 0.45, text on.
    #[must_use]
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            point_radius: 2,
            alpha: 0.45,
            text: true,
        }
    }
}

/// Validated finite points of one panel, with the dropped count.
struct Prepared {
    points: Vec<(f64, f64, usize)>,
    n_groups: usize,
    x: (f64, f64),
    y: (f64, f64),
}

fn prepare(i: usize, panel: &ScatterPanel, dropped: &mut usize) -> Result<Prepared> {
    if panel.points.len() != panel.groups.len() {
        return Err(PlotError::Shape(format!(
            "panel {i} ('{}'): {} points but {} groups",
            panel.title,
            panel.points.len(),
            panel.groups.len()
        )));
    }
    if !panel.group_names.is_empty() {
        if let Some((j, &g)) = panel
            .groups
            .iter()
            .enumerate()
            .find(|(_, &g)| g >= panel.group_names.len())
        {
            return Err(PlotError::Shape(format!(
                "panel {i} ('{}'): point {j} has group {g} but only {} group names",
                panel.title,
                panel.group_names.len()
            )));
        }
    }
    let mut points = Vec::with_capacity(panel.points.len());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    let mut n_groups = panel.group_names.len();
    for (&(x, y), &g) in panel.points.iter().zip(panel.groups.iter()) {
        if !(x.is_finite() && y.is_finite()) {
            *dropped += 1;
            continue;
        }
        let (x, y) = (f64::from(x), f64::from(y));
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
        n_groups = n_groups.max(g + 1);
        points.push((x, y, g));
    }
    if points.is_empty() {
        return Err(PlotError::Empty {
            what: format!("panel {i} ('{}') finite points", panel.title),
        });
    }
    Ok(Prepared {
        points,
        n_groups,
        x: padded(x0, x1, 0.04),
        y: padded(y0, y1, 0.04),
    })
}

/// One PNG with `panels` side by side, each with its own axes, small
/// semi-transparent points coloured by group and a legend of group names.
///
/// Uses [`ScatterOptions::new`]`(width, height)`; see
/// [`scatter_panels_png_with`].
///
/// # Errors
/// As [`scatter_panels_png_with`].
pub fn scatter_panels_png(
    path: &Path,
    title: &str,
    panels: &[ScatterPanel],
    width: u32,
    height: u32,
) -> Result<PlotOutcome> {
    scatter_panels_png_with(path, title, panels, &ScatterOptions::new(width, height))
}

/// [`scatter_panels_png`] with explicit options.
///
/// Points with a NaN or infinite coordinate are dropped and counted in
/// [`PlotOutcome::dropped`]. Groups are drawn in index order (a later group
/// paints over an earlier one). The legend goes into the corner with the
/// fewest points. The file is written atomically: rendered into a hidden
/// temporary `.png` in the same directory, then renamed over `path` (the
/// content is PNG whatever `path`'s extension).
///
/// # Errors
/// * [`PlotError::Empty`]: no panels, or a panel without finite points;
/// * [`PlotError::Shape`]: size outside [`MIN_SIDE`](crate::MIN_SIDE)..=
///   [`MAX_SIDE`](crate::MAX_SIDE) (or narrower than 32 px per panel),
///   `points`/`groups` length mismatch, a group index without a name, an
///   `alpha` outside `[0, 1]`;
/// * [`PlotError::Io`]: the output directory is missing, or the rename fails;
/// * [`PlotError::Font`]: `GRAFT_FONT` is set to an unusable file;
/// * [`PlotError::Draw`]: plotters or the PNG encoder failed.
pub fn scatter_panels_png_with(
    path: &Path,
    title: &str,
    panels: &[ScatterPanel],
    opts: &ScatterOptions,
) -> Result<PlotOutcome> {
    check_size(opts.width, opts.height)?;
    if panels.is_empty() {
        return Err(PlotError::Empty {
            what: "panels".to_owned(),
        });
    }
    if opts.width / (panels.len() as u32).max(1) < crate::render::MIN_SIDE
        || panels.len() > crate::render::MAX_SIDE as usize
    {
        return Err(PlotError::Shape(format!(
            "{} panels do not fit in {} px",
            panels.len(),
            opts.width
        )));
    }
    if !(0.0..=1.0).contains(&opts.alpha) {
        return Err(PlotError::Shape(format!(
            "alpha {} is outside [0, 1]",
            opts.alpha
        )));
    }
    let mut dropped = 0usize;
    let prepared = panels
        .iter()
        .enumerate()
        .map(|(i, p)| prepare(i, p, &mut dropped))
        .collect::<Result<Vec<_>>>()?;
    let text = text_enabled(opts.text)?;

    write_atomic(path, |tmp| {
        let root = BitMapBackend::new(tmp, (opts.width, opts.height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let title_px = (f64::from(opts.height) / 22.0).clamp(14.0, 32.0);
        let area = if text && !title.is_empty() {
            root.titled(title, (FAMILY, title_px)).map_err(draw_err)?
        } else {
            root.clone()
        };
        let cells = area.split_evenly((1, panels.len()));
        for ((cell, panel), prep) in cells.iter().zip(panels).zip(&prepared) {
            draw_panel(cell, panel, prep, opts, text)?;
        }
        root.present().map_err(draw_err)?;
        Ok(())
    })?;
    Ok(PlotOutcome { text, dropped })
}

fn draw_panel(
    cell: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    panel: &ScatterPanel,
    prep: &Prepared,
    opts: &ScatterOptions,
    text: bool,
) -> Result<()> {
    let mut builder = ChartBuilder::on(cell);
    builder.margin(10);
    let label_px = (f64::from(opts.height) / 50.0).clamp(10.0, 16.0);
    if text {
        if !panel.title.is_empty() {
            builder.caption(&panel.title, (FAMILY, label_px * 1.3));
        }
        builder
            .x_label_area_size((label_px * 2.2) as u32)
            .y_label_area_size((label_px * 4.0) as u32);
    }
    let (x, y) = (prep.x, prep.y);
    let mut chart = builder
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(draw_err)?;
    let (xs, ys) = ((x.1 - x.0) / 6.0, (y.1 - y.0) / 6.0);
    let fx = move |v: &f64| fmt_tick(*v, xs);
    let fy = move |v: &f64| fmt_tick(*v, ys);
    chart
        .configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .label_style((FAMILY, label_px))
        .draw()
        .map_err(draw_err)?;
    if !text {
        chart
            .plotting_area()
            .draw(&Rectangle::new(
                [(x.0, y.0), (x.1, y.1)],
                BLACK.stroke_width(1),
            ))
            .map_err(draw_err)?;
    }
    let r = opts.point_radius;
    let legend = text && !panel.group_names.is_empty();
    for g in 0..prep.n_groups {
        let c = color(g);
        let style = c.mix(opts.alpha).filled();
        let pts = prep.points.iter().filter(|p| p.2 == g);
        let anno = if r == 0 {
            chart.draw_series(pts.map(|&(px, py, _)| Pixel::new((px, py), style)))
        } else {
            chart.draw_series(pts.map(|&(px, py, _)| Circle::new((px, py), r, style)))
        }
        .map_err(draw_err)?;
        if legend {
            let name = panel.group_names.get(g).cloned().unwrap_or_default();
            let lr = (label_px * 0.35) as i32;
            anno.label(name)
                .legend(move |(lx, ly)| Circle::new((lx + lr, ly), lr, c.filled()));
        }
    }
    if legend {
        let pos = emptiest_corner(prep.points.iter().map(|p| (p.0, p.1)), x, y, false);
        chart
            .configure_series_labels()
            .position(pos)
            .margin(6)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .label_font((FAMILY, label_px))
            .draw()
            .map_err(draw_err)?;
    }
    Ok(())
}
