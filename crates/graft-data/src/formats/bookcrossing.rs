//! Raw BookCrossing (Ziegler et al., WWW'05): `BX-Book-Ratings.csv`
//! (`"User-ID";"ISBN";"Book-Rating"`, ratings 0-10 where 0 is implicit),
//! `BX-Books.csv` (ISBN, title, author, year, publisher, three image URLs) and
//! `BX-Users.csv` (`"User-ID";"Location";"Age"`, age may be `NULL`); all
//! `;`-separated, double-quoted, latin-1, with headers.
//!
//! The published files contain malformed lines (stray quotes and semicolons
//! inside titles); load them with [`LoadOptions::lenient`] to skip and count
//! those lines. There are no timestamps: a user's order is the file order.

use std::path::Path;

use super::{name_of, non_empty, required, Format, LoadOptions};
use crate::dataset::{Dataset, DatasetBuilder, ItemInfo, UserInfo};
use crate::error::Result;
use crate::read::{
    expect_fields, for_each_line_after_header, parse_id, parse_rating, split_quoted, Encoding,
    LoadReport,
};

const RATINGS_HEADER: [&str; 3] = ["User-ID", "ISBN", "Book-Rating"];
const BOOKS_HEADER: [&str; 8] = [
    "ISBN",
    "Book-Title",
    "Book-Author",
    "Year-Of-Publication",
    "Publisher",
    "Image-URL-S",
    "Image-URL-M",
    "Image-URL-L",
];
const USERS_HEADER: [&str; 3] = ["User-ID", "Location", "Age"];

/// Reads one `;`-separated quoted file with a fixed header, calling `row`
/// for each data line's fields.
fn read_table(
    path: &Path,
    header: &[&str],
    opts: &LoadOptions,
    report: &mut LoadReport,
    mut row: impl FnMut(&[String]) -> std::result::Result<(), String>,
) -> Result<()> {
    for_each_line_after_header(
        path,
        Encoding::Latin1,
        opts.mode,
        report,
        |line| {
            let f = split_quoted(line, ';')?;
            if f != header {
                return Err(format!("expected the header {header:?}, found {f:?}"));
            }
            Ok(())
        },
        |(), line| {
            let f = split_quoted(line, ';')?;
            if f == header {
                return Err("repeated header line".into());
            }
            expect_fields(&f, header.len())?;
            row(&f)
        },
    )
}

/// Loads a raw BookCrossing folder.
///
/// # Errors
/// A missing or empty file, a wrong header, a malformed line (strict mode),
/// a rating outside 0..=10.
pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let ratings = required(dir, "BX-Book-Ratings.csv")?;
    let books = required(dir, "BX-Books.csv")?;
    let users = required(dir, "BX-Users.csv")?;
    let mut report = LoadReport::default();
    let mut b = DatasetBuilder::default();
    read_table(&ratings, &RATINGS_HEADER, opts, &mut report, |f| {
        let user = parse_id(&f[0], "user id")?;
        let isbn = parse_id(&f[1], "ISBN")?;
        let rating = parse_rating(&f[2])?;
        if !(0.0..=10.0).contains(&rating) || rating.fract() != 0.0 {
            return Err(format!("rating {rating} is not an integer in 0..=10"));
        }
        b.push(user, isbn, Some(rating), None);
        Ok(())
    })?;
    non_empty(&b, &ratings)?;
    read_table(&books, &BOOKS_HEADER, opts, &mut report, |f| {
        let isbn = parse_id(&f[0], "ISBN")?;
        let year = f[3]
            .trim()
            .parse::<i32>()
            .map_err(|_| format!("year {:?} is not an integer", f[3]))?;
        b.set_item(
            isbn,
            ItemInfo {
                title: Some(f[1].clone()).filter(|t| !t.is_empty()),
                author: Some(f[2].clone()).filter(|t| !t.is_empty()),
                year: (year > 0).then_some(year),
                ..ItemInfo::default()
            },
        );
        Ok(())
    })?;
    read_table(&users, &USERS_HEADER, opts, &mut report, |f| {
        let user = parse_id(&f[0], "user id")?;
        let age = match f[2].trim() {
            "NULL" | "" => None,
            a => Some(
                a.parse::<u32>()
                    .map_err(|_| format!("age {a:?} is not an integer or NULL"))?,
            ),
        };
        b.set_user(
            user,
            UserInfo {
                age,
                location: Some(f[1].clone()).filter(|t| !t.is_empty()),
                ..UserInfo::default()
            },
        );
        Ok(())
    })?;
    Ok(b.finish(name_of(dir), Format::BookCrossing, report))
}
