//! The model of a `MetricAnn`: its bundle (a URL or bytes) and the backend
//! it runs on (WebGPU or the CPU).

#[cfg(feature = "wgpu")]
use std::cell::RefCell;

use burn::tensor::Device;
use js_sys::Function;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::fetch::fetch_bytes;
use super::js::bytes_of;
use super::options::{opt, opt_string};
use crate::backend::Backend;
use crate::embed::Embedder;
use crate::gallery::AdaptedHead;
use crate::model::Bundle;
use crate::{Error, Result};

/// The model and where it runs.
pub(super) struct Model {
    /// What embeds now: the shipped model, or it with the gallery's adapted head.
    pub(super) embedder: Embedder,
    /// The shipped model.
    pub(super) base: Embedder,
    /// The head `embedder` uses when it is not the shipped one.
    pub(super) adapted: Option<AdaptedHead>,
    pub(super) backend: Backend,
    /// Why `auto` did not pick WebGPU, when it did not.
    pub(super) fallback: Option<String>,
    pub(super) name: String,
    /// The bundle's calibrated "unknown" threshold, for searches that set none.
    pub(super) threshold: Option<f32>,
}

/// The backend in use, as JS names it.
pub(super) fn backend_label(backend: Backend) -> &'static str {
    match backend {
        Backend::Wgpu => "webgpu",
        _ => "cpu",
    }
}

/// The model of `options.model` on the backend of `options.backend`.
pub(super) async fn load_model(options: &JsValue) -> Result<Model> {
    let (name, bytes) = bundle_bytes(options).await?;
    let bundle = Bundle::from_bytes(&name, &bytes)?;
    let wanted = opt_string(options, "backend")?.unwrap_or_else(|| "auto".into());
    let (backend, device, fallback) = device_for(&wanted).await?;
    let embedder = Embedder::new(&bundle, device)?;
    let mut model = Model {
        base: embedder.clone(),
        embedder,
        adapted: None,
        backend,
        fallback,
        name,
        threshold: bundle.header.calibration.as_ref().map(|c| c.threshold),
    };
    if model.backend == Backend::Wgpu {
        warm_up(&mut model, &bundle, &wanted).await?;
    }
    Ok(model)
}

impl Model {
    /// Embeds with `head` when it adapts this model (a gallery's head), and
    /// with the shipped head otherwise.
    pub(super) fn use_head(&mut self, head: Option<&AdaptedHead>) -> Result<()> {
        if head == self.adapted.as_ref() {
            return Ok(());
        }
        match head.map(|h| h.apply(&self.base)).transpose()?.flatten() {
            Some(adapted) => {
                self.embedder = adapted;
                self.adapted = head.cloned();
            }
            None => {
                self.embedder = self.base.clone();
                self.adapted = None;
            }
        }
        Ok(())
    }
}

/// The bundle's name (its URL, or "model") and bytes: fetched from a URL with
/// `options.onProgress`, or given.
async fn bundle_bytes(options: &JsValue) -> Result<(String, Vec<u8>)> {
    let model = opt(options, "model").ok_or_else(|| {
        Error::BadInput("options.model is required: a URL of a model bundle, or its bytes".into())
    })?;
    let progress = opt(options, "onProgress")
        .map(|f| {
            f.dyn_into::<Function>()
                .map_err(|_| Error::BadInput("options.onProgress must be a function".into()))
        })
        .transpose()?;
    match model.as_string() {
        Some(url) => {
            let bytes = fetch_bytes(&url, progress.as_ref()).await?;
            Ok((url, bytes))
        }
        None => Ok((
            "model".to_string(),
            bytes_of(&model, "options.model").await?,
        )),
    }
}

/// The backend that `wanted` names, its device, and why `auto` fell back to
/// the CPU (when it did).
async fn device_for(wanted: &str) -> Result<(Backend, Device, Option<String>)> {
    Ok(match wanted {
        "cpu" | "ndarray" => (Backend::Ndarray, Backend::Ndarray.device()?, None),
        "webgpu" | "wgpu" => (Backend::Wgpu, webgpu().await?, None),
        "auto" => {
            let gpu = match software_adapter().await {
                Some(name) => Err(format!(
                    "the WebGPU adapter is a software renderer ({name}), slower than the CPU path"
                )),
                None => webgpu().await.map_err(|e| e.to_string()),
            };
            match gpu {
                Ok(device) => (Backend::Wgpu, device, None),
                Err(reason) => (Backend::Ndarray, Backend::Ndarray.device()?, Some(reason)),
            }
        }
        other => {
            return Err(Error::BadInput(format!(
                "options.backend {other:?} is not one of \"auto\", \"webgpu\", \"cpu\""
            )));
        }
    })
}

/// Compiles the shaders now (the first embed would pay for it), and in
/// `auto` mode falls back to the CPU if the GPU path does not work.
async fn warm_up(model: &mut Model, bundle: &Bundle, wanted: &str) -> Result<()> {
    let probe = ::image::DynamicImage::new_rgb8(8, 8);
    if let Err(e) = model
        .embedder
        .embed_async(std::slice::from_ref(&probe))
        .await
    {
        if wanted != "auto" {
            return Err(e);
        }
        model.fallback = Some(format!("the WebGPU warm-up failed: {e}"));
        model.backend = Backend::Ndarray;
        model.embedder = Embedder::new(bundle, Backend::Ndarray.device()?)?;
        model.base = model.embedder.clone();
    }
    Ok(())
}

/// The name of the default WebGPU adapter when it renders in software
/// (Chromium's SwiftShader, Mesa's llvmpipe under Deno): there the wasm CPU
/// path is several times faster, so `auto` does not pick it.
async fn software_adapter() -> Option<String> {
    use js_sys::{Promise, Reflect};
    let get = |target: &JsValue, key: &str| Reflect::get(target, &key.into()).ok();
    let gpu = get(&super::js::global_get("navigator"), "gpu")?;
    let request = get(&gpu, "requestAdapter")?.dyn_into::<Function>().ok()?;
    let pending = request.call0(&gpu).ok()?.dyn_into::<Promise>().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(pending).await.ok()?;
    if adapter.is_null() || adapter.is_undefined() {
        return None;
    }
    let info = get(&adapter, "info").unwrap_or(JsValue::UNDEFINED);
    let fallback = [&info, &adapter]
        .iter()
        .any(|t| get(t, "isFallbackAdapter").and_then(|v| v.as_bool()) == Some(true));
    let text = |key: &str| {
        get(&info, key)
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let name = match text("description") {
        d if d.is_empty() => format!("{} {}", text("vendor"), text("architecture")),
        d => d,
    };
    let lower = name.to_lowercase();
    let software = [
        "swiftshader",
        "llvmpipe",
        "lavapipe",
        "softpipe",
        "basic render",
    ]
    .iter()
    .any(|s| lower.contains(s));
    (fallback || software).then(|| {
        if name.is_empty() {
            "a fallback adapter".into()
        } else {
            name
        }
    })
}

#[cfg(feature = "wgpu")]
thread_local! {
    /// burn's wgpu runtime initialises once per JS context: every instance
    /// shares the device (or the reason there is none).
    static WEBGPU: RefCell<Option<std::result::Result<Device, String>>> = const { RefCell::new(None) };
}

#[cfg(feature = "wgpu")]
async fn webgpu() -> Result<Device> {
    let unavailable =
        |reason: String| Error::BadInput(format!("WebGPU is not available: {reason}"));
    if let Some(known) = WEBGPU.with(|w| w.borrow().clone()) {
        return known.map_err(unavailable);
    }
    let navigator = super::js::global_get("navigator");
    let gpu = js_sys::Reflect::get(&navigator, &"gpu".into()).unwrap_or(JsValue::UNDEFINED);
    let outcome = if gpu.is_undefined() || gpu.is_null() {
        Err("navigator.gpu is missing".to_string())
    } else {
        Backend::webgpu_device().await.map_err(|e| match e {
            Error::Internal(m) => m,
            other => other.to_string(),
        })
    };
    WEBGPU.with(|w| *w.borrow_mut() = Some(outcome.clone()));
    outcome.map_err(unavailable)
}

#[cfg(not(feature = "wgpu"))]
async fn webgpu() -> Result<Device> {
    let why = if cfg!(target_feature = "atomics") {
        "the threaded build has no WebGPU backend (wgpu's WebGPU objects cannot be shared \
         between threads); initialize with { threads: 1 } for WebGPU"
    } else {
        "this build of metricann has no WebGPU backend (cargo feature 'wgpu')"
    };
    Err(Error::BadInput(why.into()))
}
