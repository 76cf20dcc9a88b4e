//! The ELMRec model: a language model ([`ElmrecBackbone`]: T5, or a
//! decoder-only LLaMA such as SmolLM2) whose ID tokens get whole-word
//! embeddings (graph-aware or incremental), with continuous prompt vectors
//! per task.

use graft_data::LeaveOneOut;
use graft_graph::BipartiteGraph;
use graft_lm::T5;
use graft_prompt::{whole_word_ids, Task, Template, WholeWordMode};
use graft_propagate::{
    propagate_tensor, LayerCombine, LightGcnConfig, RustCsr, SparseLayout, TchPropagator,
};
use tch::{Device, Kind, Tensor};
use tokenizers::Tokenizer;

use crate::backbone::{ElmrecBackbone, Injector, LlamaBackbone, PromptBatch};
use crate::config::{Backbone, ElmrecConfig, EmbeddingMode};
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
    ///
    /// [`PromptStyle::training`]: graft_prompt::PromptStyle::training
    /// [`PromptStyle::evaluation`]: graft_prompt::PromptStyle::evaluation
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
    /// graft's own CSR kernel for the propagations without autograd on the
    /// CPU (two per training step: the table, and `E0`'s gradient): 1.2x
    /// (Beauty) and 1.5x (Sports) faster training steps with one thread
    /// (docs/benchmarks.md). `None` on other devices.
    cpu: Option<RustCsr>,
}

impl GraphPart {
    /// Mean of layers `0..=layers` of `x` (`[users + items, d]`) propagated,
    /// without autograd history.
    fn propagate_detached(&self, x: &Tensor, layers: usize) -> Result<Tensor> {
        match &self.cpu {
            Some(cpu) if x.device() == Device::Cpu => {
                Ok(propagate_tensor(cpu, x, layers, &LayerCombine::Mean)?)
            }
            _ => Ok(tch::no_grad(|| {
                self.prop.forward(x, layers, &LayerCombine::Mean)
            })?),
        }
    }
}

/// Tables computed once per forward (or once per evaluation pass).
#[derive(Debug)]
pub struct Tables {
    /// `[1 + users + items, d]`: row 0 zero, then users, then items.
    graph: Option<Tensor>,
}

/// A language model + whole-word embeddings + continuous prompts.
#[derive(Debug)]
pub struct ElmrecModel {
    net: Box<dyn ElmrecBackbone>,
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

impl ElmrecModel {
    /// Builds the model for a split with the backbone `cfg.backbone`
    /// names: T5 (random with `cfg.seed`, or `cfg.init_dir`; bf16 products
    /// when `cfg.t5_bf16`; every weight trainable) or a pretrained LLaMA
    /// (GGUF file or Hugging Face directory; LoRA adapters seeded with
    /// `cfg.seed`, or every weight trainable). Then as
    /// [`with_backbone`](Self::with_backbone). `tok` must be the
    /// backbone's tokenizer.
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
        let net: Box<dyn ElmrecBackbone> = match &cfg.backbone {
            Backbone::Llama {
                weights,
                finetune,
                bf16_base,
            } => Box::new(LlamaBackbone::load(
                weights, finetune, *bf16_base, cfg.seed, device,
            )?),
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
                Box::new(t5)
            }
        };
        Self::with_backbone(cfg, split, tok, net, device)
    }

    /// Builds the model around a ready backbone (any [`ElmrecBackbone`];
    /// `cfg.backbone` is not read): the propagated table's random features
    /// over the train graph (only if a task uses it), the incremental
    /// table and the prompts, all at the backbone's hidden size, and every
    /// item's target tokens. Trainable: the backbone's
    /// [`named_parameters`](ElmrecBackbone::named_parameters), the ELMRec
    /// tables and prompts. `tok` must be the backbone's tokenizer.
    ///
    /// # Errors
    ///
    /// Invalid configuration or graph; `Tokenizer` when two items' targets
    /// are the same tokens or one is a prefix of another.
    pub fn with_backbone(
        cfg: &ElmrecConfig,
        split: &LeaveOneOut,
        tok: Tokenizer,
        net: Box<dyn ElmrecBackbone>,
        device: Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let d = net.hidden_size();
        let (n_users, n_items) = (split.n_users(), split.n_items);
        let modes = [cfg.direct_embedding, cfg.sequential_embedding];
        tch::manual_seed(cfg.seed as i64 ^ 0x0e1e_c0de);
        let graph = if modes.contains(&EmbeddingMode::Graph) {
            let edges = cfg.graph_edges.edges(split, cfg.seed)?;
            let g = BipartiteGraph::from_edges(n_users, n_items, edges)?;
            let adj = g.normalized()?;
            let prop = TchPropagator::new(&adj, SparseLayout::Csr, device)?;
            // As many threads as libtorch's intra-op pool when the model is
            // built; libtorch's product if the pool cannot be made.
            let cpu = match device {
                Device::Cpu => RustCsr::new(&adj)?
                    .with_threads(usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1))
                    .ok(),
                _ => None,
            };
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
            Some(GraphPart { e0, prop, cpu })
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
        let item_tokens = (0..n_items)
            .map(|i| net.item_target(&tok, i, cfg.target_pieces))
            .collect::<Result<Vec<_>>>()?;
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

    /// The language model under the whole-word embeddings; downcast with
    /// [`as_any`](ElmrecBackbone::as_any) (`graft_lm::T5`,
    /// [`LlamaBackbone`]).
    pub fn backbone(&self) -> &dyn ElmrecBackbone {
        self.net.as_ref()
    }

    /// The T5 backbone (`None` for another backbone).
    pub fn t5(&self) -> Option<&T5> {
        self.net.as_any().downcast_ref::<T5>()
    }

    /// The LLaMA backbone (`None` for another backbone).
    pub fn llama(&self) -> Option<&graft_lm::llama::Llama> {
        self.net
            .as_any()
            .downcast_ref::<LlamaBackbone>()
            .map(LlamaBackbone::llama)
    }

    /// The trie of all items (sequential generation).
    pub fn trie(&self) -> &ItemTrie {
        &self.trie
    }

    /// The target tokens (with EOS) of an item.
    pub fn item_tokens(&self, item: u32) -> Option<&[u32]> {
        self.item_tokens.get(item as usize).map(Vec::as_slice)
    }

    /// Every trainable tensor with a stable name: the backbone's (`t5.*`:
    /// every T5 weight; `llama.lora.*`: LoRA adapters, sorted by name, or
    /// `llama.*`: every LLaMA weight), then `graph.e0`, `incremental`,
    /// `prompts` where present.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = self.net.named_parameters();
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
        self.tables_with(false)
    }

    /// [`tables`](Self::tables), differentiable or (`detached`) computed
    /// without autograd on the device's fastest kernel.
    fn tables_with(&self, detached: bool) -> Result<Tables> {
        let graph = match &self.graph {
            Some(g) => {
                let t = if detached {
                    g.propagate_detached(&g.e0, self.cfg.layers)?
                } else {
                    g.prop
                        .forward(&g.e0, self.cfg.layers, &LayerCombine::Mean)?
                };
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
        let t = self.tables_with(true)?;
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
                let e0_grad = g.propagate_detached(&grad, self.cfg.layers)?;
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
        g.propagate_detached(&g.e0, layers)
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

    /// Token ids and whole-word ids of one example's prompt (with the
    /// backbone's [`prompt_suffix`](ElmrecBackbone::prompt_suffix)).
    fn prompt_tokens(&self, task: Task, e: &Example) -> Result<(Vec<i64>, Vec<i64>)> {
        let mode = self.mode(task);
        let (train, eval) = &self.templates[task_index(task)];
        let template = match e.template {
            Some(k) if !train.is_empty() => &train[k % train.len()],
            _ => eval,
        };
        let mut prompt = template.render(e.user, &e.history, &e.candidates)?;
        prompt.text.push_str(self.net.prompt_suffix());
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

    /// The prompts of a non-empty batch of examples of one task, tokenized,
    /// with the task's whole-word table, scale and prompt vectors.
    ///
    /// # Errors
    ///
    /// `Config` for an empty or mixed-task batch, or a prompt with more IDs
    /// than the incremental table has rows; tokenizer or prompt failures.
    pub fn prompt_batch<'a>(
        &'a self,
        examples: &[Example],
        tables: &'a Tables,
    ) -> Result<PromptBatch<'a>> {
        let task = Self::batch_task(examples)?;
        let (ids, whole_words): (Vec<_>, Vec<_>) = examples
            .iter()
            .map(|e| self.prompt_tokens(task, e))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let table = match self.mode(task) {
            EmbeddingMode::None => None,
            EmbeddingMode::Graph => tables.graph.as_ref(),
            EmbeddingMode::Incremental => {
                if whole_words.iter().flatten().any(|&w| w >= INCREMENTAL_ROWS) {
                    return Err(ElmrecError::Config(format!(
                        "a prompt has more than {} IDs, the incremental table's size",
                        INCREMENTAL_ROWS - 1
                    )));
                }
                self.incremental.as_ref()
            }
        };
        let p = to_i64(self.cfg.prompts_per_task)?;
        let injector = Injector {
            prompts: self.prompts.f_narrow(0, to_i64(task_index(task))? * p, p)?,
            table,
            alpha: match task {
                Task::Direct => self.cfg.alpha_direct,
                Task::Sequential => self.cfg.alpha_sequential,
            },
        };
        Ok(PromptBatch::new(ids, whole_words, injector, self.device))
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
    /// As [`prompt_batch`](Self::prompt_batch); `Config` for a target out
    /// of range; libtorch failures.
    pub fn loss(&self, examples: &[Example], tables: &Tables) -> Result<Tensor> {
        self.loss_t(examples, tables, false)
    }

    /// [`loss`](Self::loss) in training (`train`: LoRA dropout active for a
    /// LLaMA backbone; no effect on T5) or evaluation mode.
    ///
    /// # Errors
    ///
    /// As [`loss`](Self::loss).
    pub fn loss_t(&self, examples: &[Example], tables: &Tables, train: bool) -> Result<Tensor> {
        let targets = self.targets(examples)?;
        let batch = self.prompt_batch(examples, tables)?;
        self.net.loss(&batch, &targets, train)
    }

    /// Log-likelihood of every candidate of a direct example (sum over its
    /// tokens, EOS included), in candidate order.
    ///
    /// # Errors
    ///
    /// As [`loss`](Self::loss).
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
        let batch = self.prompt_batch(std::slice::from_ref(example), tables)?;
        self.net.score(&batch, &targets)
    }

    /// Beam search constrained to `trie`'s items; items best first.
    ///
    /// # Errors
    ///
    /// As [`prompt_batch`](Self::prompt_batch) and the backbone's
    /// [`beam_search`](ElmrecBackbone::beam_search).
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
        let batch = self.prompt_batch(std::slice::from_ref(example), tables)?;
        let hyps = self
            .net
            .beam_search(&batch, beams, max_new, &mut |prefix: &[u32]| {
                trie.allowed(prefix)
            })?;
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
