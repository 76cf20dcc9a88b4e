//! MovieLens 100K, 1M and 25M (GroupLens), in their published layouts.
//!
//! | release | interactions | items | users | separator, encoding |
//! |---|---|---|---|---|
//! | 100K | `u.data` (`user\titem\trating\tts`) | `u.item` (24 `\|` fields, 19 genre flags named by `u.genre`) | `u.user` (`id\|age\|gender\|occupation\|zip`) | latin-1 |
//! | 1M | `ratings.dat` (`user::movie::rating::ts`) | `movies.dat` (`id::title::g1\|g2`) | `users.dat` (`id::gender::age::occupation::zip`, coded) | `::`, latin-1 |
//! | 25M | `ratings.csv` (`userId,movieId,rating,timestamp`) | `movies.csv` (`movieId,title,genres`, quoted titles) | none | `,`, UTF-8 |

use std::path::Path;

use super::{name_of, non_empty, required, Format, LoadOptions};
use crate::dataset::{Dataset, DatasetBuilder, ItemInfo, UserInfo};
use crate::error::Result;
use crate::read::{
    expect_fields, for_each_line, for_each_line_after_header, parse_int_id, parse_rating,
    parse_timestamp, split_exact, split_quoted, Encoding, LoadReport,
};

/// MovieLens-1M occupation codes (from the release's README).
pub const ML1M_OCCUPATIONS: [&str; 21] = [
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
];

/// MovieLens-1M age group codes.
pub const ML1M_AGE_CODES: [u32; 7] = [1, 18, 25, 35, 45, 50, 56];

/// The year of a MovieLens title ending in `(YYYY)`.
pub fn year_from_title(title: &str) -> Option<i32> {
    let t = title.trim_end();
    let inner = t.strip_suffix(')')?;
    let open = inner.rfind('(')?;
    let y = &inner[open + 1..];
    if y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()) {
        y.parse().ok()
    } else {
        None
    }
}

/// A header check for [`for_each_line_after_header`]: the line must equal `h`.
fn exact_header(h: &'static str) -> impl FnOnce(&str) -> std::result::Result<(), String> {
    move |line| {
        if line.trim() == h {
            Ok(())
        } else {
            Err(format!(
                "expected the header {h:?}, found {:?}",
                line.trim()
            ))
        }
    }
}

/// A splitter for [`push_ratings`] on a plain separator.
fn split_fields(sep: &'static str) -> impl Fn(&str) -> std::result::Result<Vec<String>, String> {
    move |l| {
        Ok(split_exact(l, sep, 4)?
            .into_iter()
            .map(str::to_owned)
            .collect())
    }
}

/// Reads `user, item, rating, timestamp` lines (after `header`, if any).
fn push_ratings(
    path: &Path,
    encoding: Encoding,
    opts: &LoadOptions,
    report: &mut LoadReport,
    b: &mut DatasetBuilder,
    split: impl Fn(&str) -> std::result::Result<Vec<String>, String>,
    header: Option<&'static str>,
) -> Result<()> {
    let mut push = |line: &str| {
        let f = split(line)?;
        expect_fields(&f, 4)?;
        let user = parse_int_id(&f[0], "user id")?;
        let item = parse_int_id(&f[1], "item id")?;
        let rating = parse_rating(&f[2])?;
        let ts = parse_timestamp(&f[3])?;
        b.push(user, item, Some(rating), Some(ts));
        Ok(())
    };
    match header {
        Some(h) => for_each_line_after_header(
            path,
            encoding,
            opts.mode,
            report,
            exact_header(h),
            |(), l| push(l),
        ),
        None => for_each_line(path, encoding, opts.mode, report, |_, l| push(l)),
    }
}

/// Loads MovieLens-100K from its folder (`u.data`, `u.item`, `u.user`, `u.genre`).
///
/// # Errors
/// A missing or empty file, a malformed line (wrong field count, non-numeric
/// id, non-finite rating, bad genre flag), no interactions.
pub fn load_100k(dir: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let data = required(dir, "u.data")?;
    let item = required(dir, "u.item")?;
    let user = required(dir, "u.user")?;
    let genre = required(dir, "u.genre")?;
    let mut report = LoadReport::default();
    let mut b = DatasetBuilder::default();
    push_ratings(
        &data,
        Encoding::Utf8,
        opts,
        &mut report,
        &mut b,
        split_fields("\t"),
        None,
    )?;
    non_empty(&b, &data)?;

    let mut genres: Vec<(usize, String)> = Vec::new();
    for_each_line(
        &genre,
        Encoding::Latin1,
        opts.mode,
        &mut report,
        |_, line| {
            let f = split_exact(line, "|", 2)?;
            let idx = f[1]
                .trim()
                .parse::<usize>()
                .map_err(|_| format!("genre index {:?} is not an integer", f[1]))?;
            genres.push((idx, f[0].to_owned()));
            Ok(())
        },
    )?;
    genres.sort();
    let genre_names: Vec<String> = genres.into_iter().map(|(_, n)| n).collect();

    for_each_line(
        &item,
        Encoding::Latin1,
        opts.mode,
        &mut report,
        |_, line| {
            let f = split_exact(line, "|", 5 + genre_names.len())?;
            let id = parse_int_id(f[0], "item id")?;
            let mut info = ItemInfo {
                title: Some(f[1].to_owned()).filter(|t| !t.is_empty()),
                year: f[2].rsplit('-').next().and_then(|y| y.parse().ok()),
                ..ItemInfo::default()
            };
            for (flag, name) in f[5..].iter().zip(&genre_names) {
                match flag.trim() {
                    "1" => info.genres.push(name.clone()),
                    "0" => {}
                    other => {
                        return Err(format!("genre flag {other:?} for {name:?} is not 0 or 1"))
                    }
                }
            }
            b.set_item(id, info);
            Ok(())
        },
    )?;

    for_each_line(
        &user,
        Encoding::Latin1,
        opts.mode,
        &mut report,
        |_, line| {
            let f = split_exact(line, "|", 5)?;
            let id = parse_int_id(f[0], "user id")?;
            let age = f[1]
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("age {:?} is not an integer", f[1]))?;
            b.set_user(
                id,
                UserInfo {
                    age: Some(age),
                    gender: Some(f[2].to_owned()),
                    occupation: Some(f[3].to_owned()),
                    location: Some(f[4].to_owned()),
                    external_id: None,
                },
            );
            Ok(())
        },
    )?;
    Ok(b.finish(name_of(dir), Format::Movielens100k, report))
}

/// Parses MovieLens-1M `movies.dat` (latin-1, `id::title::genre|genre`).
///
/// # Errors
/// A missing or empty file, a malformed line (strict mode).
pub fn parse_1m_movies(
    path: &Path,
    opts: &LoadOptions,
    report: &mut LoadReport,
) -> Result<Vec<(String, ItemInfo)>> {
    let mut out = Vec::new();
    for_each_line(path, Encoding::Latin1, opts.mode, report, |_, line| {
        let f = split_exact(line, "::", 3)?;
        let id = parse_int_id(f[0], "movie id")?;
        let title = f[1].to_owned();
        out.push((
            id.to_owned(),
            ItemInfo {
                year: year_from_title(&title),
                title: Some(title),
                genres: f[2]
                    .split('|')
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect(),
                ..ItemInfo::default()
            },
        ));
        Ok(())
    })?;
    Ok(out)
}

/// Parses MovieLens-1M `users.dat` (`id::gender::age::occupation::zip`);
/// occupation codes become names ([`ML1M_OCCUPATIONS`]), the age is the
/// group's code ([`ML1M_AGE_CODES`]).
///
/// # Errors
/// A missing or empty file, a malformed line or unknown code (strict mode).
pub fn parse_1m_users(
    path: &Path,
    opts: &LoadOptions,
    report: &mut LoadReport,
) -> Result<Vec<(String, UserInfo)>> {
    let mut out = Vec::new();
    for_each_line(path, Encoding::Latin1, opts.mode, report, |_, line| {
        let f = split_exact(line, "::", 5)?;
        let id = parse_int_id(f[0], "user id")?;
        if !matches!(f[1], "M" | "F") {
            return Err(format!("gender {:?} is not M or F", f[1]));
        }
        let age = f[2]
            .parse::<u32>()
            .ok()
            .filter(|a| ML1M_AGE_CODES.contains(a))
            .ok_or_else(|| format!("age code {:?} is not one of {ML1M_AGE_CODES:?}", f[2]))?;
        let occupation = f[3]
            .parse::<usize>()
            .ok()
            .and_then(|o| ML1M_OCCUPATIONS.get(o))
            .ok_or_else(|| format!("occupation code {:?} is not in 0..=20", f[3]))?;
        out.push((
            id.to_owned(),
            UserInfo {
                age: Some(age),
                gender: Some(f[1].to_owned()),
                occupation: Some((*occupation).to_owned()),
                location: Some(f[4].to_owned()),
                external_id: None,
            },
        ));
        Ok(())
    })?;
    Ok(out)
}

/// Loads MovieLens-1M from its folder (`ratings.dat`, `movies.dat`, `users.dat`).
///
/// # Errors
/// As [`parse_1m_movies`] and [`parse_1m_users`], plus malformed rating lines.
pub fn load_1m(dir: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let ratings = required(dir, "ratings.dat")?;
    let movies = required(dir, "movies.dat")?;
    let users = required(dir, "users.dat")?;
    let mut report = LoadReport::default();
    let mut b = DatasetBuilder::default();
    push_ratings(
        &ratings,
        Encoding::Latin1,
        opts,
        &mut report,
        &mut b,
        split_fields("::"),
        None,
    )?;
    non_empty(&b, &ratings)?;
    for (id, info) in parse_1m_movies(&movies, opts, &mut report)? {
        b.set_item(&id, info);
    }
    for (id, info) in parse_1m_users(&users, opts, &mut report)? {
        b.set_user(&id, info);
    }
    Ok(b.finish(name_of(dir), Format::Movielens1m, report))
}

/// Loads MovieLens-25M from its folder (`ratings.csv`, `movies.csv`, with headers).
///
/// # Errors
/// A missing or empty file, a wrong or repeated header, a malformed line.
pub fn load_25m(dir: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let ratings = required(dir, "ratings.csv")?;
    let movies = required(dir, "movies.csv")?;
    let mut report = LoadReport::default();
    let mut b = DatasetBuilder::default();
    push_ratings(
        &ratings,
        Encoding::Utf8,
        opts,
        &mut report,
        &mut b,
        |l| split_quoted(l, ','),
        Some("userId,movieId,rating,timestamp"),
    )?;
    non_empty(&b, &ratings)?;
    for_each_line_after_header(
        &movies,
        Encoding::Utf8,
        opts.mode,
        &mut report,
        exact_header("movieId,title,genres"),
        |(), line| {
            let f = split_quoted(line, ',')?;
            expect_fields(&f, 3)?;
            let id = parse_int_id(&f[0], "movie id")?;
            let genres = if f[2] == "(no genres listed)" {
                Vec::new()
            } else {
                f[2].split('|')
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            b.set_item(
                id,
                ItemInfo {
                    year: year_from_title(&f[1]),
                    title: Some(f[1].clone()),
                    genres,
                    ..ItemInfo::default()
                },
            );
            Ok(())
        },
    )?;
    Ok(b.finish(name_of(dir), Format::Movielens25m, report))
}
