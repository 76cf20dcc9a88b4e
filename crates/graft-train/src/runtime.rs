//! Where and how a pipeline runs: the device and whether progress bars
//! show. Not part of a run's configuration (a run resumed on another
//! device is the same run).

use tch::Device;

use crate::error::{Result, TrainError};

/// Where and how a run executes (not part of its configuration).
#[derive(Debug, Clone, Copy)]
pub struct Runtime {
    /// libtorch device.
    pub device: Device,
    /// Show progress bars.
    pub progress: bool,
}

impl Default for Runtime {
    /// CPU, with progress bars.
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            progress: true,
        }
    }
}

impl Runtime {
    /// CPU or the first CUDA device by name (`"cpu"`, `"cuda"`, `"cuda:N"`),
    /// with progress bars.
    ///
    /// ```
    /// use graft_train::Runtime;
    /// assert_eq!(Runtime::from_device_name("cuda:1")?.device, tch::Device::Cuda(1));
    /// assert!(Runtime::from_device_name("tpu").is_err());
    /// # Ok::<(), graft_train::TrainError>(())
    /// ```
    ///
    /// # Errors
    /// [`TrainError::Config`] for another name.
    pub fn from_device_name(name: &str) -> Result<Self> {
        let device = match name {
            "cpu" => Device::Cpu,
            "cuda" => Device::Cuda(0),
            other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(n) => Device::Cuda(n),
                None => {
                    return Err(TrainError::Config(format!(
                        "unknown device {other:?} (cpu, cuda, cuda:N)"
                    )))
                }
            },
        };
        Ok(Self {
            device,
            progress: true,
        })
    }

    /// `self` if its device is here: a CUDA device must be one libtorch
    /// sees (so a missing GPU is one clear error before any work, not a
    /// libtorch exception at the first tensor).
    ///
    /// ```
    /// use graft_train::Runtime;
    /// assert!(Runtime::from_device_name("cpu")?.available().is_ok());
    /// assert!(Runtime::from_device_name("cuda:99")?.available().is_err());
    /// # Ok::<(), graft_train::TrainError>(())
    /// ```
    ///
    /// # Errors
    /// [`TrainError::Config`] for a CUDA device beyond those libtorch sees.
    pub fn available(self) -> Result<Self> {
        if let Device::Cuda(n) = self.device {
            let count = tch::Cuda::device_count();
            if i64::try_from(n).map_or(true, |n| n >= count) {
                return Err(TrainError::Config(format!(
                    "CUDA device {n} asked for, but libtorch sees {count} CUDA device(s) \
                     (no GPU or driver here, or a libtorch without CUDA)"
                )));
            }
        }
        Ok(self)
    }
}
