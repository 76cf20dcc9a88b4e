//! PNG pictures for the reproduction docs.
//!
//! * [`pca_2d`]: deterministic top-2 principal components of embedding rows
//!   (e.g. propagated user/item embeddings after 1 and L rounds), with the
//!   explained-variance ratio of each component;
//! * [`scatter_panels_png`]: side-by-side scatter panels coloured by group
//!   (do co-interacting users cluster?);
//! * [`line_chart_png`] / [`line_chart_png_with`]: training curves, optional
//!   log y axis; [`smooth`] for noisy losses.
//!
//! Every PNG is written atomically (a hidden temporary `.png` in the same
//! directory, renamed over the target). Text uses a TrueType font found at
//! run time ([`font`]); without one, plots are drawn without text and
//! [`PlotOutcome::text`] is `false`. Bad input is a [`PlotError`], never a
//! panic; non-finite plot points are dropped and counted in
//! [`PlotOutcome::dropped`].
//!
//! # Example
//! ```
//! use graft_plot::{line_chart_png, pca_2d, scatter_panels_png, smooth, LineSeries, ScatterPanel};
//! use ndarray::array;
//!
//! let dir = tempfile::tempdir().expect("tempdir");
//! let emb = array![[0.0f32, 0.0, 1.0], [0.1, 0.2, 1.1], [5.0, 5.0, 0.0], [5.1, 4.9, 0.2]];
//! let (xy, ratio) = pca_2d(emb.view())?;
//! assert!(ratio[0] + ratio[1] <= 1.0 + 1e-9);
//! let panel = ScatterPanel::from_projection(
//!     "after 1 layer", xy.view(), vec![0, 0, 1, 1], vec!["a".into(), "b".into()])?;
//! let out = scatter_panels_png(&dir.path().join("emb.png"), "users", &[panel], 400, 300)?;
//! assert_eq!(out.dropped, 0);
//!
//! let loss: Vec<(f64, f64)> = (0..100).map(|s| (s as f64, 1.0 / (1.0 + s as f64))).collect();
//! let series = [LineSeries::new("loss", smooth(&loss, 5))];
//! line_chart_png(&dir.path().join("loss.png"), "training", "step", "loss", &series, 400, 300)?;
//! # Ok::<(), graft_plot::PlotError>(())
//! ```

mod error;
mod font;
mod line;
mod pca;
mod render;
mod scatter;

pub use error::{PlotError, Result};
pub use font::{font, FontInfo, FontSource, SYSTEM_DEJAVU};
pub use line::{line_chart_png, line_chart_png_with, smooth, LineChartOptions, LineSeries};
pub use pca::{pca_2d, pca_2d_with, PcaMethod};
pub use render::{PlotOutcome, MAX_SIDE, MIN_SIDE, PALETTE};
pub use scatter::{scatter_panels_png, scatter_panels_png_with, ScatterOptions, ScatterPanel};
