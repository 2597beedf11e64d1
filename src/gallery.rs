//! Classes on top of the index, class-level top-K search, and the persisted
//! gallery format.
//!
//! A gallery maps class labels to the vectors of their enrolled examples (plus
//! optional metadata and the encoded enrollment images, kept for re-embedding
//! with another model). It never touches storage itself: every mutation returns
//! the [`ChangeSet`] that makes it durable, to be applied by a store
//! (`crate::store`) as one atomic transaction. If applying fails, the store still
//! holds the previous state, but this in-memory `Gallery` is ahead of it: drop it
//! and [`Gallery::open`] the store again.
//!
//! # Persisted layout
//!
//! Named blobs, each framed by [`blob::seal`] (magic, version, kind, length, XXH3-64 checksum):
//!
//! | name | kind | content |
//! | --- | --- | --- |
//! | `manifest` | `MNFT` | JSON [`Manifest`]: format version, model fingerprint, dimension, id counters, the index section (config, sealed segments and growing chunks with kind/vector count/byte size, tombstones), the class pages as `[blob seq, bytes, records]`, and the removed classes that a page still holds |
//! | `seg-<seq>` | `SEGP` / `SEGF` | a sealed segment: a graph in the packed layout (`index::graph::packed`: fixed-width ids, vectors or int8 codes, links), or flat ids + vectors (postcard); graphs written before the packed layout (`SEGH`, `SEGQ`) are still read |
//! | `grow-<seq>` | `GROW` | one chunk of the growing segment: the vectors of one enrollment |
//! | `classes-<seq>` | `CLSP` | a page of class records (postcard list of: class id, label, vector ids, metadata as JSON text, images) |
//!
//! Class records are log-structured ([`pages`]): a mutation writes the classes
//! it changed into one new page, and pages merge by size tiers, so the
//! manifest stays small and an enrollment writes only its own growing chunk,
//! one small page and the manifest, however many classes the gallery holds.
//! Blob names are never reused, and blobs that a new manifest no longer lists
//! are deleted after it: a crash before the manifest is replaced leaves the
//! old state fully readable.
//!
//! Format 1 (one `class-<seq>` blob per class, all listed in the manifest) is
//! read, and migrated into a page by the first mutation.
//!
//! The whole gallery exports as one byte file ([`Gallery::export_bytes`]): a blob
//! of kind `MAEX` whose payload is a `u32` blob count, then per blob a `u32` name
//! length, the name, a `u64` byte length and the bytes (little-endian).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

// Integer keys and labels of the user's own gallery: no adversary to hash
// against, and SipHash was a tenth of opening a million-class gallery.
use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::blob::{self, BlobRead, ChangeSet, MANIFEST};
use crate::index::{Index, IndexConfig, IndexManifest, Quantization};
use crate::{Error, Result};
use labels::Labels;
use owners::Owners;
use pages::{PageEntry, Pages, page_blob};

mod labels;
mod owners;
pub mod pages;
pub mod reembed;

pub use crate::blob::Damage;
pub use crate::index::{BuiltSegment, MaintenanceJob, SegmentInfo, SegmentKind};

/// One class's new examples, for [`Gallery::enroll_batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    pub label: String,
    pub vectors: Vec<Vec<f32>>,
    /// Replaces the class's metadata when given.
    pub metadata: Option<Value>,
}

/// Blob kind of the manifest.
pub const KIND_MANIFEST: [u8; 4] = *b"MNFT";
/// Blob kind of a class record (format 1).
pub const KIND_CLASS: [u8; 4] = *b"CLAS";
/// Blob kind of a page of class records.
pub const KIND_CLASS_PAGE: [u8; 4] = *b"CLSP";
/// Blob kind of a whole-gallery export.
pub const KIND_EXPORT: [u8; 4] = *b"MAEX";
/// The gallery format this build writes (it also reads format 1).
pub const GALLERY_FORMAT: u32 = 2;
/// Longest accepted class label, in bytes.
pub const MAX_LABEL_BYTES: usize = 1024;
/// Fewest neighbours a class-level search asks the index for.
pub const MIN_NEIGHBOURS: usize = 32;

/// What a new gallery is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GalleryConfig {
    /// Embedding dimension.
    pub dim: usize,
    /// Fingerprint of the model that produces the embeddings.
    pub fingerprint: String,
    /// Index parameters.
    pub index: IndexConfig,
}

/// How [`Gallery::open`] treats damaged blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The first damaged blob is an error naming it.
    Strict,
    /// Damaged segments, chunks and class records are left out and reported; the
    /// rest is searchable, and the next mutation drops them from the manifest.
    SkipDamaged,
}

/// One class, as [`Gallery::classes`] lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassInfo {
    pub label: String,
    /// Enrolled examples (vectors) that are searchable.
    pub examples: usize,
    pub metadata: Option<Value>,
    /// Whether enrollment images are stored (for re-embedding).
    pub has_images: bool,
}

/// One class in a search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMatch {
    pub label: String,
    /// Cosine similarity of the class's best example to the query.
    pub score: f32,
    /// `1 − score`.
    pub distance: f32,
    pub metadata: Option<Value>,
}

/// The answer to "which class is this?".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    /// Best class first.
    pub matches: Vec<ClassMatch>,
    /// No match, or the best score is below the threshold.
    pub unknown: bool,
}

/// One enrolled example near a query (see [`Gallery::search_examples`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExampleMatch {
    pub label: String,
    pub vector_id: u64,
    pub score: f32,
}

/// Size and shape of a gallery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub classes: usize,
    /// Searchable vectors.
    pub vectors: usize,
    /// Deleted vectors still stored (until their segment is rebuilt).
    pub deleted: usize,
    pub segments: Vec<SegmentInfo>,
    /// Total bytes of the gallery's blobs.
    pub bytes: u64,
    /// Bytes the index holds in memory for vectors, graph links and ids.
    pub memory_bytes: u64,
    /// How sealed graphs store their vectors.
    pub quantization: Quantization,
}

/// The manifest: the commit point of a gallery's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub fingerprint: String,
    pub dim: usize,
    pub next_class_id: u64,
    pub next_vector_id: u64,
    pub next_class_seq: u64,
    pub index: IndexManifest,
    pub pages: Vec<PageEntry>,
    /// Removed classes of which a listed page still holds a (stale) record.
    pub removed_classes: Vec<u64>,
}

/// A format-1 manifest, read to migrate it.
#[derive(Deserialize)]
struct ManifestV1 {
    fingerprint: String,
    dim: usize,
    next_class_id: u64,
    next_vector_id: u64,
    next_class_seq: u64,
    index: IndexManifest,
    classes: Vec<ClassEntry>,
}

/// A format-1 class blob as its manifest lists it: `[class id, blob seq,
/// bytes]` (the blob is `class-<seq>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassEntry(pub u64, pub u64, pub u64);

/// A class record as stored.
#[derive(Serialize, Deserialize)]
struct ClassRecord {
    id: u64,
    label: String,
    vector_ids: Vec<u64>,
    /// JSON text (postcard cannot carry a self-describing `Value`).
    metadata: Option<String>,
    images: Vec<serde_bytes::ByteBuf>,
}

/// [`ClassRecord`] borrowed from a [`Class`], to encode without copying images
/// (postcard writes both the same way).
#[derive(Serialize)]
struct ClassRecordRef<'a> {
    id: u64,
    label: &'a str,
    vector_ids: &'a [u64],
    metadata: Option<String>,
    images: Vec<&'a serde_bytes::Bytes>,
}

#[derive(Debug, Clone)]
struct Class {
    label: String,
    vector_ids: Vec<u64>,
    metadata: Option<Value>,
    images: Vec<Vec<u8>>,
    /// Sequence number of the page holding the class's current record; 0
    /// while it is in none (new, or read from a format-1 blob).
    page: u64,
}

/// A format-1 class blob.
fn class_blob(seq: u64) -> String {
    format!("class-{seq}")
}

impl Class {
    fn record(&self, id: u64) -> Result<ClassRecordRef<'_>> {
        let metadata = match &self.metadata {
            Some(v) => Some(
                serde_json::to_string(v)
                    .map_err(|e| Error::Internal(format!("encoding class metadata: {e}")))?,
            ),
            None => None,
        };
        Ok(ClassRecordRef {
            id,
            label: &self.label,
            vector_ids: &self.vector_ids,
            metadata,
            images: self
                .images
                .iter()
                .map(|i| serde_bytes::Bytes::new(i))
                .collect(),
        })
    }

    fn from_record(name: &str, record: ClassRecord) -> Result<(u64, Class)> {
        check_label(&record.label).map_err(|e| Error::corrupt(name, e.to_string()))?;
        let metadata = match record.metadata {
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|e| Error::corrupt(name, format!("metadata is not JSON: {e}")))?,
            ),
            None => None,
        };
        Ok((
            record.id,
            Class {
                label: record.label,
                vector_ids: record.vector_ids,
                metadata,
                images: record.images.into_iter().map(|b| b.into_vec()).collect(),
                page: 0,
            },
        ))
    }
}

/// Encodes the page holding `ids`' records.
fn encode_page(classes: &BTreeMap<u64, Class>, ids: &[u64]) -> Result<Vec<u8>> {
    let mut records = Vec::with_capacity(ids.len());
    for &id in ids {
        let class = classes
            .get(&id)
            .ok_or_else(|| Error::Internal(format!("class {id} vanished")))?;
        records.push(class.record(id)?);
    }
    let payload = postcard::to_allocvec(&records)
        .map_err(|e| Error::Internal(format!("encoding a class page: {e}")))?;
    Ok(blob::seal(KIND_CLASS_PAGE, &payload))
}

/// Decodes a page into its records, in stored order.
#[cfg(test)]
fn decode_page(name: &str, bytes: &[u8]) -> Result<Vec<(u64, Class)>> {
    let mut out = Vec::new();
    decode_page_into(name, bytes, &mut out)?;
    Ok(out)
}

/// Decodes a page, appending its records to `out` (nothing on error);
/// returns how many.
fn decode_page_into(name: &str, bytes: &[u8], out: &mut Vec<(u64, Class)>) -> Result<usize> {
    let payload = blob::open(name, KIND_CLASS_PAGE, bytes)?;
    let records: Vec<ClassRecord> = blob::decode_all(name, payload)?;
    let start = out.len();
    out.reserve(records.len());
    for record in records {
        match Class::from_record(name, record) {
            Ok(r) => out.push(r),
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
    Ok(out.len() - start)
}

/// Decodes a format-1 class blob (one record).
fn decode_v1_class(name: &str, bytes: &[u8]) -> Result<(u64, Class)> {
    let payload = blob::open(name, KIND_CLASS, bytes)?;
    let record: ClassRecord = blob::decode_all(name, payload)?;
    Class::from_record(name, record)
}

/// Reads a listed blob, checking the size the manifest gives.
fn read_listed<'a>(blobs: &'a dyn BlobRead, name: &str, size: u64) -> Result<Cow<'a, [u8]>> {
    let bytes = blobs
        .read(name)?
        .ok_or_else(|| Error::corrupt(name, "missing (listed in the manifest)"))?;
    if bytes.len() as u64 != size {
        return Err(Error::corrupt(
            name,
            format!("{} bytes, the manifest says {size}", bytes.len()),
        ));
    }
    Ok(bytes)
}

fn check_examples(label: &str, vectors: &[Vec<f32>]) -> Result<()> {
    check_label(label)?;
    if vectors.is_empty() {
        return Err(Error::BadInput(format!(
            "no example vectors to enroll for class {label:?}"
        )));
    }
    Ok(())
}

fn check_label(label: &str) -> Result<()> {
    if label.trim().is_empty() {
        return Err(Error::BadInput("class label is empty".into()));
    }
    if label.len() > MAX_LABEL_BYTES {
        return Err(Error::BadInput(format!(
            "class label is {} bytes long (at most {MAX_LABEL_BYTES})",
            label.len()
        )));
    }
    if label.chars().any(char::is_control) {
        return Err(Error::BadInput(format!(
            "class label {label:?} contains control characters"
        )));
    }
    Ok(())
}

/// Blobs held in memory (what an export file unpacks to).
struct Unpacked(HashMap<String, Vec<u8>>);

impl BlobRead for Unpacked {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(name).cloned())
    }

    fn read(&self, name: &str) -> Result<Option<Cow<'_, [u8]>>> {
        Ok(self.0.get(name).map(|b| Cow::Borrowed(b.as_slice())))
    }
}

/// What a class read at open claims one by one (see `Gallery::adopt`).
#[derive(Clone, Copy)]
struct Claims {
    vectors: bool,
    label: bool,
}

/// A gallery of classes. See the [module documentation](self).
pub struct Gallery {
    fingerprint: String,
    dim: usize,
    index: Index,
    classes: BTreeMap<u64, Class>,
    /// Label → class id.
    by_label: Labels,
    /// Vector id → class id.
    owner: Owners,
    next_class_id: u64,
    next_vector_id: u64,
    next_class_seq: u64,
    /// Most examples any class has (sizes the neighbour search).
    max_examples: usize,
    /// Classes without any searchable example (their vectors were lost with a
    /// damaged blob): a search cannot find them, so it does not wait for them.
    empty_classes: usize,
    /// Damaged blobs found at open, deleted by the next mutation.
    pending_deletes: Vec<String>,
    /// Classes whose stored record is not their current state: written into a
    /// new page by the mutation under way (or, for records that list lost
    /// vectors or come from format 1, by the next one).
    dirty: BTreeSet<u64>,
    pages: Pages,
    /// Format-1 class blobs (name, bytes) still stored: deleted once their
    /// classes are in a page.
    legacy: Vec<(String, u64)>,
    manifest_bytes: u64,
    auto_maintain: bool,
}

impl std::fmt::Debug for Gallery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gallery")
            .field("fingerprint", &self.fingerprint)
            .field("dim", &self.dim)
            .field("classes", &self.classes.len())
            .field("index", &self.index)
            .finish()
    }
}

impl Gallery {
    /// A new, empty gallery and the change set that stores it (into an empty
    /// store: its manifest replaces any other).
    pub fn create(config: GalleryConfig) -> Result<(Gallery, ChangeSet)> {
        if config.fingerprint.trim().is_empty() {
            return Err(Error::BadInput("the model fingerprint is empty".into()));
        }
        let index = Index::new(config.dim, config.fingerprint.clone(), config.index)?;
        let mut gallery = Gallery {
            fingerprint: config.fingerprint,
            dim: config.dim,
            index,
            classes: BTreeMap::new(),
            by_label: Labels::default(),
            owner: Owners::default(),
            next_class_id: 1,
            next_vector_id: 1,
            next_class_seq: 1,
            max_examples: 0,
            empty_classes: 0,
            pending_deletes: Vec::new(),
            dirty: BTreeSet::new(),
            pages: Pages::default(),
            legacy: Vec::new(),
            manifest_bytes: 0,
            auto_maintain: true,
        };
        let cs = gallery.finish(ChangeSet::new())?;
        Ok((gallery, cs))
    }

    /// Opens the gallery stored in `blobs`.
    ///
    /// `expected_fingerprint`: the model about to be used; a gallery built by
    /// another model is refused with [`Error::ModelMismatch`] (`what` is
    /// `"gallery"`, or `"index segment <name>"` for a segment of another model).
    /// A missing manifest is [`Error::NotFound`]; a damaged manifest is
    /// [`Error::Corrupt`] in both modes (nothing can be read without it).
    pub fn open(
        blobs: &dyn BlobRead,
        expected_fingerprint: Option<&str>,
        mode: OpenMode,
    ) -> Result<(Gallery, Vec<Damage>)> {
        let bytes = blobs.read(MANIFEST)?.ok_or_else(|| {
            Error::NotFound("gallery: there is no manifest (no gallery was created here)".into())
        })?;
        let (manifest, v1_classes) = decode_manifest(&bytes)?;
        if let Some(expected) = expected_fingerprint
            && expected != manifest.fingerprint
        {
            return Err(Error::ModelMismatch {
                what: "gallery".into(),
                expected: expected.to_string(),
                found: manifest.fingerprint.clone(),
            });
        }
        if manifest.dim == 0 {
            return Err(Error::corrupt(MANIFEST, "dimension 0"));
        }
        let skip = mode == OpenMode::SkipDamaged;
        let (index, mut damage) = Index::load(
            manifest.dim,
            &manifest.fingerprint,
            &manifest.index,
            blobs,
            skip,
        )?;
        let index_damage = damage.len();
        let mut gallery = Gallery {
            fingerprint: manifest.fingerprint.clone(),
            dim: manifest.dim,
            index,
            classes: BTreeMap::new(),
            by_label: Labels::default(),
            owner: Owners::default(),
            next_class_id: manifest.next_class_id,
            next_vector_id: manifest.next_vector_id,
            next_class_seq: manifest.next_class_seq,
            max_examples: 0,
            empty_classes: 0,
            pending_deletes: Vec::new(),
            dirty: BTreeSet::new(),
            pages: Pages::default(),
            legacy: Vec::new(),
            manifest_bytes: bytes.len() as u64,
            auto_maintain: true,
        };
        let mut unreadable = Vec::new();
        let mut fail = |name: &str, e: Error, damage: &mut Vec<Damage>| match e {
            Error::Corrupt { .. } | Error::ModelMismatch { .. } if skip => {
                damage.push(Damage::from_error(name, &e));
                unreadable.push(name.to_string());
                Ok(())
            }
            e => Err(e),
        };
        // Every record, oldest page first; a class's newest record is its
        // current one. One vector of records sorted by class id (stably, so
        // that of equal ids the newest comes last) instead of a map: a gallery
        // of a million classes reads a million of them.
        let mut records: Vec<(u64, Class)> = Vec::new();
        let mut listed = manifest.pages.clone();
        listed.sort_by_key(|e| e.0);
        for PageEntry(seq, size, count) in listed {
            let name = page_blob(seq);
            let start = records.len();
            let read = read_listed(blobs, &name, size).and_then(|b| {
                let read = decode_page_into(&name, &b, &mut records)?;
                if read as u64 != count {
                    records.truncate(start);
                    return Err(Error::corrupt(
                        &name,
                        format!("{read} records, the manifest says {count}"),
                    ));
                }
                Ok(())
            });
            if let Err(e) = read {
                fail(&name, e, &mut damage)?;
                continue;
            }
            let page = &mut records[start..];
            let ids = page.iter().map(|(id, _)| *id).collect();
            gallery.pages.insert_loaded(seq, size, ids);
            for (_, class) in page {
                class.page = seq;
            }
        }
        let mut removed = manifest.removed_classes;
        removed.sort_unstable();
        // Format-1 class blobs (page 0) come after every page.
        let mut legacy_names = FxHashMap::default();
        let mut max_legacy_seq = 0;
        for ClassEntry(id, seq, size) in v1_classes {
            max_legacy_seq = max_legacy_seq.max(seq);
            let name = class_blob(seq);
            match read_listed(blobs, &name, size).and_then(|b| decode_v1_class(&name, &b)) {
                Ok((found, class)) if found == id => {
                    gallery.legacy.push((name.clone(), size));
                    legacy_names.insert(id, name);
                    records.push((id, class));
                }
                Ok((found, _)) => fail(
                    &name,
                    Error::corrupt(
                        &name,
                        format!("holds class {found}, the manifest says class {id}"),
                    ),
                    &mut damage,
                )?,
                Err(e) => fail(&name, e, &mut damage)?,
            }
        }
        records.sort_by_key(|(id, _)| *id);
        // In place (a million records are worth not copying): keep each
        // class's newest record, unless the class was removed.
        let mut kept = 0;
        for i in 0..records.len() {
            let (id, page) = (records[i].0, records[i].1.page);
            if records.get(i + 1).is_some_and(|(next, _)| *next == id) {
                gallery.pages.superseded(id);
            } else if page != 0 && removed.binary_search(&id).is_ok() {
                gallery.pages.loaded_removed(id, true);
            } else {
                records.swap(kept, i);
                kept += 1;
            }
        }
        records.truncate(kept);
        // Every class's vectors as (vector, class) pairs, sorted once: they
        // say whether every vector is in the index (asked once for all; only
        // when some are not does each class look at its own), and, when no
        // vector is claimed twice, they are the owner table, so that the
        // classes need not claim their vectors one by one.
        let pairs = |records: &[(u64, Class)]| -> Vec<(u64, u64)> {
            records
                .iter()
                .flat_map(|(id, c)| c.vector_ids.iter().map(move |&v| (v, *id)))
                .collect()
        };
        let owners = Owners::from_pairs(pairs(&records));
        let all_indexed = match &owners {
            Some(owners) => gallery.index.contains_all(owners.base_vectors()),
            None => {
                let mut vectors: Vec<u64> = pairs(&records).into_iter().map(|(v, _)| v).collect();
                vectors.sort_unstable();
                gallery.index.contains_all(vectors)
            }
        };
        let labels = Labels::from_classes(&records);
        let claim = Claims {
            vectors: owners.is_none(),
            label: labels.is_none(),
        };
        // A class dropped, or one that lost vectors: the tables are rebuilt.
        let mut changed = false;
        let mut failed = None;
        records.retain_mut(|(id, class)| {
            if failed.is_some() {
                return false;
            }
            let page = class.page;
            let examples = class.vector_ids.len();
            let adopted = gallery.adopt(*id, class, skip, all_indexed, claim);
            changed |= class.vector_ids.len() != examples;
            let Err(reason) = adopted else {
                gallery.pages.count_live(page);
                return true;
            };
            changed = true;
            let name = match legacy_names.get(id) {
                Some(name) if page == 0 => name.clone(),
                _ => page_blob(page),
            };
            let e = Error::corrupt(&name, reason);
            if skip {
                // A consistent page with one inconsistent record: drop the
                // record (as removed), keep the page and the rest.
                damage.push(Damage::from_error(&name, &e));
                gallery.pages.loaded_removed(*id, page != 0);
            } else {
                failed = Some(e);
            }
            false
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some(owners) = owners {
            gallery.owner = if changed {
                Owners::from_pairs(pairs(&records)).ok_or_else(|| {
                    Error::Internal("a vector is claimed twice after the check".into())
                })?
            } else {
                owners
            };
        }
        if let Some(labels) = labels {
            gallery.by_label = if changed {
                Labels::from_classes(&records).ok_or_else(|| {
                    Error::Internal("a label is used twice after the check".into())
                })?
            } else {
                labels
            };
        }
        // Ascending ids: built in one pass.
        gallery.classes = records.into_iter().collect();
        // Format-1 classes move into a page with the next mutation.
        if !gallery.legacy.is_empty() {
            gallery.dirty.extend(gallery.classes.keys().copied());
        }
        // Counters must stay ahead of everything stored, whatever the manifest says.
        let max_vector = gallery.index.max_id().unwrap_or(0);
        gallery.next_vector_id = gallery.next_vector_id.max(max_vector + 1);
        if let Some((&max_class, _)) = gallery.classes.last_key_value() {
            gallery.next_class_id = gallery.next_class_id.max(max_class + 1);
        }
        let max_seq = gallery.pages.seqs().max().unwrap_or(0).max(max_legacy_seq);
        gallery.next_class_seq = gallery.next_class_seq.max(max_seq + 1);

        if !damage.is_empty() {
            // Vectors whose class record was lost belong to nobody: delete them.
            let orphans: Vec<u64> = gallery
                .index
                .ids()
                .into_iter()
                .filter(|&id| !gallery.owner.contains(id))
                .collect();
            gallery.index.remove(&orphans);
            gallery.pending_deletes = damage[..index_damage]
                .iter()
                .map(|d| d.blob.clone())
                .chain(unreadable)
                .filter(|n| n != MANIFEST)
                .collect();
        }
        gallery.max_examples = gallery
            .classes
            .values()
            .map(|c| c.vector_ids.len())
            .max()
            .unwrap_or(0);
        gallery.empty_classes = gallery
            .classes
            .values()
            .filter(|c| c.vector_ids.is_empty())
            .count();
        Ok((gallery, damage))
    }

    /// Takes in a class read at open, checking it against those already in;
    /// the class map takes it after. `all_indexed`: every class's vectors are
    /// known to be in the index, so this one's need no lookup. `claim`: what
    /// the class claims one by one in the owner and label tables (the caller
    /// builds a table at once when nothing in it is claimed twice). An
    /// inconsistency is the reason, for the caller to name the blob.
    fn adopt(
        &mut self,
        id: u64,
        class: &mut Class,
        skip: bool,
        all_indexed: bool,
        claim: Claims,
    ) -> std::result::Result<(), String> {
        // This runs for every class at open, and a class has a few examples:
        // comparing them pairwise costs no allocation.
        let ids = &class.vector_ids;
        let repeated = if ids.len() <= 16 {
            (1..ids.len())
                .find(|&i| ids[..i].contains(&ids[i]))
                .map(|i| ids[i])
        } else {
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            sorted.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
        };
        if let Some(v) = repeated {
            return Err(format!("vector {v} belongs to two classes"));
        }
        // Vectors the index does not have: lost with a damaged segment (skip
        // mode), or an inconsistency (strict mode).
        if !all_indexed
            && let Some(&missing) = class.vector_ids.iter().find(|&&v| !self.index.contains(v))
        {
            if !skip {
                return Err(format!("vector {missing} is not in the index"));
            }
            class.vector_ids.retain(|&v| self.index.contains(v));
            self.dirty.insert(id);
        }
        // Claimed here only when the caller found a vector claimed twice;
        // taken back if the class is refused after all.
        let undo = |gallery: &mut Self, claimed: &[u64]| {
            for &v in claimed {
                gallery.owner.remove(v);
            }
            gallery.dirty.remove(&id);
        };
        let claimed = if claim.vectors {
            class.vector_ids.len()
        } else {
            0
        };
        for (i, &v) in class.vector_ids[..claimed].iter().enumerate() {
            if !self.owner.claim(v, id) {
                undo(self, &class.vector_ids[..i]);
                return Err(format!("vector {v} belongs to two classes"));
            }
        }
        if claim.label {
            // The class map is filled after every class is adopted: the
            // label is looked for among those given since open only.
            if self.by_label.get(&class.label, &BTreeMap::new()).is_some() {
                undo(self, &class.vector_ids[..claimed]);
                return Err(format!(
                    "label {:?} is used by another class too",
                    class.label
                ));
            }
            self.by_label.insert(&class.label, id);
        }
        Ok(())
    }

    /// Whether mutations also seal and merge index segments in the same change
    /// set (the default). A browser can turn this off and run
    /// [`Gallery::maintain`] from a worker instead.
    pub fn set_auto_maintain(&mut self, on: bool) {
        self.auto_maintain = on;
    }

    /// See [`Gallery::set_auto_maintain`].
    pub fn auto_maintain(&self) -> bool {
        self.auto_maintain
    }

    /// Fingerprint of the model whose embeddings this gallery holds.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The underlying index (e.g. for recall measurements).
    pub fn index(&self) -> &Index {
        &self.index
    }

    fn manifest(&self) -> Manifest {
        Manifest {
            format: GALLERY_FORMAT,
            fingerprint: self.fingerprint.clone(),
            dim: self.dim,
            next_class_id: self.next_class_id,
            next_vector_id: self.next_vector_id,
            next_class_seq: self.next_class_seq,
            index: self.index.manifest(),
            pages: self.pages.entries(),
            removed_classes: self.pages.removed(),
        }
    }

    /// Marks class `id` for rewriting by the mutation under way.
    fn rewrite_class(&mut self, id: u64) {
        self.dirty.insert(id);
    }

    /// Writes the current records of `ids` into one new page.
    fn write_page(&mut self, ids: Vec<u64>, cs: &mut ChangeSet) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let seq = self.next_class_seq;
        let bytes = encode_page(&self.classes, &ids)?;
        for &id in &ids {
            if let Some(class) = self.classes.get_mut(&id) {
                self.pages.retire(id, class.page, false);
                class.page = seq;
            }
        }
        self.next_class_seq += 1;
        self.pages.add(seq, bytes.len() as u64, ids);
        cs.put(page_blob(seq), bytes);
        Ok(())
    }

    /// Deletes a page blob: dropped from `cs` if this change set wrote it.
    fn delete_page(&mut self, seq: u64, cs: &mut ChangeSet) {
        if self.pages.drop_dead(seq) {
            let name = page_blob(seq);
            let before = cs.puts.len();
            cs.puts.retain(|(n, _)| *n != name);
            if cs.puts.len() == before {
                cs.delete(name);
            }
        }
    }

    /// Merges and compacts class pages until the tiers are in shape.
    fn merge_pages(&mut self, cs: &mut ChangeSet) -> Result<()> {
        while let Some(group) = self.pages.plan() {
            let mut ids: Vec<u64> = group
                .iter()
                .flat_map(|&seq| self.pages.ids(seq).iter().copied())
                .filter(|id| {
                    self.classes
                        .get(id)
                        .is_some_and(|c| group.contains(&c.page))
                })
                .collect();
            // A class may have a stale and its current record in the group.
            ids.sort_unstable();
            ids.dedup();
            self.write_page(ids, cs)?;
            for seq in group {
                self.delete_page(seq, cs);
            }
        }
        Ok(())
    }

    /// Completes a mutation's change set: the changed classes' page, pending
    /// repairs, page merges, then the manifest (last put: the commit point).
    /// Pages merge here whatever `auto_maintain` says: records are small
    /// (images aside), and leaving the one-class pages of many enrollments
    /// to pile up would make every manifest until the next merge longer.
    fn finish(&mut self, mut cs: ChangeSet) -> Result<ChangeSet> {
        let dirty: Vec<u64> = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter(|id| self.classes.contains_key(id))
            .collect();
        self.write_page(dirty, &mut cs)?;
        for (name, _) in std::mem::take(&mut self.legacy) {
            cs.delete(name);
        }
        for seq in self.pages.dead() {
            self.delete_page(seq, &mut cs);
        }
        self.merge_pages(&mut cs)?;
        for name in std::mem::take(&mut self.pending_deletes) {
            cs.delete(name);
        }
        let bytes = encode_manifest(&self.manifest())?;
        self.manifest_bytes = bytes.len() as u64;
        cs.put(MANIFEST, bytes);
        Ok(cs)
    }

    fn maybe_maintain(&mut self, cs: &mut ChangeSet) -> Result<()> {
        if self.auto_maintain
            && let Some(more) = self.index.maintain()?
        {
            cs.extend(more);
        }
        Ok(())
    }

    /// Enrolls examples: creates class `label`, or adds examples to it.
    ///
    /// `vectors` are the examples' embeddings (at least one; the gallery's
    /// dimension, finite, non-zero; normalised if not unit). `metadata`, when
    /// given, replaces the class's metadata. `images` are the encoded enrollment
    /// images to keep for re-embedding (may be empty; appended to the class's).
    /// Bad input changes nothing.
    pub fn enroll(
        &mut self,
        label: &str,
        vectors: &[Vec<f32>],
        metadata: Option<Value>,
        images: Vec<Vec<u8>>,
    ) -> Result<ChangeSet> {
        check_examples(label, vectors)?;
        if let Some(i) = images.iter().position(|i| i.is_empty()) {
            return Err(Error::BadInput(format!(
                "enrollment image {i} of class {label:?} is empty (0 bytes)"
            )));
        }
        let ids = self.next_ids(vectors.len());
        // Everything that can fail on bad input happens before any change.
        let mut cs = self.index.add(&ids, vectors)?;
        self.attach(label, &ids, metadata, images);
        self.maybe_maintain(&mut cs)?;
        self.finish(cs)
    }

    /// Enrolls the examples of many classes as one mutation: one growing
    /// chunk, one class page and one manifest, whatever the number of
    /// entries (what bulk loading wants). A label may appear more than once.
    /// Bad input in any entry changes nothing.
    pub fn enroll_batch(&mut self, entries: &[Enrollment]) -> Result<ChangeSet> {
        if entries.is_empty() {
            return Err(Error::BadInput("no classes to enroll".into()));
        }
        for e in entries {
            check_examples(&e.label, &e.vectors)?;
        }
        let vectors: Vec<Vec<f32>> = entries.iter().flat_map(|e| e.vectors.clone()).collect();
        let ids = self.next_ids(vectors.len());
        let mut cs = self.index.add(&ids, &vectors)?;
        let mut at = 0;
        for e in entries {
            let n = e.vectors.len();
            self.attach(&e.label, &ids[at..at + n], e.metadata.clone(), Vec::new());
            at += n;
        }
        self.maybe_maintain(&mut cs)?;
        self.finish(cs)
    }

    /// The ids the next `n` vectors will get (taken by [`Gallery::attach`]).
    fn next_ids(&self, n: usize) -> Vec<u64> {
        let first = self.next_vector_id;
        (first..first + n as u64).collect()
    }

    /// Gives class `label` (created if new) the vectors `ids`, already in the
    /// index, and marks it for writing.
    fn attach(&mut self, label: &str, ids: &[u64], metadata: Option<Value>, images: Vec<Vec<u8>>) {
        self.next_vector_id = self.next_vector_id.max(ids.last().map_or(0, |l| l + 1));
        let existing = self.by_label.get(label, &self.classes);
        let class_id = existing.unwrap_or(self.next_class_id);
        if existing.is_none() {
            self.next_class_id += 1;
            self.by_label.insert(label, class_id);
        }
        let class = self.classes.entry(class_id).or_insert_with(|| Class {
            label: label.to_string(),
            vector_ids: Vec::new(),
            metadata: None,
            images: Vec::new(),
            page: 0,
        });
        if existing.is_some() && class.vector_ids.is_empty() {
            self.empty_classes -= 1;
        }
        class.vector_ids.extend_from_slice(ids);
        if metadata.is_some() {
            class.metadata = metadata;
        }
        class.images.extend(images);
        self.max_examples = self.max_examples.max(class.vector_ids.len());
        for &id in ids {
            self.owner.insert(id, class_id);
        }
        self.rewrite_class(class_id);
    }

    /// Takes the next step of index maintenance out of the gallery, to build
    /// without holding it (see [`Index::start_maintenance`]): searches and
    /// enrollments go on meanwhile. Turn [`Gallery::set_auto_maintain`] off
    /// when maintaining this way. `None` when there is nothing to build (class
    /// pages may still want merging: [`Gallery::maintain`]).
    pub fn start_maintenance(&mut self) -> Option<MaintenanceJob> {
        self.index.start_maintenance()
    }

    /// Swaps in a segment built from [`Gallery::start_maintenance`]'s job; the
    /// change set also merges class pages and writes the manifest.
    pub fn finish_maintenance(&mut self, built: BuiltSegment) -> Result<ChangeSet> {
        let cs = self.index.finish_maintenance(built)?;
        self.finish(cs)
    }

    fn class_id(&self, label: &str) -> Result<u64> {
        self.by_label
            .get(label, &self.classes)
            .ok_or_else(|| Error::NotFound(format!("class {label:?}")))
    }

    /// Removes a class and its examples.
    pub fn remove(&mut self, label: &str) -> Result<ChangeSet> {
        let id = self.class_id(label)?;
        let Some(class) = self.classes.remove(&id) else {
            return Err(Error::Internal(format!("class {id} vanished")));
        };
        self.by_label.remove(label);
        self.dirty.remove(&id);
        if class.vector_ids.is_empty() {
            self.empty_classes -= 1;
        }
        for &v in &class.vector_ids {
            self.owner.remove(v);
        }
        self.index.remove(&class.vector_ids);
        if class.vector_ids.len() >= self.max_examples {
            self.max_examples = self
                .classes
                .values()
                .map(|c| c.vector_ids.len())
                .max()
                .unwrap_or(0);
        }
        self.pages.retire(id, class.page, true);
        let mut cs = ChangeSet::new();
        self.maybe_maintain(&mut cs)?;
        self.finish(cs)
    }

    /// Renames a class. `NotFound` when `old` does not exist, `AlreadyExists`
    /// when `new` does. Renaming a class to its own name changes nothing (the
    /// change set is empty).
    pub fn rename(&mut self, old: &str, new: &str) -> Result<ChangeSet> {
        check_label(new)?;
        let id = self.class_id(old)?;
        if old == new {
            return Ok(ChangeSet::new());
        }
        if self.by_label.get(new, &self.classes).is_some() {
            return Err(Error::AlreadyExists(format!("class {new:?}")));
        }
        if let Some(class) = self.classes.get_mut(&id) {
            class.label = new.to_string();
        }
        self.by_label.remove(old);
        self.by_label.insert(new, id);
        self.rewrite_class(id);
        self.finish(ChangeSet::new())
    }

    /// Replaces (or with `None` clears) a class's metadata.
    pub fn set_metadata(&mut self, label: &str, metadata: Option<Value>) -> Result<ChangeSet> {
        let id = self.class_id(label)?;
        if let Some(class) = self.classes.get_mut(&id) {
            class.metadata = metadata;
        }
        self.rewrite_class(id);
        self.finish(ChangeSet::new())
    }

    /// Every class, by label.
    pub fn classes(&self) -> Vec<ClassInfo> {
        let mut out: Vec<ClassInfo> = self
            .classes
            .values()
            .map(|c| ClassInfo {
                label: c.label.clone(),
                examples: c.vector_ids.len(),
                metadata: c.metadata.clone(),
                has_images: !c.images.is_empty(),
            })
            .collect();
        out.sort_by(|a, b| a.label.cmp(&b.label));
        out
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether there is no class.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The stored enrollment images of a class (empty when none were kept).
    pub fn class_images(&self, label: &str) -> Result<&[Vec<u8>]> {
        let id = self.class_id(label)?;
        Ok(self
            .classes
            .get(&id)
            .map(|c| c.images.as_slice())
            .unwrap_or(&[]))
    }

    /// Size and shape.
    pub fn stats(&self) -> Stats {
        Stats {
            classes: self.classes.len(),
            vectors: self.index.len(),
            deleted: self.index.deleted(),
            segments: self.index.segments(),
            bytes: self.index.bytes()
                + self.pages.bytes()
                + self.legacy.iter().map(|(_, b)| b).sum::<u64>()
                + self.manifest_bytes,
            memory_bytes: self.index.memory_bytes(),
            quantization: self.index.config().quantization,
        }
    }

    /// Quantises the index's sealed graphs to int8 codes, and later ones too
    /// ([`Index::quantize`]): one change set, so the switch is atomic.
    pub fn quantize(&mut self) -> Result<ChangeSet> {
        let cs = self.index.quantize()?;
        self.finish(cs)
    }

    /// Rebuilds the whole index into one graph (see [`Index::start_optimize`]):
    /// after a bulk load, for the fastest search. `None` when it already is one
    /// graph with nothing deleted.
    pub fn optimize(&mut self) -> Result<Option<ChangeSet>> {
        match self.index.optimize()? {
            Some(cs) => self.finish(cs).map(Some),
            None => Ok(None),
        }
    }

    /// Takes [`Gallery::optimize`]'s build out as a job, for
    /// [`Gallery::finish_maintenance`] to swap in (see
    /// [`Gallery::start_maintenance`]).
    pub fn start_optimize(&mut self) -> Result<Option<MaintenanceJob>> {
        self.index.start_optimize()
    }

    /// Whether the index has sealing, merging or compaction to do, or the
    /// class pages merging.
    pub fn needs_maintenance(&self) -> bool {
        self.index.needs_maintenance() || self.pages.plan().is_some()
    }

    /// Does the pending sealing/merging/compaction of the index and the class
    /// pages; `None` when there was nothing to do.
    pub fn maintain(&mut self) -> Result<Option<ChangeSet>> {
        let index = self.index.maintain()?;
        if index.is_none() && self.pages.plan().is_none() {
            return Ok(None);
        }
        Ok(Some(self.finish(index.unwrap_or_default())?))
    }

    /// Class-level top-K: the `k_classes` classes whose best example is most
    /// similar to `query`, best first. `unknown` is true when nothing matched or
    /// the best score is below `threshold`.
    pub fn search(
        &self,
        query: &[f32],
        k_classes: usize,
        threshold: Option<f32>,
    ) -> Result<SearchResult> {
        if k_classes == 0 {
            return Err(Error::BadInput(
                "k (classes to return) must be at least 1".into(),
            ));
        }
        if let Some(t) = threshold
            && !t.is_finite()
        {
            return Err(Error::BadInput(format!("threshold {t} is not a number")));
        }
        let live = self.index.len();
        let want = k_classes.min(self.classes.len() - self.empty_classes);
        // Neighbours needed to see k classes: k × the largest class, at least
        // MIN_NEIGHBOURS. Capped at what one graph search returns (ef_search):
        // one class with many examples must not turn every query into a scan.
        // Widened (×4) while too few distinct classes turn up.
        let cap = self.index.config().ef_search.max(MIN_NEIGHBOURS);
        let mut k = k_classes
            .saturating_mul(self.max_examples.max(1))
            .clamp(MIN_NEIGHBOURS, cap);
        let matches = loop {
            let hits = self.index.search(query, k)?;
            let mut seen = HashSet::new();
            let mut matches = Vec::with_capacity(want);
            for h in &hits {
                let Some(cid) = self.owner.get(h.id) else {
                    continue;
                };
                if !seen.insert(cid) {
                    continue;
                }
                if let Some(c) = self.classes.get(&cid) {
                    matches.push(ClassMatch {
                        label: c.label.clone(),
                        score: h.score,
                        distance: 1.0 - h.score,
                        metadata: c.metadata.clone(),
                    });
                }
                if matches.len() == k_classes {
                    break;
                }
            }
            if matches.len() >= want || k >= live {
                break matches;
            }
            k = k.saturating_mul(4).min(live);
        };
        let unknown = match (matches.first(), threshold) {
            (None, _) => true,
            (Some(best), Some(t)) => best.score < t,
            (Some(_), None) => false,
        };
        Ok(SearchResult { matches, unknown })
    }

    /// Example-level search: the `k` enrolled examples nearest to `query`, with
    /// their class labels (for retrieval metrics such as MAP@R).
    pub fn search_examples(&self, query: &[f32], k: usize) -> Result<Vec<ExampleMatch>> {
        let hits = self.index.search(query, k)?;
        Ok(hits
            .into_iter()
            .filter_map(|h| {
                let cid = self.owner.get(h.id)?;
                let c = self.classes.get(&cid)?;
                Some(ExampleMatch {
                    label: c.label.clone(),
                    vector_id: h.id,
                    score: h.score,
                })
            })
            .collect())
    }

    /// Every blob of the current state (manifest last), encoded afresh: the
    /// class pages hold only current records (stale ones are left out), and a
    /// class not yet in a page gets one.
    pub fn all_blobs(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = self.index.blobs()?;
        let mut by_page: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for (&id, c) in &self.classes {
            let page = if self.pages.contains(c.page) {
                c.page
            } else {
                self.next_class_seq
            };
            by_page.entry(page).or_default().push(id);
        }
        let mut manifest = self.manifest();
        manifest.pages.clear();
        manifest.removed_classes.clear();
        manifest.next_class_seq = self.next_class_seq + 1;
        for (seq, ids) in by_page {
            let bytes = encode_page(&self.classes, &ids)?;
            manifest
                .pages
                .push(PageEntry(seq, bytes.len() as u64, ids.len() as u64));
            out.push((page_blob(seq), bytes));
        }
        out.push((MANIFEST.to_string(), encode_manifest(&manifest)?));
        Ok(out)
    }

    /// The whole gallery as one byte file (see the module documentation).
    pub fn export_bytes(&self) -> Result<Vec<u8>> {
        let blobs = self.all_blobs()?;
        let total: usize = blobs.iter().map(|(n, b)| 12 + n.len() + b.len()).sum();
        let mut payload = Vec::with_capacity(4 + total);
        payload.extend_from_slice(&(blobs.len() as u32).to_le_bytes());
        for (name, bytes) in &blobs {
            payload.extend_from_slice(&(name.len() as u32).to_le_bytes());
            payload.extend_from_slice(name.as_bytes());
            payload.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            payload.extend_from_slice(bytes);
        }
        Ok(blob::seal(KIND_EXPORT, &payload))
    }

    /// Reads an export file: the gallery, and the change set that stores it
    /// (into an empty store: blob names are the exported ones). Any damage is an
    /// error; a gallery of another model is `ModelMismatch`.
    pub fn import_bytes(
        bytes: &[u8],
        expected_fingerprint: Option<&str>,
    ) -> Result<(Gallery, ChangeSet)> {
        const NAME: &str = "export";
        let payload = blob::open(NAME, KIND_EXPORT, bytes)?;
        let mut r = Reader {
            bytes: payload,
            pos: 0,
        };
        let count = r.u32()? as usize;
        let mut blobs: HashMap<String, Vec<u8>> = HashMap::new();
        let mut order = Vec::new();
        for _ in 0..count {
            let name_len = r.u32()? as usize;
            let name = std::str::from_utf8(r.take(name_len)?)
                .map_err(|_| Error::corrupt(NAME, "a blob name is not UTF-8"))?
                .to_string();
            if !blob::valid_name(&name) {
                return Err(Error::corrupt(NAME, format!("bad blob name {name:?}")));
            }
            let len = usize::try_from(r.u64()?)
                .map_err(|_| Error::corrupt(NAME, "blob length overflows"))?;
            let data = r.take(len)?.to_vec();
            if blobs.insert(name.clone(), data).is_some() {
                return Err(Error::corrupt(NAME, format!("blob {name:?} appears twice")));
            }
            order.push(name);
        }
        if r.pos != payload.len() {
            return Err(Error::corrupt(
                NAME,
                format!("{} bytes after the last blob", payload.len() - r.pos),
            ));
        }
        let store = Unpacked(blobs);
        let (gallery, _) = Gallery::open(&store, expected_fingerprint, OpenMode::Strict)?;
        let mut blobs = store.0;
        let mut cs = ChangeSet::new();
        // Only the blobs the manifest uses; the manifest last.
        let referenced: HashSet<String> = gallery.blob_names().into_iter().collect();
        for name in order {
            if name != MANIFEST
                && referenced.contains(&name)
                && let Some(b) = blobs.remove(&name)
            {
                cs.put(name, b);
            }
        }
        if let Some(m) = blobs.remove(MANIFEST) {
            cs.put(MANIFEST, m);
        }
        Ok((gallery, cs))
    }

    /// Names of every blob the current state uses (the manifest included).
    pub fn blob_names(&self) -> Vec<String> {
        let m = self.index.manifest();
        let mut names: Vec<String> = m
            .segments
            .into_iter()
            .chain(m.growing)
            .map(|e| e.name)
            .collect();
        names.extend(self.pages.seqs().map(page_blob));
        names.extend(self.legacy.iter().map(|(n, _)| n.clone()));
        names.push(MANIFEST.to_string());
        names
    }
}

fn encode_manifest(m: &Manifest) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(m)
        .map_err(|e| Error::Internal(format!("encoding the manifest: {e}")))?;
    Ok(blob::seal(KIND_MANIFEST, &json))
}

/// The manifest, and for format 1 the class blobs it lists (its `pages` are
/// then empty).
fn decode_manifest(bytes: &[u8]) -> Result<(Manifest, Vec<ClassEntry>)> {
    let json = blob::open(MANIFEST, KIND_MANIFEST, bytes)?;
    let value: Value = serde_json::from_slice(json)
        .map_err(|e| Error::corrupt(MANIFEST, format!("not JSON: {e}")))?;
    let bad = |e: serde_json::Error| Error::corrupt(MANIFEST, format!("bad manifest: {e}"));
    match value.get("format").and_then(Value::as_u64) {
        Some(v) if v == GALLERY_FORMAT as u64 => {
            Ok((serde_json::from_value(value).map_err(bad)?, Vec::new()))
        }
        Some(1) => {
            let v1: ManifestV1 = serde_json::from_value(value).map_err(bad)?;
            let manifest = Manifest {
                format: 1,
                fingerprint: v1.fingerprint,
                dim: v1.dim,
                next_class_id: v1.next_class_id,
                next_vector_id: v1.next_vector_id,
                next_class_seq: v1.next_class_seq,
                index: v1.index,
                pages: Vec::new(),
                removed_classes: Vec::new(),
            };
            Ok((manifest, v1.classes))
        }
        Some(v) => Err(Error::corrupt(
            MANIFEST,
            format!(
                "gallery format {v} is not supported (this build reads formats 1 and {GALLERY_FORMAT})"
            ),
        )),
        None => Err(Error::corrupt(MANIFEST, "no gallery format version")),
    }
}

/// Bounds-checked little-endian reader over an export payload.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| Error::corrupt("export", "truncated blob list"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Default)]
    struct Blobs(HashMap<String, Vec<u8>>);

    impl BlobRead for Blobs {
        fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
            Ok(self.0.get(name).cloned())
        }
    }

    impl Blobs {
        fn apply(&mut self, cs: ChangeSet) {
            for (n, b) in cs.puts {
                self.0.insert(n, b);
            }
            for n in cs.deletes {
                self.0.remove(&n);
            }
        }
        fn names(&self) -> Vec<String> {
            let mut v: Vec<String> = self.0.keys().cloned().collect();
            v.sort();
            v
        }
    }

    const DIM: usize = 8;

    fn config(capacity: usize) -> GalleryConfig {
        GalleryConfig {
            dim: DIM,
            fingerprint: "model-a".into(),
            index: IndexConfig {
                growing_capacity: capacity,
                merge_factor: 2,
                ..Default::default()
            },
        }
    }

    /// A unit vector near axis `axis`, perturbed by `wobble` along axis + 1.
    fn near(axis: usize, wobble: f32) -> Vec<f32> {
        let mut v = vec![0.0; DIM];
        v[axis % DIM] = 1.0;
        v[(axis + 1) % DIM] = wobble;
        v
    }

    fn new_gallery(capacity: usize) -> (Gallery, Blobs) {
        let (g, cs) = Gallery::create(config(capacity)).unwrap();
        let mut store = Blobs::default();
        store.apply(cs);
        (g, store)
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn create_and_reopen_empty() {
        let (g, store) = new_gallery(16);
        assert_eq!(store.names(), vec![MANIFEST]);
        assert_eq!((g.dim(), g.fingerprint()), (DIM, "model-a"));
        let (back, damage) = Gallery::open(&store, Some("model-a"), OpenMode::Strict).unwrap();
        assert!(damage.is_empty() && back.is_empty());
        let r = back.search(&near(0, 0.0), 3, None).unwrap();
        assert!(r.matches.is_empty() && r.unknown);
        assert!(matches!(
            Gallery::open(&Blobs::default(), None, OpenMode::Strict),
            Err(Error::NotFound(_))
        ));
        for bad in [
            GalleryConfig {
                dim: 0,
                ..config(16)
            },
            GalleryConfig {
                fingerprint: " ".into(),
                ..config(16)
            },
            GalleryConfig {
                index: IndexConfig {
                    merge_factor: 0,
                    ..Default::default()
                },
                ..config(16)
            },
        ] {
            assert!(matches!(Gallery::create(bad), Err(Error::BadInput(_))));
        }
    }

    #[test]
    fn class_level_search_uses_best_example() {
        let (mut g, mut store) = new_gallery(1000);
        // "cat" has one example close to the query and one far; "dog" one medium.
        store.apply(
            g.enroll(
                "cat",
                &[near(0, 0.1), near(4, 0.0)],
                Some(json!({"sound": "meow"})),
                vec![],
            )
            .unwrap(),
        );
        store.apply(g.enroll("dog", &[near(0, 0.8)], None, vec![]).unwrap());
        store.apply(g.enroll("fish", &[near(6, 0.0)], None, vec![]).unwrap());
        let q = near(0, 0.0);
        let r = g.search(&q, 2, None).unwrap();
        let labels: Vec<&str> = r.matches.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels, vec!["cat", "dog"]);
        let cat_score = 1.0 / (1.0f32 + 0.01).sqrt();
        assert!((r.matches[0].score - cat_score).abs() < 1e-5);
        assert!((r.matches[0].distance - (1.0 - r.matches[0].score)).abs() < 1e-6);
        assert_eq!(r.matches[0].metadata, Some(json!({"sound": "meow"})));
        assert!(r.matches[0].score > r.matches[1].score);
        assert!(!r.unknown);
        // All three classes when asked for more than exist.
        assert_eq!(g.search(&q, 10, None).unwrap().matches.len(), 3);
        // Open set: a threshold above the best score means "unknown".
        let r = g.search(&q, 1, Some(0.999)).unwrap();
        assert!(r.unknown);
        assert_eq!(r.matches[0].label, "cat");
        assert!(!g.search(&q, 1, Some(0.9)).unwrap().unknown);
        assert!(matches!(g.search(&q, 0, None), Err(Error::BadInput(_))));
        assert!(matches!(
            g.search(&q, 1, Some(f32::NAN)),
            Err(Error::BadInput(_))
        ));
        assert!(matches!(
            g.search(&q[..3], 1, None),
            Err(Error::BadInput(_))
        ));
        let ex = g.search_examples(&q, 2).unwrap();
        assert_eq!(ex[0].label, "cat");
        assert_eq!(ex[1].label, "dog");
    }

    #[test]
    fn search_widens_when_one_class_crowds_the_neighbours() {
        let (mut g, _) = new_gallery(10_000);
        // "crowd" has 200 examples all closer to the query than "other".
        let crowd: Vec<Vec<f32>> = (0..200).map(|i| near(0, 0.001 * i as f32)).collect();
        g.enroll("crowd", &crowd, None, vec![]).unwrap();
        g.enroll("other", &[near(0, 0.9)], None, vec![]).unwrap();
        // The first search (ef_search = 64 neighbours) sees only "crowd".
        let r = g.search(&near(0, 0.0), 2, None).unwrap();
        let labels: Vec<&str> = r.matches.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels, vec!["crowd", "other"]);
    }

    #[test]
    fn enroll_creates_or_extends_classes() {
        let (mut g, mut store) = new_gallery(1000);
        store.apply(
            g.enroll(
                "cat",
                &[near(0, 0.0)],
                Some(json!(1)),
                vec![b"img1".to_vec()],
            )
            .unwrap(),
        );
        // Adding examples keeps metadata when none is given, appends images.
        let cs = g
            .enroll(
                "cat",
                &[near(0, 0.2), near(0, 0.3)],
                None,
                vec![b"img2".to_vec()],
            )
            .unwrap();
        // Only its own chunk, its class record and the manifest are written.
        let puts: Vec<&str> = cs.puts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(puts.len(), 3);
        assert!(puts[0].starts_with("grow-") && puts[1].starts_with("classes-"));
        assert_eq!(puts[2], MANIFEST);
        assert_eq!(cs.deletes.len(), 1, "the page of the old record");
        store.apply(cs);
        let info = &g.classes()[0];
        assert_eq!((info.label.as_str(), info.examples), ("cat", 3));
        assert_eq!(info.metadata, Some(json!(1)));
        assert!(info.has_images);
        assert_eq!(
            g.class_images("cat").unwrap(),
            &[b"img1".to_vec(), b"img2".to_vec()]
        );
        store.apply(
            g.enroll("cat", &[near(0, 0.4)], Some(json!({"n": 2})), vec![])
                .unwrap(),
        );
        assert_eq!(g.classes()[0].metadata, Some(json!({"n": 2})));
        store.apply(g.set_metadata("cat", None).unwrap());
        assert_eq!(g.classes()[0].metadata, None);
        assert!(matches!(g.class_images("dog"), Err(Error::NotFound(_))));
        let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
        assert_eq!(back.classes(), g.classes());
        assert_eq!(
            back.class_images("cat").unwrap(),
            g.class_images("cat").unwrap()
        );
        assert_eq!(sorted(g.blob_names()), store.names());
    }

    #[test]
    fn bad_input_changes_nothing() {
        let (mut g, mut store) = new_gallery(2);
        store.apply(g.enroll("cat", &[near(0, 0.0)], None, vec![]).unwrap());
        let before_classes = g.classes();
        let before_stats = g.stats();
        let ok = vec![near(1, 0.0)];
        let nan = vec![vec![f32::NAN; DIM]];
        let short = vec![vec![1.0; DIM - 1]];
        let mixed = vec![near(1, 0.0), vec![0.0; DIM]];
        type Case<'a> = (&'a str, &'a [Vec<f32>], Vec<Vec<u8>>);
        let cases: Vec<Case> = vec![
            ("", &ok, vec![]),
            ("   ", &ok, vec![]),
            ("tab\there", &ok, vec![]),
            ("dog", &[], vec![]),
            ("dog", &nan, vec![]),
            ("dog", &short, vec![]),
            ("dog", &mixed, vec![]),
            ("cat", &mixed, vec![]),
            ("dog", &ok, vec![vec![]]),
        ];
        for (label, vectors, images) in cases {
            let err = g.enroll(label, vectors, None, images).unwrap_err();
            assert!(matches!(err, Error::BadInput(_)), "{label:?}: {err:?}");
            assert_eq!(g.classes(), before_classes);
            assert_eq!(g.stats(), before_stats);
        }
        let long = "x".repeat(MAX_LABEL_BYTES + 1);
        assert!(matches!(
            g.enroll(&long, &ok, None, vec![]),
            Err(Error::BadInput(_))
        ));
        // And the next good mutation is consistent with the store.
        store.apply(g.enroll("dog", &ok, None, vec![]).unwrap());
        let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
        assert_eq!(back.classes(), g.classes());
    }

    #[test]
    fn rename_and_remove() {
        let (mut g, mut store) = new_gallery(1000);
        store.apply(g.enroll("cat", &[near(0, 0.0)], None, vec![]).unwrap());
        store.apply(g.enroll("dog", &[near(0, 0.5)], None, vec![]).unwrap());
        assert!(matches!(g.rename("cow", "bull"), Err(Error::NotFound(_))));
        assert!(matches!(
            g.rename("cat", "dog"),
            Err(Error::AlreadyExists(_))
        ));
        assert!(matches!(g.rename("cat", ""), Err(Error::BadInput(_))));
        assert!(g.rename("cat", "cat").unwrap().is_empty());
        store.apply(g.rename("cat", "kitten").unwrap());
        assert_eq!(
            g.search(&near(0, 0.0), 1, None).unwrap().matches[0].label,
            "kitten"
        );
        assert!(matches!(g.remove("cat"), Err(Error::NotFound(_))));
        store.apply(g.remove("kitten").unwrap());
        let r = g.search(&near(0, 0.0), 5, None).unwrap();
        let labels: Vec<&str> = r.matches.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels, vec!["dog"]);
        assert_eq!(g.stats().deleted, 1);
        assert_eq!(g.stats().vectors, 1);
        // The label can be enrolled again, as a new class.
        store.apply(g.enroll("kitten", &[near(5, 0.0)], None, vec![]).unwrap());
        let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
        assert_eq!(back.classes(), g.classes());
        assert_eq!(
            back.search(&near(0, 0.0), 1, None).unwrap().matches[0].label,
            "dog",
            "the removed kitten's vector is not found after reopening"
        );
        assert_eq!(sorted(g.blob_names()), store.names());
    }

    #[test]
    fn another_models_gallery_is_refused() {
        let (_, store) = new_gallery(16);
        match Gallery::open(&store, Some("model-b"), OpenMode::SkipDamaged) {
            Err(Error::ModelMismatch {
                what,
                expected,
                found,
            }) => {
                assert_eq!(
                    (what.as_str(), expected.as_str(), found.as_str()),
                    ("gallery", "model-b", "model-a")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_manifest_format_is_named() {
        let (_, mut store) = new_gallery(16);
        let json = blob::open(MANIFEST, KIND_MANIFEST, &store.0[MANIFEST]).unwrap();
        let mut v: Value = serde_json::from_slice(json).unwrap();
        v["format"] = json!(3);
        store.0.insert(
            MANIFEST.into(),
            blob::seal(KIND_MANIFEST, &serde_json::to_vec(&v).unwrap()),
        );
        let err = Gallery::open(&store, None, OpenMode::SkipDamaged).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("manifest") && msg.contains("format 3"),
            "{msg}"
        );
        store.0.insert(MANIFEST.into(), b"garbage".to_vec());
        assert!(matches!(
            Gallery::open(&store, None, OpenMode::SkipDamaged),
            Err(Error::Corrupt { name, .. }) if name == MANIFEST
        ));
    }

    #[test]
    fn sealing_happens_inside_the_enrollment_change_set() {
        let (mut g, mut store) = new_gallery(4);
        let mut sealed = false;
        for i in 0..DIM {
            let cs = g
                .enroll(
                    &format!("c{i}"),
                    &[near(i, 0.1), near(i, 0.2)],
                    None,
                    vec![],
                )
                .unwrap();
            sealed |= cs.puts.iter().any(|(n, _)| n.starts_with("seg-"));
            store.apply(cs);
            assert_eq!(
                sorted(g.blob_names()),
                store.names(),
                "after enrollment {i}"
            );
        }
        assert!(sealed);
        assert!(
            g.stats()
                .segments
                .iter()
                .any(|s| s.kind != SegmentKind::Growing)
        );
        assert!(!g.needs_maintenance());
        let (back, _) = Gallery::open(&store, Some("model-a"), OpenMode::Strict).unwrap();
        for i in 0..DIM {
            let r = back.search(&near(i, 0.15), 1, None).unwrap();
            assert_eq!(r.matches[0].label, format!("c{i}"));
        }
        let stats = back.stats();
        assert_eq!(
            (stats.classes, stats.vectors, stats.deleted),
            (DIM, 2 * DIM, 0)
        );
        let stored: u64 = store.0.values().map(|b| b.len() as u64).sum();
        assert_eq!(stats.bytes, stored);
        assert_eq!(g.stats().bytes, stored);
    }

    #[test]
    fn quantize_is_one_change_set_and_survives_reopening() {
        let (mut g, mut store) = new_gallery(64);
        // 40 classes of two examples each, spread over the 8 dimensions.
        let example = |c: usize, e: usize| {
            let mut v: Vec<f32> = (0..DIM)
                .map(|d| (((c * 7 + d * 3) % 11) as f32 - 5.0) + 0.01 * (e + d) as f32)
                .collect();
            v[c % DIM] += 8.0;
            v
        };
        for c in 0..40 {
            store.apply(
                g.enroll(
                    &format!("c{c}"),
                    &[example(c, 0), example(c, 1)],
                    None,
                    vec![],
                )
                .unwrap(),
            );
        }
        assert!(
            g.stats()
                .segments
                .iter()
                .any(|s| s.kind == SegmentKind::Hnsw)
        );
        let before = g.stats();
        assert_eq!(before.quantization, Quantization::None);
        store.apply(g.quantize().unwrap());
        let after = g.stats();
        assert_eq!(after.quantization, Quantization::Int8);
        assert!(after.memory_bytes < before.memory_bytes);
        assert!(
            after
                .segments
                .iter()
                .any(|s| s.kind == SegmentKind::HnswInt8)
        );
        assert_eq!(sorted(g.blob_names()), store.names());
        let (back, _) = Gallery::open(&store, Some("model-a"), OpenMode::Strict).unwrap();
        assert_eq!(back.stats(), after);
        for c in 0..40 {
            let r = back.search(&example(c, 0), 1, None).unwrap();
            assert_eq!(r.matches[0].label, format!("c{c}"));
        }
    }

    #[test]
    fn optimize_leaves_one_graph_and_every_class() {
        let (mut g, mut store) = new_gallery(16);
        g.set_auto_maintain(false);
        // Scattered directions, one per class (none repeats).
        let example = |c: usize| -> Vec<f32> {
            (0..DIM)
                .map(|d| ((c * 7919 + d * 104_729 + c * d * 31) % 1000) as f32 / 500.0 - 1.0)
                .collect()
        };
        for c in 0..90 {
            store.apply(
                g.enroll(&format!("c{c}"), &[example(c)], None, vec![])
                    .unwrap(),
            );
        }
        store.apply(g.maintain().unwrap().expect("seals are due"));
        store.apply(g.remove("c4").unwrap());
        for c in 90..100 {
            store.apply(
                g.enroll(&format!("c{c}"), &[example(c)], None, vec![])
                    .unwrap(),
            );
        }
        assert!(g.stats().segments.len() > 1);
        store.apply(g.optimize().unwrap().expect("several segments"));
        let stats = g.stats();
        assert_eq!(stats.segments.len(), 1, "{:?}", stats.segments);
        assert_eq!(stats.segments[0].kind, SegmentKind::Hnsw);
        assert_eq!(stats.vectors, 99);
        assert!(g.optimize().unwrap().is_none());
        assert_eq!(sorted(g.blob_names()), store.names());
        let (back, _) = Gallery::open(&store, Some("model-a"), OpenMode::Strict).unwrap();
        assert_eq!(back.stats(), stats);
        for c in (0..100).filter(|&c| c != 4) {
            let r = back.search(&example(c), 1, None).unwrap();
            assert_eq!(r.matches[0].label, format!("c{c}"));
        }
    }

    #[test]
    fn deferred_maintenance() {
        let (mut g, mut store) = new_gallery(4);
        g.set_auto_maintain(false);
        assert!(!g.auto_maintain());
        for i in 0..3 {
            let cs = g
                .enroll(
                    &format!("c{i}"),
                    &[near(i, 0.0), near(i, 0.1)],
                    None,
                    vec![],
                )
                .unwrap();
            assert!(cs.puts.iter().all(|(n, _)| !n.starts_with("seg-")));
            store.apply(cs);
        }
        assert!(g.needs_maintenance());
        let cs = g.maintain().unwrap().expect("work to do");
        assert!(cs.puts.iter().any(|(n, _)| n.starts_with("seg-")));
        assert_eq!(cs.puts.last().map(|(n, _)| n.as_str()), Some(MANIFEST));
        store.apply(cs);
        assert!(!g.needs_maintenance());
        assert!(g.maintain().unwrap().is_none());
        assert_eq!(sorted(g.blob_names()), store.names());
        let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
        assert_eq!(back.stats().vectors, 6);
    }

    fn damaged_gallery() -> (Gallery, Blobs, String, String) {
        let (mut g, mut store) = new_gallery(4);
        for i in 0..6 {
            store.apply(
                g.enroll(
                    &format!("c{i}"),
                    &[near(i, 0.0), near(i, 0.1)],
                    None,
                    vec![],
                )
                .unwrap(),
            );
        }
        let m = decode_manifest(&store.0[MANIFEST]).unwrap().0;
        let seg = m.index.segments[0].name.clone();
        // Damage one segment (bit flip) and the class record of "c5".
        let seg_bytes = store.0.get_mut(&seg).unwrap();
        let at = seg_bytes.len() - 10;
        seg_bytes[at] ^= 1;
        // c5 was enrolled last, so its page holds it alone.
        let c5 = m
            .pages
            .iter()
            .map(|e| page_blob(e.0))
            .find(|n| {
                let records = decode_page(n, &store.0[n]).unwrap();
                records.len() == 1 && records[0].1.label == "c5"
            })
            .unwrap();
        let b = store.0.get_mut(&c5).unwrap();
        let at = b.len() / 2;
        b[at] ^= 0x10;
        (g, store, seg, c5)
    }

    /// Three classes of one vector each, then the page holding `c2`
    /// rewritten (checksum and size still right) by `tamper`.
    fn inconsistent_gallery(tamper: impl Fn(&mut Class, &Class)) -> (Blobs, String) {
        let (mut g, mut store) = new_gallery(16);
        for i in 0..3 {
            store.apply(
                g.enroll(&format!("c{i}"), &[near(i, 0.0)], None, vec![])
                    .unwrap(),
            );
        }
        let m = decode_manifest(&store.0[MANIFEST]).unwrap().0;
        let pages: Vec<Vec<(u64, Class)>> = m
            .pages
            .iter()
            .map(|e| decode_page(&page_blob(e.0), &store.0[&page_blob(e.0)]).unwrap())
            .collect();
        let c0 = pages
            .iter()
            .flatten()
            .find(|(_, c)| c.label == "c0")
            .unwrap()
            .1
            .clone();
        let at = pages
            .iter()
            .position(|p| p.len() == 1 && p[0].1.label == "c2")
            .unwrap();
        let name = page_blob(m.pages[at].0);
        let (id, mut c2) = pages[at][0].clone();
        tamper(&mut c2, &c0);
        let bytes = encode_page(&BTreeMap::from([(id, c2)]), &[id]).unwrap();
        assert_eq!(
            bytes.len(),
            store.0[&name].len(),
            "the manifest's size still fits"
        );
        store.0.insert(name.clone(), bytes);
        (store, name)
    }

    #[test]
    fn class_records_that_contradict_each_other_are_named_or_dropped() {
        type Tamper = fn(&mut Class, &Class);
        let cases: [(&str, Tamper); 2] = [
            ("belongs to two classes", |c, c0| {
                c.vector_ids = c0.vector_ids.clone()
            }),
            ("is used by another class", |c, c0| {
                c.label = c0.label.clone()
            }),
        ];
        for (reason_has, tamper) in cases {
            let (store, page) = inconsistent_gallery(tamper);
            match Gallery::open(&store, None, OpenMode::Strict) {
                Err(Error::Corrupt { name, reason }) => {
                    assert_eq!(name, page);
                    assert!(reason.contains(reason_has), "{reason}");
                }
                other => panic!("{reason_has}: {:?}", other.map(|_| ())),
            }
            // Skipping: the later class is dropped, the first keeps its
            // vector, and the dropped class's own vector belongs to nobody.
            let (g, damage) = Gallery::open(&store, None, OpenMode::SkipDamaged).unwrap();
            assert_eq!(damage.len(), 1);
            assert_eq!(damage[0].blob, page);
            let labels: Vec<String> = g.classes().into_iter().map(|c| c.label).collect();
            assert_eq!(labels, ["c0", "c1"], "{reason_has}");
            for i in 0..2 {
                let r = g.search(&near(i, 0.05), 1, None).unwrap();
                assert_eq!(r.matches[0].label, format!("c{i}"), "{reason_has}");
            }
            let r = g.search(&near(2, 0.05), 3, None).unwrap();
            assert!(r.matches.iter().all(|m| m.label != "c2"), "{reason_has}");
            assert_eq!(g.stats().vectors, 2, "{reason_has}");
        }
    }

    #[test]
    fn strict_open_names_the_first_damaged_blob() {
        let (_, store, seg, _) = damaged_gallery();
        match Gallery::open(&store, None, OpenMode::Strict) {
            Err(Error::Corrupt { name, reason }) => {
                assert_eq!(name, seg);
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn skip_damaged_keeps_the_rest_and_repairs_on_next_mutation() {
        let (orig, mut store, seg, c5) = damaged_gallery();
        let (mut g, damage) =
            Gallery::open(&store, Some("model-a"), OpenMode::SkipDamaged).unwrap();
        let names: Vec<&str> = damage.iter().map(|d| d.blob.as_str()).collect();
        assert_eq!(names, vec![seg.as_str(), c5.as_str()]);
        // c5 is gone; classes whose vectors lived in the damaged segment are
        // still listed (with fewer or no examples) so they can be re-enrolled.
        let labels: Vec<String> = g.classes().into_iter().map(|c| c.label).collect();
        assert!(!labels.contains(&"c5".to_string()));
        assert_eq!(labels.len(), 5);
        let lost: usize = orig.classes().iter().map(|c| c.examples).sum::<usize>()
            - g.classes().iter().map(|c| c.examples).sum::<usize>();
        assert!(lost >= 2, "the damaged segment's vectors are gone");
        // c5's vectors (orphans now) never match; the survivors still do.
        let r = g.search(&near(5, 0.05), 6, None).unwrap();
        assert!(r.matches.iter().all(|m| m.label != "c5"));
        let survivor = g.classes().into_iter().find(|c| c.examples == 2).unwrap();
        let i: usize = survivor.label[1..].parse().unwrap();
        assert_eq!(
            g.search(&near(i, 0.05), 1, None).unwrap().matches[0].label,
            survivor.label
        );

        // The next mutation drops the damaged blobs from the manifest (and the store).
        let cs = g.enroll("new", &[near(7, 0.3)], None, vec![]).unwrap();
        assert!(cs.deletes.contains(&seg) && cs.deletes.contains(&c5));
        store.apply(cs);
        assert_eq!(sorted(g.blob_names()), store.names());
        let (back, damage) = Gallery::open(&store, Some("model-a"), OpenMode::Strict).unwrap();
        assert!(damage.is_empty());
        assert_eq!(back.classes(), g.classes());
        assert_eq!(back.stats().vectors, g.stats().vectors);

        // Emptied classes can be enrolled again (re-embedded) or removed, and
        // a search asking for more classes than can match returns the others.
        let empty: Vec<String> = g
            .classes()
            .into_iter()
            .filter(|c| c.examples == 0)
            .map(|c| c.label)
            .collect();
        assert!(empty.len() >= 2, "{empty:?}");
        store.apply(g.enroll(&empty[0], &[near(0, 0.5)], None, vec![]).unwrap());
        store.apply(g.remove(&empty[1]).unwrap());
        let searchable = g.classes().iter().filter(|c| c.examples > 0).count();
        let r = g.search(&near(0, 0.5), 20, None).unwrap();
        assert_eq!(r.matches.len(), searchable);
        assert_eq!(r.matches[0].label, empty[0]);
        let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
        assert_eq!(back.search(&near(0, 0.5), 20, None).unwrap(), r);
    }

    #[test]
    fn export_import_roundtrip() {
        let (mut g, mut store) = new_gallery(4);
        for i in 0..7 {
            store.apply(
                g.enroll(
                    &format!("c{i}"),
                    &[near(i, 0.0), near(i, 0.2)],
                    Some(json!(i)),
                    vec![vec![i as u8; 10]],
                )
                .unwrap(),
            );
        }
        store.apply(g.remove("c2").unwrap());
        let bytes = g.export_bytes().unwrap();
        let (back, cs) = Gallery::import_bytes(&bytes, Some("model-a")).unwrap();
        assert_eq!(back.classes(), g.classes());
        let (a, b) = (back.stats(), g.stats());
        assert_eq!(
            (a.classes, a.vectors, a.segments),
            (b.classes, b.vectors, b.segments)
        );
        assert!(a.bytes <= b.bytes, "stale records are left out");
        // The import change set recreates the stored blobs: the same names,
        // the same index blobs; class pages without the stale record.
        assert_eq!(cs.puts.last().map(|(n, _)| n.as_str()), Some(MANIFEST));
        let mut fresh = Blobs::default();
        fresh.apply(cs);
        assert_eq!(fresh.names(), store.names());
        for name in store.names() {
            if !name.starts_with("classes-") && name != MANIFEST {
                assert_eq!(fresh.0[&name], store.0[&name], "{name}");
            }
        }
        let (reopened, _) = Gallery::open(&fresh, None, OpenMode::Strict).unwrap();
        let q = near(3, 0.1);
        assert_eq!(
            reopened.search(&q, 3, None).unwrap(),
            g.search(&q, 3, None).unwrap()
        );

        assert!(matches!(
            Gallery::import_bytes(&bytes, Some("model-b")),
            Err(Error::ModelMismatch { .. })
        ));
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert!(matches!(
            Gallery::import_bytes(&bad, None),
            Err(Error::Corrupt { name, .. }) if name == "export"
        ));
        assert!(Gallery::import_bytes(&bytes[..bytes.len() - 1], None).is_err());
        // A well-framed export whose blob list lies about lengths.
        let payload = blob::open("export", KIND_EXPORT, &bytes).unwrap();
        let mut lying = payload.to_vec();
        lying.truncate(lying.len() - 3);
        let err = Gallery::import_bytes(&blob::seal(KIND_EXPORT, &lying), None).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn manifest_is_json_and_lists_everything() {
        let (mut g, mut store) = new_gallery(4);
        store.apply(g.enroll("a", &[near(0, 0.0)], None, vec![]).unwrap());
        g.remove("a").map(|cs| store.apply(cs)).unwrap();
        store.apply(g.enroll("b", &[near(1, 0.0)], None, vec![]).unwrap());
        let json = blob::open(MANIFEST, KIND_MANIFEST, &store.0[MANIFEST]).unwrap();
        let v: Value = serde_json::from_slice(json).unwrap();
        assert_eq!(v["format"], json!(2));
        assert_eq!(v["fingerprint"], json!("model-a"));
        assert_eq!(v["dim"], json!(DIM));
        assert_eq!(v["index"]["config"]["growing_capacity"], json!(4));
        assert_eq!(v["index"]["tombstones"], json!([1]));
        // a's and b's one-vector chunks merged into one (merge factor 2).
        let growing = v["index"]["growing"].as_array().unwrap();
        assert_eq!(growing.len(), 1);
        assert_eq!(growing[0]["vectors"], json!(2));
        // a's page went with a; b's page holds one record.
        let pages = v["pages"].as_array().unwrap();
        assert_eq!(pages.len(), 1);
        let name = format!("classes-{}", pages[0][0]);
        assert_eq!(pages[0][1], json!(store.0[&name].len()));
        assert_eq!(pages[0][2], json!(1));
        assert_eq!(v["removed_classes"], json!([]));
        let records = decode_page(&name, &store.0[&name]).unwrap();
        assert_eq!((records[0].0, records[0].1.label.as_str()), (2, "b"));
    }

    /// Enrolls `n` one-example classes `c0..`, applying each change set.
    fn enroll_many(g: &mut Gallery, store: &mut Blobs, n: usize) {
        for i in 0..n {
            store.apply(
                g.enroll(&format!("c{i}"), &[near(i, i as f32 * 0.01)], None, vec![])
                    .unwrap(),
            );
        }
    }

    #[test]
    fn class_pages_merge_by_tiers_and_keep_the_manifest_small() {
        let (mut g, mut store) = new_gallery(1 << 20);
        let n = 300;
        enroll_many(&mut g, &mut store, n);
        let m = decode_manifest(&store.0[MANIFEST]).unwrap().0;
        let per_tier = pages::PAGE_MERGE_FACTOR - 1;
        assert!(
            m.pages.len() <= per_tier * 5,
            "{} pages for {n} classes",
            m.pages.len()
        );
        let records: u64 = m.pages.iter().map(|p| p.2).sum();
        assert_eq!(records, n as u64, "no stale records without rewrites");
        // One more enrollment writes its chunk, one page and the manifest (and
        // merges whatever tier filled up).
        let cs = g.enroll("extra", &[near(3, 0.5)], None, vec![]).unwrap();
        let pages_written = cs
            .puts
            .iter()
            .filter(|(n, _)| n.starts_with("classes-"))
            .count();
        assert!(pages_written <= 1, "{pages_written}");
        store.apply(cs);
        assert_eq!(sorted(g.blob_names()), store.names());
        let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
        assert_eq!(back.classes(), g.classes());
    }

    #[test]
    fn a_class_removed_or_renamed_inside_a_merged_page_stays_so_after_reopening() {
        let (mut g, mut store) = new_gallery(1 << 20);
        enroll_many(&mut g, &mut store, pages::PAGE_MERGE_FACTOR * 2);
        store.apply(g.remove("c1").unwrap());
        let m = decode_manifest(&store.0[MANIFEST]).unwrap().0;
        assert_eq!(
            m.removed_classes,
            vec![2],
            "c1 (class 2) has a stale record"
        );
        let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
        assert_eq!(back.classes(), g.classes());
        store.apply(g.rename("c2", "two").unwrap());
        store.apply(g.set_metadata("c3", Some(json!("m"))).unwrap());
        let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
        assert_eq!(back.classes(), g.classes());
        let labels: Vec<String> = back.classes().into_iter().map(|c| c.label).collect();
        assert!(!labels.contains(&"c1".into()) && !labels.contains(&"c2".into()));
        assert!(labels.contains(&"two".into()));
        // Once the merged pages are rewritten, no removed class is listed.
        enroll_many(
            &mut g,
            &mut store,
            pages::PAGE_MERGE_FACTOR * pages::PAGE_MERGE_FACTOR,
        );
        let mut g2 = Gallery::open(&store, None, OpenMode::Strict).unwrap().0;
        while let Some(cs) = g2.maintain().unwrap() {
            store.apply(cs);
        }
        let m = decode_manifest(&store.0[MANIFEST]).unwrap().0;
        let live = g2.len() as u64;
        let records: u64 = m.pages.iter().map(|p| p.2).sum();
        assert!(
            records >= live && records < 2 * live,
            "{records} records for {live}"
        );
        assert!(
            m.removed_classes
                .iter()
                .all(|id| !g2.classes.contains_key(id))
        );
        let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
        assert_eq!(back.classes(), g2.classes());
        assert_eq!(sorted(g2.blob_names()), store.names());
    }

    #[test]
    fn a_batch_is_one_chunk_one_page_and_bad_input_in_it_changes_nothing() {
        let (mut g, mut store) = new_gallery(1000);
        let entry = |label: &str, vectors: Vec<Vec<f32>>, metadata| Enrollment {
            label: label.into(),
            vectors,
            metadata,
        };
        let batch = vec![
            entry("a", vec![near(0, 0.0), near(0, 0.1)], None),
            entry("b", vec![near(2, 0.0)], Some(json!("bee"))),
            entry("a", vec![near(0, 0.2)], Some(json!("ay"))),
        ];
        let cs = g.enroll_batch(&batch).unwrap();
        let puts: Vec<&str> = cs.puts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(puts.len(), 3, "{puts:?}");
        assert!(puts[0].starts_with("grow-") && puts[1].starts_with("classes-"));
        store.apply(cs);
        let info = g.classes();
        assert_eq!(
            info.iter()
                .map(|c| (c.label.as_str(), c.examples, c.metadata.clone()))
                .collect::<Vec<_>>(),
            vec![("a", 3, Some(json!("ay"))), ("b", 1, Some(json!("bee")))]
        );
        assert_eq!(
            g.search(&near(2, 0.05), 1, None).unwrap().matches[0].label,
            "b"
        );
        let before = (g.classes(), g.stats());
        for bad in [
            vec![
                entry("c", vec![near(3, 0.0)], None),
                entry("d", vec![vec![f32::NAN; DIM]], None),
            ],
            vec![
                entry("c", vec![near(3, 0.0)], None),
                entry("", vec![near(4, 0.0)], None),
            ],
            vec![entry("c", vec![], None)],
            vec![],
        ] {
            assert!(matches!(g.enroll_batch(&bad), Err(Error::BadInput(_))));
            assert_eq!((g.classes(), g.stats()), before);
        }
        let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
        assert_eq!(back.classes(), g.classes());
    }

    #[test]
    fn maintenance_built_on_another_thread_while_the_gallery_is_used() {
        let (mut g, mut store) = new_gallery(4);
        g.set_auto_maintain(false);
        enroll_many(&mut g, &mut store, 5);
        let job = g.start_maintenance().expect("the growing segment is full");
        let builder = std::thread::spawn(move || job.build());
        // Meanwhile the gallery is searched, enrolled into and changed.
        assert_eq!(
            g.search(&near(1, 0.01), 1, None).unwrap().matches[0].label,
            "c1"
        );
        store.apply(g.enroll("late", &[near(6, 0.3)], None, vec![]).unwrap());
        store.apply(g.remove("c0").unwrap());
        let cs = g
            .finish_maintenance(builder.join().unwrap().unwrap())
            .unwrap();
        assert!(cs.puts.iter().any(|(n, _)| n.starts_with("seg-")));
        assert_eq!(cs.puts.last().map(|(n, _)| n.as_str()), Some(MANIFEST));
        store.apply(cs);
        assert_eq!(sorted(g.blob_names()), store.names());
        let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
        assert_eq!(back.classes(), g.classes());
        assert_eq!((back.stats().vectors, back.stats().deleted), (5, 1));
        for (label, q) in [
            ("c1", near(1, 0.01)),
            ("late", near(6, 0.3)),
            ("c4", near(4, 0.04)),
        ] {
            assert_eq!(back.search(&q, 1, None).unwrap().matches[0].label, label);
        }
        assert!(
            back.search(&near(0, 0.0), 5, None)
                .unwrap()
                .matches
                .iter()
                .all(|m| m.label != "c0")
        );
    }

    #[test]
    fn format_1_galleries_are_read_and_migrated_by_the_next_mutation() {
        // A format-1 gallery as an earlier build stored it: one blob per class.
        let (mut g, mut store) = new_gallery(4);
        enroll_many(&mut g, &mut store, 6);
        let m = decode_manifest(&store.0[MANIFEST]).unwrap().0;
        let mut v1 = Blobs::default();
        let mut entries = Vec::new();
        for (&id, c) in &g.classes {
            let r = c.record(id).unwrap();
            let blob = blob::seal(KIND_CLASS, &postcard::to_allocvec(&r).unwrap());
            let seq = 100 + id;
            entries.push(json!([id, seq, blob.len()]));
            v1.0.insert(class_blob(seq), blob);
        }
        for name in store.names() {
            if name.starts_with("seg-") || name.starts_with("grow-") {
                v1.0.insert(name.clone(), store.0[&name].clone());
            }
        }
        let manifest = json!({
            "format": 1, "fingerprint": m.fingerprint, "dim": m.dim,
            "next_class_id": m.next_class_id, "next_vector_id": m.next_vector_id,
            "next_class_seq": 1, "index": serde_json::to_value(&m.index).unwrap(),
            "classes": entries,
        });
        v1.0.insert(
            MANIFEST.into(),
            blob::seal(KIND_MANIFEST, &serde_json::to_vec(&manifest).unwrap()),
        );
        let (mut old, _) = Gallery::open(&v1, Some("model-a"), OpenMode::Strict).unwrap();
        assert_eq!(old.classes(), g.classes());
        assert_eq!(sorted(old.blob_names()), v1.names());
        let cs = old.enroll("new", &[near(7, 0.7)], None, vec![]).unwrap();
        assert_eq!(
            cs.deletes
                .iter()
                .filter(|n| n.starts_with("class-"))
                .count(),
            6
        );
        v1.apply(cs);
        assert!(v1.names().iter().all(|n| !n.starts_with("class-")));
        let (migrated, _) = Gallery::open(&v1, None, OpenMode::Strict).unwrap();
        assert_eq!(migrated.len(), 7);
        assert_eq!(migrated.classes(), old.classes());
        let new_seq = decode_manifest(&v1.0[MANIFEST]).unwrap().0.pages[0].0;
        assert!(new_seq > 106, "page names never reuse a format-1 sequence");
        assert_eq!(
            migrated.search(&near(3, 0.03), 1, None).unwrap().matches[0].label,
            "c3"
        );
    }
}
