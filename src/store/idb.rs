//! The browser store: one IndexedDB database per gallery, one object store of
//! named blobs (key: the blob name, value: its bytes as a `Uint8Array`, or as
//! a `Blob` from [`BLOB_VALUE_BYTES`] up).
//!
//! Why large values are `Blob`s: Chromium hands a stored `ArrayBuffer` back
//! by deserialising it on the page's thread inside `getAll`, about 0.6 s for
//! 354 MB here, while a stored `Blob` comes back as a handle at once and its
//! bytes are read off-thread in 0.25–0.27 s (three runs each, headless
//! Chromium on this 2-core machine). At a million vectors that is a third of
//! a reload. Small values (the manifest, class pages, growing chunks) stay
//! bytes: an enrollment writes only those, and the manifest is compared
//! inside the write transaction, where nothing can be awaited.
//!
//! - [`IdbStore::load_all`] reads every blob in one read-only transaction into a
//!   [`MemoryStore`], from which the gallery is opened.
//! - [`IdbStore::apply`] writes a whole [`ChangeSet`] in one read-write
//!   transaction and resolves when the transaction has *completed* (durable).
//!   Inside that transaction it first re-reads the manifest and aborts when it is
//!   not the one this store last read or wrote: another tab changed the gallery
//!   behind our back, which is reported as [`Error::Locked`] instead of
//!   overwriting its work.
//! - [`WriteLock`]: a Web Lock (`navigator.locks`, exclusive, `ifAvailable`)
//!   named after the gallery; the JS binding holds it while the gallery is open
//!   so that a second tab opens the gallery read-only and its writes fail with
//!   `LOCKED`.
//!
//! A `QuotaExceededError` from the browser becomes [`Error::QuotaExceeded`].

use std::cell::RefCell;

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    DomException, IdbDatabase, IdbFactory, IdbObjectStore, IdbOpenDbRequest, IdbRequest,
    IdbTransaction, IdbTransactionMode,
};

use super::MemoryStore;
use crate::blob::{ChangeSet, MANIFEST};
use crate::{Error, Result};

/// Values from this size up are stored as a `Blob` (see the module doc).
pub const BLOB_VALUE_BYTES: usize = 64 * 1024;

/// The object store holding the blobs.
pub const OBJECT_STORE: &str = "blobs";
/// Schema version of the database.
pub const DB_VERSION: u32 = 1;
/// Database names are this prefix plus the gallery name.
pub const DB_PREFIX: &str = "metricann:";

/// A blob record that is not bytes (damaged by hand or another program).
#[derive(Debug, Clone)]
pub struct BadRecord {
    /// The record's key.
    pub name: String,
    /// What was found instead of bytes.
    pub found: String,
}

/// One gallery's IndexedDB database.
#[derive(Debug)]
pub struct IdbStore {
    db: IdbDatabase,
    gallery: String,
    /// The manifest as last read or written: the precondition of the next write.
    manifest: RefCell<Option<Vec<u8>>>,
    /// Closes this connection when another tab deletes or upgrades the database.
    _on_version_change: Listener,
}

/// The database name of gallery `gallery`.
pub fn database_name(gallery: &str) -> String {
    format!("{DB_PREFIX}{gallery}")
}

/// Checks a gallery name (it becomes a database and a lock name).
pub fn check_gallery_name(gallery: &str) -> Result<()> {
    if gallery.is_empty() || gallery.len() > 200 || gallery.chars().any(char::is_control) {
        return Err(Error::BadInput(format!(
            "gallery name {gallery:?} must be 1 to 200 characters without control characters"
        )));
    }
    Ok(())
}

/// Whether this JS environment has IndexedDB.
pub fn available() -> bool {
    factory().is_ok()
}

fn factory() -> Result<IdbFactory> {
    let global = js_sys::global();
    let value = Reflect::get(&global, &JsValue::from_str("indexedDB"))
        .map_err(|e| Error::Internal(format!("reading globalThis.indexedDB: {}", describe(&e))))?;
    if value.is_undefined() || value.is_null() {
        return Err(Error::BadInput(
            "IndexedDB is not available in this environment (Node.js?): open the gallery \
             without a name for an in-memory gallery, and persist it with export()/import()"
                .into(),
        ));
    }
    value
        .dyn_into::<IdbFactory>()
        .map_err(|_| Error::Internal("globalThis.indexedDB is not an IDBFactory".into()))
}

/// A readable description of a thrown JS value.
pub fn describe(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<DomException>() {
        return format!("{}: {}", e.name(), e.message());
    }
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}

/// Maps a DOM exception from IndexedDB to a library error.
fn idb_error(gallery: &str, what: &str, value: &JsValue) -> Error {
    if let Some(e) = value.dyn_ref::<DomException>()
        && e.name() == "QuotaExceededError"
    {
        let detail = match e.message() {
            m if m.is_empty() => "the browser's storage quota for this site is used up".to_string(),
            m => m,
        };
        return Error::QuotaExceeded(format!(
            "IndexedDB refused to store {what} of gallery {gallery:?}: {detail}"
        ));
    }
    // The browser failed the request or aborted the transaction (a failing
    // disk, a closing tab, a crashed storage process): the environment's
    // I/O, not a bug of ours.
    Error::io(
        format!("IndexedDB gallery {gallery:?}"),
        std::io::Error::other(format!("{what} failed: {}", describe(value))),
    )
}

/// A promise settled by the first of two events of one target, with the
/// listeners that settle it attached for as long as the `Settled` lives and
/// removed when it is dropped:
/// - `Closure::once_into_js` frees a closure only when it is called, so the
///   handler of the event that never fires (a request's `error`, a
///   transaction's `abort`) would keep what it captured, the request with its
///   result, the transaction, the promise's functions, alive for as long as the
///   page lives;
/// - a listener whose closure was freed while still attached throws when its
///   event comes after all ("closure invoked after being dropped").
///
/// Create it before awaiting anything else: an event that fires before its
/// listener is attached is lost, and in the threaded build a woken future
/// resumes only a task later (`Atomics.waitAsync`), after events already queued.
struct Settled {
    promise: Promise,
    _listeners: Option<[Listener; 2]>,
}

/// An event handler written in Rust.
type Handler = Closure<dyn FnMut(JsValue)>;

/// A [`Handler`] listening on a target until dropped: the closure is freed only
/// once nothing can call it any more.
#[derive(Debug)]
struct Listener {
    target: web_sys::EventTarget,
    event: &'static str,
    handler: Handler,
}

impl Listener {
    fn new(target: &web_sys::EventTarget, event: &'static str, handler: Handler) -> Listener {
        let _ = target.add_event_listener_with_callback(event, handler.as_ref().unchecked_ref());
        Listener {
            target: target.clone(),
            event,
            handler,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.event, self.handler.as_ref().unchecked_ref());
    }
}

impl Settled {
    /// Listens on `target` for `ok_event` and `fail_event`; the promise
    /// resolves with `ok_value(event)` or rejects with `fail_value(event)`.
    fn new(
        target: &web_sys::EventTarget,
        [ok_event, fail_event]: [&'static str; 2],
        ok_value: impl Fn(JsValue) -> JsValue + 'static,
        fail_value: impl Fn(JsValue) -> JsValue + 'static,
    ) -> Settled {
        let mut parts = Some((ok_value, fail_value));
        let mut listeners = None;
        let promise = Promise::new(&mut |resolve: Function, reject: Function| {
            let Some((ok_value, fail_value)) = parts.take() else {
                return;
            };
            let ok = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                let _ = resolve.call1(&JsValue::UNDEFINED, &ok_value(event));
            });
            let fail = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                let _ = reject.call1(&JsValue::UNDEFINED, &fail_value(event));
            });
            listeners = Some([
                Listener::new(target, ok_event, ok),
                Listener::new(target, fail_event, fail),
            ]);
        });
        Settled {
            promise,
            _listeners: listeners,
        }
    }

    /// Settled by a request's `success` (with its result) or `error`.
    fn request(request: &IdbRequest) -> Settled {
        let (ok_request, fail_request) = (request.clone(), request.clone());
        Settled::new(
            request.as_ref(),
            ["success", "error"],
            move |_event| ok_request.result().unwrap_or(JsValue::UNDEFINED),
            move |_event| {
                fail_request
                    .error()
                    .ok()
                    .flatten()
                    .map(JsValue::from)
                    .unwrap_or_else(|| JsValue::from_str("unknown IndexedDB error"))
            },
        )
    }

    /// Settled when a transaction completes (resolves) or aborts (rejects with
    /// the transaction's error).
    fn transaction(tx: &IdbTransaction) -> Settled {
        let abort_tx = tx.clone();
        Settled::new(
            tx.as_ref(),
            ["complete", "abort"],
            |_event| JsValue::UNDEFINED,
            move |_event| {
                abort_tx
                    .error()
                    .map(JsValue::from)
                    .unwrap_or_else(|| JsValue::from_str("the transaction was aborted"))
            },
        )
    }

    /// The outcome; the listeners are removed with `self`.
    async fn wait(self) -> std::result::Result<JsValue, JsValue> {
        JsFuture::from(self.promise.clone()).await
    }
}

/// The value a blob is stored as: a `Blob` when large, else a `Uint8Array`.
fn stored_value(name: &str, bytes: &[u8]) -> std::result::Result<JsValue, JsValue> {
    let array = Uint8Array::from(bytes);
    if bytes.len() < BLOB_VALUE_BYTES || name == MANIFEST {
        return Ok(array.into());
    }
    Ok(web_sys::Blob::new_with_u8_array_sequence(&Array::of1(&array))?.into())
}

fn bytes_of(value: &JsValue) -> Option<Vec<u8>> {
    if let Some(a) = value.dyn_ref::<Uint8Array>() {
        return Some(a.to_vec());
    }
    if value.is_instance_of::<js_sys::ArrayBuffer>() {
        return Some(Uint8Array::new(value).to_vec());
    }
    None
}

fn type_name(value: &JsValue) -> String {
    if value.is_null() {
        return "null".into();
    }
    if value.is_undefined() {
        return "undefined".into();
    }
    if let Some(o) = value.dyn_ref::<js_sys::Object>() {
        let ctor = String::from(o.constructor().name());
        if !ctor.is_empty() {
            return ctor;
        }
    }
    value.js_typeof().as_string().unwrap_or_else(|| "?".into())
}

impl IdbStore {
    /// Opens (creating if needed) the database of gallery `gallery`.
    pub async fn open(gallery: &str) -> Result<IdbStore> {
        check_gallery_name(gallery)?;
        let factory = factory()?;
        let name = database_name(gallery);
        let request: IdbOpenDbRequest = factory
            .open_with_u32(&name, DB_VERSION)
            .map_err(|e| idb_error(gallery, "opening the database", &e))?;
        let upgrade_request = request.clone();
        // Both removed once the open request settles (see `Settled`).
        let on_upgrade = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
            if let Ok(result) = upgrade_request.result()
                && let Ok(db) = result.dyn_into::<IdbDatabase>()
                && !db.object_store_names().contains(OBJECT_STORE)
            {
                // An error here aborts the upgrade, which fails the open request.
                let _ = db.create_object_store(OBJECT_STORE);
            }
        });
        let on_blocked = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
            web_sys_log(
                "metricann: the IndexedDB upgrade waits for another tab to close the gallery",
            );
        });
        let listeners = (
            Listener::new(request.as_ref(), "upgradeneeded", on_upgrade),
            Listener::new(request.as_ref(), "blocked", on_blocked),
        );
        let opened = Settled::request(request.as_ref()).wait().await;
        drop(listeners);
        let db = opened
            .map_err(|e| idb_error(gallery, "opening the database", &e))?
            .dyn_into::<IdbDatabase>()
            .map_err(|_| Error::Internal("IndexedDB open did not yield a database".into()))?;
        if !db.object_store_names().contains(OBJECT_STORE) {
            return Err(Error::corrupt(
                name,
                format!("the database has no {OBJECT_STORE:?} object store"),
            ));
        }
        // Another tab deleting or upgrading the database: let it, we are done.
        let close_db = db.clone();
        let on_version_change = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
            close_db.close();
        });
        Ok(IdbStore {
            _on_version_change: Listener::new(db.as_ref(), "versionchange", on_version_change),
            db,
            gallery: gallery.to_string(),
            manifest: RefCell::new(None),
        })
    }

    /// The gallery this database holds.
    pub fn gallery(&self) -> &str {
        &self.gallery
    }

    fn transaction(&self, mode: IdbTransactionMode) -> Result<(IdbTransaction, IdbObjectStore)> {
        let tx = self
            .db
            .transaction_with_str_and_mode(OBJECT_STORE, mode)
            .map_err(|e| idb_error(&self.gallery, "starting a transaction", &e))?;
        let store = tx
            .object_store(OBJECT_STORE)
            .map_err(|e| idb_error(&self.gallery, "opening the object store", &e))?;
        Ok((tx, store))
    }

    /// Reads every blob into memory. Records whose value is not bytes are
    /// returned separately (the caller reports them as damaged).
    pub async fn load_all(&self) -> Result<(MemoryStore, Vec<BadRecord>)> {
        let (_tx, store) = self.transaction(IdbTransactionMode::Readonly)?;
        let keys_request = store
            .get_all_keys()
            .map_err(|e| idb_error(&self.gallery, "listing blobs", &e))?;
        let values_request = store
            .get_all()
            .map_err(|e| idb_error(&self.gallery, "reading blobs", &e))?;
        // Both listen before either is awaited (see `Settled`).
        let (keys, values) = (
            Settled::request(&keys_request),
            Settled::request(&values_request),
        );
        let keys = keys
            .wait()
            .await
            .map_err(|e| idb_error(&self.gallery, "listing blobs", &e))?;
        let values = values
            .wait()
            .await
            .map_err(|e| idb_error(&self.gallery, "reading blobs", &e))?;
        let keys: Array = keys.unchecked_into();
        let values: Array = values.unchecked_into();
        if keys.length() != values.length() {
            return Err(Error::Internal(format!(
                "IndexedDB listed {} keys but {} values",
                keys.length(),
                values.length()
            )));
        }
        // Every Blob's read starts now, so that they run together.
        let values: Vec<(JsValue, Option<Promise>)> = values
            .iter()
            .map(|v| {
                let read = v.dyn_ref::<web_sys::Blob>().map(|b| b.array_buffer());
                (v, read)
            })
            .collect();
        let mut memory = MemoryStore::new();
        let mut bad = Vec::new();
        for (key, (value, read)) in keys.iter().zip(values) {
            let name = key.as_string().unwrap_or_else(|| format!("{key:?}"));
            let read = match read {
                Some(read) => match JsFuture::from(read).await {
                    Ok(buffer) => Some(buffer),
                    // The browser lost the Blob's file: that record is damaged.
                    Err(e) => {
                        bad.push(BadRecord {
                            name,
                            found: format!("Blob that could not be read ({})", describe(&e)),
                        });
                        continue;
                    }
                },
                None => None,
            };
            match bytes_of(read.as_ref().unwrap_or(&value)) {
                Some(bytes) => {
                    memory.raw_mut().insert(name, bytes);
                }
                None => bad.push(BadRecord {
                    name,
                    found: type_name(&value),
                }),
            }
        }
        let manifest = memory.raw_mut().get(MANIFEST).cloned();
        *self.manifest.borrow_mut() = manifest;
        Ok((memory, bad))
    }

    /// Applies `changes` in one read-write transaction; resolves once the
    /// transaction has completed. Puts first (the manifest among them), then
    /// deletes, exactly as [`MemoryStore`] applies them. With `replace_all`, the
    /// object store is cleared first (import, re-embedding).
    ///
    /// Fails with [`Error::Locked`] (and changes nothing) when the stored
    /// manifest is not the one this store last read or wrote.
    pub async fn apply(&self, changes: &ChangeSet, replace_all: bool) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let (tx, store) = self.transaction(IdbTransactionMode::Readwrite)?;
        let conflict = std::rc::Rc::new(RefCell::new(None::<Error>));
        let done = Settled::transaction(&tx);

        // The writes, staged as JS values before the transaction can auto-commit.
        let puts = changes
            .puts
            .iter()
            .map(|(n, b)| Ok((n.clone(), stored_value(n, b)?)))
            .collect::<std::result::Result<Vec<(String, JsValue)>, JsValue>>()
            .map_err(|e| idb_error(&self.gallery, "staging the blobs", &e))?;
        let deletes = changes.deletes.clone();
        let expected = self.manifest.borrow().clone();
        let gallery = self.gallery.clone();

        let check = store
            .get(&JsValue::from_str(MANIFEST))
            .map_err(|e| idb_error(&self.gallery, "reading the manifest", &e))?;
        let check_request = check.clone();
        let write_tx = tx.clone();
        let write_store = store.clone();
        let conflict_slot = conflict.clone();
        // Removed with this function: a failed check never calls it (see `Settled`).
        let on_checked: Handler = Closure::once(move |_event: JsValue| {
            let found = check_request.result().ok().and_then(|v| bytes_of(&v));
            if found != expected {
                *conflict_slot.borrow_mut() = Some(Error::Locked(format!(
                    "gallery {gallery:?} was changed by another tab or window since this one \
                     read it; reopen the gallery"
                )));
                let _ = write_tx.abort();
                return;
            }
            let result = (|| -> std::result::Result<(), JsValue> {
                if replace_all {
                    write_store.clear()?;
                }
                for (name, bytes) in &puts {
                    write_store.put_with_key(bytes, &JsValue::from_str(name))?;
                }
                for name in &deletes {
                    write_store.delete(&JsValue::from_str(name))?;
                }
                Ok(())
            })();
            if let Err(e) = result {
                *conflict_slot.borrow_mut() = Some(idb_error(&gallery, "writing", &e));
                let _ = write_tx.abort();
            }
        });
        let _on_checked = Listener::new(check.as_ref(), "success", on_checked);

        let outcome = done.wait().await;
        if let Some(e) = conflict.borrow_mut().take() {
            return Err(e);
        }
        outcome.map_err(|e| {
            idb_error(
                &self.gallery,
                &format!("a {}-byte change", changes.put_bytes()),
                &e,
            )
        })?;
        if let Some(m) = changes.manifest() {
            *self.manifest.borrow_mut() = Some(m.to_vec());
        } else if replace_all {
            *self.manifest.borrow_mut() = None;
        }
        Ok(())
    }

    /// Closes the database connection.
    pub fn close(&self) {
        self.db.close();
    }
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        self.db.close();
    }
}

/// Deletes the database of gallery `gallery` (resolves when deleted).
pub async fn delete_database(gallery: &str) -> Result<()> {
    check_gallery_name(gallery)?;
    let factory = factory()?;
    let request = factory
        .delete_database(&database_name(gallery))
        .map_err(|e| idb_error(gallery, "deleting the database", &e))?;
    Settled::request(request.as_ref())
        .wait()
        .await
        .map_err(|e| idb_error(gallery, "deleting the database", &e))?;
    Ok(())
}

fn web_sys_log(message: &str) {
    let console = Reflect::get(&js_sys::global(), &JsValue::from_str("console")).ok();
    if let Some(console) = console
        && let Ok(warn) = Reflect::get(&console, &JsValue::from_str("warn"))
        && let Ok(warn) = warn.dyn_into::<Function>()
    {
        let _ = warn.call1(&console, &JsValue::from_str(message));
    }
}

/// How a gallery is held for writing.
#[derive(Debug)]
pub enum LockState {
    /// This context holds the gallery's Web Lock until it is dropped.
    Held(WriteLock),
    /// Another tab, window or worker holds it: this one is read-only.
    HeldElsewhere,
    /// No Web Locks API here (Node.js, old browsers): no cross-tab exclusion
    /// beyond the manifest check in [`IdbStore::apply`].
    Unsupported,
}

impl LockState {
    /// Whether this context may write.
    pub fn may_write(&self) -> bool {
        !matches!(self, LockState::HeldElsewhere)
    }
}

/// A held Web Lock; released on drop.
#[derive(Debug)]
pub struct WriteLock {
    release: Function,
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = self.release.call0(&JsValue::UNDEFINED);
    }
}

/// A promise and its `resolve` function.
fn deferred() -> Result<(Promise, Function)> {
    let mut resolve_fn = None;
    let promise = Promise::new(&mut |resolve: Function, _reject: Function| {
        resolve_fn = Some(resolve);
    });
    let resolve =
        resolve_fn.ok_or_else(|| Error::Internal("Promise executor did not run".into()))?;
    Ok((promise, resolve))
}

/// Tries once to take the exclusive Web Lock of `gallery` without waiting.
pub async fn try_lock(gallery: &str) -> Result<LockState> {
    let global = js_sys::global();
    let navigator =
        Reflect::get(&global, &JsValue::from_str("navigator")).unwrap_or(JsValue::UNDEFINED);
    if navigator.is_undefined() || navigator.is_null() {
        return Ok(LockState::Unsupported);
    }
    let locks = Reflect::get(&navigator, &JsValue::from_str("locks")).unwrap_or(JsValue::UNDEFINED);
    if locks.is_undefined() || locks.is_null() {
        return Ok(LockState::Unsupported);
    }
    let request = Reflect::get(&locks, &JsValue::from_str("request"))
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .ok_or_else(|| Error::Internal("navigator.locks.request is not a function".into()))?;

    let (decided, decide) = deferred()?;
    let (held, release) = deferred()?;
    let callback = Closure::once_into_js(move |lock: JsValue| -> JsValue {
        let granted = !lock.is_null() && !lock.is_undefined();
        let _ = decide.call1(&JsValue::UNDEFINED, &JsValue::from_bool(granted));
        if granted {
            held.into()
        } else {
            JsValue::from_bool(false)
        }
    });
    let options = js_sys::Object::new();
    let _ = Reflect::set(
        &options,
        &JsValue::from_str("mode"),
        &JsValue::from_str("exclusive"),
    );
    let _ = Reflect::set(&options, &JsValue::from_str("ifAvailable"), &JsValue::TRUE);
    let name = JsValue::from_str(&format!("{DB_PREFIX}{gallery}"));
    let outcome = request
        .call3(&locks, &name, &options, &callback)
        .map_err(|e| {
            Error::Internal(format!("navigator.locks.request failed: {}", describe(&e)))
        })?;
    // The request's own promise settles only when the lock is released; make
    // sure a rejection there is not reported as unhandled.
    if let Ok(p) = outcome.dyn_into::<Promise>() {
        wasm_bindgen_futures::spawn_local(async move {
            let _ = JsFuture::from(p).await;
        });
    }
    let granted = JsFuture::from(decided)
        .await
        .map_err(|e| Error::Internal(format!("navigator.locks.request failed: {}", describe(&e))))?
        .as_bool()
        .unwrap_or(false);
    Ok(if granted {
        LockState::Held(WriteLock { release })
    } else {
        LockState::HeldElsewhere
    })
}

/// Waits `ms` milliseconds (setTimeout).
pub async fn sleep(ms: i32) {
    let global = js_sys::global();
    let Some(set_timeout) = Reflect::get(&global, &JsValue::from_str("setTimeout"))
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
    else {
        return;
    };
    let promise = Promise::new(&mut |resolve: Function, _reject: Function| {
        let _ = set_timeout.call2(&JsValue::UNDEFINED, &resolve, &JsValue::from(ms));
    });
    let _ = JsFuture::from(promise).await;
}

/// Takes the gallery's lock, retrying for up to `patience_ms` (a page that was
/// just reloaded may still be releasing the previous document's lock).
pub async fn lock(gallery: &str, patience_ms: i32) -> Result<LockState> {
    let mut waited = 0;
    loop {
        let state = try_lock(gallery).await?;
        if !matches!(state, LockState::HeldElsewhere) || waited >= patience_ms {
            return Ok(state);
        }
        sleep(50).await;
        waited += 50;
    }
}
