//! ELCoRec's RAP prompt (Recent interaction Augmented Prompt).
//!
//! A RAP prompt asks whether a user will like a target item. It holds, in
//! this order: the user's profile; the `K` history items *retrieved* by
//! semantic similarity to the target, listed in time order; the `K` *most
//! recent* items with their ratings; a sentence carrying a *placeholder
//! token* whose input embedding the language model replaces with the
//! projected GAT expert output; and the question, to be answered "Yes" or
//! "No". The structure follows the official ELCoRec code's `RRAP`
//! template; the wording is ours and gender-neutral ("the user").
//!
//! Rendering records the byte span of the placeholder while writing, so
//! [`placeholder_token`] finds its token through the tokenizer's offsets
//! instead of searching the text. [`retrieved_in_time_order`] turns a
//! similarity ranking of history positions (graft-retrieval's
//! `CosineIndex::top_k_among`) into RAP's retrieved list.
//!
//! ```
//! use graft_prompt::rap::{Domain, RapConfig, RatedItem, UserProfile, render_rap};
//!
//! let cfg = RapConfig::new(Domain::Movies).with_placeholder("<filename>");
//! let profile = UserProfile { gender: Some("female".into()), age: Some("25-34".into()), ..Default::default() };
//! let recent = [RatedItem::new("Heat (1995)", 4.0), RatedItem::new("Fargo (1996)", 5.0)];
//! let p = render_rap(&cfg, &profile, &recent[..1], &recent, "Casino (1995)")?;
//! assert!(p.text.contains("Fargo (1996) (5 stars)"));
//! assert_eq!(&p.text[p.placeholder.clone().unwrap()], "<filename>");
//! # Ok::<(), graft_prompt::PromptError>(())
//! ```

use std::fmt::Write as _;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use tokenizers::Encoding;

use crate::{PromptError, Result};

/// The vocabulary of a dataset's domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Domain {
    /// MovieLens: movies, watched, ratings 1-5.
    Movies,
    /// BookCrossing: books, read, ratings 0-10.
    Books,
}

impl std::str::FromStr for Domain {
    type Err = String;

    /// `movies` or `books`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "movies" => Ok(Domain::Movies),
            "books" => Ok(Domain::Books),
            _ => Err(format!("unknown domain {s:?} (expected movies or books)")),
        }
    }
}

impl Domain {
    /// Singular noun: `"movie"` or `"book"`.
    pub fn noun(self) -> &'static str {
        match self {
            Domain::Movies => "movie",
            Domain::Books => "book",
        }
    }

    /// Past tense of consuming an item: `"watched"` or `"read"`.
    pub fn verb(self) -> &'static str {
        match self {
            Domain::Movies => "watched",
            Domain::Books => "read",
        }
    }

    /// Highest rating of the scale.
    pub fn max_rating(self) -> u32 {
        match self {
            Domain::Movies => 5,
            Domain::Books => 10,
        }
    }
}

/// Which history lists the prompt carries (ELCoRec's RAP and its two
/// ablations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RapVariant {
    /// Retrieved items and recent items (RAP).
    Full,
    /// Recent items only (no retrieval).
    RecentOnly,
    /// Retrieved items only (no recent list).
    RetrievalOnly,
}

/// How RAP prompts are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RapConfig {
    /// Nouns, verbs and rating scale.
    pub domain: Domain,
    /// Which lists appear.
    pub variant: RapVariant,
    /// The placeholder token's text (one token of the tokenizer, e.g. an
    /// unused control token); `None` writes no placeholder sentence (the
    /// "LLM without the GAT token" baseline).
    pub placeholder: Option<String>,
}

impl RapConfig {
    /// Full RAP without a placeholder.
    pub fn new(domain: Domain) -> Self {
        Self {
            domain,
            variant: RapVariant::Full,
            placeholder: None,
        }
    }

    /// Sets the placeholder token text.
    #[must_use]
    pub fn with_placeholder(mut self, token: impl Into<String>) -> Self {
        self.placeholder = Some(token.into());
        self
    }

    /// Sets the variant.
    #[must_use]
    pub fn with_variant(mut self, variant: RapVariant) -> Self {
        self.variant = variant;
        self
    }
}

/// The profile fields a dataset has (MovieLens: gender, age, occupation,
/// zip as location; BookCrossing: location, age). Missing fields are left
/// out of the prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    /// Gender, e.g. `"female"`.
    pub gender: Option<String>,
    /// Age or age group, e.g. `"25-34"`.
    pub age: Option<String>,
    /// Occupation, e.g. `"programmer"`.
    pub occupation: Option<String>,
    /// Location, e.g. `"porto, portugal"`.
    pub location: Option<String>,
}

/// A history item as the prompt shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatedItem {
    /// The item's text (title; year or author as the caller likes).
    pub title: String,
    /// The user's rating.
    pub rating: f32,
}

impl RatedItem {
    /// A titled, rated item.
    pub fn new(title: impl Into<String>, rating: f32) -> Self {
        Self {
            title: title.into(),
            rating,
        }
    }
}

/// A rendered RAP prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RapPrompt {
    /// The prompt text.
    pub text: String,
    /// Byte range of the placeholder token's text, when the config has one.
    pub placeholder: Option<Range<usize>>,
}

/// Writes `s` with every control character (newlines, tabs, ...) replaced
/// by a space and runs of whitespace collapsed, so item texts from data
/// files cannot break the prompt's line structure.
fn push_clean(out: &mut String, s: &str) {
    let mut space = false;
    for c in s.trim().chars() {
        if c.is_control() || c.is_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
}

/// `4` for 4.0, `3.5` for 3.5.
fn push_rating(out: &mut String, r: f32) {
    if r.fract() == 0.0 && r.abs() < 1e9 {
        let _ = write!(out, "{}", r as i64);
    } else {
        let _ = write!(out, "{r}");
    }
}

fn push_list(out: &mut String, items: &[RatedItem]) {
    for (k, it) in items.iter().enumerate() {
        let _ = write!(out, "{}. ", k + 1);
        push_clean(out, &it.title);
        out.push_str(" (");
        push_rating(out, it.rating);
        out.push_str(if it.rating == 1.0 {
            " star)\n"
        } else {
            " stars)\n"
        });
    }
}

/// Renders a RAP prompt.
///
/// `retrieved` are the items retrieved for the target (already in time
/// order, see [`retrieved_in_time_order`]), `recent` the most recent items
/// (oldest first); the variant decides which of the two appear. Titles
/// are written with control characters replaced by spaces.
///
/// # Errors
///
/// [`PromptError::Template`] if the placeholder is empty, contains
/// whitespace, or occurs in the rest of the prompt (a title containing
/// it would make its token ambiguous).
pub fn render_rap(
    cfg: &RapConfig,
    profile: &UserProfile,
    retrieved: &[RatedItem],
    recent: &[RatedItem],
    target: &str,
) -> Result<RapPrompt> {
    let (noun, verb) = (cfg.domain.noun(), cfg.domain.verb());
    let mut text = String::with_capacity(256 + 48 * (retrieved.len() + recent.len()));
    // Profile.
    let mut facts: Vec<String> = Vec::new();
    if let Some(g) = &profile.gender {
        facts.push(format!("The user is {}.", with_article(g)));
    }
    if let Some(a) = &profile.age {
        facts.push(format!("The user's age is {a}."));
    }
    if let Some(o) = &profile.occupation {
        facts.push(format!("The user's job is {o}."));
    }
    if let Some(l) = &profile.location {
        facts.push(format!("The user lives in {l}."));
    }
    if !facts.is_empty() {
        push_clean(&mut text, &facts.join(" "));
        text.push('\n');
    }
    let scale = cfg.domain.max_rating();
    if cfg.variant != RapVariant::RecentOnly {
        let _ = writeln!(
            text,
            "The user {verb} these {noun}s, which reflect the user's preference for the target (rated out of {scale}):"
        );
        push_list(&mut text, retrieved);
    }
    if cfg.variant != RapVariant::RetrievalOnly {
        let _ = writeln!(
            text,
            "The user {verb} the following {noun}s most recently, in order, and rated them (out of {scale}):"
        );
        push_list(&mut text, recent);
    }
    let mut placeholder = None;
    if let Some(ph) = &cfg.placeholder {
        if ph.is_empty() || ph.chars().any(char::is_whitespace) {
            return Err(PromptError::Template {
                template: ph.clone(),
                reason: "the placeholder must be one non-empty word".into(),
            });
        }
        text.push_str(
            "We also have information about the user's preferences encoded in the feature ",
        );
        let start = text.len();
        text.push_str(ph);
        placeholder = Some(start..text.len());
        text.push_str(".\n");
    }
    let _ = write!(
        text,
        "Based on the {noun}s the user has {verb}, deduce if the user will like the {noun} ***"
    );
    push_clean(&mut text, target);
    let _ = write!(
        text,
        "***.\nNote that the more stars the user gave a {noun}, the more the user liked it.\nYou should ONLY tell me yes or no."
    );
    if let (Some(ph), Some(span)) = (&cfg.placeholder, &placeholder) {
        let elsewhere = text
            .match_indices(ph.as_str())
            .any(|(i, _)| i != span.start);
        if elsewhere {
            return Err(PromptError::Template {
                template: ph.clone(),
                reason: "the placeholder also occurs in an item text or profile field".into(),
            });
        }
    }
    Ok(RapPrompt { text, placeholder })
}

/// `"a female"`, `"an engineer"`.
fn with_article(word: &str) -> String {
    let vowel = word
        .chars()
        .next()
        .is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} {word}", if vowel { "an" } else { "a" })
}

/// RAP's retrieved list: the first `k` entries of `ranked` (history
/// positions, most similar first, as `CosineIndex::top_k_among` returns
/// them), duplicates dropped, re-sorted into time order (ascending
/// position).
pub fn retrieved_in_time_order(ranked: &[usize], k: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(k.min(ranked.len()));
    for &p in ranked {
        if out.len() == k {
            break;
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out.sort_unstable();
    out
}

/// The position of the placeholder's token in `encoding` (an encoding of
/// `prompt.text` with byte offsets): the one token whose offsets lie
/// inside the placeholder's span.
///
/// # Errors
///
/// [`PromptError::Template`] if the prompt has no placeholder, or the
/// tokenizer splits it into several tokens or merges it with its
/// neighbours (register it as a special token or pick one the vocabulary
/// has); [`PromptError::Offsets`] for offsets outside the text.
pub fn placeholder_token(prompt: &RapPrompt, encoding: &Encoding) -> Result<usize> {
    let span = prompt
        .placeholder
        .clone()
        .ok_or_else(|| PromptError::Template {
            template: String::new(),
            reason: "the prompt has no placeholder".into(),
        })?;
    let mut found = Vec::new();
    let offsets = crate::checked_offsets(encoding, prompt.text.len())?;
    for (token, (start, end)) in offsets.into_iter().enumerate() {
        if start < span.end && end > span.start {
            found.push((token, start..end));
        }
    }
    match found.as_slice() {
        [(token, r)] if *r == span => Ok(*token),
        _ => Err(PromptError::Template {
            template: prompt.text[span].to_string(),
            reason: format!(
                "the placeholder is not exactly one token (overlapping tokens: {:?})",
                found
                    .iter()
                    .map(|(_, r)| &prompt.text[r.clone()])
                    .collect::<Vec<_>>()
            ),
        }),
    }
}
