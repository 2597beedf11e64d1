//! Starting a session: `open` (a new in-memory gallery, or the IndexedDB
//! gallery of that name, created when missing) and `import` (an export file,
//! into memory or IndexedDB).

use wasm_bindgen::prelude::*;

use super::js::bytes_of;
use super::model::{Model, load_model};
use super::options::{OpenOptions, check_options, opt_bool, opt_string};
use super::session::{Session, decode_gallery, new_gallery};
use crate::blob::Damage;
use crate::gallery::{Gallery, OpenMode};
use crate::store::MemoryStore;
use crate::store::idb::{self, BadRecord, IdbStore, LockState};
use crate::{Error, Result};

/// What [`IdbStore::load_all`] read.
type Loaded = (MemoryStore, Vec<BadRecord>);

/// `MetricAnn.open(options)`.
pub(super) async fn open(options: &JsValue) -> Result<Session> {
    let opts = OpenOptions::parse(options)?;
    let Some(name) = opts.name.clone() else {
        let model = load_model(options).await?;
        let (gallery, _) = new_gallery(&model)?;
        return Ok(Session::in_memory(model, gallery, opts.mode));
    };
    let (model, store, lock, loaded) = load_with_store(options, &name).await?;
    let (gallery, damage) = stored_or_new(&store, &lock, loaded, &model, &name, opts.mode).await?;
    let mut session = Session {
        model,
        gallery,
        store: Some(store),
        lock,
        name: Some(name),
        mode: opts.mode,
        damage,
    };
    session.sync_head()?;
    settle_model(session, &opts).await
}

/// The model, and the gallery's database, write lock and records.
async fn load_with_store(
    options: &JsValue,
    name: &str,
) -> Result<(Model, IdbStore, LockState, Loaded)> {
    // The model's fetch and decode and IndexedDB's read of the gallery
    // need nothing of each other: at a million vectors the read alone is
    // most of a second, so they run together.
    let stored = async {
        let store = IdbStore::open(name).await?;
        let lock = idb::lock(name, 1000).await?;
        let loaded = store.load_all().await?;
        Ok::<_, Error>((store, lock, loaded))
    };
    let (model, stored) = futures_util::future::join(load_model(options), stored).await;
    let (store, lock, loaded) = match stored {
        Ok(stored) => stored,
        // A bad model option is the first mistake to hear of, as when
        // the model was loaded first.
        Err(e) => return Err(model.err().unwrap_or(e)),
    };
    match model {
        Ok(model) => Ok((model, store, lock, loaded)),
        Err(e) => {
            // Opening created the database if there was none: leave
            // nothing behind for an open that failed.
            if loaded.0.is_empty() && loaded.1.is_empty() && lock.may_write() {
                store.close();
                let _ = idb::delete_database(name).await;
            }
            Err(e)
        }
    }
}

/// The stored gallery, or a new one for `model` (stored now) when the
/// database holds none.
async fn stored_or_new(
    store: &IdbStore,
    lock: &LockState,
    loaded: Loaded,
    model: &Model,
    name: &str,
    mode: OpenMode,
) -> Result<(Gallery, Vec<Damage>)> {
    if let Some(found) = decode_gallery(store, loaded, mode)? {
        return Ok(found);
    }
    if !lock.may_write() {
        return Err(Error::Locked(format!(
            "gallery {name:?} is being created by another tab, window or worker"
        )));
    }
    let (gallery, changes) = new_gallery(model)?;
    store.apply(&changes, false).await?;
    Ok((gallery, Vec::new()))
}

/// A gallery of another model's vectors is re-embedded (`reembed`), kept as
/// it is (`allowModelMismatch`) or refused.
async fn settle_model(mut session: Session, opts: &OpenOptions) -> Result<Session> {
    if !session.stale() {
        return Ok(session);
    }
    if opts.reembed {
        session.reembed().await?;
    } else if !opts.allow_mismatch {
        let e = session.mismatch();
        if let Some(store) = &session.store {
            store.close();
        }
        return Err(e);
    }
    Ok(session)
}

/// `MetricAnn.importGallery(data, options)`.
pub(super) async fn import(data: &JsValue, options: &JsValue) -> Result<Session> {
    check_options(options, "import")?;
    let overwrite = opt_bool(options, "overwrite")?;
    let name = opt_string(options, "gallery")?;
    let bytes = bytes_of(data, "the gallery export").await?;
    let mut model = load_model(options).await?;
    let (mut gallery, changes) = Gallery::import_bytes(&bytes, None)?;
    gallery.set_auto_maintain(false);
    model.use_head(gallery.head())?;
    if gallery.fingerprint() != model.embedder.fingerprint() {
        return Err(Error::ModelMismatch {
            what: "gallery".into(),
            expected: model.embedder.fingerprint().to_string(),
            found: gallery.fingerprint().to_string(),
        });
    }
    let Some(name) = name else {
        return Ok(Session::in_memory(model, gallery, OpenMode::Strict));
    };
    let (store, lock) = store_to_import_into(&name, overwrite).await?;
    store.apply(&changes, true).await?;
    Ok(Session {
        model,
        gallery,
        store: Some(store),
        lock,
        name: Some(name),
        mode: OpenMode::Strict,
        damage: Vec::new(),
    })
}

/// The database of gallery `name` with its write lock, refused when it
/// holds a gallery and `overwrite` is not set.
async fn store_to_import_into(name: &str, overwrite: bool) -> Result<(IdbStore, LockState)> {
    let store = IdbStore::open(name).await?;
    let lock = idb::lock(name, 1000).await?;
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
    Ok((store, lock))
}
