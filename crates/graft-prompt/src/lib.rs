//! Prompts for graft's LLM recommenders.
//!
//! * [`Template`] renders P5/POD-style prompts for the **direct** task (a
//!   user and a candidate list) and the **sequential** task (a user and
//!   the recent history) in which users and items appear as ID words
//!   `user_12`, `item_345`; [`Template::official`] holds the official
//!   POD/ELMRec templates and [`PromptStyle`] says which set a model is
//!   trained and evaluated with. Rendering records the byte span of every ID
//!   mention as it writes the text ([`Prompt::mentions`]), so nothing is
//!   recovered later by searching the string.
//! * [`whole_word_ids`] maps every token of a tokenizer's encoding of the
//!   prompt to the mention it belongs to, using the tokenizer's byte
//!   offsets: the ids ELMRec's whole-word embeddings are looked up with,
//!   either **graph-aware** (the user's or item's row of the propagated
//!   table) or **incremental** (the mention's position in the prompt).
//!   Works for any `tokenizers::Tokenizer` (the T5 SentencePiece vocabulary
//!   that splits `item_345,` into `▁item`, `_`, `34`, `5,`, and SmolLM2's
//!   byte-level BPE that splits every digit).
//! * [`rap`]: ELCoRec's RAP prompt (profile, retrieved items in time
//!   order, recent items, a soft-prompt placeholder token, the yes/no
//!   question) and the placeholder's token position from offsets.
//!
//! ```
//! use graft_prompt::{Template, Task};
//!
//! let t = Template::official(Task::Sequential).remove(0);
//! let p = t.render(12, &[345, 7], &[])?;
//! assert_eq!(
//!     p.text,
//!     "Given the following purchase history of user_12: item_345 item_7, \
//!      predict next possible item to be purchased by the user."
//! );
//! assert_eq!(&p.text[p.mentions[0].span.clone()], "user_12");
//! assert_eq!(&p.text[p.mentions[2].span.clone()], "item_7");
//! # Ok::<(), graft_prompt::PromptError>(())
//! ```

pub mod rap;

use std::ops::Range;

use serde::{Deserialize, Serialize};
use tokenizers::Encoding;

/// Errors of `graft-prompt`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// A template lacks a placeholder its task needs, or has an unknown one.
    #[error("template {template:?}: {reason}")]
    Template {
        /// The template text.
        template: String,
        /// What is wrong.
        reason: String,
    },
    /// An encoding's offsets do not fit the prompt text.
    #[error("token {token} has offsets {start}..{end} outside the {len}-byte prompt")]
    Offsets {
        /// Token position.
        token: usize,
        /// Start byte.
        start: usize,
        /// End byte.
        end: usize,
        /// Prompt length in bytes.
        len: usize,
    },
}

/// `Result` with [`PromptError`].
pub type Result<T, E = PromptError> = std::result::Result<T, E>;

/// The two ELMRec tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Task {
    /// Pick the next item from a candidate list.
    Direct,
    /// Predict the next item from the history.
    Sequential,
}

/// Whether a mention names a user or an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IdKind {
    /// `user_{id}`.
    User,
    /// `item_{id}`.
    Item,
}

impl IdKind {
    /// `"user"` or `"item"`.
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::User => "user",
            IdKind::Item => "item",
        }
    }
}

/// One ID word in a rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mention {
    /// User or item.
    pub kind: IdKind,
    /// The dense id.
    pub id: u32,
    /// Byte range of `user_{id}` / `item_{id}` in [`Prompt::text`].
    pub span: Range<usize>,
}

/// A rendered prompt and its ID mentions, in text order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// The prompt text.
    pub text: String,
    /// The ID words, left to right.
    pub mentions: Vec<Mention>,
}

/// A P5/POD-style prompt template with the placeholders `{user}`,
/// `{history}` (sequential task) and `{candidates}` (direct task); list
/// items are joined with [`separator`](Self::separator): `" "` in the
/// official POD/ELMRec code (`item_1 item_2 item_3`), `", "` in graft's
/// first prompts (`item_1, item_2, item_3`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// The task.
    pub task: Task,
    /// Text with placeholders.
    pub text: String,
    /// What is written between two list items (`", "` when absent from a
    /// serialized template, graft's first format).
    #[serde(default = "comma")]
    pub separator: String,
}

fn comma() -> String {
    ", ".to_string()
}

/// The official code's sequential templates (POD `templates.py`, reused by
/// ELMRec's `model/templates.py`), `user_{}` written `{user}` and `item_{}`
/// written `{history}`; the last one is the short evaluation template.
const OFFICIAL_SEQUENTIAL: [&str; 8] = [
    "Given the following purchase history of {user}: {history}, predict next possible item to be purchased by the user.",
    "I find the purchase history list of {user}: {history}. I wonder what is the next item to recommend to the user. Can you help me decide?",
    "Here is the purchase history list of {user}: {history}. Try to recommend next item to the user.",
    "Given the following purchase history of {user}: {history}, predict next possible item for the user.",
    "Based on the purchase history of {user}: {history}, can you decide the next item likely to be purchased by the user?",
    "Here is the purchase history of {user}: {history}. What to recommend next for the user?",
    "According to the purchase history of {user}: {history}, can you recommend the next possible item to the user?",
    "{user} {history}",
];

/// The official code's direct (top-N) templates; the last one is the
/// short evaluation template.
const OFFICIAL_DIRECT: [&str; 5] = [
    "Which item of the following to recommend for {user}? {candidates}",
    "Choose the best item from the candidates to recommend for {user}? {candidates}",
    "Pick the most suitable item from the following list and recommend to {user}: {candidates}",
    "We want to make recommendation for {user}. Select the best item from these candidates: {candidates}",
    "{user} {candidates}",
];

impl Template {
    /// The POD (Li et al., 2023) phrasing graft's first prompts used, lists
    /// joined by `", "` ([`PromptStyle::PodComma`]).
    pub fn pod(task: Task) -> Self {
        let text = match task {
            Task::Sequential => {
                "{user} has purchased items {history}, predict the next possible item to be bought by the user?"
            }
            Task::Direct => "Pick the most suitable item from the following list and recommend to {user}: {candidates}",
        };
        Self {
            task,
            text: text.to_string(),
            separator: comma(),
        }
    }

    /// The official POD/ELMRec training templates of `task` (8 sequential,
    /// 5 direct; the code draws one per example with `random.choice`),
    /// lists joined by a space as its `' item_'.join(...)` does.
    pub fn official(task: Task) -> Vec<Self> {
        let texts: &[&str] = match task {
            Task::Sequential => &OFFICIAL_SEQUENTIAL,
            Task::Direct => &OFFICIAL_DIRECT,
        };
        texts
            .iter()
            .map(|t| Self {
                task,
                text: (*t).to_string(),
                separator: " ".into(),
            })
            .collect()
    }

    /// The template the official code validates and tests with:
    /// `user_{} item_{}`, i.e. `user_5 item_12 item_7`.
    pub fn official_eval(task: Task) -> Self {
        Self {
            task,
            text: match task {
                Task::Sequential => "{user} {history}",
                Task::Direct => "{user} {candidates}",
            }
            .to_string(),
            separator: " ".into(),
        }
    }

    /// The same template with list items joined by `separator`.
    pub fn with_separator(mut self, separator: impl Into<String>) -> Self {
        self.separator = separator.into();
        self
    }

    /// A custom template.
    ///
    /// # Errors
    ///
    /// [`PromptError::Template`] if `{user}` is missing, the task's list
    /// placeholder (`{history}` or `{candidates}`) is missing, or another
    /// `{...}` placeholder appears.
    pub fn new(task: Task, text: impl Into<String>) -> Result<Self> {
        let t = Self {
            task,
            text: text.into(),
            separator: comma(),
        };
        let err = |reason: &str| PromptError::Template {
            template: t.text.clone(),
            reason: reason.to_string(),
        };
        let list = match task {
            Task::Sequential => "{history}",
            Task::Direct => "{candidates}",
        };
        if !t.text.contains("{user}") || !t.text.contains(list) {
            return Err(err(&format!("needs {{user}} and {list}")));
        }
        let mut rest = t.text.as_str();
        while let Some(i) = rest.find('{') {
            let tail = &rest[i..];
            let known = ["{user}", "{history}", "{candidates}"];
            match known.iter().find(|k| tail.starts_with(**k)) {
                Some(k) => rest = &tail[k.len()..],
                None => {
                    return Err(err(
                        "unknown placeholder (known: {user}, {history}, {candidates})",
                    ))
                }
            }
        }
        Ok(t)
    }

    /// Renders the prompt for `user`, its `history` (oldest first) and the
    /// `candidates`; the placeholder the task does not use may be empty.
    ///
    /// # Errors
    ///
    /// [`PromptError::Template`] for an unknown placeholder.
    pub fn render(&self, user: u32, history: &[u32], candidates: &[u32]) -> Result<Prompt> {
        let mut text =
            String::with_capacity(self.text.len() + 8 * (history.len() + candidates.len()));
        let mut mentions = Vec::new();
        let mut push_id = |text: &mut String, kind: IdKind, id: u32| {
            let start = text.len();
            text.push_str(kind.prefix());
            text.push('_');
            text.push_str(&id.to_string());
            mentions.push(Mention {
                kind,
                id,
                span: start..text.len(),
            });
        };
        let mut rest = self.text.as_str();
        while let Some(i) = rest.find('{') {
            text.push_str(&rest[..i]);
            let tail = &rest[i..];
            let (len, items): (usize, Option<&[u32]>) = if tail.starts_with("{user}") {
                push_id(&mut text, IdKind::User, user);
                (6, None)
            } else if tail.starts_with("{history}") {
                (9, Some(history))
            } else if tail.starts_with("{candidates}") {
                (12, Some(candidates))
            } else {
                return Err(PromptError::Template {
                    template: self.text.clone(),
                    reason: "unknown placeholder".into(),
                });
            };
            if let Some(items) = items {
                for (k, &it) in items.iter().enumerate() {
                    if k > 0 {
                        text.push_str(&self.separator);
                    }
                    push_id(&mut text, IdKind::Item, it);
                }
            }
            rest = &tail[len..];
        }
        text.push_str(rest);
        Ok(Prompt { text, mentions })
    }
}

/// Which prompts a recommender is trained and evaluated with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptStyle {
    /// As the official POD/ELMRec code: every training example gets one of
    /// the task's [`Template::official`] templates at random, validation
    /// and test use [`Template::official_eval`]; lists joined by spaces.
    #[default]
    Official,
    /// graft's first prompts: one fixed POD phrasing per task
    /// ([`Template::pod`]) everywhere, lists joined by `", "` (T5 then
    /// glues the comma to the last digit piece of most IDs).
    PodComma,
}

impl PromptStyle {
    /// The training templates of `task` (one per example, drawn uniformly).
    pub fn training(self, task: Task) -> Vec<Template> {
        match self {
            PromptStyle::Official => Template::official(task),
            PromptStyle::PodComma => vec![Template::pod(task)],
        }
    }

    /// The validation and test template of `task`.
    pub fn evaluation(self, task: Task) -> Template {
        match self {
            PromptStyle::Official => Template::official_eval(task),
            PromptStyle::PodComma => Template::pod(task),
        }
    }

    /// `"official"` or `"pod-comma"`.
    pub fn name(self) -> &'static str {
        match self {
            PromptStyle::Official => "official",
            PromptStyle::PodComma => "pod-comma",
        }
    }
}

impl std::str::FromStr for PromptStyle {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "official" => Ok(PromptStyle::Official),
            "pod-comma" => Ok(PromptStyle::PodComma),
            _ => Err(format!("unknown prompt style {s:?} (official, pod-comma)")),
        }
    }
}

/// How mentions become whole-word ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WholeWordMode {
    /// ELMRec's graph-aware ids: `1 + u` for user `u`, `1 + n_users + i`
    /// for item `i` (row 0 = no ID), the rows of the propagated table with
    /// a padding row in front.
    Graph {
        /// Number of users (items follow them).
        n_users: u32,
    },
    /// ELMRec's incremental ids: the `k`-th mention (1-based) gets `k`,
    /// preserving order; 0 = no ID.
    Incremental,
}

/// The whole-word id of every token of `encoding` (an encoding of
/// `prompt.text`, with byte offsets as the `tokenizers` crate reports them):
/// a token whose byte range overlaps a mention's span gets that mention's
/// id (including a token that straddles the span's edge, such as T5's
/// `5,` in `item_345,`); all others (text, special tokens with empty
/// offsets) get 0. Tokens must come in text order, as tokenizers emit them.
///
/// # Errors
///
/// [`PromptError::Offsets`] if a token's offsets fall outside the text.
///
/// # Complexity
///
/// `O(tokens + mentions)`: both are in text order.
pub fn whole_word_ids(
    prompt: &Prompt,
    encoding: &Encoding,
    mode: WholeWordMode,
) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(encoding.len());
    let mut m = 0;
    for (start, end) in checked_offsets(encoding, prompt.text.len())? {
        if start == end {
            out.push(0);
            continue;
        }
        // Skip mentions that end before this token starts.
        while m < prompt.mentions.len() && prompt.mentions[m].span.end <= start {
            m += 1;
        }
        let id = match prompt.mentions.get(m) {
            Some(mention) if mention.span.start < end => match mode {
                WholeWordMode::Graph { n_users } => match mention.kind {
                    IdKind::User => 1 + mention.id,
                    IdKind::Item => 1 + n_users + mention.id,
                },
                WholeWordMode::Incremental => 1 + m as u32,
            },
            _ => 0,
        };
        out.push(id);
    }
    Ok(out)
}

/// The byte offsets of `encoding`'s tokens, each checked to lie inside a
/// `len`-byte text.
///
/// # Errors
///
/// [`PromptError::Offsets`] for the first token outside the text.
pub(crate) fn checked_offsets(encoding: &Encoding, len: usize) -> Result<Vec<(usize, usize)>> {
    encoding
        .get_offsets()
        .iter()
        .enumerate()
        .map(|(token, &(start, end))| {
            if start > end || end > len {
                Err(PromptError::Offsets {
                    token,
                    start,
                    end,
                    len,
                })
            } else {
                Ok((start, end))
            }
        })
        .collect()
}
