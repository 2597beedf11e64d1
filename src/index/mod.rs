//! The log-structured vector index.
//!
//! instant-distance builds a HNSW graph once and cannot insert or delete, so the
//! index is log-structured, the way Lucene, Qdrant and Milvus are:
//!
//! - a **growing segment**: a flat array searched exactly. [`Index::add`] appends
//!   to it and returns a small *chunk* blob (`grow-<seq>`) holding just the added
//!   vectors, so an insert is durable as soon as that chunk and the manifest are
//!   stored;
//! - **sealed segments** (`seg-<seq>`): when the growing segment reaches
//!   [`IndexConfig::growing_capacity`] it is sealed into an instant-distance HNSW
//!   graph; sealed segments are merged by size tiers (tier *t* holds segments of
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

pub mod distance;
pub(crate) mod graph;
pub(crate) mod segment;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use rustc_hash::FxHashSet;

use serde::{Deserialize, Serialize};

use crate::blob::{BlobRead, ChangeSet, Damage};
use crate::{Error, Result};
use segment::{Flat, Sealed, TopK};

pub use segment::FLAT_MAX;

/// Growing chunks past which the newest are folded into one even when their
/// sizes fall in different tiers.
const MAX_FREE_CHUNKS: usize = 64;

/// Parameters of the index. Stored in the gallery manifest; fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IndexConfig {
    /// Vectors in the growing segment before it is sealed into a graph.
    pub growing_capacity: usize,
    /// HNSW `efConstruction`.
    pub ef_construction: usize,
    /// HNSW `ef` at query time (baked into each sealed graph when it is built;
    /// [`Index::set_ef_search`] changes it afterwards).
    pub ef_search: usize,
    /// How a new node's neighbours are chosen while a graph is built.
    pub neighbors: NeighborSelection,
    /// How many segments of one size tier merge into one of the next.
    pub merge_factor: usize,
    /// Seed of the graph builder (each segment uses `seed + its sequence number`),
    /// so that builds are reproducible.
    pub seed: u64,
    /// How sealed graphs store their vectors.
    pub quantization: Quantization,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            growing_capacity: 1024,
            ef_construction: 100,
            ef_search: 64,
            neighbors: NeighborSelection::default(),
            merge_factor: 4,
            seed: 0x6d65_7472_6963_616e, // "metrican"
            quantization: Quantization::None,
        }
    }
}

/// How a node's graph neighbours are chosen while a HNSW graph is built
/// (instant-distance's `Builder::select_heuristic`). Only the build reads it: a
/// graph is searched the same way whichever built it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NeighborSelection {
    /// instant-distance's default: the HNSW paper's diversity heuristic, then the
    /// pruned candidates fill the rest of the list (`keep_pruned`), so every node
    /// has 2M = 64 layer-0 links. The heuristic is re-run on a neighbour's list
    /// each time a new node links to it.
    #[default]
    DiverseFill,
    /// The diversity heuristic alone (what hnswlib does): fewer, more useful
    /// links, so both building and searching visit fewer nodes.
    Diverse,
    /// The nearest candidates, no heuristic: the cheapest build, the weakest
    /// graph on clustered data.
    Nearest,
}

impl NeighborSelection {
    pub(crate) fn heuristic(self) -> Option<instant_distance::Heuristic> {
        match self {
            NeighborSelection::DiverseFill => Some(instant_distance::Heuristic {
                extend_candidates: false,
                keep_pruned: true,
            }),
            NeighborSelection::Diverse => Some(instant_distance::Heuristic {
                extend_candidates: false,
                keep_pruned: false,
            }),
            NeighborSelection::Nearest => None,
        }
    }
}

impl std::str::FromStr for NeighborSelection {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "diverse-fill" => Ok(NeighborSelection::DiverseFill),
            "diverse" => Ok(NeighborSelection::Diverse),
            "nearest" => Ok(NeighborSelection::Nearest),
            other => Err(Error::BadInput(format!(
                "neighbour selection {other:?}: expected diverse-fill, diverse or nearest"
            ))),
        }
    }
}

/// How a sealed graph stores its vectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quantization {
    /// `f32`: 4 bytes a dimension.
    #[default]
    None,
    /// Scalar quantisation: one `i8` a dimension plus one `f32` scale a vector
    /// (132 bytes instead of 512 at dimension 128). The graph walk runs on the
    /// codes and its candidates are re-ranked with the float query; the float
    /// vectors are not kept. What it costs in recall is in the README's
    /// benchmark. The growing segment and flat segments stay `f32`.
    Int8,
}

impl std::str::FromStr for Quantization {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" | "f32" => Ok(Quantization::None),
            "int8" => Ok(Quantization::Int8),
            other => Err(Error::BadInput(format!(
                "quantization {other:?}: expected none or int8"
            ))),
        }
    }
}

impl IndexConfig {
    /// Checks that every parameter is usable.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: usize, min: usize| {
            Err(Error::BadInput(format!(
                "index {what} must be at least {min}, got {v}"
            )))
        };
        if self.growing_capacity < 1 {
            return bad("growing_capacity", self.growing_capacity, 1);
        }
        if self.growing_capacity > 1 << 24 {
            return Err(Error::BadInput(format!(
                "index growing_capacity {} is too large (at most {})",
                self.growing_capacity,
                1 << 24
            )));
        }
        if self.ef_construction < 1 {
            return bad("ef_construction", self.ef_construction, 1);
        }
        if self.ef_search < 1 {
            return bad("ef_search", self.ef_search, 1);
        }
        if self.merge_factor < 2 {
            return bad("merge_factor", self.merge_factor, 2);
        }
        Ok(())
    }

    /// The size tier of a segment with `count` vectors: how many times
    /// `merge_factor` fits in `count / growing_capacity`.
    pub fn tier(&self, count: usize) -> u32 {
        size_tier(count / self.growing_capacity.max(1), self.merge_factor)
    }
}

/// How many times `factor` (at least 2) fits in `count`: the size tier that
/// log-structured merging groups segments, growing chunks and class pages by.
pub(crate) fn size_tier(count: usize, factor: usize) -> u32 {
    let factor = factor.max(2);
    let (mut x, mut t) = (count, 0);
    while x >= factor {
        x /= factor;
        t += 1;
    }
    t
}

/// One search result: a vector id and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hit {
    pub id: u64,
    pub score: f32,
}

/// The kind of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentKind {
    /// The growing segment (or one of its persisted chunks): exact scan.
    Growing,
    /// A sealed segment too small for a graph: exact scan.
    Flat,
    /// A sealed HNSW graph.
    Hnsw,
    /// A sealed HNSW graph whose vectors are int8 codes.
    #[serde(rename = "hnsw-int8")]
    HnswInt8,
}

impl std::fmt::Display for SegmentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SegmentKind::Growing => "growing",
            SegmentKind::Flat => "flat",
            SegmentKind::Hnsw => "hnsw",
            SegmentKind::HnswInt8 => "hnsw-int8",
        })
    }
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

/// A blob of the index as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    pub name: String,
    pub kind: SegmentKind,
    pub vectors: u64,
    pub bytes: u64,
}

/// The index's part of the gallery manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexManifest {
    pub config: IndexConfig,
    /// Next blob sequence number (blob names are never reused).
    pub next_seq: u64,
    /// Sealed segments.
    pub segments: Vec<SegmentEntry>,
    /// Chunks of the growing segment, in insertion order.
    pub growing: Vec<SegmentEntry>,
    /// Deleted ids still present in some segment, ascending.
    pub tombstones: Vec<u64>,
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

/// A step of index maintenance (sealing the growing segment, or merging or
/// compacting sealed ones) taken out of the index by
/// [`Index::start_maintenance`]: the input vectors and what the result replaces.
pub struct MaintenanceJob {
    name: String,
    seed: u64,
    input: Flat,
    /// Tombstoned ids left out of the input; their tombstones go with it.
    dropped: Vec<u64>,
    replaces: Vec<String>,
    /// Vectors taken from the front of the growing segment (0 for a merge).
    growing: usize,
    dim: usize,
    config: IndexConfig,
    fingerprint: String,
}

/// What [`MaintenanceJob::build`] made, for [`Index::finish_maintenance`].
pub struct BuiltSegment {
    name: String,
    /// `None` when every input vector was deleted.
    seg: Option<Sealed>,
    /// The segment's ids, sorted here rather than in the swap: at a million
    /// vectors the sort takes tens of milliseconds, and the swap holds the index.
    sorted_ids: Vec<u64>,
    bytes: Vec<u8>,
    dropped: Vec<u64>,
    replaces: Vec<String>,
    growing: usize,
}

impl MaintenanceJob {
    /// Vectors the new segment will hold.
    pub fn len(&self) -> usize {
        self.input.len()
    }

    /// Whether every input vector was deleted (the job then only drops blobs).
    pub fn is_empty(&self) -> bool {
        self.input.len() == 0
    }

    /// Builds and encodes the segment: the slow part, which needs nothing
    /// from the index.
    pub fn build(self) -> Result<BuiltSegment> {
        let (seg, bytes) = if self.input.len() == 0 {
            (None, Vec::new())
        } else {
            let seg = Sealed::build(self.input, self.dim, &self.config, self.seed)?;
            let bytes = seg.encode(&self.fingerprint, self.dim)?;
            (Some(seg), bytes)
        };
        let sorted_ids = seg.as_ref().map(Sealed::sorted_ids).unwrap_or_default();
        Ok(BuiltSegment {
            name: self.name,
            seg,
            sorted_ids,
            bytes,
            dropped: self.dropped,
            replaces: self.replaces,
            growing: self.growing,
        })
    }
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

/// Checks a vector's length and values; returns it unit-length.
fn checked_unit(v: &[f32], dim: usize, what: &str) -> Result<Vec<f32>> {
    if v.len() != dim {
        return Err(Error::BadInput(format!(
            "{what} has {} values, the index dimension is {dim}",
            v.len()
        )));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::BadInput(format!(
            "{what} has a non-finite value ({}) at position {i}",
            v[i]
        )));
    }
    // Norm in f64: a vector of huge-but-finite values must not overflow to inf.
    let n2: f64 = v.iter().map(|&x| x as f64 * x as f64).sum();
    if n2 == 0.0 || !n2.is_finite() {
        return Err(Error::BadInput(format!(
            "{what} has zero length and no direction"
        )));
    }
    if (n2 - 1.0).abs() <= 1e-6 {
        return Ok(v.to_vec());
    }
    let inv = 1.0 / n2.sqrt();
    Ok(v.iter().map(|&x| (x as f64 * inv) as f32).collect())
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
            match index.load_sealed(entry, blobs) {
                Ok(s) => index.sealed.push(s),
                Err(e) => handle(&entry.name, e, &mut damage)?,
            }
        }
        for entry in &manifest.growing {
            max_seq = max_seq.max(seq_of(&entry.name));
            match index.load_chunk(entry, blobs, &chunk_ids) {
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
        let (fp, dim, flat) = segment::decode_flat(&entry.name, segment::KIND_GROW, &bytes)?;
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
        let mut batch = HashSet::with_capacity(ids.len());
        for &id in ids {
            if !batch.insert(id) {
                return Err(Error::BadInput(format!("vector id {id} given twice")));
            }
            if self.stores(id) {
                return Err(Error::BadInput(format!("vector id {id} is already stored")));
            }
        }
        let mut data = Vec::with_capacity(ids.len() * self.dim);
        for (i, v) in vectors.iter().enumerate() {
            data.extend(checked_unit(v, self.dim, &format!("vector {i}"))?);
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
        self.growing.data.extend(data);
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
                segment::KIND_GROW,
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
        let mf = self.config.merge_factor.max(2);
        let tier = |v: u64| size_tier(v as usize, mf);
        loop {
            let free = &self.chunks[self.frozen_chunks..];
            let n = free.len();
            let span = if n >= mf
                && free[n - mf..]
                    .iter()
                    .all(|c| tier(c.vectors) == tier(free[n - 1].vectors))
            {
                mf
            } else if n > MAX_FREE_CHUNKS {
                // Sizes that keep missing each other's tier: fold them all.
                n
            } else {
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

    /// Indices of `merge_factor` segments of the lowest tier that has that many.
    fn merge_plan(&self) -> Option<Vec<usize>> {
        let mf = self.config.merge_factor;
        let mut by_tier: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
        for (i, s) in self.sealed.iter().enumerate() {
            by_tier
                .entry(self.config.tier(s.live()))
                .or_default()
                .push(i);
        }
        let (_, mut group) = by_tier.into_iter().find(|(_, g)| g.len() >= mf)?;
        group.sort_by_key(|&i| (self.sealed[i].live(), i));
        group.truncate(mf);
        Some(group)
    }

    /// A segment more than half deleted.
    fn compaction_target(&self) -> Option<usize> {
        self.sealed
            .iter()
            .position(|s| s.deleted > 0 && s.deleted * 2 > s.seg.len())
    }

    /// Whether [`Index::maintain`] has work: a full growing segment, a tier with
    /// `merge_factor` segments, or a segment more than half deleted.
    pub fn needs_maintenance(&self) -> bool {
        self.growing.len() >= self.config.growing_capacity
            || self.merge_plan().is_some()
            || self.compaction_target().is_some()
    }

    /// Seals a full growing segment, merges tiers and compacts mostly deleted
    /// segments, until nothing is left to do. `None` when there was nothing.
    pub fn maintain(&mut self) -> Result<Option<ChangeSet>> {
        let mut cs = ChangeSet::new();
        let mut did = false;
        while let Some(job) = self.start_maintenance() {
            cs.extend(self.finish_maintenance(job.build()?)?);
            did = true;
        }
        Ok(did.then_some(cs))
    }

    /// Seals the growing segment now, whatever its size (e.g. before a bulk
    /// export), then does any merging that follows. `None` when it was empty.
    pub fn seal(&mut self) -> Result<Option<ChangeSet>> {
        let Some(job) = self.start_seal()? else {
            return Ok(None);
        };
        let mut cs = self.finish_maintenance(job.build()?)?;
        if let Some(more) = self.maintain()? {
            cs.extend(more);
        }
        Ok(Some(cs))
    }

    /// Takes sealing the growing segment, whatever its size, out of the index
    /// as a job (see [`Index::start_maintenance`]). `None` when it is empty; an
    /// error when a job is already out.
    pub fn start_seal(&mut self) -> Result<Option<MaintenanceJob>> {
        if self.job.is_some() {
            return Err(Error::BadInput(
                "index maintenance is already under way".into(),
            ));
        }
        Ok((!self.chunks.is_empty()).then(|| self.seal_job()))
    }

    /// Takes the next step of maintenance out of the index, for
    /// [`MaintenanceJob::build`] to run without it (on another thread: the
    /// graph build is the slow part, and searches and inserts go on
    /// meanwhile), and [`Index::finish_maintenance`] to swap in. `None` when
    /// there is nothing to do, or a job is already out.
    pub fn start_maintenance(&mut self) -> Option<MaintenanceJob> {
        if self.job.is_some() {
            return None;
        }
        if self.growing.len() >= self.config.growing_capacity {
            return Some(self.seal_job());
        }
        let group = self
            .merge_plan()
            .or_else(|| self.compaction_target().map(|i| vec![i]))?;
        let mut group = group;
        // Oldest first, so a rebuild of the same input is reproducible.
        group.sort_unstable();
        let (input, replaces) = self.gather(&group);
        Some(self.job_over(input, replaces, 0))
    }

    /// The vectors of the sealed segments `parts`, in that order, and their
    /// blob names: the input of a job that replaces them.
    fn gather(&self, parts: &[usize]) -> (Flat, Vec<String>) {
        let mut input = Flat::default();
        let mut replaces = Vec::with_capacity(parts.len() + 1);
        for &i in parts {
            let part = &self.sealed[i];
            part.seg.for_each(self.dim, |id, v| {
                input.ids.push(id);
                input.data.extend_from_slice(v);
            });
            replaces.push(part.entry.name.clone());
        }
        (input, replaces)
    }

    /// Takes rebuilding the whole index (every sealed segment and the growing
    /// segment, less deleted vectors) into one graph out of the index as a
    /// job, like [`Index::start_maintenance`]. After a bulk load, one graph
    /// searches faster than the tiers' several, and is built once instead of
    /// once per tier. `None` when the index is already one segment with
    /// nothing deleted; an error when a job is already out.
    pub fn start_optimize(&mut self) -> Result<Option<MaintenanceJob>> {
        if let Some(job) = &self.job {
            return Err(Error::BadInput(format!(
                "segment {job} is being built; optimise once it is in"
            )));
        }
        let parts = self.sealed.len() + usize::from(!self.chunks.is_empty());
        let deleted = self.sealed.iter().any(|s| s.deleted > 0);
        if parts == 0 || (parts == 1 && self.chunks.is_empty() && !deleted) {
            return Ok(None);
        }
        // Oldest first (names carry a sequence number), so the input order,
        // and with the seed the graph, is the same on every run.
        let mut order: Vec<usize> = (0..self.sealed.len()).collect();
        order.sort_by_key(|&i| seq_of(&self.sealed[i].entry.name));
        let (mut input, mut replaces) = self.gather(&order);
        replaces.extend(self.chunks.iter().map(|c| c.name.clone()));
        self.frozen_chunks = self.chunks.len();
        input.ids.extend_from_slice(&self.growing.ids);
        input.data.extend_from_slice(&self.growing.data);
        let growing = self.growing.len();
        Ok(Some(self.job_over(input, replaces, growing)))
    }

    /// Rebuilds the whole index into one graph now (see
    /// [`Index::start_optimize`]). `None` when there was nothing to do.
    pub fn optimize(&mut self) -> Result<Option<ChangeSet>> {
        let Some(job) = self.start_optimize()? else {
            return Ok(None);
        };
        self.finish_maintenance(job.build()?).map(Some)
    }

    fn seal_job(&mut self) -> MaintenanceJob {
        let replaces = self.chunks.iter().map(|c| c.name.clone()).collect();
        self.frozen_chunks = self.chunks.len();
        let input = Flat {
            ids: self.growing.ids.clone(),
            data: self.growing.data.clone(),
        };
        let sealed = input.len();
        self.job_over(input, replaces, sealed)
    }

    /// A job rebuilding `input` (less its tombstoned vectors) into one segment
    /// that replaces the blobs `replaces` (`growing` of them vectors from the
    /// front of the growing segment).
    fn job_over(&mut self, input: Flat, replaces: Vec<String>, growing: usize) -> MaintenanceJob {
        let mut live = Flat::default();
        let mut dropped = Vec::new();
        for (id, v) in input.iter(self.dim) {
            if self.tombstones.contains(&id) {
                dropped.push(id);
            } else {
                live.ids.push(id);
                live.data.extend_from_slice(v);
            }
        }
        let (name, seq) = self.next_name("seg");
        self.job = Some(name.clone());
        MaintenanceJob {
            name,
            seed: self.config.seed.wrapping_add(seq),
            input: live,
            dropped,
            replaces,
            growing,
            dim: self.dim,
            config: self.config.clone(),
            fingerprint: self.fingerprint.clone(),
        }
    }

    /// Swaps a built segment in for what its job replaces. Vectors deleted
    /// while it was built stay tombstoned in the new segment.
    pub fn finish_maintenance(&mut self, built: BuiltSegment) -> Result<ChangeSet> {
        if self.job.as_deref() != Some(built.name.as_str()) {
            return Err(Error::BadInput(format!(
                "segment {} was not built for this index's maintenance job",
                built.name
            )));
        }
        self.job = None;
        let mut cs = ChangeSet::new();
        // A seal replaces chunks, a merge sealed segments, an optimise both.
        if built.growing > 0 {
            let n = built.growing;
            for id in self.growing.ids.drain(..n) {
                self.growing_ids.remove(&id);
            }
            self.growing.data.drain(..n * self.dim);
            self.chunks.retain(|c| !built.replaces.contains(&c.name));
            self.frozen_chunks = 0;
        }
        self.sealed
            .retain(|s| !built.replaces.contains(&s.entry.name));
        for name in built.replaces {
            cs.delete(name);
        }
        for id in &built.dropped {
            self.tombstones.remove(id);
        }
        let Some(seg) = built.seg else {
            return Ok(cs);
        };
        let sorted_ids = built.sorted_ids;
        let deleted = self
            .tombstones
            .iter()
            .filter(|id| sorted_ids.binary_search(id).is_ok())
            .count();
        let entry = SegmentEntry {
            name: built.name.clone(),
            kind: seg.kind(),
            vectors: seg.len() as u64,
            bytes: built.bytes.len() as u64,
        };
        cs.put(built.name, built.bytes);
        self.sealed.push(SealedEntry {
            entry,
            seg,
            sorted_ids,
            deleted,
        });
        Ok(cs)
    }

    fn query(&self, query: &[f32]) -> Result<Vec<f32>> {
        checked_unit(query, self.dim, "query")
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
        self.search_impl(query, k, None, false)
    }

    /// Like [`Index::search`] with HNSW's `ef` (the candidate list's length, the
    /// recall/speed trade-off) chosen for this query; `ef` below `k` is raised to `k`.
    pub fn search_ef(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<Hit>> {
        if ef < 1 {
            return Err(Error::BadInput(format!("ef must be at least 1, got {ef}")));
        }
        self.search_impl(query, k, Some(ef), false)
    }

    /// Like [`Index::search`], by brute force over every vector: the ground truth
    /// that recall is measured against.
    pub fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        self.search_impl(query, k, None, true)
    }

    fn search_impl(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        exact: bool,
    ) -> Result<Vec<Hit>> {
        let q = self.query(query)?;
        let mut top = TopK::new(k);
        if k == 0 {
            return Ok(Vec::new());
        }
        self.growing.scan(self.dim, &q, &self.tombstones, &mut top);
        for s in &self.sealed {
            if s.live() > 0 {
                s.seg
                    .search(self.dim, &q, k, ef, exact, &self.tombstones, &mut top);
            }
        }
        Ok(top.into_hits())
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

    /// Quantises every sealed float graph to int8 codes now (each gets a new
    /// blob) and makes later seals and merges quantised too: for a gallery
    /// built with float graphs, or imported, that must fit less memory. Float
    /// vectors cannot be had back from codes, so there is no way back but
    /// re-adding the vectors. Refused while a maintenance job is out.
    pub fn quantize(&mut self) -> Result<ChangeSet> {
        if let Some(job) = &self.job {
            return Err(Error::BadInput(format!(
                "segment {job} is being built; quantise once it is in"
            )));
        }
        self.config.quantization = Quantization::Int8;
        let mut cs = ChangeSet::new();
        for i in 0..self.sealed.len() {
            let Sealed::Hnsw(graph) = &mut self.sealed[i].seg else {
                continue;
            };
            if graph.is_quantized() {
                continue;
            }
            graph.quantize();
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
                segment::KIND_GROW,
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
mod tests;
