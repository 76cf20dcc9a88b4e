//! The typed in-memory dataset every loader produces.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::formats::Format;
use crate::read::LoadReport;

/// A bijection between raw ids (as written in the source files) and dense
/// 0-based ids.
///
/// Dense ids follow the *sorted* raw ids: numerically when every raw id is a
/// non-negative integer (so MovieLens user `1` is dense `0` and P5 item `345`
/// is dense `344` when ids are contiguous), lexicographically otherwise
/// (ISBNs, ASINs). The order therefore never depends on file order.
///
/// Serialised as its raw ids only; deserialising rebuilds the lookup index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "IdMapRaw")]
pub struct IdMap {
    raw: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

/// The serialised form of [`IdMap`].
#[derive(Deserialize)]
struct IdMapRaw {
    raw: Vec<String>,
}

impl From<IdMapRaw> for IdMap {
    fn from(r: IdMapRaw) -> Self {
        let mut map = IdMap {
            raw: r.raw,
            index: HashMap::new(),
        };
        map.rebuild_index();
        map
    }
}

impl IdMap {
    /// Builds a map from distinct raw ids, assigning dense ids in sorted order.
    pub fn from_raw(mut raw: Vec<String>) -> Self {
        let numeric = raw
            .iter()
            .all(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()));
        if numeric {
            // By value, then by spelling ("07" before "7"), so equal ids are
            // adjacent for dedup and the order never depends on the input's.
            raw.sort_by(|a, b| {
                let (x, y) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
                x.len()
                    .cmp(&y.len())
                    .then_with(|| x.cmp(y))
                    .then_with(|| a.cmp(b))
            });
        } else {
            raw.sort();
        }
        raw.dedup();
        let index = raw
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), i as u32))
            .collect();
        IdMap { raw, index }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Dense id of a raw id.
    pub fn get(&self, raw: &str) -> Option<u32> {
        self.index.get(raw).copied()
    }

    /// Raw id of a dense id.
    pub fn raw(&self, dense: u32) -> Option<&str> {
        self.raw.get(dense as usize).map(String::as_str)
    }

    /// All raw ids in dense order.
    pub fn raw_ids(&self) -> &[String] {
        &self.raw
    }

    /// Rebuilds the lookup index after deserialisation.
    pub fn rebuild_index(&mut self) {
        self.index = self
            .raw
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), i as u32))
            .collect();
    }
}

/// One user-item interaction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// Dense user id.
    pub user: u32,
    /// Dense item id.
    pub item: u32,
    /// Explicit rating, when the source has one.
    pub rating: Option<f32>,
    /// Unix timestamp in seconds, when the source has one.
    pub timestamp: Option<i64>,
}

/// Item side information (every field optional: sources differ).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemInfo {
    /// Title (MovieLens titles keep their "(year)" suffix as published).
    pub title: Option<String>,
    /// Genres or categories, in source order.
    pub genres: Vec<String>,
    /// Author (BookCrossing).
    pub author: Option<String>,
    /// Release or publication year.
    pub year: Option<i32>,
    /// An external id, e.g. the Amazon ASIN from P5's `datamaps.json`.
    pub external_id: Option<String>,
}

/// User side information (every field optional: sources differ).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Age in years (MovieLens-1M: the lower bound of the age group code).
    pub age: Option<u32>,
    /// Gender as given (`M`/`F` in MovieLens).
    pub gender: Option<String>,
    /// Occupation name (MovieLens-1M codes are mapped to their names).
    pub occupation: Option<String>,
    /// Zip code (MovieLens) or free-text location (BookCrossing).
    pub location: Option<String>,
    /// An external id, e.g. the Amazon reviewer id from `datamaps.json`.
    pub external_id: Option<String>,
}

/// A recommendation dataset with dense ids.
///
/// `interactions` keep the source order; [`Dataset::user_sequences`] gives
/// each user's interactions in time order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    /// A short name (folder or file stem).
    pub name: String,
    /// The format it was loaded from.
    pub format: Format,
    /// Raw <-> dense user ids.
    pub users: IdMap,
    /// Raw <-> dense item ids.
    pub items: IdMap,
    /// All interactions, in source order.
    pub interactions: Vec<Interaction>,
    /// Side information per dense user id (default when the source has none).
    pub user_info: Vec<UserInfo>,
    /// Side information per dense item id (default when the source has none).
    pub item_info: Vec<ItemInfo>,
    /// What the loader read and skipped.
    pub report: LoadReport,
}

/// Summary counts of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetStats {
    /// Distinct users.
    pub users: usize,
    /// Distinct items.
    pub items: usize,
    /// Interactions (duplicates included).
    pub interactions: usize,
    /// interactions / (users * items).
    pub density: f64,
    /// Fewest interactions of a user.
    pub min_per_user: usize,
    /// Most interactions of a user.
    pub max_per_user: usize,
    /// Mean interactions per user.
    pub mean_per_user: f64,
    /// Every interaction has a rating.
    pub has_ratings: bool,
    /// Every interaction has a timestamp.
    pub has_timestamps: bool,
}

impl Dataset {
    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// Whether every interaction has a rating.
    pub fn has_ratings(&self) -> bool {
        !self.interactions.is_empty() && self.interactions.iter().all(|x| x.rating.is_some())
    }

    /// Whether every interaction has a timestamp.
    pub fn has_timestamps(&self) -> bool {
        !self.interactions.is_empty() && self.interactions.iter().all(|x| x.timestamp.is_some())
    }

    /// For every user, the indices into [`Dataset::interactions`] in time
    /// order: sorted by timestamp when every interaction has one, ties (and
    /// sources without timestamps, like P5's `sequential.txt`, which is
    /// already in time order) keep the source order.
    ///
    /// # Complexity
    /// O(n log n) for n interactions.
    pub fn user_sequences(&self) -> Vec<Vec<usize>> {
        let mut seqs = vec![Vec::new(); self.n_users()];
        for (i, x) in self.interactions.iter().enumerate() {
            seqs[x.user as usize].push(i);
        }
        if self.has_timestamps() {
            for s in &mut seqs {
                s.sort_by_key(|&i| self.interactions[i].timestamp);
            }
        }
        seqs
    }

    /// Summary statistics.
    pub fn stats(&self) -> DatasetStats {
        let mut per_user = vec![0usize; self.n_users()];
        for x in &self.interactions {
            per_user[x.user as usize] += 1;
        }
        let cells = (self.n_users() as f64) * (self.n_items() as f64);
        DatasetStats {
            users: self.n_users(),
            items: self.n_items(),
            interactions: self.interactions.len(),
            density: if cells > 0.0 {
                self.interactions.len() as f64 / cells
            } else {
                0.0
            },
            min_per_user: per_user.iter().copied().min().unwrap_or(0),
            max_per_user: per_user.iter().copied().max().unwrap_or(0),
            mean_per_user: if per_user.is_empty() {
                0.0
            } else {
                self.interactions.len() as f64 / per_user.len() as f64
            },
            has_ratings: self.has_ratings(),
            has_timestamps: self.has_timestamps(),
        }
    }

    /// A display name for an item: its title, else `item_<raw id>`.
    pub fn item_name(&self, item: u32) -> String {
        match self
            .item_info
            .get(item as usize)
            .and_then(|i| i.title.clone())
        {
            Some(t) => t,
            None => format!("item_{}", self.items.raw(item).unwrap_or("?")),
        }
    }
}

/// Accumulates raw interactions and side information while a loader parses,
/// then assigns dense ids ([`IdMap::from_raw`]).
#[derive(Debug, Default)]
pub(crate) struct DatasetBuilder {
    user_tmp: HashMap<String, u32>,
    item_tmp: HashMap<String, u32>,
    raw: Vec<(u32, u32, Option<f32>, Option<i64>)>,
    user_info: HashMap<String, UserInfo>,
    item_info: HashMap<String, ItemInfo>,
}

fn intern(map: &mut HashMap<String, u32>, id: &str) -> u32 {
    if let Some(&i) = map.get(id) {
        return i;
    }
    let i = map.len() as u32;
    map.insert(id.to_owned(), i);
    i
}

impl DatasetBuilder {
    pub(crate) fn push(&mut self, user: &str, item: &str, rating: Option<f32>, ts: Option<i64>) {
        let u = intern(&mut self.user_tmp, user);
        let i = intern(&mut self.item_tmp, item);
        self.raw.push((u, i, rating, ts));
    }

    pub(crate) fn set_item(&mut self, item: &str, info: ItemInfo) {
        self.item_info.insert(item.to_owned(), info);
    }

    pub(crate) fn set_user(&mut self, user: &str, info: UserInfo) {
        self.user_info.insert(user.to_owned(), info);
    }

    pub(crate) fn item_info_mut(&mut self, item: &str) -> &mut ItemInfo {
        self.item_info.entry(item.to_owned()).or_default()
    }

    pub(crate) fn user_info_mut(&mut self, user: &str) -> &mut UserInfo {
        self.user_info.entry(user.to_owned()).or_default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub(crate) fn finish(self, name: String, format: Format, mut report: LoadReport) -> Dataset {
        let DatasetBuilder {
            user_tmp,
            item_tmp,
            raw,
            mut user_info,
            mut item_info,
        } = self;
        let remap = |tmp: HashMap<String, u32>| {
            let mut by_tmp = vec![String::new(); tmp.len()];
            for (k, v) in tmp {
                by_tmp[v as usize] = k;
            }
            let map = IdMap::from_raw(by_tmp.clone());
            let to_dense: Vec<u32> = by_tmp
                .iter()
                .map(|r| map.get(r).unwrap_or(u32::MAX))
                .collect();
            (map, to_dense)
        };
        let (users, user_dense) = remap(user_tmp);
        let (items, item_dense) = remap(item_tmp);
        let interactions = raw
            .into_iter()
            .map(|(u, i, rating, timestamp)| Interaction {
                user: user_dense[u as usize],
                item: item_dense[i as usize],
                rating,
                timestamp,
            })
            .collect();
        let (user_given, item_given) = (!user_info.is_empty(), !item_info.is_empty());
        let mut missing = 0;
        let users_info: Vec<UserInfo> = users
            .raw_ids()
            .iter()
            .map(|r| {
                user_info.remove(r).unwrap_or_else(|| {
                    missing += usize::from(user_given);
                    UserInfo::default()
                })
            })
            .collect();
        let items_info: Vec<ItemInfo> = items
            .raw_ids()
            .iter()
            .map(|r| {
                item_info.remove(r).unwrap_or_else(|| {
                    missing += usize::from(item_given);
                    ItemInfo::default()
                })
            })
            .collect();
        report.side_info_unmatched += user_info.len() + item_info.len();
        report.side_info_missing += missing;
        Dataset {
            name,
            format,
            users,
            items,
            interactions,
            user_info: users_info,
            item_info: items_info,
            report,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_sort_numerically() {
        let m = IdMap::from_raw(vec!["10".into(), "2".into(), "1".into(), "2".into()]);
        assert_eq!(m.raw_ids(), &["1", "2", "10"]);
        assert_eq!(m.get("10"), Some(2));
        assert_eq!(m.raw(0), Some("1"));
        let m = IdMap::from_raw(vec!["b".into(), "10".into(), "a".into()]);
        assert_eq!(m.raw_ids(), &["10", "a", "b"]);
    }
}
