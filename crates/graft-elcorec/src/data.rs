//! CTR samples with everything ELCoRec's models read: the ReLLa split
//! (graft-data's [`CtrSplit`], full histories), the GAT's profile and
//! feature codes ([`CtrFeatures`]), prompt profiles and titles, and the
//! seeded validation/test subsets every model is scored on.

use graft_data::features::{item_title, user_profile, CtrFeatures};
use graft_data::rng::{shuffle, stream_rng};
use graft_data::{CtrSample, CtrSplit, Dataset, Format, HistoryEntry};
use graft_prompt::rap::{Domain, RatedItem, UserProfile};

use crate::config::SampleConfig;
use crate::error::{ElcorecError, Result};

/// Streams of [`graft_data::rng::stream_rng`] used for the subsets.
const VALID_STREAM: u64 = 0xE1C0_0001;
const TEST_STREAM: u64 = 0xE1C0_0002;
const TRAIN_STREAM: u64 = 0xE1C0_0003;

/// A dataset prepared for ELCoRec.
#[derive(Debug, Clone)]
pub struct CtrData {
    /// The loaded dataset.
    pub dataset: Dataset,
    /// ReLLa's 8/1/1 split; histories are complete (retrieval searches all
    /// of them; the GAT and the recent list take the last items).
    pub split: CtrSplit,
    /// GAT input codes.
    pub features: CtrFeatures,
    /// Nouns, verbs and rating scale of the prompts.
    pub domain: Domain,
    /// The validation subset (model selection).
    pub valid: Vec<CtrSample>,
    /// The test subset (the same for every model).
    pub test: Vec<CtrSample>,
    /// The configuration.
    pub config: SampleConfig,
}

/// `n` samples drawn without replacement by `(seed, stream)`, in their
/// original order (all of them when `n >= samples.len()`).
pub fn seeded_subset(samples: &[CtrSample], n: usize, seed: u64, stream: u64) -> Vec<CtrSample> {
    let mut idx: Vec<usize> = (0..samples.len()).collect();
    if n < samples.len() {
        shuffle(&mut stream_rng(seed, stream), &mut idx);
        idx.truncate(n);
        idx.sort_unstable();
    }
    idx.into_iter().map(|i| samples[i]).collect()
}

impl CtrData {
    /// The prompt domain of a format: movies for MovieLens, books for
    /// BookCrossing, `None` for sources that do not say (RecBole atomic
    /// files, CSV, synthetic data; use [`with_domain`](Self::with_domain)).
    pub fn domain_of(format: Format) -> Option<Domain> {
        match format {
            Format::Movielens100k | Format::Movielens1m | Format::Movielens25m => {
                Some(Domain::Movies)
            }
            Format::BookCrossing => Some(Domain::Books),
            _ => None,
        }
    }

    /// Splits `dataset` by `config.ctr` (ReLLa defaults: label rule of the
    /// format, at least 5 earlier interactions, 8/1/1 in time order;
    /// implicit ratings are no samples) and draws the subsets; the domain
    /// follows the format ([`domain_of`](Self::domain_of)).
    ///
    /// # Errors
    /// [`ElcorecError::Config`] for a format without a known domain, or a
    /// split with an empty part; errors of [`CtrSplit::new`].
    pub fn new(dataset: Dataset, config: SampleConfig) -> Result<Self> {
        let domain = Self::domain_of(dataset.format).ok_or_else(|| {
            ElcorecError::Config(format!(
                "{}: the {:?} format does not say whether items are movies or books; \
                 ELCoRec's prompts need MovieLens or BookCrossing data, or a domain given \
                 explicitly (CtrData::with_domain, --domain)",
                dataset.name, dataset.format
            ))
        })?;
        Self::with_domain(dataset, domain, config)
    }

    /// [`new`](Self::new) with an explicit prompt domain (e.g. MovieLens-100K
    /// read from RecBole atomic files).
    ///
    /// # Errors
    /// As [`new`](Self::new), without the format check.
    pub fn with_domain(dataset: Dataset, domain: Domain, config: SampleConfig) -> Result<Self> {
        let split = CtrSplit::new(&dataset, &config.ctr)?;
        if split.test.is_empty() || split.valid.is_empty() || split.train.is_empty() {
            return Err(ElcorecError::Config(format!(
                "{}: the split has an empty part ({:?})",
                dataset.name,
                split.sizes()
            )));
        }
        let features = CtrFeatures::build(&dataset);
        let valid = seeded_subset(
            &split.valid,
            config.valid_samples,
            config.seed,
            VALID_STREAM,
        );
        let test = seeded_subset(&split.test, config.test_samples, config.seed, TEST_STREAM);
        Ok(Self {
            dataset,
            split,
            features,
            domain,
            valid,
            test,
            config,
        })
    }

    /// The LLM's training samples: a seeded subset of the train split of
    /// `config.llm_train_samples` (all when `None`), in split order.
    pub fn llm_train(&self) -> Vec<CtrSample> {
        let n = self.config.llm_train_samples.unwrap_or(usize::MAX);
        seeded_subset(&self.split.train, n, self.config.seed, TRAIN_STREAM)
    }

    /// Checks that `s` fits this dataset: a known user and item, a finite
    /// rating inside `[0, max_rating]`, a position inside the user's
    /// sequence, and a history of known items with ratings on the scale.
    /// The models call it on every sample they read, so a sample built by
    /// hand that does not fit gives an error naming it, never a panic or a
    /// silently clamped code.
    ///
    /// # Errors
    /// [`ElcorecError::Sample`] naming the sample and the reason.
    pub fn check(&self, s: &CtrSample) -> Result<()> {
        let bad = |reason: String| {
            let raw = |map: &graft_data::IdMap, id: u32| {
                map.raw(id).map_or_else(|| format!("#{id}"), str::to_owned)
            };
            Err(ElcorecError::Sample {
                dataset: self.dataset.name.clone(),
                user: raw(&self.dataset.users, s.user),
                item: raw(&self.dataset.items, s.item),
                position: s.position,
                reason,
            })
        };
        let (n_users, n_items) = (self.dataset.n_users(), self.dataset.n_items());
        let max = self.max_rating() as f32;
        let on_scale = |r: f32| r.is_finite() && (0.0..=max).contains(&r);
        if s.user as usize >= n_users {
            return bad(format!(
                "user #{} is not one of the {n_users} users",
                s.user
            ));
        }
        if s.item as usize >= n_items {
            return bad(format!(
                "item #{} is not one of the {n_items} items",
                s.item
            ));
        }
        if !on_scale(s.rating) {
            return bad(format!("rating {} is outside [0, {max}]", s.rating));
        }
        let seq = self
            .split
            .sequences
            .get(s.user as usize)
            .map_or(0, Vec::len);
        if s.position as usize > seq {
            return bad(format!(
                "position {} is past the user's {seq} interactions",
                s.position
            ));
        }
        for (k, e) in self.history(s).iter().enumerate() {
            if e.item as usize >= n_items {
                return bad(format!("history entry {k}: item #{} is unknown", e.item));
            }
            if !on_scale(e.rating) {
                return bad(format!(
                    "history entry {k}: rating {} is outside [0, {max}]",
                    e.rating
                ));
            }
        }
        Ok(())
    }

    /// The sample's whole history, oldest first.
    pub fn history(&self, s: &CtrSample) -> &[HistoryEntry] {
        self.split.history(s)
    }

    /// The `k` most recent history entries, oldest first.
    pub fn recent(&self, s: &CtrSample, k: usize) -> &[HistoryEntry] {
        let h = self.history(s);
        &h[h.len().saturating_sub(k)..]
    }

    /// The prompt profile of user `u`.
    pub fn profile(&self, u: u32) -> UserProfile {
        let w = user_profile(&self.dataset, u);
        UserProfile {
            gender: w.gender,
            age: w.age,
            occupation: w.occupation,
            location: w.location,
        }
    }

    /// Title of an item as prompts show it.
    pub fn title(&self, item: u32) -> String {
        item_title(&self.dataset, item)
    }

    /// A history entry as a prompt line.
    pub fn rated(&self, e: &HistoryEntry) -> RatedItem {
        RatedItem::new(self.title(e.item), e.rating)
    }

    /// Highest rating of the scale (5 for MovieLens, 10 for BookCrossing).
    pub fn max_rating(&self) -> u32 {
        self.domain.max_rating()
    }

    /// Labels of `samples`.
    pub fn labels(samples: &[CtrSample]) -> Vec<bool> {
        samples.iter().map(|s| s.label).collect()
    }
}

/// A seeded permutation of `0..n` for each epoch (a function of the seed
/// and the epoch only, so a resumed run sees the same order); the current
/// epoch's permutation is kept.
#[derive(Debug, Clone)]
pub struct EpochOrder {
    n: usize,
    seed: u64,
    epoch: Option<u64>,
    order: Vec<usize>,
}

impl EpochOrder {
    /// Orders of `0..n` drawn with `seed`.
    pub fn new(n: usize, seed: u64) -> Self {
        Self {
            n,
            seed,
            epoch: None,
            order: Vec::new(),
        }
    }

    /// The permutation of `epoch`.
    pub fn get(&mut self, epoch: u64) -> &[usize] {
        if self.epoch != Some(epoch) {
            self.order = (0..self.n).collect();
            shuffle(&mut stream_rng(self.seed, epoch), &mut self.order);
            self.epoch = Some(epoch);
        }
        &self.order
    }
}

/// Days between a history interaction and the target (0 when either has
/// no timestamp, e.g. BookCrossing; never negative).
pub fn gap_days(target: &CtrSample, entry: &HistoryEntry) -> f64 {
    match (target.timestamp, entry.timestamp) {
        (Some(t), Some(h)) => ((t - h).max(0) as f64) / 86_400.0,
        _ => 0.0,
    }
}
