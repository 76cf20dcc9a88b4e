//! A generic interactions CSV for anyone's data: `user,item[,rating][,timestamp]`.
//!
//! The first line is a header when every field is a known column name
//! (`user`/`user_id`/`userId`, `item`/`item_id`/`itemId`, `rating`,
//! `timestamp`/`time`/`ts`, any case); columns may then come in any order.
//! A header with other names is mapped with [`LoadOptions::csv_columns`]
//! ([`CsvColumns`], e.g. `user=customer,item=product`; other columns are
//! ignored). Without a header the columns are positional; a first line of
//! words above numeric columns is taken for a header with unknown names and
//! is an error listing the expected ones, never read as data. Ids are
//! arbitrary tokens; fields may be double-quoted; the delimiter is
//! [`LoadOptions::csv_delimiter`]. UTF-8.

use std::path::Path;

use super::{name_of, non_empty, Format, LoadOptions};
use crate::dataset::{Dataset, DatasetBuilder};
use crate::error::{DataError, Result};
use crate::read::{
    atomic_write, for_each_line, parse_id, parse_rating, parse_timestamp, split_quoted, Encoding,
    LoadReport,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    User,
    Item,
    Rating,
    Timestamp,
}

fn column(name: &str) -> Option<Col> {
    match name.trim().to_ascii_lowercase().as_str() {
        "user" | "user_id" | "userid" => Some(Col::User),
        "item" | "item_id" | "itemid" => Some(Col::Item),
        "rating" => Some(Col::Rating),
        "timestamp" | "time" | "ts" => Some(Col::Timestamp),
        _ => None,
    }
}

/// The header names of a CSV's columns, for headers that do not use
/// graft's names. Parsed from `user=NAME,item=NAME[,rating=NAME][,time=NAME]`
/// (`timestamp=` also accepted); names match case-insensitively.
///
/// ```
/// use graft_data::formats::csv::CsvColumns;
///
/// let c: CsvColumns = "user=customer,item=product,rating=stars".parse()?;
/// assert_eq!((c.user.as_str(), c.item.as_str()), ("customer", "product"));
/// assert_eq!(c.rating.as_deref(), Some("stars"));
/// assert!("item=product".parse::<CsvColumns>().is_err()); // no user column
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CsvColumns {
    /// Header name of the user column.
    pub user: String,
    /// Header name of the item column.
    pub item: String,
    /// Header name of the rating column, if any.
    pub rating: Option<String>,
    /// Header name of the timestamp column, if any.
    pub timestamp: Option<String>,
}

impl std::str::FromStr for CsvColumns {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (mut user, mut item, mut rating, mut timestamp) = (None, None, None, None);
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (role, name) = part.split_once('=').ok_or_else(|| {
                format!("{part:?}: expected ROLE=NAME (user, item, rating, time)")
            })?;
            let slot = match role.trim().to_ascii_lowercase().as_str() {
                "user" => &mut user,
                "item" => &mut item,
                "rating" => &mut rating,
                "time" | "timestamp" => &mut timestamp,
                r => {
                    return Err(format!(
                        "unknown column role {r:?} (user, item, rating, time)"
                    ))
                }
            };
            if slot.replace(name.trim().to_owned()).is_some() {
                return Err(format!("column role {role:?} given twice"));
            }
        }
        Ok(CsvColumns {
            user: user.ok_or("the user column is missing (user=NAME)")?,
            item: item.ok_or("the item column is missing (item=NAME)")?,
            rating,
            timestamp,
        })
    }
}

/// The known header names, for error messages.
const KNOWN_NAMES: &str = "user/user_id/userId, item/item_id/itemId, rating, timestamp/time/ts";

/// The columns of a header under an explicit mapping: each field's role,
/// `None` for a column to ignore.
fn mapped(header: &[String], map: &CsvColumns) -> std::result::Result<Vec<Option<Col>>, String> {
    let mut cols = vec![None; header.len()];
    let mut wanted = vec![(Col::User, &map.user), (Col::Item, &map.item)];
    wanted.extend(map.rating.iter().map(|r| (Col::Rating, r)));
    wanted.extend(map.timestamp.iter().map(|t| (Col::Timestamp, t)));
    for (col, name) in wanted {
        let at = header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!(
                    "the header has no column {name:?} (it has {})",
                    header.join(", ")
                )
            })?;
        cols[at] = Some(col);
    }
    Ok(cols)
}

/// Whether a first line that is not graft's header looks like a header
/// anyway: every field has a letter, and below at least one of them the
/// next line holds a number.
fn looks_like_header(first: &[String], next: Option<&[String]>) -> bool {
    let Some(next) = next else { return false };
    first.len() == next.len()
        && first
            .iter()
            .all(|f| f.chars().any(|c| c.is_ascii_alphabetic()))
        && next.iter().any(|f| f.trim().parse::<f64>().is_ok())
}

fn positional(n: usize) -> std::result::Result<Vec<Col>, String> {
    match n {
        2 => Ok(vec![Col::User, Col::Item]),
        3 => Ok(vec![Col::User, Col::Item, Col::Rating]),
        4 => Ok(vec![Col::User, Col::Item, Col::Rating, Col::Timestamp]),
        _ => Err(format!(
            "expected 2 to 4 fields (user,item[,rating][,timestamp]), found {n}"
        )),
    }
}

/// Loads a generic interactions CSV file.
///
/// # Errors
/// A missing or empty file, a header without `user` and `item` or with a
/// duplicate column (in lenient mode too), a line whose field count differs
/// from the first, an empty id, a non-numeric rating or timestamp, a
/// repeated header line.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
    if !path.is_file() {
        return Err(DataError::MissingFile {
            path: path.to_path_buf(),
        });
    }
    let delim = opts.csv_delimiter;
    let parse_err = |line: usize, reason: String| DataError::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    };
    // The first two lines decide whether the first is a header; a bad
    // header is fatal even in lenient mode (skipping it would silently read
    // the columns positionally).
    let peek = first_lines(path, 2)?;
    let mut header: Option<(usize, Vec<String>, Vec<Option<Col>>)> = None;
    if let Some((no, line)) = peek.first() {
        let f = split_quoted(line, delim).map_err(|r| parse_err(*no, r))?;
        match header_columns(&f, opts.csv_columns.as_ref()).map_err(|r| parse_err(*no, r))? {
            Some(c) => header = Some((*no, f, c)),
            None => {
                let next = match peek.get(1) {
                    Some((_, l)) => split_quoted(l, delim).ok(),
                    None => None,
                };
                if looks_like_header(&f, next.as_deref()) {
                    return Err(parse_err(
                        *no,
                        format!(
                            "the first line ({}) looks like a header, but graft knows none of its \
                             names (known: {KNOWN_NAMES}); map them, e.g. --columns user={},item={}",
                            f.join(", "),
                            f[0],
                            f.get(1).map_or("NAME", String::as_str),
                        ),
                    ));
                }
            }
        }
    }
    let mut report = LoadReport::default();
    let mut b = DatasetBuilder::default();
    let mut cols: Option<Vec<Option<Col>>> = header.as_ref().map(|(_, _, c)| c.clone());
    for_each_line(path, Encoding::Utf8, opts.mode, &mut report, |no, line| {
        let f = split_quoted(line, delim)?;
        if let Some((h_no, h, _)) = &header {
            if no == *h_no {
                return Ok(());
            }
            if *h == f {
                return Err("repeated header line".into());
            }
        }
        let c = match &cols {
            Some(c) => c,
            None => cols.insert(positional(f.len())?.into_iter().map(Some).collect()),
        };
        if f.len() != c.len() {
            return Err(format!("expected {} fields, found {}", c.len(), f.len()));
        }
        push_row(&mut b, c, &f)
    })?;
    non_empty(&b, path)?;
    Ok(b.finish(name_of(path), Format::Csv, report))
}

/// The first `n` non-blank lines of a UTF-8 file with their 1-based line
/// numbers (BOM and line ends removed; lines that are not UTF-8 are left
/// to the main pass to report).
fn first_lines(path: &Path, n: usize) -> Result<Vec<(usize, String)>> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut out = Vec::with_capacity(n);
    for (i, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let bytes = line.map_err(|e| DataError::io(path, e))?;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            break;
        };
        let text = text.trim_end_matches('\r');
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if !text.trim().is_empty() {
            out.push((i + 1, text.to_owned()));
            if out.len() == n {
                break;
            }
        }
    }
    Ok(out)
}

/// The columns when the first line `f` is a header: under an explicit
/// mapping it must be one; otherwise it is when every field is a known
/// name. `Ok(None)`: not a header by its own looks (the next line decides).
fn header_columns(
    f: &[String],
    map: Option<&CsvColumns>,
) -> std::result::Result<Option<Vec<Option<Col>>>, String> {
    if let Some(map) = map {
        return mapped(f, map).map(Some);
    }
    let named: Option<Vec<Col>> = f.iter().map(|x| column(x)).collect();
    let Some(named) = named else {
        // Some known names among unknown ones: a header graft cannot read.
        if f.iter().any(|x| column(x).is_some()) {
            return Err(format!(
                "the header ({}) mixes names graft knows with others (known: {KNOWN_NAMES}); \
                 map the columns, e.g. --columns user=NAME,item=NAME",
                f.join(", ")
            ));
        }
        return Ok(None);
    };
    let dup = (0..named.len()).find(|&i| named[..i].contains(&named[i]));
    match dup {
        Some(i) => Err(format!("duplicate header column {:?}", f[i])),
        None if !named.contains(&Col::User) || !named.contains(&Col::Item) => {
            Err("the header needs a user and an item column".to_owned())
        }
        None => Ok(Some(named.into_iter().map(Some).collect())),
    }
}

fn push_row(
    b: &mut DatasetBuilder,
    cols: &[Option<Col>],
    f: &[String],
) -> std::result::Result<(), String> {
    let (mut user, mut item, mut rating, mut ts) = ("", "", None, None);
    for (c, v) in cols.iter().zip(f) {
        match c {
            Some(Col::User) => user = parse_id(v, "user id")?,
            Some(Col::Item) => item = parse_id(v, "item id")?,
            Some(Col::Rating) => rating = Some(parse_rating(v)?),
            Some(Col::Timestamp) => ts = Some(parse_timestamp(v)?),
            None => {}
        }
    }
    b.push(user, item, rating, ts);
    Ok(())
}

/// Writes the interactions of `ds` as a CSV with a header
/// (`user,item[,rating][,timestamp]`), atomically.
///
/// # Errors
/// [`DataError::Config`] when an id could not be read back (line break,
/// surrounding whitespace); [`DataError::Io`] when the file cannot be written.
pub fn write(ds: &Dataset, path: &Path) -> Result<()> {
    super::check_writable_ids(ds, &[])?;
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let (has_r, has_t) = (ds.has_ratings(), ds.has_timestamps());
    let mut out = String::from("user,item");
    if has_r {
        out.push_str(",rating");
    }
    if has_t {
        out.push_str(",timestamp");
    }
    out.push('\n');
    for x in &ds.interactions {
        out.push_str(&quote(ds.users.raw(x.user).unwrap_or("?")));
        out.push(',');
        out.push_str(&quote(ds.items.raw(x.item).unwrap_or("?")));
        if let (true, Some(r)) = (has_r, x.rating) {
            out.push_str(&format!(",{r}"));
        }
        if let (true, Some(t)) = (has_t, x.timestamp) {
            out.push_str(&format!(",{t}"));
        }
        out.push('\n');
    }
    atomic_write(path, out.as_bytes())
}
