//! Configuration of the heterogeneous GAT.

use graft_graph::{NodeKind, Relation};
use serde::{Deserialize, Serialize};

use crate::error::{PropagateError, Result};

/// Width of one GAT layer: `heads` attention heads of `out_per_head`
/// channels each, concatenated to `heads * out_per_head` outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GatLayerSpec {
    /// Number of attention heads `H` (PyG `heads`).
    pub heads: usize,
    /// Channels per head `F` (PyG `out_channels`).
    pub out_per_head: usize,
}

impl GatLayerSpec {
    /// A layer of `heads` heads with `out_per_head` channels each.
    pub const fn new(heads: usize, out_per_head: usize) -> Self {
        Self {
            heads,
            out_per_head,
        }
    }

    /// Output width `heads * out_per_head` (heads concatenated).
    pub const fn out_dim(&self) -> usize {
        self.heads * self.out_per_head
    }
}

/// What follows every GAT layer but the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GatActivation {
    /// ELU (PyG's GAT examples; the default).
    #[default]
    Elu,
    /// Nothing: the next layer reads the previous one's output as it is
    /// (DGL's `GATConv` default `activation=None`, which ELCoRec's official
    /// expert keeps).
    Identity,
}

/// Hyper-parameters of [`HeteroGat`](super::HeteroGat), ELCoRec's expert
/// network.
///
/// One layer is DGL's `HeteroGraphConv({rel: GATConv}, aggregate="sum")`,
/// or equivalently PyG's
/// `HeteroConv({rel: GATConv((in_src, in_dst), F, heads=H,
/// add_self_loops=False, concat=True)}, aggr="sum")`, over the four
/// relations of [`Relation::ALL`]. [`activation`](Self::activation) (ELU
/// by default) follows every layer but the last.
///
/// Deserializes from JSON with every field optional (missing fields take
/// their [`Default`] values):
///
/// ```
/// use graft_propagate::gat::{GatLayerSpec, HeteroGatConfig};
///
/// let cfg: HeteroGatConfig = serde_json::from_str(r#"{"in_dims": [16, 16, 8]}"#).unwrap();
/// assert_eq!(cfg.layers, vec![GatLayerSpec::new(8, 32), GatLayerSpec::new(1, 32)]);
/// assert_eq!(cfg.out_dim(), 32);
/// cfg.validate()?;
/// # Ok::<(), graft_propagate::PropagateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeteroGatConfig {
    /// Input feature width per node type, indexed by [`NodeKind::index`]
    /// (user, item, feature). Default `[64, 64, 64]`: a placeholder, set it
    /// to the widths of your node embeddings.
    pub in_dims: [usize; 3],
    /// The layers, first to last. Default `[8 x 32, 1 x 32]` (ELCoRec's
    /// two-layer GAT: 8 heads of 32, then one head of 32).
    pub layers: Vec<GatLayerSpec>,
    /// Slope of the LeakyReLU on the attention logits; default `0.2` (the
    /// DGL and PyG default). Must lie in `[0, 1]`.
    pub negative_slope: f64,
    /// Dropout probability on every layer's input node features, training
    /// only (DGL's `feat_drop`; one mask per node type and layer); default
    /// `0.0`. Must lie in `[0, 1)`.
    pub feat_dropout: f64,
    /// Dropout probability on the normalised attention coefficients,
    /// training only (DGL's `attn_drop`, PyG's `dropout`); default `0.1`.
    /// Must lie in `[0, 1)`.
    pub attn_dropout: f64,
    /// What follows every layer but the last; default [`GatActivation::Elu`].
    pub activation: GatActivation,
}

impl Default for HeteroGatConfig {
    fn default() -> Self {
        Self {
            in_dims: [64; 3],
            layers: Self::ELCOREC_LAYERS.to_vec(),
            negative_slope: 0.2,
            feat_dropout: 0.0,
            attn_dropout: 0.1,
            activation: GatActivation::Elu,
        }
    }
}

impl HeteroGatConfig {
    /// ELCoRec's layer widths: 8 heads of 32 channels, then 1 head of 32.
    pub const ELCOREC_LAYERS: [GatLayerSpec; 2] =
        [GatLayerSpec::new(8, 32), GatLayerSpec::new(1, 32)];

    /// The default configuration (ELCoRec's layers) for inputs of the given
    /// widths (user, item, feature).
    pub fn new(in_dims: [usize; 3]) -> Self {
        Self {
            in_dims,
            ..Self::default()
        }
    }

    /// Sets [`layers`](Self::layers).
    pub fn with_layers(mut self, layers: impl Into<Vec<GatLayerSpec>>) -> Self {
        self.layers = layers.into();
        self
    }

    /// Sets [`negative_slope`](Self::negative_slope).
    pub fn with_negative_slope(mut self, slope: f64) -> Self {
        self.negative_slope = slope;
        self
    }

    /// Sets [`feat_dropout`](Self::feat_dropout).
    pub fn with_feat_dropout(mut self, p: f64) -> Self {
        self.feat_dropout = p;
        self
    }

    /// Sets [`attn_dropout`](Self::attn_dropout).
    pub fn with_attn_dropout(mut self, p: f64) -> Self {
        self.attn_dropout = p;
        self
    }

    /// Sets [`activation`](Self::activation).
    pub fn with_activation(mut self, activation: GatActivation) -> Self {
        self.activation = activation;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`PropagateError::Config`] naming the first invalid field: a zero
    /// input width, no layers, a layer with zero heads or channels, a
    /// negative slope outside `[0, 1]`, a dropout outside `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        let err =
            |field: &'static str, reason: String| Err(PropagateError::Config { field, reason });
        for kind in NodeKind::ALL {
            if self.in_dims[kind.index()] == 0 {
                return err("in_dims", format!("the {kind} input width is 0"));
            }
        }
        if self.layers.is_empty() {
            return err("layers", "at least one layer is needed".into());
        }
        for (l, spec) in self.layers.iter().enumerate() {
            if spec.heads == 0 || spec.out_per_head == 0 {
                return err(
                    "layers",
                    format!(
                        "layer {l} has {} heads of {} channels; both must be positive",
                        spec.heads, spec.out_per_head
                    ),
                );
            }
            if spec
                .heads
                .checked_mul(spec.out_per_head)
                .is_none_or(|w| w > i64::MAX as usize)
            {
                return err("layers", format!("layer {l} is too wide"));
            }
        }
        if !(0.0..=1.0).contains(&self.negative_slope) {
            return err(
                "negative_slope",
                format!("{} is not in [0, 1]", self.negative_slope),
            );
        }
        for (field, p) in [
            ("feat_dropout", self.feat_dropout),
            ("attn_dropout", self.attn_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return err(field, format!("{p} is not in [0, 1)"));
            }
        }
        Ok(())
    }

    /// Output width of the network, `heads * out_per_head` of the last
    /// layer (0 without layers).
    pub fn out_dim(&self) -> usize {
        self.layers.last().map_or(0, GatLayerSpec::out_dim)
    }

    /// Input width of every node type at layer `layer`: [`in_dims`](Self::in_dims)
    /// for layer 0, the previous layer's output width otherwise (every node
    /// type is the destination of some relation, so all types carry that
    /// width). `None` if `layer` is out of range.
    pub fn layer_in_dims(&self, layer: usize) -> Option<[usize; 3]> {
        match layer {
            _ if layer >= self.layers.len() => None,
            0 => Some(self.in_dims),
            l => Some([self.layers[l - 1].out_dim(); 3]),
        }
    }

    /// `(in_src, in_dst)` of relation `relation` at layer `layer`; `None`
    /// if `layer` is out of range.
    pub fn relation_in_dims(&self, layer: usize, relation: Relation) -> Option<(usize, usize)> {
        let d = self.layer_in_dims(layer)?;
        Some((
            d[relation.src_kind().index()],
            d[relation.dst_kind().index()],
        ))
    }

    /// Number of trainable scalars.
    pub fn n_parameters(&self) -> usize {
        (0..self.layers.len())
            .map(|l| {
                let hf = self.layers[l].out_dim();
                Relation::ALL
                    .iter()
                    .filter_map(|&r| self.relation_in_dims(l, r))
                    .map(|(s, d)| hf * (s + d) + 3 * hf)
                    .sum::<usize>()
            })
            .sum()
    }
}
