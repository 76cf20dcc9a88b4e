//! P5/POD Amazon format (Beauty, Sports, Toys): `sequential.txt` holds one
//! line per user, `user_id item_id item_id ...` in time order (1-based
//! integer ids); `datamaps.json` maps them back to Amazon ids (`id2user`,
//! `id2item`). There are no ratings and no timestamps; the file order of a
//! user's items is their time order.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{name_of, non_empty, required, Format, LoadOptions};
use crate::dataset::{Dataset, DatasetBuilder};
use crate::error::{DataError, Result};
use crate::read::{for_each_line, parse_int_id, Encoding, LoadReport};

#[derive(Deserialize)]
struct DataMaps {
    id2user: HashMap<String, String>,
    id2item: HashMap<String, String>,
}

/// Loads a P5 Amazon folder.
///
/// # Errors
/// Missing `sequential.txt`/`datamaps.json`, a line with fewer than two
/// fields or a non-integer id, a user listed twice, invalid JSON.
pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let seq = required(dir, "sequential.txt")?;
    let maps_path = required(dir, "datamaps.json")?;
    let mut b = DatasetBuilder::default();
    let mut seen_users = std::collections::HashSet::new();
    let mut report = LoadReport::default();
    for_each_line(&seq, Encoding::Utf8, opts.mode, &mut report, |_, line| {
        let mut fields = line.split_whitespace();
        let user = parse_int_id(fields.next().unwrap_or(""), "user id")?;
        let items: Vec<&str> = fields
            .map(|f| parse_int_id(f, "item id"))
            .collect::<std::result::Result<_, _>>()?;
        if items.is_empty() {
            return Err(format!("user {user} has no items"));
        }
        if !seen_users.insert(user.to_owned()) {
            return Err(format!("user {user} appears on more than one line"));
        }
        for item in items {
            b.push(user, item, None, None);
        }
        Ok(())
    })?;
    non_empty(&b, &seq)?;

    // Bytes, not a String: invalid UTF-8 is then a JSON error with its line
    // and column rather than a bare I/O error.
    let bytes = std::fs::read(&maps_path).map_err(|e| DataError::io(&maps_path, e))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DataError::EmptyFile { path: maps_path });
    }
    let maps: DataMaps = serde_json::from_slice(&bytes).map_err(|source| DataError::Json {
        path: maps_path.clone(),
        source,
    })?;
    report.files.push(maps_path);
    for (id, raw) in maps.id2user {
        b.user_info_mut(&id).external_id = Some(raw);
    }
    for (id, raw) in maps.id2item {
        b.item_info_mut(&id).external_id = Some(raw);
    }
    Ok(b.finish(name_of(dir), Format::AmazonP5, report))
}
