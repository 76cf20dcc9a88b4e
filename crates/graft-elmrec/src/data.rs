//! Training, validation and test examples: the official code's samplers
//! (random history segments for the sequential task, one train positive
//! among sampled negatives for the direct task), made deterministic in
//! (seed, step, micro-batch) so a resumed run sees the same batches.

use std::collections::HashSet;

use graft_baselines::{EvalCase, EvalSet};
use graft_data::rng::{below, shuffle, stream_rng};
use graft_data::LeaveOneOut;
use graft_prompt::Task;

use crate::config::{ElmrecConfig, Sampling, TaskMix};
use crate::model::Example;

/// Deterministic micro-batch sampler over the train split.
#[derive(Debug)]
pub struct Sampler<'a> {
    split: &'a LeaveOneOut,
    seq_users: Vec<u32>,
    direct_users: Vec<u32>,
    positives: Vec<HashSet<u32>>,
    micro_batch: usize,
    accumulation: usize,
    history_len: usize,
    negatives: usize,
    tasks: TaskMix,
    seed: u64,
    /// Training templates per task (direct, sequential); one is drawn per
    /// example when there are several.
    n_templates: [usize; 2],
    sampling: Sampling,
}

impl<'a> Sampler<'a> {
    /// A sampler for `split` with `cfg`'s batch sizes, history length,
    /// negatives, task mix and seed.
    pub fn new(split: &'a LeaveOneOut, cfg: &ElmrecConfig) -> Self {
        let users = 0..split.n_users() as u32;
        Self {
            split,
            seq_users: users
                .clone()
                .filter(|&u| split.train[u as usize].len() >= 2)
                .collect(),
            direct_users: users
                .clone()
                .filter(|&u| !split.train[u as usize].is_empty())
                .collect(),
            positives: users
                .map(|u| split.all_items(u).into_iter().collect())
                .collect(),
            micro_batch: cfg.micro_batch,
            accumulation: cfg.accumulation(),
            history_len: cfg.history_len,
            negatives: cfg.train_negatives,
            tasks: cfg.tasks,
            seed: cfg.seed,
            n_templates: [Task::Direct, Task::Sequential]
                .map(|t| cfg.prompt_style.training(t).len()),
            sampling: cfg.sampling,
        }
    }

    /// The task of micro-batch `micro` of step `step` (alternating when
    /// both are trained).
    pub fn task(&self, step: u64, micro: usize) -> Task {
        match self.tasks {
            TaskMix::Direct => Task::Direct,
            TaskMix::Sequential => Task::Sequential,
            TaskMix::Both => {
                if (step * self.accumulation as u64 + micro as u64) % 2 == 0 {
                    Task::Sequential
                } else {
                    Task::Direct
                }
            }
        }
    }

    /// Micro-batch `micro` of optimizer step `step`: a pure function of
    /// (seed, step, micro). [`Sampling::Random`] draws each example's user
    /// at random; [`Sampling::Epochs`] visits every user once per epoch
    /// (per task, in a seeded order per epoch), as the official code's
    /// loaders do.
    pub fn micro_batch(&self, step: u64, micro: usize) -> Vec<Example> {
        let stream = step * self.accumulation as u64 + micro as u64;
        let task = self.task(step, micro);
        let users = match task {
            Task::Sequential => &self.seq_users,
            Task::Direct => &self.direct_users,
        };
        if users.is_empty() {
            return Vec::new();
        }
        match self.sampling {
            Sampling::Random => {
                let mut rng = stream_rng(self.seed ^ 0x5a3b_1e00, stream);
                let mut out = Vec::with_capacity(self.micro_batch);
                for _ in 0..self.micro_batch {
                    let u = users[below(&mut rng, users.len() as u32) as usize];
                    out.extend(self.example(task, u, &mut rng));
                }
                out
            }
            Sampling::Epochs => {
                // The index of this micro-batch among its task's.
                let index = match self.tasks {
                    TaskMix::Both => stream / 2,
                    _ => stream,
                };
                let salt = match task {
                    Task::Sequential => 0x5e9_0000,
                    Task::Direct => 0xd12_0000,
                };
                let n = users.len() as u64;
                let first = index * self.micro_batch as u64;
                let mut order: Option<(u64, Vec<u32>)> = None;
                let mut out = Vec::with_capacity(self.micro_batch);
                for visit in first..first + self.micro_batch as u64 {
                    let epoch = visit / n;
                    if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                        let mut o = users.clone();
                        shuffle(&mut stream_rng(self.seed ^ salt ^ 0xe90c, epoch), &mut o);
                        order = Some((epoch, o));
                    }
                    let u = order.as_ref().map_or(0, |(_, o)| o[(visit % n) as usize]);
                    let mut rng = stream_rng(self.seed ^ salt, visit);
                    out.extend(self.example(task, u, &mut rng));
                }
                out
            }
        }
    }

    /// [`micro_batch`](Self::micro_batch) with the step's sequential
    /// examples sorted by history length before they are cut into
    /// micro-batches (ties keep their order), so each forward pass pads
    /// prompts of similar lengths: the same examples in each step, grouped
    /// differently. Direct prompts all hold the same number of candidates
    /// and are returned as drawn.
    pub fn bucketed_micro_batch(&self, step: u64, micro: usize) -> Vec<Example> {
        let task = self.task(step, micro);
        if task == Task::Direct {
            return self.micro_batch(step, micro);
        }
        let same: Vec<usize> = (0..self.accumulation)
            .filter(|&m| self.task(step, m) == task)
            .collect();
        let Some(rank) = same.iter().position(|&m| m == micro) else {
            return Vec::new();
        };
        let mut pool: Vec<Example> = same
            .iter()
            .flat_map(|&m| self.micro_batch(step, m))
            .collect();
        pool.sort_by_key(|e| e.history.len());
        pool.into_iter()
            .skip(rank * self.micro_batch)
            .take(self.micro_batch)
            .collect()
    }

    /// The example of one visit of user `u` for `task`, drawn from `rng`:
    /// a random window of the train sequence (sequential), or a random
    /// train item among sampled negatives (direct).
    fn example(&self, task: Task, u: u32, rng: &mut impl rand_core::RngCore) -> Option<Example> {
        let train = &self.split.train[u as usize];
        match task {
            Task::Sequential => {
                let n = train.len() as u32;
                let start = below(rng, n - 1);
                let end = start + 1 + below(rng, n - 1 - start);
                let seg = &train[start as usize..=end as usize];
                let seg = &seg[seg.len().saturating_sub(self.history_len + 1)..];
                let (target, history) = seg.split_last().map(|(t, h)| (*t, h.to_vec()))?;
                Some(Example {
                    task,
                    user: u,
                    history,
                    candidates: Vec::new(),
                    target,
                    template: self.draw_template(rng, task),
                })
            }
            Task::Direct => {
                let target = train[below(rng, train.len() as u32) as usize];
                let pos = &self.positives[u as usize];
                let free = self.split.n_items.saturating_sub(pos.len());
                let want = self.negatives.min(free);
                let mut cands: Vec<u32> = Vec::with_capacity(want + 1);
                while cands.len() < want {
                    let i = below(rng, self.split.n_items as u32);
                    if !pos.contains(&i) && !cands.contains(&i) {
                        cands.push(i);
                    }
                }
                cands.push(target);
                shuffle(rng, &mut cands);
                Some(Example {
                    task,
                    user: u,
                    history: Vec::new(),
                    candidates: cands,
                    target,
                    template: self.draw_template(rng, task),
                })
            }
        }
    }
}

impl Sampler<'_> {
    /// One training template index for `task`, drawn after the example's
    /// other draws; no draw with a single template (so the streams of
    /// [`PromptStyle::PodComma`](graft_prompt::PromptStyle) runs are those
    /// of graft's first runs).
    fn draw_template(&self, rng: &mut impl rand_core::RngCore, task: Task) -> Option<usize> {
        let n = self.n_templates[match task {
            Task::Direct => 0,
            Task::Sequential => 1,
        }];
        Some(if n > 1 {
            below(rng, n as u32) as usize
        } else {
            0
        })
    }
}

/// The direct example of an evaluation case (its candidate list).
pub fn direct_example(case: &EvalCase) -> Example {
    Example {
        target: case.target,
        ..Example::direct_query(case.user, &case.candidates)
    }
}

/// The sequential example of an evaluation case (its last `history_len`
/// items).
pub fn sequential_example(case: &EvalCase, history_len: usize) -> Example {
    Example {
        target: case.target,
        ..Example::sequential_query(case.user, &case.history, history_len)
    }
}

/// Validation micro-batches: each case once as a sequential and once as a
/// direct example, grouped by task into chunks of `micro_batch`.
pub fn validation_batches(
    set: &EvalSet,
    history_len: usize,
    micro_batch: usize,
    tasks: TaskMix,
) -> Vec<Vec<Example>> {
    let mut out = Vec::new();
    let mb = micro_batch.max(1);
    if tasks != TaskMix::Direct {
        let seq: Vec<Example> = set
            .cases
            .iter()
            .filter(|c| !c.history.is_empty())
            .map(|c| sequential_example(c, history_len))
            .collect();
        out.extend(seq.chunks(mb).map(<[Example]>::to_vec));
    }
    if tasks != TaskMix::Sequential {
        let direct: Vec<Example> = set.cases.iter().map(direct_example).collect();
        out.extend(direct.chunks(mb).map(<[Example]>::to_vec));
    }
    out
}
