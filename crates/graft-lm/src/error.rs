//! Error type of `graft-lm`.

use std::path::PathBuf;

/// Everything that can go wrong in `graft-lm`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LmError {
    /// Reading a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A GGUF file is malformed: truncated, inconsistent or unsupported.
    #[error("GGUF{}: at byte {offset}: {reason}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Gguf {
        /// The file, when the bytes came from one.
        path: Option<PathBuf>,
        /// Byte offset where the problem was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A safetensors file (or a model's JSON config) is malformed.
    #[error("{}: at byte {offset}: {reason}", path.as_ref().map_or_else(|| "<bytes>".to_string(), |p| p.display().to_string()))]
    Format {
        /// The file, when the bytes came from one.
        path: Option<PathBuf>,
        /// Byte offset where the problem was found (0 for whole-file problems).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A tensor or metadata key the caller asked for is absent.
    #[error("missing {what}: {name}")]
    Missing {
        /// `"tensor"` or `"metadata key"`.
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A tokenizer cannot be built or used.
    #[error("tokenizer: {reason}")]
    Tokenizer {
        /// What went wrong.
        reason: String,
    },
    /// A value has another type than expected.
    #[error("{name}: expected {expected}, found {found}")]
    WrongType {
        /// Tensor or key name.
        name: String,
        /// The expected type.
        expected: String,
        /// The type found.
        found: String,
    },
    /// An error from the LoRA adapters.
    #[cfg(feature = "tch")]
    #[error(transparent)]
    Lora(#[from] graft_lora::LoraError),
    /// An error raised by libtorch.
    #[cfg(feature = "tch")]
    #[error(transparent)]
    Tch(#[from] tch::TchError),
}

/// `Result` with [`LmError`] as the error type.
pub type Result<T, E = LmError> = std::result::Result<T, E>;
