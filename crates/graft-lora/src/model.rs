//! [`LoraModel`]: LoRA layers for every base linear whose name matches the
//! configuration, in one var store, and the [`TrainableReport`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use tch::{nn, Tensor};

use crate::config::LoraConfig;
use crate::error::{LoraError, Result};
use crate::linear::LoraLinear;
use crate::peft::{self, LoraPair, PeftAdapter, PeftAdapterConfig};

/// A base linear layer: weight `[out, in]` and optional bias `[out]`.
#[derive(Debug)]
pub struct BaseLinear {
    /// Weight, PyTorch layout `[out, in]`.
    pub weight: Tensor,
    /// Bias `[out]`.
    pub bias: Option<Tensor>,
}

impl BaseLinear {
    /// A layer from its weight and optional bias.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    fn numel(&self) -> i64 {
        numel(&self.weight) + self.bias.as_ref().map_or(0, numel)
    }
}

impl From<Tensor> for BaseLinear {
    fn from(weight: Tensor) -> Self {
        Self { weight, bias: None }
    }
}

fn numel(t: &Tensor) -> i64 {
    t.size().iter().product()
}

/// Trainable versus all parameters, printed like PEFT's
/// `print_trainable_parameters`.
///
/// ```
/// use graft_lora::TrainableReport;
///
/// let r = TrainableReport { trainable: 1_024, total: 4_096 };
/// assert_eq!(r.percent(), 25.0);
/// assert_eq!(
///     r.to_string(),
///     "trainable params: 1,024 || all params: 4,096 || trainable%: 25.0000"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainableReport {
    /// Trainable parameters (the LoRA `A` and `B` matrices).
    pub trainable: i64,
    /// All parameters: frozen base plus trainable.
    pub total: i64,
}

impl TrainableReport {
    /// `100 * trainable / total` (0 for an empty model).
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.trainable as f64 / self.total as f64
        }
    }

    /// Adds `frozen` parameters the registry does not see (embeddings,
    /// norms, ...) to the total.
    #[must_use]
    pub fn with_frozen(self, frozen: i64) -> Self {
        Self {
            trainable: self.trainable,
            total: self.total + frozen,
        }
    }
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for TrainableReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trainable params: {} || all params: {} || trainable%: {:.4}",
            thousands(self.trainable),
            thousands(self.total),
            self.percent()
        )
    }
}

/// LoRA layers for the base linears whose names match a [`LoraConfig`],
/// keyed by Hugging Face module names (`model.layers.0.self_attn.q_proj`),
/// with their `A`/`B` variables in one var store (paths
/// `{name}.lora_A.weight`, `{name}.lora_B.weight`; stable, sorted names).
///
/// The base weights are frozen (aliased without gradient); only `A` and
/// `B` train. Adapters save to and load from PEFT's directory format (see
/// [`crate::peft`]).
///
/// ```
/// use graft_lora::{LoraConfig, LoraModel};
/// use tch::{nn, Device, Kind, Tensor};
///
/// let opts = (Kind::Float, Device::Cpu);
/// let base = [
///     ("model.layers.0.self_attn.q_proj", Tensor::randn([8, 8], opts)),
///     ("model.layers.0.self_attn.k_proj", Tensor::randn([4, 8], opts)),
///     ("model.layers.0.self_attn.v_proj", Tensor::randn([4, 8], opts)),
/// ];
/// let vs = nn::VarStore::new(Device::Cpu);
/// let lora = LoraModel::new(&vs.root(), &LoraConfig::new(2, 4.0), base)?;
/// assert_eq!(lora.names().collect::<Vec<_>>(),
///            ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"]);
/// let report = lora.report();
/// assert_eq!((report.trainable, report.total), (2 * (8 + 8) + 2 * (8 + 4), 128 + 56));
/// let y = lora.forward_t("model.layers.0.self_attn.q_proj", &Tensor::ones([3, 8], opts), true)?;
/// assert_eq!(y.size(), [3, 8]);
///
/// let dir = tempfile::tempdir().map_err(|e| graft_lora::LoraError::Io { path: "tmp".into(), source: e })?;
/// lora.save_pretrained(dir.path(), Some("tiny-llama"))?;
/// let adapter = graft_lora::peft::read_adapter(dir.path())?;
/// assert_eq!(adapter.weights.len(), 2);
/// # Ok::<(), graft_lora::LoraError>(())
/// ```
#[derive(Debug)]
pub struct LoraModel {
    config: LoraConfig,
    layers: BTreeMap<String, LoraLinear>,
    frozen_params: i64,
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(LoraError::InvalidName {
            name: name.to_owned(),
            reason: "empty",
        });
    }
    if name.split('.').any(str::is_empty) {
        return Err(LoraError::InvalidName {
            name: name.to_owned(),
            reason: "empty component between dots",
        });
    }
    Ok(())
}

fn module_path<'a>(root: &nn::Path<'a>, name: &str) -> nn::Path<'a> {
    name.split('.').fold(root.clone(), |p, c| p.sub(c))
}

impl LoraModel {
    /// Builds a [`LoraLinear`] under `path` for every base layer whose name
    /// matches `config`; the others only count towards the frozen total of
    /// the [`report`](Self::report).
    ///
    /// # Errors
    ///
    /// [`LoraError::Config`] for an invalid configuration,
    /// [`LoraError::InvalidName`] / [`LoraError::Duplicate`] for bad or
    /// repeated names, [`LoraError::NoTargetModules`] if nothing matches,
    /// and the errors of [`LoraLinear::new`].
    pub fn new<I, S, B>(path: &nn::Path<'_>, config: &LoraConfig, base: I) -> Result<Self>
    where
        I: IntoIterator<Item = (S, B)>,
        S: Into<String>,
        B: Into<BaseLinear>,
    {
        Self::build(path, config, base, 0)
    }

    /// Like [`new`](Self::new) from a state dict (`name -> tensor`, e.g.
    /// `VarStore::variables()` of the base model or a safetensors
    /// checkpoint): every 2-D `{module}.weight` is a candidate linear (with
    /// `{module}.bias` if present, 1-D); all other tensors count as frozen
    /// parameters.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn from_state_dict<I, S>(
        path: &nn::Path<'_>,
        config: &LoraConfig,
        tensors: I,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = (S, Tensor)>,
        S: Into<String>,
    {
        let mut all = BTreeMap::new();
        for (name, t) in tensors {
            let name = name.into();
            if all.contains_key(&name) {
                return Err(LoraError::Duplicate { name });
            }
            all.insert(name, t);
        }
        let modules: Vec<String> = all
            .iter()
            .filter(|(_, t)| t.dim() == 2)
            .filter_map(|(k, _)| k.strip_suffix(".weight").map(str::to_owned))
            .collect();
        let mut linears = Vec::with_capacity(modules.len());
        for m in modules {
            let Some(weight) = all.remove(&format!("{m}.weight")) else {
                continue;
            };
            let bias_key = format!("{m}.bias");
            let bias = match all.get(&bias_key) {
                Some(b) if b.dim() == 1 => all.remove(&bias_key),
                _ => None,
            };
            linears.push((m, BaseLinear { weight, bias }));
        }
        let other: i64 = all.values().map(numel).sum();
        Self::build(path, config, linears, other)
    }

    /// Reads a PEFT adapter directory (`adapter_config.json` +
    /// `adapter_model.safetensors`), builds the model for its configuration
    /// and loads its weights.
    ///
    /// # Errors
    ///
    /// As [`peft::read_adapter`], [`PeftAdapterConfig::to_lora_config`],
    /// [`new`](Self::new) and [`load_adapter`](Self::load_adapter).
    pub fn from_pretrained<I, S, B>(path: &nn::Path<'_>, base: I, dir: &Path) -> Result<Self>
    where
        I: IntoIterator<Item = (S, B)>,
        S: Into<String>,
        B: Into<BaseLinear>,
    {
        let adapter = peft::read_adapter(dir)?;
        let config = adapter.config.to_lora_config()?;
        let mut model = Self::new(path, &config, base)?;
        model.set_adapter(&adapter, &dir.join(peft::ADAPTER_WEIGHTS_FILE))?;
        Ok(model)
    }

    fn build<I, S, B>(path: &nn::Path<'_>, config: &LoraConfig, base: I, other: i64) -> Result<Self>
    where
        I: IntoIterator<Item = (S, B)>,
        S: Into<String>,
        B: Into<BaseLinear>,
    {
        config.validate()?;
        let mut sorted = BTreeMap::new();
        for (name, b) in base {
            let name = name.into();
            check_name(&name)?;
            if sorted.contains_key(&name) {
                return Err(LoraError::Duplicate { name });
            }
            sorted.insert(name, b.into());
        }
        let mut frozen_params = other;
        let mut layers = BTreeMap::new();
        for (name, b) in sorted {
            frozen_params += b.numel();
            if config.matches(&name) {
                let layer = LoraLinear::new(
                    &module_path(path, &name),
                    &b.weight,
                    b.bias.as_ref(),
                    config,
                )?;
                layers.insert(name, layer);
            }
        }
        if layers.is_empty() {
            return Err(LoraError::NoTargetModules {
                patterns: config.target_modules.clone(),
            });
        }
        Ok(Self {
            config: config.clone(),
            layers,
            frozen_params,
        })
    }

    /// The configuration the layers were built with.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// The LoRA layer for module `name`.
    pub fn get(&self, name: &str) -> Option<&LoraLinear> {
        self.layers.get(name)
    }

    /// The LoRA layer for module `name`, mutably (to merge it alone).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut LoraLinear> {
        self.layers.get_mut(name)
    }

    /// Adapted module names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.layers.keys().map(String::as_str)
    }

    /// `(name, layer)` pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &LoraLinear)> {
        self.layers.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of adapted layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether no layer is adapted (never true for a built model).
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// [`LoraLinear::f_forward_t`] of module `name`.
    ///
    /// # Errors
    ///
    /// [`LoraError::UnknownModule`] if `name` is not adapted; the errors of
    /// [`LoraLinear::f_forward_t`].
    pub fn forward_t(&self, name: &str, x: &Tensor, train: bool) -> Result<Tensor> {
        self.layers
            .get(name)
            .ok_or_else(|| LoraError::UnknownModule {
                name: name.to_owned(),
            })?
            .f_forward_t(x, train)
    }

    /// Merges every layer (already merged ones are left alone).
    ///
    /// # Errors
    ///
    /// [`LoraError::Tch`] on libtorch failures.
    pub fn merge_all(&mut self) -> Result<()> {
        for layer in self.layers.values_mut() {
            layer.merge()?;
        }
        Ok(())
    }

    /// Unmerges every merged layer.
    ///
    /// # Errors
    ///
    /// [`LoraError::Tch`] on libtorch failures.
    pub fn unmerge_all(&mut self) -> Result<()> {
        for layer in self.layers.values_mut() {
            layer.unmerge()?;
        }
        Ok(())
    }

    /// Whether every layer is merged.
    pub fn is_merged(&self) -> bool {
        self.layers.values().all(LoraLinear::is_merged)
    }

    /// Trainable (LoRA) and all (base given to the constructor + LoRA)
    /// parameters.
    pub fn report(&self) -> TrainableReport {
        let trainable: i64 = self.layers.values().map(LoraLinear::trainable_params).sum();
        TrainableReport {
            trainable,
            total: self.frozen_params + trainable,
        }
    }

    /// The adapter in PEFT form: configuration plus `A`/`B` per module
    /// (aliases of the variables, not copies).
    ///
    /// `target_modules` is written as configured when no pattern is a glob
    /// (PEFT's suffix semantics are ours); with a glob, as the sorted full
    /// names of the adapted modules, which PEFT matches exactly.
    pub fn to_peft(&self, base_model_name_or_path: Option<&str>) -> PeftAdapter {
        let targets = if self.config.has_glob() {
            self.layers.keys().cloned().collect()
        } else {
            self.config.target_modules.clone()
        };
        let config = PeftAdapterConfig::new(&self.config, targets, base_model_name_or_path);
        let weights = self
            .layers
            .iter()
            .map(|(k, l)| {
                (
                    k.clone(),
                    LoraPair {
                        lora_a: l.lora_a().shallow_clone(),
                        lora_b: l.lora_b().shallow_clone(),
                    },
                )
            })
            .collect();
        PeftAdapter { config, weights }
    }

    /// Saves the adapter to `dir` in PEFT's format
    /// (`adapter_config.json`, `adapter_model.safetensors`), atomically
    /// per file. `Python: PeftModel.from_pretrained(model, dir)` loads it.
    ///
    /// # Errors
    ///
    /// As [`peft::write_adapter`].
    pub fn save_pretrained(&self, dir: &Path, base_model_name_or_path: Option<&str>) -> Result<()> {
        peft::write_adapter(dir, &self.to_peft(base_model_name_or_path))
    }

    /// Loads `A` and `B` of every layer from a PEFT adapter directory
    /// (ours or one saved by Python PEFT). Merged layers are unmerged,
    /// updated and merged again. The adapter's dropout is ignored (a
    /// training setting); its rank and alpha must equal the model's.
    ///
    /// # Errors
    ///
    /// As [`peft::read_adapter`] and
    /// [`PeftAdapterConfig::to_lora_config`]; [`LoraError::ConfigMismatch`]
    /// for a different `r` or `lora_alpha`; [`LoraError::MissingTensor`] /
    /// [`LoraError::UnexpectedTensor`] if the adapted modules differ;
    /// [`LoraError::Shape`] for mis-shaped tensors. On error the model is
    /// unchanged.
    pub fn load_adapter(&mut self, dir: &Path) -> Result<()> {
        let adapter = peft::read_adapter(dir)?;
        self.set_adapter(&adapter, &dir.join(peft::ADAPTER_WEIGHTS_FILE))
    }

    fn set_adapter(&mut self, adapter: &PeftAdapter, file: &Path) -> Result<()> {
        let cfg = adapter.config.to_lora_config()?;
        if cfg.r != self.config.r {
            return Err(LoraError::ConfigMismatch {
                field: "r",
                expected: self.config.r.to_string(),
                found: cfg.r.to_string(),
            });
        }
        if cfg.alpha != self.config.alpha {
            return Err(LoraError::ConfigMismatch {
                field: "lora_alpha",
                expected: self.config.alpha.to_string(),
                found: cfg.alpha.to_string(),
            });
        }
        if let Some(name) = adapter
            .weights
            .keys()
            .find(|k| !self.layers.contains_key(*k))
        {
            return Err(LoraError::UnexpectedTensor {
                path: file.to_path_buf(),
                key: peft::lora_key(name, peft::LoraWeight::A),
            });
        }
        for (name, layer) in &self.layers {
            let Some(pair) = adapter.weights.get(name) else {
                return Err(LoraError::MissingTensor {
                    path: file.to_path_buf(),
                    key: peft::lora_key(name, peft::LoraWeight::A),
                });
            };
            for (t, which, expected) in [
                (&pair.lora_a, peft::LoraWeight::A, layer.lora_a().size()),
                (&pair.lora_b, peft::LoraWeight::B, layer.lora_b().size()),
            ] {
                if t.size() != expected {
                    return Err(LoraError::Shape {
                        what: format!("{}: {}", file.display(), peft::lora_key(name, which)),
                        expected,
                        got: t.size(),
                    });
                }
            }
        }
        for (name, layer) in &mut self.layers {
            let Some(pair) = adapter.weights.get(name) else {
                continue;
            };
            let remerge = layer.unmerge()?;
            {
                let _guard = tch::no_grad_guard();
                layer.lora_a().shallow_clone().f_copy_(&pair.lora_a)?;
                layer.lora_b().shallow_clone().f_copy_(&pair.lora_b)?;
            }
            if remerge {
                layer.merge()?;
            }
        }
        Ok(())
    }
}
