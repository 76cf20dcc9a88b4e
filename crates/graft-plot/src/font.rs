//! Locating and registering the TrueType font used for text.
//!
//! plotters' `ab_glyph` text backend draws only fonts registered with
//! [`plotters::style::register_font`]; nothing is loaded from the system
//! implicitly. [`font`] looks for one font once per process, registers it as
//! the `"sans-serif"` family and caches the answer.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::style::FontStyle;

use crate::error::{PlotError, Result};

/// Family name under which the font is registered (plotters' default).
pub(crate) const FAMILY: &str = "sans-serif";

/// Debian's `fonts-dejavu-core` location.
pub const SYSTEM_DEJAVU: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Where a font came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FontSource {
    /// The `GRAFT_FONT` environment variable.
    Env,
    /// [`SYSTEM_DEJAVU`].
    System,
    /// A `DejaVuSans.ttf` inside the project virtual environment.
    Venv,
}

/// The font registered for plot text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FontInfo {
    /// The TrueType file.
    pub path: PathBuf,
    /// How it was found.
    pub source: FontSource,
}

static FONT: OnceLock<std::result::Result<Option<FontInfo>, String>> = OnceLock::new();

/// The font used for titles, labels and legends, found and registered on the
/// first call (later calls return the cached answer).
///
/// Search order:
/// 1. `GRAFT_FONT` (a path to a `.ttf`/`.otf`; empty means unset);
/// 2. [`SYSTEM_DEJAVU`] (Debian package `fonts-dejavu-core`);
/// 3. a `DejaVuSans.ttf` in the project venv: `GRAFT_VENV`, else
///    `<workspace>/.venv` (matplotlib's `mpl-data/fonts/ttf` first, then a
///    bounded search of the venv).
///
/// `Ok(None)` means no font was found: plots are then drawn without any text
/// and report [`PlotOutcome::text`](crate::PlotOutcome::text) `== false`.
/// The font bytes are leaked once (plotters needs `&'static` data).
///
/// # Errors
/// [`PlotError::Font`] if `GRAFT_FONT` names a file that cannot be read or
/// is not a valid font (an explicit request is not silently ignored), or if a
/// font that was found fails to parse.
pub fn font() -> Result<Option<&'static FontInfo>> {
    match FONT.get_or_init(resolve) {
        Ok(info) => Ok(info.as_ref()),
        Err(msg) => Err(PlotError::Font(msg.clone())),
    }
}

fn resolve() -> std::result::Result<Option<FontInfo>, String> {
    let candidate = find_candidate()?;
    let Some(info) = candidate else {
        return Ok(None);
    };
    let bytes = std::fs::read(&info.path)
        .map_err(|e| format!("cannot read {}: {e}", info.path.display()))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).map_err(|_| {
        format!(
            "{} is not a valid TrueType/OpenType font",
            info.path.display()
        )
    })?;
    Ok(Some(info))
}

fn find_candidate() -> std::result::Result<Option<FontInfo>, String> {
    if let Some(p) = std::env::var_os("GRAFT_FONT").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(p);
        if !path.is_file() {
            return Err(format!("GRAFT_FONT={} is not a file", path.display()));
        }
        return Ok(Some(FontInfo {
            path,
            source: FontSource::Env,
        }));
    }
    let system = Path::new(SYSTEM_DEJAVU);
    if system.is_file() {
        return Ok(Some(FontInfo {
            path: system.to_path_buf(),
            source: FontSource::System,
        }));
    }
    let venv = std::env::var_os("GRAFT_VENV")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    Ok(find_in_venv(&venv).map(|path| FontInfo {
        path,
        source: FontSource::Venv,
    }))
}

/// `DejaVuSans.ttf` under `venv`: matplotlib's bundled copy first, then a
/// breadth-first search (no symlinked directories, depth and size bounded).
fn find_in_venv(venv: &Path) -> Option<PathBuf> {
    const NAME: &str = "DejaVuSans.ttf";
    for lib in ["lib", "lib64"] {
        let Ok(entries) = std::fs::read_dir(venv.join(lib)) else {
            continue;
        };
        let mut pythons: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        pythons.sort();
        for py in pythons {
            let p = py
                .join("site-packages/matplotlib/mpl-data/fonts/ttf")
                .join(NAME);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    const MAX_DEPTH: usize = 8;
    const MAX_ENTRIES: usize = 200_000;
    let mut seen = 0usize;
    let mut level = vec![venv.to_path_buf()];
    for _depth in 0..=MAX_DEPTH {
        let mut next = Vec::new();
        for dir in level {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                seen += 1;
                if seen > MAX_ENTRIES {
                    return None;
                }
                let Ok(ft) = e.file_type() else { continue };
                if ft.is_dir() {
                    next.push(e.path());
                } else if e.file_name() == NAME {
                    return Some(e.path());
                }
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    None
}
