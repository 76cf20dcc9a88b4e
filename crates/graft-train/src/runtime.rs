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
}
