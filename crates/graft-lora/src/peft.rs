//! Adapters in Hugging Face PEFT's directory format.
//!
//! A directory holds `adapter_config.json` (PEFT's `LoraConfig` fields) and
//! `adapter_model.safetensors` with, per adapted module `{name}`, the keys
//! `base_model.model.{name}.lora_A.weight` (`[r, in]`) and
//! `base_model.model.{name}.lora_B.weight` (`[out, r]`), exactly what
//! `PeftModel.save_pretrained` writes for the default adapter and
//! `PeftModel.from_pretrained` reads.
//!
//! Supported: plain LoRA (`bias = "none"`, no DoRA/rsLoRA, one rank and
//! alpha for all modules, `target_modules` as a list). Anything else is a
//! typed [`LoraError::Unsupported`] rather than a silently different model.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use tch::{Device, Kind, Tensor};

use crate::config::LoraConfig;
use crate::error::{LoraError, Result};

/// File name of the adapter weights.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// File name of the adapter configuration.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
/// Prefix of every tensor key (`PeftModel` wraps the base model twice).
pub const KEY_PREFIX: &str = "base_model.model.";

/// Which LoRA matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraWeight {
    /// `lora_A`, `[r, in]`.
    A,
    /// `lora_B`, `[out, r]`.
    B,
}

/// The safetensors key of `module`'s `A` or `B`.
///
/// ```
/// use graft_lora::peft::{lora_key, LoraWeight};
/// assert_eq!(
///     lora_key("model.layers.0.self_attn.q_proj", LoraWeight::A),
///     "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
/// );
/// ```
pub fn lora_key(module: &str, which: LoraWeight) -> String {
    let w = match which {
        LoraWeight::A => "lora_A",
        LoraWeight::B => "lora_B",
    };
    format!("{KEY_PREFIX}{module}.{w}.weight")
}

/// Splits a key into (module, which); `None` if it is not a LoRA key.
fn parse_key(key: &str) -> Option<(&str, LoraWeight)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    if let Some(m) = rest.strip_suffix(".lora_A.weight") {
        Some((m, LoraWeight::A))
    } else {
        rest.strip_suffix(".lora_B.weight")
            .map(|m| (m, LoraWeight::B))
    }
}

/// PEFT's `target_modules`: a list (suffix matching) or a regex string
/// (full match; not supported here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// Module names or suffixes.
    List(Vec<String>),
    /// A regular expression (`re.fullmatch`).
    Regex(String),
}

fn ser_alpha<S: Serializer>(alpha: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    // PEFT writes an int; keep integral values integral.
    if alpha.fract() == 0.0 && alpha.abs() < 9.0e15 {
        s.serialize_i64(*alpha as i64)
    } else {
        s.serialize_f64(*alpha)
    }
}

fn default_peft_type() -> String {
    "LORA".into()
}
fn default_bias() -> String {
    "none".into()
}
fn default_true() -> bool {
    true
}

/// The fields of PEFT's `adapter_config.json` this crate reads and
/// writes; every other field is kept in [`extra`](Self::extra).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeftAdapterConfig {
    /// Always `"LORA"` here.
    #[serde(default = "default_peft_type")]
    pub peft_type: String,
    /// E.g. `"CAUSAL_LM"`.
    #[serde(default)]
    pub task_type: Option<String>,
    /// Rank.
    pub r: usize,
    /// Alpha (scaling numerator).
    #[serde(serialize_with = "ser_alpha")]
    pub lora_alpha: f64,
    /// Dropout of the LoRA branch.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Adapted modules (`null` lets PEFT pick per architecture).
    #[serde(default)]
    pub target_modules: Option<TargetModules>,
    /// Bias training: only `"none"` is supported.
    #[serde(default = "default_bias")]
    pub bias: String,
    /// Transposed (Conv1D) weights: only `false` is supported.
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// Whether the adapter is loaded for inference only.
    #[serde(default = "default_true")]
    pub inference_mode: bool,
    /// The base model the adapter belongs to.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// rsLoRA scaling `alpha / sqrt(r)`: not supported.
    #[serde(default)]
    pub use_rslora: bool,
    /// DoRA: not supported.
    #[serde(default)]
    pub use_dora: bool,
    /// Per-module ranks: must be empty.
    #[serde(default)]
    pub rank_pattern: Map<String, Value>,
    /// Per-module alphas: must be empty.
    #[serde(default)]
    pub alpha_pattern: Map<String, Value>,
    /// Fully trained extra modules: must be null or empty.
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    /// Layer subset: must be null.
    #[serde(default)]
    pub layers_to_transform: Value,
    /// All other fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl PeftAdapterConfig {
    /// PEFT's configuration for `config`, with `target_modules` written as
    /// `targets`, for causal-LM inference.
    pub fn new(
        config: &LoraConfig,
        targets: Vec<String>,
        base_model_name_or_path: Option<&str>,
    ) -> Self {
        let mut extra = Map::new();
        extra.insert("init_lora_weights".into(), Value::Bool(true));
        extra.insert("lora_bias".into(), Value::Bool(false));
        extra.insert("revision".into(), Value::Null);
        extra.insert("layers_pattern".into(), Value::Null);
        Self {
            peft_type: default_peft_type(),
            task_type: Some("CAUSAL_LM".into()),
            r: config.r,
            lora_alpha: config.alpha,
            lora_dropout: config.dropout,
            target_modules: Some(TargetModules::List(targets)),
            bias: default_bias(),
            fan_in_fan_out: false,
            inference_mode: true,
            base_model_name_or_path: base_model_name_or_path.map(str::to_owned),
            use_rslora: false,
            use_dora: false,
            rank_pattern: Map::new(),
            alpha_pattern: Map::new(),
            modules_to_save: None,
            layers_to_transform: Value::Null,
            extra,
        }
    }

    /// The equivalent [`LoraConfig`].
    ///
    /// # Errors
    ///
    /// [`LoraError::Unsupported`] for any setting that changes the model
    /// beyond plain LoRA (see the module docs; also a non-empty
    /// `exclude_modules`, `target_parameters`, `layer_replication`,
    /// `trainable_token_indices`, `alora_invocation_tokens`, or a true
    /// `use_qalora`, `use_bdlora`, `lora_bias`);
    /// [`LoraError::Config`] if the values are out of range.
    pub fn to_lora_config(&self) -> Result<LoraConfig> {
        let unsupported =
            |field: &'static str, value: String| Err(LoraError::Unsupported { field, value });
        if self.peft_type != "LORA" {
            return unsupported("peft_type", self.peft_type.clone());
        }
        if self.bias != "none" {
            return unsupported("bias", self.bias.clone());
        }
        if self.fan_in_fan_out {
            return unsupported("fan_in_fan_out", "true".into());
        }
        if self.use_rslora {
            return unsupported("use_rslora", "true".into());
        }
        if self.use_dora {
            return unsupported("use_dora", "true".into());
        }
        if !self.rank_pattern.is_empty() {
            return unsupported(
                "rank_pattern",
                Value::Object(self.rank_pattern.clone()).to_string(),
            );
        }
        if !self.alpha_pattern.is_empty() {
            return unsupported(
                "alpha_pattern",
                Value::Object(self.alpha_pattern.clone()).to_string(),
            );
        }
        if self.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()) {
            return unsupported("modules_to_save", format!("{:?}", self.modules_to_save));
        }
        if !self.layers_to_transform.is_null() {
            return unsupported("layers_to_transform", self.layers_to_transform.to_string());
        }
        for field in [
            "exclude_modules",
            "target_parameters",
            "layer_replication",
            "trainable_token_indices",
            "alora_invocation_tokens",
            "use_qalora",
            "use_bdlora",
        ] {
            match self.extra.get(field) {
                None | Some(Value::Null | Value::Bool(false)) => {}
                Some(Value::Array(a)) if a.is_empty() => {}
                Some(Value::Object(o)) if o.is_empty() => {}
                Some(v) => return unsupported(field, v.to_string()),
            }
        }
        if let Some(v) = self.extra.get("lora_bias") {
            if v != &Value::Bool(false) {
                return unsupported("lora_bias", v.to_string());
            }
        }
        let targets = match &self.target_modules {
            Some(TargetModules::List(l)) => l.clone(),
            Some(TargetModules::Regex(s)) => {
                return unsupported("target_modules", format!("{s:?} (regex)"))
            }
            None => return unsupported("target_modules", "null".into()),
        };
        let cfg = LoraConfig {
            r: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            target_modules: targets,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// One module's LoRA matrices.
#[derive(Debug)]
pub struct LoraPair {
    /// `lora_A`, `[r, in]`.
    pub lora_a: Tensor,
    /// `lora_B`, `[out, r]`.
    pub lora_b: Tensor,
}

/// A whole adapter: configuration and matrices by module name (sorted).
#[derive(Debug)]
pub struct PeftAdapter {
    /// `adapter_config.json`.
    pub config: PeftAdapterConfig,
    /// `adapter_model.safetensors`, by module name.
    pub weights: BTreeMap<String, LoraPair>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LoraError + '_ {
    move |source| LoraError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        _ => return None,
    })
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        _ => return None,
    })
}

/// A tensor's dtype, shape and little-endian bytes (copied to the CPU).
fn tensor_bytes(key: &str, t: &Tensor) -> Result<(Dtype, Vec<usize>, Vec<u8>)> {
    let kind = t.f_kind()?;
    let dtype = dtype_of(kind).ok_or_else(|| LoraError::Tensor {
        what: key.to_owned(),
        reason: format!("cannot save kind {kind:?}"),
    })?;
    let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?;
    let shape = t
        .size()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| LoraError::Tensor {
            what: key.to_owned(),
            reason: "negative dimension".into(),
        })?;
    let numel: usize = shape.iter().product();
    let mut buf = vec![0u8; numel * kind.elt_size_in_bytes()];
    if numel > 0 {
        t.f_copy_data_u8(&mut buf, numel)?;
    }
    Ok((dtype, shape, buf))
}

/// Writes `bytes` to `path` via a temporary file in the same folder and a
/// rename, so readers never see a half-written file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `adapter` to `dir` (created if needed): the safetensors file
/// (with PEFT's `{"format": "pt"}` metadata), then the JSON, each
/// atomically.
///
/// # Errors
///
/// [`LoraError::Io`] on file errors; [`LoraError::InvalidName`] for an
/// unusable module name; [`LoraError::Tensor`] for a non-float tensor;
/// [`LoraError::Safetensors`] if serialisation fails; [`LoraError::Tch`]
/// on libtorch failures.
pub fn write_adapter(dir: &Path, adapter: &PeftAdapter) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let weights_path = dir.join(ADAPTER_WEIGHTS_FILE);
    let mut owned = Vec::with_capacity(2 * adapter.weights.len());
    for (name, pair) in &adapter.weights {
        if name.is_empty() || name.split('.').any(str::is_empty) {
            return Err(LoraError::InvalidName {
                name: name.clone(),
                reason: "empty component",
            });
        }
        for (which, t) in [(LoraWeight::A, &pair.lora_a), (LoraWeight::B, &pair.lora_b)] {
            let key = lora_key(name, which);
            let (dtype, shape, bytes) = tensor_bytes(&key, t)?;
            owned.push((key, dtype, shape, bytes));
        }
    }
    let st_err = |e: safetensors::SafeTensorError| LoraError::Safetensors {
        path: weights_path.clone(),
        reason: e.to_string(),
    };
    let mut views = Vec::with_capacity(owned.len());
    for (key, dtype, shape, bytes) in &owned {
        views.push((
            key.as_str(),
            TensorView::new(*dtype, shape.clone(), bytes).map_err(st_err)?,
        ));
    }
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    let bytes = safetensors::tensor::serialize(views, Some(metadata)).map_err(st_err)?;
    write_atomic(&weights_path, &bytes)?;
    let config_path = dir.join(ADAPTER_CONFIG_FILE);
    let mut json =
        serde_json::to_vec_pretty(&adapter.config).map_err(|source| LoraError::Json {
            path: config_path.clone(),
            source,
        })?;
    json.push(b'\n');
    write_atomic(&config_path, &json)
}

/// Reads the configuration alone.
///
/// # Errors
///
/// [`LoraError::Io`] if the file cannot be read, [`LoraError::Json`] if it
/// is not a valid configuration.
pub fn read_adapter_config(dir: &Path) -> Result<PeftAdapterConfig> {
    let path = dir.join(ADAPTER_CONFIG_FILE);
    let text = std::fs::read(&path).map_err(io_err(&path))?;
    serde_json::from_slice(&text).map_err(|source| LoraError::Json { path, source })
}

/// Reads an adapter directory (ours or Python PEFT's); tensors land on the
/// CPU in the file's dtype.
///
/// Checks that every key is a LoRA key, that each module has both `A`
/// and `B`, and that `A` is `[r, in]` and `B` is `[out, r]` for the
/// configured `r`. It does not check the configuration against this
/// crate's support ([`PeftAdapterConfig::to_lora_config`] does).
///
/// # Errors
///
/// [`LoraError::Io`] / [`LoraError::Json`] as [`read_adapter_config`];
/// [`LoraError::Safetensors`] for a corrupted file;
/// [`LoraError::UnexpectedTensor`] for a non-LoRA key;
/// [`LoraError::MissingTensor`] if a module lacks `A` or `B`;
/// [`LoraError::Shape`] for a tensor that is not 2-D with rank `r`;
/// [`LoraError::Tensor`] for a non-float dtype.
pub fn read_adapter(dir: &Path) -> Result<PeftAdapter> {
    let config = read_adapter_config(dir)?;
    let path = dir.join(ADAPTER_WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| LoraError::Safetensors {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let r = i64::try_from(config.r).map_err(|_| LoraError::Config {
        field: "r",
        reason: format!("{} does not fit in i64", config.r),
    })?;
    let mut a: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut b: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut names: Vec<&str> = st.names();
    names.sort_unstable();
    for key in names {
        let unexpected = || LoraError::UnexpectedTensor {
            path: path.clone(),
            key: key.to_owned(),
        };
        let (module, which) = parse_key(key).ok_or_else(unexpected)?;
        let view = st.tensor(key).map_err(|e| LoraError::Safetensors {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let kind = kind_of(view.dtype()).ok_or_else(|| LoraError::Tensor {
            what: format!("{}: {key}", path.display()),
            reason: format!("unsupported dtype {:?}", view.dtype()),
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let ok = match (which, shape.as_slice()) {
            (LoraWeight::A, [rr, _]) | (LoraWeight::B, [_, rr]) => *rr == r,
            _ => false,
        };
        if !ok {
            let expected = match which {
                LoraWeight::A => vec![r, shape.get(1).copied().unwrap_or(-1)],
                LoraWeight::B => vec![shape.first().copied().unwrap_or(-1), r],
            };
            return Err(LoraError::Shape {
                what: format!("{}: {key}", path.display()),
                expected,
                got: shape,
            });
        }
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)?;
        let map = match which {
            LoraWeight::A => &mut a,
            LoraWeight::B => &mut b,
        };
        map.insert(module.to_owned(), t);
    }
    let mut weights = BTreeMap::new();
    for (module, lora_a) in a {
        let Some(lora_b) = b.remove(&module) else {
            return Err(LoraError::MissingTensor {
                path,
                key: lora_key(&module, LoraWeight::B),
            });
        };
        weights.insert(module, LoraPair { lora_a, lora_b });
    }
    if let Some(module) = b.keys().next() {
        return Err(LoraError::MissingTensor {
            path,
            key: lora_key(module, LoraWeight::A),
        });
    }
    Ok(PeftAdapter { config, weights })
}

/// The two file paths of an adapter directory: (config, weights).
pub fn adapter_files(dir: &Path) -> (PathBuf, PathBuf) {
    (
        dir.join(ADAPTER_CONFIG_FILE),
        dir.join(ADAPTER_WEIGHTS_FILE),
    )
}
