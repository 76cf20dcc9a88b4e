//! Configuration of LightGCN random-feature propagation.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{PropagateError, Result};
use crate::init::normal_embeddings;

/// How the layer outputs `E0..EL` become one embedding per node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerCombine {
    /// `(E0 + E1 + ... + EL) / (L + 1)`: LightGCN and ELMRec
    /// (`graph_convolution` in the authors' code).
    Mean,
    /// `sum_l w_l E_l` with one weight per layer, `E0` first (`L + 1`
    /// weights).
    Weighted(Vec<f32>),
    /// `EL` alone (`graph_convolution_embeddings` in the ELMRec code).
    Last,
}

impl LayerCombine {
    /// The weight of each of the `layers + 1` outputs.
    ///
    /// # Errors
    ///
    /// [`PropagateError::Config`] if `Weighted` has a number of weights
    /// other than `layers + 1` or a non-finite weight.
    pub fn weights(&self, layers: usize) -> Result<Vec<f32>> {
        match self {
            LayerCombine::Mean => Ok(vec![1.0 / (layers as f32 + 1.0); layers + 1]),
            LayerCombine::Last => {
                let mut w = vec![0.0; layers + 1];
                w[layers] = 1.0;
                Ok(w)
            }
            LayerCombine::Weighted(w) => {
                if w.len() != layers + 1 {
                    return Err(PropagateError::Config {
                        field: "combine",
                        reason: format!(
                            "{} layer weights given for {} layers (need L + 1 = {}, E0 first)",
                            w.len(),
                            layers,
                            layers + 1
                        ),
                    });
                }
                if let Some(x) = w.iter().find(|x| !x.is_finite()) {
                    return Err(PropagateError::Config {
                        field: "combine",
                        reason: format!("layer weight {x} is not finite"),
                    });
                }
                Ok(w.clone())
            }
        }
    }
}

/// LightGCN random-feature propagation as ELMRec configures it.
///
/// Serialises with serde (JSON/TOML), e.g.
/// `{"dim": 512, "layers": 4, "sigma": 0.1, "seed": 2024, "combine": "mean"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LightGcnConfig {
    /// Embedding dimension `d` (the language model's hidden size in
    /// ELMRec: 512 for T5-small).
    pub dim: usize,
    /// Number of propagation layers `L`.
    pub layers: usize,
    /// Standard deviation of the random features `E0 ~ N(0, sigma^2)`.
    pub sigma: f32,
    /// Seed of `E0` (ChaCha8; the same seed gives the same `E0` on every
    /// platform and backend).
    pub seed: u64,
    /// How the layers are combined.
    pub combine: LayerCombine,
}

impl Default for LightGcnConfig {
    /// `d = 512`, `L = 4`, `sigma = 0.1`, seed 2024, mean of the layers.
    fn default() -> Self {
        Self {
            dim: 512,
            layers: 4,
            sigma: 0.1,
            seed: 2024,
            combine: LayerCombine::Mean,
        }
    }
}

impl LightGcnConfig {
    /// Checks the fields.
    ///
    /// # Errors
    ///
    /// [`PropagateError::Config`] for `dim == 0`, a negative or non-finite
    /// `sigma`, or layer weights that do not fit `layers`.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 {
            return Err(PropagateError::Config {
                field: "dim",
                reason: "must be at least 1".into(),
            });
        }
        if !(self.sigma.is_finite() && self.sigma >= 0.0) {
            return Err(PropagateError::Config {
                field: "sigma",
                reason: format!("{} is not a finite non-negative number", self.sigma),
            });
        }
        self.combine.weights(self.layers).map(|_| ())
    }

    /// The seeded random features `E0` for `n_nodes` nodes, `(n_nodes, dim)`.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn initial_embeddings(&self, n_nodes: usize) -> Result<Array2<f32>> {
        self.validate()?;
        Ok(normal_embeddings(n_nodes, self.dim, self.sigma, self.seed))
    }
}
