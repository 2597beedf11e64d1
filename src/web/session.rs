//! An open gallery with its model, where it is stored, and the write lock.
//!
//! Every mutation is one [`ChangeSet`] applied as one IndexedDB transaction
//! ([`Session::commit`]); when that fails, the gallery is read again so that
//! memory matches what is stored.

use std::rc::Rc;

use futures_util::lock::Mutex;
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;

use super::input::Input;
use super::js::{to_value, web_warn};
use super::model::{Model, backend_label};
use crate::blob::{BlobRead, ChangeSet, Damage, MANIFEST};
use crate::gallery::{Gallery, GalleryConfig, OpenMode};
use crate::index::IndexConfig;
use crate::store::MemoryStore;
use crate::store::idb::{self, BadRecord, IdbStore, LockState};
use crate::{Error, Result};

/// An open gallery and its model.
pub(super) struct Session {
    pub(super) model: Model,
    pub(super) gallery: Gallery,
    /// `None`: an in-memory gallery.
    pub(super) store: Option<IdbStore>,
    pub(super) lock: LockState,
    pub(super) name: Option<String>,
    pub(super) mode: OpenMode,
    pub(super) damage: Vec<Damage>,
}

/// Whether a mutation may change a gallery that holds another model's
/// vectors (opened with `allowModelMismatch`, until `reembed`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Stale {
    /// MODEL_MISMATCH: it would mix two models' vectors.
    Refused,
    /// It adds no vectors (remove, rename, metadata, index work).
    Allowed,
}

impl Session {
    /// A gallery in memory only: nothing to lock or store.
    pub(super) fn in_memory(model: Model, gallery: Gallery, mode: OpenMode) -> Session {
        Session {
            model,
            gallery,
            store: None,
            lock: LockState::Unsupported,
            name: None,
            mode,
            damage: Vec::new(),
        }
    }

    /// Whether the gallery holds another model's vectors (until `reembed`).
    pub(super) fn stale(&self) -> bool {
        self.gallery.fingerprint() != self.model.embedder.fingerprint()
    }

    pub(super) fn check_current(&self) -> Result<()> {
        if self.stale() {
            return Err(self.mismatch());
        }
        Ok(())
    }

    pub(super) fn mismatch(&self) -> Error {
        Error::ModelMismatch {
            what: match &self.name {
                Some(n) => format!("gallery {n:?}"),
                None => "the gallery".into(),
            },
            expected: self.model.embedder.fingerprint().to_string(),
            found: self.gallery.fingerprint().to_string(),
        }
    }

    pub(super) async fn embed(&self, inputs: &[Input]) -> Result<Vec<Vec<f32>>> {
        let images: Vec<_> = inputs.iter().map(|i| i.image.clone()).collect();
        self.model.embedder.embed_async(&images).await
    }

    pub(super) async fn embed_one(&self, input: &Input) -> Result<Vec<f32>> {
        self.embed(std::slice::from_ref(input))
            .await?
            .pop()
            .ok_or_else(|| Error::Internal("no embedding".into()))
    }

    /// A class-level search, with the model's calibrated threshold when the
    /// caller gave none.
    pub(super) fn search(
        &self,
        query: &[f32],
        k: usize,
        threshold: Option<f32>,
    ) -> Result<JsValue> {
        let threshold = threshold.or(self.model.threshold);
        to_value(&self.gallery.search(query, k, threshold)?)
    }

    /// Runs one mutation: refuses it first when it needs the current model
    /// and the gallery is stale, then when this context may not write, so
    /// that `change` only runs when its result can be stored. Commits what
    /// `change` returns (a `None` stores nothing).
    pub(super) async fn mutate<C>(
        &mut self,
        stale: Stale,
        change: impl AsyncFnOnce(&mut Session) -> Result<C>,
    ) -> Result<()>
    where
        C: Into<Option<ChangeSet>>,
    {
        if stale == Stale::Refused {
            self.check_current()?;
        }
        self.ensure_writable().await?;
        if let Some(changes) = change(self).await?.into() {
            self.commit(changes, false).await?;
        }
        Ok(())
    }

    /// Rebuilds the gallery with the current model from its kept images and
    /// replaces the stored one whole, in one transaction: on failure the
    /// stored gallery is unchanged.
    pub(super) async fn reembed(&mut self) -> Result<()> {
        self.ensure_writable().await?;
        let (gallery, all) = reembedded(&self.gallery, &self.model).await?;
        self.commit(all, true).await?;
        self.gallery = gallery;
        self.damage.clear();
        Ok(())
    }

    /// Runs pending sealing/merging now; whether there was any. Never on a
    /// stale or read-only gallery, where it could not be stored.
    pub(super) async fn maintain(&mut self) -> Result<bool> {
        if self.stale() || !self.lock.may_write() || !self.gallery.needs_maintenance() {
            return Ok(false);
        }
        match self.gallery.maintain()? {
            Some(changes) => {
                self.commit(changes, false).await?;
                Ok(true)
            }
            None => Ok(false),
        }
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
        self.sync_head()
    }

    /// Embeds with the gallery's adapted head, when it has one for this model.
    pub(super) fn sync_head(&mut self) -> Result<()> {
        self.model.use_head(self.gallery.head())
    }

    /// Makes sure this context may write (taking the lock if another context
    /// released it) before anything is changed in memory.
    pub(super) async fn ensure_writable(&mut self) -> Result<()> {
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
    pub(super) async fn commit(&mut self, changes: ChangeSet, replace_all: bool) -> Result<()> {
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

    /// Every class: `[{ label, examples, metadata, hasImages }]`.
    pub(super) fn classes(&self) -> Result<JsValue> {
        let list: Vec<Value> = self
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
    }

    pub(super) fn stats(&self) -> Result<JsValue> {
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
            "wasmMemoryBytes": core::arch::wasm32::memory_size::<0>() * WASM_PAGE_BYTES,
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
            "threads": rayon::current_num_threads(),
            "fingerprint": self.gallery.fingerprint(),
            "modelFingerprint": self.model.embedder.fingerprint(),
            "adapted": self.model.adapted.is_some(),
            "model": self.model.name,
            "threshold": self.model.threshold,
            "stale": self.stale(),
            "needsMaintenance": self.gallery.needs_maintenance(),
            "damaged": self.damage.iter().map(|d| json!({"blob": d.blob, "reason": d.reason})).collect::<Vec<_>>(),
        });
        to_value(&v)
    }
}

/// The size of a WebAssembly memory page.
const WASM_PAGE_BYTES: usize = 65_536;

const CLOSED: &str = "this MetricAnn instance is closed";

/// The session of one `MetricAnn`, shared with the operations it has started.
/// Its mutex runs them one at a time, in the order they reach it.
#[derive(Clone)]
pub(super) struct Shared(Rc<Mutex<Option<Session>>>);

impl Shared {
    pub(super) fn new(session: Session) -> Shared {
        Shared(Rc::new(Mutex::new(Some(session))))
    }

    /// Runs `op` on the session once the operations before it are done
    /// (BAD_INPUT once it is closed).
    pub(super) async fn with<T>(
        &self,
        op: impl AsyncFnOnce(&mut Session) -> Result<T>,
    ) -> Result<T> {
        let mut guard = self.0.lock().await;
        let session = guard
            .as_mut()
            .ok_or_else(|| Error::BadInput(CLOSED.into()))?;
        op(session).await
    }

    /// [`Session::mutate`] on the session, once the operations before it are done.
    pub(super) async fn mutate<C>(
        &self,
        stale: Stale,
        change: impl AsyncFnOnce(&mut Session) -> Result<C>,
    ) -> Result<()>
    where
        C: Into<Option<ChangeSet>>,
    {
        self.with(async |s| s.mutate(stale, change).await).await
    }

    /// Releases the database and the write lock (the model with the session).
    pub(super) async fn close(&self) {
        let mut guard = self.0.lock().await;
        if let Some(s) = guard.take()
            && let Some(store) = &s.store
        {
            store.close();
        }
    }

    /// Seals/merges segments in a later task, after the current operation's
    /// Promise has resolved: a failure there is only logged.
    pub(super) fn maintain_later(&self) {
        let shared = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            idb::sleep(0).await;
            let mut guard = shared.0.lock().await;
            if let Some(s) = guard.as_mut()
                && let Err(e) = s.maintain().await
            {
                web_warn(&format!(
                    "metricann: background index maintenance failed: {e}"
                ));
            }
        });
    }
}

/// Reads the stored gallery; `None` when the database holds none yet.
async fn read_gallery(store: &IdbStore, mode: OpenMode) -> Result<Option<(Gallery, Vec<Damage>)>> {
    decode_gallery(store, store.load_all().await?, mode)
}

/// Opens the gallery in `loaded` (what [`IdbStore::load_all`] read from
/// `store`); `None` when the database is empty.
pub(super) fn decode_gallery(
    store: &IdbStore,
    (memory, bad): (MemoryStore, Vec<BadRecord>),
    mode: OpenMode,
) -> Result<Option<(Gallery, Vec<Damage>)>> {
    let has_manifest = matches!(memory.read(MANIFEST), Ok(Some(_)));
    if !has_manifest && bad.iter().all(|b| b.name != MANIFEST) {
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
    let mut damage = bad_records(&bad, mode)?;
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

/// Records IndexedDB held as something other than bytes: damage to skip,
/// or (strict, or the manifest) the error.
fn bad_records(bad: &[BadRecord], mode: OpenMode) -> Result<Vec<Damage>> {
    let mut damage = Vec::new();
    for record in bad {
        let e = Error::corrupt(
            &record.name,
            format!("the stored value is a {}, not bytes", record.found),
        );
        if mode == OpenMode::Strict || record.name == MANIFEST {
            return Err(e);
        }
        damage.push(Damage::from_error(&record.name, &e));
    }
    Ok(damage)
}

/// The gallery config of `model`'s embeddings.
pub(super) fn gallery_config(model: &Model) -> GalleryConfig {
    GalleryConfig {
        dim: model.embedder.dim(),
        fingerprint: model.embedder.fingerprint().to_string(),
        index: IndexConfig::default(),
        head: model.adapted.clone(),
    }
}

/// An empty gallery for `model`, and the change set that stores it.
pub(super) fn new_gallery(model: &Model) -> Result<(Gallery, ChangeSet)> {
    let (mut gallery, changes) = Gallery::create(gallery_config(model))?;
    // Sealing and merging run after the mutation's Promise has resolved.
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
