//! The JS bindings (wasm32 only): a thin adapter from JS values to the core.
//!
//! `MetricAnn` owns one model ([`Embedder`]) and one [`Gallery`]. The gallery
//! lives in an IndexedDB database ([`IdbStore`]) when it has a name, in memory
//! otherwise (Node.js, or a throw-away gallery). Every mutation is one
//! [`ChangeSet`] applied as one IndexedDB transaction; its Promise resolves when
//! the transaction has completed.
//!
//! Operations on one instance run one at a time (an async mutex), in call order.
//! Errors reach JS as `Error`s with `.code` = [`Error::code`]. A Rust panic still
//! aborts the module (wasm32 cannot unwind); the panic hook logs it and keeps its
//! message for [`take_panic_message`], which the JS wrapper turns into an
//! `INTERNAL` error instead of an opaque `unreachable`.

mod input;

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::Device;
use futures_util::lock::Mutex;
use js_sys::{Array, Float32Array, Function, Promise, Reflect, Uint8Array};
use serde::Serialize;
use serde_json::{Value, json};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise};

use crate::backend::Backend;
use crate::blob::{ChangeSet, Damage, MANIFEST};
use crate::embed::Embedder;
use crate::gallery::{Enrollment, Gallery, GalleryConfig, OpenMode, SearchResult};
use crate::index::IndexConfig;
use crate::model::Bundle;
use crate::store::MemoryStore;
use crate::store::idb::{self, BadRecord, IdbStore, LockState, describe};
use crate::{Error, Result};

use input::{Input, kind_of, to_image};

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

unsafe extern "C" {
    /// Synthesised by wasm-ld: runs the static constructors (burn's cubecl
    /// registers kernels through `inventory`). A module that never calls it is
    /// linked "command-style": every export runs all constructors first, which
    /// cost ~10 ms per call here (each `search` and `stats` paid it). Calling
    /// it once, here, makes the linker leave the exports alone.
    fn __wasm_call_ctors();
}

/// Runs the static constructors once, then installs the panic hook
/// (console_error_panic_hook, plus keeping the message).
#[wasm_bindgen(start)]
pub fn start() {
    // SAFETY: called once, at instantiation (wasm-bindgen's start function),
    // before any other export runs.
    unsafe { __wasm_call_ctors() };
    std::panic::set_hook(Box::new(|info| {
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
        console_error_panic_hook::hook(info);
    }));
}

/// The message of the last Rust panic, if any (taken: a second call returns null).
#[wasm_bindgen(js_name = takePanicMessage)]
pub fn take_panic_message() -> Option<String> {
    LAST_PANIC.with(|p| p.borrow_mut().take())
}

/// The version of this build.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// A library error as a JS `Error` with `code` (and `blob` for CORRUPT).
fn to_js(e: Error) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    err.set_name("MetricAnnError");
    let _ = Reflect::set(&err, &"code".into(), &e.code().into());
    if let Error::Corrupt { name, .. } = &e {
        let _ = Reflect::set(&err, &"blob".into(), &name.as_str().into());
    }
    err.into()
}

fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| Error::Internal(format!("converting a result to JS: {e}")))
}

fn run<F>(future: F) -> Promise
where
    F: std::future::Future<Output = Result<JsValue>> + 'static,
{
    future_to_promise(async move { future.await.map_err(to_js) })
}

/// Reads `options[key]`; `None` for undefined and null (and when `options` is not an object).
fn opt(options: &JsValue, key: &str) -> Option<JsValue> {
    if !options.is_object() {
        return None;
    }
    let v = Reflect::get(options, &JsValue::from_str(key)).ok()?;
    (!v.is_undefined() && !v.is_null()).then_some(v)
}

fn opt_bool(options: &JsValue, key: &str) -> Result<bool> {
    match opt(options, key) {
        None => Ok(false),
        Some(v) => v.as_bool().ok_or_else(|| {
            Error::BadInput(format!(
                "option {key} must be a boolean, got {}",
                kind_of(&v)
            ))
        }),
    }
}

fn opt_string(options: &JsValue, key: &str) -> Result<Option<String>> {
    match opt(options, key) {
        None => Ok(None),
        Some(v) => v.as_string().map(Some).ok_or_else(|| {
            Error::BadInput(format!(
                "option {key} must be a string, got {}",
                kind_of(&v)
            ))
        }),
    }
}

fn opt_number(options: &JsValue, key: &str) -> Result<Option<f64>> {
    match opt(options, key) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(Error::BadInput(format!(
                "option {key} must be a finite number"
            ))),
        },
    }
}

fn check_options(options: &JsValue, what: &str) -> Result<()> {
    if !options.is_undefined() && !options.is_null() && !options.is_object() {
        return Err(Error::BadInput(format!(
            "{what} options must be an object, got {}",
            kind_of(options)
        )));
    }
    Ok(())
}

fn metadata_of(value: Option<JsValue>) -> Result<Option<Value>> {
    match value {
        None => Ok(None),
        Some(v) => serde_wasm_bindgen::from_value::<Value>(v)
            .map(Some)
            .map_err(|e| Error::BadInput(format!("metadata is not JSON-compatible: {e}"))),
    }
}

fn vector_of(value: &JsValue, what: &str) -> Result<Vec<f32>> {
    if value.is_instance_of::<Float32Array>()
        || value.is_instance_of::<js_sys::Float64Array>()
        || Array::is_array(value)
    {
        return Ok(Float32Array::new(value).to_vec());
    }
    Err(Error::BadInput(format!(
        "{what} must be a Float32Array or an array of numbers, got {}",
        kind_of(value)
    )))
}

fn global_get(key: &str) -> JsValue {
    Reflect::get(&js_sys::global(), &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn io_error(what: &str, reason: String, not_found: bool) -> Error {
    let kind = if not_found {
        std::io::ErrorKind::NotFound
    } else {
        std::io::ErrorKind::Other
    };
    Error::io(what, std::io::Error::new(kind, reason))
}

/// Bytes of a `Uint8Array`, `ArrayBuffer` or `Blob`.
async fn bytes_of(value: &JsValue, what: &str) -> Result<Vec<u8>> {
    if let Some(a) = value.dyn_ref::<Uint8Array>() {
        return Ok(a.to_vec());
    }
    if value.is_instance_of::<js_sys::ArrayBuffer>() {
        return Ok(Uint8Array::new(value).to_vec());
    }
    if let Some(blob) = value.dyn_ref::<web_sys::Blob>() {
        let buffer = JsFuture::from(blob.array_buffer()).await.map_err(|e| {
            io_error(
                what,
                format!("reading the Blob failed: {}", describe(&e)),
                false,
            )
        })?;
        return Ok(Uint8Array::new(&buffer).to_vec());
    }
    Err(Error::BadInput(format!(
        "{what} must be a Uint8Array, ArrayBuffer or Blob, got {}",
        kind_of(value)
    )))
}

/// Fetches `url`, reporting `{ loaded, total }` to `progress` as chunks arrive.
async fn fetch_bytes(url: &str, progress: Option<&Function>) -> Result<Vec<u8>> {
    let fetch = global_get("fetch").dyn_into::<Function>().map_err(|_| {
        Error::BadInput("fetch is not available here: pass the model as bytes".into())
    })?;
    let response = fetch
        .call1(&JsValue::UNDEFINED, &JsValue::from_str(url))
        .map_err(|e| io_error(url, format!("fetch failed: {}", describe(&e)), false))?;
    let response = JsFuture::from(Promise::resolve(&response))
        .await
        .map_err(|e| io_error(url, format!("fetch failed: {}", describe(&e)), false))?
        .dyn_into::<web_sys::Response>()
        .map_err(|_| Error::Internal("fetch did not return a Response".into()))?;
    if !response.ok() {
        return Err(io_error(
            url,
            format!("HTTP {} {}", response.status(), response.status_text()),
            response.status() == 404,
        ));
    }
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|s| s.parse::<f64>().ok());
    let report = |loaded: usize| {
        if let Some(f) = progress {
            let o = js_sys::Object::new();
            let _ = Reflect::set(&o, &"loaded".into(), &(loaded as f64).into());
            let _ = Reflect::set(
                &o,
                &"total".into(),
                &total.map(JsValue::from).unwrap_or(JsValue::NULL),
            );
            let _ = f.call1(&JsValue::UNDEFINED, &o);
        }
    };
    let mut bytes = Vec::with_capacity(total.unwrap_or(0.0).min(1e9) as usize);
    match response.body() {
        Some(body) => {
            let reader = body
                .get_reader()
                .dyn_into::<web_sys::ReadableStreamDefaultReader>()
                .map_err(|_| Error::Internal("the response body has no default reader".into()))?;
            loop {
                let chunk = JsFuture::from(reader.read()).await.map_err(|e| {
                    io_error(url, format!("download failed: {}", describe(&e)), false)
                })?;
                if Reflect::get(&chunk, &"done".into())
                    .ok()
                    .and_then(|d| d.as_bool())
                    == Some(true)
                {
                    break;
                }
                let value = Reflect::get(&chunk, &"value".into()).unwrap_or(JsValue::UNDEFINED);
                if let Some(a) = value.dyn_ref::<Uint8Array>() {
                    bytes.extend(a.to_vec());
                    report(bytes.len());
                }
            }
        }
        None => {
            let buffer =
                JsFuture::from(response.array_buffer().map_err(|e| {
                    io_error(url, format!("download failed: {}", describe(&e)), false)
                })?)
                .await
                .map_err(|e| io_error(url, format!("download failed: {}", describe(&e)), false))?;
            bytes = Uint8Array::new(&buffer).to_vec();
            report(bytes.len());
        }
    }
    Ok(bytes)
}

/// The backend in use, as JS names it.
fn backend_label(backend: Backend) -> &'static str {
    match backend {
        Backend::Wgpu => "webgpu",
        _ => "cpu",
    }
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
    let gpu = Reflect::get(&global_get("navigator"), &"gpu".into()).unwrap_or(JsValue::UNDEFINED);
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
    Err(Error::BadInput(
        "this build of metricann has no WebGPU backend (cargo feature 'wgpu')".into(),
    ))
}

/// The model and where it runs.
struct Model {
    embedder: Embedder,
    backend: Backend,
    /// Why `auto` did not pick WebGPU, when it did not.
    fallback: Option<String>,
    name: String,
    /// The bundle's calibrated "unknown" threshold, for searches that set none.
    threshold: Option<f32>,
}

async fn load_model(options: &JsValue) -> Result<Model> {
    let model = opt(options, "model").ok_or_else(|| {
        Error::BadInput("options.model is required: a URL of a model bundle, or its bytes".into())
    })?;
    let progress = opt(options, "onProgress")
        .map(|f| {
            f.dyn_into::<Function>()
                .map_err(|_| Error::BadInput("options.onProgress must be a function".into()))
        })
        .transpose()?;
    let (name, bytes) = match model.as_string() {
        Some(url) => {
            let bytes = fetch_bytes(&url, progress.as_ref()).await?;
            (url, bytes)
        }
        None => (
            "model".to_string(),
            bytes_of(&model, "options.model").await?,
        ),
    };
    let bundle = Bundle::from_bytes(&name, &bytes)?;
    let wanted = opt_string(options, "backend")?.unwrap_or_else(|| "auto".into());
    let (backend, device, fallback) = match wanted.as_str() {
        "cpu" | "ndarray" => (Backend::Ndarray, Backend::Ndarray.device()?, None),
        "webgpu" | "wgpu" => (Backend::Wgpu, webgpu().await?, None),
        "auto" => match webgpu().await {
            Ok(device) => (Backend::Wgpu, device, None),
            Err(e) => (
                Backend::Ndarray,
                Backend::Ndarray.device()?,
                Some(e.to_string()),
            ),
        },
        other => {
            return Err(Error::BadInput(format!(
                "options.backend {other:?} is not one of \"auto\", \"webgpu\", \"cpu\""
            )));
        }
    };
    let mut embedder = Embedder::new(&bundle, device)?;
    let mut backend = backend;
    let mut fallback = fallback;
    if backend == Backend::Wgpu {
        // Compile the shaders now (the first embed would pay for it), and in
        // `auto` mode fall back to the CPU if the GPU path does not work.
        let probe = ::image::DynamicImage::new_rgb8(8, 8);
        if let Err(e) = embedder.embed_async(std::slice::from_ref(&probe)).await {
            if wanted != "auto" {
                return Err(e);
            }
            fallback = Some(format!("the WebGPU warm-up failed: {e}"));
            backend = Backend::Ndarray;
            embedder = Embedder::new(&bundle, Backend::Ndarray.device()?)?;
        }
    }
    Ok(Model {
        embedder,
        backend,
        fallback,
        name,
        threshold: bundle.header.calibration.as_ref().map(|c| c.threshold),
    })
}

/// An open gallery and its model.
struct Session {
    model: Model,
    gallery: Gallery,
    /// `None`: an in-memory gallery.
    store: Option<IdbStore>,
    lock: LockState,
    name: Option<String>,
    mode: OpenMode,
    damage: Vec<Damage>,
}

impl Session {
    /// Whether the gallery holds another model's vectors (until `reembed`).
    fn stale(&self) -> bool {
        self.gallery.fingerprint() != self.model.embedder.fingerprint()
    }

    fn check_current(&self) -> Result<()> {
        if self.stale() {
            return Err(self.mismatch());
        }
        Ok(())
    }

    fn mismatch(&self) -> Error {
        Error::ModelMismatch {
            what: match &self.name {
                Some(n) => format!("gallery {n:?}"),
                None => "the gallery".into(),
            },
            expected: self.model.embedder.fingerprint().to_string(),
            found: self.gallery.fingerprint().to_string(),
        }
    }

    async fn embed(&self, inputs: &[Input]) -> Result<Vec<Vec<f32>>> {
        let images: Vec<_> = inputs.iter().map(|i| i.image.clone()).collect();
        self.model.embedder.embed_async(&images).await
    }

    /// Re-reads the gallery from IndexedDB (after a failed write, or once this
    /// context gets the write lock).
    async fn reload(&mut self) -> Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let (gallery, damage) = read_gallery(store, self.mode).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "gallery {:?} vanished from IndexedDB",
                store.gallery()
            ))
        })?;
        self.gallery = gallery;
        self.damage = damage;
        Ok(())
    }

    /// Makes sure this context may write (taking the lock if another context
    /// released it) before anything is changed in memory.
    async fn ensure_writable(&mut self) -> Result<()> {
        if self.lock.may_write() {
            return Ok(());
        }
        let Some(name) = self.name.clone() else {
            return Ok(());
        };
        self.lock = idb::lock(&name, 0).await?;
        if !self.lock.may_write() {
            return Err(Error::Locked(format!(
                "gallery {name:?} is open for writing in another tab, window or worker; this \
                 one is read-only until that one closes it"
            )));
        }
        // Another context may have written since we read it.
        self.reload().await
    }

    /// Makes a mutation durable. On failure the in-memory gallery is re-read
    /// from the store, so that it matches what is stored.
    async fn commit(&mut self, changes: ChangeSet, replace_all: bool) -> Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if let Err(e) = store.apply(&changes, replace_all).await {
            if let Err(reload) = self.reload().await {
                web_warn(&format!(
                    "metricann: re-reading the gallery after a failed write failed too: {reload}"
                ));
            }
            return Err(e);
        }
        if !self.damage.is_empty() && changes.manifest().is_some() {
            // The new manifest no longer lists the damaged blobs.
            self.damage.clear();
        }
        Ok(())
    }

    fn stats(&self) -> Result<JsValue> {
        let s = self.gallery.stats();
        let segments: Vec<Value> = s
            .segments
            .iter()
            .map(|seg| serde_json::to_value(seg).unwrap_or(Value::Null))
            .collect();
        let v = json!({
            "classes": s.classes,
            "vectors": s.vectors,
            "deleted": s.deleted,
            "segments": segments,
            "bytes": s.bytes,
            "memoryBytes": s.memory_bytes,
            "quantization": s.quantization,
            "backend": backend_label(self.model.backend),
            "backendFallback": self.model.fallback,
            "gallery": self.name,
            "persistent": self.store.is_some(),
            "writable": self.lock.may_write(),
            "lock": match self.lock {
                LockState::Held(_) => "held",
                LockState::HeldElsewhere => "held-elsewhere",
                LockState::Unsupported => "unsupported",
            },
            "dim": self.gallery.dim(),
            "fingerprint": self.gallery.fingerprint(),
            "modelFingerprint": self.model.embedder.fingerprint(),
            "model": self.model.name,
            "threshold": self.model.threshold,
            "stale": self.stale(),
            "needsMaintenance": self.gallery.needs_maintenance(),
            "damaged": self.damage.iter().map(|d| json!({"blob": d.blob, "reason": d.reason})).collect::<Vec<_>>(),
        });
        to_value(&v)
    }
}

fn web_warn(message: &str) {
    let console = global_get("console");
    if let Ok(warn) = Reflect::get(&console, &"warn".into())
        && let Ok(warn) = warn.dyn_into::<Function>()
    {
        let _ = warn.call1(&console, &JsValue::from_str(message));
    }
}

/// Reads the stored gallery; `None` when the database holds none yet.
async fn read_gallery(store: &IdbStore, mode: OpenMode) -> Result<Option<(Gallery, Vec<Damage>)>> {
    decode_gallery(store, store.load_all().await?, mode)
}

/// Opens the gallery in `loaded` (what [`IdbStore::load_all`] read from
/// `store`); `None` when the database is empty.
fn decode_gallery(
    store: &IdbStore,
    (memory, bad): (MemoryStore, Vec<BadRecord>),
    mode: OpenMode,
) -> Result<Option<(Gallery, Vec<Damage>)>> {
    if memory.get_raw(MANIFEST).is_none() && bad.iter().all(|b| b.name != MANIFEST) {
        if memory.is_empty() && bad.is_empty() {
            return Ok(None);
        }
        return Err(Error::corrupt(
            MANIFEST,
            format!(
                "missing, but the database of gallery {:?} holds {} other records",
                store.gallery(),
                memory.len() + bad.len()
            ),
        ));
    }
    let mut damage = Vec::new();
    for record in &bad {
        let e = Error::corrupt(
            &record.name,
            format!("the stored value is a {}, not bytes", record.found),
        );
        if mode == OpenMode::Strict || record.name == MANIFEST {
            return Err(e);
        }
        damage.push(Damage::from_error(&record.name, &e));
    }
    let (mut gallery, more) = Gallery::open(&memory, None, mode)?;
    for d in more {
        if !damage.iter().any(|x| x.blob == d.blob) {
            damage.push(d);
        }
    }
    // Sealing and merging run after the mutation's Promise has resolved.
    gallery.set_auto_maintain(false);
    Ok(Some((gallery, damage)))
}

trait RawGet {
    fn get_raw(&self, name: &str) -> Option<Vec<u8>>;
}

impl RawGet for MemoryStore {
    fn get_raw(&self, name: &str) -> Option<Vec<u8>> {
        crate::blob::BlobRead::get(self, name).ok().flatten()
    }
}

/// The gallery config of `model`'s embeddings.
fn gallery_config(model: &Model) -> GalleryConfig {
    GalleryConfig {
        dim: model.embedder.dim(),
        fingerprint: model.embedder.fingerprint().to_string(),
        index: IndexConfig::default(),
    }
}

fn new_gallery(model: &Model) -> Result<(Gallery, ChangeSet)> {
    let (mut gallery, changes) = Gallery::create(gallery_config(model))?;
    gallery.set_auto_maintain(false);
    Ok((gallery, changes))
}

/// The gallery re-embedded with `model` from its kept images: the new gallery
/// and every blob of it (to replace the stored ones). Driven step by step:
/// the embedding awaits the GPU.
async fn reembedded(old: &Gallery, model: &Model) -> Result<(Gallery, ChangeSet)> {
    let mut rebuild = old.start_reembed(gallery_config(model))?;
    while let Some((label, kept)) = rebuild.next_class() {
        let images = kept
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let name = format!("kept image {i} of class {label:?}");
                crate::image::decode(&name, bytes)
            })
            .collect::<Result<Vec<_>>>()?;
        let vectors = model.embedder.embed_async(&images).await?;
        rebuild.enroll(&vectors)?;
    }
    rebuild.finish()
}

/// One model and one gallery, in the browser (IndexedDB) or in memory.
#[wasm_bindgen]
pub struct MetricAnn {
    session: Rc<Mutex<Option<Session>>>,
}

/// Runs `f` on the open session, one operation at a time.
fn with_session<F, Fut>(session: &Rc<Mutex<Option<Session>>>, f: F) -> Promise
where
    F: FnOnce(Rc<Mutex<Option<Session>>>) -> Fut + 'static,
    Fut: std::future::Future<Output = Result<JsValue>> + 'static,
{
    let session = session.clone();
    run(f(session))
}

const CLOSED: &str = "this MetricAnn instance is closed";

macro_rules! open_session {
    ($guard:ident) => {
        $guard
            .as_mut()
            .ok_or_else(|| Error::BadInput(CLOSED.into()))?
    };
}

/// Converts images given as one input or an array of inputs.
async fn inputs_of(images: &JsValue, what: &str) -> Result<Vec<Input>> {
    let list: Vec<JsValue> = if Array::is_array(images) {
        Array::from(images).iter().collect()
    } else {
        vec![images.clone()]
    };
    if list.is_empty() {
        return Err(Error::BadInput(format!("{what}: no images given")));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let name = if list.len() == 1 {
            what.to_string()
        } else {
            format!("{what}, image {i}")
        };
        out.push(to_image(v, &name).await?);
    }
    Ok(out)
}

fn search_options(options: &JsValue) -> Result<(usize, Option<f32>)> {
    check_options(options, "search")?;
    let k = match opt_number(options, "k")? {
        None => 5,
        Some(k) if k >= 1.0 && k.fract() == 0.0 && k <= 10_000.0 => k as usize,
        Some(k) => {
            return Err(Error::BadInput(format!(
                "k must be an integer in 1..=10000, got {k}"
            )));
        }
    };
    let threshold = opt_number(options, "threshold")?.map(|t| t as f32);
    Ok((k, threshold))
}

fn search_result(result: &SearchResult) -> Result<JsValue> {
    to_value(result)
}

#[wasm_bindgen]
impl MetricAnn {
    /// Opens (creating if needed) a gallery with a model. See the TypeScript
    /// declarations for the options.
    pub async fn open(options: JsValue) -> std::result::Result<MetricAnn, JsValue> {
        Self::open_inner(options).await.map_err(to_js)
    }

    async fn open_inner(options: JsValue) -> Result<MetricAnn> {
        check_options(&options, "open")?;
        let skip = opt_bool(&options, "skipDamaged")?;
        let reembed = opt_bool(&options, "reembed")?;
        let allow_mismatch = opt_bool(&options, "allowModelMismatch")?;
        let name = opt_string(&options, "gallery")?;
        let mode = if skip {
            OpenMode::SkipDamaged
        } else {
            OpenMode::Strict
        };
        let Some(name) = name else {
            let model = load_model(&options).await?;
            let (gallery, _) = new_gallery(&model)?;
            return Ok(Self::wrap(Session {
                model,
                gallery,
                store: None,
                lock: LockState::Unsupported,
                name: None,
                mode,
                damage: Vec::new(),
            }));
        };
        // The model's fetch and decode and IndexedDB's read of the gallery
        // need nothing of each other: at a million vectors the read alone is
        // most of a second, so they run together.
        let stored = async {
            let store = IdbStore::open(&name).await?;
            let lock = idb::lock(&name, 1000).await?;
            let loaded = store.load_all().await?;
            Ok::<_, Error>((store, lock, loaded))
        };
        let (model, stored) = futures_util::future::join(load_model(&options), stored).await;
        let (store, lock, loaded) = match stored {
            Ok(stored) => stored,
            // A bad model option is the first mistake to hear of, as when
            // the model was loaded first.
            Err(e) => return Err(model.err().unwrap_or(e)),
        };
        let model = match model {
            Ok(model) => model,
            Err(e) => {
                // Opening created the database if there was none: leave
                // nothing behind for an open that failed.
                if loaded.0.is_empty() && loaded.1.is_empty() && lock.may_write() {
                    store.close();
                    let _ = idb::delete_database(&name).await;
                }
                return Err(e);
            }
        };
        let (gallery, damage) = match decode_gallery(&store, loaded, mode)? {
            Some(found) => found,
            None => {
                if !lock.may_write() {
                    return Err(Error::Locked(format!(
                        "gallery {name:?} is being created by another tab, window or worker"
                    )));
                }
                let (gallery, changes) = new_gallery(&model)?;
                store.apply(&changes, false).await?;
                (gallery, Vec::new())
            }
        };
        let mut session = Session {
            model,
            gallery,
            store: Some(store),
            lock,
            name: Some(name),
            mode,
            damage,
        };
        if session.stale() {
            if reembed {
                session.ensure_writable().await?;
                let (gallery, all) = reembedded(&session.gallery, &session.model).await?;
                session.commit(all, true).await?;
                session.gallery = gallery;
            } else if !allow_mismatch {
                let e = session.mismatch();
                if let Some(store) = &session.store {
                    store.close();
                }
                return Err(e);
            }
        }
        Ok(Self::wrap(session))
    }

    fn wrap(session: Session) -> MetricAnn {
        MetricAnn {
            session: Rc::new(Mutex::new(Some(session))),
        }
    }

    /// Builds a gallery from an `export()` file: in IndexedDB under
    /// `options.gallery` (refused when that gallery exists, unless
    /// `options.overwrite`), or in memory.
    #[wasm_bindgen(js_name = importGallery)]
    pub async fn import_gallery(
        data: JsValue,
        options: JsValue,
    ) -> std::result::Result<MetricAnn, JsValue> {
        Self::import_inner(data, options).await.map_err(to_js)
    }

    async fn import_inner(data: JsValue, options: JsValue) -> Result<MetricAnn> {
        check_options(&options, "import")?;
        let overwrite = opt_bool(&options, "overwrite")?;
        let name = opt_string(&options, "gallery")?;
        let bytes = bytes_of(&data, "the gallery export").await?;
        let model = load_model(&options).await?;
        let (mut gallery, changes) =
            Gallery::import_bytes(&bytes, Some(model.embedder.fingerprint()))?;
        gallery.set_auto_maintain(false);
        let Some(name) = name else {
            return Ok(Self::wrap(Session {
                model,
                gallery,
                store: None,
                lock: LockState::Unsupported,
                name: None,
                mode: OpenMode::Strict,
                damage: Vec::new(),
            }));
        };
        let store = IdbStore::open(&name).await?;
        let lock = idb::lock(&name, 1000).await?;
        if !lock.may_write() {
            return Err(Error::Locked(format!(
                "gallery {name:?} is open for writing in another tab, window or worker"
            )));
        }
        let (existing, bad) = store.load_all().await?;
        if (!existing.is_empty() || !bad.is_empty()) && !overwrite {
            return Err(Error::AlreadyExists(format!(
                "gallery {name:?} already exists in IndexedDB; pass overwrite: true to replace it"
            )));
        }
        store.apply(&changes, true).await?;
        Ok(Self::wrap(Session {
            model,
            gallery,
            store: Some(store),
            lock,
            name: Some(name),
            mode: OpenMode::Strict,
            damage: Vec::new(),
        }))
    }

    /// Deletes a gallery's IndexedDB database (close it first everywhere).
    #[wasm_bindgen(js_name = deleteGallery)]
    pub async fn delete_gallery(name: String) -> std::result::Result<(), JsValue> {
        idb::delete_database(&name).await.map_err(to_js)
    }

    /// Whether IndexedDB exists here (galleries can be persistent).
    #[wasm_bindgen(js_name = hasIndexedDb)]
    pub fn has_indexed_db() -> bool {
        idb::available()
    }

    /// The embedding of one image (a Float32Array of unit length).
    pub fn embed(&self, image: JsValue) -> Promise {
        let pending = async move { to_image(&image, "image").await };
        with_session(&self.session, move |session| async move {
            let input = pending.await?;
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            let mut v = s.embed(std::slice::from_ref(&input)).await?;
            let v = v
                .pop()
                .ok_or_else(|| Error::Internal("no embedding".into()))?;
            Ok(Float32Array::from(v.as_slice()).into())
        })
    }

    /// Enrolls one or more example images as class `label` (creating it or
    /// adding to it). Options: `metadata` (JSON), `keepImages` (store the
    /// images for `reembed`).
    pub fn enroll(&self, label: String, images: JsValue, options: JsValue) -> Promise {
        with_session(&self.session, move |session| async move {
            check_options(&options, "enroll")?;
            let metadata = metadata_of(opt(&options, "metadata"))?;
            let keep = opt_bool(&options, "keepImages")?;
            let what = format!("enrollment of class {label:?}");
            let inputs = inputs_of(&images, &what).await?;
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            s.check_current()?;
            s.ensure_writable().await?;
            let vectors = s.embed(&inputs).await?;
            let kept = if keep {
                inputs
                    .iter()
                    .enumerate()
                    .map(|(i, input)| input.keep_bytes(&format!("{what}, image {i}")))
                    .collect::<Result<Vec<_>>>()?
            } else {
                Vec::new()
            };
            let changes = s.gallery.enroll(&label, &vectors, metadata, kept)?;
            s.commit(changes, false).await?;
            let examples = s
                .gallery
                .classes()
                .into_iter()
                .find(|c| c.label == label)
                .map(|c| c.examples)
                .unwrap_or(0);
            drop(guard);
            schedule_maintenance(session.clone());
            to_value(&json!({ "label": label, "examples": examples }))
        })
    }

    /// Enrolls precomputed vectors, several classes in one transaction:
    /// `entries` is `[{ label, vectors: Float32Array[], metadata? }]`.
    #[wasm_bindgen(js_name = enrollVectors)]
    pub fn enroll_vectors(&self, entries: JsValue) -> Promise {
        with_session(&self.session, move |session| async move {
            if !Array::is_array(&entries) {
                return Err(Error::BadInput(format!(
                    "enrollVectors expects an array of {{ label, vectors }}, got {}",
                    kind_of(&entries)
                )));
            }
            let mut parsed = Vec::new();
            for (i, e) in Array::from(&entries).iter().enumerate() {
                let label = opt_string(&e, "label")?
                    .ok_or_else(|| Error::BadInput(format!("entry {i}: label is missing")))?;
                let vectors = opt(&e, "vectors")
                    .ok_or_else(|| Error::BadInput(format!("entry {i}: vectors are missing")))?;
                if !Array::is_array(&vectors) {
                    return Err(Error::BadInput(format!(
                        "entry {i}: vectors must be an array"
                    )));
                }
                let vectors = Array::from(&vectors)
                    .iter()
                    .map(|v| vector_of(&v, &format!("entry {i} vector")))
                    .collect::<Result<Vec<_>>>()?;
                parsed.push(Enrollment {
                    label,
                    vectors,
                    metadata: metadata_of(opt(&e, "metadata"))?,
                });
            }
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            s.check_current()?;
            s.ensure_writable().await?;
            // One chunk, one class page and one manifest for the whole call; a
            // bad entry changes nothing.
            let changes = s.gallery.enroll_batch(&parsed)?;
            let count = s.gallery.len();
            s.commit(changes, false).await?;
            drop(guard);
            schedule_maintenance(session.clone());
            Ok(JsValue::from(count as f64))
        })
    }

    /// Which enrolled class is this image? Options: `k` (classes, default 5),
    /// `threshold` (open-set: `unknown` when the best score is below it; the
    /// model's calibrated threshold when not given).
    pub fn search(&self, image: JsValue, options: JsValue) -> Promise {
        let pending = async move { to_image(&image, "query image").await };
        with_session(&self.session, move |session| async move {
            let input = pending.await?;
            let (k, threshold) = search_options(&options)?;
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            s.check_current()?;
            let threshold = threshold.or(s.model.threshold);
            let mut v = s.embed(std::slice::from_ref(&input)).await?;
            let query = v
                .pop()
                .ok_or_else(|| Error::Internal("no embedding".into()))?;
            search_result(&s.gallery.search(&query, k, threshold)?)
        })
    }

    /// `search` with a precomputed embedding.
    #[wasm_bindgen(js_name = searchVector)]
    pub fn search_vector(&self, vector: JsValue, options: JsValue) -> Promise {
        with_session(&self.session, move |session| async move {
            let query = vector_of(&vector, "the query vector")?;
            let (k, threshold) = search_options(&options)?;
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            s.check_current()?;
            let threshold = threshold.or(s.model.threshold);
            search_result(&s.gallery.search(&query, k, threshold)?)
        })
    }

    /// Removes a class (NOT_FOUND when there is none).
    pub fn remove(&self, label: String) -> Promise {
        with_session(&self.session, move |session| async move {
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            s.ensure_writable().await?;
            let changes = s.gallery.remove(&label)?;
            s.commit(changes, false).await?;
            drop(guard);
            schedule_maintenance(session.clone());
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Renames a class (NOT_FOUND, ALREADY_EXISTS).
    pub fn rename(&self, old: String, new: String) -> Promise {
        with_session(&self.session, move |session| async move {
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            s.ensure_writable().await?;
            let changes = s.gallery.rename(&old, &new)?;
            s.commit(changes, false).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Replaces (or with null clears) a class's metadata.
    #[wasm_bindgen(js_name = setMetadata)]
    pub fn set_metadata(&self, label: String, metadata: JsValue) -> Promise {
        with_session(&self.session, move |session| async move {
            let metadata =
                metadata_of((!metadata.is_undefined() && !metadata.is_null()).then_some(metadata))?;
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            s.ensure_writable().await?;
            let changes = s.gallery.set_metadata(&label, metadata)?;
            s.commit(changes, false).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Every class: `[{ label, examples, metadata, hasImages }]`.
    pub fn classes(&self) -> Promise {
        with_session(&self.session, move |session| async move {
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            let list: Vec<Value> = s
                .gallery
                .classes()
                .into_iter()
                .map(|c| {
                    json!({
                        "label": c.label,
                        "examples": c.examples,
                        "metadata": c.metadata,
                        "hasImages": c.has_images,
                    })
                })
                .collect();
            to_value(&list)
        })
    }

    /// Counts, segments, bytes, backend, lock state, damage.
    pub fn stats(&self) -> Promise {
        with_session(&self.session, move |session| async move {
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            s.stats()
        })
    }

    /// The whole gallery as one file: a Blob, or a Uint8Array with
    /// `{ format: "bytes" }` (and where Blob does not exist).
    #[wasm_bindgen(js_name = exportGallery)]
    pub fn export_gallery(&self, options: JsValue) -> Promise {
        with_session(&self.session, move |session| async move {
            check_options(&options, "export")?;
            let as_bytes = opt_string(&options, "format")?.as_deref() == Some("bytes");
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            let bytes = s.gallery.export_bytes()?;
            drop(guard);
            let array = Uint8Array::from(bytes.as_slice());
            if as_bytes || !global_get("Blob").is_function() {
                return Ok(array.into());
            }
            let parts = Array::of1(&array);
            let props = web_sys::BlobPropertyBag::new();
            props.set_type("application/x-metricann-gallery");
            let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &props)
                .map_err(|e| Error::Internal(format!("creating the Blob: {}", describe(&e))))?;
            Ok(blob.into())
        })
    }

    /// Rebuilds the gallery with the current model from the kept enrollment
    /// images (after opening with `allowModelMismatch`, or any time). One
    /// transaction: on failure the stored gallery is unchanged.
    pub fn reembed(&self) -> Promise {
        with_session(&self.session, move |session| async move {
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            s.ensure_writable().await?;
            let (gallery, all) = reembedded(&s.gallery, &s.model).await?;
            if s.store.is_some() {
                s.commit(all, true).await?;
            }
            s.gallery = gallery;
            s.damage.clear();
            to_value(&json!({
                "classes": s.gallery.len(),
                "vectors": s.gallery.stats().vectors,
            }))
        })
    }

    /// Stores the gallery's graphs as int8 codes from now on (a quarter of
    /// their vectors' memory; see the README for the recall it costs), in one
    /// transaction. Resolves to the stats.
    pub fn quantize(&self) -> Promise {
        with_session(&self.session, move |session| async move {
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            s.ensure_writable().await?;
            let changes = s.gallery.quantize()?;
            s.commit(changes, false).await?;
            s.stats()
        })
    }

    /// Rebuilds the whole gallery's index into one graph, in one transaction:
    /// after a bulk load, for the fastest search (every segment is searched
    /// per query). Slow: a build over every vector. Resolves to the stats.
    pub fn optimize(&self) -> Promise {
        with_session(&self.session, move |session| async move {
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            s.ensure_writable().await?;
            if let Some(changes) = s.gallery.optimize()? {
                s.commit(changes, false).await?;
            }
            s.stats()
        })
    }

    /// Runs pending sealing/merging now; resolves to whether there was any.
    pub fn maintain(&self) -> Promise {
        with_session(&self.session, move |session| async move {
            let mut guard = session.lock().await;
            let s = open_session!(guard);
            Ok(JsValue::from_bool(maintain_now(s).await?))
        })
    }

    /// Releases the database, the write lock and the model.
    pub fn close(&self) -> Promise {
        with_session(&self.session, move |session| async move {
            let mut guard = session.lock().await;
            if let Some(s) = guard.take()
                && let Some(store) = &s.store
            {
                store.close();
            }
            Ok(JsValue::UNDEFINED)
        })
    }
}

async fn maintain_now(s: &mut Session) -> Result<bool> {
    if s.stale() || !s.lock.may_write() || !s.gallery.needs_maintenance() {
        return Ok(false);
    }
    match s.gallery.maintain()? {
        Some(changes) => {
            s.commit(changes, false).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Seals/merges segments after the current operation, in a later task.
fn schedule_maintenance(session: Rc<Mutex<Option<Session>>>) {
    wasm_bindgen_futures::spawn_local(async move {
        idb::sleep(0).await;
        let mut guard = session.lock().await;
        if let Some(s) = guard.as_mut()
            && let Err(e) = maintain_now(s).await
        {
            web_warn(&format!(
                "metricann: background index maintenance failed: {e}"
            ));
        }
    });
}
