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
//! | `head` | `HEAD` | only after on-device adaptation: the projection head the vectors were embedded with, as little-endian `f32` ([`head`]); the manifest names the shipped model it adapts |
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

mod export;
mod format;
mod head;
mod labels;
mod open;
mod owners;
pub mod pages;

use format::*;
pub use format::{ClassEntry, Manifest};
pub use head::{AdaptedHead, HEAD_BLOB, HeadEntry, KIND_HEAD};
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

impl Enrollment {
    /// Row `i` of `vectors` as an example of `labels[i]`: one enrollment a
    /// class, in label order, without metadata (bulk loads of labelled rows).
    pub fn by_label(
        labels: impl IntoIterator<Item = String>,
        vectors: impl IntoIterator<Item = Vec<f32>>,
    ) -> Vec<Enrollment> {
        let mut classes: std::collections::BTreeMap<String, Vec<Vec<f32>>> = Default::default();
        for (label, v) in labels.into_iter().zip(vectors) {
            classes.entry(label).or_default().push(v);
        }
        classes
            .into_iter()
            .map(|(label, vectors)| Enrollment {
                label,
                vectors,
                metadata: None,
            })
            .collect()
    }
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
#[derive(Debug, Clone, PartialEq)]
pub struct GalleryConfig {
    /// Embedding dimension.
    pub dim: usize,
    /// Fingerprint of the model that produces the embeddings.
    pub fingerprint: String,
    /// Index parameters.
    pub index: IndexConfig,
    /// The adapted head the model embeds with, when it is not the shipped one.
    pub head: Option<AdaptedHead>,
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
    /// The adapted head the vectors were embedded with, if any.
    head: Option<AdaptedHead>,
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
        let mut gallery = Gallery::empty(config.fingerprint, config.dim, index);
        let mut cs = ChangeSet::new();
        if let Some(head) = config.head {
            head.validate()?;
            cs.put(HEAD_BLOB, head.encode());
            gallery.head = Some(head);
        }
        let cs = gallery.finish(cs)?;
        Ok((gallery, cs))
    }

    /// A gallery of no class over `index`, with every counter at its start.
    fn empty(fingerprint: String, dim: usize, index: Index) -> Gallery {
        Gallery {
            fingerprint,
            dim,
            head: None,
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
        }
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

    /// The adapted head the vectors were embedded with; `None` when it is
    /// the shipped model's own.
    pub fn head(&self) -> Option<&AdaptedHead> {
        self.head.as_ref()
    }

    /// What embeds queries for this gallery, given the shipped model `base`:
    /// `base` with the gallery's adapted head when it has one for `base`, else
    /// `base`; [`Error::ModelMismatch`] when that is not the model the
    /// gallery's vectors come from.
    pub fn embedder_for(&self, base: &crate::embed::Embedder) -> Result<crate::embed::Embedder> {
        let embedder = match &self.head {
            Some(head) => head.apply(base)?.unwrap_or_else(|| base.clone()),
            None => base.clone(),
        };
        if embedder.fingerprint() != self.fingerprint {
            return Err(Error::ModelMismatch {
                what: "gallery".into(),
                expected: embedder.fingerprint().to_string(),
                found: self.fingerprint.clone(),
            });
        }
        Ok(embedder)
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
            head: self.head.as_ref().map(AdaptedHead::entry),
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
        let classes = entries
            .iter()
            .map(|e| (e.label.clone(), e.vectors.len(), e.metadata.clone()));
        self.attach_in_order(&ids, classes);
        self.maybe_maintain(&mut cs)?;
        self.finish(cs)
    }

    /// Enrolls the examples of many classes as one graph built now, straight
    /// from their vectors ([`Index::add_sealed`]): the bulk load of a new
    /// gallery, holding one copy of the vectors where [`Gallery::enroll_batch`]
    /// and a seal hold three. Bad input in any entry changes nothing.
    pub fn enroll_sealed(&mut self, entries: Vec<Enrollment>) -> Result<ChangeSet> {
        if entries.is_empty() {
            return Err(Error::BadInput("no classes to enroll".into()));
        }
        let dim = self.dim();
        for e in &entries {
            check_examples(&e.label, &e.vectors)?;
            if let Some(v) = e.vectors.iter().find(|v| v.len() != dim) {
                return Err(Error::BadInput(format!(
                    "class {:?}: a vector of {} values, the gallery's dimension is {dim}",
                    e.label,
                    v.len()
                )));
            }
        }
        let n = entries.iter().map(|e| e.vectors.len()).sum();
        let ids = self.next_ids(n);
        let mut flat = Vec::with_capacity(n * dim);
        let mut classes = Vec::with_capacity(entries.len());
        for e in entries {
            classes.push((e.label, e.vectors.len(), e.metadata));
            e.vectors.into_iter().for_each(|v| flat.extend(v));
        }
        let mut cs = self.index.add_sealed(ids.clone(), flat)?;
        self.attach_in_order(&ids, classes);
        self.maybe_maintain(&mut cs)?;
        self.finish(cs)
    }

    /// The ids the next `n` vectors will get (taken by [`Gallery::attach`]).
    fn next_ids(&self, n: usize) -> Vec<u64> {
        let first = self.next_vector_id;
        (first..first + n as u64).collect()
    }

    /// Gives each `(label, count, metadata)` the next `count` of `ids`, in order.
    fn attach_in_order(
        &mut self,
        ids: &[u64],
        classes: impl IntoIterator<Item = (String, usize, Option<Value>)>,
    ) {
        let mut at = 0;
        for (label, count, metadata) in classes {
            self.attach(&label, &ids[at..at + count], metadata, Vec::new());
            at += count;
        }
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
        self.quantize_to(Quantization::Int8)
    }

    /// Stores the index's sealed graphs, and later ones, as `mode` says
    /// ([`Index::quantize_to`]): one change set, so the switch is atomic.
    pub fn quantize_to(&mut self, mode: Quantization) -> Result<ChangeSet> {
        let cs = self.index.quantize_to(mode)?;
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
        if self.head.is_some() {
            names.push(HEAD_BLOB.to_string());
        }
        names.push(MANIFEST.to_string());
        names
    }
}

#[cfg(test)]
mod format_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
