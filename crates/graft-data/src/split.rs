//! Train/validation/test splits of the two papers.
//!
//! * [`LeaveOneOut`]: ELMRec/POD/P5 protocol. Per user in time order, the
//!   last item is test, the second-to-last validation, the rest train.
//! * [`CtrSplit`]: ELCoRec/ReLLa protocol. Every interaction with at least
//!   `min_history` earlier interactions of the same user becomes a sample
//!   (user, history, target, label); samples are ordered globally by time and
//!   split 8/1/1. Implicit interactions (BookCrossing's rating 0) are not
//!   sample targets unless [`CtrConfig::implicit`] asks for them.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::formats::Format;
use crate::rng::{shuffle, stream_rng};

/// Sizes of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSizes {
    /// Training interactions or samples.
    pub train: usize,
    /// Validation interactions or samples.
    pub valid: usize,
    /// Test interactions or samples.
    pub test: usize,
}

/// Leave-one-out split (ELMRec/POD): per user in time order
/// ([`Dataset::user_sequences`]) the last item is the test item, the
/// second-to-last the validation item, the rest are training items.
///
/// Users with fewer than three interactions (none in the 5-core Amazon data):
/// with two, one train and one test item and no validation item; with one,
/// a train item only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveOneOut {
    /// Training items per user, in time order.
    pub train: Vec<Vec<u32>>,
    /// Validation item per user.
    pub valid: Vec<Option<u32>>,
    /// Test item per user.
    pub test: Vec<Option<u32>>,
    /// Number of items in the dataset.
    pub n_items: usize,
}

impl LeaveOneOut {
    /// Splits `ds`.
    ///
    /// # Complexity
    /// O(n log n) for n interactions.
    pub fn new(ds: &Dataset) -> Self {
        let seqs = ds.user_sequences();
        let mut train = Vec::with_capacity(seqs.len());
        let mut valid = Vec::with_capacity(seqs.len());
        let mut test = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let mut items: Vec<u32> = seq.iter().map(|&i| ds.interactions[i].item).collect();
            let t = if items.len() >= 2 { items.pop() } else { None };
            let v = if items.len() >= 2 { items.pop() } else { None };
            train.push(items);
            valid.push(v);
            test.push(t);
        }
        LeaveOneOut {
            train,
            valid,
            test,
            n_items: ds.n_items(),
        }
    }

    /// Every interaction of `ds` in train, nothing held out: the split a
    /// model trains on to *recommend* (not to be evaluated).
    ///
    /// ```
    /// use graft_data::{synthetic, LeaveOneOut};
    ///
    /// let ds = synthetic::planted_clusters(&Default::default())?.dataset;
    /// let all = LeaveOneOut::everything_in_train(&ds);
    /// assert_eq!(all.sizes().train, ds.interactions.len());
    /// assert_eq!((all.sizes().valid, all.sizes().test), (0, 0));
    /// # Ok::<(), graft_data::DataError>(())
    /// ```
    pub fn everything_in_train(ds: &Dataset) -> Self {
        let train: Vec<Vec<u32>> = ds
            .user_sequences()
            .into_iter()
            .map(|seq| seq.iter().map(|&i| ds.interactions[i].item).collect())
            .collect();
        let n = train.len();
        LeaveOneOut {
            train,
            valid: vec![None; n],
            test: vec![None; n],
            n_items: ds.n_items(),
        }
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.train.len()
    }

    /// Number of train, validation and test interactions.
    pub fn sizes(&self) -> SplitSizes {
        SplitSizes {
            train: self.train.iter().map(Vec::len).sum(),
            valid: self.valid.iter().flatten().count(),
            test: self.test.iter().flatten().count(),
        }
    }

    /// The (user, item) training pairs: the edges of the interaction graph.
    /// Validation and test items never appear.
    pub fn train_edges(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.train
            .iter()
            .enumerate()
            .flat_map(|(u, items)| items.iter().map(move |&i| (u as u32, i)))
    }

    /// What the model may see when predicting the test item: train items
    /// then the validation item, in time order.
    pub fn test_input(&self, user: u32) -> Vec<u32> {
        let u = user as usize;
        let mut h = self.train.get(u).cloned().unwrap_or_default();
        h.extend(self.valid.get(u).copied().flatten());
        h
    }

    /// Every item of the user (train, validation, test): what negatives must avoid.
    pub fn all_items(&self, user: u32) -> Vec<u32> {
        let u = user as usize;
        let mut h = self.test_input(user);
        h.extend(self.test.get(u).copied().flatten());
        h
    }
}

/// How a rating becomes a click label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelRule {
    /// `rating > t` (MovieLens: `> 3`).
    Above(f32),
    /// `rating >= t` (BookCrossing: `>= 5` on 0-10).
    AtLeast(f32),
}

impl LabelRule {
    /// The ELCoRec/ReLLa rule for a format: BookCrossing `>= 5`, everything else `> 3`.
    pub fn for_format(format: Format) -> LabelRule {
        match format {
            Format::BookCrossing => LabelRule::AtLeast(5.0),
            _ => LabelRule::Above(3.0),
        }
    }

    /// The label of a rating.
    pub fn label(self, rating: f32) -> bool {
        match self {
            LabelRule::Above(t) => rating > t,
            LabelRule::AtLeast(t) => rating >= t,
        }
    }
}

/// What CTR samples do with *implicit* interactions: records of an
/// interaction without a rating, which some sources write as a rating
/// value ([`implicit_rating`]: BookCrossing's `0` means "interacted, no
/// rating", not a low rating).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImplicitRatings {
    /// No sample has an implicit interaction as its target (default); they
    /// stay in users' histories, where they are interactions like any other.
    #[default]
    Drop,
    /// Implicit interactions are samples and get the label rule's verdict on
    /// the value (a `0` is a negative). ReLLa's BookCrossing preprocessing
    /// does this (`label = rating >= 5` on every rating, zeros included).
    Label,
}

/// The rating value a format uses for an interaction without a rating:
/// `Some(0.0)` for BookCrossing, `None` for every other format.
pub fn implicit_rating(format: Format) -> Option<f32> {
    match format {
        Format::BookCrossing => Some(0.0),
        _ => None,
    }
}

impl std::fmt::Display for LabelRule {
    /// `rating > 3`, `rating >= 5`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelRule::Above(t) => write!(f, "rating > {t}"),
            LabelRule::AtLeast(t) => write!(f, "rating >= {t}"),
        }
    }
}

/// How CTR samples are ordered before the 8/1/1 cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CtrOrder {
    /// `Timestamp` when every interaction has one, else `SeededShuffle`.
    Auto,
    /// Globally by timestamp; ties keep the source order.
    Timestamp,
    /// A seeded random permutation of the samples (for data without
    /// timestamps, e.g. BookCrossing: a cut in file order would put whole
    /// users, grouped in the file, into the test set). A user's history is
    /// still the interactions before the target in file order.
    SeededShuffle,
}

/// Configuration of [`CtrSplit`]. Defaults follow ELCoRec/ReLLa.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CtrConfig {
    /// Samples with fewer earlier interactions are dropped (default 5).
    pub min_history: usize,
    /// Keep only the most recent `max_history` earlier interactions in
    /// [`CtrSplit::history`] (default: all).
    pub max_history: Option<usize>,
    /// Label rule; `None` picks [`LabelRule::for_format`].
    pub label: Option<LabelRule>,
    /// Implicit interactions ([`implicit_rating`] of the format) as sample
    /// targets: dropped by default.
    pub implicit: ImplicitRatings,
    /// Train and validation fractions; test is the rest (default 0.8, 0.1).
    pub train_fraction: f64,
    /// See `train_fraction`.
    pub valid_fraction: f64,
    /// Ordering before the cut.
    pub order: CtrOrder,
    /// Seed of [`CtrOrder::SeededShuffle`].
    pub seed: u64,
}

impl Default for CtrConfig {
    fn default() -> Self {
        CtrConfig {
            min_history: 5,
            max_history: None,
            label: None,
            implicit: ImplicitRatings::Drop,
            train_fraction: 0.8,
            valid_fraction: 0.1,
            order: CtrOrder::Auto,
            seed: 0,
        }
    }
}

/// One interaction of a user's history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Dense item id.
    pub item: u32,
    /// Rating.
    pub rating: f32,
    /// Timestamp, when known.
    pub timestamp: Option<i64>,
}

/// One CTR sample: will `user` like `item`?
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CtrSample {
    /// Dense user id.
    pub user: u32,
    /// Dense target item id.
    pub item: u32,
    /// The target's rating (hidden from models; the label derives from it).
    pub rating: f32,
    /// Click label.
    pub label: bool,
    /// Timestamp of the target interaction.
    pub timestamp: Option<i64>,
    /// Position of the target in the user's sequence (= number of earlier interactions).
    pub position: u32,
}

impl std::fmt::Display for CtrOrder {
    /// `auto`, `time`, `seeded shuffle`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CtrOrder::Auto => "auto",
            CtrOrder::Timestamp => "time",
            CtrOrder::SeededShuffle => "seeded shuffle",
        })
    }
}

/// CTR samples split 8/1/1 (ELCoRec/ReLLa protocol).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CtrSplit {
    /// Every user's interactions in time order.
    pub sequences: Vec<Vec<HistoryEntry>>,
    /// Training samples, in global order.
    pub train: Vec<CtrSample>,
    /// Validation samples.
    pub valid: Vec<CtrSample>,
    /// Test samples.
    pub test: Vec<CtrSample>,
    /// The order actually used.
    pub order: CtrOrder,
    /// The label rule actually used.
    pub label: LabelRule,
    /// The configuration.
    pub config: CtrConfig,
}

impl CtrSplit {
    /// Builds the samples of `ds`.
    ///
    /// # Errors
    /// [`DataError::MissingRating`] when an interaction has no rating,
    /// [`DataError::Config`] for fractions outside [0, 1] or summing above 1,
    /// or [`CtrOrder::Timestamp`] on data without timestamps.
    ///
    /// # Complexity
    /// O(n log n) for n interactions.
    pub fn new(ds: &Dataset, config: &CtrConfig) -> Result<Self> {
        let (tf, vf) = (config.train_fraction, config.valid_fraction);
        if !(0.0..=1.0).contains(&tf) || !(0.0..=1.0).contains(&vf) || tf + vf > 1.0 + 1e-12 {
            return Err(DataError::Config(format!(
                "train_fraction {tf} and valid_fraction {vf} must lie in [0, 1] and sum to at most 1"
            )));
        }
        let order = match (config.order, ds.has_timestamps()) {
            (CtrOrder::Auto, true) => CtrOrder::Timestamp,
            (CtrOrder::Auto, false) => CtrOrder::SeededShuffle,
            (CtrOrder::Timestamp, false) => {
                return Err(DataError::Config(
                    "CtrOrder::Timestamp needs a timestamp on every interaction".into(),
                ))
            }
            (o, _) => o,
        };
        let label = config
            .label
            .unwrap_or_else(|| LabelRule::for_format(ds.format));
        let dropped = match config.implicit {
            ImplicitRatings::Drop => implicit_rating(ds.format),
            ImplicitRatings::Label => None,
        };
        let mut sequences = Vec::with_capacity(ds.n_users());
        // (sort key: timestamp, source index) per sample
        let mut keyed: Vec<((i64, usize), CtrSample)> = Vec::new();
        for seq in ds.user_sequences() {
            let mut entries = Vec::with_capacity(seq.len());
            for (pos, &idx) in seq.iter().enumerate() {
                let x = &ds.interactions[idx];
                let rating = x.rating.ok_or_else(|| DataError::MissingRating {
                    index: idx,
                    user: ds.users.raw(x.user).unwrap_or("?").to_owned(),
                    item: ds.items.raw(x.item).unwrap_or("?").to_owned(),
                    what: "a CTR label",
                })?;
                entries.push(HistoryEntry {
                    item: x.item,
                    rating,
                    timestamp: x.timestamp,
                });
                if pos >= config.min_history && dropped != Some(rating) {
                    keyed.push((
                        (x.timestamp.unwrap_or(0), idx),
                        CtrSample {
                            user: x.user,
                            item: x.item,
                            rating,
                            label: label.label(rating),
                            timestamp: x.timestamp,
                            position: pos as u32,
                        },
                    ));
                }
            }
            sequences.push(entries);
        }
        let mut samples: Vec<CtrSample> = match order {
            CtrOrder::SeededShuffle => {
                keyed.sort_by_key(|(k, _)| k.1);
                let mut s: Vec<CtrSample> = keyed.into_iter().map(|(_, s)| s).collect();
                shuffle(&mut stream_rng(config.seed, 0x637472), &mut s);
                s
            }
            _ => {
                keyed.sort_by_key(|(k, _)| *k);
                keyed.into_iter().map(|(_, s)| s).collect()
            }
        };
        let n = samples.len();
        let n_train = (tf * n as f64).floor() as usize;
        let n_valid = ((vf * n as f64).floor() as usize).min(n - n_train);
        let test = samples.split_off(n_train + n_valid);
        let valid = samples.split_off(n_train);
        Ok(CtrSplit {
            sequences,
            train: samples,
            valid,
            test,
            order,
            label,
            config: config.clone(),
        })
    }

    /// The history of a sample: the user's interactions before the target,
    /// oldest first, at most `max_history` of the most recent ones. It may
    /// include interactions that are themselves validation or test samples
    /// but happened earlier (ReLLa does the same).
    pub fn history(&self, s: &CtrSample) -> &[HistoryEntry] {
        let seq = self
            .sequences
            .get(s.user as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let end = (s.position as usize).min(seq.len());
        let start = match self.config.max_history {
            Some(m) => end.saturating_sub(m),
            None => 0,
        };
        &seq[start..end]
    }

    /// Number of train, validation and test samples.
    pub fn sizes(&self) -> SplitSizes {
        SplitSizes {
            train: self.train.len(),
            valid: self.valid.len(),
            test: self.test.len(),
        }
    }

    /// Fraction of positive labels in `samples` (0 when empty).
    pub fn positive_rate(samples: &[CtrSample]) -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        samples.iter().filter(|s| s.label).count() as f64 / samples.len() as f64
    }
}
