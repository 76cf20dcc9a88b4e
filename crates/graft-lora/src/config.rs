//! [`LoraConfig`] and the target-module name matching.

use serde::{Deserialize, Serialize};

use crate::error::{LoraError, Result};

fn default_r() -> usize {
    8
}
fn default_alpha() -> f64 {
    16.0
}
fn default_dropout() -> f64 {
    0.05
}
fn default_targets() -> Vec<String> {
    vec!["q_proj".to_owned(), "v_proj".to_owned()]
}

/// Hyper-parameters of a LoRA adapter.
///
/// Defaults follow the common PEFT recipe: `r = 8`, `alpha = 16`,
/// `dropout = 0.05`, `target_modules = ["q_proj", "v_proj"]`. It
/// deserialises from our own JSON as well as from PEFT's field names
/// (`lora_alpha`, `lora_dropout`).
///
/// # Target-module patterns
///
/// A pattern without `*` or `?` follows PEFT's list semantics: it matches a
/// module whose full name equals it or ends with `.` + pattern (so `q_proj`
/// matches `model.layers.0.self_attn.q_proj`, and `self_attn.q_proj` works
/// too, but `proj` does not match `q_proj`). A pattern with `*` (any run of
/// characters, dots included) or `?` (one character) is a glob matched
/// against the whole name, e.g. `model.layers.1.*_proj`.
///
/// ```
/// use graft_lora::LoraConfig;
///
/// let cfg = LoraConfig::default();
/// assert_eq!(cfg.scaling(), 2.0);
/// assert!(cfg.matches("model.layers.0.self_attn.q_proj"));
/// assert!(!cfg.matches("model.layers.0.self_attn.k_proj"));
/// let cfg = LoraConfig::new(4, 12.0).with_target_modules(["model.layers.1.*.up_proj"]);
/// assert!(cfg.matches("model.layers.1.mlp.up_proj"));
/// assert!(!cfg.matches("model.layers.0.mlp.up_proj"));
/// cfg.validate()?;
/// # Ok::<(), graft_lora::LoraError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank of the update `B A`.
    #[serde(default = "default_r")]
    pub r: usize,
    /// Scale numerator: the update is multiplied by `alpha / r`.
    #[serde(default = "default_alpha", alias = "lora_alpha")]
    pub alpha: f64,
    /// Dropout probability on the LoRA branch's input (training only).
    #[serde(default = "default_dropout", alias = "lora_dropout")]
    pub dropout: f64,
    /// Name patterns of the linear layers to adapt (see the type docs).
    #[serde(default = "default_targets")]
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: default_r(),
            alpha: default_alpha(),
            dropout: default_dropout(),
            target_modules: default_targets(),
        }
    }
}

impl LoraConfig {
    /// Rank `r` and `alpha`; dropout and targets keep their defaults.
    pub fn new(r: usize, alpha: f64) -> Self {
        Self {
            r,
            alpha,
            ..Self::default()
        }
    }

    /// Sets the dropout probability.
    #[must_use]
    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }

    /// Sets the target-module patterns.
    #[must_use]
    pub fn with_target_modules<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.target_modules = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// `alpha / r`, the factor on `B A`.
    pub fn scaling(&self) -> f64 {
        // r is validated to be positive; a zero rank yields inf here and is
        // rejected by `validate` before any layer is built.
        self.alpha / self.r as f64
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`LoraError::Config`] if `r` is 0, `alpha` is not finite and
    /// positive, `dropout` is not in `[0, 1)`, or `target_modules` is empty
    /// or holds an empty pattern.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: String| Err(LoraError::Config { field, reason });
        if self.r == 0 {
            return bad("r", "rank must be at least 1".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad(
                "alpha",
                format!("must be finite and > 0, got {}", self.alpha),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(
                "dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            );
        }
        if self.target_modules.is_empty() {
            return bad("target_modules", "no pattern given".into());
        }
        if self.target_modules.iter().any(String::is_empty) {
            return bad("target_modules", "empty pattern".into());
        }
        Ok(())
    }

    /// Whether the module `name` matches any of the target patterns.
    pub fn matches(&self, name: &str) -> bool {
        self.target_modules.iter().any(|p| pattern_matches(p, name))
    }

    /// Whether any target pattern is a glob (contains `*` or `?`).
    pub fn has_glob(&self) -> bool {
        self.target_modules.iter().any(|p| is_glob(p))
    }
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// Whether one target pattern matches the module `name` (see
/// [`LoraConfig`]: suffix on a `.` boundary for plain patterns, whole-name
/// glob for patterns with `*` or `?`).
///
/// ```
/// use graft_lora::pattern_matches;
///
/// assert!(pattern_matches("v_proj", "model.layers.3.self_attn.v_proj"));
/// assert!(pattern_matches("v_proj", "v_proj"));
/// assert!(!pattern_matches("proj", "model.layers.3.self_attn.v_proj"));
/// assert!(pattern_matches("*.self_attn.?_proj", "model.layers.3.self_attn.v_proj"));
/// assert!(!pattern_matches("*.mlp.*", "model.layers.3.self_attn.v_proj"));
/// ```
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if is_glob(pattern) {
        glob_matches(pattern.as_bytes(), name.as_bytes())
    } else {
        name == pattern
            || (name.len() > pattern.len()
                && name.ends_with(pattern)
                && name.as_bytes()[name.len() - pattern.len() - 1] == b'.')
    }
}

/// Iterative wildcard matching with single-star backtracking: O(|p| |s|)
/// worst case, no recursion.
fn glob_matches(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}
