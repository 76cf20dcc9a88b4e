//! Pictures for the results: propagated embeddings projected to 2D (the
//! paper's Figure 8 question: do co-interacting users cluster?) and
//! training curves from run logs.

use std::path::Path;

use graft_data::LeaveOneOut;
use graft_plot::{
    line_chart_png, pca_2d, scatter_panels_png, smooth, LineSeries, PlotOutcome, ScatterPanel,
};
use graft_propagate::{LayerCombine, LightGcnConfig, Propagator, RustCsr};

use crate::error::{ElmrecError, Result};

/// Users of the train graph coloured by which of the `groups` most popular
/// items they bought (users who bought none or several are left out),
/// projected with PCA after 1 round and after `cfg.layers` rounds of
/// random-feature propagation (features: `cfg`'s seeded N(0, sigma^2);
/// each panel shows that round's output alone, `LayerCombine::Last`).
///
/// # Errors
///
/// Graph, propagation or drawing failures.
pub fn embedding_panels(
    split: &LeaveOneOut,
    cfg: &LightGcnConfig,
    groups: usize,
    path: &Path,
) -> Result<PlotOutcome> {
    let (nu, ni) = (split.n_users(), split.n_items);
    let g = graft_graph::BipartiteGraph::from_edges(nu, ni, split.train_edges())?;
    let adj = g.normalized()?;
    let mut degree = vec![0usize; ni];
    for (_, i) in split.train_edges() {
        degree[i as usize] += 1;
    }
    let mut top: Vec<u32> = (0..ni as u32).collect();
    top.sort_by_key(|&i| std::cmp::Reverse(degree[i as usize]));
    top.truncate(groups);
    let mut users = Vec::new();
    let mut labels = Vec::new();
    for u in 0..nu {
        let hits: Vec<usize> = top
            .iter()
            .enumerate()
            .filter(|(_, it)| split.train[u].contains(it))
            .map(|(k, _)| k)
            .collect();
        if hits.len() == 1 {
            users.push(u);
            labels.push(hits[0]);
        }
    }
    if users.len() < 3 {
        return Err(ElmrecError::Config(
            "too few users with exactly one of the popular items to plot".into(),
        ));
    }
    let e0 = cfg.initial_embeddings(nu + ni)?;
    let names: Vec<String> = top
        .iter()
        .map(|i| format!("bought item_{i} ({} users)", degree[*i as usize]))
        .collect();
    let mut panels = Vec::new();
    for layers in [1, cfg.layers] {
        let prop = RustCsr::new(&adj)?;
        let out = prop.propagate(e0.view(), layers, &LayerCombine::Last)?;
        let rows = out.select(graft_propagate::ndarray::Axis(0), &users);
        let (xy, var) = pca_2d(rows.view())?;
        panels.push(ScatterPanel::from_projection(
            format!(
                "after {layers} round{} (PCA {:.0}% + {:.0}%)",
                if layers == 1 { "" } else { "s" },
                100.0 * var[0],
                100.0 * var[1]
            ),
            xy.view(),
            labels.clone(),
            names.clone(),
        )?);
    }
    Ok(scatter_panels_png(
        path,
        "users by the popular item they bought: random features propagated over the train graph",
        &panels,
        1400,
        650,
    )?)
}

/// Training loss (smoothed) per step for several runs, from their
/// `log.jsonl` records (`{"step", "loss"}`), with the validation loss of
/// each task where logged (`valid_loss_direct`, `valid_loss_sequential`;
/// older logs: the mean, `-eval`) and the reference line of a decoder that
/// knows only item popularity (`popularity_loss`, the first run's).
///
/// # Errors
///
/// Drawing failures; `Config` if no run has a loss.
pub fn loss_curves(runs: &[(String, Vec<serde_json::Value>)], path: &Path) -> Result<PlotOutcome> {
    let mut series = Vec::new();
    let mut valid = Vec::new();
    let mut reference: Option<f64> = None;
    let mut last_step = 0.0f64;
    for (name, log) in runs {
        let field = |key: &'static str, sign: f64| -> Vec<(f64, f64)> {
            log.iter()
                .filter_map(|r| Some((r.get("step")?.as_f64()?, sign * r.get(key)?.as_f64()?)))
                .collect()
        };
        let pts = field("loss", 1.0);
        last_step = last_step.max(pts.last().map_or(0.0, |p| p.0));
        if !pts.is_empty() {
            series.push(LineSeries::new(format!("{name} train"), smooth(&pts, 10)));
        }
        let (direct, seq) = (
            field("valid_loss_direct", 1.0),
            field("valid_loss_sequential", 1.0),
        );
        if direct.is_empty() && seq.is_empty() {
            let ev = field("eval", -1.0);
            if !ev.is_empty() {
                valid.push(LineSeries::new(format!("{name} validation"), ev));
            }
        } else {
            if !direct.is_empty() {
                valid.push(LineSeries::new(
                    format!("{name} validation, direct"),
                    direct,
                ));
            }
            if !seq.is_empty() {
                valid.push(LineSeries::new(
                    format!("{name} validation, sequential"),
                    seq,
                ));
            }
        }
        if reference.is_none() {
            reference = log.iter().find_map(|r| r.get("popularity_loss")?.as_f64());
        }
    }
    series.extend(valid);
    if series.is_empty() {
        return Err(ElmrecError::Config("no losses logged".into()));
    }
    if let Some(r) = reference {
        series.push(LineSeries::new(
            "decoder knowing only item popularity",
            vec![(0.0, r), (last_step.max(1.0), r)],
        ));
    }
    Ok(line_chart_png(
        path,
        "ELMRec training: token cross-entropy (train smoothed over 10 steps)",
        "optimizer step",
        "loss (nats per target token)",
        &series,
        1100,
        600,
    )?)
}

/// Validation HR@k of constrained generation per evaluation for several
/// runs (`valid_hr_direct`, `valid_hr_sequential` in their `log.jsonl`;
/// runs validated by loss have none).
///
/// # Errors
///
/// Drawing failures; `Config` if no run logged a hit rate.
pub fn hit_curves(runs: &[(String, Vec<serde_json::Value>)], path: &Path) -> Result<PlotOutcome> {
    let mut series = Vec::new();
    for (name, log) in runs {
        for (key, task) in [
            ("valid_hr_direct", "direct"),
            ("valid_hr_sequential", "sequential"),
        ] {
            let pts: Vec<(f64, f64)> = log
                .iter()
                .filter_map(|r| Some((r.get("step")?.as_f64()?, r.get(key)?.as_f64()?)))
                .collect();
            if !pts.is_empty() {
                series.push(LineSeries::new(format!("{name} {task}"), pts));
            }
        }
    }
    if series.is_empty() {
        return Err(ElmrecError::Config("no validation hit rates logged".into()));
    }
    Ok(line_chart_png(
        path,
        "ELMRec validation: HR@k of constrained generation",
        "optimizer step",
        "validation HR@k",
        &series,
        1100,
        600,
    )?)
}
