//! Backend choice, in one place. In burn 0.22 a tensor's device picks the
//! backend at run time, so the model code is the same for every backend and
//! only this module knows which devices exist.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::{Error, Result};

/// The compute backends MetricANN can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// burn's pure-Rust CPU backend (`ndarray`): everywhere, including wasm.
    Ndarray,
    /// burn's wgpu backend: Vulkan/Metal/DX12 natively, WebGPU in the browser.
    Wgpu,
    /// burn's CUDA backend (only with the `cuda` cargo feature).
    Cuda,
}

impl Backend {
    /// The name used on the command line and in JS (`ndarray`, `wgpu`, `cuda`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }

    /// Whether this build of the library can run the backend at all.
    pub fn compiled_in(self) -> bool {
        match self {
            Backend::Ndarray => true,
            Backend::Wgpu => cfg!(feature = "wgpu"),
            Backend::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The device for inference on this backend. Native wgpu initialises lazily
    /// on first use; in the browser call [`Backend::webgpu_device`] instead.
    pub fn device(self) -> Result<Device> {
        if !self.compiled_in() {
            return Err(Error::BadInput(format!(
                "backend '{}' is not compiled into this build (enable the cargo feature '{}')",
                self.name(),
                self.name()
            )));
        }
        Ok(match self {
            // burn marks ndarray deprecated in favour of its `flex` backend; ndarray is
            // the CPU backend verified on wasm32 and the one the CLI contract names.
            #[allow(deprecated)]
            Backend::Ndarray => Device::ndarray(),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Device::cuda(0),
            #[allow(unreachable_patterns)]
            _ => unreachable!("compiled_in() checked above"),
        })
    }

    /// The device for training: the inference device with autodiff on top.
    #[cfg(feature = "autodiff")]
    pub fn training_device(self) -> Result<Device> {
        Ok(self.device()?.autodiff())
    }

    /// The devices of a data-parallel run, each with autodiff, from `--devices`:
    /// `all`, or a comma list of indices with or without the backend's name
    /// (`cuda:0,cuda:1` or `0,1`). Only CUDA has burn's collective operations
    /// (an all-reduce through NCCL), so other backends are refused.
    #[cfg(all(feature = "autodiff", not(target_arch = "wasm32")))]
    pub fn training_devices(self, spec: &str) -> Result<Vec<Device>> {
        if self != Backend::Cuda {
            return Err(Error::BadInput(format!(
                "--devices needs the cuda backend: burn's all-reduce of the gradients \
                 runs only on CUDA (NCCL), not on {}",
                self.name()
            )));
        }
        self.device()?;
        #[cfg(feature = "cuda")]
        {
            let count = Device::enumerate(burn::tensor::DeviceType::Cuda)
                .into_vec()
                .len();
            let indices = device_indices(spec, self.name(), count)?;
            Ok(indices
                .into_iter()
                .map(|i| Device::cuda(i).autodiff())
                .collect())
        }
        #[cfg(not(feature = "cuda"))]
        unreachable!("device() refused a backend that is not compiled in: {spec}")
    }

    /// Initialises burn's wgpu runtime on the browser's WebGPU adapter.
    /// Errors when the browser exposes none, so the caller can fall back to the CPU.
    #[cfg(all(target_arch = "wasm32", feature = "wgpu"))]
    pub async fn webgpu_device() -> Result<Device> {
        Device::wgpu_options()
            .init_async()
            .await
            .map_err(|e| Error::Internal(format!("WebGPU initialisation failed: {e}")))
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ndarray" | "cpu" => Ok(Backend::Ndarray),
            "wgpu" | "webgpu" | "vulkan" => Ok(Backend::Wgpu),
            "cuda" => Ok(Backend::Cuda),
            other => Err(Error::BadInput(format!(
                "unknown backend '{other}' (expected ndarray, wgpu or cuda)"
            ))),
        }
    }
}

/// Device indices from a `--devices` list (`all`, `cuda:0,cuda:1`, `0,1`)
/// among the `count` devices of backend `name`: each once, each present.
pub fn device_indices(spec: &str, name: &str, count: usize) -> Result<Vec<usize>> {
    let bad = |why: String| Error::BadInput(format!("--devices {spec}: {why}"));
    if count == 0 {
        return Err(bad(format!("no {name} device is visible")));
    }
    if spec.trim() == "all" {
        return Ok((0..count).collect());
    }
    let mut indices = Vec::new();
    for item in spec.split(',').map(str::trim) {
        let number = match item.split_once(':') {
            Some((prefix, n)) if prefix.eq_ignore_ascii_case(name) => n,
            Some((prefix, _)) => {
                return Err(bad(format!("'{prefix}' is not the {name} backend")));
            }
            None => item,
        };
        let index: usize = number
            .parse()
            .map_err(|_| bad(format!("'{item}' is not a device index")))?;
        if index >= count {
            return Err(bad(format!(
                "{name}:{index} does not exist ({count} visible)"
            )));
        }
        if indices.contains(&index) {
            return Err(bad(format!("{name}:{index} is listed twice")));
        }
        indices.push(index);
    }
    Ok(indices)
}

/// Whether tensors on `device` run on burn's ndarray backend outside any
/// autodiff graph: there the model's own CPU kernels
/// ([`crate::model::depthwise`]) stand in for burn's slower ones.
pub fn runs_inference_on_cpu(device: &Device) -> bool {
    #[allow(deprecated)]
    let cpu = Device::ndarray();
    *device == cpu && !device.is_autodiff()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_aliases() {
        assert_eq!("ndarray".parse::<Backend>().unwrap(), Backend::Ndarray);
        assert_eq!("CPU".parse::<Backend>().unwrap(), Backend::Ndarray);
        assert_eq!("webgpu".parse::<Backend>().unwrap(), Backend::Wgpu);
        let err = "tpu".parse::<Backend>().unwrap_err();
        assert!(err.to_string().contains("tpu"));
    }

    #[test]
    fn ndarray_device_runs_a_tensor_op() {
        let device = Backend::Ndarray.device().unwrap();
        let t = burn::tensor::Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device);
        let sum: f32 = t.sum().into_scalar();
        assert_eq!(sum, 6.0);
    }

    #[test]
    fn device_lists_name_each_visible_device_once() {
        assert_eq!(device_indices("all", "cuda", 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(
            device_indices("cuda:1, cuda:0", "cuda", 2).unwrap(),
            vec![1, 0]
        );
        assert_eq!(device_indices("0,2", "cuda", 3).unwrap(), vec![0, 2]);
        for (spec, why) in [
            ("cuda:2", "does not exist"),
            ("0,0", "twice"),
            ("wgpu:0", "not the cuda backend"),
            ("cuda:x", "not a device index"),
            ("", "not a device index"),
        ] {
            let err = device_indices(spec, "cuda", 2).unwrap_err().to_string();
            assert!(err.contains(why), "{spec}: {err}");
        }
        let none = device_indices("all", "cuda", 0).unwrap_err().to_string();
        assert!(none.contains("no cuda device"), "{none}");
    }

    #[cfg(feature = "autodiff")]
    #[test]
    fn data_parallel_training_is_refused_without_collectives() {
        let err = Backend::Ndarray.training_devices("all").unwrap_err();
        assert!(err.to_string().contains("needs the cuda backend"), "{err}");
    }

    #[test]
    fn missing_backend_is_a_clear_error() {
        if !Backend::Cuda.compiled_in() {
            let err = Backend::Cuda.device().unwrap_err();
            assert!(err.to_string().contains("cuda"));
        }
    }
}
