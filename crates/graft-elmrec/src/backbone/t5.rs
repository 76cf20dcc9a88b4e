//! T5 (encoder-decoder, the paper's backbone): the prompt goes through the
//! encoder, the item's tokens come out of the decoder.

use std::any::Any;
use std::collections::HashMap;

use graft_lm::inject::prefix_mask;
use graft_lm::{AllowedTokens, BeamConfig, Hypothesis, T5};
use tch::{Device, Kind, Reduction, Tensor};
use tokenizers::Tokenizer;

use super::{to_i64, ElmrecBackbone, PromptBatch};
use crate::config::TargetPieces;
use crate::error::{ElmrecError, Result};

/// The encoder output of a prompt batch.
struct Encoded {
    /// `[B, P + T, d]`.
    hidden: Tensor,
    /// `[B, P + T]`.
    mask: Tensor,
}

fn encode(t5: &T5, prompts: &PromptBatch<'_>) -> Result<Encoded> {
    let padded = prompts.padded(&[])?;
    let emb = t5.embed(&padded.ids)?;
    let x = prompts.inject(&emb, &padded.whole_words, None)?;
    let p = prompts.prefix_len();
    let mask = if p > 0 {
        prefix_mask(&padded.in_prompt, p)?
    } else {
        padded.in_prompt
    };
    let hidden = t5.encode_embeds(&x, &mask)?;
    Ok(Encoded { hidden, mask })
}

/// Decoder inputs `[B, T]` and labels `[B, T]` (-100 = padding) for the
/// given targets' token sequences.
fn teacher_forcing(t5: &T5, targets: &[&[u32]], device: Device) -> Result<(Tensor, Tensor)> {
    let len = targets.iter().map(|t| t.len()).max().unwrap_or(0);
    let start = t5.config().decoder_start_token_id;
    let mut dec = Vec::with_capacity(targets.len() * len);
    let mut lab = Vec::with_capacity(targets.len() * len);
    for t in targets {
        for k in 0..len {
            dec.push(if k == 0 {
                start
            } else {
                t.get(k - 1).map_or(0, |&x| i64::from(x))
            });
            lab.push(t.get(k).map_or(-100, |&x| i64::from(x)));
        }
    }
    let shape = [to_i64(targets.len())?, to_i64(len)?];
    let upload =
        |v: &[i64]| -> Result<Tensor> { Ok(Tensor::f_from_slice(v)?.f_view(shape)?.f_to(device)?) };
    Ok((upload(&dec)?, upload(&lab)?))
}

impl ElmrecBackbone for T5 {
    fn hidden_size(&self) -> usize {
        self.config().d_model
    }

    fn item_target(&self, tok: &Tokenizer, i: usize, style: TargetPieces) -> Result<Vec<u32>> {
        let ids = |text: &str, special: bool| -> Result<Vec<u32>> {
            Ok(tok
                .encode(text, special)
                .map_err(|e| ElmrecError::Tokenizer(e.to_string()))?
                .get_ids()
                .to_vec())
        };
        match style {
            TargetPieces::Number => ids(&i.to_string(), true),
            TargetPieces::Prompt => {
                let prefix = ids("item_", false)?;
                let full = ids(&format!("item_{i}"), true)?;
                match full.strip_prefix(prefix.as_slice()) {
                    Some(rest) if rest.len() > 1 => Ok(rest.to_vec()),
                    _ => Err(ElmrecError::Tokenizer(format!(
                        "`item_{i}` does not tokenize as the pieces of `item_` followed by the \
                         number's, so a target cannot copy its prompt pieces"
                    ))),
                }
            }
        }
    }

    /// Every T5 weight, as `t5.<name>`.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        T5::named_parameters(self)
            .into_iter()
            .map(|(n, t)| (format!("t5.{n}"), t))
            .collect()
    }

    fn loss(&self, prompts: &PromptBatch<'_>, targets: &[&[u32]], _train: bool) -> Result<Tensor> {
        let enc = encode(self, prompts)?;
        let (dec, labels) = teacher_forcing(self, targets, prompts.device())?;
        let cross = self.cross_kv(&enc.hidden)?;
        let h = self.decode_hidden(&dec, &cross, &enc.mask)?;
        // Vocabulary logits only at the target positions (padding after
        // shorter targets has none): the output head is the largest
        // product of the decoder.
        let d = h.size()[2];
        let labels = labels.f_view([-1])?;
        let keep = labels.f_ge(0)?.f_nonzero()?.f_squeeze_dim(1)?;
        let h = h.f_view([-1, d])?.f_index_select(0, &keep)?;
        let logits = self.lm_logits(&h)?;
        Ok(logits.f_cross_entropy_loss::<Tensor>(
            &labels.f_index_select(0, &keep)?,
            None,
            Reduction::Mean,
            -100,
            0.0,
        )?)
    }

    fn score(&self, prompt: &PromptBatch<'_>, targets: &[&[u32]]) -> Result<Vec<f32>> {
        let enc = encode(self, prompt)?;
        let (dec, _) = teacher_forcing(self, targets, prompt.device())?;
        let cross = self.cross_kv(&enc.hidden)?;
        let h = self.decode_hidden(&dec, &cross, &enc.mask)?;
        // The decoder state at position k depends only on the target's
        // first k tokens, so candidates sharing a prefix share its
        // next-token distribution: the output head (the largest product
        // here) runs once per distinct prefix, not once per candidate and
        // position.
        let width = h.size()[1] as usize;
        let (rows, picks) = prefix_rows(targets, width);
        let d = h.size()[2];
        let rows = Tensor::f_from_slice(&rows)?.f_to(h.device())?;
        let h = h.f_view([-1, d])?.f_index_select(0, &rows)?;
        let logp = self.lm_logits(&h)?.f_log_softmax(-1, Kind::Float)?;
        let v = self.config().vocab_size;
        let flat: Vec<i64> = picks
            .iter()
            .flatten()
            .map(|&(r, tok)| (r * v + tok) as i64)
            .collect();
        let flat = Tensor::f_from_slice(&flat)?.f_to(logp.device())?;
        let picked = Vec::<f32>::try_from(
            logp.f_view([-1])?
                .f_index_select(0, &flat)?
                .f_to(Device::Cpu)?,
        )?;
        let mut picked = picked.into_iter();
        Ok(picks
            .iter()
            .map(|p| picked.by_ref().take(p.len()).sum())
            .collect())
    }

    fn beam_search(
        &self,
        prompt: &PromptBatch<'_>,
        beams: usize,
        max_new: usize,
        allowed: &mut AllowedTokens<'_>,
    ) -> Result<Vec<Hypothesis>> {
        let enc = encode(self, prompt)?;
        let cfg = BeamConfig {
            beams,
            max_new,
            eos: Some(self.config().eos_token_id as u32),
            length_penalty: 1.0,
            num_return: beams,
        };
        Ok(self.beam_search_constrained(&enc.hidden, &enc.mask, &cfg, allowed)?)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// For teacher-forced `targets` padded to `width` positions: the flat
/// (candidate-major) decoder positions of the distinct prefixes, in first
/// occurrence order, and for each target its `(row, token)` picks: the
/// index into those rows of each position's prefix and the token scored
/// there.
fn prefix_rows(targets: &[&[u32]], width: usize) -> (Vec<i64>, Vec<Vec<(usize, usize)>>) {
    let mut seen: HashMap<&[u32], usize> = HashMap::new();
    let mut rows = Vec::new();
    let picks = targets
        .iter()
        .enumerate()
        .map(|(c, t)| {
            (0..t.len())
                .map(|k| {
                    let r = *seen.entry(&t[..k]).or_insert_with(|| {
                        rows.push((c * width + k) as i64);
                        rows.len() - 1
                    });
                    (r, t[k] as usize)
                })
                .collect()
        })
        .collect();
    (rows, picks)
}

#[cfg(test)]
mod tests {
    use super::prefix_rows;

    #[test]
    fn shared_prefixes_share_one_row() {
        let t: [&[u32]; 3] = [&[5, 6, 1], &[5, 7, 1], &[8, 1]];
        let (rows, picks) = prefix_rows(&t, 3);
        // [], [5], [5 6], [5 7], [8] at their first flat positions.
        assert_eq!(rows, vec![0, 1, 2, 5, 7]);
        assert_eq!(
            picks,
            vec![
                vec![(0, 5), (1, 6), (2, 1)],
                vec![(0, 5), (1, 7), (3, 1)],
                vec![(0, 8), (4, 1)],
            ]
        );
    }
}
