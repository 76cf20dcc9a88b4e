//! Malformed input, table-driven over every loader: each bad file is a typed
//! error naming the file (and for parse errors the line and the reason),
//! never a panic; lenient mode skips exactly the bad lines, reports them,
//! and keeps every good line.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::Fixture;
use graft_data::{DataError, Dataset, Format, LoadOptions, LoadReport};

/// What kind of malformation a case is; used to prove every loader is covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    FieldCount,
    NonNumericId,
    EmptyId,
    NonFiniteRating,
    InvalidUtf8,
    MissingFile,
    EmptyFile,
    WhitespaceFile,
    WrongHeader,
    DuplicateHeaderColumn,
    RepeatedHeader,
    BadJson,
    NoInteractions,
    Other,
}

/// The error a case must give in strict mode.
#[derive(Debug, Clone)]
enum Expect {
    Parse {
        file: &'static str,
        line: usize,
        reason: &'static str,
    },
    Missing(&'static str),
    Empty(&'static str),
    Json(&'static str),
    NoInteractions(&'static str),
}

/// What lenient mode must do with the same files.
#[derive(Debug, Clone)]
enum Lenient {
    /// Load, skipping exactly the strict error's line, and equal `base`.
    SkipsTheLine,
    /// Fail exactly as strict mode does (files, headers, JSON).
    Fails,
}

struct Case {
    kind: Kind,
    name: String,
    fixture: Fixture,
    base: Fixture,
    expect: Expect,
    lenient: Lenient,
}

#[derive(Default)]
struct Table(Vec<Case>);

impl Table {
    /// A bad line: strict fails on it, lenient skips it and matches `base`.
    fn line(
        &mut self,
        kind: Kind,
        base: &Fixture,
        fx: Fixture,
        file: &'static str,
        line: usize,
        reason: &'static str,
    ) {
        self.push(
            kind,
            base,
            fx,
            Expect::Parse { file, line, reason },
            Lenient::SkipsTheLine,
        );
    }

    /// A bad header that even lenient mode cannot read past.
    fn fatal_line(
        &mut self,
        kind: Kind,
        base: &Fixture,
        fx: Fixture,
        file: &'static str,
        line: usize,
        reason: &'static str,
    ) {
        self.push(
            kind,
            base,
            fx,
            Expect::Parse { file, line, reason },
            Lenient::Fails,
        );
    }

    /// A file-level error, in both modes.
    fn fatal(&mut self, kind: Kind, base: &Fixture, fx: Fixture, expect: Expect) {
        self.push(kind, base, fx, expect, Lenient::Fails);
    }

    fn push(
        &mut self,
        kind: Kind,
        base: &Fixture,
        fixture: Fixture,
        expect: Expect,
        lenient: Lenient,
    ) {
        let name = format!("{} {:?} #{}", base.format, kind, self.0.len());
        self.0.push(Case {
            kind,
            name,
            fixture,
            base: base.clone(),
            expect,
            lenient,
        });
    }

    /// Missing, 0-byte and whitespace-only versions of `file`.
    fn file_cases(&mut self, base: &Fixture, file: &'static str, missing_name: &'static str) {
        self.fatal(
            Kind::MissingFile,
            base,
            base.clone().without(file),
            Expect::Missing(missing_name),
        );
        self.fatal(
            Kind::EmptyFile,
            base,
            base.clone().set(file, Vec::new()),
            Expect::Empty(file),
        );
        self.fatal(
            Kind::WhitespaceFile,
            base,
            base.clone().set(file, " \n\t\r\n\n  "),
            Expect::Empty(file),
        );
    }
}

fn amazon(t: &mut Table) {
    let b = common::amazon();
    let seq = "sequential.txt";
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(seq, 2, "4"),
        seq,
        2,
        "user 4 has no items",
    );
    t.line(
        Kind::NonNumericId,
        &b,
        b.clone().insert_line(seq, 3, "4 5 x7"),
        seq,
        3,
        "item id \"x7\" is not a non-negative integer",
    );
    t.line(
        Kind::NonNumericId,
        &b,
        b.clone().insert_line(seq, 1, "A1YJEY 1 2"),
        seq,
        1,
        "user id \"A1YJEY\"",
    );
    t.line(
        Kind::NonNumericId,
        &b,
        b.clone().insert_line(seq, 4, "4 +5 6"),
        seq,
        4,
        "item id \"+5\"",
    );
    t.line(
        Kind::NonNumericId,
        &b,
        b.clone().insert_line(seq, 4, "4 5 -6"),
        seq,
        4,
        "item id \"-6\"",
    );
    t.line(
        Kind::InvalidUtf8,
        &b,
        b.clone().insert_line(seq, 2, b"4 5 \xff6".to_vec()),
        seq,
        2,
        "invalid UTF-8",
    );
    t.line(
        Kind::Other,
        &b,
        b.clone().insert_line(seq, 4, "1 7 8"),
        seq,
        4,
        "user 1 appears on more than one line",
    );
    t.file_cases(&b, seq, seq);
    t.file_cases(&b, "datamaps.json", "datamaps.json");
    let maps = "datamaps.json";
    t.fatal(
        Kind::BadJson,
        &b,
        b.clone().set(maps, "{\"id2user\": {\"1\": \"A\"},"),
        Expect::Json(maps),
    );
    t.fatal(
        Kind::BadJson,
        &b,
        b.clone().set(maps, "{\"id2user\": {}}"),
        Expect::Json(maps),
    );
    t.fatal(
        Kind::BadJson,
        &b,
        b.clone().set(maps, "{\"id2user\": [], \"id2item\": {}}"),
        Expect::Json(maps),
    );
    t.fatal(
        Kind::BadJson,
        &b,
        b.clone().set(maps, "id2user,id2item"),
        Expect::Json(maps),
    );
    t.fatal(
        Kind::InvalidUtf8,
        &b,
        b.clone().set(
            maps,
            b"{\"id2user\": {\"1\": \"A\xff\"}, \"id2item\": {}}".to_vec(),
        ),
        Expect::Json(maps),
    );
}

fn ml100k(t: &mut Table) {
    let b = common::ml100k();
    let d = "u.data";
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(d, 3, "1\t2\t3"),
        d,
        3,
        "fields, found 3",
    );
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(d, 11, "1\t2\t3\t881250949\t7"),
        d,
        11,
        "fields, found 5",
    );
    // Space-separated instead of tab-separated: one field.
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(d, 1, "1 2 3 881250949"),
        d,
        1,
        "fields, found 1",
    );
    t.line(
        Kind::NonNumericId,
        &b,
        b.clone().insert_line(d, 5, "1\tx\t3\t881250949"),
        d,
        5,
        "item id \"x\" is not a non-negative integer",
    );
    t.line(
        Kind::NonNumericId,
        &b,
        b.clone().insert_line(d, 5, "u1\t1\t3\t881250949"),
        d,
        5,
        "user id \"u1\"",
    );
    t.line(
        Kind::NonNumericId,
        &b,
        b.clone().insert_line(d, 5, "+1\t1\t3\t881250949"),
        d,
        5,
        "user id \"+1\"",
    );
    t.line(
        Kind::EmptyId,
        &b,
        b.clone().insert_line(d, 2, "\t1\t3\t881250949"),
        d,
        2,
        "empty user id",
    );
    t.line(
        Kind::EmptyId,
        &b,
        b.clone().insert_line(d, 2, "1\t \t3\t881250949"),
        d,
        2,
        "empty item id",
    );
    t.line(
        Kind::NonFiniteRating,
        &b,
        b.clone().insert_line(d, 7, "1\t1\tnan\t881250949"),
        d,
        7,
        "rating \"nan\" is not a finite number",
    );
    t.line(
        Kind::NonFiniteRating,
        &b,
        b.clone().insert_line(d, 7, "1\t1\tinf\t881250949"),
        d,
        7,
        "rating \"inf\"",
    );
    t.line(
        Kind::NonFiniteRating,
        &b,
        b.clone().insert_line(d, 7, "1\t1\tfive\t881250949"),
        d,
        7,
        "rating \"five\"",
    );
    t.line(
        Kind::Other,
        &b,
        b.clone().insert_line(d, 7, "1\t1\t3\tyesterday"),
        d,
        7,
        "timestamp \"yesterday\" is not an integer",
    );
    t.line(
        Kind::InvalidUtf8,
        &b,
        b.clone().insert_line(d, 4, b"1\t1\t3\t88125\xe9".to_vec()),
        d,
        4,
        "invalid UTF-8",
    );
    let item = "u.item";
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(item, 2, "8|Babe (1995)|01-Jan-1995"),
        item,
        2,
        "fields, found 3",
    );
    let mut flags = common::ml100k_item_line(8, "Babe (1995)", "01-Jan-1995", "", &["Comedy"]);
    flags.truncate(flags.len() - 1);
    flags.push('2');
    t.line(
        Kind::Other,
        &b,
        b.clone().insert_line(item, 3, flags),
        item,
        3,
        "genre flag \"2\" for \"Western\" is not 0 or 1",
    );
    let bad_id = common::ml100k_item_line(8, "Babe (1995)", "01-Jan-1995", "", &["Comedy"])
        .replacen('8', "eight", 1);
    t.line(
        Kind::NonNumericId,
        &b,
        b.clone().insert_line(item, 7, bad_id),
        item,
        7,
        "item id \"eight\"",
    );
    let user = "u.user";
    t.line(
        Kind::Other,
        &b,
        b.clone().insert_line(user, 2, "4|abc|M|other|12345"),
        user,
        2,
        "age \"abc\" is not an integer",
    );
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(user, 6, "4|24|M|other"),
        user,
        6,
        "fields, found 4",
    );
    t.line(
        Kind::EmptyId,
        &b,
        b.clone().insert_line(user, 6, "|24|M|other|12345"),
        user,
        6,
        "empty user id",
    );
    let genre = "u.genre";
    t.line(
        Kind::Other,
        &b,
        b.clone().insert_line(genre, 20, "Noir|nineteen"),
        genre,
        20,
        "genre index \"nineteen\"",
    );
    t.file_cases(&b, d, d);
    t.file_cases(&b, item, item);
    t.file_cases(&b, user, user);
    t.file_cases(&b, genre, genre);
}

fn ml1m(t: &mut Table) {
    let b = common::ml1m();
    let r = "ratings.dat";
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(r, 4, "1::1::5"),
        r,
        4,
        "expected 4 \"::\"-separated fields, found 3",
    );
    // A single colon is not the separator.
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(r, 4, "1:1:5:978300760"),
        r,
        4,
        "found 1",
    );
    t.line(
        Kind::NonNumericId,
        &b,
        b.clone().insert_line(r, 2, "1::one::5::978300760"),
        r,
        2,
        "item id \"one\"",
    );
    // Latin-1 reads every byte, so an é in an id is a non-numeric id, not an encoding error.
    t.line(
        Kind::NonNumericId,
        &b,
        b.clone()
            .insert_line(r, 2, b"1\xe9::1::5::978300760".to_vec()),
        r,
        2,
        "user id \"1\u{e9}\"",
    );
    t.line(
        Kind::EmptyId,
        &b,
        b.clone().insert_line(r, 11, "::1::5::978300760"),
        r,
        11,
        "empty user id",
    );
    t.line(
        Kind::NonFiniteRating,
        &b,
        b.clone().insert_line(r, 6, "1::1::NaN::978300760"),
        r,
        6,
        "rating \"NaN\" is not a finite number",
    );
    t.line(
        Kind::NonFiniteRating,
        &b,
        b.clone().insert_line(r, 6, "1::1::-inf::978300760"),
        r,
        6,
        "rating \"-inf\"",
    );
    let m = "movies.dat";
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(m, 2, "8::Babe (1995)"),
        m,
        2,
        "found 2",
    );
    t.line(
        Kind::NonNumericId,
        &b,
        b.clone().insert_line(m, 2, "M8::Babe (1995)::Comedy"),
        m,
        2,
        "movie id \"M8\"",
    );
    let u = "users.dat";
    t.line(
        Kind::Other,
        &b,
        b.clone().insert_line(u, 1, "4::X::25::1::12345"),
        u,
        1,
        "gender \"X\" is not M or F",
    );
    t.line(
        Kind::Other,
        &b,
        b.clone().insert_line(u, 2, "4::M::30::1::12345"),
        u,
        2,
        "age code \"30\"",
    );
    t.line(
        Kind::Other,
        &b,
        b.clone().insert_line(u, 5, "4::M::25::21::12345"),
        u,
        5,
        "occupation code \"21\"",
    );
    t.line(
        Kind::EmptyId,
        &b,
        b.clone().insert_line(u, 5, "::M::25::2::12345"),
        u,
        5,
        "empty user id",
    );
    t.file_cases(&b, r, r);
    t.file_cases(&b, m, m);
    t.file_cases(&b, u, u);
}

fn ml25m(t: &mut Table) {
    let b = common::ml25m();
    let r = "ratings.csv";
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(r, 3, "1,1,5.0"),
        r,
        3,
        "expected 4 fields, found 3",
    );
    t.line(
        Kind::NonNumericId,
        &b,
        b.clone().insert_line(r, 3, "1,x,5.0,1147880044"),
        r,
        3,
        "item id \"x\"",
    );
    t.line(
        Kind::EmptyId,
        &b,
        b.clone().insert_line(r, 12, ",1,5.0,1147880044"),
        r,
        12,
        "empty user id",
    );
    t.line(
        Kind::NonFiniteRating,
        &b,
        b.clone().insert_line(r, 2, "1,1,inf,1147880044"),
        r,
        2,
        "rating \"inf\" is not a finite number",
    );
    t.line(
        Kind::InvalidUtf8,
        &b,
        b.clone().insert_line(r, 4, b"1,1,5.0,114788\xff".to_vec()),
        r,
        4,
        "invalid UTF-8",
    );
    t.fatal_line(
        Kind::WrongHeader,
        &b,
        b.clone().replace_line(r, 1, "user,movie,rating,timestamp"),
        r,
        1,
        "expected the header",
    );
    t.fatal_line(
        Kind::DuplicateHeaderColumn,
        &b,
        b.clone()
            .replace_line(r, 1, "userId,userId,rating,timestamp"),
        r,
        1,
        "expected the header",
    );
    t.line(
        Kind::RepeatedHeader,
        &b,
        b.clone()
            .insert_line(r, 5, "userId,movieId,rating,timestamp"),
        r,
        5,
        "repeated header line",
    );
    let m = "movies.csv";
    t.line(
        Kind::InvalidUtf8,
        &b,
        b.clone()
            .insert_line(m, 3, b"8,Caf\xe9 (1995),Comedy".to_vec()),
        m,
        3,
        "invalid UTF-8",
    );
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(m, 3, "8,Babe, The (1995),Comedy"),
        m,
        3,
        "expected 3 fields, found 4",
    );
    t.line(
        Kind::Other,
        &b,
        b.clone().insert_line(m, 3, "8,\"Babe (1995),Comedy"),
        m,
        3,
        "unterminated quoted field",
    );
    t.line(
        Kind::NonNumericId,
        &b,
        b.clone().insert_line(m, 7, "tt8,Babe (1995),Comedy"),
        m,
        7,
        "movie id \"tt8\"",
    );
    t.fatal_line(
        Kind::WrongHeader,
        &b,
        b.clone().replace_line(m, 1, "movieId,title"),
        m,
        1,
        "expected the header",
    );
    t.line(
        Kind::RepeatedHeader,
        &b,
        b.clone().insert_line(m, 3, "movieId,title,genres"),
        m,
        3,
        "repeated header line",
    );
    t.file_cases(&b, r, r);
    t.file_cases(&b, m, m);
    t.fatal(
        Kind::NoInteractions,
        &b,
        b.clone().set(r, "userId,movieId,rating,timestamp\n"),
        Expect::NoInteractions(r),
    );
}

fn bookcrossing(t: &mut Table) {
    let b = common::bookcrossing_clean();
    let r = "BX-Book-Ratings.csv";
    t.line(
        Kind::FieldCount,
        &b,
        b.clone()
            .insert_line(r, 3, "\"276725\";\"0155061224\";\"5\";\"0\""),
        r,
        3,
        "expected 3 fields, found 4",
    );
    t.line(
        Kind::FieldCount,
        &b,
        b.clone()
            .insert_line(r, 3, "\"276725\",\"0155061224\",\"5\""),
        r,
        3,
        "after the closing quote",
    );
    t.line(
        Kind::EmptyId,
        &b,
        b.clone().insert_line(r, 4, "\"\";\"0155061224\";\"5\""),
        r,
        4,
        "empty user id",
    );
    t.line(
        Kind::EmptyId,
        &b,
        b.clone().insert_line(r, 4, "\"276725\";\"\";\"5\""),
        r,
        4,
        "empty ISBN",
    );
    t.line(
        Kind::NonFiniteRating,
        &b,
        b.clone()
            .insert_line(r, 10, "\"276725\";\"0155061224\";\"nan\""),
        r,
        10,
        "rating \"nan\" is not a finite number",
    );
    t.line(
        Kind::Other,
        &b,
        b.clone()
            .insert_line(r, 10, "\"276725\";\"0155061224\";\"11\""),
        r,
        10,
        "rating 11 is not an integer in 0..=10",
    );
    t.line(
        Kind::Other,
        &b,
        b.clone()
            .insert_line(r, 10, "\"276725\";\"0155061224\";\"4.5\""),
        r,
        10,
        "rating 4.5 is not an integer",
    );
    t.fatal_line(
        Kind::WrongHeader,
        &b,
        b.clone()
            .replace_line(r, 1, "\"User-ID\";\"ISBN\";\"Rating\""),
        r,
        1,
        "expected the header",
    );
    t.fatal_line(
        Kind::WrongHeader,
        &b,
        b.clone().replace_line(r, 1, "User-ID;ISBN"),
        r,
        1,
        "expected the header",
    );
    t.fatal_line(
        Kind::DuplicateHeaderColumn,
        &b,
        b.clone()
            .replace_line(r, 1, "\"User-ID\";\"User-ID\";\"Book-Rating\""),
        r,
        1,
        "expected the header",
    );
    t.line(
        Kind::RepeatedHeader,
        &b,
        b.clone()
            .insert_line(r, 5, "\"User-ID\";\"ISBN\";\"Book-Rating\""),
        r,
        5,
        "repeated header line",
    );
    let books = "BX-Books.csv";
    // The real files' malformation: a stray quote inside a quoted title.
    // Lenient mode must then give what the files without that line give.
    let raw = common::bookcrossing();
    let without = raw.clone().remove_line(books, common::BX_BAD_BOOK_LINE);
    t.line(
        Kind::Other,
        &without,
        raw,
        books,
        common::BX_BAD_BOOK_LINE,
        "unexpected 'D' after the closing quote of field 2",
    );
    let unterminated = "\"0000000001\";\"T\";\"A\";\"2000\";\"P\";\"s\";\"m\";\"l";
    t.line(
        Kind::Other,
        &b,
        b.clone().insert_line(books, 2, unterminated),
        books,
        2,
        "unterminated quoted field 8",
    );
    let year = "\"0000000001\";\"T\";\"A\";\"MMII\";\"P\";\"s\";\"m\";\"l\"";
    t.line(
        Kind::Other,
        &b,
        b.clone().insert_line(books, 3, year),
        books,
        3,
        "year \"MMII\" is not an integer",
    );
    t.line(
        Kind::FieldCount,
        &b,
        b.clone()
            .insert_line(books, 3, "\"0000000001\";\"T\";\"A\""),
        books,
        3,
        "expected 8 fields, found 3",
    );
    let users = "BX-Users.csv";
    t.line(
        Kind::Other,
        &b,
        b.clone()
            .insert_line(users, 2, "\"276800\";\"x, y, z\";\"abc\""),
        users,
        2,
        "age \"abc\" is not an integer or NULL",
    );
    t.fatal_line(
        Kind::WrongHeader,
        &b,
        b.clone().replace_line(users, 1, "\"User-ID\";\"Location\""),
        users,
        1,
        "expected the header",
    );
    t.file_cases(&b, r, r);
    t.file_cases(&b, books, books);
    t.file_cases(&b, users, users);
    t.fatal(
        Kind::NoInteractions,
        &b,
        b.clone().set(r, "\"User-ID\";\"ISBN\";\"Book-Rating\"\n"),
        Expect::NoInteractions(r),
    );
}

fn recbole(t: &mut Table) {
    let b = common::recbole();
    let i = "toy.inter";
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(i, 4, "1\t2\t3"),
        i,
        4,
        "expected 4 tab-separated fields (as in the header), found 3",
    );
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(i, 4, "1 2 3 881250949"),
        i,
        4,
        "found 1",
    );
    t.line(
        Kind::EmptyId,
        &b,
        b.clone().insert_line(i, 2, "\t1\t3\t881250949"),
        i,
        2,
        "empty user_id",
    );
    t.line(
        Kind::EmptyId,
        &b,
        b.clone().insert_line(i, 12, "1\t\t3\t881250949"),
        i,
        12,
        "empty item_id",
    );
    t.line(
        Kind::NonFiniteRating,
        &b,
        b.clone().insert_line(i, 6, "1\t1\tnan\t881250949"),
        i,
        6,
        "rating \"nan\" is not a finite number",
    );
    t.line(
        Kind::Other,
        &b,
        b.clone().insert_line(i, 6, "1\t1\t3\tnoon"),
        i,
        6,
        "timestamp \"noon\"",
    );
    t.line(
        Kind::InvalidUtf8,
        &b,
        b.clone()
            .insert_line(i, 3, b"1\t\xff\t3\t881250949".to_vec()),
        i,
        3,
        "invalid UTF-8",
    );
    t.line(
        Kind::RepeatedHeader,
        &b,
        b.clone().insert_line(
            i,
            6,
            "user_id:token\titem_id:token\trating:float\ttimestamp:float",
        ),
        i,
        6,
        "repeated header line",
    );
    // Without a readable header no line can be read: fatal in lenient mode too.
    t.fatal_line(
        Kind::DuplicateHeaderColumn,
        &b,
        b.clone().replace_line(i, 1, "user_id:token\tuser_id:token"),
        i,
        1,
        "duplicate header column \"user_id\"",
    );
    t.fatal_line(
        Kind::WrongHeader,
        &b,
        b.clone()
            .replace_line(i, 1, "user_id\titem_id\trating\ttimestamp"),
        i,
        1,
        "has no ':type' (is the header missing?)",
    );
    t.fatal_line(
        Kind::WrongHeader,
        &b,
        b.clone().replace_line(i, 1, "1\t1\t5\t874965758"),
        i,
        1,
        "has no ':type'",
    );
    t.fatal_line(
        Kind::WrongHeader,
        &b,
        b.clone().replace_line(
            i,
            1,
            "user_id:string\titem_id:token\trating:float\ttimestamp:float",
        ),
        i,
        1,
        "unknown type \"string\"",
    );
    t.fatal_line(
        Kind::WrongHeader,
        &b,
        b.clone().replace_line(
            i,
            1,
            "user_id:token\tmovie_id:token\trating:float\ttimestamp:float",
        ),
        i,
        1,
        "no item_id column",
    );
    let item = "toy.item";
    t.line(
        Kind::FieldCount,
        &b,
        b.clone().insert_line(item, 3, "8\tBabe"),
        item,
        3,
        "found 2",
    );
    t.line(
        Kind::EmptyId,
        &b,
        b.clone().insert_line(item, 3, " \tBabe\t1995\tComedy"),
        item,
        3,
        "empty item_id",
    );
    t.fatal_line(
        Kind::DuplicateHeaderColumn,
        &b,
        b.clone().replace_line(
            item,
            1,
            "item_id:token\titem_id:token\tclass:token_seq\tclass:token_seq",
        ),
        item,
        1,
        "duplicate header column \"item_id\"",
    );
    let user = "toy.user";
    t.line(
        Kind::FieldCount,
        &b,
        b.clone()
            .insert_line(user, 2, "4\t40\tM\tother\t12345\textra"),
        user,
        2,
        "found 6",
    );
    t.line(
        Kind::EmptyId,
        &b,
        b.clone().insert_line(user, 7, "\t40\tM\tother\t12345"),
        user,
        7,
        "empty user_id",
    );
    t.fatal_line(
        Kind::WrongHeader,
        &b,
        b.clone().replace_line(
            user,
            1,
            "age:token\tgender:token\toccupation:token\tzip_code:token\tzip:token",
        ),
        user,
        1,
        "no user_id column",
    );
    t.fatal(
        Kind::MissingFile,
        &b,
        b.clone().without(i),
        Expect::Missing("recbole-toy.inter"),
    );
    t.fatal(
        Kind::EmptyFile,
        &b,
        b.clone().set(i, Vec::new()),
        Expect::Empty(i),
    );
    t.fatal(
        Kind::WhitespaceFile,
        &b,
        b.clone().set(i, "\n\n \t\n"),
        Expect::Empty(i),
    );
    t.fatal(
        Kind::EmptyFile,
        &b,
        b.clone().set(item, Vec::new()),
        Expect::Empty(item),
    );
    t.fatal(
        Kind::NoInteractions,
        &b,
        b.clone().set(i, "user_id:token\titem_id:token\n"),
        Expect::NoInteractions(i),
    );
}

fn csv(t: &mut Table) {
    let h = common::csv_with_header();
    let f = "interactions.csv";
    t.line(
        Kind::FieldCount,
        &h,
        h.clone().insert_line(f, 4, "1,2,3"),
        f,
        4,
        "expected 4 fields, found 3",
    );
    t.line(
        Kind::FieldCount,
        &h,
        h.clone().insert_line(f, 4, "1;2;3;881250949"),
        f,
        4,
        "expected 4 fields, found 1",
    );
    t.line(
        Kind::EmptyId,
        &h,
        h.clone().insert_line(f, 2, ",1,3,881250949"),
        f,
        2,
        "empty user id",
    );
    t.line(
        Kind::EmptyId,
        &h,
        h.clone().insert_line(f, 2, "1,\"\",3,881250949"),
        f,
        2,
        "empty item id",
    );
    t.line(
        Kind::NonFiniteRating,
        &h,
        h.clone().insert_line(f, 11, "1,1,NaN,881250949"),
        f,
        11,
        "rating \"NaN\" is not a finite number",
    );
    t.line(
        Kind::Other,
        &h,
        h.clone().insert_line(f, 11, "1,1,3,12.5"),
        f,
        11,
        "timestamp \"12.5\" is not an integer",
    );
    t.line(
        Kind::InvalidUtf8,
        &h,
        h.clone()
            .insert_line(f, 3, b"1,\xc3\x28,3,881250949".to_vec()),
        f,
        3,
        "invalid UTF-8 at byte 2",
    );
    t.line(
        Kind::Other,
        &h,
        h.clone().insert_line(f, 3, "\"1,1,3,881250949"),
        f,
        3,
        "unterminated quoted field 1",
    );
    t.line(
        Kind::RepeatedHeader,
        &h,
        h.clone()
            .insert_line(f, 6, "user_id,item_id,rating,timestamp"),
        f,
        6,
        "repeated header line",
    );
    // A header defines the columns: a bad one is fatal in lenient mode too.
    t.fatal_line(
        Kind::DuplicateHeaderColumn,
        &h,
        h.clone().replace_line(f, 1, "user,user,item"),
        f,
        1,
        "duplicate header column \"user\"",
    );
    t.fatal_line(
        Kind::DuplicateHeaderColumn,
        &h,
        h.clone().replace_line(f, 1, "user,item,ts,timestamp"),
        f,
        1,
        "duplicate header column \"timestamp\"",
    );
    t.fatal_line(
        Kind::WrongHeader,
        &h,
        h.clone().replace_line(f, 1, "item,rating,timestamp"),
        f,
        1,
        "needs a user and an item column",
    );
    t.fatal_line(
        Kind::WrongHeader,
        &h,
        h.clone().replace_line(f, 1, "user,rating"),
        f,
        1,
        "needs a user and an item column",
    );
    let p = common::csv_no_header();
    t.line(
        Kind::FieldCount,
        &p,
        p.clone().insert_line(f, 1, "1,2,3,4,5"),
        f,
        1,
        "expected 2 to 4 fields",
    );
    t.line(
        Kind::FieldCount,
        &p,
        p.clone().insert_line(f, 5, "1"),
        f,
        5,
        "expected 4 fields, found 1",
    );
    t.line(
        Kind::NonFiniteRating,
        &p,
        p.clone().insert_line(f, 5, "1,1,inf,881250949"),
        f,
        5,
        "rating \"inf\"",
    );
    t.fatal(
        Kind::MissingFile,
        &h,
        h.clone().without(f),
        Expect::Missing(f),
    );
    t.fatal(
        Kind::EmptyFile,
        &h,
        h.clone().set(f, Vec::new()),
        Expect::Empty(f),
    );
    t.fatal(
        Kind::WhitespaceFile,
        &h,
        h.clone().set(f, "\r\n   \r\n"),
        Expect::Empty(f),
    );
    t.fatal(
        Kind::NoInteractions,
        &h,
        h.clone().set(f, "user,item,rating\n"),
        Expect::NoInteractions(f),
    );
}

fn table() -> Vec<Case> {
    let mut t = Table::default();
    amazon(&mut t);
    ml100k(&mut t);
    ml1m(&mut t);
    ml25m(&mut t);
    bookcrossing(&mut t);
    recbole(&mut t);
    csv(&mut t);
    t.0
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Checks a strict-mode error against the expectation; returns the message.
fn check_error(case: &Case, err: &DataError) {
    let shown = err.to_string();
    match (&case.expect, err) {
        (
            Expect::Parse { file, line, reason },
            DataError::Parse {
                path,
                line: got,
                reason: why,
            },
        ) => {
            assert_eq!(file_name(path), *file, "{}: file", case.name);
            assert_eq!(got, line, "{}: line ({why})", case.name);
            assert!(
                why.contains(reason),
                "{}: reason {why:?} lacks {reason:?}",
                case.name
            );
            let at = format!("{file}:{line}: ");
            assert!(shown.contains(&at), "{}: {shown:?} lacks {at:?}", case.name);
            assert!(shown.ends_with(why.as_str()), "{}: {shown:?}", case.name);
        }
        (Expect::Missing(file), DataError::MissingFile { path })
        | (Expect::Empty(file), DataError::EmptyFile { path })
        | (Expect::Json(file), DataError::Json { path, .. })
        | (Expect::NoInteractions(file), DataError::NoInteractions { path }) => {
            assert_eq!(file_name(path), *file, "{}", case.name);
            assert!(shown.contains(file), "{}: {shown:?}", case.name);
        }
        (want, got) => panic!("{}: expected {want:?}, got {got:?} ({shown})", case.name),
    }
}

/// Non-blank lines of the files a load read line by line.
fn non_blank_lines(fx: &Fixture, report: &LoadReport) -> usize {
    report
        .files
        .iter()
        .map(|p| file_name(p))
        .filter(|n| !n.ends_with(".json"))
        .map(|n| {
            fx.file(&n)
                .split(|&b| b == b'\n')
                .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
                .count()
        })
        .sum()
}

fn assert_same_data(a: &Dataset, b: &Dataset, what: &str) {
    assert_eq!(a.interactions, b.interactions, "{what}: interactions");
    assert_eq!(a.users, b.users, "{what}: users");
    assert_eq!(a.items, b.items, "{what}: items");
    assert_eq!(a.user_info, b.user_info, "{what}: user info");
    assert_eq!(a.item_info, b.item_info, "{what}: item info");
}

#[test]
fn every_loader_has_every_kind_of_case() {
    use Kind::*;
    let mut got: BTreeMap<String, BTreeSet<Kind>> = BTreeMap::new();
    for c in table() {
        got.entry(c.base.format.to_string())
            .or_default()
            .insert(c.kind);
    }
    let always = [FieldCount, MissingFile, EmptyFile, WhitespaceFile];
    let want: [(Format, &[Kind]); 7] = [
        (Format::AmazonP5, &[NonNumericId, InvalidUtf8, BadJson]),
        (
            Format::Movielens100k,
            &[NonNumericId, EmptyId, NonFiniteRating, InvalidUtf8],
        ),
        (
            Format::Movielens1m,
            &[NonNumericId, EmptyId, NonFiniteRating],
        ),
        (
            Format::Movielens25m,
            &[
                NonNumericId,
                EmptyId,
                NonFiniteRating,
                InvalidUtf8,
                WrongHeader,
                DuplicateHeaderColumn,
                RepeatedHeader,
            ],
        ),
        (
            Format::BookCrossing,
            &[
                EmptyId,
                NonFiniteRating,
                WrongHeader,
                DuplicateHeaderColumn,
                RepeatedHeader,
            ],
        ),
        (
            Format::Recbole,
            &[
                EmptyId,
                NonFiniteRating,
                InvalidUtf8,
                WrongHeader,
                DuplicateHeaderColumn,
                RepeatedHeader,
            ],
        ),
        (
            Format::Csv,
            &[
                EmptyId,
                NonFiniteRating,
                InvalidUtf8,
                WrongHeader,
                DuplicateHeaderColumn,
                RepeatedHeader,
            ],
        ),
    ];
    assert_eq!(want.len(), Format::LOADABLE.len());
    for (format, kinds) in want {
        let have = got.get(&format.to_string()).cloned().unwrap_or_default();
        for k in always.iter().chain(kinds) {
            assert!(have.contains(k), "{format}: no {k:?} case");
        }
    }
}

#[test]
fn strict_mode_names_file_line_and_reason() {
    let cases = table();
    assert!(cases.len() > 120, "{} cases", cases.len());
    for case in &cases {
        let (_tmp, res) = case.fixture.load(&LoadOptions::default());
        match res {
            Ok(ds) => panic!(
                "{}: loaded {} interactions instead of failing",
                case.name,
                ds.interactions.len()
            ),
            Err(e) => check_error(case, &e),
        }
    }
}

#[test]
fn lenient_mode_skips_exactly_the_bad_lines() {
    for case in table() {
        let (_tmp, res) = case.fixture.load(&LoadOptions::lenient());
        match (&case.lenient, res) {
            (Lenient::Fails, Err(e)) => check_error(&case, &e),
            (Lenient::Fails, Ok(_)) => panic!("{}: lenient mode should fail too", case.name),
            (Lenient::SkipsTheLine, Err(e)) => panic!("{}: lenient load failed: {e}", case.name),
            (Lenient::SkipsTheLine, Ok(ds)) => {
                let Expect::Parse { file, line, reason } = case.expect else {
                    panic!("{}: only line errors can be skipped", case.name);
                };
                let report = &ds.report;
                assert_eq!(report.lines_skipped, 1, "{}", case.name);
                assert_eq!(report.skipped_examples.len(), 1, "{}", case.name);
                let skipped = &report.skipped_examples[0];
                assert_eq!(file_name(&skipped.path), file, "{}", case.name);
                assert_eq!(skipped.line, line, "{}", case.name);
                assert!(
                    skipped.reason.contains(reason),
                    "{}: {:?}",
                    case.name,
                    skipped.reason
                );
                // Every other line was read...
                assert_eq!(
                    report.lines_parsed + report.lines_skipped,
                    non_blank_lines(&case.fixture, report),
                    "{}",
                    case.name
                );
                // ...and gives exactly what the clean files give.
                let (_tmp, base) = case.base.load(&LoadOptions::default());
                let base = base.unwrap_or_else(|e| panic!("{}: base fixture: {e}", case.name));
                assert_same_data(&ds, &base, &case.name);
                let names =
                    |r: &LoadReport| r.files.iter().map(|p| file_name(p)).collect::<Vec<_>>();
                assert_eq!(names(report), names(&base.report), "{}", case.name);
            }
        }
    }
}

#[test]
fn lenient_counts_every_bad_line_and_keeps_twenty_examples() {
    // 25 bad lines between the good ones, in two files.
    let mut fx = common::ml100k();
    let mut bad_lines = Vec::new();
    for k in 0..20 {
        // The first ten alternate with the ten good lines, the rest follow them.
        let line = if k < 10 { 2 * k + 1 } else { k + 11 };
        fx = fx.insert_line("u.data", line, format!("{k}\tx{k}\t3\t881250949"));
        bad_lines.push(("u.data".to_owned(), line));
    }
    for (k, line) in [(0, 1), (1, 3), (2, 5), (3, 7), (4, 9)] {
        fx = fx.insert_line("u.user", line, format!("{}|old|M|other|00000", 100 + k));
        bad_lines.push(("u.user".to_owned(), line));
    }
    let (_tmp, strict) = fx.load(&LoadOptions::default());
    assert!(matches!(strict, Err(DataError::Parse { line: 1, .. })));
    let (_tmp, res) = fx.load(&LoadOptions::lenient());
    let ds = res.unwrap();
    assert_eq!(ds.report.lines_skipped, 25);
    assert_eq!(ds.report.skipped_examples.len(), LoadReport::MAX_EXAMPLES);
    let shown: Vec<(String, usize)> = ds
        .report
        .skipped_examples
        .iter()
        .map(|s| (file_name(&s.path), s.line))
        .collect();
    assert_eq!(
        shown,
        bad_lines[..LoadReport::MAX_EXAMPLES].to_vec(),
        "the first 20, in file order"
    );
    let (_tmp, base) = common::ml100k().load(&LoadOptions::default());
    assert_same_data(&ds, &base.unwrap(), "25 bad lines");
}

#[test]
fn lenient_file_without_any_good_line() {
    // Every line bad: lenient mode skips them all and then finds no interactions.
    let fx = common::ml100k().set("u.data", "a\tb\tc\td\n1\t2\n");
    let (_tmp, res) = fx.load(&LoadOptions::lenient());
    assert!(
        matches!(res, Err(DataError::NoInteractions { ref path }) if file_name(path) == "u.data"),
        "{res:?}"
    );
    // A file of invalid UTF-8 only is not "empty": its lines are reported.
    let fx = common::csv_no_header().set("interactions.csv", b"\xff\xfe\n\xc0\n".to_vec());
    let (_tmp, res) = fx.load(&LoadOptions::default());
    assert!(
        matches!(res, Err(DataError::Parse { line: 1, .. })),
        "{res:?}"
    );
    let (_tmp, res) = fx.load(&LoadOptions::lenient());
    assert!(
        matches!(res, Err(DataError::NoInteractions { .. })),
        "{res:?}"
    );
}

#[test]
fn blank_lines_and_crlf_are_not_errors() {
    for fx in common::all_clean() {
        let mut edited = fx.clone();
        for (name, bytes) in &fx.files {
            if name.ends_with(".json") {
                continue;
            }
            let mut out = Vec::new();
            for line in bytes.split(|&b| b == b'\n') {
                out.extend_from_slice(line);
                if !line.is_empty() {
                    out.extend_from_slice(b"\r\n\r\n  \n");
                }
            }
            edited = edited.set(name, out);
        }
        let (_tmp, a) = fx.load(&LoadOptions::default());
        let (_tmp2, b) = edited.load(&LoadOptions::default());
        let (a, b) = (
            a.unwrap(),
            b.unwrap_or_else(|e| panic!("{}: {e}", fx.dir_name)),
        );
        assert_same_data(&a, &b, fx.dir_name);
        assert_eq!(b.report.lines_skipped, 0);
    }
}

#[test]
fn path_errors_for_every_loader() {
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = tmp.path().join("nowhere");
    for (_, format) in Format::LOADABLE {
        for opts in [LoadOptions::default(), LoadOptions::lenient()] {
            let err = graft_data::load(format, &nowhere, &opts).unwrap_err();
            assert!(
                matches!(err, DataError::MissingFile { .. }),
                "{format}: {err:?}"
            );
            assert!(err.to_string().contains("not found"), "{err}");
        }
    }
    // A folder given to the generic CSV loader is not a file.
    let err = graft_data::load(Format::Csv, tmp.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::MissingFile { .. }), "{err:?}");
}
