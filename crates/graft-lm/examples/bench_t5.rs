//! One T5 training step in graft-lm against Hugging Face transformers'
//! `T5ForConditionalGeneration` on the same CPU, same threads, one run.
//!
//! ```text
//! cargo run --release -p graft-lm --features tch --example bench_t5 -- --threads 2
//! ```
//!
//! Workload: random weights of t5-mini (`T5Config::t5_mini`) and t5-small,
//! a batch of 64 random source sequences of 100 tokens and targets of 6
//! tokens (the shape of an ELMRec step), mean token cross-entropy,
//! backward, AdamW (lr 1e-3, PyTorch's defaults otherwise); the median of
//! `--repeats` steps after one warm-up. graft runs in `f32` and with its
//! matrix products in bf16 (`T5::set_compute_kind`); transformers in
//! `f32` and under `torch.autocast("cpu", dtype=torch.bfloat16)`, the
//! fastest a PyTorch user gets on a CPU. The Python side is
//! `python/bench_t5.py`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use graft_lm::{T5Config, T5};
use graft_train::{AdamW, AdamWConfig};
use tch::{Device, Kind, Reduction, Tensor};

type BoxResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Args {
    threads: usize,
    python: PathBuf,
    repeats: usize,
    batch: i64,
    source: i64,
    target: i64,
    sizes: Vec<String>,
}

fn args() -> BoxResult<Args> {
    let mut a = Args {
        threads: 2,
        python: std::env::var_os("GRAFT_PYTHON")
            .map_or_else(|| PathBuf::from(".venv/bin/python"), PathBuf::from),
        repeats: 3,
        batch: 64,
        source: 100,
        target: 6,
        sizes: vec!["t5-mini".into(), "t5-small".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--threads" => a.threads = val()?.parse()?,
            "--python" => a.python = val()?.into(),
            "--repeats" => a.repeats = val()?.parse()?,
            "--batch" => a.batch = val()?.parse()?,
            "--source" => a.source = val()?.parse()?,
            "--target" => a.target = val()?.parse()?,
            "--sizes" => a.sizes = val()?.split(',').map(str::to_string).collect(),
            "-h" | "--help" => {
                println!(
                    "bench_t5 [--threads N] [--python PY] [--repeats N] [--batch B] \
                     [--source S] [--target T] [--sizes t5-mini,t5-small]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(a)
}

fn config(size: &str) -> BoxResult<T5Config> {
    match size {
        "t5-mini" => Ok(T5Config::t5_mini()),
        "t5-small" => Ok(T5Config::t5_small()),
        other => Err(format!("unknown size {other:?} (t5-mini, t5-small)").into()),
    }
}

/// Wall-clock seconds of one step's phases (zeroing the gradients is
/// counted with the optimizer, as in PyTorch's `zero_grad` + `step`).
#[derive(Clone, Copy, Default)]
struct Phases {
    forward: f64,
    backward: f64,
    optimizer: f64,
}

impl Phases {
    fn total(&self) -> f64 {
        self.forward + self.backward + self.optimizer
    }
}

/// Per phase, the median over `repeats` calls of `f`, after one warm-up;
/// the total is the median of the step totals.
fn median_phases(
    repeats: usize,
    mut f: impl FnMut() -> BoxResult<Phases>,
) -> BoxResult<(f64, Phases)> {
    f()?;
    let runs = (0..repeats.max(1))
        .map(|_| f())
        .collect::<BoxResult<Vec<_>>>()?;
    let median = |g: &dyn Fn(&Phases) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(g).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((
        median(&Phases::total),
        Phases {
            forward: median(&|p| p.forward),
            backward: median(&|p| p.backward),
            optimizer: median(&|p| p.optimizer),
        },
    ))
}

/// Seconds of one training step of `size` with products in `kind`, and
/// of its phases.
fn train_step(a: &Args, size: &str, kind: Kind) -> BoxResult<(f64, Phases)> {
    let cfg = config(size)?;
    let mut t5 = T5::random(&cfg, 0, Device::Cpu)?;
    t5.set_compute_kind(kind)?;
    t5.set_requires_grad(true);
    let mut opt = AdamW::new(AdamWConfig::default(), t5.named_parameters())?;
    tch::manual_seed(0);
    let opts = (Kind::Int64, Device::Cpu);
    let src = Tensor::f_randint_low(3, 32_100, [a.batch, a.source], opts)?;
    let labels = Tensor::f_randint_low(3, 32_100, [a.batch, a.target], opts)?;
    let start = Tensor::f_zeros([a.batch, 1], opts)?;
    let dec = Tensor::f_cat(&[&start, &labels.f_narrow(1, 0, a.target - 1)?], 1)?;
    let mask = Tensor::f_ones([a.batch, a.source], opts)?;
    median_phases(a.repeats, || {
        let t0 = Instant::now();
        let enc = t5.encode(&src, &mask)?;
        let logits = t5.decode(&dec, &enc, &mask)?;
        let v = logits.size()[2];
        let loss = logits.f_view([-1, v])?.f_cross_entropy_loss::<Tensor>(
            &labels.f_view([-1])?,
            None,
            Reduction::Mean,
            -100,
            0.0,
        )?;
        let _ = loss.f_double_value(&[])?;
        let t1 = Instant::now();
        loss.f_backward()?;
        let t2 = Instant::now();
        opt.step()?;
        opt.zero_grad();
        Ok(Phases {
            forward: (t1 - t0).as_secs_f64(),
            backward: (t2 - t1).as_secs_f64(),
            optimizer: t2.elapsed().as_secs_f64(),
        })
    })
}

fn main() -> BoxResult<()> {
    let a = args()?;
    tch::set_num_threads(a.threads as i32);
    let mut ours = Vec::new();
    for size in &a.sizes {
        for (label, kind) in [("f32", Kind::Float), ("bf16", Kind::BFloat16)] {
            ours.push((size.clone(), label, train_step(&a, size, kind)?));
        }
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/bench_t5.py");
    let out = Command::new(&a.python)
        .arg(&script)
        .args(["--threads", &a.threads.to_string()])
        .args(["--repeats", &a.repeats.to_string()])
        .args(["--batch", &a.batch.to_string()])
        .args(["--source", &a.source.to_string()])
        .args(["--target", &a.target.to_string()])
        .args(["--sizes", &a.sizes.join(",")])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let mut theirs: HashMap<(String, String), f64> = HashMap::new();
    let mut their_phases: Vec<(String, String, Phases)> = Vec::new();
    let mut versions = String::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if let (Some(s), Some(p), Some(t)) = (
            v["size"].as_str(),
            v["precision"].as_str(),
            v["seconds"].as_f64(),
        ) {
            theirs.insert((s.to_string(), p.to_string()), t);
            let phase = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            their_phases.push((
                s.to_string(),
                format!("hf {p}"),
                Phases {
                    forward: phase("forward"),
                    backward: phase("backward"),
                    optimizer: phase("optimizer"),
                },
            ));
            versions = format!(
                "torch {}, transformers {}",
                v["torch"].as_str().unwrap_or("?"),
                v["transformers"].as_str().unwrap_or("?")
            );
        }
    }
    println!(
        "T5 training step (batch {} x {} source / {} target tokens, AdamW), {} threads, \
         median of {}; {versions}",
        a.batch, a.source, a.target, a.threads, a.repeats
    );
    println!("bf16: {}", graft_lm::bf16_support().describe());
    println!(
        "{:<10} {:<6} {:>10} {:>12} {:>16} {:>9} {:>9}",
        "model", "graft", "graft s", "hf f32 s", "hf bf16-auto s", "vs f32", "vs bf16"
    );
    for (size, label, (t, _)) in &ours {
        let f = theirs
            .get(&(size.clone(), "f32".into()))
            .copied()
            .unwrap_or(f64::NAN);
        let b = theirs
            .get(&(size.clone(), "bf16-autocast".into()))
            .copied()
            .unwrap_or(f64::NAN);
        println!(
            "{size:<10} {label:<6} {t:>10.3} {f:>12.3} {b:>16.3} {:>8.2}x {:>8.2}x",
            f / t,
            b / t
        );
    }
    println!("\nphases (median s; the optimizer includes zeroing the gradients)");
    println!(
        "{:<10} {:<18} {:>9} {:>9} {:>9}",
        "model", "run", "forward", "backward", "optimizer"
    );
    let ours = ours
        .iter()
        .map(|(s, l, (_, p))| (s.clone(), format!("graft {l}"), *p));
    for (size, run, p) in ours.chain(their_phases) {
        println!(
            "{size:<10} {run:<18} {:>9.3} {:>9.3} {:>9.3}",
            p.forward, p.backward, p.optimizer
        );
    }
    Ok(())
}
