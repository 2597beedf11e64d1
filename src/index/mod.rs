//! The log-structured vector index.
//!
//! A HNSW graph can take new points but not lose them, and a large graph's blob
//! is too big to rewrite for each insert, so the index is log-structured, the
//! way Lucene, Qdrant and Milvus are:
//!
//! - a **growing segment**: a flat array searched exactly. [`Index::add`] appends
//!   to it and returns a small *chunk* blob (`grow-<seq>`) holding just the added
//!   vectors, so an insert is durable as soon as that chunk and the manifest are
//!   stored;
//! - **sealed segments** (`seg-<seq>`): when the growing segment reaches
//!   [`IndexConfig::growing_capacity`] it is sealed into a HNSW graph
//!   ([`graph`]); sealed segments are merged by size tiers (tier *t* holds segments of
//!   about `capacity · merge_factor^t` vectors; `merge_factor` segments of one
//!   tier merge into one of the next), so each vector is rebuilt O(log n) times;
//! - **tombstones** for deleted ids, applied at query time and dropped when the
//!   segment holding the id is rebuilt (sealed, merged, or compacted once more
//!   than half of it is deleted);
//! - a query searches every segment and merges the top-K.
//!
//! The index does not own storage: mutations return the blobs they create and
//! delete as a [`ChangeSet`], and [`Index::manifest`] describes the current
//! state for the caller (the gallery) to persist in its manifest.
//!
//! Vectors must have the index dimension and be finite and non-zero; they are
//! L2-normalised on insert unless already unit length, so scores are cosine
//! similarities. Queries are normalised the same way.

mod config;
pub mod distance;
pub(crate) mod graph;
mod maintenance;
mod manifest;
pub(crate) mod policy;
pub(crate) mod segment;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use rustc_hash::FxHashSet;

use serde::{Deserialize, Serialize};

use crate::blob::{BlobRead, ChangeSet, Damage};
use crate::{Error, Result};
use segment::{Flat, Sealed, TopK};

pub use config::{DEFAULT_M, IndexConfig, NeighborSelection, Quantization};
pub use maintenance::{BuiltSegment, EXTEND_SHARE, MaintenanceJob};
pub use manifest::{IndexManifest, SegmentEntry, SegmentKind};
pub use segment::FLAT_MAX;

/// One search result: a vector id and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hit {
    pub id: u64,
    pub score: f32,
}

/// What [`Index::segments`] reports about one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentInfo {
    /// Blob name (`seg-<seq>`), or `"growing"` for the growing segment.
    pub name: String,
    pub kind: SegmentKind,
    /// Vectors stored, tombstoned ones included.
    pub vectors: usize,
}

struct SealedEntry {
    entry: SegmentEntry,
    seg: Sealed,
    sorted_ids: Vec<u64>,
    /// How many of this segment's ids are tombstoned.
    deleted: usize,
}

impl SealedEntry {
    fn contains(&self, id: u64) -> bool {
        self.sorted_ids.binary_search(&id).is_ok()
    }
    fn live(&self) -> usize {
        self.seg.len() - self.deleted
    }
}

/// The log-structured index. See the [module documentation](self).
pub struct Index {
    dim: usize,
    fingerprint: String,
    config: IndexConfig,
    /// The growing segment's vectors (all chunks, in order).
    growing: Flat,
    /// The growing segment's ids, for membership tests.
    growing_ids: FxHashSet<u64>,
    /// The chunks the growing segment is persisted as.
    chunks: Vec<SegmentEntry>,
    /// How many of the first chunks a seal job out of the index replaces
    /// (they must not be merged meanwhile).
    frozen_chunks: usize,
    sealed: Vec<SealedEntry>,
    tombstones: BTreeSet<u64>,
    next_seq: u64,
    /// Name of the segment a [`MaintenanceJob`] out of the index is building.
    job: Option<String>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("dim", &self.dim)
            .field("fingerprint", &self.fingerprint)
            .field("config", &self.config)
            .field("segments", &self.segments())
            .field("tombstones", &self.tombstones.len())
            .finish()
    }
}

/// Checks a vector's length and values; puts it, unit-length, in `out`.
fn checked_unit_into(v: &[f32], dim: usize, what: &str, out: &mut Vec<f32>) -> Result<()> {
    out.clear();
    push_unit(v, dim, out).map_err(|why| Error::BadInput(format!("{what} {why}")))
}

/// Appends `v` made unit-length to `out`, or says what is wrong with it.
fn push_unit(v: &[f32], dim: usize, out: &mut Vec<f32>) -> std::result::Result<(), String> {
    match unit_scale(v, dim)? {
        None => out.extend_from_slice(v),
        Some(inv) => out.extend(v.iter().map(|&x| (x as f64 * inv) as f32)),
    }
    Ok(())
}

/// Makes `v` unit length where it lies (see [`push_unit`]).
fn make_unit(v: &mut [f32]) -> std::result::Result<(), String> {
    if let Some(inv) = unit_scale(v, v.len())? {
        v.iter_mut().for_each(|x| *x = (*x as f64 * inv) as f32);
    }
    Ok(())
}

/// What `v` must be multiplied by to be unit length (`None`: it already is),
/// or why it cannot be stored.
fn unit_scale(v: &[f32], dim: usize) -> std::result::Result<Option<f64>, String> {
    if v.len() != dim {
        return Err(format!(
            "has {} values, the index dimension is {dim}",
            v.len()
        ));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(format!("has a non-finite value ({}) at position {i}", v[i]));
    }
    // Norm in f64: a vector of huge-but-finite values must not overflow to inf.
    let n2: f64 = v.iter().map(|&x| x as f64 * x as f64).sum();
    if n2 == 0.0 || !n2.is_finite() {
        return Err("has zero length and no direction".into());
    }
    Ok(((n2 - 1.0).abs() > 1e-6).then(|| 1.0 / n2.sqrt()))
}

/// What a search reuses from one query to the next on its thread, so that a
/// search allocates nothing once its thread has run one: the query made unit
/// (and quantised, for int8 graphs), a graph's candidates and the top-K.
#[derive(Default)]
struct Scratch {
    query: Vec<f32>,
    codes: Vec<i8>,
    found: Vec<(f32, u64)>,
    top: TopK,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

impl Index {
    /// An empty index of `dim`-dimensional vectors produced by the model `fingerprint`.
    pub fn new(dim: usize, fingerprint: impl Into<String>, config: IndexConfig) -> Result<Self> {
        if dim == 0 {
            return Err(Error::BadInput("index dimension must be at least 1".into()));
        }
        config.validate()?;
        Ok(Self {
            dim,
            fingerprint: fingerprint.into(),
            config,
            growing: Flat::default(),
            growing_ids: FxHashSet::default(),
            chunks: Vec::new(),
            frozen_chunks: 0,
            sealed: Vec::new(),
            tombstones: BTreeSet::new(),
            next_seq: 1,
            job: None,
        })
    }

    /// Loads the index a manifest describes.
    ///
    /// With `skip_damaged = false` the first damaged blob (missing, corrupt, of
    /// another dimension or model) fails the load. With `true` damaged blobs are
    /// left out and reported, and the rest is loaded; [`Index::manifest`] then no
    /// longer lists them. I/O errors always fail the load.
    pub fn load(
        dim: usize,
        fingerprint: &str,
        manifest: &IndexManifest,
        blobs: &dyn BlobRead,
        skip_damaged: bool,
    ) -> Result<(Self, Vec<Damage>)> {
        manifest
            .config
            .validate()
            .map_err(|e| Error::corrupt(crate::blob::MANIFEST, format!("index config: {e}")))?;
        let mut index = Index::new(dim, fingerprint, manifest.config.clone())?;
        let names = manifest.segments.iter().chain(&manifest.growing);
        let seqs = names.map(|e| seq_of(&e.name)).chain([manifest.next_seq]);
        crate::blob::check_ids(crate::blob::MANIFEST, "a segment sequence", seqs)?;
        let tombstones = manifest.tombstones.iter().copied();
        crate::blob::check_ids(crate::blob::MANIFEST, "a tombstone", tombstones)?;
        let mut damage = Vec::new();
        // The sorted ids of the chunks accepted so far (the sealed segments'
        // are in `index.sealed`): a vector stored twice is damage.
        let mut chunk_ids: Vec<Vec<u64>> = Vec::new();
        let mut max_seq = 0;

        // Decide whether an error is damage to skip or the end of the load.
        let handle = |name: &str, err: Error, damage: &mut Vec<Damage>| -> Result<()> {
            let is_damage = matches!(err, Error::Corrupt { .. } | Error::ModelMismatch { .. });
            if skip_damaged && is_damage {
                damage.push(Damage::from_error(name, &err));
                Ok(())
            } else {
                Err(err)
            }
        };

        for entry in &manifest.segments {
            max_seq = max_seq.max(seq_of(&entry.name));
            let loaded = index.load_sealed(entry, blobs).and_then(|s| {
                let last = s.sorted_ids.last().copied();
                crate::blob::check_ids(&entry.name, "vector id", last).map(|()| s)
            });
            match loaded {
                Ok(s) => index.sealed.push(s),
                Err(e) => handle(&entry.name, e, &mut damage)?,
            }
        }
        for entry in &manifest.growing {
            max_seq = max_seq.max(seq_of(&entry.name));
            let loaded = index
                .load_chunk(entry, blobs, &chunk_ids)
                .and_then(|(flat, sorted)| {
                    let last = sorted.last().copied();
                    crate::blob::check_ids(&entry.name, "vector id", last).map(|()| (flat, sorted))
                });
            match loaded {
                Ok((flat, sorted)) => {
                    chunk_ids.push(sorted);
                    index.growing.ids.extend_from_slice(&flat.ids);
                    index.growing_ids.extend(flat.ids.iter().copied());
                    index.growing.data.extend_from_slice(&flat.data);
                    index.chunks.push(entry.clone());
                }
                Err(e) => handle(&entry.name, e, &mut damage)?,
            }
        }
        index.next_seq = manifest.next_seq.max(max_seq + 1);
        // Tombstones of ids that are no longer anywhere are dropped.
        for &id in &manifest.tombstones {
            if index.stores(id) {
                index.tombstone(id);
            }
        }
        Ok((index, damage))
    }

    /// Fetches and checks one blob listed by the manifest.
    fn fetch<'a>(&self, entry: &SegmentEntry, blobs: &'a dyn BlobRead) -> Result<Cow<'a, [u8]>> {
        let bytes = blobs
            .read(&entry.name)?
            .ok_or_else(|| Error::corrupt(&entry.name, "missing (listed in the manifest)"))?;
        if bytes.len() as u64 != entry.bytes {
            return Err(Error::corrupt(
                &entry.name,
                format!("{} bytes, the manifest says {}", bytes.len(), entry.bytes),
            ));
        }
        Ok(bytes)
    }

    /// Checks what every decoded segment must satisfy.
    fn check_decoded(
        &self,
        entry: &SegmentEntry,
        fingerprint: &str,
        dim: usize,
        sorted_ids: &[u64],
        chunk_ids: &[Vec<u64>],
    ) -> Result<()> {
        if fingerprint != self.fingerprint {
            return Err(Error::ModelMismatch {
                what: format!("index segment {}", entry.name),
                expected: self.fingerprint.clone(),
                found: fingerprint.to_string(),
            });
        }
        if dim != self.dim {
            return Err(Error::corrupt(
                &entry.name,
                format!("dimension {dim}, the index has {}", self.dim),
            ));
        }
        if sorted_ids.len() as u64 != entry.vectors {
            return Err(Error::corrupt(
                &entry.name,
                format!(
                    "{} vectors, the manifest says {}",
                    sorted_ids.len(),
                    entry.vectors
                ),
            ));
        }
        // Sorted lists instead of a set of every id: at a million vectors,
        // hashing them all was a good part of opening a gallery.
        let within = sorted_ids.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]);
        let earlier = || {
            self.sealed
                .iter()
                .map(|s| s.sorted_ids.as_slice())
                .chain(chunk_ids.iter().map(Vec::as_slice))
        };
        let across = || {
            earlier().find_map(|other| {
                let (small, large) = if other.len() < sorted_ids.len() {
                    (other, sorted_ids)
                } else {
                    (sorted_ids, other)
                };
                small
                    .iter()
                    .copied()
                    .find(|id| large.binary_search(id).is_ok())
            })
        };
        if let Some(id) = within.or_else(across) {
            return Err(Error::corrupt(
                &entry.name,
                format!("vector id {id} is stored twice"),
            ));
        }
        Ok(())
    }

    fn load_sealed(&self, entry: &SegmentEntry, blobs: &dyn BlobRead) -> Result<SealedEntry> {
        let bytes = self.fetch(entry, blobs)?;
        let (fp, dim, seg) = Sealed::decode(&entry.name, entry.kind, &bytes)?;
        drop(bytes);
        let sorted_ids = seg.sorted_ids();
        self.check_decoded(entry, &fp, dim, &sorted_ids, &[])?;
        Ok(SealedEntry {
            entry: entry.clone(),
            seg,
            sorted_ids,
            deleted: 0,
        })
    }

    fn load_chunk(
        &self,
        entry: &SegmentEntry,
        blobs: &dyn BlobRead,
        chunk_ids: &[Vec<u64>],
    ) -> Result<(Flat, Vec<u64>)> {
        if entry.kind != SegmentKind::Growing {
            return Err(Error::corrupt(
                &entry.name,
                "listed as a growing chunk but of another kind",
            ));
        }
        let bytes = self.fetch(entry, blobs)?;
        let (fp, dim, flat) =
            segment::decode_flat(&entry.name, segment::KIND_GROWING_CHUNK, &bytes)?;
        let mut sorted = flat.ids.clone();
        sorted.sort_unstable();
        self.check_decoded(entry, &fp, dim, &sorted, chunk_ids)?;
        Ok((flat, sorted))
    }

    /// The manifest section describing the current state.
    pub fn manifest(&self) -> IndexManifest {
        IndexManifest {
            config: self.config.clone(),
            next_seq: self.next_seq,
            segments: self.sealed.iter().map(|s| s.entry.clone()).collect(),
            growing: self.chunks.clone(),
            tombstones: self.tombstones.iter().copied().collect(),
        }
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Fingerprint of the model whose vectors this index holds.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The index parameters.
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Vectors stored, tombstoned ones included.
    pub fn stored(&self) -> usize {
        self.growing.len() + self.sealed.iter().map(|s| s.seg.len()).sum::<usize>()
    }

    /// Live (searchable) vectors.
    pub fn len(&self) -> usize {
        self.stored() - self.tombstones.len()
    }

    /// Whether no vector is searchable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tombstones not yet dropped by a rebuild.
    pub fn deleted(&self) -> usize {
        self.tombstones.len()
    }

    /// Whether `id` is stored (tombstoned or not).
    fn stores(&self, id: u64) -> bool {
        self.growing_ids.contains(&id) || self.sealed.iter().any(|s| s.contains(id))
    }

    /// Whether `id` is live (stored and not deleted).
    pub fn contains(&self, id: u64) -> bool {
        !self.tombstones.contains(&id) && self.stores(id)
    }

    /// Whether every id of `sorted` (ascending) is live: what [`Index::contains`]
    /// says of each, in one pass. Opening a gallery asks it of every vector of
    /// every class; one binary search per vector over a million ids was a
    /// good part of that.
    pub fn contains_all(&self, sorted: impl IntoIterator<Item = u64>) -> bool {
        // One cursor per sealed segment, moving only forwards.
        let mut cursors = vec![0usize; self.sealed.len()];
        sorted.into_iter().all(|id| {
            if self.tombstones.contains(&id) {
                return false;
            }
            if self.growing_ids.contains(&id) {
                return true;
            }
            self.sealed.iter().zip(&mut cursors).any(|(s, at)| {
                let rest = &s.sorted_ids[*at..];
                // Gallop: ids close together are the common case.
                let mut step = 1;
                while step < rest.len() && rest[step - 1] < id {
                    step *= 2;
                }
                let upto = step.min(rest.len());
                *at += rest[..upto].partition_point(|&x| x < id);
                s.sorted_ids.get(*at) == Some(&id)
            })
        })
    }

    /// The largest id stored (tombstoned or not), if any.
    pub fn max_id(&self) -> Option<u64> {
        self.growing_ids
            .iter()
            .copied()
            .chain(
                self.sealed
                    .iter()
                    .filter_map(|s| s.sorted_ids.last().copied()),
            )
            .max()
    }

    /// Every live id, ascending.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .growing
            .ids
            .iter()
            .chain(self.sealed.iter().flat_map(|s| s.sorted_ids.iter()))
            .copied()
            .filter(|id| !self.tombstones.contains(id))
            .collect();
        ids.sort_unstable();
        ids
    }

    fn next_name(&mut self, prefix: &str) -> (String, u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        (format!("{prefix}-{seq}"), seq)
    }

    /// Adds vectors under the given ids (which must be new). All are checked
    /// before anything changes. Returns the change set writing their chunk;
    /// sealing is left to [`Index::maintain`].
    pub fn add(&mut self, ids: &[u64], vectors: &[Vec<f32>]) -> Result<ChangeSet> {
        if ids.len() != vectors.len() {
            return Err(Error::BadInput(format!(
                "{} ids for {} vectors",
                ids.len(),
                vectors.len()
            )));
        }
        if ids.is_empty() {
            return Err(Error::BadInput("no vectors to add".into()));
        }
        self.check_new_ids(ids)?;
        let mut data = Vec::with_capacity(ids.len() * self.dim);
        for (i, v) in vectors.iter().enumerate() {
            push_unit(v, self.dim, &mut data)
                .map_err(|why| Error::BadInput(format!("vector {i} {why}")))?;
        }
        let (name, _) = self.next_name("grow");
        let first_new = self.chunks.len();
        self.chunks.push(SegmentEntry {
            name,
            kind: SegmentKind::Growing,
            vectors: ids.len() as u64,
            bytes: 0,
        });
        self.growing.ids.extend_from_slice(ids);
        self.growing_ids.extend(ids.iter().copied());
        if self.growing.data.is_empty() {
            self.growing.data = data;
        } else {
            self.growing.data.extend(data);
        }
        // Chunks written before this call that a merge replaced are deleted;
        // the new chunk itself is never written when it is merged at once.
        let mut cs = ChangeSet::new();
        let first_new = self.merge_chunks(first_new, &mut cs);
        let mut start: usize = self.chunks[..first_new]
            .iter()
            .map(|c| c.vectors as usize)
            .sum();
        for i in first_new..self.chunks.len() {
            let end = start + self.chunks[i].vectors as usize;
            let bytes = segment::encode_flat_parts(
                segment::KIND_GROWING_CHUNK,
                &self.fingerprint,
                self.dim,
                &self.growing.ids[start..end],
                &self.growing.data[start * self.dim..end * self.dim],
            )?;
            self.chunks[i].bytes = bytes.len() as u64;
            cs.put(self.chunks[i].name.clone(), bytes);
            start = end;
        }
        Ok(cs)
    }

    /// An error unless every id is new: neither stored nor given twice.
    fn check_new_ids(&self, ids: &[u64]) -> Result<()> {
        let mut batch = HashSet::with_capacity(ids.len());
        for &id in ids {
            if !batch.insert(id) {
                return Err(Error::BadInput(format!("vector id {id} given twice")));
            }
            if self.stores(id) {
                return Err(Error::BadInput(format!("vector id {id} is already stored")));
            }
        }
        Ok(())
    }

    /// Merges the growing segment's newest chunks by size tiers, as sealed
    /// segments are merged: `merge_factor` adjacent chunks of one tier become one
    /// chunk. Without this the manifest would list one chunk per insert, and
    /// every insert would rewrite a manifest that grows with the growing segment
    /// (the more so while a background build lets it grow past capacity); with
    /// it, a manifest lists O(log n) chunks and each vector is rewritten
    /// O(log n) times. Chunks held by a seal job out of the index are left
    /// alone. `unwritten` is the first chunk not yet stored; returns the first
    /// one that still is not (merged chunks are new).
    fn merge_chunks(&mut self, mut unwritten: usize, cs: &mut ChangeSet) -> usize {
        loop {
            let free = &self.chunks[self.frozen_chunks..];
            let Some(span) = policy::chunk_fold(free, self.config.merge_factor) else {
                return unwritten;
            };
            let at = self.chunks.len() - span;
            let vectors = self.chunks[at..].iter().map(|c| c.vectors).sum();
            for (j, old) in self.chunks.drain(at..).enumerate() {
                if at + j < unwritten {
                    cs.delete(old.name);
                }
            }
            unwritten = unwritten.min(at);
            let (name, _) = self.next_name("grow");
            self.chunks.push(SegmentEntry {
                name,
                kind: SegmentKind::Growing,
                vectors,
                bytes: 0,
            });
        }
    }

    fn tombstone(&mut self, id: u64) -> bool {
        if self.tombstones.contains(&id) {
            return false;
        }
        if let Some(s) = self.sealed.iter_mut().find(|s| s.contains(id)) {
            s.deleted += 1;
        } else if !self.growing_ids.contains(&id) {
            return false;
        }
        self.tombstones.insert(id);
        true
    }

    /// Deletes ids (tombstones them). Unknown or already deleted ids are ignored;
    /// returns how many were deleted now. Persisted through [`Index::manifest`].
    pub fn remove(&mut self, ids: &[u64]) -> usize {
        ids.iter().filter(|&&id| self.tombstone(id)).count()
    }

    /// Changes the `ef` every sealed graph is searched with by default, and the
    /// one future graphs are built with. The `ef` is stored with each graph, so a
    /// caller that persists the index must write its blobs again for it to
    /// outlive a reload; [`Index::search_ef`] picks one per query instead.
    pub fn set_ef_search(&mut self, ef: usize) -> Result<()> {
        if ef < 1 {
            return Err(Error::BadInput(format!(
                "index ef_search must be at least 1, got {ef}"
            )));
        }
        for s in &mut self.sealed {
            s.seg.set_ef_search(ef);
        }
        self.config.ef_search = ef;
        Ok(())
    }

    /// The `k` live vectors most similar to `query` (HNSW for sealed segments),
    /// best first. Wrong dimension, non-finite or zero queries are `BadInput`.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        let mut out = Vec::with_capacity(k.min(4096));
        self.search_into(query, k, None, &mut out)?;
        Ok(out)
    }

    /// Like [`Index::search`] with HNSW's `ef` (the candidate list's length, the
    /// recall/speed trade-off) chosen for this query; `ef` below `k` is raised to `k`.
    pub fn search_ef(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<Hit>> {
        let mut out = Vec::with_capacity(k.min(4096));
        self.search_into(query, k, Some(ef), &mut out)?;
        Ok(out)
    }

    /// Like [`Index::search_ef`] (`ef` `None`: each graph's own), into `out`
    /// (cleared first). A caller that keeps `out` from one query to the next
    /// searches without allocating: everything else the search needs is kept
    /// per thread.
    pub fn search_into(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        out: &mut Vec<Hit>,
    ) -> Result<()> {
        if ef == Some(0) {
            return Err(Error::BadInput("ef must be at least 1, got 0".into()));
        }
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.search_with(query, k, ef, false, &mut scratch, out),
            Err(_) => self.search_with(query, k, ef, false, &mut Scratch::default(), out),
        })
    }

    /// Like [`Index::search`], by brute force over every vector: the ground truth
    /// that recall is measured against.
    pub fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        let mut out = Vec::new();
        self.search_with(query, k, None, true, &mut Scratch::default(), &mut out)?;
        Ok(out)
    }

    fn search_with(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        exact: bool,
        scratch: &mut Scratch,
        out: &mut Vec<Hit>,
    ) -> Result<()> {
        out.clear();
        let Scratch {
            query: q,
            codes,
            found,
            top,
        } = scratch;
        checked_unit_into(query, self.dim, "query", q)?;
        if k == 0 {
            return Ok(());
        }
        codes.clear();
        if self.sealed.iter().any(|s| s.seg.is_quantized()) {
            codes.resize(self.dim, 0);
            distance::quantize_i8(q, codes);
        }
        let query = segment::Query { unit: q, codes };
        top.reset(k);
        self.growing.scan(self.dim, q, &self.tombstones, top);
        for s in &self.sealed {
            if s.live() > 0 {
                s.seg
                    .search(&query, k, ef, exact, &self.tombstones, found, top);
            }
        }
        top.drain_into(out);
        Ok(())
    }

    /// The segments, sealed first, then the growing one (if it holds anything).
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let mut out: Vec<SegmentInfo> = self
            .sealed
            .iter()
            .map(|s| SegmentInfo {
                name: s.entry.name.clone(),
                kind: s.seg.kind(),
                vectors: s.seg.len(),
            })
            .collect();
        if !self.growing.ids.is_empty() {
            out.push(SegmentInfo {
                name: "growing".into(),
                kind: SegmentKind::Growing,
                vectors: self.growing.len(),
            });
        }
        out
    }

    /// Quantises every sealed float graph to int8 codes now: `quantize_to(Int8)`.
    pub fn quantize(&mut self) -> Result<ChangeSet> {
        self.quantize_to(Quantization::Int8)
    }

    /// Stores every sealed graph as `mode` says now (each changed one gets a
    /// new blob) and makes later seals and merges do the same: for a gallery
    /// built with float graphs, or imported, that must fit less memory.
    /// `Int8Residual` graphs can drop their residual (`Int8`), but float
    /// vectors cannot be had back from codes, nor a residual from int8 codes
    /// alone: those are refused, as is any change while a maintenance job is
    /// out; a refused call changes nothing.
    pub fn quantize_to(&mut self, mode: Quantization) -> Result<ChangeSet> {
        if let Some(job) = &self.job {
            return Err(Error::BadInput(format!(
                "segment {job} is being built; quantise once it is in"
            )));
        }
        for s in &self.sealed {
            if let Sealed::Hnsw(graph) = &s.seg
                && !graph.can_store_as(mode)
            {
                return Err(Error::BadInput(format!(
                    "segment {} is stored as {}; it cannot become {} (what its codes \
                     rounded off is not kept): add the vectors again to a new index",
                    s.entry.name,
                    graph.quantization().name(),
                    mode.name()
                )));
            }
        }
        self.config.quantization = mode;
        let mut cs = ChangeSet::new();
        for i in 0..self.sealed.len() {
            let Sealed::Hnsw(graph) = &mut self.sealed[i].seg else {
                continue;
            };
            if graph.quantization() == mode {
                continue;
            }
            graph.quantize(mode).map_err(Error::Internal)?;
            let (name, _) = self.next_name("seg");
            let s = &mut self.sealed[i];
            let bytes = s.seg.encode(&self.fingerprint, self.dim)?;
            cs.delete(std::mem::replace(&mut s.entry.name, name.clone()));
            s.entry.kind = s.seg.kind();
            s.entry.bytes = bytes.len() as u64;
            cs.put(name, bytes);
        }
        Ok(cs)
    }

    /// Bytes the index holds in memory for its vectors, graph links and ids
    /// (what quantisation shrinks); not counting the tombstone set and small
    /// bookkeeping.
    pub fn memory_bytes(&self) -> u64 {
        let growing = self.growing.data.len() * 4 + self.growing.ids.len() * 8;
        let sealed: usize = self
            .sealed
            .iter()
            .map(|s| match &s.seg {
                Sealed::Flat(f) => f.data.len() * 4 + f.ids.len() * 8,
                Sealed::Hnsw(graph) => graph.heap_bytes(),
            } + s.sorted_ids.len() * 8)
            .sum();
        (growing + sealed) as u64
    }

    /// Total bytes of the index's blobs.
    pub fn bytes(&self) -> u64 {
        self.sealed.iter().map(|s| s.entry.bytes).sum::<u64>()
            + self.chunks.iter().map(|c| c.bytes).sum::<u64>()
    }

    /// Every blob of the current state, encoded again (for export). The bytes are
    /// identical to those written when the blobs were created.
    pub fn blobs(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::with_capacity(self.sealed.len() + self.chunks.len());
        for s in &self.sealed {
            out.push((
                s.entry.name.clone(),
                s.seg.encode(&self.fingerprint, self.dim)?,
            ));
        }
        let mut start = 0usize;
        for c in &self.chunks {
            let end = start + c.vectors as usize;
            let bytes = segment::encode_flat_parts(
                segment::KIND_GROWING_CHUNK,
                &self.fingerprint,
                self.dim,
                &self.growing.ids[start..end],
                &self.growing.data[start * self.dim..end * self.dim],
            )?;
            out.push((c.name.clone(), bytes));
            start = end;
        }
        Ok(out)
    }
}

/// The sequence number in a blob name `prefix-<seq>` (0 when there is none).
fn seq_of(name: &str) -> u64 {
    name.rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod test_data;
#[cfg(test)]
mod tests;
