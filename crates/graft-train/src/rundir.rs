//! A training run's directory: its configuration, JSON-lines log, result
//! files and checkpoints.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::checkpoint::atomic_write;
use crate::error::{io_err, json_err, Result, TrainError};

/// File name of the run's configuration.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the run's JSON-lines log.
pub const LOG_FILE: &str = "log.jsonl";

/// A run directory:
///
/// ```text
/// path/
///   config.json        the run's configuration (fixed at creation)
///   log.jsonl          one JSON object per line (steps, evaluations, ...)
///   {name}.json        results written with `write_json`
///   best.safetensors   best parameters so far (written by `train`)
///   checkpoints/       `latest.json` + `ckpt-*.safetensors`
/// ```
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
    extended: bool,
}

impl RunDir {
    /// Creates `path` (and parents) and writes `config.json` atomically. If
    /// `config.json` already exists (a resume) it must hold the same
    /// configuration, compared as JSON values, so that a resume cannot
    /// silently mix settings.
    ///
    /// # Errors
    /// [`TrainError::Config`] when the stored configuration differs (naming
    /// the first differing field); [`TrainError::Io`] /
    /// [`TrainError::Json`] when the directory or file cannot be written or
    /// the existing file cannot be parsed.
    pub fn create<C: Serialize>(path: impl AsRef<Path>, config: &C) -> Result<Self> {
        Self::create_extendable(path, config, &[])
    }

    /// As [`create`](Self::create), except that the fields at `budget`
    /// (JSON pointers such as `"/max_seconds"`) may differ on a resume:
    /// fields that stop a run but do not change what it computes before
    /// it stops (a wall-clock budget; a step limit when no schedule depends
    /// on it). Their new values replace the stored ones in `config.json`
    /// and [`extended`](Self::extended) reports it, so that a finished run
    /// started again with a larger budget continues where it stopped.
    ///
    /// ```
    /// # fn main() -> graft_train::Result<()> {
    /// use graft_train::RunDir;
    /// let dir = tempfile::tempdir().expect("a temporary directory");
    /// let cfg = |budget: f64| serde_json::json!({ "lr": 1e-3, "max_seconds": budget });
    /// let run = RunDir::create_extendable(dir.path(), &cfg(60.0), &["/max_seconds"])?;
    /// assert!(!run.extended());
    /// let run = RunDir::create_extendable(dir.path(), &cfg(120.0), &["/max_seconds"])?;
    /// assert!(run.extended());
    /// // Any other change is still refused.
    /// let other = serde_json::json!({ "lr": 2e-3, "max_seconds": 120.0 });
    /// assert!(RunDir::create_extendable(dir.path(), &other, &["/max_seconds"]).is_err());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`create`](Self::create), for a difference outside `budget`.
    pub fn create_extendable<C: Serialize>(
        path: impl AsRef<Path>,
        config: &C,
        budget: &[&str],
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        fs::create_dir_all(&path).map_err(io_err(&path))?;
        let config_path = path.join(CONFIG_FILE);
        let text = serde_json::to_string_pretty(config).map_err(json_err(&config_path))?;
        let mut extended = false;
        match fs::read_to_string(&config_path) {
            Ok(old) => {
                let mut old: serde_json::Value =
                    serde_json::from_str(&old).map_err(json_err(&config_path))?;
                // Parse the new text too, so both sides went through the same
                // float parser.
                let new: serde_json::Value =
                    serde_json::from_str(&text).map_err(json_err(&config_path))?;
                for pointer in budget {
                    if let (Some(stored), Some(now)) =
                        (old.pointer_mut(pointer), new.pointer(pointer))
                    {
                        if stored != now {
                            *stored = now.clone();
                            extended = true;
                        }
                    }
                }
                if let Some(at) = first_difference(&old, &new, String::new()) {
                    return Err(TrainError::Config(format!(
                        "{}: resume needs the same config, but {at} differs from the stored one \
                         (use a new run directory for a different configuration)",
                        config_path.display()
                    )));
                }
                if extended {
                    atomic_write(&config_path, text.as_bytes())?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                atomic_write(&config_path, text.as_bytes())?;
            }
            Err(e) => {
                return Err(TrainError::Io {
                    path: config_path,
                    source: e,
                })
            }
        }
        Ok(Self { path, extended })
    }

    /// Opens an existing run directory read-only, to read what a run left
    /// (its [`config`](Self::config), log, results and best weights) without
    /// a configuration to compare: how a trained model is loaded for
    /// inference. Nothing is written.
    ///
    /// ```
    /// # fn main() -> graft_train::Result<()> {
    /// use graft_train::RunDir;
    /// let dir = tempfile::tempdir().expect("a temporary directory");
    /// assert!(RunDir::open(dir.path()).is_err()); // no config.json yet
    /// RunDir::create(dir.path(), &serde_json::json!({ "lr": 1e-3 }))?;
    /// let run = RunDir::open(dir.path())?;
    /// let cfg: serde_json::Value = run.config()?;
    /// assert_eq!(cfg["lr"], 1e-3);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`TrainError::Config`] when `path` holds no `config.json` (not a run
    /// directory).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if !path.join(CONFIG_FILE).is_file() {
            return Err(TrainError::Config(format!(
                "{}: not a run directory (no {CONFIG_FILE})",
                path.display()
            )));
        }
        Ok(Self {
            path,
            extended: false,
        })
    }

    /// The stored configuration (`config.json`) as `C`.
    ///
    /// # Errors
    /// [`TrainError::Config`] when the file is missing, [`TrainError::Json`]
    /// when it does not parse as `C`, [`TrainError::Io`] when it cannot be
    /// read.
    pub fn config<C: DeserializeOwned>(&self) -> Result<C> {
        self.read_json("config")?
            .ok_or_else(|| TrainError::Config(format!("{}: no {CONFIG_FILE}", self.path.display())))
    }

    /// Whether [`create_extendable`](Self::create_extendable) found a
    /// stored configuration with a different budget (and replaced it).
    pub fn extended(&self) -> bool {
        self.extended
    }

    /// The run directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/checkpoints`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    /// `path/log.jsonl`.
    pub fn log_path(&self) -> PathBuf {
        self.path.join(LOG_FILE)
    }

    /// Appends one JSON line to `log.jsonl` with a single write (so a kill
    /// tears at most the last line).
    ///
    /// # Errors
    /// [`TrainError::Json`] if `record` cannot be serialised,
    /// [`TrainError::Io`] if the file cannot be written.
    pub fn log<T: Serialize>(&self, record: &T) -> Result<()> {
        let path = self.log_path();
        let mut line = serde_json::to_vec(record).map_err(json_err(&path))?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.write_all(&line).map_err(io_err(&path))?;
        f.flush().map_err(io_err(&path))
    }

    /// Reads `log.jsonl` back, one value per non-empty line; a last line
    /// that does not parse (torn by a kill) is skipped. A missing log reads
    /// as empty.
    ///
    /// # Errors
    /// [`TrainError::LogLine`] with the line number when an earlier line is
    /// not valid JSON; [`TrainError::Io`] if the file cannot be read.
    pub fn read_log(&self) -> Result<Vec<serde_json::Value>> {
        let path = self.log_path();
        let text = match fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(TrainError::Io { path, source: e }),
        };
        let lines: Vec<(usize, &str)> = text
            .split('\n')
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        let mut out = Vec::with_capacity(lines.len());
        for (k, &(i, line)) in lines.iter().enumerate() {
            match serde_json::from_str(line) {
                Ok(v) => out.push(v),
                Err(_) if k + 1 == lines.len() => {}
                Err(source) => {
                    return Err(TrainError::LogLine {
                        path,
                        line: i + 1,
                        source,
                    })
                }
            }
        }
        Ok(out)
    }

    /// The current length of `log.jsonl` in bytes (0 if absent).
    ///
    /// # Errors
    /// [`TrainError::Io`] if the file exists but cannot be inspected.
    pub fn log_len(&self) -> Result<u64> {
        let path = self.log_path();
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(TrainError::Io { path, source: e }),
        }
    }

    /// Truncates `log.jsonl` to `len` bytes if it is longer (used on resume
    /// to drop the lines written after the checkpoint); never extends it.
    ///
    /// # Errors
    /// [`TrainError::Io`] if the file cannot be truncated.
    pub fn truncate_log(&self, len: u64) -> Result<()> {
        if self.log_len()? <= len {
            return Ok(());
        }
        let path = self.log_path();
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.set_len(len).map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))
    }

    /// Fsyncs `log.jsonl` (before a checkpoint records its length).
    ///
    /// # Errors
    /// [`TrainError::Io`] if the file exists but cannot be synced.
    pub fn sync_log(&self) -> Result<()> {
        let path = self.log_path();
        match fs::File::open(&path) {
            Ok(f) => f.sync_all().map_err(io_err(&path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(TrainError::Io { path, source: e }),
        }
    }

    fn json_path(&self, name: &str) -> Result<PathBuf> {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(TrainError::Config(format!(
                "invalid result file name {name:?}"
            )));
        }
        Ok(self.path.join(format!("{name}.json")))
    }

    /// Writes `{name}.json` atomically (pretty JSON).
    ///
    /// # Errors
    /// [`TrainError::Config`] for a name with a path separator or a leading
    /// dot, [`TrainError::Json`] / [`TrainError::Io`] if serialising or
    /// writing fails.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let path = self.json_path(name)?;
        let mut text = serde_json::to_vec_pretty(value).map_err(json_err(&path))?;
        text.push(b'\n');
        atomic_write(&path, &text)
    }

    /// Reads `{name}.json`; `Ok(None)` if it does not exist.
    ///
    /// # Errors
    /// As [`write_json`](Self::write_json), plus [`TrainError::Json`] when
    /// the file does not parse as `T`.
    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let path = self.json_path(name)?;
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(json_err(&path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TrainError::Io { path, source: e }),
        }
    }
}

/// The JSON pointer of the first place where `a` and `b` differ.
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(u), Some(v)) => first_difference(u, v, format!("{at}/{k}")),
                _ => Some(format!("field {:?}", format!("{at}/{k}"))),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some(if at.is_empty() {
            "the whole value".to_string()
        } else {
            format!("field {at:?}")
        }),
    }
}
