//! Error type of `graft-elmrec`.

/// Everything that can go wrong in the ELMRec pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ElmrecError {
    /// Loading or splitting data failed.
    #[error(transparent)]
    Data(#[from] graft_data::DataError),
    /// Building the interaction graph failed.
    #[error(transparent)]
    Graph(#[from] graft_graph::GraphError),
    /// Propagation failed.
    #[error(transparent)]
    Propagate(#[from] graft_propagate::PropagateError),
    /// The language model failed.
    #[error(transparent)]
    Lm(#[from] graft_lm::LmError),
    /// Rendering a prompt failed.
    #[error(transparent)]
    Prompt(#[from] graft_prompt::PromptError),
    /// Training machinery failed (checkpoint, run directory, optimizer).
    #[error(transparent)]
    Train(#[from] graft_train::TrainError),
    /// The evaluation protocol or a baseline failed.
    #[error(transparent)]
    Baseline(#[from] graft_baselines::BaselineError),
    /// Metrics failed.
    #[error(transparent)]
    Metrics(#[from] graft_metrics::MetricsError),
    /// Drawing a picture failed.
    #[error(transparent)]
    Plot(#[from] graft_plot::PlotError),
    /// libtorch failed.
    #[error(transparent)]
    Tch(#[from] tch::TchError),
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A setting is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// `Result` with [`ElmrecError`].
pub type Result<T, E = ElmrecError> = std::result::Result<T, E>;
