//! A trained ELMRec run as a recommender: the model loaded from its run
//! directory (no optimizer), recommending with the sequential task as the
//! papers evaluate it: beam search over every item's ID, constrained to
//! valid IDs, with ELMRec's reranking (keep the top K + N, drop the items
//! the user already has).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use graft_data::LeaveOneOut;
//! use graft_elmrec::ElmrecRecommender;
//! use graft_recommend::{Recommender, WithIds};
//!
//! let ds = graft_data::load(
//!     graft_data::Format::AmazonP5,
//!     "../shared/data/amazon/beauty".as_ref(),
//!     &Default::default(),
//! )?;
//! let split = LeaveOneOut::new(&ds);
//! let tok = graft_lm::t5::t5_tokenizer(std::path::Path::new("tokenizer.json"))?;
//! let model = ElmrecRecommender::load("runs/elmrec/beauty/elmrec".as_ref(), &split, tok, tch::Device::Cpu)?;
//! let rec = WithIds::new(model, ds.users.clone(), ds.items.clone())?;
//! for r in rec.recommend("A2CG5Y82ZZNY6W", &["B004756YJA"], 10, true)? {
//!     println!("{} {:.3}", r.item, r.score);
//! }
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use graft_data::{ItemPermutation, LeaveOneOut};
use graft_recommend::{RankItems, RecommendError};
use graft_train::RunDir;
use serde::{Deserialize, Serialize};
use tch::Device;
use tokenizers::Tokenizer;

use crate::config::{ElmrecConfig, EvalConfig, TaskMix};
use crate::error::{ElmrecError, Result};
use crate::model::{ElmrecModel, Example, Tables};

/// What a run directory's `config.json` holds ([`crate::train_and_evaluate`]
/// writes it): the model's and the evaluation's settings and the size of
/// the data it was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    /// The model's configuration.
    pub model: ElmrecConfig,
    /// The evaluation protocol (its `seed` renumbers items under
    /// [`graft_data::Reindex::Random`]).
    pub eval: EvalConfig,
    /// Users of the training split.
    pub users: usize,
    /// Items of the training split.
    pub items: usize,
}

impl ElmrecModel {
    /// The trained model of a run directory: the model its `config.json`
    /// describes, built on `split` (numbered as in training, see
    /// [`ElmrecRecommender::load`] for a split in the dataset's own
    /// numbering), with the weights of its best validation
    /// (`best.safetensors`). No optimizer is needed; nothing is written.
    ///
    /// # Errors
    /// [`ElmrecError::Train`] when `run_dir` is not a run directory or its
    /// weights are corrupt or do not fit; [`ElmrecError::Config`] when the
    /// split's size differs from the run's, or the run has no best weights
    /// yet (it never reached a validation); as [`ElmrecModel::new`].
    pub fn load(
        run_dir: &Path,
        split: &LeaveOneOut,
        tok: Tokenizer,
        device: Device,
    ) -> Result<(Self, StoredRun)> {
        let run = RunDir::open(run_dir)?;
        let stored: StoredRun = run.config()?;
        let model = Self::load_stored(&run, &stored, split, tok, device)?;
        Ok((model, stored))
    }

    /// [`load`](Self::load) with the run's configuration already read.
    fn load_stored(
        run: &RunDir,
        stored: &StoredRun,
        split: &LeaveOneOut,
        tok: Tokenizer,
        device: Device,
    ) -> Result<Self> {
        let run_dir = run.path();
        if (stored.users, stored.items) != (split.n_users(), split.n_items) {
            return Err(ElmrecError::Config(format!(
                "{}: the run was trained on {} users and {} items, this data has {} and {}",
                run_dir.display(),
                stored.users,
                stored.items,
                split.n_users(),
                split.n_items
            )));
        }
        let model = ElmrecModel::new(&stored.model, split, tok, device)?;
        if !graft_train::load_best(run, &model.named_parameters())? {
            return Err(ElmrecError::Config(format!(
                "{}: no {} (the run has not reached a validation yet)",
                run_dir.display(),
                graft_train::BEST_FILE
            )));
        }
        Ok(model)
    }
}

/// A trained ELMRec model that recommends over every item (a
/// [`RankItems`] model: wrap it in [`graft_recommend::WithIds`] for raw
/// IDs). Dense IDs in and out are the dataset's own, also for a run
/// trained under [`graft_data::Reindex::Random`].
#[derive(Debug)]
pub struct ElmrecRecommender {
    model: ElmrecModel,
    tables: Tables,
    stored: StoredRun,
    /// Dataset numbering -> the model's.
    to_model: ItemPermutation,
    /// The model's numbering -> the dataset's.
    to_data: Vec<u32>,
}

impl ElmrecRecommender {
    /// Loads the run in `run_dir` for `split`, the leave-one-out split of
    /// the dataset it was trained on in the dataset's own numbering (the
    /// run's item renumbering, if any, is applied here).
    ///
    /// # Errors
    /// As [`ElmrecModel::load`]; [`ElmrecError::Config`] for a run trained
    /// on the direct task only (it cannot rank every item).
    pub fn load(
        run_dir: &Path,
        split: &LeaveOneOut,
        tok: Tokenizer,
        device: Device,
    ) -> Result<Self> {
        let run = RunDir::open(run_dir)?;
        let stored: StoredRun = run.config()?;
        if stored.model.tasks == TaskMix::Direct {
            return Err(ElmrecError::Config(format!(
                "{}: this run was trained on the direct task only; recommending among all \
                 items needs a run with the sequential task (--tasks both or sequential)",
                run_dir.display()
            )));
        }
        let to_model = stored
            .model
            .reindex
            .permutation(split.n_items, stored.eval.seed);
        let renumbered = to_model.apply_split(split)?;
        let model = ElmrecModel::load_stored(&run, &stored, &renumbered, tok, device)?;
        let mut to_data = vec![0; split.n_items];
        for old in 0..split.n_items as u32 {
            to_data[to_model.apply(old) as usize] = old;
        }
        let tables = {
            let _guard = tch::no_grad_guard();
            model.tables()?
        };
        Ok(Self {
            model,
            tables,
            stored,
            to_model,
            to_data,
        })
    }

    /// The run's stored configuration.
    pub fn stored(&self) -> &StoredRun {
        &self.stored
    }

    /// The loaded model (in the run's item numbering).
    pub fn model(&self) -> &ElmrecModel {
        &self.model
    }

    /// At most `k` items for `user` after `history` (dense IDs in the
    /// dataset's numbering), best first with their beam scores, none in
    /// `excluded`: a constrained beam search over all items with
    /// `max(eval beams, k + N)` beams, whose first `k + N` items are kept
    /// before `excluded` ones are dropped (ELMRec's reranking, N =
    /// `rerank_n` of the run's evaluation settings).
    ///
    /// # Errors
    /// [`ElmrecError::Config`] for an item outside the dataset; model
    /// failures.
    pub fn recommend_dense(
        &self,
        user: u32,
        history: &[u32],
        k: usize,
        excluded: &[u32],
    ) -> Result<Vec<(u32, f32)>> {
        let n = self.stored.eval.rerank_n;
        let mut renamed = history.to_vec();
        self.to_model.apply_all(&mut renamed)?;
        let mut skip = excluded.to_vec();
        self.to_model.apply_all(&mut skip)?;
        let query = Example::sequential_query(user, &renamed, self.stored.model.history_len);
        let beams = self.stored.eval.beams_sequential.max(k + n);
        let generated =
            self.model
                .generate_scored(&query, &self.tables, self.model.trie(), beams)?;
        Ok(generated
            .into_iter()
            .take(k + n)
            .filter(|(i, _)| !skip.contains(i))
            .take(k)
            .map(|(i, s)| (self.to_data[i as usize], s))
            .collect())
    }
}

impl RankItems for ElmrecRecommender {
    fn n_ranked_items(&self) -> usize {
        self.to_data.len()
    }

    fn rank_items(
        &self,
        user: Option<u32>,
        history: &[u32],
        k: usize,
        excluded: &[u32],
    ) -> graft_recommend::Result<Vec<(u32, f32)>> {
        // ELMRec's prompts name the user: an unknown one has no ID.
        let user = user.ok_or_else(|| RecommendError::UnknownUser(String::new()))?;
        self.recommend_dense(user, history, k, excluded)
            .map_err(|e| RecommendError::Model(Box::new(e)))
    }
}
