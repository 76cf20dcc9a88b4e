//! RAP prompts for CTR samples: semantic retrieval over sentence
//! embeddings of item texts (graft-retrieval), the recent items, the
//! profile, and graft-prompt's template.

use std::collections::HashMap;
use std::path::Path;

use graft_data::features::item_text;
use graft_data::{CtrSample, Dataset};
use graft_lm::SentenceEncoder;
use graft_prompt::rap::{render_rap, retrieved_in_time_order, RapConfig, RapPrompt};
use graft_retrieval::{CosineIndex, EmbeddingCache};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use tch::{Device, Kind};

use crate::data::CtrData;
use crate::error::{ElcorecError, Result};

/// Texts per encoder call (and per cache flush) in [`item_embeddings`].
const ENCODE_CHUNK: usize = 256;

/// Sentence embeddings of every item's text ([`item_text`]), one row per
/// dense item id, read from (and added to) the cache `cache_root` under
/// `model_id`, so a second run encodes nothing. `encoder` is called (once)
/// only if some text is not in the cache: with a full cache the encoder's
/// files need not exist (e.g. on a machine they cannot be carried to).
///
/// # Errors
/// Encoder (loading included) and cache errors.
pub fn item_embeddings(
    ds: &Dataset,
    encoder: impl FnOnce() -> Result<SentenceEncoder>,
    model_id: &str,
    cache_root: &Path,
    progress: bool,
) -> Result<Array2<f32>> {
    let mut load = Some(encoder);
    let mut loaded: Option<SentenceEncoder> = None;
    let texts: Vec<String> = (0..ds.n_items() as u32).map(|i| item_text(ds, i)).collect();
    let mut cache = EmbeddingCache::open(cache_root, model_id)?.with_flush_threshold(ENCODE_CHUNK);
    let bar = if progress {
        ProgressBar::new(texts.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "item texts {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rows = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(ENCODE_CHUNK) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let part = cache.get_or_compute(&refs, |miss| -> Result<Array2<f32>> {
            let encoder = match (loaded.as_ref(), load.take()) {
                (Some(e), _) => e,
                (None, Some(f)) => loaded.insert(f()?),
                (None, None) => {
                    return Err(ElcorecError::Config(
                        "the sentence encoder failed to load".into(),
                    ))
                }
            };
            let t = encoder
                .encode(miss)?
                .f_to_kind(Kind::Float)?
                .f_to(Device::Cpu)?;
            let d = t.size();
            let v = Vec::<f32>::try_from(t.f_reshape([-1])?)?;
            Array2::from_shape_vec((d[0] as usize, d[1] as usize), v)
                .map_err(|e| ElcorecError::Config(format!("encoder output: {e}")))
        })?;
        rows.push(part);
        bar.inc(chunk.len() as u64);
    }
    cache.flush()?;
    bar.finish_and_clear();
    let views: Vec<_> = rows.iter().map(Array2::view).collect();
    ndarray::concatenate(ndarray::Axis(0), &views)
        .map_err(|e| ElcorecError::Config(format!("item embeddings: {e}")))
}

/// Writes RAP prompts: `k` items retrieved from the sample's whole history
/// by cosine similarity to the target's text embedding (re-sorted into
/// time order), and the `k` most recent items.
#[derive(Debug, Clone)]
pub struct RapBuilder {
    index: CosineIndex,
    cfg: RapConfig,
    k: usize,
}

impl RapBuilder {
    /// A builder over item embeddings `index` (row = dense item id).
    pub fn new(index: CosineIndex, cfg: RapConfig, k: usize) -> Self {
        Self { index, cfg, k }
    }

    /// The template settings.
    pub fn config(&self) -> &RapConfig {
        &self.cfg
    }

    /// History positions (oldest = 0) of the retrieved items of `s`, in
    /// time order.
    ///
    /// # Errors
    /// [`ElcorecError::Retrieval`] for an item outside the index.
    pub fn retrieved_positions(&self, data: &CtrData, s: &CtrSample) -> Result<Vec<usize>> {
        let history = data.history(s);
        // An item seen twice is represented by its latest interaction.
        let mut position: HashMap<usize, usize> = HashMap::with_capacity(history.len());
        for (p, e) in history.iter().enumerate() {
            position.insert(e.item as usize, p);
        }
        let mut candidates: Vec<usize> = position.keys().copied().collect();
        candidates.sort_unstable();
        let query = self
            .index
            .row(s.item as usize)
            .ok_or_else(|| {
                ElcorecError::Config(format!(
                    "item {} has no text embedding ({} indexed)",
                    s.item,
                    self.index.len()
                ))
            })?
            .to_owned();
        let hits = self.index.top_k_among(query.view(), &candidates, self.k)?;
        let ranked: Vec<usize> = hits.iter().map(|h| position[&h.index]).collect();
        Ok(retrieved_in_time_order(&ranked, self.k))
    }

    /// The RAP prompt of `s`.
    ///
    /// # Errors
    /// [`crate::ElcorecError::Sample`] for a sample that does not fit
    /// `data` ([`CtrData::check`]); retrieval and template errors.
    pub fn prompt(&self, data: &CtrData, s: &CtrSample) -> Result<RapPrompt> {
        data.check(s)?;
        let history = data.history(s);
        let retrieved: Vec<_> = self
            .retrieved_positions(data, s)?
            .into_iter()
            .map(|p| data.rated(&history[p]))
            .collect();
        let recent: Vec<_> = data
            .recent(s, self.k)
            .iter()
            .map(|e| data.rated(e))
            .collect();
        Ok(render_rap(
            &self.cfg,
            &data.profile(s.user),
            &retrieved,
            &recent,
            &data.title(s.item),
        )?)
    }
}
