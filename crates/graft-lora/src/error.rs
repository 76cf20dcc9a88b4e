//! Error type of `graft-lora`.

use std::path::PathBuf;

/// Everything that can go wrong in `graft-lora`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoraError {
    /// A configuration value is out of its domain.
    #[error("invalid LoRA configuration: {field}: {reason}")]
    Config {
        /// The configuration field (e.g. `"r"`).
        field: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// A module name cannot be used (empty, or with an empty `.` component).
    #[error("invalid module name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same module or tensor name was given twice.
    #[error("duplicate name {name:?}")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
    /// No base layer matched any of the target-module patterns.
    #[error("no module matches target_modules {patterns:?}")]
    NoTargetModules {
        /// The configured patterns.
        patterns: Vec<String>,
    },
    /// A module name that the adapter registry does not hold.
    #[error("unknown LoRA module {name:?}")]
    UnknownModule {
        /// The requested name.
        name: String,
    },
    /// A tensor has the wrong shape.
    #[error("{what}: expected shape {expected:?}, got {got:?}")]
    Shape {
        /// Which tensor (a name or file key).
        what: String,
        /// The required shape.
        expected: Vec<i64>,
        /// The shape found.
        got: Vec<i64>,
    },
    /// A tensor has an unsupported element type or device.
    #[error("{what}: {reason}")]
    Tensor {
        /// Which tensor.
        what: String,
        /// What is wrong (dtype, device).
        reason: String,
    },
    /// An adapter file lacks a tensor the model needs.
    #[error("{}: missing tensor {key:?}", path.display())]
    MissingTensor {
        /// The adapter file.
        path: PathBuf,
        /// The missing safetensors key.
        key: String,
    },
    /// An adapter file holds a tensor the model has no place for (an
    /// unknown key, or a LoRA module the model does not adapt).
    #[error("{}: unexpected tensor {key:?}", path.display())]
    UnexpectedTensor {
        /// The adapter file.
        path: PathBuf,
        /// The unexpected safetensors key.
        key: String,
    },
    /// An adapter uses a PEFT feature this crate does not implement
    /// (DoRA, rsLoRA, per-module ranks, regex target modules, biases, ...).
    #[error("unsupported adapter setting {field} = {value}")]
    Unsupported {
        /// The `adapter_config.json` field.
        field: &'static str,
        /// Its value, as JSON.
        value: String,
    },
    /// A saved adapter's configuration disagrees with the model's.
    #[error("adapter {field} = {found} does not match the model's {expected}")]
    ConfigMismatch {
        /// The field (`"r"`, `"lora_alpha"`).
        field: &'static str,
        /// The model's value.
        expected: String,
        /// The adapter's value.
        found: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `adapter_config.json` is not valid JSON or lacks required fields.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error (with line and column).
        source: serde_json::Error,
    },
    /// `adapter_model.safetensors` is corrupted or cannot be serialised.
    #[error("{}: {reason}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the safetensors parser reported.
        reason: String,
    },
    /// An error raised by libtorch.
    #[error(transparent)]
    Tch(#[from] tch::TchError),
}

/// `Result` with [`LoraError`] as the error type.
pub type Result<T, E = LoraError> = std::result::Result<T, E>;
