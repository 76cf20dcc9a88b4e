//! Atomic files and crash-safe checkpoints.
//!
//! A checkpoint directory holds `ckpt-{step:08}.safetensors` (the optimizer
//! state, see [`AdamW::state_tensors`]) and `latest.json`, which names that
//! file, its step and the caller's serialized state. Both are written to a
//! temporary file in the same directory, fsynced and renamed over the target,
//! the tensors first; `latest.json` is the commit point. A kill at any moment
//! therefore leaves `latest.json` naming a complete file (the previous or the
//! new checkpoint). Older `ckpt-*` files are deleted only after the commit.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::adamw::AdamW;
use crate::error::{io_err, json_err, Result, TrainError};

/// File name of the checkpoint pointer.
pub const LATEST: &str = "latest.json";

/// Contents of `latest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latest<S> {
    /// The tensor file, relative to the checkpoint directory.
    pub file: String,
    /// The optimizer step the checkpoint was taken at.
    pub step: u64,
    /// The caller's state.
    pub state: S,
}

/// File name of the checkpoint taken at `step`.
pub fn checkpoint_file_name(step: u64) -> String {
    format!("ckpt-{step:08}.safetensors")
}

fn tmp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| TrainError::Config(format!("{}: not a file path", path.display())))?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(".tmp");
    Ok(path.with_file_name(tmp))
}

/// Fsyncs the directory holding `path`, so that a rename in it is durable.
/// Best effort: some file systems refuse to fsync directories.
fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory (`.{name}.tmp`), fsync, rename over `path`, fsync of the
/// directory. Readers see the old contents or the new, never a mix.
///
/// # Errors
/// [`TrainError::Io`] naming the file that failed.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path)?;
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_parent(path);
    Ok(())
}

/// Writes named tensors as safetensors to `path` atomically (like
/// [`atomic_write`]); tensors are moved to the CPU and made contiguous.
///
/// # Errors
/// [`TrainError::Tch`] if a tensor cannot be serialised, [`TrainError::Io`]
/// if the file cannot be written, synced or renamed.
pub fn atomic_write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let cpu = tensors
        .iter()
        .map(|(n, t)| Ok((n.as_str(), t.f_to_device(Device::Cpu)?.f_contiguous()?)))
        .collect::<Result<Vec<_>, tch::TchError>>()?;
    let tmp = tmp_path(path)?;
    Tensor::write_safetensors(&cpu, &tmp)?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_parent(path);
    Ok(())
}

/// Saves `opt.state_tensors()` plus a JSON `state` in `dir` (created if
/// needed): writes `ckpt-{step:08}.safetensors` (tmp file + fsync + rename),
/// then `latest.json` (tmp + fsync + rename) naming that file, the step, and
/// the serialized state; afterwards deletes older `ckpt-*` files and stale
/// temporary files. A kill at any point leaves either the previous or the new
/// checkpoint fully readable.
///
/// # Errors
/// [`TrainError::Io`], [`TrainError::Tch`] if writing fails;
/// [`TrainError::Json`] if `state` cannot be serialised.
pub fn save_checkpoint<S: Serialize>(dir: &Path, step: u64, opt: &AdamW, state: &S) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let file = checkpoint_file_name(step);
    let latest_path = dir.join(LATEST);
    let json = serde_json::to_vec_pretty(&Latest {
        file: file.clone(),
        step,
        state,
    })
    .map_err(json_err(&latest_path))?;
    atomic_write_safetensors(&dir.join(&file), &opt.state_tensors())?;
    atomic_write(&latest_path, &json)?;
    // Clean-up after the commit point: failures here leave only garbage.
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let old_ckpt =
                name.starts_with("ckpt-") && name.ends_with(".safetensors") && name != file;
            let stale_tmp = name.starts_with(".ckpt-") && name.ends_with(".tmp");
            if old_ckpt || stale_tmp {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// Loads the latest checkpoint in `dir` into `opt` and returns `(step,
/// state)`; `Ok(None)` if `dir` has no `latest.json`. Nothing is copied into
/// `opt` unless the whole checkpoint is valid.
///
/// # Errors
/// [`TrainError::Checkpoint`] naming the file and the reason when
/// `latest.json` is unreadable or corrupt, the tensor file it names is missing
/// or corrupt, or a tensor is missing or has the wrong shape; never panics.
pub fn load_checkpoint<S: DeserializeOwned>(
    dir: &Path,
    opt: &mut AdamW,
) -> Result<Option<(u64, S)>> {
    let latest_path = dir.join(LATEST);
    let ckpt_err = |path: &Path, reason: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = match fs::read(&latest_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ckpt_err(&latest_path, format!("cannot read: {e}"))),
    };
    let latest: Latest<serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|e| ckpt_err(&latest_path, format!("not a valid checkpoint pointer: {e}")))?;
    if latest.file.is_empty() || latest.file.contains(['/', '\\']) || latest.file.starts_with('.') {
        return Err(ckpt_err(
            &latest_path,
            format!("invalid checkpoint file name {:?}", latest.file),
        ));
    }
    let state: S = serde_json::from_value(latest.state)
        .map_err(|e| ckpt_err(&latest_path, format!("invalid state: {e}")))?;
    let ckpt_path = dir.join(&latest.file);
    if !ckpt_path.is_file() {
        return Err(ckpt_err(&ckpt_path, format!("missing (named by {LATEST})")));
    }
    let tensors = Tensor::read_safetensors(&ckpt_path)
        .map_err(|e| ckpt_err(&ckpt_path, format!("cannot read tensors: {e}")))?;
    opt.load_state_from(tensors, ckpt_path)?;
    Ok(Some((latest.step, state)))
}
