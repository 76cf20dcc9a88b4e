//! Whole-word spans (graft-prompt) under SmolLM2's byte-level BPE, which
//! splits every digit. Lives here because the tokenizer comes from the
//! GGUF file (graft-prompt itself does not link libtorch).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use graft_prompt::{whole_word_ids, Task, Template, WholeWordMode};

#[test]
fn smollm2_spans_cover_the_split_digits() {
    let Some(f) = common::smollm2_gguf() else {
        return;
    };
    let tok = graft_lm::tokenizer::tokenizer_from_gguf(&f).unwrap();
    let p = Template::pod(Task::Sequential)
        .render(12, &[345, 7, 1024], &[])
        .unwrap();
    let enc = tok.encode(p.text.as_str(), false).unwrap();
    let ids = whole_word_ids(&p, &enc, WholeWordMode::Incremental).unwrap();
    let of = |k: u32| -> Vec<String> {
        enc.get_tokens()
            .iter()
            .zip(&ids)
            .filter(|(_, &i)| i == k)
            .map(|(t, _)| t.clone())
            .collect()
    };
    assert_eq!(of(1), ["user", "_", "1", "2"]);
    assert_eq!(of(2), ["Ġitem", "_", "3", "4", "5"]);
    assert_eq!(of(4), ["Ġitem", "_", "1", "0", "2", "4"]);
    // Graph mode: rows 1 + user, 1 + n_users + item.
    let graph = whole_word_ids(&p, &enc, WholeWordMode::Graph { n_users: 100 }).unwrap();
    let rows: Vec<u32> = graph.iter().copied().filter(|&g| g > 0).collect();
    assert_eq!(rows.first(), Some(&13));
    assert_eq!(rows.last(), Some(&(1 + 100 + 1024)));
    // Every mention gets tokens, and tagged tokens stay inside their mention.
    for (k, m) in p.mentions.iter().enumerate() {
        let toks: Vec<usize> = (0..enc.len()).filter(|&t| ids[t] == k as u32 + 1).collect();
        assert!(!toks.is_empty());
        for t in toks {
            let (s, e) = enc.get_offsets()[t];
            assert!(s < m.span.end && e > m.span.start);
        }
    }
}
