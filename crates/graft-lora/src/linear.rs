//! [`LoraLinear`]: a frozen linear layer plus a trainable low-rank update.

use tch::{nn, Kind, Tensor};

use crate::config::LoraConfig;
use crate::error::{LoraError, Result};

/// A frozen base linear layer `y = x W^T + b` with a LoRA update
/// `scaling * dropout(x) A^T B^T`, `scaling = alpha / r`.
///
/// `A` (`lora_A`, `[r, in]`) is initialised like PEFT
/// (`kaiming_uniform_(a = sqrt(5))`, i.e. uniform in `±1/sqrt(in)`), `B`
/// (`lora_B`, `[out, r]`) with zeros, so a fresh adapter leaves the layer
/// unchanged. Both are trainable variables of the [`nn::Path`] given to
/// [`LoraLinear::new`], named `lora_A.weight` and `lora_B.weight` under it.
///
/// The base weight is a detached alias of the caller's tensor (no copy): it
/// never receives gradients, and [`merge`](Self::merge) /
/// [`unmerge`](Self::unmerge) write into its storage, as PEFT does.
///
/// The base may be stored in another floating kind than the adapters
/// (typically a frozen `bf16` base under `f32` adapters, which is what makes
/// the base products fast on CPUs with bf16 matrix units): the base product
/// is then computed in the base's kind and returned in the input's kind,
/// while the LoRA branch runs in the adapters' kind.
///
/// # Shapes
///
/// * base weight `[out, in]`, bias `[out]` (PyTorch `nn.Linear` layout);
/// * input `[.., in]`, output `[.., out]`.
///
/// ```
/// use graft_lora::{LoraConfig, LoraLinear};
/// use tch::{nn, Device, Kind, Tensor};
///
/// tch::manual_seed(0);
/// let vs = nn::VarStore::new(Device::Cpu);
/// let w = Tensor::randn([6, 5], (Kind::Float, Device::Cpu));
/// let mut layer = LoraLinear::new(&vs.root().sub("proj"), &w, None, &LoraConfig::new(2, 6.0))?;
/// tch::no_grad(|| layer.lora_b().shallow_clone().uniform_(-1.0, 1.0));
/// let x = Tensor::randn([3, 5], (Kind::Float, Device::Cpu));
/// let before = layer.forward_t(&x, false);
/// layer.merge()?;
/// let after = layer.forward_t(&x, false);
/// assert!((before - after).abs().max().double_value(&[]) < 1e-5);
/// # Ok::<(), graft_lora::LoraError>(())
/// ```
#[derive(Debug)]
pub struct LoraLinear {
    weight: Tensor,
    bias: Option<Tensor>,
    lora_a: Tensor,
    lora_b: Tensor,
    scaling: f64,
    dropout: f64,
    merged: bool,
    in_features: i64,
    out_features: i64,
    r: i64,
}

fn is_float(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    )
}

impl LoraLinear {
    /// Wraps the base `weight` (and `bias`) with a fresh LoRA pair created
    /// under `path` (variables `lora_A.weight`, `lora_B.weight`).
    ///
    /// # Errors
    ///
    /// [`LoraError::Config`] if `config` is invalid; [`LoraError::Shape`] if
    /// `weight` is not 2-D or `bias` is not `[out]`; [`LoraError::Tensor`]
    /// if the base is not a floating-point tensor on the var store's device
    /// (or the bias's kind or device differs from the weight's);
    /// [`LoraError::Tch`] on libtorch failures.
    pub fn new(
        path: &nn::Path<'_>,
        weight: &Tensor,
        bias: Option<&Tensor>,
        config: &LoraConfig,
    ) -> Result<Self> {
        config.validate()?;
        let what = || path.components().collect::<Vec<_>>().join(".");
        let size = weight.size();
        let [out_features, in_features] = size[..] else {
            return Err(LoraError::Shape {
                what: format!("{} base weight", what()),
                expected: vec![-1, -1],
                got: size,
            });
        };
        let kind = weight.f_kind()?;
        if !is_float(kind) {
            return Err(LoraError::Tensor {
                what: format!("{} base weight", what()),
                reason: format!("kind {kind:?} is not a floating-point kind"),
            });
        }
        if weight.device() != path.device() {
            return Err(LoraError::Tensor {
                what: format!("{} base weight", what()),
                reason: format!(
                    "on {:?}, the var store is on {:?}",
                    weight.device(),
                    path.device()
                ),
            });
        }
        if let Some(b) = bias {
            if b.size() != [out_features] {
                return Err(LoraError::Shape {
                    what: format!("{} base bias", what()),
                    expected: vec![out_features],
                    got: b.size(),
                });
            }
            if b.f_kind()? != kind || b.device() != weight.device() {
                return Err(LoraError::Tensor {
                    what: format!("{} base bias", what()),
                    reason: "kind or device differs from the weight".into(),
                });
            }
        }
        let r = i64::try_from(config.r).map_err(|_| LoraError::Config {
            field: "r",
            reason: format!("{} does not fit in i64", config.r),
        })?;
        // PEFT: nn.init.kaiming_uniform_(A, a=sqrt(5)): gain sqrt(2/(1+5)),
        // bound = gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
        let bound = if in_features > 0 {
            1.0 / (in_features as f64).sqrt()
        } else {
            0.0
        };
        let lora_a = path.sub("lora_A").f_var(
            "weight",
            &[r, in_features],
            nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        let lora_b =
            path.sub("lora_B")
                .f_var("weight", &[out_features, r], nn::Init::Const(0.0))?;
        Ok(Self {
            weight: weight.detach(),
            bias: bias.map(Tensor::detach),
            lora_a,
            lora_b,
            scaling: config.scaling(),
            dropout: config.dropout,
            merged: false,
            in_features,
            out_features,
            r,
        })
    }

    /// `x W^T + b + scaling * dropout(x) A^T B^T`; dropout only when
    /// `train`. Once merged, only the (updated) base product is computed.
    ///
    /// # Shapes
    ///
    /// `x`: `[.., in]` -> `[.., out]`.
    ///
    /// # Panics
    ///
    /// Like every tch `forward`, on an input whose last dimension is not
    /// `in` or whose device differs from the layer's; use
    /// [`f_forward_t`](Self::f_forward_t) for an error instead.
    #[allow(clippy::panic)] // documented above, as tch's `forward`
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.f_forward_t(x, train)
            .unwrap_or_else(|e| panic!("LoRA linear forward: {e}"))
    }

    /// [`forward_t`](Self::forward_t) that returns libtorch errors.
    ///
    /// # Errors
    ///
    /// [`LoraError::Shape`] if `x`'s last dimension is not `in`;
    /// [`LoraError::Tch`] on other libtorch failures.
    pub fn f_forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let size = x.size();
        if size.last() != Some(&self.in_features) {
            let mut expected = size.clone();
            if let Some(l) = expected.last_mut() {
                *l = self.in_features;
            } else {
                expected.push(self.in_features);
            }
            return Err(LoraError::Shape {
                what: "LoRA linear input".into(),
                expected,
                got: size,
            });
        }
        let base = self.f_base(x)?;
        if self.merged {
            return Ok(base);
        }
        let h = if train && self.dropout > 0.0 {
            x.f_dropout(self.dropout, true)?
        } else {
            x.shallow_clone()
        };
        let update = h
            .f_linear::<Tensor>(&self.lora_a, None)?
            .f_linear::<Tensor>(&self.lora_b, None)?
            .f_mul_scalar(self.scaling)?;
        Ok(base.f_add(&update)?)
    }

    /// `x W^T + b`, computed in the base's kind and returned in `x`'s.
    fn f_base(&self, x: &Tensor) -> Result<Tensor> {
        let (xk, wk) = (x.f_kind()?, self.weight.f_kind()?);
        if xk == wk {
            return Ok(x.f_linear(&self.weight, self.bias.as_ref())?);
        }
        Ok(x.f_to_kind(wk)?
            .f_linear(&self.weight, self.bias.as_ref())?
            .f_to_kind(xk)?)
    }

    /// The dense update `scaling * B A` (`[out, in]`), without gradient.
    ///
    /// # Errors
    ///
    /// [`LoraError::Tch`] on libtorch failures.
    pub fn delta_weight(&self) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        Ok(self
            .lora_b
            .f_matmul(&self.lora_a)?
            .f_mul_scalar(self.scaling)?)
    }

    /// Adds `scaling * B A` to the base weight (in place, rounded to the
    /// base's kind); the forward then skips the LoRA branch. Returns
    /// `false` (and does nothing) if already merged.
    ///
    /// While merged, `A` and `B` receive no gradient; unmerge before
    /// training further.
    ///
    /// # Errors
    ///
    /// [`LoraError::Tch`] on libtorch failures.
    pub fn merge(&mut self) -> Result<bool> {
        if self.merged {
            return Ok(false);
        }
        let delta = self.delta_weight()?;
        let _guard = tch::no_grad_guard();
        let _ = self
            .weight
            .f_add_(&delta.f_to_kind(self.weight.f_kind()?)?)?;
        self.merged = true;
        Ok(true)
    }

    /// Subtracts `scaling * B A` from the base weight again (the inverse of
    /// [`merge`](Self::merge) up to float rounding). Returns `false` (and
    /// does nothing) if not merged.
    ///
    /// # Errors
    ///
    /// [`LoraError::Tch`] on libtorch failures.
    pub fn unmerge(&mut self) -> Result<bool> {
        if !self.merged {
            return Ok(false);
        }
        let delta = self.delta_weight()?;
        let _guard = tch::no_grad_guard();
        let _ = self
            .weight
            .f_sub_(&delta.f_to_kind(self.weight.f_kind()?)?)?;
        self.merged = false;
        Ok(true)
    }

    /// Whether the update is currently folded into the base weight.
    pub fn is_merged(&self) -> bool {
        self.merged
    }

    /// The base weight `[out, in]` (merged or not; no gradient).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The base bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `lora_A` `[r, in]` (a trainable variable).
    pub fn lora_a(&self) -> &Tensor {
        &self.lora_a
    }

    /// `lora_B` `[out, r]` (a trainable variable).
    pub fn lora_b(&self) -> &Tensor {
        &self.lora_b
    }

    /// `alpha / r`.
    pub fn scaling(&self) -> f64 {
        self.scaling
    }

    /// Dropout probability of the LoRA branch in training.
    pub fn dropout(&self) -> f64 {
        self.dropout
    }

    /// Input features.
    pub fn in_features(&self) -> i64 {
        self.in_features
    }

    /// Output features.
    pub fn out_features(&self) -> i64 {
        self.out_features
    }

    /// Rank `r`.
    pub fn rank(&self) -> i64 {
        self.r
    }

    /// Trainable parameters: `r * (in + out)`.
    pub fn trainable_params(&self) -> i64 {
        self.r * (self.in_features + self.out_features)
    }

    /// Frozen parameters: `out * in` (+ `out` with a bias).
    pub fn base_params(&self) -> i64 {
        self.out_features * self.in_features + self.bias.as_ref().map_or(0, |_| self.out_features)
    }
}

impl nn::ModuleT for LoraLinear {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        LoraLinear::forward_t(self, xs, train)
    }
}
