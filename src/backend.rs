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
    fn missing_backend_is_a_clear_error() {
        if !Backend::Cuda.compiled_in() {
            let err = Backend::Cuda.device().unwrap_err();
            assert!(err.to_string().contains("cuda"));
        }
    }
}
