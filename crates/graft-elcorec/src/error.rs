//! Error type of `graft-elcorec`.

/// Everything that can go wrong in the ELCoRec pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ElcorecError {
    /// Loading or splitting data failed.
    #[error(transparent)]
    Data(#[from] graft_data::DataError),
    /// Building the per-sample graphs failed.
    #[error(transparent)]
    Graph(#[from] graft_graph::GraphError),
    /// The GAT failed.
    #[error(transparent)]
    Propagate(#[from] graft_propagate::PropagateError),
    /// The language model or the sentence encoder failed.
    #[error(transparent)]
    Lm(#[from] graft_lm::LmError),
    /// Rendering a prompt failed.
    #[error(transparent)]
    Prompt(#[from] graft_prompt::PromptError),
    /// Retrieval or the embedding cache failed.
    #[error(transparent)]
    Retrieval(#[from] graft_retrieval::RetrievalError),
    /// Training machinery failed (checkpoint, run directory, optimizer).
    #[error(transparent)]
    Train(#[from] graft_train::TrainError),
    /// Metrics failed.
    #[error(transparent)]
    Metrics(#[from] graft_metrics::MetricsError),
    /// LoRA failed.
    #[error(transparent)]
    Lora(#[from] graft_lora::LoraError),
    /// libtorch failed.
    #[error(transparent)]
    Tch(#[from] tch::TchError),
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A setting or an input does not fit.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A CTR sample does not fit its dataset (an unknown user or item, a
    /// rating outside the scale, a history past the user's sequence).
    #[error("{dataset}: sample (user {user}, item {item}, position {position}): {reason}")]
    Sample {
        /// Dataset name.
        dataset: String,
        /// The sample's user (raw ID when known, else the dense one).
        user: String,
        /// The sample's target item (raw ID when known, else the dense one).
        item: String,
        /// The sample's position in the user's sequence.
        position: u32,
        /// What is wrong.
        reason: String,
    },
}

/// `Result` with [`ElcorecError`].
pub type Result<T, E = ElcorecError> = std::result::Result<T, E>;

/// Wraps an error of this crate for graft-train's loop.
pub(crate) fn task_err(e: ElcorecError) -> graft_train::TrainError {
    graft_train::TrainError::Task(Box::new(e))
}

/// Validation AUC as graft-train's metric.
pub(crate) fn valid_auc(labels: &[bool], p: &[f64]) -> graft_train::Result<f64> {
    graft_metrics::auc(labels, p).map_err(|e| task_err(e.into()))
}
