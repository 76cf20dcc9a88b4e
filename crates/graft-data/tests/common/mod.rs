//! Small fixtures in the exact layouts of the real datasets (see
//! `../shared/data/README.md`), written by the tests themselves: no byte of
//! the real data is copied here.
//!
//! Every fixture is a [`Fixture`]: a folder name and its files as exact
//! bytes, so the malformed-input tests can replace, remove or insert single
//! lines before writing it into a temporary directory.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use graft_data::{
    Dataset, Format, IdMap, Interaction, ItemInfo, LoadOptions, LoadReport, UserInfo,
};

/// The interactions shared by the MovieLens-style fixtures (100K, 1M, 25M),
/// RecBole and the generic CSV: `(user, item, rating, timestamp)`, in file order.
///
/// Users 1, 2, 3, 10 (numeric order puts 10 last: dense 0, 1, 2, 3); items
/// 1, 2, 3, 5, 12 (dense 0..=4; lexicographic order would put 12 second).
/// User 1 has a timestamp tie (lines 2 and 6), user 2 another (lines 3 and 7).
pub const RATINGS: [(u32, u32, u8, i64); 10] = [
    (10, 2, 4, 881_250_950),
    (1, 1, 5, 874_965_758),
    (2, 3, 3, 888_550_871),
    (1, 12, 2, 874_965_706),
    (3, 1, 1, 889_237_269),
    (1, 5, 4, 874_965_758),
    (2, 1, 4, 888_550_871),
    (10, 3, 5, 881_250_949),
    (3, 12, 2, 889_237_270),
    (2, 5, 5, 888_550_800),
];

/// [`RATINGS`] as the raw tuples [`raw_interactions`] returns.
pub fn ratings_raw() -> Vec<RawInteraction> {
    RATINGS
        .iter()
        .map(|&(u, i, r, t)| (u.to_string(), i.to_string(), Some(f32::from(r)), Some(t)))
        .collect()
}

/// An interaction with raw ids: `(user, item, rating, timestamp)`.
pub type RawInteraction = (String, String, Option<f32>, Option<i64>);

/// The interactions of `ds` with raw ids, in dataset order.
pub fn raw_interactions(ds: &Dataset) -> Vec<RawInteraction> {
    ds.interactions
        .iter()
        .map(|x| {
            (
                ds.users.raw(x.user).unwrap().to_owned(),
                ds.items.raw(x.item).unwrap().to_owned(),
                x.rating,
                x.timestamp,
            )
        })
        .collect()
}

/// Builds a dataset from raw tuples through the public API only.
pub fn dataset_from(tuples: &[RawInteraction], format: Format) -> Dataset {
    let users = IdMap::from_raw(tuples.iter().map(|t| t.0.clone()).collect());
    let items = IdMap::from_raw(tuples.iter().map(|t| t.1.clone()).collect());
    let interactions = tuples
        .iter()
        .map(|(u, i, r, t)| Interaction {
            user: users.get(u).unwrap(),
            item: items.get(i).unwrap(),
            rating: *r,
            timestamp: *t,
        })
        .collect();
    Dataset {
        name: "generated".into(),
        format,
        user_info: vec![UserInfo::default(); users.len()],
        item_info: vec![ItemInfo::default(); items.len()],
        users,
        items,
        interactions,
        report: LoadReport::default(),
    }
}

/// Encodes text as ISO-8859-1 (every char must be <= U+00FF).
pub fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("latin-1 character"))
        .collect()
}

/// A dataset folder: file names with their exact bytes.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The format the files are in.
    pub format: Format,
    /// The folder name (also the dataset name for folder formats).
    pub dir_name: &'static str,
    /// Files, in writing order.
    pub files: Vec<(String, Vec<u8>)>,
    /// The file given to the loader instead of the folder (generic CSV).
    pub entry: Option<&'static str>,
}

impl Fixture {
    /// The folder this fixture is written to under `root`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(self.dir_name)
    }

    /// Writes the files under `root/dir_name` and returns the path to load.
    pub fn write(&self, root: &Path) -> PathBuf {
        let dir = self.dir(root);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &self.files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        match self.entry {
            Some(f) => dir.join(f),
            None => dir,
        }
    }

    /// Writes into a fresh temporary directory and loads with `opts`.
    pub fn load(&self, opts: &LoadOptions) -> (tempfile::TempDir, graft_data::Result<Dataset>) {
        let tmp = tempfile::tempdir().unwrap();
        let path = self.write(tmp.path());
        let res = graft_data::load(self.format, &path, opts);
        (tmp, res)
    }

    /// The bytes of one file.
    pub fn file(&self, name: &str) -> &[u8] {
        &self
            .files
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("fixture has no file {name}"))
            .1
    }

    /// Replaces (or adds) a file.
    pub fn set(mut self, name: &str, bytes: impl Into<Vec<u8>>) -> Self {
        let bytes = bytes.into();
        match self.files.iter_mut().find(|(n, _)| n == name) {
            Some(f) => f.1 = bytes,
            None => self.files.push((name.to_owned(), bytes)),
        }
        self
    }

    /// Removes a file.
    pub fn without(mut self, name: &str) -> Self {
        let before = self.files.len();
        self.files.retain(|(n, _)| n != name);
        assert_eq!(self.files.len() + 1, before, "fixture has no file {name}");
        self
    }

    fn edit_lines(self, name: &str, edit: impl FnOnce(&mut Vec<Vec<u8>>)) -> Self {
        let mut lines: Vec<Vec<u8>> = self
            .file(name)
            .split(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        edit(&mut lines);
        let joined = lines.join(&b'\n');
        self.set(name, joined)
    }

    /// Inserts `bytes` as a new line so that it becomes line `line` (1-based).
    pub fn insert_line(self, name: &str, line: usize, bytes: impl Into<Vec<u8>>) -> Self {
        let bytes = bytes.into();
        self.edit_lines(name, |l| l.insert(line - 1, bytes))
    }

    /// Replaces line `line` (1-based).
    pub fn replace_line(self, name: &str, line: usize, bytes: impl Into<Vec<u8>>) -> Self {
        let bytes = bytes.into();
        self.edit_lines(name, |l| l[line - 1] = bytes)
    }

    /// Removes line `line` (1-based).
    pub fn remove_line(self, name: &str, line: usize) -> Self {
        self.edit_lines(name, |l| {
            l.remove(line - 1);
        })
    }

    /// Line `line` (1-based) of a file.
    pub fn line(&self, name: &str, line: usize) -> Vec<u8> {
        self.file(name)
            .split(|&b| b == b'\n')
            .nth(line - 1)
            .unwrap()
            .to_vec()
    }
}

// ---------------------------------------------------------------- Amazon P5

/// Raw Amazon reviewer ids of the P5 fixture's users 1..=3.
pub const AMAZON_USERS: [&str; 3] = ["A2CZOM0EXAMPLE1", "A3QLEXAMPLE0002", "AXEXAMPLE000003"];

/// The (made-up) ASIN of P5 fixture item `i`.
pub fn asin(i: u32) -> String {
    format!("B00TEST{i:03}")
}

/// P5/POD Amazon: `sequential.txt` (`user item item ...`, space-separated,
/// 1-based, time order) and `datamaps.json` (`id2user`, `id2item`). 3 users,
/// 13 items, 17 interactions; `datamaps.json` also names an item 14 that
/// nobody rated.
pub fn amazon() -> Fixture {
    let seq = "1 1 2 3 4 5\n2 6 7 8 9 10 4 11\n3 4 12 13 2 1\n";
    let mut maps = String::from("{\n    \"id2user\": {\n");
    let users: Vec<String> = AMAZON_USERS
        .iter()
        .enumerate()
        .map(|(i, u)| format!("        \"{}\": \"{u}\"", i + 1))
        .collect();
    maps.push_str(&users.join(",\n"));
    maps.push_str("\n    },\n    \"id2item\": {\n");
    let items: Vec<String> = (1..=14)
        .map(|i| format!("        \"{i}\": \"{}\"", asin(i)))
        .collect();
    maps.push_str(&items.join(",\n"));
    maps.push_str("\n    }\n}");
    Fixture {
        format: Format::AmazonP5,
        dir_name: "beauty",
        files: vec![
            ("sequential.txt".into(), seq.into()),
            ("datamaps.json".into(), maps.into()),
        ],
        entry: None,
    }
}

// ---------------------------------------------------------------- MovieLens

/// The 19 genres of MovieLens-100K `u.genre`, in index order.
pub const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// One `u.item` line: `id|title|release date|video release date|IMDb URL|19 flags`.
pub fn ml100k_item_line(id: u32, title: &str, date: &str, url: &str, genres: &[&str]) -> String {
    let flags: Vec<&str> = ML100K_GENRES
        .iter()
        .map(|g| if genres.contains(g) { "1" } else { "0" })
        .collect();
    format!("{id}|{title}|{date}||{url}|{}", flags.join("|"))
}

fn ml100k_u_data() -> String {
    RATINGS
        .iter()
        .map(|(u, i, r, t)| format!("{u}\t{i}\t{r}\t{t}\n"))
        .collect()
}

/// MovieLens-100K: `u.data` (tab-separated), `u.item` (latin-1, `|`, 19
/// genre flags, with "Café (1995)" written as the byte 0xE9), `u.user`,
/// `u.genre` (with its trailing blank line) and `u.occupation`.
///
/// `u.item` also lists item 7, `u.user` user 99: neither has a rating.
pub fn ml100k() -> Fixture {
    let items = [
        ml100k_item_line(
            1,
            "Toy Story (1995)",
            "01-Jan-1995",
            "http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)",
            &["Animation", "Children's", "Comedy"],
        ),
        ml100k_item_line(
            2,
            "GoldenEye (1995)",
            "01-Jan-1995",
            "http://us.imdb.com/M/title-exact?GoldenEye%20(1995)",
            &["Action", "Adventure", "Thriller"],
        ),
        ml100k_item_line(
            3,
            "Four Rooms (1995)",
            "01-Jan-1995",
            "http://us.imdb.com/M/title-exact?Four%20Rooms%20(1995)",
            &["Thriller"],
        ),
        ml100k_item_line(
            5,
            "Café (1995)",
            "01-Jan-1995",
            "http://us.imdb.com/M/title-exact?Caf%E9%20(1995)",
            &["Comedy", "Drama"],
        ),
        ml100k_item_line(
            7,
            "Twelve Monkeys (1995)",
            "01-Jan-1995",
            "http://us.imdb.com/M/title-exact?Twelve%20Monkeys%20(1995)",
            &["Drama", "Sci-Fi"],
        ),
        // Like the real item 267: no dates, no URL, only the "unknown" genre.
        ml100k_item_line(12, "unknown", "", "", &["unknown"]),
    ];
    let mut u_item = Vec::new();
    for l in &items {
        u_item.extend(latin1(l));
        u_item.push(b'\n');
    }
    let u_user = "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n\
                  10|53|M|lawyer|90703\n99|33|F|other|15213\n";
    let mut u_genre: String = ML100K_GENRES
        .iter()
        .enumerate()
        .map(|(i, g)| format!("{g}|{i}\n"))
        .collect();
    u_genre.push('\n');
    let u_occupation = "administrator\nartist\ndoctor\nlawyer\nother\ntechnician\nwriter\n";
    Fixture {
        format: Format::Movielens100k,
        dir_name: "ml-100k",
        files: vec![
            ("u.data".into(), ml100k_u_data().into()),
            ("u.item".into(), u_item),
            ("u.user".into(), u_user.into()),
            ("u.genre".into(), u_genre.into()),
            ("u.occupation".into(), u_occupation.into()),
        ],
        entry: None,
    }
}

/// MovieLens-1M: `ratings.dat`, `movies.dat` (latin-1, "Café (1995)" with
/// 0xE9) and `users.dat` (coded age and occupation), `::`-separated.
/// `movies.dat` also lists movie 7, which nobody rated.
pub fn ml1m() -> Fixture {
    let ratings: String = RATINGS
        .iter()
        .map(|(u, i, r, t)| format!("{u}::{i}::{r}::{t}\n"))
        .collect();
    let movies = latin1(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n\
         2::GoldenEye (1995)::Action|Adventure|Thriller\n\
         3::Four Rooms (1995)::Thriller\n\
         5::Café (1995)::Comedy|Drama\n\
         7::Twelve Monkeys (1995)::Drama|Sci-Fi\n\
         12::City of Lost Children, The (1995)::Adventure|Sci-Fi\n",
    );
    let users =
        "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n10::F::35::1::95370\n";
    Fixture {
        format: Format::Movielens1m,
        dir_name: "ml-1m",
        files: vec![
            ("ratings.dat".into(), ratings.into()),
            ("movies.dat".into(), movies),
            ("users.dat".into(), users.into()),
        ],
        entry: None,
    }
}

/// MovieLens-25M: `ratings.csv` and `movies.csv` with headers, UTF-8; titles
/// with a comma or quotes are double-quoted; one movie has
/// `(no genres listed)`.
pub fn ml25m() -> Fixture {
    let mut ratings = String::from("userId,movieId,rating,timestamp\n");
    for (u, i, r, t) in RATINGS {
        ratings.push_str(&format!("{u},{i},{r}.0,{t}\n"));
    }
    let movies = "movieId,title,genres\n\
                  1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n\
                  2,GoldenEye (1995),Action|Adventure|Thriller\n\
                  3,\"\"\"Four Rooms\"\" (1995)\",Comedy\n\
                  5,Café (1995),(no genres listed)\n\
                  12,\"Usual Suspects, The (1995)\",Crime|Mystery|Thriller\n";
    Fixture {
        format: Format::Movielens25m,
        dir_name: "ml-25m",
        files: vec![
            ("ratings.csv".into(), ratings.into()),
            ("movies.csv".into(), movies.into()),
        ],
        entry: None,
    }
}

// ---------------------------------------------------------------- BookCrossing

/// The three image URLs of a BookCrossing book.
fn bx_urls(isbn: &str) -> String {
    ["THUMBZZZ", "MZZZZZZZ", "LZZZZZZZ"]
        .iter()
        .map(|s| format!("\"http://images.amazon.com/images/P/{isbn}.01.{s}.jpg\""))
        .collect::<Vec<_>>()
        .join(";")
}

fn bx_book(isbn: &str, title: &str, author: &str, year: &str, publisher: &str) -> String {
    format!(
        "\"{isbn}\";\"{title}\";\"{author}\";\"{year}\";\"{publisher}\";{}",
        bx_urls(isbn)
    )
}

/// The line of `BX-Books.csv` that is malformed, like the real file's:
/// a stray double quote inside the quoted title.
pub const BX_BAD_BOOK_LINE: usize = 8;

/// Raw BookCrossing: `BX-Book-Ratings.csv`, `BX-Books.csv`, `BX-Users.csv`;
/// `;`-separated, every field double-quoted except `NULL` ages, latin-1,
/// with the real headers.
///
/// 5 users (276725, 276726, 276727, 276729, 276733), 7 ISBNs, 8 ratings.
/// `BX-Books.csv` line [`BX_BAD_BOOK_LINE`] (ISBN 0440234743, which is
/// rated) is malformed, so strict loading fails and lenient loading skips it;
/// it also lists an unrated book, and `BX-Users.csv` an inactive user 1.
pub fn bookcrossing() -> Fixture {
    let ratings = "\"User-ID\";\"ISBN\";\"Book-Rating\"\n\
                   \"276725\";\"034545104X\";\"0\"\n\
                   \"276726\";\"0155061224\";\"5\"\n\
                   \"276727\";\"0446520802\";\"0\"\n\
                   \"276729\";\"052165615X\";\"3\"\n\
                   \"276729\";\"0521795028\";\"6\"\n\
                   \"276726\";\"034545104X\";\"9\"\n\
                   \"276733\";\"2080674722\";\"0\"\n\
                   \"276733\";\"0440234743\";\"10\"\n";
    let books = [
        "\"ISBN\";\"Book-Title\";\"Book-Author\";\"Year-Of-Publication\";\"Publisher\";\
         \"Image-URL-S\";\"Image-URL-M\";\"Image-URL-L\""
            .to_owned(),
        bx_book(
            "034545104X",
            "Flesh Tones: A Novel",
            "M. J. Rose",
            "2002",
            "Ballantine Books",
        ),
        bx_book(
            "0155061224",
            "Rites of Passage",
            "Judith Rae",
            "2001",
            "Heinle",
        ),
        bx_book(
            "0446520802",
            "The Notebook",
            "Nicholas Sparks",
            "1996",
            "Warner Books",
        ),
        bx_book(
            "052165615X",
            "Help!: Level 1",
            "Philip Prowse",
            "1999",
            "Cambridge University Press",
        ),
        bx_book(
            "0521795028",
            "The Amsterdam Connection : Level 4 (Cambridge English Readers)",
            "Sue Leather",
            "2001",
            "Cambridge University Press",
        ),
        bx_book(
            "2080674722",
            "Les Misérables",
            "Victor Hugo",
            "0",
            "Flammarion",
        ),
        // Line 8: a stray quote inside the quoted title.
        bx_book(
            "0440234743",
            "The Testament \"Deluxe\" Edition",
            "John Grisham",
            "1999",
            "Dell",
        ),
        bx_book(
            "0002005018",
            "Clara Callan",
            "Richard Bruce Wright",
            "2001",
            "HarperFlamingo Canada",
        ),
    ];
    let mut books_bytes = Vec::new();
    for l in &books {
        books_bytes.extend(latin1(l));
        books_bytes.push(b'\n');
    }
    let users = latin1(
        "\"User-ID\";\"Location\";\"Age\"\n\
         \"1\";\"nyc, new york, usa\";NULL\n\
         \"276725\";\"tyler, texas, usa\";NULL\n\
         \"276726\";\"seattle, washington, usa\";\"23\"\n\
         \"276727\";\"rijeka, n/a, croatia\";\"16\"\n\
         \"276729\";\"mérida, yucatan, mexico\";\"14\"\n\
         \"276733\";\"paris, n/a, france\";\"37\"\n",
    );
    Fixture {
        format: Format::BookCrossing,
        dir_name: "book-crossing",
        files: vec![
            ("BX-Book-Ratings.csv".into(), ratings.into()),
            ("BX-Books.csv".into(), books_bytes),
            ("BX-Users.csv".into(), users),
        ],
        entry: None,
    }
}

/// [`bookcrossing`] with the malformed book line repaired: loads strictly.
pub fn bookcrossing_clean() -> Fixture {
    bookcrossing().replace_line(
        "BX-Books.csv",
        BX_BAD_BOOK_LINE,
        latin1(&bx_book(
            "0440234743",
            "The Testament",
            "John Grisham",
            "1999",
            "Dell",
        )),
    )
}

// ---------------------------------------------------------------- RecBole

/// RecBole atomic files `toy.inter`, `toy.item`, `toy.user` (tab-separated,
/// `name:type` headers, as RecBole's own ml-100k files) holding [`RATINGS`].
/// `toy.item` also lists item 7 and `toy.user` user 99, neither rated.
pub fn recbole() -> Fixture {
    let mut inter = String::from("user_id:token\titem_id:token\trating:float\ttimestamp:float\n");
    for (u, i, r, t) in RATINGS {
        inter.push_str(&format!("{u}\t{i}\t{r}\t{t}\n"));
    }
    let item = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n\
                1\tToy Story\t1995\tAnimation Children's Comedy\n\
                2\tGoldenEye\t1995\tAction Adventure Thriller\n\
                3\tFour Rooms\t1995\tThriller\n\
                5\tCafé\t1995\tComedy Drama\n\
                7\tTwelve Monkeys\t1995\tDrama Sci-Fi\n\
                12\tunknown\t\tunknown\n";
    let user = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n\
                1\t24\tM\ttechnician\t85711\n\
                2\t53\tF\tother\t94043\n\
                3\t23\tM\twriter\t32067\n\
                10\t53\tM\tlawyer\t90703\n\
                99\t33\tF\tother\t15213\n";
    Fixture {
        format: Format::Recbole,
        dir_name: "recbole-toy",
        files: vec![
            ("toy.inter".into(), inter.into()),
            ("toy.item".into(), item.into()),
            ("toy.user".into(), user.into()),
        ],
        entry: None,
    }
}

// ---------------------------------------------------------------- generic CSV

/// Generic CSV with a header `user_id,item_id,rating,timestamp` holding [`RATINGS`].
pub fn csv_with_header() -> Fixture {
    let mut s = String::from("user_id,item_id,rating,timestamp\n");
    for (u, i, r, t) in RATINGS {
        s.push_str(&format!("{u},{i},{r},{t}\n"));
    }
    Fixture {
        format: Format::Csv,
        dir_name: "csv-header",
        files: vec![("interactions.csv".into(), s.into())],
        entry: Some("interactions.csv"),
    }
}

/// Generic CSV without a header (positional `user,item,rating,timestamp`)
/// holding [`RATINGS`].
pub fn csv_no_header() -> Fixture {
    let s: String = RATINGS
        .iter()
        .map(|(u, i, r, t)| format!("{u},{i},{r},{t}\n"))
        .collect();
    Fixture {
        format: Format::Csv,
        dir_name: "csv-plain",
        files: vec![("interactions.csv".into(), s.into())],
        entry: Some("interactions.csv"),
    }
}

/// Every fixture that loads strictly, one per loader (plus the CSV variant).
pub fn all_clean() -> Vec<Fixture> {
    vec![
        amazon(),
        ml100k(),
        ml1m(),
        ml25m(),
        bookcrossing_clean(),
        recbole(),
        csv_with_header(),
        csv_no_header(),
    ]
}
