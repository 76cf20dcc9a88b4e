//! Rebuilding a `tokenizers::Tokenizer` from GGUF metadata.
//!
//! GGUF files carry their tokenizer in `tokenizer.ggml.*` keys. For the
//! `gpt2` model type (byte-level BPE, as SmolLM2 uses) the tokens, their
//! types and the merges are enough to rebuild the Hugging Face tokenizer:
//! a BPE model over the byte-level alphabet, control tokens (type 3) as
//! special added tokens matched before splitting, and the pre-tokenizer
//! named by `tokenizer.ggml.pre` (`smollm`: every digit on its own, then
//! byte-level splitting without a prefix space).
//!
//! ```no_run
//! use graft_lm::{gguf::GgufFile, tokenizer::tokenizer_from_gguf};
//!
//! let file = GgufFile::read("SmolLM2-135M-Instruct.Q4_1.gguf".as_ref())?;
//! let tok = tokenizer_from_gguf(&file)?;
//! let ids = tok.encode("user_12", false).map_err(|e| e.to_string()).unwrap();
//! assert_eq!(ids.get_tokens(), ["user", "_", "1", "2"]);
//! # Ok::<(), graft_lm::LmError>(())
//! ```

use std::collections::HashMap;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{LmError, Result};
use crate::gguf::{GgufFile, GgufValue};

/// `tokenizer.ggml.token_type` of control tokens (`<|im_start|>`, ...).
pub const TOKEN_TYPE_CONTROL: i64 = 3;

/// Special token ids named in the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpecialIds {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence.
    pub eos: Option<u32>,
    /// Padding.
    pub pad: Option<u32>,
    /// Unknown.
    pub unk: Option<u32>,
}

/// The special token ids of a GGUF file (`tokenizer.ggml.*_token_id`).
pub fn special_ids(file: &GgufFile) -> SpecialIds {
    let id = |k: &str| {
        file.metadata_u64(k)
            .ok()
            .and_then(|v| u32::try_from(v).ok())
    };
    SpecialIds {
        bos: id("tokenizer.ggml.bos_token_id"),
        eos: id("tokenizer.ggml.eos_token_id"),
        pad: id("tokenizer.ggml.padding_token_id"),
        unk: id("tokenizer.ggml.unknown_token_id"),
    }
}

fn tok_err(reason: impl Into<String>) -> LmError {
    LmError::Tokenizer {
        reason: reason.into(),
    }
}

/// Builds the tokenizer described by a GGUF file's metadata.
///
/// Supports `tokenizer.ggml.model = "gpt2"` with the pre-tokenizers
/// `smollm` (digits split individually, then byte-level) and `gpt2` /
/// `default` (byte-level only).
///
/// # Errors
///
/// [`LmError::Missing`] / [`LmError::WrongType`] for absent or mistyped
/// keys; [`LmError::Tokenizer`] for an unsupported model or pre-tokenizer,
/// duplicate tokens, or merges that are not two space-separated tokens.
pub fn tokenizer_from_gguf(file: &GgufFile) -> Result<Tokenizer> {
    let model = file.metadata_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(tok_err(format!(
            "tokenizer.ggml.model {model:?} is not supported (only byte-level BPE, \"gpt2\")"
        )));
    }
    let tokens = file.metadata_strings("tokenizer.ggml.tokens")?;
    let types: Vec<i64> = match file.metadata("tokenizer.ggml.token_type") {
        Some(GgufValue::Array(v)) => v
            .iter()
            .map(|x| x.as_f64().map_or(1, |f| f as i64))
            .collect(),
        _ => vec![1; tokens.len()],
    };
    let mut vocab = HashMap::with_capacity(tokens.len());
    for (id, &t) in tokens.iter().enumerate() {
        let id = u32::try_from(id).map_err(|_| tok_err("more than u32::MAX tokens"))?;
        if vocab.insert(t.to_string(), id).is_some() {
            return Err(tok_err(format!("token {t:?} appears twice")));
        }
    }
    let merges = file
        .metadata_strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            let mut parts = m.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => {
                    Ok((a.to_string(), b.to_string()))
                }
                _ => Err(tok_err(format!(
                    "merge {m:?} is not two space-separated tokens"
                ))),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(
            vocab
                .into_iter()
                .collect::<tokenizers::models::bpe::Vocab>(),
            merges,
        )
        .build()
        .map_err(|e| tok_err(format!("BPE: {e}")))?;
    let pre = file.metadata_str("tokenizer.ggml.pre").unwrap_or("default");
    let byte_level = ByteLevel::new(false, true, true);
    let pre_tokenizer: PreTokenizerWrapper = match pre {
        "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
        "gpt2" | "default" => byte_level.into(),
        other => {
            return Err(tok_err(format!(
                "tokenizer.ggml.pre {other:?} is not supported (smollm, gpt2, default are)"
            )))
        }
    };
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(pre_tokenizer));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, &t)| t == TOKEN_TYPE_CONTROL)
        .map(|(&s, _)| AddedToken::from(s.to_string(), true))
        .collect();
    tok.add_special_tokens(&special);
    Ok(tok)
}

/// A character-level tokenizer for tests and tiny models (e.g. a random
/// LLaMA with a 64-token vocabulary): ids `<unk>` 0, `<s>` 1, `</s>` 2, then
/// one token per character of `chars` in order, then the `special` tokens
/// (matched whole before splitting, e.g. a soft-prompt placeholder). Text
/// is split on whitespace and between word and punctuation characters,
/// with byte offsets (whole-word ids need them); with `lowercase` it is
/// lower-cased first. A character outside `chars` becomes `<unk>`.
///
/// ```
/// use graft_lm::tokenizer::char_level_tokenizer;
///
/// let tok = char_level_tokenizer(('a'..='z').chain('0'..='9').chain(['_']), &["<ph>"], true)?;
/// let enc = tok.encode("User_12 <ph>!", false).map_err(|e| e.to_string()).unwrap();
/// assert_eq!(enc.get_tokens(), ["u", "s", "e", "r", "_", "1", "2", "<ph>", "<unk>"]);
/// assert_eq!(enc.get_ids()[..2], [3 + 20, 3 + 18]); // 'u', 's'
/// assert_eq!(enc.get_offsets()[7], (8, 12));
/// assert!(char_level_tokenizer(['a', 'a'], &[], false).is_err());
/// # Ok::<(), graft_lm::LmError>(())
/// ```
///
/// # Errors
///
/// [`LmError::Tokenizer`] for a character listed twice or one of `<unk>`,
/// `<s>`, `</s>` among `special`.
pub fn char_level_tokenizer(
    chars: impl IntoIterator<Item = char>,
    special: &[&str],
    lowercase: bool,
) -> Result<Tokenizer> {
    let base = ["<unk>", "<s>", "</s>"].map(String::from);
    let mut vocab: HashMap<String, u32> = HashMap::new();
    for (id, t) in base
        .into_iter()
        .chain(chars.into_iter().map(String::from))
        .enumerate()
    {
        let id = u32::try_from(id).map_err(|_| tok_err("more than u32::MAX tokens"))?;
        if vocab.insert(t.clone(), id).is_some() {
            return Err(tok_err(format!("token {t:?} appears twice")));
        }
    }
    if let Some(s) = special.iter().find(|s| vocab.contains_key(**s)) {
        return Err(tok_err(format!(
            "special token {s:?} is already in the vocabulary"
        )));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(
            vocab
                .into_iter()
                .collect::<tokenizers::models::bpe::Vocab>(),
            Vec::new(),
        )
        .unk_token("<unk>".into())
        .build()
        .map_err(|e| tok_err(format!("BPE: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::whitespace::Whitespace));
    if lowercase {
        tok.with_normalizer(Some(tokenizers::normalizers::Lowercase));
    }
    let special: Vec<AddedToken> = special
        .iter()
        .map(|s| AddedToken::from(s.to_string(), true))
        .collect();
    tok.add_special_tokens(&special);
    Ok(tok)
}
