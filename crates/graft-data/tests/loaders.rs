//! Every loader on a fixture written in the exact source layout: counts,
//! dense ids, ratings and timestamps, side information, format detection,
//! time order, and agreement between formats holding the same data.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::{ratings_raw, raw_interactions, Fixture};
use graft_data::formats::{csv, recbole};
use graft_data::{
    load, load_auto, CtrConfig, CtrSplit, DataError, Dataset, Format, ImplicitRatings, ItemInfo,
    LeaveOneOut, LoadOptions, NegativeSampler, UserInfo,
};

fn strict() -> LoadOptions {
    LoadOptions::default()
}

fn load_ok(fx: &Fixture) -> Dataset {
    let (_tmp, res) = fx.load(&strict());
    res.unwrap_or_else(|e| panic!("{} fixture should load: {e}", fx.dir_name))
}

fn raw_ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

fn item<'a>(ds: &'a Dataset, raw: &str) -> &'a ItemInfo {
    &ds.item_info[ds.items.get(raw).unwrap_or_else(|| panic!("no item {raw}")) as usize]
}

fn user<'a>(ds: &'a Dataset, raw: &str) -> &'a UserInfo {
    &ds.user_info[ds.users.get(raw).unwrap_or_else(|| panic!("no user {raw}")) as usize]
}

fn file_names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The expected time order of [`common::RATINGS`] per dense user (raw users
/// 1, 2, 3, 10), as indices into the interactions: timestamp ties keep the
/// file order (user 1: lines 2 and 6; user 2: lines 3 and 7).
const RATINGS_SEQUENCES: [&[usize]; 4] = [&[3, 1, 5], &[9, 2, 6], &[4, 8], &[7, 0]];

/// Checks what every loader of [`common::RATINGS`] must give.
fn check_ratings_dataset(ds: &Dataset) {
    assert_eq!(ds.n_users(), 4);
    assert_eq!(ds.n_items(), 5);
    assert_eq!(ds.interactions.len(), 10);
    // Numeric raw ids sort numerically: "10" is the last user, "12" the last item.
    assert_eq!(
        ds.users.raw_ids(),
        raw_ids(&["1", "2", "3", "10"]).as_slice()
    );
    assert_eq!(
        ds.items.raw_ids(),
        raw_ids(&["1", "2", "3", "5", "12"]).as_slice()
    );
    assert_eq!(ds.users.get("1"), Some(0));
    assert_eq!(ds.users.get("10"), Some(3));
    assert_eq!(ds.items.get("12"), Some(4));
    assert_eq!(ds.items.get("7"), None, "an unrated item gets no dense id");
    assert_eq!(ds.users.raw(3), Some("10"));
    assert_eq!(ds.users.raw(4), None);
    assert_eq!(raw_interactions(ds), ratings_raw());
    // The first line, "10\t2\t4\t881250950", in dense ids.
    assert_eq!(ds.interactions[0].user, 3);
    assert_eq!(ds.interactions[0].item, 1);
    assert_eq!(ds.interactions[0].rating, Some(4.0));
    assert_eq!(ds.interactions[0].timestamp, Some(881_250_950));
    assert!(ds.has_ratings() && ds.has_timestamps());
    let seqs = ds.user_sequences();
    let expected: Vec<Vec<usize>> = RATINGS_SEQUENCES.iter().map(|s| s.to_vec()).collect();
    assert_eq!(seqs, expected);
    assert_eq!(ds.report.lines_skipped, 0);
    assert!(ds.report.skipped_examples.is_empty());
}

// ---------------------------------------------------------------- per format

#[test]
fn amazon_p5() {
    let ds = load_ok(&common::amazon());
    assert_eq!(ds.format, Format::AmazonP5);
    assert_eq!(ds.name, "beauty");
    assert_eq!(
        (ds.n_users(), ds.n_items(), ds.interactions.len()),
        (3, 13, 17)
    );
    let items: Vec<String> = (1..=13).map(|i| i.to_string()).collect();
    assert_eq!(
        ds.items.raw_ids(),
        items.as_slice(),
        "1..=13 in numeric order"
    );
    assert_eq!(ds.items.get("1"), Some(0));
    assert_eq!(ds.items.get("10"), Some(9));
    assert_eq!(ds.items.get("13"), Some(12));
    assert_eq!(ds.users.raw_ids(), raw_ids(&["1", "2", "3"]).as_slice());
    assert!(ds
        .interactions
        .iter()
        .all(|x| x.rating.is_none() && x.timestamp.is_none()));
    assert!(!ds.has_ratings() && !ds.has_timestamps());
    // Reviewer ids and ASINs from datamaps.json.
    for (u, raw) in common::AMAZON_USERS.iter().enumerate() {
        assert_eq!(ds.user_info[u].external_id.as_deref(), Some(*raw));
    }
    for i in 1..=13u32 {
        assert_eq!(item(&ds, &i.to_string()).external_id, Some(common::asin(i)));
    }
    assert_eq!(
        ds.report.side_info_unmatched, 1,
        "datamaps item 14 is never rated"
    );
    assert_eq!(ds.report.side_info_missing, 0);
    assert_eq!(ds.report.lines_parsed, 3);
    assert_eq!(
        file_names(&ds.report.files),
        ["sequential.txt", "datamaps.json"]
    );
    // No timestamps: each user's sequence is the file order.
    let seqs = ds.user_sequences();
    let user2: Vec<&str> = seqs[1]
        .iter()
        .map(|&i| ds.items.raw(ds.interactions[i].item).unwrap())
        .collect();
    assert_eq!(user2, ["6", "7", "8", "9", "10", "4", "11"]);
    let user3: Vec<&str> = seqs[2]
        .iter()
        .map(|&i| ds.items.raw(ds.interactions[i].item).unwrap())
        .collect();
    assert_eq!(user3, ["4", "12", "13", "2", "1"]);
    assert_eq!(
        ds.item_name(0),
        "item_1",
        "no titles in P5: the raw id names the item"
    );
}

#[test]
fn amazon_datamaps_extra_keys_are_ignored() {
    let fx = common::amazon();
    let mut maps: serde_json::Value = serde_json::from_slice(fx.file("datamaps.json")).unwrap();
    maps["user2id"] = serde_json::json!({ common::AMAZON_USERS[0]: "1" });
    maps["item2id"] = serde_json::json!({ common::asin(1): "1" });
    let fx = fx.set("datamaps.json", serde_json::to_vec(&maps).unwrap());
    let ds = load_ok(&fx);
    assert_eq!(ds.interactions.len(), 17);
    assert_eq!(
        ds.user_info[0].external_id.as_deref(),
        Some(common::AMAZON_USERS[0])
    );
}

#[test]
fn movielens_100k() {
    let ds = load_ok(&common::ml100k());
    assert_eq!(ds.format, Format::Movielens100k);
    assert_eq!(ds.name, "ml-100k");
    check_ratings_dataset(&ds);
    // Latin-1 title: the byte 0xE9 is "é".
    let cafe = item(&ds, "5");
    assert_eq!(cafe.title.as_deref(), Some("Café (1995)"));
    assert_eq!(cafe.year, Some(1995));
    assert_eq!(cafe.genres, ["Comedy", "Drama"]);
    let toy = item(&ds, "1");
    assert_eq!(toy.title.as_deref(), Some("Toy Story (1995)"));
    assert_eq!(toy.genres, ["Animation", "Children's", "Comedy"]);
    assert_eq!(item(&ds, "2").genres, ["Action", "Adventure", "Thriller"]);
    // Like the real item 267: no release date.
    let unknown = item(&ds, "12");
    assert_eq!(unknown.title.as_deref(), Some("unknown"));
    assert_eq!(unknown.year, None);
    assert_eq!(unknown.genres, ["unknown"]);
    assert_eq!(unknown.author, None);
    assert_eq!(
        user(&ds, "10"),
        &UserInfo {
            age: Some(53),
            gender: Some("M".into()),
            occupation: Some("lawyer".into()),
            location: Some("90703".into()),
            external_id: None,
        }
    );
    assert_eq!(user(&ds, "2").gender.as_deref(), Some("F"));
    assert_eq!(
        ds.report.side_info_unmatched, 2,
        "item 7 and user 99 are never rated"
    );
    assert_eq!(ds.report.side_info_missing, 0);
    // u.data 10 + u.genre 19 (the trailing blank line is not a line) + u.item 6 + u.user 5.
    assert_eq!(ds.report.lines_parsed, 10 + 19 + 6 + 5);
    assert_eq!(
        file_names(&ds.report.files),
        ["u.data", "u.genre", "u.item", "u.user"]
    );
    assert_eq!(ds.item_name(4), "unknown");
    assert_eq!(ds.item_name(3), "Café (1995)");

    let stats = ds.stats();
    assert_eq!((stats.users, stats.items, stats.interactions), (4, 5, 10));
    assert!((stats.density - 0.5).abs() < 1e-12);
    assert_eq!((stats.min_per_user, stats.max_per_user), (2, 3));
    assert!((stats.mean_per_user - 2.5).abs() < 1e-12);
    assert!(stats.has_ratings && stats.has_timestamps);
}

#[test]
fn movielens_100k_genre_order_follows_the_index_column() {
    // u.genre lines in reverse order: the index column, not the line order, names the flags.
    let fx = common::ml100k();
    let mut lines: Vec<String> = common::ML100K_GENRES
        .iter()
        .enumerate()
        .map(|(i, g)| format!("{g}|{i}\n"))
        .collect();
    lines.reverse();
    let fx = fx.set("u.genre", lines.concat());
    let ds = load_ok(&fx);
    assert_eq!(item(&ds, "5").genres, ["Comedy", "Drama"]);
}

#[test]
fn movielens_1m() {
    let ds = load_ok(&common::ml1m());
    assert_eq!(ds.format, Format::Movielens1m);
    assert_eq!(ds.name, "ml-1m");
    check_ratings_dataset(&ds);
    let cafe = item(&ds, "5");
    assert_eq!(cafe.title.as_deref(), Some("Café (1995)"));
    assert_eq!(cafe.year, Some(1995));
    assert_eq!(cafe.genres, ["Comedy", "Drama"]);
    let city = item(&ds, "12");
    assert_eq!(
        city.title.as_deref(),
        Some("City of Lost Children, The (1995)")
    );
    assert_eq!(city.genres, ["Adventure", "Sci-Fi"]);
    // Coded ages stay codes; occupation codes become names.
    let expect = [
        ("1", 1, "F", "K-12 student", "48067"),
        ("2", 56, "M", "self-employed", "70072"),
        ("3", 25, "M", "scientist", "55117"),
        ("10", 35, "F", "academic/educator", "95370"),
    ];
    for (raw, age, gender, occupation, zip) in expect {
        let u = user(&ds, raw);
        assert_eq!(u.age, Some(age), "user {raw}");
        assert_eq!(u.gender.as_deref(), Some(gender), "user {raw}");
        assert_eq!(u.occupation.as_deref(), Some(occupation), "user {raw}");
        assert_eq!(u.location.as_deref(), Some(zip), "user {raw}");
    }
    assert_eq!(ds.report.side_info_unmatched, 1, "movie 7 is never rated");
    assert_eq!(ds.report.side_info_missing, 0);
    assert_eq!(
        file_names(&ds.report.files),
        ["ratings.dat", "movies.dat", "users.dat"]
    );
}

#[test]
fn movielens_1m_occupation_codes_cover_the_readme() {
    // Every code 0..=20 maps to the README's name; 21 is an error.
    let names = graft_data::formats::movielens::ML1M_OCCUPATIONS;
    assert_eq!(names.len(), 21);
    let users: String = (0..=20)
        .map(|o| format!("{}::M::25::{o}::00000\n", o + 1))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("users.dat");
    std::fs::write(&path, users).unwrap();
    let mut report = Default::default();
    let parsed =
        graft_data::formats::movielens::parse_1m_users(&path, &strict(), &mut report).unwrap();
    assert_eq!(parsed.len(), 21);
    assert_eq!(parsed[0].1.occupation.as_deref(), Some("other"));
    assert_eq!(parsed[12].1.occupation.as_deref(), Some("programmer"));
    assert_eq!(parsed[20].1.occupation.as_deref(), Some("writer"));
    std::fs::write(&path, "1::M::25::21::00000\n").unwrap();
    let err =
        graft_data::formats::movielens::parse_1m_users(&path, &strict(), &mut report).unwrap_err();
    assert!(
        matches!(err, DataError::Parse { line: 1, ref reason, .. } if reason.contains("occupation code"))
    );
}

#[test]
fn movielens_25m() {
    let ds = load_ok(&common::ml25m());
    assert_eq!(ds.format, Format::Movielens25m);
    assert_eq!(ds.name, "ml-25m");
    check_ratings_dataset(&ds);
    // A quoted title with doubled quotes, one with a comma, "(no genres listed)".
    let four = item(&ds, "3");
    assert_eq!(four.title.as_deref(), Some("\"Four Rooms\" (1995)"));
    assert_eq!(four.year, Some(1995));
    assert_eq!(four.genres, ["Comedy"]);
    let suspects = item(&ds, "12");
    assert_eq!(
        suspects.title.as_deref(),
        Some("Usual Suspects, The (1995)")
    );
    assert_eq!(suspects.genres, ["Crime", "Mystery", "Thriller"]);
    let cafe = item(&ds, "5");
    assert_eq!(cafe.title.as_deref(), Some("Café (1995)"));
    assert!(cafe.genres.is_empty(), "(no genres listed) is no genre");
    assert!(
        ds.user_info.iter().all(|u| *u == UserInfo::default()),
        "25M has no user file"
    );
    assert_eq!(ds.report.side_info_unmatched, 0);
    assert_eq!(ds.report.side_info_missing, 0);
}

#[test]
fn movielens_25m_half_star_ratings() {
    let fx = common::ml25m().replace_line("ratings.csv", 2, "10,2,3.5,881250950");
    let ds = load_ok(&fx);
    assert_eq!(ds.interactions[0].rating, Some(3.5));
}

#[test]
fn bookcrossing_raw() {
    let fx = common::bookcrossing();
    // The published files have malformed lines: strict loading stops at the first.
    let (_tmp, res) = fx.load(&strict());
    match res {
        Err(DataError::Parse { path, line, reason }) => {
            assert_eq!(path.file_name().unwrap(), "BX-Books.csv");
            assert_eq!(line, common::BX_BAD_BOOK_LINE);
            assert!(reason.contains("after the closing quote"), "{reason}");
        }
        other => panic!("strict BookCrossing should fail on the malformed line, got {other:?}"),
    }
    let (_tmp, res) = fx.load(&LoadOptions::lenient());
    let ds = res.unwrap();
    assert_eq!(ds.format, Format::BookCrossing);
    assert_eq!(ds.name, "book-crossing");
    assert_eq!(
        (ds.n_users(), ds.n_items(), ds.interactions.len()),
        (5, 7, 8)
    );
    assert_eq!(ds.report.lines_skipped, 1);
    let skipped = &ds.report.skipped_examples;
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].path.file_name().unwrap(), "BX-Books.csv");
    assert_eq!(skipped[0].line, common::BX_BAD_BOOK_LINE);
    // Numeric user ids sort numerically, ISBNs (with an X) lexicographically.
    assert_eq!(
        ds.users.raw_ids(),
        raw_ids(&["276725", "276726", "276727", "276729", "276733"]).as_slice()
    );
    assert_eq!(
        ds.items.raw_ids(),
        raw_ids(&[
            "0155061224",
            "034545104X",
            "0440234743",
            "0446520802",
            "052165615X",
            "0521795028",
            "2080674722"
        ])
        .as_slice()
    );
    // 0-10 ratings (0 is kept: it is the implicit feedback), no timestamps.
    let ratings: Vec<Option<f32>> = ds.interactions.iter().map(|x| x.rating).collect();
    let expected: Vec<Option<f32>> = [0.0, 5.0, 0.0, 3.0, 6.0, 9.0, 0.0, 10.0].map(Some).to_vec();
    assert_eq!(ratings, expected);
    assert!(ds.interactions.iter().all(|x| x.timestamp.is_none()));
    // Side information: latin-1 title, author, year 0 -> None, NULL age -> None.
    let hugo = item(&ds, "2080674722");
    assert_eq!(hugo.title.as_deref(), Some("Les Misérables"));
    assert_eq!(hugo.author.as_deref(), Some("Victor Hugo"));
    assert_eq!(hugo.year, None, "year 0 means unknown");
    let rose = item(&ds, "034545104X");
    assert_eq!(rose.title.as_deref(), Some("Flesh Tones: A Novel"));
    assert_eq!(rose.author.as_deref(), Some("M. J. Rose"));
    assert_eq!(rose.year, Some(2002));
    assert_eq!(
        item(&ds, "0440234743"),
        &ItemInfo::default(),
        "its line was skipped"
    );
    assert_eq!(user(&ds, "276725").age, None, "NULL age");
    assert_eq!(
        user(&ds, "276725").location.as_deref(),
        Some("tyler, texas, usa")
    );
    assert_eq!(user(&ds, "276729").age, Some(14));
    assert_eq!(
        user(&ds, "276729").location.as_deref(),
        Some("mérida, yucatan, mexico")
    );
    assert_eq!(
        ds.report.side_info_missing, 1,
        "book 0440234743 has no parsed row"
    );
    assert_eq!(
        ds.report.side_info_unmatched, 2,
        "book 0002005018 and user 1 are inactive"
    );
    // No timestamps: file order per user.
    let seqs = ds.user_sequences();
    assert_eq!(seqs[1], [1, 5], "user 276726");
    assert_eq!(seqs[3], [3, 4], "user 276729");
}

#[test]
fn bookcrossing_clean_loads_strictly() {
    let ds = load_ok(&common::bookcrossing_clean());
    assert_eq!(ds.interactions.len(), 8);
    assert_eq!(
        item(&ds, "0440234743").title.as_deref(),
        Some("The Testament")
    );
    assert_eq!(
        item(&ds, "0440234743").author.as_deref(),
        Some("John Grisham")
    );
    assert_eq!(ds.report.side_info_missing, 0);
    assert_eq!(ds.report.lines_skipped, 0);
}

#[test]
fn recbole_atomic() {
    let fx = common::recbole();
    let ds = load_ok(&fx);
    assert_eq!(ds.format, Format::Recbole);
    assert_eq!(ds.name, "toy", "named after the .inter file");
    check_ratings_dataset(&ds);
    let cafe = item(&ds, "5");
    assert_eq!(cafe.title.as_deref(), Some("Café"));
    assert_eq!(cafe.year, Some(1995));
    assert_eq!(cafe.genres, ["Comedy", "Drama"]);
    assert_eq!(item(&ds, "1").genres, ["Animation", "Children's", "Comedy"]);
    assert_eq!(item(&ds, "12").year, None, "empty release_year");
    assert_eq!(
        user(&ds, "10"),
        &UserInfo {
            age: Some(53),
            gender: Some("M".into()),
            occupation: Some("lawyer".into()),
            location: Some("90703".into()),
            external_id: None,
        }
    );
    assert_eq!(ds.report.side_info_unmatched, 2, "item 7 and user 99");
    assert_eq!(
        file_names(&ds.report.files),
        ["toy.inter", "toy.item", "toy.user"]
    );

    // The .inter file itself loads the same, side files included.
    let tmp = tempfile::tempdir().unwrap();
    let dir = fx.write(tmp.path());
    let by_file = load(Format::Recbole, &dir.join("toy.inter"), &strict()).unwrap();
    assert_eq!(by_file.interactions, ds.interactions);
    assert_eq!(by_file.item_info, ds.item_info);
    assert_eq!(by_file.user_info, ds.user_info);
}

#[test]
fn recbole_non_integer_year_or_age_tokens_are_left_empty() {
    // RecBole's own ml-100k.item has "unkonwn" in release_year: a token, not an error.
    let fx = common::recbole()
        .replace_line("toy.item", 5, "5\tCafé\tunkonwn\tComedy Drama")
        .replace_line("toy.user", 5, "10\tfifty\tM\tlawyer\t90703");
    let ds = load_ok(&fx);
    let cafe = item(&ds, "5");
    assert_eq!(cafe.year, None);
    assert_eq!(cafe.title.as_deref(), Some("Café"));
    assert_eq!(cafe.genres, ["Comedy", "Drama"]);
    assert_eq!(user(&ds, "10").age, None);
    assert_eq!(user(&ds, "10").occupation.as_deref(), Some("lawyer"));
    assert_eq!(ds.report.lines_skipped, 0);
}

#[test]
fn recbole_side_files_are_optional() {
    let fx = common::recbole().without("toy.item").without("toy.user");
    let ds = load_ok(&fx);
    check_ratings_dataset(&ds);
    assert!(ds.item_info.iter().all(|i| *i == ItemInfo::default()));
    assert_eq!(ds.report.side_info_missing, 0);
    assert_eq!(file_names(&ds.report.files), ["toy.inter"]);
}

#[test]
fn recbole_without_rating_or_timestamp_columns() {
    let fx = common::recbole().set(
        "toy.inter",
        "user_id:token\titem_id:token\n1\t5\n2\t5\n2\t1\n",
    );
    let ds = load_ok(&fx);
    assert_eq!(ds.interactions.len(), 3);
    assert!(ds
        .interactions
        .iter()
        .all(|x| x.rating.is_none() && x.timestamp.is_none()));
    assert_eq!(ds.items.raw_ids(), raw_ids(&["1", "5"]).as_slice());
}

#[test]
fn recbole_folder_named_inter_wins_over_others() {
    let fx = common::recbole();
    let tmp = tempfile::tempdir().unwrap();
    let dir = fx.write(tmp.path());
    // Two .inter files: ambiguous unless one is named after the folder.
    std::fs::write(
        dir.join("other.inter"),
        "user_id:token\titem_id:token\nx\ty\n",
    )
    .unwrap();
    assert!(matches!(
        load(Format::Recbole, &dir, &strict()),
        Err(DataError::UnknownFormat { .. })
    ));
    std::fs::copy(dir.join("toy.inter"), dir.join("recbole-toy.inter")).unwrap();
    let ds = load(Format::Recbole, &dir, &strict()).unwrap();
    assert_eq!(ds.name, "recbole-toy");
    assert_eq!(raw_interactions(&ds), ratings_raw());
}

#[test]
fn csv_with_and_without_header() {
    for fx in [common::csv_with_header(), common::csv_no_header()] {
        let ds = load_ok(&fx);
        assert_eq!(ds.format, Format::Csv);
        assert_eq!(ds.name, "interactions");
        check_ratings_dataset(&ds);
        assert!(ds.item_info.iter().all(|i| *i == ItemInfo::default()));
        assert_eq!(
            ds.report.lines_parsed,
            fx.file("interactions.csv")
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
        );
    }
}

#[test]
fn csv_header_columns_in_any_order_and_case() {
    let mut s = String::from("Timestamp,ItemId,USER,rating\n");
    for (u, i, r, t) in common::RATINGS {
        s.push_str(&format!("{t},{i},{u},{r}\n"));
    }
    let ds = load_ok(&common::csv_with_header().set("interactions.csv", s));
    check_ratings_dataset(&ds);
}

#[test]
fn csv_header_with_other_names_is_an_error_or_mapped() {
    let own = "customer,product,store\n1,10,a\n2,10,b\n2,11,a\n";
    let fx = common::csv_no_header().set("interactions.csv", own);
    // Not read as data: an error on line 1 naming what graft expects.
    let (_tmp, res) = fx.load(&strict());
    let msg = res.expect_err("a header with unknown names").to_string();
    assert!(msg.contains(":1:") || msg.contains("line 1"), "{msg}");
    assert!(msg.contains("looks like a header"), "{msg}");
    assert!(msg.contains("user/user_id/userId"), "{msg}");
    assert!(
        msg.contains("--columns user=customer,item=product"),
        "{msg}"
    );
    // Lenient mode does not skip a header either.
    let (_tmp, res) = fx.load(&LoadOptions::lenient());
    assert!(res.is_err());
    // Mapped: the named columns are read, the others ignored.
    let mapped = LoadOptions {
        csv_columns: Some("user=Customer,item=product".parse().unwrap()),
        ..LoadOptions::default()
    };
    let (_tmp, res) = fx.load(&mapped);
    let ds = res.unwrap();
    assert_eq!(
        (ds.n_users(), ds.n_items(), ds.interactions.len()),
        (2, 2, 3)
    );
    // A mapped name the header lacks.
    let missing = LoadOptions {
        csv_columns: Some("user=customer,item=sku".parse().unwrap()),
        ..LoadOptions::default()
    };
    let (_tmp, res) = fx.load(&missing);
    let msg = res.expect_err("no sku column").to_string();
    assert!(msg.contains("no column \"sku\""), "{msg}");
    // MovieLens-25M's ratings.csv read as a generic CSV: `movieId` is not
    // one of graft's names, so the header is refused, then mapped.
    let ml = "userId,movieId,rating,timestamp\n1,296,5.0,1147880044\n1,306,3.5,1147868817\n";
    let fx = common::csv_no_header().set("interactions.csv", ml);
    let (_tmp, res) = fx.load(&strict());
    assert!(res
        .expect_err("mixed header")
        .to_string()
        .contains("mixes names"));
    let ml_cols = LoadOptions {
        csv_columns: Some(
            "user=userId,item=movieId,rating=rating,time=timestamp"
                .parse()
                .unwrap(),
        ),
        ..LoadOptions::default()
    };
    let (_tmp, res) = fx.load(&ml_cols);
    let ds = res.unwrap();
    assert_eq!(ds.interactions[1].rating, Some(3.5));
    assert_eq!(ds.interactions[0].timestamp, Some(1_147_880_044));
    // Words over words stay data: ids may be any token.
    let ds = load_ok(&common::csv_no_header().set("interactions.csv", "alice,book1\nbob,book2\n"));
    assert_eq!(ds.interactions.len(), 2);
}

#[test]
fn csv_two_and_three_columns() {
    let ds = load_ok(&common::csv_no_header().set("interactions.csv", "a,x\nb,x\na,y\n"));
    assert_eq!(ds.interactions.len(), 3);
    assert!(!ds.has_ratings() && !ds.has_timestamps());
    let ds = load_ok(&common::csv_with_header().set("interactions.csv", "user,item\na,x\n"));
    assert_eq!(
        raw_interactions(&ds),
        [("a".into(), "x".into(), None, None)]
    );
    let ds = load_ok(&common::csv_no_header().set("interactions.csv", "a,x,4.5\nb,x,1\n"));
    assert_eq!(ds.interactions[0].rating, Some(4.5));
    assert_eq!(ds.interactions[1].timestamp, None);
}

#[test]
fn csv_crlf_bom_quotes_and_delimiter() {
    // Windows line endings and a UTF-8 byte order mark change nothing.
    let plain =
        String::from_utf8(common::csv_with_header().file("interactions.csv").to_vec()).unwrap();
    let crlf = format!("\u{feff}{}", plain.replace('\n', "\r\n"));
    let ds = load_ok(&common::csv_with_header().set("interactions.csv", crlf));
    check_ratings_dataset(&ds);
    // Quoted ids keep commas and doubled quotes; non-numeric ids sort lexicographically.
    let quoted = "user,item\n\"u10\",\"a,b\"\nu2,\"say \"\"hi\"\"\"\n3,plain\n";
    let ds = load_ok(&common::csv_with_header().set("interactions.csv", quoted));
    assert_eq!(ds.users.raw_ids(), raw_ids(&["3", "u10", "u2"]).as_slice());
    assert_eq!(
        ds.items.raw_ids(),
        raw_ids(&["a,b", "plain", "say \"hi\""]).as_slice()
    );
    assert_eq!(ds.users.get("3"), Some(0));
    // Another delimiter.
    let semi = plain.replace(',', ";");
    let opts = LoadOptions {
        csv_delimiter: ';',
        ..LoadOptions::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let path = common::csv_with_header()
        .set("interactions.csv", semi)
        .write(tmp.path());
    let ds = load(Format::Csv, &path, &opts).unwrap();
    check_ratings_dataset(&ds);
}

// ---------------------------------------------------------------- across formats

#[test]
fn same_ratings_in_every_format_load_identically() {
    let reference = load_ok(&common::ml100k());
    for fx in [
        common::ml1m(),
        common::ml25m(),
        common::recbole(),
        common::csv_with_header(),
        common::csv_no_header(),
    ] {
        let ds = load_ok(&fx);
        assert_eq!(ds.interactions, reference.interactions, "{}", fx.dir_name);
        assert_eq!(ds.users, reference.users, "{}", fx.dir_name);
        assert_eq!(ds.items, reference.items, "{}", fx.dir_name);
        assert_eq!(
            ds.user_sequences(),
            reference.user_sequences(),
            "{}",
            fx.dir_name
        );
    }
}

#[test]
fn writers_round_trip_a_loaded_dataset() {
    let ds = load_ok(&common::ml100k());
    let tmp = tempfile::tempdir().unwrap();
    // RecBole keeps interactions and side information.
    let dir = tmp.path().join("rb");
    recbole::write(&ds, &dir, "ml").unwrap();
    let back = load(Format::Recbole, &dir, &strict()).unwrap();
    assert_eq!(back.interactions, ds.interactions);
    assert_eq!(back.users, ds.users);
    assert_eq!(back.items, ds.items);
    assert_eq!(back.item_info, ds.item_info);
    assert_eq!(back.user_info, ds.user_info);
    assert_eq!(back.name, "ml");
    // CSV keeps interactions.
    let path = tmp.path().join("out.csv");
    csv::write(&ds, &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("user,item,rating,timestamp\n10,2,4,881250950\n"),
        "{text}"
    );
    let back = load(Format::Csv, &path, &strict()).unwrap();
    assert_eq!(back.interactions, ds.interactions);
    assert_eq!(back.items, ds.items);
    // No temporary files are left next to the outputs.
    let leftovers: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .chain(std::fs::read_dir(&dir).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn dataset_json_round_trip_keeps_id_lookup() {
    let ds = load_ok(&common::ml100k());
    let json = serde_json::to_string(&ds).unwrap();
    let back: Dataset = serde_json::from_str(&json).unwrap();
    assert_eq!(back.interactions, ds.interactions);
    assert_eq!(back.users.raw_ids(), ds.users.raw_ids());
    // The lookup index is not serialised; it must be rebuilt on load.
    assert_eq!(back.users.get("10"), Some(3));
    assert_eq!(back.items.get("12"), Some(4));
    assert_eq!(back.users, ds.users);
    assert_eq!(back.item_info, ds.item_info);
    assert_eq!(back.report, ds.report);
}

// ---------------------------------------------------------------- detection

#[test]
fn detect_and_load_auto_every_folder() {
    for fx in common::all_clean() {
        let tmp = tempfile::tempdir().unwrap();
        let path = fx.write(tmp.path());
        assert_eq!(Format::detect(&path).unwrap(), fx.format, "{}", fx.dir_name);
        let auto = load_auto(&path, &strict()).unwrap();
        let direct = load(fx.format, &path, &strict()).unwrap();
        assert_eq!(auto.format, fx.format);
        assert_eq!(auto.interactions, direct.interactions, "{}", fx.dir_name);
        assert_eq!(auto.item_info, direct.item_info, "{}", fx.dir_name);
    }
}

#[test]
fn detect_files_and_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::recbole().write(tmp.path());
    assert_eq!(
        Format::detect(&dir.join("toy.inter")).unwrap(),
        Format::Recbole
    );
    assert_eq!(Format::detect(&dir.join("toy.item")).ok(), None);
    assert!(matches!(
        Format::detect(&dir.join("toy.item")),
        Err(DataError::UnknownFormat { .. })
    ));
    let csv = common::csv_with_header().write(tmp.path());
    assert_eq!(Format::detect(&csv).unwrap(), Format::Csv);
    // An ML-25M ratings.csv given as a file is a generic CSV (its header names no known column).
    let ml25 = common::ml25m().write(tmp.path());
    assert_eq!(
        Format::detect(&ml25.join("ratings.csv")).unwrap(),
        Format::Csv
    );

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = Format::detect(&empty).unwrap_err();
    assert!(matches!(err, DataError::UnknownFormat { ref path, .. } if path == &empty));
    assert!(err.to_string().contains("cannot detect"), "{err}");
    assert!(matches!(
        load_auto(&empty, &strict()),
        Err(DataError::UnknownFormat { .. })
    ));
    let nowhere = tmp.path().join("nowhere");
    assert!(
        matches!(Format::detect(&nowhere), Err(DataError::MissingFile { ref path }) if path == &nowhere)
    );
    assert!(matches!(
        load_auto(&nowhere, &strict()),
        Err(DataError::MissingFile { .. })
    ));
    assert!(matches!(
        load(Format::Synthetic, &empty, &strict()),
        Err(DataError::Config(_))
    ));
}

#[test]
fn format_names_parse_back() {
    for (name, f) in Format::LOADABLE {
        assert_eq!(f.name(), name);
        assert_eq!(f.to_string(), name);
        assert_eq!(name.parse::<Format>(), Ok(f));
        assert_eq!(
            name.to_uppercase().replace('-', "_").parse::<Format>(),
            Ok(f)
        );
    }
    assert_eq!(Format::Synthetic.name(), "synthetic");
    let err = "parquet".parse::<Format>().unwrap_err();
    assert!(err.contains("movielens-100k"), "{err}");
}

// ---------------------------------------------------------------- splits on a fixture

#[test]
fn leave_one_out_on_fixture() {
    let ds = load_ok(&common::ml100k());
    let split = LeaveOneOut::new(&ds);
    let raw = |i: u32| ds.items.raw(i).unwrap().to_owned();
    // User 1 in time order: items 12 (874965706), 1 and 5 (tie at 874965758, file order).
    assert_eq!(
        split.train[0].iter().map(|&i| raw(i)).collect::<Vec<_>>(),
        ["12"]
    );
    assert_eq!(split.valid[0].map(raw).as_deref(), Some("1"));
    assert_eq!(split.test[0].map(raw).as_deref(), Some("5"));
    // User 10 has two interactions: one train, one test, no validation.
    assert_eq!(
        split.train[3].iter().map(|&i| raw(i)).collect::<Vec<_>>(),
        ["3"]
    );
    assert_eq!(split.valid[3], None);
    assert_eq!(split.test[3].map(raw).as_deref(), Some("2"));
    let sizes = split.sizes();
    assert_eq!((sizes.train, sizes.valid, sizes.test), (4, 2, 4));
    assert_eq!(split.train_edges().count(), 4);

    let sampler = NegativeSampler::new(ds.n_items(), 3);
    let mut neg = sampler.sample(0, &split.all_items(0), 2).unwrap();
    neg.sort_unstable();
    assert_eq!(
        neg,
        [ds.items.get("2").unwrap(), ds.items.get("3").unwrap()]
    );
    assert!(matches!(
        sampler.sample_split(&split, 3),
        Err(DataError::NotEnoughNegatives {
            user: 0,
            available: 2,
            wanted: 3
        })
    ));
}

#[test]
fn ctr_split_on_fixture() {
    let ds = load_ok(&common::ml100k());
    let cfg = CtrConfig {
        min_history: 1,
        ..CtrConfig::default()
    };
    let split = CtrSplit::new(&ds, &cfg).unwrap();
    // 3 + 3 + 2 + 2 interactions, each user's first has no history: 6 samples, 4/0/2.
    let sizes = split.sizes();
    assert_eq!((sizes.train, sizes.valid, sizes.test), (4, 0, 2));
    let key = |s: &graft_data::CtrSample| {
        (
            ds.users.raw(s.user).unwrap().to_owned(),
            ds.items.raw(s.item).unwrap().to_owned(),
            s.label,
        )
    };
    let test: Vec<_> = split.test.iter().map(key).collect();
    assert_eq!(
        test,
        [
            ("2".into(), "1".into(), true),
            ("3".into(), "12".into(), false)
        ],
        "the two latest samples; rating 4 > 3 is a click, 2 is not"
    );
    let first = &split.train[0];
    assert_eq!(key(first), ("1".into(), "1".into(), true));
    let hist: Vec<&str> = split
        .history(first)
        .iter()
        .map(|h| ds.items.raw(h.item).unwrap())
        .collect();
    assert_eq!(hist, ["12"]);
    // BookCrossing labels are rating >= 5.
    let (_tmp, bx) = common::bookcrossing().load(&LoadOptions::lenient());
    let bx = bx.unwrap();
    let split = CtrSplit::new(
        &bx,
        &CtrConfig {
            min_history: 0,
            ..CtrConfig::default()
        },
    )
    .unwrap();
    let positives = split
        .train
        .iter()
        .chain(&split.valid)
        .chain(&split.test)
        .filter(|s| s.label)
        .count();
    assert_eq!(positives, 4, "ratings 5, 6, 9 and 10");
    assert_eq!(split.label.to_string(), "rating >= 5");
    assert_eq!(split.order.to_string(), "seeded shuffle");
    // Implicit ratings (0: "interacted, no rating") are no samples by
    // default, but stay in the histories.
    let all: Vec<&graft_data::CtrSample> = split
        .train
        .iter()
        .chain(&split.valid)
        .chain(&split.test)
        .collect();
    assert_eq!(all.len(), 5, "8 ratings, 3 of them implicit");
    assert!(all.iter().all(|s| s.rating != 0.0));
    let implicit_in_history = all
        .iter()
        .any(|s| split.history(s).iter().any(|h| h.rating == 0.0));
    assert!(
        implicit_in_history,
        "user 276733 read a book before rating one"
    );
    // ReLLa's choice as an option: implicit ratings labelled by the rule, i.e. negatives.
    let rella = CtrSplit::new(
        &bx,
        &CtrConfig {
            min_history: 0,
            implicit: ImplicitRatings::Label,
            ..CtrConfig::default()
        },
    )
    .unwrap();
    let all: Vec<&graft_data::CtrSample> = rella
        .train
        .iter()
        .chain(&rella.valid)
        .chain(&rella.test)
        .collect();
    assert_eq!(all.len(), 8);
    assert_eq!(all.iter().filter(|s| s.label).count(), 4);
    assert!(all.iter().filter(|s| s.rating == 0.0).all(|s| !s.label));
    // Other formats have no implicit value: nothing dropped on MovieLens.
    assert_eq!(graft_data::implicit_rating(Format::Movielens100k), None);
}

#[test]
fn writers_refuse_ids_that_would_not_read_back() {
    use graft_data::{formats, Dataset, Format, IdMap, Interaction, LoadReport};
    let make = |user: &str| Dataset {
        name: "x".into(),
        format: Format::Csv,
        users: IdMap::from_raw(vec![user.to_owned()]),
        items: IdMap::from_raw(vec!["i".to_owned()]),
        interactions: vec![Interaction {
            user: 0,
            item: 0,
            rating: None,
            timestamp: None,
        }],
        user_info: vec![Default::default()],
        item_info: vec![Default::default()],
        report: LoadReport::default(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("x.csv");
    assert!(formats::csv::write(&make("a\nb"), &csv).is_err());
    assert!(formats::csv::write(&make(" a"), &csv).is_err());
    assert!(formats::recbole::write(&make("a\tb"), dir.path(), "x").is_err());
    assert!(
        !csv.exists() && !dir.path().join("x.inter").exists(),
        "nothing half-written"
    );
    // a comma and a quote are fine in CSV (quoted), a space inside is fine in RecBole
    formats::csv::write(&make("a,\"b"), &csv).expect("csv");
    let back = graft_data::load(Format::Csv, &csv, &Default::default()).expect("load");
    assert_eq!(back.users.raw(0), Some("a,\"b"));
    formats::recbole::write(&make("a b"), dir.path(), "x").expect("recbole");
    let back = graft_data::load(
        Format::Recbole,
        &dir.path().join("x.inter"),
        &Default::default(),
    )
    .expect("load");
    assert_eq!(back.users.raw(0), Some("a b"));
}
