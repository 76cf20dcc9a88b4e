//! A generic interactions CSV for anyone's data: `user,item[,rating][,timestamp]`.
//!
//! The first line is a header when every field is a known column name
//! (`user`/`user_id`/`userId`, `item`/`item_id`/`itemId`, `rating`,
//! `timestamp`/`time`/`ts`, any case); columns may then come in any order.
//! Without a header the columns are positional. Ids are arbitrary tokens;
//! fields may be double-quoted; the delimiter is [`LoadOptions::csv_delimiter`].
//! UTF-8.

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
    let mut report = LoadReport::default();
    let mut b = DatasetBuilder::default();
    let mut cols: Option<Vec<Col>> = None;
    let mut header: Option<Vec<String>> = None;
    let delim = opts.csv_delimiter;
    // A header names the columns: a bad one is fatal even in lenient mode
    // (skipping it would silently read the columns positionally).
    let mut header_error: Option<(usize, String)> = None;
    for_each_line(path, Encoding::Utf8, opts.mode, &mut report, |no, line| {
        if header_error.is_some() {
            return Ok(());
        }
        let f = split_quoted(line, delim)?;
        let Some(c) = &cols else {
            let named: Option<Vec<Col>> = f.iter().map(|x| column(x)).collect();
            if let Some(named) = named {
                let dup = (0..named.len()).find(|&i| named[..i].contains(&named[i]));
                let bad = match dup {
                    Some(i) => Some(format!("duplicate header column {:?}", f[i])),
                    None if !named.contains(&Col::User) || !named.contains(&Col::Item) => {
                        Some("the header needs a user and an item column".to_owned())
                    }
                    None => None,
                };
                if let Some(reason) = bad {
                    header_error = Some((no, reason.clone()));
                    return Err(reason);
                }
                cols = Some(named);
                header = Some(f);
                return Ok(());
            }
            let c = positional(f.len())?;
            cols = Some(c);
            return push_row(&mut b, cols.as_deref().unwrap_or(&[]), &f);
        };
        if header.as_ref() == Some(&f) {
            return Err("repeated header line".into());
        }
        if f.len() != c.len() {
            return Err(format!("expected {} fields, found {}", c.len(), f.len()));
        }
        push_row(&mut b, c, &f)
    })?;
    if let Some((line, reason)) = header_error {
        return Err(DataError::Parse {
            path: path.to_path_buf(),
            line,
            reason,
        });
    }
    non_empty(&b, path)?;
    Ok(b.finish(name_of(path), Format::Csv, report))
}

fn push_row(b: &mut DatasetBuilder, cols: &[Col], f: &[String]) -> std::result::Result<(), String> {
    let (mut user, mut item, mut rating, mut ts) = ("", "", None, None);
    for (c, v) in cols.iter().zip(f) {
        match c {
            Col::User => user = parse_id(v, "user id")?,
            Col::Item => item = parse_id(v, "item id")?,
            Col::Rating => rating = Some(parse_rating(v)?),
            Col::Timestamp => ts = Some(parse_timestamp(v)?),
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
