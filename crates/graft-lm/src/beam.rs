//! Beam search shared by the decoders (LLaMA, T5).

use tch::{Device, Kind, Tensor};

use crate::error::{LmError, Result};

/// Settings of a beam search ([`Llama::beam_search`](crate::llama::Llama::beam_search),
/// [`T5::beam_search`](crate::t5::T5::beam_search)).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BeamConfig {
    /// Number of beams kept per step.
    pub beams: usize,
    /// Largest number of generated tokens.
    pub max_new: usize,
    /// Token that ends a hypothesis (kept in its tokens).
    pub eos: Option<u32>,
    /// Hypotheses are ranked by `log_prob / len^length_penalty`
    /// (Hugging Face's convention; 0 ranks by the raw sum).
    pub length_penalty: f64,
    /// Number of hypotheses returned (at most `beams`).
    pub num_return: usize,
}

impl Default for BeamConfig {
    /// 4 beams, 16 new tokens, no EOS, length penalty 1, all beams returned.
    fn default() -> Self {
        Self {
            beams: 4,
            max_new: 16,
            eos: None,
            length_penalty: 1.0,
            num_return: 4,
        }
    }
}

/// One result of a beam search.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Generated tokens (without the prompt).
    pub tokens: Vec<u32>,
    /// Sum of the tokens' log-probabilities.
    pub log_prob: f64,
    /// `log_prob / len^length_penalty`, the ranking key.
    pub score: f64,
}

/// Tokens a constrained search may emit after a prefix (an empty list ends
/// the beam without a hypothesis).
pub type AllowedTokens<'a> = dyn FnMut(&[u32]) -> Vec<u32> + 'a;

/// Beam search over a decoder given the log-probabilities of the first
/// step (`[1, V]`) and a `step` function that, given the parent index of
/// each surviving beam and the beams' tokens so far, returns their
/// next-token log-probabilities (`[n, V]`), reordering any cache it keeps.
/// Stops when `beams` hypotheses have ended with `eos` (Hugging Face's
/// `early_stopping=True`) or after `max_new` tokens, when the running beams
/// are added as hypotheses; returns the best `num_return`, best first.
///
/// If `allowed` is given, every beam may only continue with the tokens
/// `allowed(prefix)` returns (Hugging Face's `prefix_allowed_tokens_fn`);
/// beams with no allowed continuation are dropped rather than padded with
/// impossible tokens.
pub(crate) fn search_constrained<F>(
    cfg: &BeamConfig,
    first: Tensor,
    mut step: F,
    mut allowed: Option<&mut AllowedTokens<'_>>,
) -> Result<Vec<Hypothesis>>
where
    F: FnMut(&[i64], &[Vec<u32>]) -> Result<Tensor>,
{
    if cfg.beams == 0 {
        return Err(LmError::WrongType {
            name: "beam search".into(),
            expected: "at least one beam".into(),
            found: "0 beams".into(),
        });
    }
    let score = |lp: f64, len: usize| lp / (len.max(1) as f64).powf(cfg.length_penalty);
    let device = first.device();
    let mut logp = first;
    let mut beams: Vec<(Vec<u32>, f64)> = vec![(Vec::new(), 0.0)];
    let mut done: Vec<Hypothesis> = Vec::new();
    for _ in 0..cfg.max_new {
        let vocab = logp.size()[1];
        if let Some(allowed) = allowed.as_mut() {
            let mut mask = vec![f64::NEG_INFINITY; beams.len() * vocab as usize];
            for (b, (tokens, _)) in beams.iter().enumerate() {
                for t in allowed(tokens) {
                    if i64::from(t) < vocab {
                        mask[b * vocab as usize + t as usize] = 0.0;
                    }
                }
            }
            let mask = Tensor::f_from_slice(&mask)?
                .f_view([beams.len() as i64, vocab])?
                .f_to(device)?;
            logp = logp.f_to_kind(Kind::Double)?.f_add(&mask)?;
        }
        let base: Vec<f64> = beams.iter().map(|b| b.1).collect();
        let base = Tensor::f_from_slice(&base)?.f_to(device)?.f_unsqueeze(1)?;
        let total = logp.f_to_kind(Kind::Double)?.f_add(&base)?.f_view([-1])?;
        let k = (2 * cfg.beams as i64).min(total.size()[0]);
        let (vals, idx) = total.f_topk(k, 0, true, true)?;
        let vals = Vec::<f64>::try_from(vals.f_to(Device::Cpu)?)?;
        let idx = Vec::<i64>::try_from(idx.f_to(Device::Cpu)?)?;
        let mut next: Vec<(Vec<u32>, f64)> = Vec::with_capacity(cfg.beams);
        let mut parents: Vec<i64> = Vec::with_capacity(cfg.beams);
        for (&v, &i) in vals.iter().zip(&idx) {
            if !v.is_finite() {
                break; // sorted: only disallowed continuations remain
            }
            let (parent, tok) = ((i / vocab) as usize, u32::try_from(i % vocab).unwrap_or(0));
            let mut tokens = beams[parent].0.clone();
            tokens.push(tok);
            if Some(tok) == cfg.eos {
                let len = tokens.len();
                done.push(Hypothesis {
                    tokens,
                    log_prob: v,
                    score: score(v, len),
                });
            } else {
                next.push((tokens, v));
                parents.push(parent as i64);
            }
            if next.len() == cfg.beams {
                break;
            }
        }
        if done.len() >= cfg.beams || next.is_empty() {
            beams.clear();
            break;
        }
        let tokens: Vec<Vec<u32>> = next.iter().map(|(t, _)| t.clone()).collect();
        logp = step(&parents, &tokens)?;
        beams = next;
    }
    for (tokens, lp) in beams {
        let len = tokens.len();
        done.push(Hypothesis {
            tokens,
            log_prob: lp,
            score: score(lp, len),
        });
    }
    done.sort_by(|a, b| b.score.total_cmp(&a.score));
    done.truncate(cfg.num_return.min(cfg.beams));
    Ok(done)
}
