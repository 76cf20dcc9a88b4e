//! One battery of properties, stamped on every [`ElmrecBackbone`]
//! implementation (a tiny random T5 with the real T5 tokenizer; the tiny
//! LLaMA fixture of graft-lm with a character-level tokenizer, LoRA): the
//! loss, candidate scores and constrained beam search must agree with each
//! other, padding must not change a prompt's numbers, and the trainable
//! tensors must have unique names.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use graft_elmrec::model::Example;
use graft_elmrec::{Backbone, ElmrecConfig, ElmrecModel, Finetune, ItemTrie, Variant};
use tch::Device;

mod common;

fn cfg(backbone: Backbone) -> ElmrecConfig {
    common::tiny_cfg(backbone).with_variant(Variant::Elmrec)
}

/// A tiny random T5 (`None` when the T5 tokenizer is absent and not
/// required).
fn t5() -> Option<ElmrecModel> {
    let tok = common::tokenizer()?;
    Some(
        ElmrecModel::new(&cfg(common::tiny_t5()), &common::split(), tok, Device::Cpu)
            .expect("t5 model"),
    )
}

/// The tiny LLaMA fixture with LoRA adapters.
fn llama() -> Option<ElmrecModel> {
    let chars = ('a'..='z')
        .chain('0'..='9')
        .chain(['_', ',', '.', ':', '?']);
    let tok = graft_lm::tokenizer::char_level_tokenizer(chars, &[], false).expect("tokenizer");
    let backbone = Backbone::Llama {
        weights: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../graft-lm/tests/fixtures/llama_tiny"),
        finetune: Finetune::Lora(graft_lora::LoraConfig::default()),
        bf16_base: false,
    };
    Some(ElmrecModel::new(&cfg(backbone), &common::split(), tok, Device::Cpu).expect("llama model"))
}

fn direct(user: u32, candidates: &[u32], target: u32) -> Example {
    Example {
        target,
        ..Example::direct_query(user, candidates)
    }
}

fn sequential(user: u32, history: &[u32], target: u32) -> Example {
    Example {
        target,
        ..Example::sequential_query(user, history, 20)
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()))
}

fn loss(m: &ElmrecModel, examples: &[Example]) -> f64 {
    let tables = m.tables().unwrap();
    m.loss(examples, &tables).unwrap().double_value(&[])
}

/// The mean-token loss of one example times its target length is minus
/// the summed log-probability `score_candidates` gives that candidate.
fn score_is_the_loss_summed(m: &ElmrecModel) {
    let tables = m.tables().unwrap();
    let cands = [5, 7, 11, 20, 33];
    let scores = m.score_candidates(&direct(4, &cands, 0), &tables).unwrap();
    assert_eq!(scores.len(), cands.len());
    for (&c, &s) in cands.iter().zip(&scores) {
        let len = m.item_tokens(c).unwrap().len() as f64;
        let l = loss(m, &[direct(4, &cands, c)]);
        assert!(
            close(-l * len, f64::from(s)),
            "item {c}: loss {l} x {len} vs score {s}"
        );
    }
}

/// Beam search restricted to one item returns it, with the score of its
/// tokens' summed log-probability over their number (length penalty 1).
fn beam_search_agrees_with_scores(m: &ElmrecModel) {
    let tables = m.tables().unwrap();
    let e = sequential(2, &[1, 8, 9, 3], 0);
    for item in [0_u32, 17, 39] {
        let trie = ItemTrie::new([(item, m.item_tokens(item).unwrap())]);
        let got = m.generate_scored(&e, &tables, &trie, 4).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, item);
        let len = m.item_tokens(item).unwrap().len() as f64;
        let l = loss(m, &[sequential(2, &[1, 8, 9, 3], item)]);
        assert!(
            close(f64::from(got[0].1) * len, -l * len),
            "item {item}: beam score {} vs loss {l}",
            got[0].1
        );
    }
    let all = m.generate_scored(&e, &tables, m.trie(), 5).unwrap();
    assert!(!all.is_empty() && all.len() <= 5);
    assert!(all.windows(2).all(|w| w[0].1 >= w[1].1), "{all:?}");
}

/// A batch's loss is the token-weighted mean of its examples' losses: a
/// short prompt padded next to a long one keeps its numbers.
fn padding_does_not_leak(m: &ElmrecModel) {
    for (a, b) in [
        (
            direct(1, &[2, 3], 3),
            direct(6, &[9, 12, 15, 18, 21, 24, 30], 21),
        ),
        (
            sequential(1, &[4], 7),
            sequential(9, &[1, 2, 3, 5, 8, 13, 21, 34], 30),
        ),
    ] {
        let (la, lb) = (
            loss(m, std::slice::from_ref(&a)),
            loss(m, std::slice::from_ref(&b)),
        );
        let (na, nb) = (
            m.item_tokens(a.target).unwrap().len() as f64,
            m.item_tokens(b.target).unwrap().len() as f64,
        );
        let both = loss(m, &[a, b]);
        let want = (la * na + lb * nb) / (na + nb);
        assert!(close(both, want), "batch {both} vs separate {want}");
    }
    let tables = m.tables().unwrap();
    assert!(m.loss(&[], &tables).is_err(), "an empty batch is an error");
    let mixed = [direct(1, &[2, 3], 3), sequential(1, &[4], 7)];
    assert!(
        m.loss(&mixed, &tables).is_err(),
        "a mixed-task batch is an error"
    );
}

/// Trainable tensors have unique names; the backbone's come first and
/// every ELMRec table follows.
fn parameters_are_named_once(m: &ElmrecModel) {
    let all: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    let own: Vec<String> = m
        .backbone()
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(!own.is_empty());
    assert_eq!(all[..own.len()], own[..]);
    assert_eq!(
        all[own.len()..],
        ["graph.e0", "incremental", "prompts"].map(String::from)
    );
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), all.len(), "duplicate names");
    assert_eq!(m.backbone().hidden_size(), {
        let (_, t) = &m.named_parameters()[all.len() - 1];
        t.size()[1] as usize
    });
}

/// Every item has its own target, all ending with the same token (EOS).
fn targets_are_distinct_and_end_alike(m: &ElmrecModel) {
    let (_, n) = m.sizes();
    let targets: Vec<&[u32]> = (0..n as u32).map(|i| m.item_tokens(i).unwrap()).collect();
    let eos = *targets[0].last().unwrap();
    assert!(targets
        .iter()
        .all(|t| t.len() >= 2 && t.last() == Some(&eos)));
    let mut uniq = targets.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), n);
    assert!(m.item_tokens(n as u32).is_none());
}

macro_rules! backbone_battery {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            fn model() -> Option<ElmrecModel> {
                $make()
            }

            #[test]
            fn score_is_the_loss_summed() {
                if let Some(m) = model() {
                    super::score_is_the_loss_summed(&m);
                }
            }

            #[test]
            fn beam_search_agrees_with_scores() {
                if let Some(m) = model() {
                    super::beam_search_agrees_with_scores(&m);
                }
            }

            #[test]
            fn padding_does_not_leak() {
                if let Some(m) = model() {
                    super::padding_does_not_leak(&m);
                }
            }

            #[test]
            fn parameters_are_named_once() {
                if let Some(m) = model() {
                    super::parameters_are_named_once(&m);
                }
            }

            #[test]
            fn targets_are_distinct_and_end_alike() {
                if let Some(m) = model() {
                    super::targets_are_distinct_and_end_alike(&m);
                }
            }
        }
    };
}

backbone_battery!(t5_backbone, t5);
backbone_battery!(llama_backbone, llama);
