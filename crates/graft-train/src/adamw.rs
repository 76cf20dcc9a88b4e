//! AdamW over named tensors, matching `torch.optim.AdamW` step for step.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{Result, TrainError};

/// Hyper-parameters of [`AdamW`]; the defaults are PyTorch's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdamWConfig {
    /// Learning rate (`1e-3`).
    pub lr: f64,
    /// Decay of the first-moment average (`0.9`).
    pub beta1: f64,
    /// Decay of the second-moment average (`0.999`).
    pub beta2: f64,
    /// Term added to the denominator (`1e-8`).
    pub eps: f64,
    /// Decoupled weight decay (`0.01`): each step multiplies the parameters
    /// by `1 - lr * weight_decay` before the Adam update.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

impl AdamWConfig {
    /// Checks every value's domain (finite, `lr, eps, weight_decay >= 0`,
    /// `0 <= beta < 1`).
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the first offending field.
    pub fn validate(&self) -> Result<()> {
        let check = |name: &str, v: f64, ok: bool| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(TrainError::Config(format!(
                    "AdamW {name} = {v} is out of range"
                )))
            }
        };
        check("lr", self.lr, self.lr >= 0.0)?;
        check("beta1", self.beta1, (0.0..1.0).contains(&self.beta1))?;
        check("beta2", self.beta2, (0.0..1.0).contains(&self.beta2))?;
        check("eps", self.eps, self.eps >= 0.0)?;
        check("weight_decay", self.weight_decay, self.weight_decay >= 0.0)
    }
}

/// Prefix of the parameter values in [`AdamW::state_tensors`].
pub const PARAM_PREFIX: &str = "param.";
/// Prefix of the first-moment averages in [`AdamW::state_tensors`].
pub const M_PREFIX: &str = "adam_m.";
/// Prefix of the second-moment averages in [`AdamW::state_tensors`].
pub const V_PREFIX: &str = "adam_v.";
/// Prefix of the per-parameter step counts (`int64`, shape `[1]`).
pub const STEP_PREFIX: &str = "adam_step.";
/// Name of the optimizer's step counter (`int64`, shape `[1]`).
pub const STEPS_KEY: &str = "optimizer.steps";
/// Name of the current learning rate (`float64`, shape `[1]`).
pub const LR_KEY: &str = "optimizer.lr";

/// AdamW (decoupled weight decay) over named tensors: PyTorch's
/// `torch.optim.AdamW` update exactly (the single-tensor CPU path, with bias
/// correction, `amsgrad=False`), with state that can be saved and restored
/// bit-exactly ([`state_tensors`](Self::state_tensors) /
/// [`load_state_tensors`](Self::load_state_tensors)).
///
/// Per parameter with a defined gradient `g` and own step count `t`:
///
/// ```text
/// p *= 1 - lr * weight_decay
/// m  = lerp(m, g, 1 - beta1)
/// v  = beta2 * v + (1 - beta2) * g * g
/// p += -(lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// ```
///
/// Parameters whose gradient is undefined (never reached by a backward pass)
/// are skipped, like PyTorch's `p.grad is None`. [`zero_grad`](Self::zero_grad)
/// zeroes gradients in place (PyTorch's `zero_grad(set_to_none=False)`:
/// libtorch's C API offers no way to reset a gradient to undefined), so a
/// parameter that once had a gradient keeps being updated with a zero one.
///
/// The moment buffers are allocated up front (zeros, which is what PyTorch's
/// lazy initialisation produces), so the state is complete from the start.
///
/// ```
/// use graft_train::{AdamW, AdamWConfig};
/// use tch::{Kind, Tensor};
///
/// let w = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
/// let mut opt = AdamW::new(AdamWConfig { lr: 0.1, ..AdamWConfig::default() }, vec![("w".into(), w.shallow_clone())])?;
/// for _ in 0..3 {
///     opt.zero_grad();
///     (&w * &w).sum(Kind::Float).backward();
///     opt.step()?;
/// }
/// assert_eq!(opt.steps(), 3);
/// assert!(w.abs().sum(Kind::Float).double_value(&[]) < 3.0);
/// # Ok::<(), graft_train::TrainError>(())
/// ```
#[derive(Debug)]
pub struct AdamW {
    cfg: AdamWConfig,
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    param_steps: Vec<u64>,
    steps: u64,
}

impl AdamW {
    /// Creates the optimizer over `params` (shallow handles to the model's
    /// tensors; the optimizer updates them in place).
    ///
    /// # Errors
    /// [`TrainError::Config`] when the configuration is out of range, a
    /// parameter does not require grad, or a name is empty or repeated;
    /// [`TrainError::Tch`] if allocating the moment buffers fails.
    pub fn new(cfg: AdamWConfig, params: Vec<(String, Tensor)>) -> Result<Self> {
        cfg.validate()?;
        let mut seen = HashSet::new();
        for (name, p) in &params {
            if name.is_empty() {
                return Err(TrainError::Config("AdamW: empty parameter name".into()));
            }
            if !seen.insert(name.as_str()) {
                return Err(TrainError::Config(format!(
                    "AdamW: duplicate parameter name {name:?}"
                )));
            }
            if !p.requires_grad() {
                return Err(TrainError::Config(format!(
                    "AdamW: parameter {name:?} does not require grad"
                )));
            }
        }
        let _guard = tch::no_grad_guard();
        let m = params
            .iter()
            .map(|(_, p)| p.f_zeros_like())
            .collect::<Result<Vec<_>, _>>()?;
        let v = params
            .iter()
            .map(|(_, p)| p.f_zeros_like())
            .collect::<Result<Vec<_>, _>>()?;
        let param_steps = vec![0; params.len()];
        Ok(Self {
            cfg,
            params,
            m,
            v,
            param_steps,
            steps: 0,
        })
    }

    /// The configuration (with the current learning rate).
    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// The named parameters, in the order given to [`new`](Self::new).
    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// Zeroes every defined gradient in place.
    pub fn zero_grad(&mut self) {
        for (_, p) in &self.params {
            p.shallow_clone().zero_grad();
        }
    }

    /// Rescales the gradients so that their joint L2 norm is at most
    /// `max_norm`, as `torch.nn.utils.clip_grad_norm_` does (coefficient
    /// `min(1, max_norm / (norm + 1e-6))` applied to every gradient), and
    /// returns the total norm before clipping. Undefined gradients are
    /// ignored; with none defined the norm is `0`.
    ///
    /// # Errors
    /// [`TrainError::Config`] for a negative or non-finite `max_norm`;
    /// [`TrainError::Tch`] from libtorch.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64> {
        if !(max_norm.is_finite() && max_norm >= 0.0) {
            return Err(TrainError::Config(format!(
                "clip_grad_norm: max_norm = {max_norm}"
            )));
        }
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .collect();
        let Some(first) = grads.first() else {
            return Ok(0.0);
        };
        let device = first.device();
        let mut norms = grads
            .iter()
            .map(|g| g.f_norm())
            .collect::<Result<Vec<_>, _>>()?;
        let kind = norms[0].kind();
        if norms
            .iter()
            .any(|n| n.kind() != kind || n.device() != device)
        {
            norms = norms
                .iter()
                .map(|n| n.f_to_device(device)?.f_to_kind(Kind::Double))
                .collect::<Result<Vec<_>, _>>()?;
        }
        let total = Tensor::f_stack(&norms, 0)?.f_norm()?;
        // PyTorch: clip_coef = max_norm / (total + 1e-6), where float / tensor
        // is `tensor.reciprocal() * float`.
        let coef = total
            .f_add_scalar(1e-6)?
            .f_reciprocal()?
            .f_mul_scalar(max_norm)?
            .f_clamp_max(1.0)?;
        for g in &grads {
            let coef = coef.f_to_device(g.device())?;
            let _ = g.shallow_clone().f_mul_(&coef)?;
        }
        Ok(total.f_double_value(&[])?)
    }

    /// One AdamW update of every parameter with a defined gradient (see the
    /// type docs), under `no_grad`.
    ///
    /// # Errors
    /// [`TrainError::Tch`] from libtorch (a gradient of the wrong shape or
    /// device); the parameters updated before the failure stay updated.
    pub fn step(&mut self) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let AdamWConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.cfg;
        for (i, (_, p)) in self.params.iter().enumerate() {
            let grad = p.grad();
            if !grad.defined() {
                continue;
            }
            let mut param = p.shallow_clone();
            let m = &mut self.m[i];
            let v = &mut self.v[i];
            self.param_steps[i] += 1;
            let t = self.param_steps[i] as f64;
            if weight_decay != 0.0 {
                let _ = param.f_mul_scalar_(1.0 - lr * weight_decay)?;
            }
            let _ = m.f_lerp_(&grad, 1.0 - beta1)?;
            // v.mul_(beta2).addcmul_(g, g, value=1 - beta2); addcmul computes
            // self + (value * t1) * t2.
            // tch's addcmul_/addcdiv_ take no `value` (it is 1), so the
            // scaled operand is formed first: the same roundings as PyTorch,
            // with three temporaries per tensor (the update is memory-bound).
            let _ = v.f_mul_scalar_(beta2)?;
            let _ = v.f_addcmul_(&grad.f_mul_scalar(1.0 - beta2)?, &grad)?;
            let bias_correction1 = 1.0 - beta1.powf(t);
            let bias_correction2 = 1.0 - beta2.powf(t);
            let step_size = lr / bias_correction1;
            let bias_correction2_sqrt = bias_correction2.powf(0.5);
            let mut denom = v.f_sqrt()?;
            let _ = denom.f_div_scalar_(bias_correction2_sqrt)?;
            let _ = denom.f_add_scalar_(eps)?;
            // p.addcdiv_(m, denom, value=-step_size): self + (value * t1) / t2.
            let _ = param.f_addcdiv_(&m.f_mul_scalar(-step_size)?, &denom)?;
        }
        self.steps += 1;
        Ok(())
    }

    /// Sets the learning rate used by the following steps.
    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.cfg.lr
    }

    /// How many times [`step`](Self::step) has run (restored by
    /// [`load_state_tensors`](Self::load_state_tensors)).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The full state as named tensors: `param.{name}`, `adam_m.{name}`,
    /// `adam_v.{name}`, `adam_step.{name}` (int64 `[1]`) for every parameter,
    /// plus `optimizer.steps` (int64 `[1]`) and `optimizer.lr` (float64 `[1]`).
    ///
    /// The tensors are detached handles sharing storage with the live state
    /// (no copy): write them out before the next step, or `copy()` them.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(4 * self.params.len() + 2);
        for (i, (name, p)) in self.params.iter().enumerate() {
            out.push((format!("{PARAM_PREFIX}{name}"), p.detach()));
            out.push((format!("{M_PREFIX}{name}"), self.m[i].shallow_clone()));
            out.push((format!("{V_PREFIX}{name}"), self.v[i].shallow_clone()));
            out.push((
                format!("{STEP_PREFIX}{name}"),
                int_tensor(self.param_steps[i]),
            ));
        }
        out.push((STEPS_KEY.to_string(), int_tensor(self.steps)));
        out.push((LR_KEY.to_string(), Tensor::from_slice(&[self.cfg.lr])));
        out
    }

    /// Restores a state written by [`state_tensors`](Self::state_tensors):
    /// copies the values into the parameters and moment buffers in place
    /// (under `no_grad`; devices may differ) and restores the step counts and
    /// the learning rate. Everything is validated before anything is copied.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] naming the tensor when one is missing,
    /// repeated, unexpected, or of the wrong shape or dtype;
    /// [`TrainError::Tch`] if copying fails.
    pub fn load_state_tensors(&mut self, tensors: Vec<(String, Tensor)>) -> Result<()> {
        self.load_state_from(tensors, PathBuf::from("<state tensors>"))
    }

    /// [`load_state_tensors`](Self::load_state_tensors) with errors naming
    /// `path`.
    pub(crate) fn load_state_from(
        &mut self,
        tensors: Vec<(String, Tensor)>,
        path: PathBuf,
    ) -> Result<()> {
        let fail = |reason: String| TrainError::Checkpoint {
            path: path.clone(),
            reason,
        };
        let mut map: HashMap<String, Tensor> = HashMap::with_capacity(tensors.len());
        for (name, t) in tensors {
            if map.contains_key(&name) {
                return Err(fail(format!("tensor {name:?} appears twice")));
            }
            map.insert(name, t);
        }
        let mut take = |key: String| {
            map.remove(&key)
                .ok_or_else(|| fail(format!("missing tensor {key:?}")))
        };
        let mut values = Vec::with_capacity(self.params.len());
        for (i, (name, p)) in self.params.iter().enumerate() {
            let mut triple = Vec::with_capacity(3);
            for (prefix, like) in [
                (PARAM_PREFIX, p),
                (M_PREFIX, &self.m[i]),
                (V_PREFIX, &self.v[i]),
            ] {
                let key = format!("{prefix}{name}");
                let t = take(key.clone())?;
                if t.size() != like.size() {
                    return Err(fail(format!(
                        "tensor {key:?}: expected shape {:?}, got {:?}",
                        like.size(),
                        t.size()
                    )));
                }
                if t.kind() != like.kind() {
                    return Err(fail(format!(
                        "tensor {key:?}: expected dtype {:?}, got {:?}",
                        like.kind(),
                        t.kind()
                    )));
                }
                triple.push(t);
            }
            let key = format!("{STEP_PREFIX}{name}");
            let step = read_count(&take(key.clone())?)
                .map_err(|r| fail(format!("tensor {key:?}: {r}")))?;
            values.push((triple, step));
        }
        let steps = read_count(&take(STEPS_KEY.to_string())?)
            .map_err(|r| fail(format!("tensor {STEPS_KEY:?}: {r}")))?;
        let lr_t = take(LR_KEY.to_string())?;
        let lr = read_float(&lr_t).map_err(|r| fail(format!("tensor {LR_KEY:?}: {r}")))?;
        if let Some(key) = map.keys().min() {
            return Err(fail(format!("unexpected tensor {key:?}")));
        }
        let _guard = tch::no_grad_guard();
        for (i, (triple, step)) in values.into_iter().enumerate() {
            self.params[i].1.shallow_clone().f_copy_(&triple[0])?;
            self.m[i].f_copy_(&triple[1])?;
            self.v[i].f_copy_(&triple[2])?;
            self.param_steps[i] = step;
        }
        self.steps = steps;
        self.cfg.lr = lr;
        Ok(())
    }
}

fn int_tensor(v: u64) -> Tensor {
    Tensor::from_slice(&[i64::try_from(v).unwrap_or(i64::MAX)])
}

/// Reads a non-negative count from an int64 tensor with one element.
fn read_count(t: &Tensor) -> std::result::Result<u64, String> {
    if t.numel() != 1 || t.kind() != Kind::Int64 {
        return Err(format!(
            "expected one int64 value, got {:?} {:?}",
            t.kind(),
            t.size()
        ));
    }
    let v = t
        .f_to_device(Device::Cpu)
        .and_then(|t| t.f_reshape([1]))
        .and_then(|t| t.f_int64_value(&[0]))
        .map_err(|e| e.to_string())?;
    u64::try_from(v).map_err(|_| format!("negative count {v}"))
}

/// Reads a finite float from a float64 tensor with one element.
fn read_float(t: &Tensor) -> std::result::Result<f64, String> {
    if t.numel() != 1 || t.kind() != Kind::Double {
        return Err(format!(
            "expected one float64 value, got {:?} {:?}",
            t.kind(),
            t.size()
        ));
    }
    let v = t
        .f_to_device(Device::Cpu)
        .and_then(|t| t.f_reshape([1]))
        .and_then(|t| t.f_double_value(&[0]))
        .map_err(|e| e.to_string())?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("non-finite value {v}"))
    }
}
