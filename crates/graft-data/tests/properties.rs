//! Property tests: writer/loader round trips, the quoted-field splitter, the
//! loaders on arbitrary bytes, dense id maps, the two splits and the
//! negative sampler.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeSet, HashSet};

use common::{dataset_from, raw_interactions, Fixture, RawInteraction};
use graft_data::formats::{csv, recbole};
use graft_data::read::split_quoted;
use graft_data::{
    CtrConfig, CtrOrder, CtrSplit, DataError, Dataset, Format, IdMap, ItemInfo, LeaveOneOut,
    LoadOptions, NegativeSampler, UserInfo,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Modest case counts (2-core machines); regressions go next to this file.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Any finite f32, subnormals and signed zeros included.
fn finite_f32() -> impl Strategy<Value = f32> {
    prop::num::f32::POSITIVE
        | prop::num::f32::NEGATIVE
        | prop::num::f32::NORMAL
        | prop::num::f32::SUBNORMAL
        | prop::num::f32::ZERO
}

/// Interactions with raw ids drawn from `id`, optionally with ratings and timestamps.
fn raw_dataset(
    id: impl Strategy<Value = String> + Clone,
) -> impl Strategy<Value = Vec<RawInteraction>> {
    (
        any::<bool>(),
        any::<bool>(),
        vec((id.clone(), id, finite_f32(), any::<i64>()), 1..25),
    )
        .prop_map(|(has_r, has_t, rows)| {
            rows.into_iter()
                .map(|(u, i, r, t)| (u, i, has_r.then_some(r), has_t.then_some(t)))
                .collect()
        })
}

/// Text that RecBole's writer keeps as is: no tab, newline or carriage return.
fn recbole_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[^\t\n\r]{1,10}")
}

fn item_info() -> impl Strategy<Value = ItemInfo> {
    (
        recbole_text(),
        vec("[A-Za-z'&-]{1,8}", 0..4),
        recbole_text(),
        prop::option::of(any::<i32>()),
    )
        .prop_map(|(title, genres, author, year)| ItemInfo {
            title,
            genres,
            author,
            year,
            external_id: None,
        })
}

fn user_info() -> impl Strategy<Value = UserInfo> {
    (
        prop::option::of(any::<u32>()),
        recbole_text(),
        recbole_text(),
        recbole_text(),
    )
        .prop_map(|(age, gender, occupation, location)| UserInfo {
            age,
            gender,
            occupation,
            location,
            external_id: None,
        })
}

/// Tokens that make random files look like the real formats, so that the
/// loaders' deeper paths (headers, fields, quoting, encodings) are reached.
const TOKENS: [&[u8]; 40] = [
    b"1",
    b"2",
    b"10",
    b"007",
    b"x",
    b"",
    b" ",
    b"\t",
    b";",
    b":",
    b"::",
    b"|",
    b",",
    b"\"",
    b"\"\"",
    b"NULL",
    b"nan",
    b"inf",
    b"-1",
    b"+1",
    b"3.5",
    b"1e400",
    b"user_id:token",
    b"item_id:token",
    b"rating:float",
    b"timestamp:float",
    b"userId,movieId,rating,timestamp",
    b"movieId,title,genres",
    b"\"User-ID\";\"ISBN\";\"Book-Rating\"",
    b"user",
    b"item",
    b"{",
    b"}",
    b"\"id2user\"",
    b"\xff",
    b"\xe9",
    b"\r",
    b"\xef\xbb\xbf",
    b"(1995)",
    b"\n",
];

fn file_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..200),
        vec(vec(prop::sample::select(TOKENS.to_vec()), 0..8), 0..8).prop_map(|lines| {
            let mut out = Vec::new();
            for l in lines {
                for t in l {
                    out.extend_from_slice(t);
                }
                out.push(b'\n');
            }
            out
        }),
    ]
}

/// Checks what any successfully loaded dataset must satisfy.
fn check_consistent(ds: &Dataset, lenient: bool) -> Result<(), TestCaseError> {
    let (nu, ni) = (ds.n_users(), ds.n_items());
    prop_assert!(!ds.interactions.is_empty());
    prop_assert_eq!(ds.user_info.len(), nu);
    prop_assert_eq!(ds.item_info.len(), ni);
    let mut seen_u = vec![false; nu];
    let mut seen_i = vec![false; ni];
    for x in &ds.interactions {
        prop_assert!((x.user as usize) < nu && (x.item as usize) < ni);
        seen_u[x.user as usize] = true;
        seen_i[x.item as usize] = true;
        prop_assert!(x.rating.is_none_or(f32::is_finite));
    }
    prop_assert!(
        seen_u.iter().all(|&s| s) && seen_i.iter().all(|&s| s),
        "every dense id interacts"
    );
    for (i, raw) in ds.users.raw_ids().iter().enumerate() {
        prop_assert_eq!(ds.users.get(raw), Some(i as u32));
    }
    for (i, raw) in ds.items.raw_ids().iter().enumerate() {
        prop_assert_eq!(ds.items.get(raw), Some(i as u32));
    }
    if !lenient {
        prop_assert_eq!(ds.report.lines_skipped, 0);
    }
    prop_assert_eq!(
        ds.report.skipped_examples.len(),
        ds.report
            .lines_skipped
            .min(graft_data::LoadReport::MAX_EXAMPLES)
    );
    Ok(())
}

// ---------------------------------------------------------------- round trips

proptest! {
    #![proptest_config(config(64))]

    /// The generic CSV writer's output loads back to the same interactions,
    /// ids with commas, quotes and non-ASCII characters included.
    #[test]
    fn csv_write_load_round_trip(rows in raw_dataset("[a-d0-9,\"'é€;|]([a-d0-9 ,\"'é€;|]{0,3}[a-d0-9,\"'é€;|])?")) {
        let ds = dataset_from(&rows, Format::Csv);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.csv");
        csv::write(&ds, &path).unwrap();
        let back = graft_data::load(Format::Csv, &path, &LoadOptions::default()).unwrap();
        prop_assert_eq!(raw_interactions(&back), rows);
        prop_assert_eq!(&back.users, &ds.users);
        prop_assert_eq!(&back.items, &ds.items);
    }

    /// The RecBole writer's `.inter`, `.item` and `.user` load back to the
    /// same interactions and side information.
    #[test]
    fn recbole_write_load_round_trip(
        rows in raw_dataset("[A-Za-z0-9_.,;:\"'|-]{1,6}"),
        items in vec(item_info(), 50),
        users in vec(user_info(), 50),
    ) {
        let mut ds = dataset_from(&rows, Format::Recbole);
        ds.item_info = items[..ds.n_items()].to_vec();
        ds.user_info = users[..ds.n_users()].to_vec();
        let tmp = tempfile::tempdir().unwrap();
        recbole::write(&ds, tmp.path(), "rt").unwrap();
        let back = graft_data::load(Format::Recbole, tmp.path(), &LoadOptions::default()).unwrap();
        prop_assert_eq!(raw_interactions(&back), rows);
        prop_assert_eq!(&back.items, &ds.items);
        prop_assert_eq!(&back.users, &ds.users);
        prop_assert_eq!(&back.item_info, &ds.item_info);
        prop_assert_eq!(&back.user_info, &ds.user_info);
        prop_assert_eq!(back.report.side_info_missing + back.report.side_info_unmatched, 0);
    }

    /// Serialising a dataset to JSON and back keeps it, id lookups included.
    #[test]
    fn dataset_json_round_trip(rows in raw_dataset("[a-z0-9]{1,4}")) {
        let ds = dataset_from(&rows, Format::Csv);
        let back: Dataset = serde_json::from_str(&serde_json::to_string(&ds).unwrap()).unwrap();
        prop_assert_eq!(raw_interactions(&back), rows);
        prop_assert_eq!(&back.users, &ds.users);
        prop_assert_eq!(&back.items, &ds.items);
    }
}

// ---------------------------------------------------------------- split_quoted

/// A field encoded as CSV: quoted when it must be (or when `force`).
fn encode(field: &str, delim: char, force: bool) -> String {
    if force || field.contains(delim) || field.starts_with('"') {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn delimiter() -> impl Strategy<Value = char> {
    prop_oneof![
        Just(','),
        Just(';'),
        Just('\t'),
        Just('|'),
        any::<char>().prop_filter("not a quote", |c| *c != '"')
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn split_quoted_never_panics(line in any::<String>(), delim in any::<char>()) {
        let _ = split_quoted(&line, delim);
    }

    #[test]
    fn split_quoted_never_panics_on_csv_like_text(line in "[a,;\"\t ]{0,40}", delim in prop::sample::select(vec![',', ';', '"', '\t'])) {
        if let Ok(fields) = split_quoted(&line, delim) {
            prop_assert!(!fields.is_empty());
        }
    }

    /// Any fields, encoded (quoted where needed, or always), split back to themselves.
    #[test]
    fn split_quoted_round_trips(
        fields in vec(any::<String>(), 1..6),
        force in vec(any::<bool>(), 6),
        delim in delimiter(),
    ) {
        let line: Vec<String> = fields.iter().zip(&force).map(|(f, &q)| encode(f, delim, q)).collect();
        let line = line.join(&delim.to_string());
        prop_assert_eq!(split_quoted(&line, delim), Ok(fields));
    }

    /// Unquoted fields without the delimiter split on the delimiter exactly;
    /// a quote inside an unquoted field is kept.
    #[test]
    fn split_quoted_plain_fields(fields in vec("[a-z\" ]{0,5}", 1..6), delim in prop::sample::select(vec![',', ';', '\t'])) {
        let fields: Vec<String> = fields.into_iter().filter(|f| !f.starts_with('"')).collect();
        prop_assume!(!fields.is_empty());
        let line = fields.join(&delim.to_string());
        prop_assert_eq!(split_quoted(&line, delim), Ok(fields));
    }
}

// ---------------------------------------------------------------- loaders on arbitrary bytes

proptest! {
    #![proptest_config(config(256))]

    /// Any file of any loader replaced by arbitrary bytes (optionally after
    /// the file's real first line): the result is a dataset that is
    /// consistent, or an error that names one of the files; never a panic.
    #[test]
    fn loaders_never_panic_on_arbitrary_bytes(
        which in 0usize..8,
        file in 0usize..5,
        bytes in file_bytes(),
        keep_first_line in any::<bool>(),
        lenient in any::<bool>(),
    ) {
        let base: Fixture = common::all_clean().swap_remove(which);
        let (name, original) = base.files[file % base.files.len()].clone();
        let mut content = Vec::new();
        if keep_first_line {
            content.extend(original.split(|&b| b == b'\n').next().unwrap_or_default());
            content.push(b'\n');
        }
        content.extend(bytes);
        let fx = base.set(&name, content);
        let opts = if lenient { LoadOptions::lenient() } else { LoadOptions::default() };
        let (_tmp, res) = fx.load(&opts);
        match res {
            Ok(ds) => check_consistent(&ds, lenient)?,
            Err(e) => {
                let shown = e.to_string();
                prop_assert!(!shown.is_empty());
                match &e {
                    DataError::Parse { path, line, reason } => {
                        prop_assert!(*line >= 1);
                        prop_assert!(!reason.is_empty());
                        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
                        prop_assert!(fx.files.iter().any(|(n, _)| *n == file_name), "{}", file_name);
                        prop_assert!(shown.contains(&format!("{file_name}:{line}: ")), "{}", shown);
                    }
                    DataError::MissingFile { .. } | DataError::EmptyFile { .. } | DataError::Json { .. }
                    | DataError::NoInteractions { .. } | DataError::UnknownFormat { .. } => {}
                    other => prop_assert!(false, "unexpected error kind {:?}", other),
                }
            }
        }
    }
}

// ---------------------------------------------------------------- dense ids

fn raw_ids() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        // Numeric, with leading zeros (so "7", "07" and "007" are distinct ids).
        vec("0{0,2}[0-9]{1,3}", 1..30),
        // Mixed: sorted lexicographically.
        vec("[0-9a-c]{1,3}", 1..30),
    ]
}

proptest! {
    #![proptest_config(config(128))]

    /// Dense ids depend on the set of raw ids only: not on their order or
    /// repetitions. Numeric ids sort by value, others lexicographically.
    #[test]
    fn id_map_is_sorted_deduplicated_and_order_free(ids in raw_ids(), seed in any::<u64>()) {
        let mut shuffled = ids.clone();
        graft_data::rng::shuffle(&mut graft_data::rng::stream_rng(seed, 0), &mut shuffled);
        shuffled.extend(ids.iter().take(3).cloned());
        let a = IdMap::from_raw(ids.clone());
        let b = IdMap::from_raw(shuffled);
        prop_assert_eq!(a.raw_ids(), b.raw_ids());
        let distinct: BTreeSet<&String> = ids.iter().collect();
        prop_assert_eq!(a.len(), distinct.len());
        for (i, r) in a.raw_ids().iter().enumerate() {
            prop_assert_eq!(a.get(r), Some(i as u32));
            prop_assert_eq!(a.raw(i as u32), Some(r.as_str()));
        }
        let numeric = ids.iter().all(|r| r.bytes().all(|c| c.is_ascii_digit()));
        for w in a.raw_ids().windows(2) {
            if numeric {
                let (x, y): (u64, u64) = (w[0].parse().unwrap(), w[1].parse().unwrap());
                prop_assert!(x <= y, "{} before {}", w[0], w[1]);
            } else {
                prop_assert!(w[0] < w[1]);
            }
        }
    }
}

// ---------------------------------------------------------------- splits

/// Small random interactions `(user, item, rating, timestamp)` with many
/// timestamp ties.
fn small_rows(with_ts: bool) -> impl Strategy<Value = Vec<RawInteraction>> {
    vec((0u32..6, 0u32..12, 1u8..=5, 0i64..12), 1..50).prop_map(move |rows| {
        rows.into_iter()
            .map(|(u, i, r, t)| {
                (
                    format!("u{u}"),
                    i.to_string(),
                    Some(f32::from(r)),
                    with_ts.then_some(t),
                )
            })
            .collect()
    })
}

/// The same with distinct timestamps (a random permutation of `0..n`).
fn distinct_ts_rows() -> impl Strategy<Value = Vec<RawInteraction>> {
    small_rows(true).prop_flat_map(|rows| {
        let n = rows.len() as i64;
        (
            Just(rows),
            Just((0..n).collect::<Vec<i64>>()).prop_shuffle(),
        )
            .prop_map(|(mut rows, ts)| {
                for (r, t) in rows.iter_mut().zip(ts) {
                    r.3 = Some(t * 10);
                }
                rows
            })
    })
}

/// Each user's interaction indices in time order, computed independently:
/// a stable sort of the file order by timestamp.
fn expected_sequences(ds: &Dataset) -> Vec<Vec<usize>> {
    let mut seqs = vec![Vec::new(); ds.n_users()];
    for (i, x) in ds.interactions.iter().enumerate() {
        seqs[x.user as usize].push(i);
    }
    if ds.interactions.iter().all(|x| x.timestamp.is_some()) {
        for s in &mut seqs {
            // Insertion sort: stable by construction.
            for k in 1..s.len() {
                let mut j = k;
                while j > 0 && ds.interactions[s[j - 1]].timestamp > ds.interactions[s[j]].timestamp
                {
                    s.swap(j - 1, j);
                    j -= 1;
                }
            }
        }
    }
    seqs
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn user_sequences_are_stable_time_order(rows in small_rows(true)) {
        let ds = dataset_from(&rows, Format::Csv);
        prop_assert_eq!(ds.user_sequences(), expected_sequences(&ds));
    }

    /// Leave-one-out: per user, train + valid + test is the whole time-ordered
    /// sequence; test is the last item, valid the one before (3+ items).
    #[test]
    fn leave_one_out_invariants(with_ts in any::<bool>(), rows in small_rows(true)) {
        let rows: Vec<RawInteraction> = rows.into_iter().map(|(u, i, r, t)| (u, i, r, t.filter(|_| with_ts))).collect();
        let ds = dataset_from(&rows, Format::Csv);
        let split = LeaveOneOut::new(&ds);
        prop_assert_eq!(split.n_users(), ds.n_users());
        prop_assert_eq!(split.n_items, ds.n_items());
        let seqs = expected_sequences(&ds);
        let mut with_test = 0;
        for (u, seq) in seqs.iter().enumerate() {
            let items: Vec<u32> = seq.iter().map(|&i| ds.interactions[i].item).collect();
            let mut got = split.train[u].clone();
            got.extend(split.valid[u]);
            got.extend(split.test[u]);
            prop_assert_eq!(&got, &items, "user {}", u);
            let n = items.len();
            prop_assert_eq!(split.test[u], (n >= 2).then(|| items[n - 1]));
            prop_assert_eq!(split.valid[u], (n >= 3).then(|| items[n - 2]));
            prop_assert_eq!(split.all_items(u as u32), items.clone());
            let input = split.test_input(u as u32);
            prop_assert_eq!(&input[..], &items[..if n >= 2 { n - 1 } else { n }]);
            with_test += usize::from(n >= 2);
        }
        let sizes = split.sizes();
        prop_assert_eq!(sizes.train + sizes.valid + sizes.test, ds.interactions.len());
        prop_assert_eq!(sizes.test, with_test);
        let edges: Vec<(u32, u32)> = split.train_edges().collect();
        prop_assert_eq!(edges.len(), sizes.train);
        prop_assert!(edges.iter().all(|&(u, i)| split.train[u as usize].contains(&i)));
    }

    /// CTR samples: one per interaction with at least `min_history` earlier
    /// ones, split 8/1/1 by floor, globally in (timestamp, source) order,
    /// histories being the user's earlier interactions.
    #[test]
    fn ctr_split_invariants(
        rows in small_rows(true),
        min_history in 0usize..4,
        max_history in prop::option::of(1usize..4),
    ) {
        let ds = dataset_from(&rows, Format::Movielens1m);
        let cfg = CtrConfig { min_history, max_history, ..CtrConfig::default() };
        let split = CtrSplit::new(&ds, &cfg).unwrap();
        prop_assert_eq!(split.order, CtrOrder::Timestamp);
        let seqs = expected_sequences(&ds);
        let n: usize = seqs.iter().map(|s| s.len().saturating_sub(min_history)).sum();
        let sizes = split.sizes();
        prop_assert_eq!(sizes.train, n * 8 / 10);
        prop_assert_eq!(sizes.valid, n / 10);
        prop_assert_eq!(sizes.train + sizes.valid + sizes.test, n);

        let all: Vec<_> = split.train.iter().chain(&split.valid).chain(&split.test).collect();
        let mut keys = Vec::new();
        let mut seen = HashSet::new();
        for s in &all {
            let pos = s.position as usize;
            prop_assert!(pos >= min_history);
            prop_assert!(seen.insert((s.user, pos)), "sample twice");
            let src = seqs[s.user as usize][pos];
            let x = ds.interactions[src];
            prop_assert_eq!((x.item, x.rating, x.timestamp), (s.item, Some(s.rating), s.timestamp));
            prop_assert_eq!(s.label, s.rating > 3.0);
            let hist = split.history(s);
            let keep = max_history.map_or(pos, |m| m.min(pos));
            prop_assert_eq!(hist.len(), keep);
            let expected: Vec<u32> = seqs[s.user as usize][pos - keep..pos].iter().map(|&i| ds.interactions[i].item).collect();
            prop_assert_eq!(hist.iter().map(|h| h.item).collect::<Vec<_>>(), expected);
            prop_assert!(hist.iter().all(|h| h.timestamp <= s.timestamp));
            keys.push((s.timestamp, src));
        }
        prop_assert_eq!(seen.len(), n);
        // Non-decreasing in time across train -> valid -> test; ties in source order.
        prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "{:?}", keys);
    }

    /// With distinct timestamps, every history entry is strictly earlier.
    #[test]
    fn ctr_history_is_strictly_earlier(rows in distinct_ts_rows(), min_history in 0usize..3) {
        let ds = dataset_from(&rows, Format::Movielens1m);
        let split = CtrSplit::new(&ds, &CtrConfig { min_history, ..CtrConfig::default() }).unwrap();
        for s in split.train.iter().chain(&split.valid).chain(&split.test) {
            let t = s.timestamp.unwrap();
            prop_assert!(split.history(s).iter().all(|h| h.timestamp.unwrap() < t));
            prop_assert_eq!(split.history(s).len(), s.position as usize);
        }
        let times: Vec<i64> = split.train.iter().chain(&split.valid).chain(&split.test).map(|s| s.timestamp.unwrap()).collect();
        prop_assert!(times.windows(2).all(|w| w[0] < w[1]));
        if let (Some(last_train), Some(first_test)) = (split.train.last(), split.test.first()) {
            prop_assert!(last_train.timestamp < first_test.timestamp);
        }
    }

    /// Without timestamps the samples are a seeded permutation: the same
    /// samples, reproducible for a seed, with file-order histories.
    #[test]
    fn ctr_seeded_shuffle_without_timestamps(rows in small_rows(false), seed in any::<u64>()) {
        let ds = dataset_from(&rows, Format::BookCrossing);
        let cfg = CtrConfig { min_history: 1, seed, ..CtrConfig::default() };
        let a = CtrSplit::new(&ds, &cfg).unwrap();
        let b = CtrSplit::new(&ds, &cfg).unwrap();
        prop_assert_eq!(a.order, CtrOrder::SeededShuffle);
        prop_assert_eq!(&a.train, &b.train);
        prop_assert_eq!(&a.test, &b.test);
        let key = |s: &graft_data::CtrSample| (s.user, s.position);
        let got: BTreeSet<_> = a.train.iter().chain(&a.valid).chain(&a.test).map(key).collect();
        let want: BTreeSet<_> = expected_sequences(&ds)
            .iter()
            .enumerate()
            .flat_map(|(u, s)| (1..s.len()).map(move |p| (u as u32, p as u32)))
            .collect();
        prop_assert_eq!(got, want);
        // BookCrossing's rule: rating >= 5.
        prop_assert!(a.train.iter().all(|s| s.label == (s.rating >= 5.0)));
        let forced = CtrSplit::new(&ds, &CtrConfig { order: CtrOrder::Timestamp, ..cfg });
        prop_assert!(matches!(forced, Err(DataError::Config(_))), "timestamp order without timestamps");
    }
}

// ---------------------------------------------------------------- negatives

fn sampler_case() -> impl Strategy<Value = (usize, Vec<u32>, usize, u64, u32)> {
    (1usize..300).prop_flat_map(|n| {
        (
            Just(n),
            vec(0..n as u32, 0..n.min(60)),
            0..=n,
            any::<u64>(),
            any::<u32>(),
        )
    })
}

proptest! {
    #![proptest_config(config(64))]

    /// Negatives are distinct, in range, outside the history, and the same on
    /// every call; too many requested is a typed error with the right counts.
    #[test]
    fn negatives_distinct_outside_history_reproducible((n_items, history, wanted, seed, user) in sampler_case()) {
        let sampler = NegativeSampler::new(n_items, seed);
        let hist: HashSet<u32> = history.iter().copied().collect();
        let available = n_items - hist.len();
        match sampler.sample(user, &history, wanted) {
            Ok(neg) => {
                prop_assert!(wanted <= available);
                prop_assert_eq!(neg.len(), wanted);
                let set: HashSet<u32> = neg.iter().copied().collect();
                prop_assert_eq!(set.len(), wanted, "distinct");
                prop_assert!(neg.iter().all(|i| (*i as usize) < n_items && !hist.contains(i)));
                prop_assert_eq!(sampler.sample(user, &history, wanted).unwrap(), neg.clone());
                // The history's order and repetitions do not matter.
                let mut reordered: Vec<u32> = hist.iter().copied().collect();
                reordered.sort_unstable_by(|a, b| b.cmp(a));
                prop_assert_eq!(sampler.sample(user, &reordered, wanted).unwrap(), neg);
            }
            Err(DataError::NotEnoughNegatives { user: u, available: a, wanted: w }) => {
                prop_assert!(wanted > available);
                prop_assert_eq!((u, a, w), (user, available, wanted));
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
        let out_of_range = sampler.sample(user, &[n_items as u32], 0);
        prop_assert!(matches!(out_of_range, Err(DataError::IdOutOfRange { kind: "item", .. })), "item {} of {}", n_items, n_items);
    }

    /// A user's negatives depend on the seed, the user id and that user's
    /// items only: other users' data and the order of sampling change nothing.
    #[test]
    fn negatives_per_user_independent(
        rows_a in small_rows(true),
        rows_b in small_rows(true),
        seed in any::<u64>(),
    ) {
        let n_items = 40;
        let split_of = |rows: &[RawInteraction]| {
            let ds = dataset_from(rows, Format::Csv);
            let mut split = LeaveOneOut::new(&ds);
            split.n_items = n_items;
            // Raw items are 0..12, dense ids follow them; keep raw values as ids.
            for u in 0..split.n_users() {
                let map = |i: u32| ds.items.raw(i).unwrap().parse::<u32>().unwrap();
                split.train[u] = split.train[u].iter().map(|&i| map(i)).collect();
                split.valid[u] = split.valid[u].map(map);
                split.test[u] = split.test[u].map(map);
            }
            split
        };
        let a = split_of(&rows_a);
        let mut b = split_of(&rows_b);
        // Give user 0 the same items in both splits.
        b.train[0] = a.train[0].clone();
        b.valid[0] = a.valid[0];
        b.test[0] = a.test[0];
        let sampler = NegativeSampler::new(n_items, seed);
        let na = sampler.sample_split(&a, 10).unwrap();
        let nb = sampler.sample_split(&b, 10).unwrap();
        prop_assert_eq!(&na[0], &nb[0]);
        for (u, neg) in na.iter().enumerate() {
            prop_assert_eq!(neg, &sampler.sample(u as u32, &a.all_items(u as u32), 10).unwrap());
        }
        // Sampling the users in reverse order gives the same per-user lists.
        let reversed: Vec<Vec<u32>> = (0..a.n_users() as u32)
            .rev()
            .map(|u| sampler.sample(u, &a.all_items(u), 10).unwrap())
            .collect();
        prop_assert!(reversed.iter().rev().eq(na.iter()));
        // Another seed changes the draws (all users alike by chance: ~never).
        let other = NegativeSampler::new(n_items, seed ^ 1).sample_split(&a, 10).unwrap();
        prop_assert_ne!(other, na);
    }
}
