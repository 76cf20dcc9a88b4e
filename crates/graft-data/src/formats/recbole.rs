//! RecBole atomic files: tab-separated with a `name:type` header
//! (`token`, `token_seq`, `float`, `float_seq`). `<name>.inter` must have
//! `user_id:token` and `item_id:token` and may have `rating:float` and
//! `timestamp:float`; the optional `<name>.user` and `<name>.item` give side
//! information, recognised by common column names (`movie_title`/`title`,
//! `class`/`genre`, `release_year`/`year`, `book_author`/`author`; `age`,
//! `gender`, `occupation`, `zip_code`/`location`). Other columns are ignored.
//! Recognised columns are tokens: a year or age that is not an integer is left empty.
//! Files are UTF-8.

use std::path::{Path, PathBuf};

use super::{name_of, non_empty, Format, LoadOptions};
use crate::dataset::{Dataset, DatasetBuilder};
use crate::error::{DataError, Result};
use crate::read::{
    atomic_write, for_each_line_after_header, parse_id, parse_rating, parse_timestamp, Encoding,
    LoadReport,
};

const TYPES: [&str; 4] = ["token", "token_seq", "float", "float_seq"];

/// A parsed RecBole header: column names (without types) and types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Column names.
    pub names: Vec<String>,
    /// Column types.
    pub types: Vec<String>,
}

impl Header {
    /// Parses a `name:type\tname:type` header line.
    ///
    /// # Errors
    /// A column without `:type`, an unknown type, or a duplicate column name.
    pub fn parse(line: &str) -> std::result::Result<Header, String> {
        let mut names = Vec::new();
        let mut types = Vec::new();
        for col in line.split('\t') {
            let (name, ty) = col.rsplit_once(':').ok_or_else(|| {
                format!("header column {col:?} has no ':type' (is the header missing?)")
            })?;
            if !TYPES.contains(&ty) {
                return Err(format!("header column {col:?} has unknown type {ty:?}"));
            }
            if names.iter().any(|n| n == name) {
                return Err(format!("duplicate header column {name:?}"));
            }
            names.push(name.to_owned());
            types.push(ty.to_owned());
        }
        Ok(Header { names, types })
    }

    /// Index of the first of `candidates` present.
    pub fn find(&self, candidates: &[&str]) -> Option<usize> {
        candidates
            .iter()
            .find_map(|c| self.names.iter().position(|n| n == c))
    }
}

/// Finds the `.inter` file for a folder `dir`: `dir/<dir name>.inter`, else
/// the only `.inter` file inside.
///
/// # Errors
/// [`DataError::MissingFile`] when there is none, [`DataError::UnknownFormat`]
/// when there are several and none is named after the folder.
pub fn find_inter(dir: &Path) -> Result<PathBuf> {
    let named = dir.join(format!("{}.inter", name_of(dir)));
    if named.is_file() {
        return Ok(named);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let inters: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "inter"))
        .collect();
    match inters.len() {
        0 => Err(DataError::MissingFile { path: named }),
        1 => Ok(inters.into_iter().next().unwrap_or(named)),
        _ => Err(DataError::UnknownFormat {
            path: dir.to_path_buf(),
            reason: format!("several .inter files and none named {}", named.display()),
        }),
    }
}

/// Reads a RecBole file: the header goes to `on_header`, which picks the
/// columns (`T`); then `row(columns, fields)` runs per data line.
fn read_atomic<T>(
    path: &Path,
    opts: &LoadOptions,
    report: &mut LoadReport,
    on_header: impl FnOnce(&Header) -> std::result::Result<T, String>,
    mut row: impl FnMut(&T, &[&str]) -> std::result::Result<(), String>,
) -> Result<()> {
    for_each_line_after_header(
        path,
        Encoding::Utf8,
        opts.mode,
        report,
        |line| {
            let h = Header::parse(line)?;
            on_header(&h).map(|cols| (h.names.len(), cols))
        },
        |(n, cols), line| {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() != *n {
                return Err(format!(
                    "expected {n} tab-separated fields (as in the header), found {}",
                    f.len()
                ));
            }
            row(cols, &f)
        },
    )
}

/// Loads RecBole atomic files from a folder (or from the `.inter` file itself).
///
/// # Errors
/// A missing `.inter`, a bad header (no types, duplicate column, no
/// `user_id`/`item_id`), a malformed line.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let inter = if path.is_dir() {
        find_inter(path)?
    } else if path.is_file() {
        path.to_path_buf()
    } else {
        return Err(DataError::MissingFile {
            path: path.to_path_buf(),
        });
    };
    let stem = name_of(&inter);
    let dir = inter.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut report = LoadReport::default();
    let mut b = DatasetBuilder::default();
    read_atomic(
        &inter,
        opts,
        &mut report,
        |h| {
            let user = h
                .find(&["user_id"])
                .ok_or("the header has no user_id column")?;
            let item = h
                .find(&["item_id"])
                .ok_or("the header has no item_id column")?;
            Ok((user, item, h.find(&["rating"]), h.find(&["timestamp"])))
        },
        |&(u, i, r, t), f| {
            let user = parse_id(f[u], "user_id")?;
            let item = parse_id(f[i], "item_id")?;
            let rating = r.map(|r| parse_rating(f[r])).transpose()?;
            let ts = t.map(|t| parse_timestamp(f[t])).transpose()?;
            b.push(user, item, rating, ts);
            Ok(())
        },
    )?;
    non_empty(&b, &inter)?;

    let item_file = dir.join(format!("{stem}.item"));
    if item_file.is_file() {
        read_atomic(
            &item_file,
            opts,
            &mut report,
            |h| {
                Ok((
                    h.find(&["item_id"])
                        .ok_or("the header has no item_id column")?,
                    h.find(&["movie_title", "title", "book_title", "item_title", "name"]),
                    h.find(&["class", "genre", "genres", "categories"]),
                    h.find(&[
                        "release_year",
                        "year",
                        "year_of_publication",
                        "publication_year",
                    ]),
                    h.find(&["book_author", "author"]),
                ))
            },
            |&(id, title, genre, year, author), f| {
                let id = parse_id(f[id], "item_id")?;
                let info = b.item_info_mut(id);
                info.title = title.map(|i| f[i].to_owned()).filter(|s| !s.is_empty());
                info.genres = genre
                    .map(|i| f[i].split_whitespace().map(str::to_owned).collect())
                    .unwrap_or_default();
                // A token column: a value that is not an integer (ml-100k.item
                // has "unkonwn") leaves the year empty.
                info.year = year.and_then(|i| f[i].trim().parse().ok());
                info.author = author.map(|i| f[i].to_owned()).filter(|s| !s.is_empty());
                Ok(())
            },
        )?;
    }
    let user_file = dir.join(format!("{stem}.user"));
    if user_file.is_file() {
        read_atomic(
            &user_file,
            opts,
            &mut report,
            |h| {
                Ok((
                    h.find(&["user_id"])
                        .ok_or("the header has no user_id column")?,
                    h.find(&["age"]),
                    h.find(&["gender"]),
                    h.find(&["occupation"]),
                    h.find(&["zip_code", "location"]),
                ))
            },
            |&(id, age, gender, occupation, location), f| {
                let id = parse_id(f[id], "user_id")?;
                let info = b.user_info_mut(id);
                info.age = age.and_then(|i| f[i].trim().parse().ok());
                let text = |i: Option<usize>| i.map(|i| f[i].to_owned()).filter(|s| !s.is_empty());
                info.gender = text(gender);
                info.occupation = text(occupation);
                info.location = text(location);
                Ok(())
            },
        )?;
    }
    Ok(b.finish(stem, Format::Recbole, report))
}

/// Writes `ds` as RecBole atomic files `dir/<name>.inter` (and `.item`,
/// `.user` with the side information), atomically per file.
///
/// # Errors
/// [`DataError::Config`] when an id could not be read back (tab, line
/// break, surrounding whitespace); [`DataError::Io`] when a file cannot be written.
pub fn write(ds: &Dataset, dir: &Path, name: &str) -> Result<()> {
    super::check_writable_ids(ds, &['\t'])?;
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let mut inter = String::from("user_id:token\titem_id:token");
    let (has_r, has_t) = (ds.has_ratings(), ds.has_timestamps());
    if has_r {
        inter.push_str("\trating:float");
    }
    if has_t {
        inter.push_str("\ttimestamp:float");
    }
    inter.push('\n');
    for x in &ds.interactions {
        inter.push_str(ds.users.raw(x.user).unwrap_or("?"));
        inter.push('\t');
        inter.push_str(ds.items.raw(x.item).unwrap_or("?"));
        if let (true, Some(r)) = (has_r, x.rating) {
            inter.push_str(&format!("\t{r}"));
        }
        if let (true, Some(t)) = (has_t, x.timestamp) {
            inter.push_str(&format!("\t{t}"));
        }
        inter.push('\n');
    }
    atomic_write(&dir.join(format!("{name}.inter")), inter.as_bytes())?;

    let mut item = String::from(
        "item_id:token\ttitle:token_seq\tclass:token_seq\tyear:token\tauthor:token_seq\n",
    );
    for (i, info) in ds.item_info.iter().enumerate() {
        item.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            ds.items.raw(i as u32).unwrap_or("?"),
            clean(info.title.as_deref().unwrap_or("")),
            info.genres
                .iter()
                .map(|g| clean(g).replace(' ', "_"))
                .collect::<Vec<_>>()
                .join(" "),
            info.year.map(|y| y.to_string()).unwrap_or_default(),
            clean(info.author.as_deref().unwrap_or("")),
        ));
    }
    atomic_write(&dir.join(format!("{name}.item")), item.as_bytes())?;

    let mut user = String::from(
        "user_id:token\tage:token\tgender:token\toccupation:token\tlocation:token_seq\n",
    );
    for (u, info) in ds.user_info.iter().enumerate() {
        user.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            ds.users.raw(u as u32).unwrap_or("?"),
            info.age.map(|a| a.to_string()).unwrap_or_default(),
            clean(info.gender.as_deref().unwrap_or("")),
            clean(info.occupation.as_deref().unwrap_or("")),
            clean(info.location.as_deref().unwrap_or("")),
        ));
    }
    atomic_write(&dir.join(format!("{name}.user")), user.as_bytes())
}
