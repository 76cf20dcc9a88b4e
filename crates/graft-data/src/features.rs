//! Side information as ELCoRec uses it: categorical codes for the GAT
//! expert's user and feature nodes, and texts for prompts and retrieval.
//!
//! * [`CtrFeatures`]: per user, one code per profile field (MovieLens:
//!   gender, age, occupation, zip; BookCrossing: location, age; other
//!   formats: none), and per item one *feature node* id (first genre for
//!   movies, author for books). Code 0 means "unknown" in every vocabulary.
//! * [`item_text`] (what the sentence encoder embeds for retrieval,
//!   `"movie: Heat (1995), genre: Action, Crime"`), [`item_title`] (what
//!   prompts show) and [`user_profile`] (prompt-ready profile words).
//!
//! ```
//! use graft_data::{features::{item_text, CtrFeatures}, synthetic};
//!
//! let ds = synthetic::planted_clusters(&Default::default())?.dataset;
//! let f = CtrFeatures::build(&ds);
//! assert_eq!(f.user_codes.len(), ds.n_users());
//! assert!(item_text(&ds, 0).starts_with("item: "));
//! # Ok::<(), graft_data::DataError>(())
//! ```

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::formats::movielens::ML1M_AGE_CODES;
use crate::{Dataset, Format, UserInfo};

/// A string vocabulary; code 0 is reserved for "unknown". Two
/// vocabularies are equal when they hold the same names in the same order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Vocab {
    /// `names[c - 1]` is the value of code `c`, in order of first appearance.
    pub names: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl PartialEq for Vocab {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

impl Eq for Vocab {}

impl Vocab {
    /// Code of `value`, adding it if new; `None` gives 0. Works on a
    /// deserialized vocabulary too (its lookup table is rebuilt).
    pub fn intern(&mut self, value: Option<&str>) -> u32 {
        let Some(v) = value else { return 0 };
        if self.index.len() != self.names.len() {
            // Deserialized: the lookup table is not stored.
            self.index = (1..)
                .zip(&self.names)
                .map(|(c, n)| (n.clone(), c))
                .collect();
        }
        if let Some(&c) = self.index.get(v) {
            return c;
        }
        self.names.push(v.to_owned());
        let c = self.names.len() as u32;
        self.index.insert(v.to_owned(), c);
        c
    }

    /// Number of codes including the unknown code 0.
    pub fn size(&self) -> usize {
        self.names.len() + 1
    }

    /// The value of code `c` (`None` for 0 or an unknown code).
    pub fn name(&self, c: u32) -> Option<&str> {
        (c as usize)
            .checked_sub(1)
            .and_then(|i| self.names.get(i))
            .map(String::as_str)
    }
}

/// Categorical inputs of ELCoRec's GAT expert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtrFeatures {
    /// Names of the user profile fields, e.g. `["gender", "age", "occupation", "zip"]`.
    pub user_fields: Vec<String>,
    /// One vocabulary per user field.
    pub user_vocabs: Vec<Vocab>,
    /// `user_codes[u][f]`: code of field `f` of user `u` (0 = unknown).
    pub user_codes: Vec<Vec<u32>>,
    /// What an item's feature node is: `"genre"`, `"author"` or `"none"`.
    pub item_feature: String,
    /// Vocabulary of item features.
    pub item_vocab: Vocab,
    /// `item_codes[i]`: the feature node of item `i` (0 = none).
    pub item_codes: Vec<u32>,
}

/// `(field name, value)` extractors of one format's profile fields.
type Field = (&'static str, fn(&UserInfo) -> Option<String>);

fn user_fields(ds: &Dataset) -> Vec<Field> {
    let gender: Field = ("gender", |u| u.gender.clone());
    let age: Field = ("age", |u| u.age.map(|a| a.to_string()));
    let occupation: Field = ("occupation", |u| u.occupation.clone());
    let location: Field = ("location", |u| u.location.clone());
    match ds.format {
        // ELCoRec's user node for MovieLens: gender, age, occupation, zip.
        Format::Movielens100k | Format::Movielens1m | Format::Movielens25m => {
            vec![gender, age, occupation, ("zip", |u| u.location.clone())]
        }
        // BookCrossing: location and age.
        Format::BookCrossing => vec![location, age],
        // Other sources (RecBole atomic files, CSV, synthetic): the fields
        // some user has, in MovieLens order.
        _ => [gender, age, occupation, location]
            .into_iter()
            .filter(|(_, get)| ds.user_info.iter().any(|u| get(u).is_some()))
            .collect(),
    }
}

/// The item feature of the GAT's feature nodes: `"genre"` (MovieLens),
/// `"author"` (BookCrossing); for other sources whichever the items have
/// (genres first), else `"none"`.
fn item_feature(ds: &Dataset) -> &'static str {
    match ds.format {
        Format::BookCrossing => "author",
        Format::Movielens100k | Format::Movielens1m | Format::Movielens25m => "genre",
        _ if ds.item_info.iter().any(|i| !i.genres.is_empty()) => "genre",
        _ if ds.item_info.iter().any(|i| i.author.is_some()) => "author",
        _ => "none",
    }
}

impl CtrFeatures {
    /// Codes for every user and item of `ds`; vocabularies follow dense id
    /// order, so the same dataset always gives the same codes.
    pub fn build(ds: &Dataset) -> Self {
        let fields = user_fields(ds);
        let mut user_vocabs = vec![Vocab::default(); fields.len()];
        let empty = UserInfo::default();
        let user_codes = (0..ds.n_users())
            .map(|u| {
                let info = ds.user_info.get(u).unwrap_or(&empty);
                fields
                    .iter()
                    .zip(user_vocabs.iter_mut())
                    .map(|((_, get), v)| v.intern(get(info).as_deref()))
                    .collect()
            })
            .collect();
        let item_feature = item_feature(ds);
        let mut item_vocab = Vocab::default();
        let item_codes = (0..ds.n_items())
            .map(|i| {
                let info = ds.item_info.get(i);
                let value = match item_feature {
                    "author" => info.and_then(|x| x.author.as_deref()),
                    "genre" => info.and_then(|x| x.genres.first().map(String::as_str)),
                    _ => None,
                };
                item_vocab.intern(value)
            })
            .collect();
        Self {
            user_fields: fields.iter().map(|(n, _)| (*n).to_owned()).collect(),
            user_vocabs,
            user_codes,
            item_feature: item_feature.to_owned(),
            item_vocab,
            item_codes,
        }
    }

    /// Vocabulary sizes of the user fields (each including code 0).
    pub fn user_vocab_sizes(&self) -> Vec<usize> {
        self.user_vocabs.iter().map(Vocab::size).collect()
    }
}

/// The noun of a dataset's items: `"movie"`, `"book"` or `"item"`.
pub fn item_noun(format: Format) -> &'static str {
    match format {
        Format::Movielens100k | Format::Movielens1m | Format::Movielens25m => "movie",
        Format::BookCrossing => "book",
        _ => "item",
    }
}

/// The item's title as prompts show it ([`Dataset::item_name`]: the title,
/// else `item_<raw id>`); books add `by <author>`.
pub fn item_title(ds: &Dataset, item: u32) -> String {
    let name = ds.item_name(item);
    match ds
        .item_info
        .get(item as usize)
        .and_then(|i| i.author.as_deref())
    {
        Some(a) if ds.format == Format::BookCrossing => format!("{name} by {a}"),
        _ => name,
    }
}

/// The text the sentence encoder embeds for semantic retrieval:
/// `"movie: <title>, genre: <g1>, <g2>"`, `"book: <title>, author: <a>"`,
/// or `"item: <name>"`.
pub fn item_text(ds: &Dataset, item: u32) -> String {
    let mut s = format!("{}: {}", item_noun(ds.format), ds.item_name(item));
    if let Some(info) = ds.item_info.get(item as usize) {
        if !info.genres.is_empty() {
            s.push_str(", genre: ");
            s.push_str(&info.genres.join(", "));
        }
        if let Some(a) = &info.author {
            s.push_str(", author: ");
            s.push_str(a);
        }
    }
    s
}

/// Profile words for prompts. MovieLens-1M age codes become their groups
/// (`25` -> `"25-34"`), `M`/`F` become `male`/`female`; the zip code is a
/// GAT input but not shown in prompts (as in the authors' prompts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileWords {
    /// `"male"` / `"female"`.
    pub gender: Option<String>,
    /// Age or age group.
    pub age: Option<String>,
    /// Occupation name.
    pub occupation: Option<String>,
    /// Location (BookCrossing).
    pub location: Option<String>,
}

/// The MovieLens-1M age group of code `c` (the release's README).
pub fn ml1m_age_group(c: u32) -> Option<&'static str> {
    const GROUPS: [&str; 7] = [
        "under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+",
    ];
    ML1M_AGE_CODES
        .iter()
        .position(|&x| x == c)
        .map(|i| GROUPS[i])
}

/// The prompt profile of user `u` (all `None` when the dataset has none).
pub fn user_profile(ds: &Dataset, u: u32) -> ProfileWords {
    let Some(info) = ds.user_info.get(u as usize) else {
        return ProfileWords::default();
    };
    let gender = info.gender.as_deref().map(|g| match g {
        "M" | "m" => "male".to_owned(),
        "F" | "f" => "female".to_owned(),
        other => other.to_owned(),
    });
    let age = info.age.map(|a| match ds.format {
        Format::Movielens1m => ml1m_age_group(a).map_or_else(|| a.to_string(), str::to_owned),
        _ => a.to_string(),
    });
    let location = match ds.format {
        Format::BookCrossing => info.location.clone(),
        _ => None,
    };
    ProfileWords {
        gender,
        age,
        occupation: info.occupation.clone(),
        location,
    }
}
