//! The rows an ELCoRec experiment can have, by name: what `--models`
//! parses into, so a program matches on a type instead of strings.

use std::fmt;
use std::str::FromStr;

use crate::config::{GatExpertConfig, KeptWeights, LlmVariant};

/// One row of an ELCoRec experiment.
///
/// ```
/// use graft_elcorec::{CtrModel, LlmVariant};
///
/// let models: Vec<CtrModel> = ["lr", "gat-self", "no-rap"]
///     .iter()
///     .map(|s| s.parse())
///     .collect::<Result<_, _>>()?;
/// assert_eq!(models[2], CtrModel::Llm(LlmVariant::NoRap));
/// assert_eq!(models[1].to_string(), "gat-self");
/// assert!("gat-deep".parse::<CtrModel>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum CtrModel {
    /// Logistic regression over the sample's fields.
    Lr,
    /// A factorisation machine over the same fields (8 factors).
    Fm,
    /// DIN: target attention over the history.
    Din,
    /// A GAT expert: the official design or named options beyond it.
    Gat(GatExpertConfig),
    /// The LLM stage, one variant.
    Llm(LlmVariant),
}

impl CtrModel {
    /// Every name `from_str` accepts, for messages.
    pub const NAMES: &'static str = "lr, fm, din, gat[-self][-scaled][-elu][-no-user-id], \
                                     elcorec, no-gat-token, no-rap, retrieval-only";

    /// Command-line, row and directory name.
    pub fn name(&self) -> String {
        match self {
            CtrModel::Lr => "lr".into(),
            CtrModel::Fm => "fm".into(),
            CtrModel::Din => "din".into(),
            CtrModel::Gat(cfg) => cfg.name(),
            CtrModel::Llm(v) => v.name().into(),
        }
    }
}

impl fmt::Display for CtrModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for CtrModel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lr" => Ok(CtrModel::Lr),
            "fm" => Ok(CtrModel::Fm),
            "din" => Ok(CtrModel::Din),
            _ => GatExpertConfig::from_name(s)
                .map(CtrModel::Gat)
                .or_else(|| LlmVariant::from_name(s).map(CtrModel::Llm))
                .ok_or_else(|| format!("unknown model {s:?} (expected {})", Self::NAMES)),
        }
    }
}

impl FromStr for KeptWeights {
    type Err = String;

    /// `last` or `best` (best validation).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "last" => Ok(KeptWeights::Last),
            "best" => Ok(KeptWeights::BestValidation),
            _ => Err(format!(
                "unknown kept weights {s:?} (expected last or best)"
            )),
        }
    }
}
