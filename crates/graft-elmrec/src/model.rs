//! The ELMRec model: T5 (or a decoder-only LLaMA such as SmolLM2) whose ID
//! tokens get whole-word embeddings (graph-aware or incremental), with
//! continuous prompt vectors per task.

use std::collections::HashMap;

use graft_data::LeaveOneOut;
use graft_graph::BipartiteGraph;
use graft_lm::gguf::GgufFile;
use graft_lm::inject::{inject, prefix_mask, Injection};
use graft_lm::llama::{KvCache, Llama};
use graft_lm::{BeamConfig, T5};
use graft_prompt::{whole_word_ids, Task, Template, WholeWordMode};
use graft_propagate::{LayerCombine, LightGcnConfig, SparseLayout, TchPropagator};
use tch::{Device, Kind, Reduction, Tensor};
use tokenizers::Tokenizer;

use crate::config::{Backbone, ElmrecConfig, EmbeddingMode, Finetune, TargetPieces};
use crate::error::{ElmrecError, Result};
use crate::trie::ItemTrie;

/// Rows of the incremental table (the official code uses T5's 512
/// positions).
pub const INCREMENTAL_ROWS: i64 = 512;

/// One prompt and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Direct (candidate list) or sequential (history).
    pub task: Task,
    /// The user.
    pub user: u32,
    /// Sequential task: the history shown, oldest first.
    pub history: Vec<u32>,
    /// Direct task: the candidate list shown.
    pub candidates: Vec<u32>,
    /// The item to generate.
    pub target: u32,
    /// Which of the style's training templates renders this example
    /// ([`PromptStyle::training`], index modulo their number); `None`: the
    /// evaluation template ([`PromptStyle::evaluation`]).
    pub template: Option<usize>,
}

impl Example {
    /// A sequential-task query for inference: `user`'s next item after
    /// `history` (oldest first; the prompt shows its last `history_len`
    /// items), rendered with the evaluation template. Its `target` is
    /// [`Example::NO_TARGET`]: generation and scoring never read it, and a
    /// loss over such an example is refused (out of range).
    pub fn sequential_query(user: u32, history: &[u32], history_len: usize) -> Self {
        Self {
            task: Task::Sequential,
            user,
            history: history[history.len().saturating_sub(history_len)..].to_vec(),
            candidates: Vec::new(),
            target: Self::NO_TARGET,
            template: None,
        }
    }

    /// A direct-task query for inference: which of `candidates` `user`
    /// prefers (evaluation template; `target` is [`Example::NO_TARGET`]).
    pub fn direct_query(user: u32, candidates: &[u32]) -> Self {
        Self {
            task: Task::Direct,
            user,
            history: Vec::new(),
            candidates: candidates.to_vec(),
            target: Self::NO_TARGET,
            template: None,
        }
    }

    /// The `target` of a query that has none.
    pub const NO_TARGET: u32 = u32::MAX;
}

/// The graph-aware part: trainable random features `E0` and the
/// normalised train adjacency.
#[derive(Debug)]
struct GraphPart {
    e0: Tensor,
    prop: TchPropagator,
}

/// Tables computed once per forward (or once per evaluation pass).
#[derive(Debug)]
pub struct Tables {
    /// `[1 + users + items, d]`: row 0 zero, then users, then items.
    graph: Option<Tensor>,
}

/// An encoded batch.
#[derive(Debug)]
pub struct Encoded {
    /// Encoder output `[B, P + T, d]`.
    pub hidden: Tensor,
    /// Mask `[B, P + T]`.
    pub mask: Tensor,
}

/// Text appended to every prompt of a decoder-only backbone, so that the
/// target's digits follow `item_` exactly as item IDs appear in prompts.
pub const LLAMA_ANSWER_CUE: &str = " Answer: item_";

/// Candidates scored per forward pass by a decoder-only backbone (each
/// holds a copy of the prompt's key/value cache).
const LLAMA_SCORE_CHUNK: usize = 16;

/// A decoder-only backbone and how it is trained.
#[derive(Debug)]
struct LlamaNet {
    llama: Llama,
    /// The LoRA adapters' variables (`None`: full fine-tuning).
    lora: Option<tch::nn::VarStore>,
    /// End of a target.
    eos: u32,
}

/// The language model.
#[derive(Debug)]
enum Net {
    T5(T5),
    Llama(LlamaNet),
}

/// T5 (or LLaMA) + whole-word embeddings + continuous prompts.
#[derive(Debug)]
pub struct ElmrecModel {
    net: Net,
    tok: Tokenizer,
    cfg: ElmrecConfig,
    n_users: usize,
    n_items: usize,
    graph: Option<GraphPart>,
    incremental: Option<Tensor>,
    prompts: Tensor,
    item_tokens: Vec<Vec<u32>>,
    trie: ItemTrie,
    /// Training templates and the evaluation template, per task
    /// (direct, sequential).
    templates: [(Vec<Template>, Template); 2],
    device: Device,
}

fn task_index(t: Task) -> usize {
    match t {
        Task::Direct => 0,
        Task::Sequential => 1,
    }
}

fn to_i64(n: usize) -> Result<i64> {
    i64::try_from(n).map_err(|_| ElmrecError::Config(format!("{n} does not fit in i64")))
}

/// A T5 target's token ids for item `i` (EOS last), spelled as `style`
/// says.
fn t5_item_target(tok: &Tokenizer, i: usize, style: TargetPieces) -> Result<Vec<u32>> {
    let ids = |text: &str, special: bool| -> Result<Vec<u32>> {
        Ok(tok
            .encode(text, special)
            .map_err(|e| ElmrecError::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec())
    };
    match style {
        TargetPieces::Number => ids(&i.to_string(), true),
        TargetPieces::Prompt => {
            let prefix = ids("item_", false)?;
            let full = ids(&format!("item_{i}"), true)?;
            match full.strip_prefix(prefix.as_slice()) {
                Some(rest) if rest.len() > 1 => Ok(rest.to_vec()),
                _ => Err(ElmrecError::Tokenizer(format!(
                    "`item_{i}` does not tokenize as the pieces of `item_` followed by the \
                     number's, so a target cannot copy its prompt pieces"
                ))),
            }
        }
    }
}

impl ElmrecModel {
    /// A host buffer as a tensor of `shape` on the model's device.
    fn upload<T: tch::kind::Element>(&self, data: &[T], shape: [i64; 2]) -> Result<Tensor> {
        Ok(Tensor::f_from_slice(data)?
            .f_view(shape)?
            .f_to(self.device)?)
    }

    /// Builds the model for a split: T5 (random with `cfg.seed`, or
    /// `cfg.init_dir`) or a pretrained LLaMA (GGUF file or Hugging Face
    /// directory; LoRA adapters seeded with `cfg.seed`, or every weight
    /// trainable), the propagated table's random features over the train
    /// graph (only if a task uses it), the incremental table and the
    /// prompts, all at the backbone's hidden size. Trainable: every T5
    /// weight; the LLaMA's LoRA adapters (or every weight); the ELMRec
    /// tables and prompts. `tok` must be the backbone's tokenizer.
    ///
    /// # Errors
    ///
    /// Invalid configuration, graph or model loading failures; `Config`
    /// for a LLaMA whose end-of-sequence token is unknown.
    pub fn new(
        cfg: &ElmrecConfig,
        split: &LeaveOneOut,
        tok: Tokenizer,
        device: Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let (net, d) = match &cfg.backbone {
            Backbone::Llama {
                weights,
                finetune,
                bf16_base,
            } => {
                let net = load_llama(weights, finetune, *bf16_base, cfg.seed, device)?;
                let d = net.llama.config().hidden;
                (Net::Llama(net), d)
            }
            other => {
                let t5cfg = other
                    .config()
                    .ok_or_else(|| ElmrecError::Config("not a T5 backbone".into()))?;
                let mut t5 = match &cfg.init_dir {
                    Some(dir) => T5::load(dir, device)?.0,
                    None => T5::random(&t5cfg, cfg.seed as i64, device)?,
                };
                if cfg.t5_bf16 {
                    t5.set_compute_kind(Kind::BFloat16)?;
                }
                t5.set_requires_grad(true);
                let d = t5.config().d_model;
                (Net::T5(t5), d)
            }
        };
        let (n_users, n_items) = (split.n_users(), split.n_items);
        let modes = [cfg.direct_embedding, cfg.sequential_embedding];
        tch::manual_seed(cfg.seed as i64 ^ 0x0e1e_c0de);
        let graph = if modes.contains(&EmbeddingMode::Graph) {
            let edges = cfg.graph_edges.edges(split, cfg.seed)?;
            let g = BipartiteGraph::from_edges(n_users, n_items, edges)?;
            let prop = TchPropagator::new(&g.normalized()?, SparseLayout::Csr, device)?;
            let lg = LightGcnConfig {
                dim: d,
                layers: cfg.layers,
                sigma: cfg.sigma,
                seed: cfg.seed,
                combine: LayerCombine::Mean,
            };
            let init = lg.initial_embeddings(n_users + n_items)?;
            let e0 = Tensor::f_from_slice(init.as_slice().unwrap_or(&[]))?
                .f_view([to_i64(n_users + n_items)?, to_i64(d)?])?
                .f_to(device)?
                .set_requires_grad(true);
            Some(GraphPart { e0, prop })
        } else {
            None
        };
        let incremental = if modes.contains(&EmbeddingMode::Incremental) {
            Some(
                Tensor::f_randn([INCREMENTAL_ROWS, to_i64(d)?], (Kind::Float, device))?
                    .set_requires_grad(true),
            )
        } else {
            None
        };
        let p = to_i64(2 * cfg.prompts_per_task)?;
        let prompts =
            Tensor::f_randn([p, to_i64(d)?], (Kind::Float, device))?.set_requires_grad(true);
        let mut item_tokens = Vec::with_capacity(n_items);
        for i in 0..n_items {
            let ids = match &net {
                Net::T5(_) => t5_item_target(&tok, i, cfg.target_pieces)?,
                Net::Llama(_) if cfg.target_pieces != TargetPieces::Number => {
                    return Err(ElmrecError::Config(
                        "target pieces other than `number` are for T5 backbones (a decoder-only \
                         backbone's target already follows `item_` in its prompt)"
                            .into(),
                    ))
                }
                Net::Llama(l) => {
                    let mut ids = tok
                        .encode(i.to_string(), false)
                        .map_err(|e| ElmrecError::Tokenizer(e.to_string()))?
                        .get_ids()
                        .to_vec();
                    ids.push(l.eos);
                    ids
                }
            };
            item_tokens.push(ids);
        }
        let trie = ItemTrie::new(
            item_tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (i as u32, t.as_slice())),
        );
        if trie.len() != n_items {
            return Err(ElmrecError::Tokenizer(format!(
                "{} of {n_items} item IDs tokenize ambiguously",
                n_items - trie.len()
            )));
        }
        Ok(Self {
            net,
            tok,
            cfg: cfg.clone(),
            n_users,
            n_items,
            graph,
            incremental,
            prompts,
            item_tokens,
            trie,
            templates: [Task::Direct, Task::Sequential]
                .map(|t| (cfg.prompt_style.training(t), cfg.prompt_style.evaluation(t))),
            device,
        })
    }

    /// The T5 backbone (`None` for a LLaMA backbone).
    pub fn t5(&self) -> Option<&T5> {
        match &self.net {
            Net::T5(t) => Some(t),
            Net::Llama(_) => None,
        }
    }

    /// The LLaMA backbone (`None` for a T5 backbone).
    pub fn llama(&self) -> Option<&Llama> {
        match &self.net {
            Net::T5(_) => None,
            Net::Llama(l) => Some(&l.llama),
        }
    }

    /// The trie of all items (sequential generation).
    pub fn trie(&self) -> &ItemTrie {
        &self.trie
    }

    /// The target tokens (with EOS) of an item.
    pub fn item_tokens(&self, item: u32) -> Option<&[u32]> {
        self.item_tokens.get(item as usize).map(Vec::as_slice)
    }

    /// Every trainable tensor with a stable name: `t5.*` (every T5
    /// weight), or `llama.lora.*` (LoRA adapters, sorted by name) or
    /// `llama.*` (every LLaMA weight, full fine-tuning); then `graph.e0`,
    /// `incremental`, `prompts` where present.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = match &self.net {
            Net::T5(t5) => t5
                .named_parameters()
                .into_iter()
                .map(|(n, t)| (format!("t5.{n}"), t))
                .collect(),
            Net::Llama(l) => match &l.lora {
                Some(vs) => {
                    let mut vars: Vec<(String, Tensor)> = vs
                        .variables()
                        .into_iter()
                        .map(|(n, t)| (format!("llama.{n}"), t))
                        .collect();
                    vars.sort_by(|a, b| a.0.cmp(&b.0));
                    vars
                }
                None => l
                    .llama
                    .named_parameters()
                    .into_iter()
                    .map(|(n, t)| (format!("llama.{n}"), t))
                    .collect(),
            },
        };
        if let Some(g) = &self.graph {
            v.push(("graph.e0".into(), g.e0.shallow_clone()));
        }
        if let Some(t) = &self.incremental {
            v.push(("incremental".into(), t.shallow_clone()));
        }
        v.push(("prompts".into(), self.prompts.shallow_clone()));
        v
    }

    /// The propagated table (mean of layers 0..=L over the current `E0`),
    /// differentiable; `None` when no task uses it.
    ///
    /// # Errors
    ///
    /// As [`TchPropagator::forward`].
    pub fn tables(&self) -> Result<Tables> {
        let graph = match &self.graph {
            Some(g) => {
                let t = g
                    .prop
                    .forward(&g.e0, self.cfg.layers, &LayerCombine::Mean)?;
                let zero = Tensor::f_zeros([1, t.size()[1]], (Kind::Float, self.device))?;
                Some(Tensor::f_cat(&[zero, t], 0)?)
            }
            None => None,
        };
        Ok(Tables { graph })
    }

    /// [`tables`](Self::tables) without autograd history, the graph table
    /// a leaf that collects gradients across micro-batches; pass it to
    /// [`backprop_tables`](Self::backprop_tables) before the optimizer step.
    ///
    /// # Errors
    ///
    /// As [`tables`](Self::tables).
    pub fn leaf_tables(&self) -> Result<Tables> {
        let t = {
            let _guard = tch::no_grad_guard();
            self.tables()?
        };
        Ok(Tables {
            graph: t.graph.map(|g| g.detach().set_requires_grad(true)),
        })
    }

    /// Pushes the gradient a leaf table collected back through the
    /// propagation into `E0` (adds to `E0`'s gradient).
    ///
    /// # Errors
    ///
    /// libtorch failures.
    pub fn backprop_tables(&self, tables: &Tables) -> Result<()> {
        if let (Some(g), Some(leaf)) = (&self.graph, &tables.graph) {
            let grad = leaf.grad();
            if grad.defined() {
                let rows = grad.size()[0];
                let grad = grad.f_narrow(0, 1, rows - 1)?.detach();
                // The propagation is a weighted sum of powers of the
                // normalised adjacency D^-1/2 A D^-1/2 of an undirected
                // graph, a symmetric matrix: it is its own transpose, so
                // E0's gradient is the table's gradient propagated (no
                // autograd through the sparse products, whose backward
                // transposes the CSR matrix every step).
                let e0_grad = {
                    let _guard = tch::no_grad_guard();
                    g.prop
                        .forward(&grad, self.cfg.layers, &LayerCombine::Mean)?
                };
                // d/dE0 sum(E0 * G) = G: adds G to E0's gradient.
                g.e0.f_mul(&e0_grad)?.f_sum(Kind::Float)?.f_backward()?;
            }
        }
        Ok(())
    }

    /// The propagated user and item vectors after `layers` rounds of the
    /// *initial* features mean-combined, as numbers (for plots): users then
    /// items, `[users + items, d]`.
    ///
    /// # Errors
    ///
    /// As [`TchPropagator::forward`]; `Config` if no task uses the graph.
    pub fn propagated(&self, layers: usize) -> Result<Tensor> {
        let g = self
            .graph
            .as_ref()
            .ok_or_else(|| ElmrecError::Config("no graph-aware embedding in this model".into()))?;
        let _guard = tch::no_grad_guard();
        Ok(g.prop.forward(&g.e0, layers, &LayerCombine::Mean)?)
    }

    fn mode(&self, task: Task) -> EmbeddingMode {
        match task {
            Task::Direct => self.cfg.direct_embedding,
            Task::Sequential => self.cfg.sequential_embedding,
        }
    }

    /// The task of a non-empty single-task batch.
    fn batch_task(examples: &[Example]) -> Result<Task> {
        let task = examples
            .first()
            .map(|e| e.task)
            .ok_or_else(|| ElmrecError::Config("empty batch".into()))?;
        if examples.iter().any(|e| e.task != task) {
            return Err(ElmrecError::Config("a batch mixes tasks".into()));
        }
        Ok(task)
    }

    /// Token ids and whole-word ids of one example's prompt (for a
    /// decoder-only backbone, with [`LLAMA_ANSWER_CUE`] appended).
    fn prompt_tokens(&self, task: Task, e: &Example) -> Result<(Vec<i64>, Vec<i64>)> {
        let mode = self.mode(task);
        let (train, eval) = &self.templates[task_index(task)];
        let template = match e.template {
            Some(k) if !train.is_empty() => &train[k % train.len()],
            _ => eval,
        };
        let mut prompt = template.render(e.user, &e.history, &e.candidates)?;
        if matches!(self.net, Net::Llama(_)) {
            prompt.text.push_str(LLAMA_ANSWER_CUE);
        }
        let enc = self
            .tok
            .encode(prompt.text.as_str(), true)
            .map_err(|err| ElmrecError::Tokenizer(err.to_string()))?;
        let ww = match mode {
            EmbeddingMode::None => vec![0; enc.len()],
            EmbeddingMode::Graph => whole_word_ids(
                &prompt,
                &enc,
                WholeWordMode::Graph {
                    n_users: self.n_users as u32,
                },
            )?,
            EmbeddingMode::Incremental => {
                whole_word_ids(&prompt, &enc, WholeWordMode::Incremental)?
            }
        };
        Ok((
            enc.get_ids().iter().map(|&t| i64::from(t)).collect(),
            ww.into_iter().map(i64::from).collect(),
        ))
    }

    /// Token embeddings `emb` (`[B, T, d]`) plus `alpha` times the task's
    /// whole-word rows `ww` (`[B, T]`; `flat_ww` its values), with the
    /// task's prompt vectors prepended: `[B, P + T, d]`. Positions where
    /// `plain` (`[B, T]` bool) is true keep their token embedding (every
    /// other position gets a table row, row 0 for non-ID tokens).
    fn inject_ids(
        &self,
        task: Task,
        emb: &Tensor,
        ww: &Tensor,
        flat_ww: &[i64],
        tables: &Tables,
        plain: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mode = self.mode(task);
        let p = to_i64(self.cfg.prompts_per_task)?;
        let prompts = self.prompts.f_narrow(0, to_i64(task_index(task))? * p, p)?;
        let table = match mode {
            EmbeddingMode::None => None,
            EmbeddingMode::Graph => tables.graph.as_ref(),
            EmbeddingMode::Incremental => {
                if flat_ww.iter().any(|&w| w >= INCREMENTAL_ROWS) {
                    return Err(ElmrecError::Config(format!(
                        "a prompt has more than {} IDs, the incremental table's size",
                        INCREMENTAL_ROWS - 1
                    )));
                }
                self.incremental.as_ref()
            }
        };
        let alpha = match task {
            Task::Direct => self.cfg.alpha_direct,
            Task::Sequential => self.cfg.alpha_sequential,
        };
        if let (Some(plain), Some(table)) = (plain, table) {
            let added = inject(emb, &[Injection::additive(ww, table, alpha)])?
                .f_where_self(&plain.f_logical_not()?.f_unsqueeze(-1)?, emb)?;
            return Ok(if p > 0 {
                inject(&added, &[Injection::prefix(&prompts)])?
            } else {
                added
            });
        }
        let mut inj = Vec::with_capacity(2);
        if let Some(table) = table {
            inj.push(Injection::additive(ww, table, alpha));
        }
        if p > 0 {
            inj.push(Injection::prefix(&prompts));
        }
        Ok(inject(emb, &inj)?)
    }

    /// Encodes a batch of examples of one task (T5 backbones).
    ///
    /// # Errors
    ///
    /// `Config` for an empty or mixed-task batch or a LLaMA backbone
    /// (which has no encoder); tokenizer, prompt or libtorch failures.
    pub fn encode(&self, examples: &[Example], tables: &Tables) -> Result<Encoded> {
        let t5 = match &self.net {
            Net::T5(t5) => t5,
            Net::Llama(_) => {
                return Err(ElmrecError::Config(
                    "a decoder-only backbone has no encoder".into(),
                ))
            }
        };
        let task = Self::batch_task(examples)?;
        let mut ids: Vec<Vec<i64>> = Vec::with_capacity(examples.len());
        let mut wws: Vec<Vec<i64>> = Vec::with_capacity(examples.len());
        for e in examples {
            let (i, w) = self.prompt_tokens(task, e)?;
            ids.push(i);
            wws.push(w);
        }
        let len = ids.iter().map(Vec::len).max().unwrap_or(0);
        let b = to_i64(examples.len())?;
        let mut flat_ids = Vec::with_capacity(examples.len() * len);
        let mut flat_ww = Vec::with_capacity(examples.len() * len);
        let mut flat_mask = Vec::with_capacity(examples.len() * len);
        for (i, w) in ids.iter().zip(&wws) {
            for k in 0..len {
                flat_ids.push(i.get(k).copied().unwrap_or(0));
                flat_ww.push(w.get(k).copied().unwrap_or(0));
                flat_mask.push(i64::from(k < i.len()));
            }
        }
        let shape = [b, to_i64(len)?];
        let ids = self.upload(&flat_ids, shape)?;
        let ww = self.upload(&flat_ww, shape)?;
        let mask = self.upload(&flat_mask, shape)?;
        let p = to_i64(self.cfg.prompts_per_task)?;
        let emb = t5.embed(&ids)?;
        let x = self.inject_ids(task, &emb, &ww, &flat_ww, tables, None)?;
        let mask = if p > 0 { prefix_mask(&mask, p)? } else { mask };
        let hidden = t5.encode_embeds(&x, &mask)?;
        Ok(Encoded { hidden, mask })
    }

    /// Decoder-only input: for each example its prompt tokens, then its
    /// `targets` tokens (possibly none), right-padded (causal attention
    /// keeps the padding out of real positions), embedded with whole-word
    /// vectors on the prompt's ID tokens and the prompt vectors in front:
    /// `[B, P + T, d]`, and each example's prompt length in tokens
    /// (without the `P` prompt vectors).
    fn llama_inputs(
        &self,
        llama: &Llama,
        examples: &[Example],
        targets: &[&[u32]],
        tables: &Tables,
    ) -> Result<(Tensor, Vec<usize>)> {
        let task = Self::batch_task(examples)?;
        let mut ids: Vec<Vec<i64>> = Vec::with_capacity(examples.len());
        let mut wws: Vec<Vec<i64>> = Vec::with_capacity(examples.len());
        let mut lens = Vec::with_capacity(examples.len());
        for (e, t) in examples
            .iter()
            .zip(targets.iter().chain(std::iter::repeat(&&[][..])))
        {
            let (mut i, mut w) = self.prompt_tokens(task, e)?;
            lens.push(i.len());
            i.extend(t.iter().map(|&x| i64::from(x)));
            w.resize(i.len(), 0);
            ids.push(i);
            wws.push(w);
        }
        let len = ids.iter().map(Vec::len).max().unwrap_or(0);
        let mut flat_ids = Vec::with_capacity(examples.len() * len);
        let mut flat_ww = Vec::with_capacity(examples.len() * len);
        let mut flat_plain = Vec::with_capacity(examples.len() * len);
        for ((i, w), &n) in ids.iter().zip(&wws).zip(&lens) {
            for k in 0..len {
                flat_ids.push(i.get(k).copied().unwrap_or(0));
                flat_ww.push(w.get(k).copied().unwrap_or(0));
                flat_plain.push(k >= n);
            }
        }
        let shape = [to_i64(examples.len())?, to_i64(len)?];
        let ids = self.upload(&flat_ids, shape)?;
        let ww = self.upload(&flat_ww, shape)?;
        // Target tokens are fed as plain token embeddings, as generation
        // and candidate scoring feed them.
        let plain = self.upload(&flat_plain, shape)?;
        let emb = llama.embed(&ids)?;
        Ok((
            self.inject_ids(task, &emb, &ww, &flat_ww, tables, Some(&plain))?,
            lens,
        ))
    }

    /// Decoder-only loss: mean cross-entropy of the target tokens.
    fn llama_loss(
        &self,
        l: &LlamaNet,
        examples: &[Example],
        tables: &Tables,
        train: bool,
    ) -> Result<Tensor> {
        let targets = self.targets(examples)?;
        let (x, lens) = self.llama_inputs(&l.llama, examples, &targets, tables)?;
        let p = self.cfg.prompts_per_task;
        let (mut rows, mut cols, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (t, &len)) in targets.iter().zip(&lens).enumerate() {
            for (k, &tok) in t.iter().enumerate() {
                rows.push(to_i64(i)?);
                cols.push(to_i64(p + len + k)? - 1);
                labels.push(i64::from(tok));
            }
        }
        let h = l
            .llama
            .forward_embeds_t(&x, &mut KvCache::default(), None, train)?;
        let rows = Tensor::f_from_slice(&rows)?.f_to(self.device)?;
        let cols = Tensor::f_from_slice(&cols)?.f_to(self.device)?;
        let labels = Tensor::f_from_slice(&labels)?.f_to(self.device)?;
        let picked = h.f_index(&[Some(&rows), Some(&cols)])?;
        Ok(l.llama.logits(&picked)?.f_cross_entropy_loss::<Tensor>(
            &labels,
            None,
            Reduction::Mean,
            -100,
            0.0,
        )?)
    }

    /// Decoder-only prompt embeddings `[1, P + T, d]` of one example.
    fn llama_prompt(&self, l: &LlamaNet, example: &Example, tables: &Tables) -> Result<Tensor> {
        Ok(self
            .llama_inputs(&l.llama, std::slice::from_ref(example), &[], tables)?
            .0)
    }

    /// Decoder inputs `[B, T]` and labels `[B, T]` (-100 = padding) for
    /// the given targets' token sequences.
    fn teacher_forcing(&self, targets: &[&[u32]]) -> Result<(Tensor, Tensor)> {
        let len = targets.iter().map(|t| t.len()).max().unwrap_or(0);
        let start = match &self.net {
            Net::T5(t5) => t5.config().decoder_start_token_id,
            Net::Llama(_) => 0,
        };
        let mut dec = Vec::with_capacity(targets.len() * len);
        let mut lab = Vec::with_capacity(targets.len() * len);
        for t in targets {
            for k in 0..len {
                dec.push(if k == 0 {
                    start
                } else {
                    t.get(k - 1).map_or(0, |&x| i64::from(x))
                });
                lab.push(t.get(k).map_or(-100, |&x| i64::from(x)));
            }
        }
        let shape = [to_i64(targets.len())?, to_i64(len)?];
        Ok((self.upload(&dec, shape)?, self.upload(&lab, shape)?))
    }

    fn targets<'a>(&'a self, examples: &[Example]) -> Result<Vec<&'a [u32]>> {
        examples
            .iter()
            .map(|e| {
                self.item_tokens(e.target)
                    .ok_or_else(|| ElmrecError::Config(format!("item {} out of range", e.target)))
            })
            .collect()
    }

    /// Mean token cross-entropy of generating each example's target, in
    /// evaluation mode (no LoRA dropout).
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode).
    pub fn loss(&self, examples: &[Example], tables: &Tables) -> Result<Tensor> {
        self.loss_t(examples, tables, false)
    }

    /// [`loss`](Self::loss) in training (`train`: LoRA dropout active for a
    /// LLaMA backbone; no effect on T5) or evaluation mode.
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode).
    pub fn loss_t(&self, examples: &[Example], tables: &Tables, train: bool) -> Result<Tensor> {
        let t5 = match &self.net {
            Net::T5(t5) => t5,
            Net::Llama(l) => return self.llama_loss(l, examples, tables, train),
        };
        let enc = self.encode(examples, tables)?;
        let targets = self.targets(examples)?;
        let (dec, labels) = self.teacher_forcing(&targets)?;
        let cross = t5.cross_kv(&enc.hidden)?;
        let h = t5.decode_hidden(&dec, &cross, &enc.mask)?;
        // Vocabulary logits only at the target positions (padding after
        // shorter targets has none): the output head is the largest
        // product of the decoder.
        let d = h.size()[2];
        let labels = labels.f_view([-1])?;
        let keep = labels.f_ge(0)?.f_nonzero()?.f_squeeze_dim(1)?;
        let h = h.f_view([-1, d])?.f_index_select(0, &keep)?;
        let logits = t5.lm_logits(&h)?;
        Ok(logits.f_cross_entropy_loss::<Tensor>(
            &labels.f_index_select(0, &keep)?,
            None,
            Reduction::Mean,
            -100,
            0.0,
        )?)
    }

    /// Log-likelihood of every candidate of a direct example (sum over its
    /// tokens, EOS included), in candidate order.
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode).
    pub fn score_candidates(&self, example: &Example, tables: &Tables) -> Result<Vec<f32>> {
        let _guard = tch::no_grad_guard();
        let targets: Vec<&[u32]> = example
            .candidates
            .iter()
            .map(|&i| {
                self.item_tokens(i)
                    .ok_or_else(|| ElmrecError::Config(format!("item {i} out of range")))
            })
            .collect::<Result<_>>()?;
        let t5 = match &self.net {
            Net::T5(t5) => t5,
            Net::Llama(l) => {
                let x = self.llama_prompt(l, example, tables)?;
                let scores = l
                    .llama
                    .continuation_log_probs(&x, &targets, LLAMA_SCORE_CHUNK)?;
                return Ok(scores.into_iter().map(|s| s as f32).collect());
            }
        };
        let enc = self.encode(std::slice::from_ref(example), tables)?;
        let (dec, _) = self.teacher_forcing(&targets)?;
        let cross = t5.cross_kv(&enc.hidden)?;
        let h = t5.decode_hidden(&dec, &cross, &enc.mask)?;
        // The decoder state at position k depends only on the target's
        // first k tokens, so candidates sharing a prefix share its
        // next-token distribution: the output head (the largest product
        // here) runs once per distinct prefix, not once per candidate and
        // position.
        let width = h.size()[1] as usize;
        let (rows, picks) = prefix_rows(&targets, width);
        let d = h.size()[2];
        let rows = Tensor::f_from_slice(&rows)?.f_to(h.device())?;
        let h = h.f_view([-1, d])?.f_index_select(0, &rows)?;
        let logp = t5.lm_logits(&h)?.f_log_softmax(-1, Kind::Float)?;
        let v = t5.config().vocab_size;
        let flat: Vec<i64> = picks
            .iter()
            .flatten()
            .map(|&(r, tok)| (r * v + tok) as i64)
            .collect();
        let flat = Tensor::f_from_slice(&flat)?.f_to(logp.device())?;
        let picked = Vec::<f32>::try_from(
            logp.f_view([-1])?
                .f_index_select(0, &flat)?
                .f_to(Device::Cpu)?,
        )?;
        let mut picked = picked.into_iter();
        Ok(picks
            .iter()
            .map(|p| picked.by_ref().take(p.len()).sum())
            .collect())
    }

    /// Beam search constrained to `trie`'s items; items best first.
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode), [`T5::beam_search_constrained`] and
    /// [`Llama::beam_search_embeds_constrained`].
    pub fn generate(
        &self,
        example: &Example,
        tables: &Tables,
        trie: &ItemTrie,
        beams: usize,
    ) -> Result<Vec<u32>> {
        Ok(self
            .generate_scored(example, tables, trie, beams)?
            .into_iter()
            .map(|(i, _)| i)
            .collect())
    }

    /// As [`generate`](Self::generate), with each item's beam score (the
    /// summed log-probability of its tokens; higher is better).
    ///
    /// # Errors
    ///
    /// As [`generate`](Self::generate).
    pub fn generate_scored(
        &self,
        example: &Example,
        tables: &Tables,
        trie: &ItemTrie,
        beams: usize,
    ) -> Result<Vec<(u32, f32)>> {
        let _guard = tch::no_grad_guard();
        let max_new = self.item_tokens.iter().map(Vec::len).max().unwrap_or(1);
        let mut cfg = BeamConfig {
            beams,
            max_new,
            eos: None,
            length_penalty: 1.0,
            num_return: beams,
        };
        let hyps = match &self.net {
            Net::T5(t5) => {
                let enc = self.encode(std::slice::from_ref(example), tables)?;
                cfg.eos = Some(t5.config().eos_token_id as u32);
                t5.beam_search_constrained(
                    &enc.hidden,
                    &enc.mask,
                    &cfg,
                    &mut |prefix: &[u32]| trie.allowed(prefix),
                )?
            }
            Net::Llama(l) => {
                let x = self.llama_prompt(l, example, tables)?;
                cfg.eos = Some(l.eos);
                l.llama
                    .beam_search_embeds_constrained(&x, &cfg, &mut |prefix: &[u32]| {
                        trie.allowed(prefix)
                    })?
            }
        };
        let mut out: Vec<(u32, f32)> = Vec::with_capacity(hyps.len());
        for h in hyps {
            if let Some(i) = trie.item_of(&h.tokens) {
                if !out.iter().any(|&(j, _)| j == i) {
                    out.push((i, h.score as f32));
                }
            }
        }
        Ok(out)
    }

    /// The trie of a candidate list.
    pub fn candidate_trie(&self, candidates: &[u32]) -> ItemTrie {
        ItemTrie::new(
            candidates
                .iter()
                .filter_map(|&i| self.item_tokens(i).map(|t| (i, t))),
        )
    }

    /// Number of users and items.
    pub fn sizes(&self) -> (usize, usize) {
        (self.n_users, self.n_items)
    }
}

/// Loads a LLaMA backbone from a GGUF file or a Hugging Face directory and
/// prepares it for `finetune` (LoRA adapters seeded with `seed`, over bf16
/// block projections when `bf16_base`, or every weight trainable).
/// For teacher-forced `targets` padded to `width` positions: the flat
/// (candidate-major) decoder positions of the distinct prefixes, in first
/// occurrence order, and for each target its `(row, token)` picks: the
/// index into those rows of each position's prefix and the token scored
/// there.
fn prefix_rows(targets: &[&[u32]], width: usize) -> (Vec<i64>, Vec<Vec<(usize, usize)>>) {
    let mut seen: HashMap<&[u32], usize> = HashMap::new();
    let mut rows = Vec::new();
    let picks = targets
        .iter()
        .enumerate()
        .map(|(c, t)| {
            (0..t.len())
                .map(|k| {
                    let r = *seen.entry(&t[..k]).or_insert_with(|| {
                        rows.push((c * width + k) as i64);
                        rows.len() - 1
                    });
                    (r, t[k] as usize)
                })
                .collect()
        })
        .collect();
    (rows, picks)
}

fn load_llama(
    weights: &std::path::Path,
    finetune: &Finetune,
    bf16_base: bool,
    seed: u64,
    device: Device,
) -> Result<LlamaNet> {
    let (mut llama, eos) = if weights.is_dir() {
        let (llama, _report) = Llama::from_hf_dir(weights, device)?;
        let path = weights.join("config.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ElmrecError::Config(format!("{}: {e}", path.display())))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ElmrecError::Config(format!("{}: {e}", path.display())))?;
        let eos = match v.get("eos_token_id") {
            Some(serde_json::Value::Array(a)) => a.first().and_then(serde_json::Value::as_u64),
            Some(x) => x.as_u64(),
            None => None,
        };
        (llama, eos)
    } else {
        let file = GgufFile::read(weights)?;
        let eos = graft_lm::tokenizer::special_ids(&file).eos.map(u64::from);
        (Llama::from_gguf(&file, device)?, eos)
    };
    let eos = eos.and_then(|e| u32::try_from(e).ok()).ok_or_else(|| {
        ElmrecError::Config(format!("{}: no end-of-sequence token", weights.display()))
    })?;
    let lora = match finetune {
        Finetune::Lora(cfg) => {
            if bf16_base {
                llama.set_projection_kind(tch::Kind::BFloat16)?;
            }
            tch::manual_seed(seed as i64 ^ 0x10aa);
            let vs = tch::nn::VarStore::new(device);
            llama.attach_lora(&vs.root().sub("lora"), cfg)?;
            Some(vs)
        }
        Finetune::Full => {
            llama.set_requires_grad(true);
            None
        }
    };
    Ok(LlamaNet { llama, lora, eos })
}

#[cfg(test)]
mod tests {
    use super::prefix_rows;

    #[test]
    fn shared_prefixes_share_one_row() {
        let t: [&[u32]; 3] = [&[5, 6, 1], &[5, 7, 1], &[8, 1]];
        let (rows, picks) = prefix_rows(&t, 3);
        // [], [5], [5 6], [5 7], [8] at their first flat positions.
        assert_eq!(rows, vec![0, 1, 2, 5, 7]);
        assert_eq!(
            picks,
            vec![
                vec![(0, 5), (1, 6), (2, 1)],
                vec![(0, 5), (1, 7), (3, 1)],
                vec![(0, 8), (4, 1)],
            ]
        );
    }
}
