//! Loaders, one module per source format, behind [`load`].

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::read::ParseMode;

pub mod amazon;
pub mod bookcrossing;
pub mod csv;
pub mod movielens;
pub mod recbole;

/// The source formats graft reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// P5/POD Amazon preprocessing: `sequential.txt` + `datamaps.json` (Beauty, Sports, Toys).
    AmazonP5,
    /// MovieLens-100K: `u.data`, `u.item`, `u.user`, `u.genre`.
    Movielens100k,
    /// MovieLens-1M: `ratings.dat`, `movies.dat`, `users.dat`.
    Movielens1m,
    /// MovieLens-25M: `ratings.csv`, `movies.csv`.
    Movielens25m,
    /// Raw BookCrossing: `BX-Book-Ratings.csv`, `BX-Books.csv`, `BX-Users.csv`.
    BookCrossing,
    /// RecBole atomic files: `<name>.inter` (+ optional `.user`, `.item`).
    Recbole,
    /// A generic `user,item[,rating][,timestamp]` CSV.
    Csv,
    /// Generated in memory ([`crate::synthetic`]).
    Synthetic,
}

impl Format {
    /// Every format a file loader exists for, with its command-line name.
    pub const LOADABLE: [(&'static str, Format); 7] = [
        ("amazon-p5", Format::AmazonP5),
        ("movielens-100k", Format::Movielens100k),
        ("movielens-1m", Format::Movielens1m),
        ("movielens-25m", Format::Movielens25m),
        ("book-crossing", Format::BookCrossing),
        ("recbole", Format::Recbole),
        ("csv", Format::Csv),
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Synthetic => "synthetic",
            f => Self::LOADABLE
                .iter()
                .find(|(_, g)| *g == f)
                .map(|(n, _)| *n)
                .unwrap_or("?"),
        }
    }

    /// Guesses the format from the files at `path` (a folder, or a file for
    /// RecBole `.inter` and CSV).
    ///
    /// # Errors
    /// [`DataError::UnknownFormat`] when nothing matches, [`DataError::MissingFile`]
    /// when `path` does not exist.
    pub fn detect(path: &Path) -> Result<Format> {
        if !path.exists() {
            return Err(DataError::MissingFile {
                path: path.to_path_buf(),
            });
        }
        if path.is_file() {
            return match path.extension().and_then(|e| e.to_str()) {
                Some("inter") => Ok(Format::Recbole),
                Some("csv") => Ok(Format::Csv),
                _ => Err(DataError::UnknownFormat {
                    path: path.to_path_buf(),
                    reason: "a file must end in .inter (RecBole) or .csv".into(),
                }),
            };
        }
        let has = |f: &str| path.join(f).is_file();
        if has("sequential.txt") {
            Ok(Format::AmazonP5)
        } else if has("u.data") {
            Ok(Format::Movielens100k)
        } else if has("ratings.dat") {
            Ok(Format::Movielens1m)
        } else if has("ratings.csv") {
            Ok(Format::Movielens25m)
        } else if has("BX-Book-Ratings.csv") {
            Ok(Format::BookCrossing)
        } else if recbole::find_inter(path).is_ok() {
            Ok(Format::Recbole)
        } else {
            Err(DataError::UnknownFormat {
                path: path.to_path_buf(),
                reason: "no sequential.txt, u.data, ratings.dat, ratings.csv, \
                         BX-Book-Ratings.csv or <name>.inter inside"
                    .into(),
            })
        }
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let norm = s.to_ascii_lowercase().replace('_', "-");
        Self::LOADABLE
            .iter()
            .find(|(n, _)| *n == norm)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::LOADABLE.iter().map(|(n, _)| *n).collect();
                format!("unknown format {s:?}; expected one of {}", names.join(", "))
            })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Options shared by all loaders.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadOptions {
    /// Strict (first bad line is an error) or lenient (skip and count).
    pub mode: ParseMode,
    /// Field delimiter of the generic CSV format (default `,`).
    pub csv_delimiter: char,
    /// Header names of the generic CSV format's columns when they are not
    /// graft's own (`user`, `item`, `rating`, `timestamp` and their
    /// aliases): e.g. `user=customer,item=product`.
    pub csv_columns: Option<csv::CsvColumns>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            mode: ParseMode::Strict,
            csv_delimiter: ',',
            csv_columns: None,
        }
    }
}

impl LoadOptions {
    /// Lenient parsing: bad lines are skipped and reported.
    pub fn lenient() -> Self {
        LoadOptions {
            mode: ParseMode::Lenient,
            ..Self::default()
        }
    }
}

/// Loads a dataset in `format` from `path` (a folder, or a file for CSV and RecBole).
///
/// # Errors
/// Missing or empty files, malformed lines (strict mode), files without any
/// interaction; every error names the file and, for parse errors, the line.
pub fn load(format: Format, path: &Path, opts: &LoadOptions) -> Result<Dataset> {
    match format {
        Format::AmazonP5 => amazon::load(path, opts),
        Format::Movielens100k => movielens::load_100k(path, opts),
        Format::Movielens1m => movielens::load_1m(path, opts),
        Format::Movielens25m => movielens::load_25m(path, opts),
        Format::BookCrossing => bookcrossing::load(path, opts),
        Format::Recbole => recbole::load(path, opts),
        Format::Csv => csv::load(path, opts),
        Format::Synthetic => Err(DataError::Config(
            "synthetic datasets are generated with graft_data::synthetic, not loaded".into(),
        )),
    }
}

/// Detects the format ([`Format::detect`]) and loads.
///
/// # Errors
/// As [`Format::detect`] and [`load`].
pub fn load_auto(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
    load(Format::detect(path)?, path, opts)
}

/// The dataset name for a folder or file path: its last component without extension.
pub(crate) fn name_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".to_owned())
}

/// `dir/file`, failing with [`DataError::MissingFile`] if it is absent.
pub(crate) fn required(dir: &Path, file: &str) -> Result<PathBuf> {
    let p = dir.join(file);
    if p.is_file() {
        Ok(p)
    } else {
        Err(DataError::MissingFile { path: p })
    }
}

/// Fails with [`DataError::NoInteractions`] when nothing was loaded.
pub(crate) fn non_empty(b: &crate::dataset::DatasetBuilder, path: &Path) -> Result<()> {
    if b.is_empty() {
        Err(DataError::NoInteractions {
            path: path.to_path_buf(),
        })
    } else {
        Ok(())
    }
}

/// Checks that every raw id of `ds` survives a write and a re-load: no
/// character from `forbidden`, no line break, no surrounding whitespace
/// (loaders trim ids).
pub(crate) fn check_writable_ids(ds: &Dataset, forbidden: &[char]) -> Result<()> {
    let ids = ds.users.raw_ids().iter().map(|r| ("user", r));
    for (kind, id) in ids.chain(ds.items.raw_ids().iter().map(|r| ("item", r))) {
        let bad =
            id.contains(['\n', '\r']) || id.contains(forbidden) || id.trim() != id || id.is_empty();
        if bad {
            return Err(DataError::Config(format!(
                "{kind} id {id:?} cannot be written in this format: it is empty, has surrounding \
                 whitespace, a line break or one of {forbidden:?}"
            )));
        }
    }
    Ok(())
}
