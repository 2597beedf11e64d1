//! The JS bindings (wasm32 only): a thin adapter from JS values to the core.
//!
//! `MetricAnn` owns one model ([`crate::embed::Embedder`]) and one
//! [`crate::gallery::Gallery`]. The gallery lives in an IndexedDB database
//! ([`crate::store::idb::IdbStore`]) when it has a name, in memory otherwise
//! (Node.js, or a throw-away gallery). Every mutation is one
//! [`crate::blob::ChangeSet`] applied as one IndexedDB transaction; its
//! Promise resolves when the transaction has completed.
//!
//! Operations on one instance run one at a time (an async mutex), in call order.
//! Errors reach JS as `Error`s with `.code` = [`crate::Error::code`]. A Rust
//! panic still aborts the module (wasm32 cannot unwind); the panic hook logs
//! it and keeps its message for [`take_panic_message`], which the JS wrapper
//! turns into an `INTERNAL` error instead of an opaque `unreachable`.
//!
//! Files by idea: [`options`] reads JS arguments, [`input`] images, [`model`]
//! (with [`fetch`]) loads the model, [`open`] starts a [`session`], whose
//! [`session::Session::mutate`] the mutations go through (re-embedding, which
//! replaces the gallery whole, has its own), and [`adapt`] adapts the model
//! to the gallery's classes.

mod adapt;
mod fetch;
mod input;
mod js;
mod model;
mod open;
mod options;
mod session;

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use js_sys::{Float32Array, Promise};
use serde_json::json;
use wasm_bindgen::prelude::*;

use crate::Result;
use crate::store::idb;
use input::{inputs_of, kept_bytes, to_image};
use js::{blob_or_bytes, run, to_js, to_value};
use options::{
    check_options, enrollments_of, metadata_of, opt, opt_bool, opt_string, search_options,
    vector_of,
};
use session::{Session, Shared, Stale};

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

/// Set by the first instantiation. In the threaded build every Web Worker of
/// rayon's pool instantiates the module again over the same memory, and the
/// constructors (linked-list registrations) must not run twice.
static STARTED: AtomicBool = AtomicBool::new(false);

/// Runs the static constructors once, then installs the panic hook
/// (console_error_panic_hook, plus keeping the message).
#[wasm_bindgen(start)]
pub fn start() {
    if STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: called once per memory (the flag above), at instantiation
    // (wasm-bindgen's start function), before any other export runs.
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

/// The threads graph builds run on: the Web Workers of the threaded build's
/// pool (after `initThreadPool`), 1 in the single-threaded build.
#[wasm_bindgen]
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Starts rayon's pool of `threads` Web Workers over this module's shared
/// memory (the threaded build only; call it once, before anything else).
#[cfg(target_feature = "atomics")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// The version of this build.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// One model and one gallery, in the browser (IndexedDB) or in memory.
#[wasm_bindgen]
pub struct MetricAnn {
    session: Shared,
}

impl MetricAnn {
    fn wrap(session: Session) -> MetricAnn {
        MetricAnn {
            session: Shared::new(session),
        }
    }

    /// `op`, given this instance's session, as a Promise of its result.
    fn call<F, Fut>(&self, op: F) -> Promise
    where
        F: FnOnce(Shared) -> Fut,
        Fut: Future<Output = Result<JsValue>> + 'static,
    {
        run(op(self.session.clone()))
    }
}

#[wasm_bindgen]
impl MetricAnn {
    /// Opens (creating if needed) a gallery with a model. See the TypeScript
    /// declarations for the options.
    pub async fn open(options: JsValue) -> std::result::Result<MetricAnn, JsValue> {
        open::open(&options).await.map(Self::wrap).map_err(to_js)
    }

    /// Builds a gallery from an `export()` file: in IndexedDB under
    /// `options.gallery` (refused when that gallery exists, unless
    /// `options.overwrite`), or in memory.
    #[wasm_bindgen(js_name = importGallery)]
    pub async fn import_gallery(
        data: JsValue,
        options: JsValue,
    ) -> std::result::Result<MetricAnn, JsValue> {
        open::import(&data, &options)
            .await
            .map(Self::wrap)
            .map_err(to_js)
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
        self.call(move |shared| async move {
            let input = to_image(&image, "image").await?;
            shared
                .with(async |s| {
                    let v = s.embed_one(&input).await?;
                    Ok(Float32Array::from(v.as_slice()).into())
                })
                .await
        })
    }

    /// Enrolls one or more example images as class `label` (creating it or
    /// adding to it). Options: `metadata` (JSON), `keepImages` (store the
    /// images for `reembed`).
    pub fn enroll(&self, label: String, images: JsValue, options: JsValue) -> Promise {
        self.call(move |shared| async move {
            check_options(&options, "enroll")?;
            let metadata = metadata_of(opt(&options, "metadata"))?;
            let keep = opt_bool(&options, "keepImages")?;
            let what = format!("enrollment of class {label:?}");
            let inputs = inputs_of(&images, &what).await?;
            let examples = shared
                .with(async |s| {
                    s.mutate(Stale::Refused, async |s| {
                        let vectors = s.embed(&inputs).await?;
                        let kept = if keep {
                            kept_bytes(&inputs, &what)?
                        } else {
                            Vec::new()
                        };
                        s.gallery.enroll(&label, &vectors, metadata, kept)
                    })
                    .await?;
                    let class = s.gallery.classes().into_iter().find(|c| c.label == label);
                    Ok(class.map(|c| c.examples).unwrap_or(0))
                })
                .await?;
            shared.maintain_later();
            to_value(&json!({ "label": label, "examples": examples }))
        })
    }

    /// Enrolls precomputed vectors, several classes in one transaction:
    /// `entries` is `[{ label, vectors: Float32Array[], metadata? }]`.
    #[wasm_bindgen(js_name = enrollVectors)]
    pub fn enroll_vectors(&self, entries: JsValue) -> Promise {
        self.call(move |shared| async move {
            let entries = enrollments_of(&entries)?;
            let count = shared
                .with(async |s| {
                    // One chunk, one class page and one manifest for the
                    // whole call; a bad entry changes nothing.
                    s.mutate(Stale::Refused, async |s| s.gallery.enroll_batch(&entries))
                        .await?;
                    Ok(s.gallery.len())
                })
                .await?;
            shared.maintain_later();
            Ok(JsValue::from(count as f64))
        })
    }

    /// Which enrolled class is this image? Options: `k` (classes, default 5),
    /// `threshold` (open-set: `unknown` when the best score is below it; the
    /// model's calibrated threshold when not given).
    pub fn search(&self, image: JsValue, options: JsValue) -> Promise {
        self.call(move |shared| async move {
            let input = to_image(&image, "query image").await?;
            let (k, threshold) = search_options(&options)?;
            shared
                .with(async |s| {
                    s.check_current()?;
                    let query = s.embed_one(&input).await?;
                    s.search(&query, k, threshold)
                })
                .await
        })
    }

    /// `search` with a precomputed embedding.
    #[wasm_bindgen(js_name = searchVector)]
    pub fn search_vector(&self, vector: JsValue, options: JsValue) -> Promise {
        self.call(move |shared| async move {
            let query = vector_of(&vector, "the query vector")?;
            let (k, threshold) = search_options(&options)?;
            shared
                .with(async |s| {
                    s.check_current()?;
                    s.search(&query, k, threshold)
                })
                .await
        })
    }

    /// Removes a class (NOT_FOUND when there is none).
    pub fn remove(&self, label: String) -> Promise {
        self.call(move |shared| async move {
            shared
                .mutate(Stale::Allowed, async |s| s.gallery.remove(&label))
                .await?;
            shared.maintain_later();
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Renames a class (NOT_FOUND, ALREADY_EXISTS).
    pub fn rename(&self, old: String, new: String) -> Promise {
        self.call(move |shared| async move {
            shared
                .mutate(Stale::Allowed, async |s| s.gallery.rename(&old, &new))
                .await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Replaces (or with null clears) a class's metadata.
    #[wasm_bindgen(js_name = setMetadata)]
    pub fn set_metadata(&self, label: String, metadata: JsValue) -> Promise {
        self.call(move |shared| async move {
            let given = !metadata.is_undefined() && !metadata.is_null();
            let metadata = metadata_of(given.then_some(metadata))?;
            shared
                .mutate(Stale::Allowed, async |s| {
                    s.gallery.set_metadata(&label, metadata)
                })
                .await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Every class: `[{ label, examples, metadata, hasImages }]`.
    pub fn classes(&self) -> Promise {
        self.call(move |shared| async move { shared.with(async |s| s.classes()).await })
    }

    /// Counts, segments, bytes, backend, lock state, damage.
    pub fn stats(&self) -> Promise {
        self.call(move |shared| async move { shared.with(async |s| s.stats()).await })
    }

    /// The whole gallery as one file: a Blob, or a Uint8Array with
    /// `{ format: "bytes" }` (and where Blob does not exist).
    #[wasm_bindgen(js_name = exportGallery)]
    pub fn export_gallery(&self, options: JsValue) -> Promise {
        self.call(move |shared| async move {
            check_options(&options, "export")?;
            let as_bytes = opt_string(&options, "format")?.as_deref() == Some("bytes");
            let bytes = shared.with(async |s| s.gallery.export_bytes()).await?;
            blob_or_bytes(&bytes, as_bytes, "application/x-metricann-gallery")
        })
    }

    /// Rebuilds the gallery with the current model from the kept enrollment
    /// images (after opening with `allowModelMismatch`, or any time). One
    /// transaction: on failure the stored gallery is unchanged.
    pub fn reembed(&self) -> Promise {
        self.call(move |shared| async move {
            shared
                .with(async |s| {
                    s.reembed().await?;
                    to_value(&json!({
                        "classes": s.gallery.len(),
                        "vectors": s.gallery.stats().vectors,
                    }))
                })
                .await
        })
    }

    /// Adapts the model's projection head to the gallery's classes, from
    /// their kept images (see the TypeScript declarations for the options);
    /// when the held-out check keeps it, the head is stored with the gallery
    /// and the gallery re-embedded with it, in one transaction. Resolves to
    /// what was measured, or null when `options.signal` aborted it.
    pub fn adapt(&self, options: JsValue) -> Promise {
        self.call(move |shared| async move {
            let call = adapt::AdaptCall::parse(&options)?;
            let result = shared.with(async |s| s.adapt(&call).await).await?;
            match result {
                Some(report) => to_value(&report),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// Goes back to the shipped model's head: the gallery re-embedded with
    /// it from its kept images. Resolves to whether it was adapted.
    #[wasm_bindgen(js_name = resetAdaptation)]
    pub fn reset_adaptation(&self) -> Promise {
        self.call(move |shared| async move {
            let undone = shared.with(async |s| s.reset_adaptation().await).await?;
            Ok(JsValue::from_bool(undone))
        })
    }

    /// Stores the gallery's graphs as int8 codes from now on (a quarter of
    /// their vectors' memory; see the README for the recall it costs), or,
    /// with `"int8-residual"`, codes plus residual codes (about half, with
    /// float recall), in one transaction. Resolves to the stats.
    pub fn quantize(&self, mode: Option<String>) -> Promise {
        self.call(move |shared| async move {
            let mode = mode.as_deref().unwrap_or("int8").parse()?;
            shared
                .with(async |s| {
                    s.mutate(Stale::Allowed, async |s| s.gallery.quantize_to(mode))
                        .await?;
                    s.stats()
                })
                .await
        })
    }

    /// Rebuilds the whole gallery's index into one graph, in one transaction:
    /// after a bulk load, for the fastest search (every segment is searched
    /// per query). Slow: a build over every vector. Resolves to the stats.
    pub fn optimize(&self) -> Promise {
        self.call(move |shared| async move {
            shared
                .with(async |s| {
                    s.mutate(Stale::Allowed, async |s| s.gallery.optimize())
                        .await?;
                    s.stats()
                })
                .await
        })
    }

    /// Runs pending sealing/merging now; resolves to whether there was any.
    pub fn maintain(&self) -> Promise {
        self.call(move |shared| async move {
            shared
                .with(async |s| Ok(JsValue::from_bool(s.maintain().await?)))
                .await
        })
    }

    /// Releases the database, the write lock and the model.
    pub fn close(&self) -> Promise {
        self.call(move |shared| async move {
            shared.close().await;
            Ok(JsValue::UNDEFINED)
        })
    }
}
