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
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Blobs(HashMap<String, Vec<u8>>);

    impl BlobRead for Blobs {
        fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
            Ok(self.0.get(name).cloned())
        }
    }

    impl Blobs {
        fn new() -> Self {
            Blobs(HashMap::new())
        }
        fn apply(&mut self, cs: ChangeSet) {
            for (n, b) in cs.puts {
                self.0.insert(n, b);
            }
            for n in cs.deletes {
                self.0.remove(&n);
            }
        }
    }

    /// Random unit vectors (xorshift + Box–Muller, so directions are uniform).
    pub(crate) fn random_unit(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dim)
                    .map(|_| {
                        let (u1, u2) = (next(), next());
                        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
                    })
                    .collect();
                let n = distance::norm_squared(&v).sqrt();
                v.into_iter().map(|x| x / n).collect()
            })
            .collect()
    }

    fn small_config() -> IndexConfig {
        IndexConfig {
            growing_capacity: 100,
            merge_factor: 2,
            ..Default::default()
        }
    }

    fn fill(
        index: &mut Index,
        blobs: &mut Blobs,
        vectors: &[Vec<f32>],
        first_id: u64,
        batch: usize,
    ) {
        for (b, chunk) in vectors.chunks(batch).enumerate() {
            let ids: Vec<u64> = (0..chunk.len())
                .map(|i| first_id + (b * batch + i) as u64)
                .collect();
            blobs.apply(index.add(&ids, chunk).unwrap());
            if let Some(cs) = index.maintain().unwrap() {
                blobs.apply(cs);
            }
        }
    }

    fn ids(hits: &[Hit]) -> Vec<u64> {
        hits.iter().map(|h| h.id).collect()
    }

    #[test]
    fn tiers() {
        let c = IndexConfig::default();
        assert_eq!(SegmentKind::Hnsw.to_string(), "hnsw");
        assert_eq!(
            serde_json::to_string(&SegmentKind::Growing).unwrap(),
            "\"growing\""
        );
        assert_eq!(c.tier(0), 0);
        assert_eq!(c.tier(1024), 0);
        assert_eq!(c.tier(4 * 1024 - 1), 0);
        assert_eq!(c.tier(4 * 1024), 1);
        assert_eq!(c.tier(16 * 1024), 2);
        assert_eq!(c.tier(50_000), 2);
        assert_eq!(c.tier(100_000), 3);
        assert_eq!(c.tier(65_536), 3);
    }

    #[test]
    fn contains_all_agrees_with_contains_across_segments() {
        let mut index = Index::new(8, "fp", small_config()).unwrap();
        let mut blobs = Blobs::new();
        // Ids with gaps, spread over several sealed segments and the growing one.
        let vectors = random_unit(450, 8, 21);
        fill(&mut index, &mut blobs, &vectors, 1, 40);
        assert!(index.sealed.len() >= 2 && !index.growing_ids.is_empty());
        index.remove(&[7, 300, 449]);
        let all: Vec<u64> = (1..=450).collect();
        let live: Vec<u64> = all
            .iter()
            .copied()
            .filter(|&id| index.contains(id))
            .collect();
        assert_eq!(live.len(), 447);
        assert!(index.contains_all(live.iter().copied()));
        assert!(index.contains_all([]));
        // Sparse and dense runs, each with one id that is not live.
        for missing in [0, 7, 300, 449, 451, 10_000] {
            for stride in [1, 3, 97] {
                let mut ids: Vec<u64> = live.iter().copied().step_by(stride).collect();
                ids.push(missing);
                ids.sort_unstable();
                assert!(
                    !index.contains_all(ids.iter().copied()),
                    "{missing} every {stride}"
                );
                ids.retain(|&id| id != missing);
                assert!(
                    index.contains_all(ids.iter().copied()),
                    "without {missing} every {stride}"
                );
            }
        }
    }

    #[test]
    fn config_validation() {
        assert!(IndexConfig::default().validate().is_ok());
        for bad in [
            IndexConfig {
                growing_capacity: 0,
                ..Default::default()
            },
            IndexConfig {
                merge_factor: 1,
                ..Default::default()
            },
            IndexConfig {
                ef_search: 0,
                ..Default::default()
            },
        ] {
            assert!(matches!(bad.validate(), Err(Error::BadInput(_))));
        }
        assert!(Index::new(0, "fp", IndexConfig::default()).is_err());
    }

    #[test]
    fn bad_vectors_are_rejected_and_change_nothing() {
        let mut index = Index::new(4, "fp", IndexConfig::default()).unwrap();
        let good = vec![1.0, 0.0, 0.0, 0.0];
        for (ids, vs) in [
            (vec![1], vec![vec![1.0, 0.0, 0.0]]),
            (vec![1], vec![vec![f32::NAN, 0.0, 0.0, 0.0]]),
            (vec![1], vec![vec![f32::INFINITY, 0.0, 0.0, 0.0]]),
            (vec![1], vec![vec![0.0; 4]]),
            (
                vec![1, 2],
                vec![good.clone(), vec![0.0, f32::NAN, 0.0, 0.0]],
            ),
            (vec![1, 1], vec![good.clone(), good.clone()]),
            (vec![1], vec![]),
            (vec![], vec![]),
        ] {
            assert!(matches!(index.add(&ids, &vs), Err(Error::BadInput(_))));
            assert_eq!(index.stored(), 0);
        }
        assert_eq!(index.max_id(), None);
        index.add(&[1], std::slice::from_ref(&good)).unwrap();
        assert_eq!(index.max_id(), Some(1));
        let err = index.add(&[1], std::slice::from_ref(&good)).unwrap_err();
        assert!(err.to_string().contains("already stored"));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn vectors_are_normalised_and_queries_checked() {
        let mut index = Index::new(2, "fp", IndexConfig::default()).unwrap();
        index.add(&[7], &[vec![3.0, 4.0]]).unwrap();
        let hits = index.search(&[0.6, 0.8], 1).unwrap();
        assert_eq!(hits[0].id, 7);
        assert!((hits[0].score - 1.0).abs() < 1e-6);
        // A non-unit query is normalised too: the score is the cosine.
        let hits = index.search(&[6.0, 8.0], 1).unwrap();
        assert!((hits[0].score - 1.0).abs() < 1e-6);
        let hits = index.search(&[1.0, 0.0], 1).unwrap();
        assert!((hits[0].score - 0.6).abs() < 1e-6);
        for q in [vec![1.0], vec![f32::NAN, 1.0], vec![0.0, 0.0]] {
            assert!(matches!(index.search(&q, 1), Err(Error::BadInput(_))));
        }
        assert!(index.search(&[1.0, 0.0], 0).unwrap().is_empty());
    }

    #[test]
    fn growing_search_is_exact_and_ordered() {
        let mut index = Index::new(8, "fp", IndexConfig::default()).unwrap();
        let vs = random_unit(50, 8, 1);
        let ids: Vec<u64> = (100..150).collect();
        index.add(&ids, &vs).unwrap();
        let q = &random_unit(1, 8, 2)[0];
        let got = index.search(q, 10).unwrap();
        let mut want: Vec<(f32, u64)> = vs
            .iter()
            .zip(&ids)
            .map(|(v, &id)| (distance::dot(q, v), id))
            .collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert_eq!(
            ids_of(&got),
            want[..10].iter().map(|w| w.1).collect::<Vec<_>>()
        );
        assert!(got.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(got, index.search_exact(q, 10).unwrap());
    }

    fn ids_of(h: &[Hit]) -> Vec<u64> {
        ids(h)
    }

    #[test]
    fn sealing_and_tiered_merging() {
        let cfg = IndexConfig {
            growing_capacity: 20,
            merge_factor: 2,
            ..Default::default()
        };
        let mut index = Index::new(4, "fp", cfg).unwrap();
        let mut blobs = Blobs::new();
        let vs = random_unit(300, 4, 3);
        fill(&mut index, &mut blobs, &vs, 0, 5);
        assert_eq!(index.len(), 300);
        assert!(!index.needs_maintenance());
        // capacity 20, factor 2: 15 seals of 20 merge like a binary counter
        // into segments of 160 + 80 + 40 + 20.
        let mut sizes: Vec<usize> = index
            .segments()
            .iter()
            .filter(|s| s.kind != SegmentKind::Growing)
            .map(|s| s.vectors)
            .collect();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![20, 40, 80, 160]);
        let kinds: Vec<SegmentKind> = index.segments().iter().map(|s| s.kind).collect();
        assert_eq!(kinds.iter().filter(|k| **k == SegmentKind::Hnsw).count(), 2);
        assert!(
            index
                .segments()
                .iter()
                .all(|s| s.kind != SegmentKind::Growing)
        );
        // Exactly the manifest's blobs are stored: chunks and merged-away
        // segments were deleted by the change sets.
        let m = index.manifest();
        let mut listed: Vec<&String> = m
            .segments
            .iter()
            .chain(&m.growing)
            .map(|e| &e.name)
            .collect();
        listed.sort();
        let mut stored: Vec<&String> = blobs.0.keys().collect();
        stored.sort();
        assert_eq!(listed, stored);
        // Every vector is still found exactly.
        for (i, v) in vs.iter().enumerate().step_by(7) {
            assert_eq!(index.search_exact(v, 1).unwrap()[0].id, i as u64);
            assert_eq!(index.search(v, 1).unwrap()[0].id, i as u64);
        }
    }

    #[test]
    fn search_recall_against_exact() {
        let dim = 16;
        let cfg = IndexConfig {
            growing_capacity: 300,
            ..Default::default()
        };
        let mut index = Index::new(dim, "fp", cfg).unwrap();
        let mut blobs = Blobs::new();
        let vs = random_unit(650, dim, 4);
        fill(&mut index, &mut blobs, &vs, 0, 50);
        // Two graphs of 300 and a growing segment of 50.
        let kinds: Vec<SegmentKind> = index.segments().iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [SegmentKind::Hnsw, SegmentKind::Hnsw, SegmentKind::Growing]
        );
        let queries = random_unit(50, dim, 5);
        let mut found = 0;
        for q in &queries {
            let approx = index.search(q, 10).unwrap();
            let exact = index.search_exact(q, 10).unwrap();
            assert_eq!(approx.len(), 10);
            let e: HashSet<u64> = ids(&exact).into_iter().collect();
            found += approx.iter().filter(|h| e.contains(&h.id)).count();
        }
        let recall = found as f64 / 500.0;
        assert!(recall > 0.9, "recall@10 = {recall}");
        // Each vector finds itself through the graphs.
        for (i, v) in vs.iter().enumerate().step_by(31) {
            assert_eq!(index.search(v, 1).unwrap()[0].id, i as u64);
        }
    }

    #[test]
    fn set_ef_search_trades_recall_for_every_neighbor_selection() {
        let dim = 16;
        let vs = random_unit(600, dim, 11);
        let ids: Vec<u64> = (0..600).collect();
        let qs = random_unit(40, dim, 12);
        for neighbors in [
            NeighborSelection::DiverseFill,
            NeighborSelection::Diverse,
            NeighborSelection::Nearest,
        ] {
            let cfg = IndexConfig {
                growing_capacity: 600,
                ef_search: 10,
                neighbors,
                ..Default::default()
            };
            let mut index = Index::new(dim, "fp", cfg).unwrap();
            index.add(&ids, &vs).unwrap();
            index.maintain().unwrap().unwrap();
            assert_eq!(index.segments()[0].kind, SegmentKind::Hnsw);
            let recall = |index: &Index| {
                let approx: Vec<Vec<u64>> = qs
                    .iter()
                    .map(|q| ids_of(&index.search(q, 10).unwrap()))
                    .collect();
                let exact: Vec<Vec<u64>> = qs
                    .iter()
                    .map(|q| ids_of(&index.search_exact(q, 10).unwrap()))
                    .collect();
                crate::metrics::mean_recall_at_k(&approx, &exact, 10)
            };
            let low = recall(&index);
            index.set_ef_search(300).unwrap();
            assert_eq!(index.config().ef_search, 300);
            let high = recall(&index);
            assert!(
                high >= low,
                "{neighbors:?}: ef 300 recall {high} < ef 10 {low}"
            );
            assert!(high > 0.95, "{neighbors:?}: recall {high} at ef 300 of 600");
            // The segment is stored with its new ef.
            let (name, bytes) = index.blobs().unwrap().remove(0);
            let (_, _, seg) = Sealed::decode(&name, SegmentKind::Hnsw, &bytes).unwrap();
            assert!(matches!(seg, Sealed::Hnsw(g) if g.ef_search() == 300));
        }
        let mut index = Index::new(dim, "fp", IndexConfig::default()).unwrap();
        assert!(matches!(index.set_ef_search(0), Err(Error::BadInput(_))));
    }

    #[test]
    fn neighbor_selection_defaults_and_parses() {
        let old: IndexConfig = serde_json::from_str(r#"{"ef_search": 32}"#).unwrap();
        assert_eq!(old.neighbors, NeighborSelection::DiverseFill);
        let json = serde_json::to_string(&IndexConfig {
            neighbors: NeighborSelection::Diverse,
            ..Default::default()
        })
        .unwrap();
        assert!(json.contains(r#""neighbors":"diverse""#), "{json}");
        assert_eq!(
            "nearest".parse::<NeighborSelection>().unwrap(),
            NeighborSelection::Nearest
        );
        assert!(matches!(
            "best".parse::<NeighborSelection>(),
            Err(Error::BadInput(_))
        ));
    }

    #[test]
    fn k_above_ef_search_still_returns_k() {
        // The graph is then searched with ef = k.
        let dim = 8;
        let cfg = IndexConfig {
            growing_capacity: 200,
            ef_search: 16,
            ..Default::default()
        };
        let mut index = Index::new(dim, "fp", cfg).unwrap();
        let vs = random_unit(200, dim, 6);
        let ids: Vec<u64> = (0..200).collect();
        index.add(&ids, &vs).unwrap();
        index.maintain().unwrap().unwrap();
        assert_eq!(index.segments()[0].kind, SegmentKind::Hnsw);
        let got = index.search(&vs[0], 50).unwrap();
        assert_eq!(got.len(), 50);
        assert_eq!(got[0].id, 0);
        let exact = index.search_exact(&vs[0], 50).unwrap();
        let recall = crate::metrics::mean_recall_at_k(&[ids_of(&got)], &[ids_of(&exact)], 50);
        assert!(recall >= 0.9, "recall@50 {recall}");
        // A per-query ef: a larger one is at least as good, and ef < 1 is refused.
        let q = random_unit(1, dim, 7).remove(0);
        let exact = ids_of(&index.search_exact(&q, 10).unwrap());
        let r = |ef| {
            let hits = index.search_ef(&q, 10, ef).unwrap();
            assert_eq!(hits.len(), 10);
            crate::metrics::mean_recall_at_k(&[ids_of(&hits)], std::slice::from_ref(&exact), 10)
        };
        assert_eq!(r(200), 1.0, "ef = every point is exact");
        assert!(matches!(
            index.search_ef(&q, 10, 0),
            Err(Error::BadInput(_))
        ));
    }

    #[test]
    fn tombstones_hide_and_rebuilds_drop_them() {
        let dim = 8;
        let cfg = IndexConfig {
            growing_capacity: 100,
            merge_factor: 4,
            ..Default::default()
        };
        let mut index = Index::new(dim, "fp", cfg).unwrap();
        let mut blobs = Blobs::new();
        let vs = random_unit(150, dim, 7);
        fill(&mut index, &mut blobs, &vs, 0, 150);
        // 150 added at once: sealed into one segment of 150.
        assert_eq!(index.segments().len(), 1);
        let extra = random_unit(10, dim, 8);
        blobs.apply(
            index
                .add(&(1000..1010).collect::<Vec<_>>(), &extra)
                .unwrap(),
        );
        assert_eq!(index.remove(&[3, 1005, 99_999]), 2);
        assert_eq!(index.remove(&[3]), 0, "already deleted");
        assert_eq!(index.len(), 158);
        assert_eq!(index.deleted(), 2);
        assert!(!index.contains(3) && !index.contains(1005) && index.contains(4));
        for exact in [false, true] {
            let hits = index.search_impl(&vs[3], 5, None, exact).unwrap();
            assert!(hits.iter().all(|h| h.id != 3));
            let hits = index.search_impl(&extra[5], 5, None, exact).unwrap();
            assert!(hits.iter().all(|h| h.id != 1005));
        }
        assert_eq!(index.manifest().tombstones, vec![3, 1005]);
        // Sealing the growing segment drops 1005's tombstone; 3 stays.
        let cs = index.seal().unwrap().unwrap();
        blobs.apply(cs);
        assert_eq!(index.manifest().tombstones, vec![3]);
        assert_eq!(index.stored(), 159);
        assert_eq!(index.max_id(), Some(1009));
        // Deleting most of the big segment triggers its compaction.
        let many: Vec<u64> = (0..100).collect();
        index.remove(&many);
        assert!(index.needs_maintenance());
        blobs.apply(index.maintain().unwrap().unwrap());
        assert_eq!(index.deleted(), 0);
        assert_eq!(index.len(), 59);
        assert_eq!(index.stored(), 59);
        assert!(index.ids().iter().all(|&id| id >= 100));
    }

    #[test]
    fn growing_chunks_merge_by_tiers_but_not_under_a_seal_job() {
        let dim = 4;
        let cfg = IndexConfig {
            growing_capacity: 10_000,
            merge_factor: 4,
            ..Default::default()
        };
        let mut index = Index::new(dim, "fp", cfg).unwrap();
        let mut blobs = Blobs::new();
        let vs = random_unit(300, dim, 5);
        let mut written = 0usize;
        for (i, v) in vs.iter().enumerate() {
            let cs = index.add(&[i as u64], std::slice::from_ref(v)).unwrap();
            written += cs.puts.iter().map(|(_, b)| b.len()).sum::<usize>();
            blobs.apply(cs);
            // Exactly the listed chunks are stored, and they hold every vector.
            let m = index.manifest();
            let mut names: Vec<_> = m.growing.iter().map(|c| c.name.clone()).collect();
            let mut stored: Vec<_> = blobs.0.keys().cloned().collect();
            names.sort();
            stored.sort();
            assert_eq!(names, stored);
            assert_eq!(
                m.growing.iter().map(|c| c.vectors).sum::<u64>(),
                i as u64 + 1
            );
        }
        // 300 = 4³·4 + … in base 4: 1,0,2,3,0 → 1 + 2 + 3 chunks, at most 3 per tier.
        let sizes: Vec<u64> = index.manifest().growing.iter().map(|c| c.vectors).collect();
        assert_eq!(sizes, vec![256, 16, 16, 4, 4, 4]);
        // Each vector is rewritten once per tier it climbs, not once per insert.
        let one = blobs.0.values().map(|b| b.len()).sum::<usize>() / 300;
        assert!(written < one * 300 * 6, "wrote {written} bytes");
        let (reloaded, damage) = Index::load(dim, "fp", &index.manifest(), &blobs, false).unwrap();
        assert!(damage.is_empty());
        assert_eq!(reloaded.ids(), index.ids());

        // A seal job holds every chunk there is; new ones merge among themselves.
        let job = index.start_seal().unwrap().unwrap();
        let held = index.manifest().growing.len();
        let extra = random_unit(20, dim, 6);
        for (i, v) in extra.iter().enumerate() {
            blobs.apply(
                index
                    .add(&[1000 + i as u64], std::slice::from_ref(v))
                    .unwrap(),
            );
        }
        let m = index.manifest();
        assert_eq!(
            &m.growing[..held]
                .iter()
                .map(|c| c.vectors)
                .collect::<Vec<_>>(),
            &sizes
        );
        assert_eq!(
            m.growing[held..]
                .iter()
                .map(|c| c.vectors)
                .collect::<Vec<_>>(),
            vec![16, 4]
        );
        blobs.apply(index.finish_maintenance(job.build().unwrap()).unwrap());
        let m = index.manifest();
        assert_eq!(
            m.growing.iter().map(|c| c.vectors).collect::<Vec<_>>(),
            vec![16, 4]
        );
        assert_eq!(index.len(), 320);
        for (i, v) in extra.iter().enumerate() {
            assert_eq!(index.search(v, 1).unwrap()[0].id, 1000 + i as u64);
        }
    }

    #[test]
    fn maintenance_built_off_the_index_keeps_what_changed_meanwhile() {
        let dim = 8;
        let cfg = IndexConfig {
            growing_capacity: 50,
            merge_factor: 4,
            ..Default::default()
        };
        let mut index = Index::new(dim, "fp", cfg).unwrap();
        let mut blobs = Blobs::new();
        let vs = random_unit(60, dim, 21);
        blobs.apply(index.add(&(0..60).collect::<Vec<_>>(), &vs).unwrap());
        index.remove(&[7]);
        let job = index.start_maintenance().expect("a full growing segment");
        assert_eq!(job.len(), 59, "the tombstoned vector is left out");
        assert!(index.start_maintenance().is_none(), "one job at a time");
        assert!(index.seal().is_err());
        // While the job is out: inserts, deletes (of a vector being sealed and
        // of a new one) and searches all go on.
        let extra = random_unit(5, dim, 22);
        blobs.apply(index.add(&(100..105).collect::<Vec<_>>(), &extra).unwrap());
        index.remove(&[8, 102]);
        assert_eq!(index.search(&vs[3], 1).unwrap()[0].id, 3);
        let built = std::thread::spawn(move || job.build())
            .join()
            .unwrap()
            .unwrap();
        let cs = index.finish_maintenance(built).unwrap();
        assert_eq!(cs.puts.len(), 1, "the new segment");
        assert_eq!(cs.deletes.len(), 1, "the sealed chunk");
        blobs.apply(cs);
        let segs = index.segments();
        assert_eq!(
            segs.iter().map(|s| (s.kind, s.vectors)).collect::<Vec<_>>(),
            vec![(SegmentKind::Flat, 59), (SegmentKind::Growing, 5)]
        );
        assert_eq!(
            index.manifest().tombstones,
            vec![8, 102],
            "7's went with the build"
        );
        assert_eq!((index.len(), index.deleted()), (62, 2));
        for (i, v) in vs.iter().enumerate().filter(|&(i, _)| i != 7 && i != 8) {
            assert_eq!(index.search(v, 1).unwrap()[0].id, i as u64);
        }
        assert!(index.search(&vs[8], 3).unwrap().iter().all(|h| h.id != 8));
        assert_eq!(index.search(&extra[4], 1).unwrap()[0].id, 104);
        let (back, damage) = Index::load(dim, "fp", &index.manifest(), &blobs, false).unwrap();
        assert!(damage.is_empty());
        assert_eq!(back.segments(), index.segments());
        assert_eq!(back.deleted(), 2);
        // A result from another job is refused.
        let mut other = Index::new(
            dim,
            "fp",
            IndexConfig {
                growing_capacity: 1,
                ..Default::default()
            },
        )
        .unwrap();
        other.add(&[1], &vs[..1]).unwrap();
        let foreign = other.start_maintenance().unwrap().build().unwrap();
        assert!(matches!(
            index.finish_maintenance(foreign),
            Err(Error::BadInput(_))
        ));
    }

    #[test]
    fn persisted_state_reloads_identically() {
        let dim = 8;
        let mut index = Index::new(dim, "fp", small_config()).unwrap();
        let mut blobs = Blobs::new();
        let vs = random_unit(250, dim, 9);
        fill(&mut index, &mut blobs, &vs, 0, 30);
        index.remove(&[5, 240]);
        let m = index.manifest();
        let (back, damage) = Index::load(dim, "fp", &m, &blobs, false).unwrap();
        assert!(damage.is_empty());
        assert_eq!(back.manifest(), m);
        assert_eq!(back.segments(), index.segments());
        for q in random_unit(5, dim, 10) {
            assert_eq!(back.search(&q, 10).unwrap(), index.search(&q, 10).unwrap());
        }
        // Export re-encodes byte-identical blobs.
        for (name, bytes) in index.blobs().unwrap() {
            assert_eq!(blobs.0.get(&name), Some(&bytes), "{name}");
        }
    }

    #[test]
    fn quantizing_shrinks_memory_keeps_recall_and_persists() {
        let dim = 32;
        let mut index = Index::new(dim, "fp", small_config()).unwrap();
        let mut blobs = Blobs::new();
        let vs = random_unit(650, dim, 21);
        fill(&mut index, &mut blobs, &vs, 0, 50);
        index.remove(&[3, 400]);
        let hnsw = |index: &Index, kind| index.segments().iter().filter(|s| s.kind == kind).count();
        let graphs = hnsw(&index, SegmentKind::Hnsw);
        assert!(graphs >= 2, "{:?}", index.segments());
        let queries = random_unit(40, dim, 22);
        let truth: Vec<Vec<u64>> = queries
            .iter()
            .map(|q| ids(&index.search_exact(q, 10).unwrap()))
            .collect();
        let recall = |index: &Index| {
            let hit: usize = queries
                .iter()
                .zip(&truth)
                .map(|(q, t)| {
                    let found = index.search_ef(q, 10, 128).unwrap();
                    found.iter().filter(|h| t.contains(&h.id)).count()
                })
                .sum();
            hit as f64 / (10 * queries.len()) as f64
        };
        let (memory, stored, float_recall) = (index.memory_bytes(), index.bytes(), recall(&index));

        let before: Vec<String> = index
            .manifest()
            .segments
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let cs = index.quantize().unwrap();
        // Each graph gets a new blob and the old one goes; flat segments stay.
        assert_eq!(cs.puts.len(), graphs);
        assert_eq!(cs.deletes.len(), graphs);
        assert!(cs.deletes.iter().all(|d| before.contains(d)));
        assert!(cs.puts.iter().all(|(n, _)| !before.contains(n)));
        blobs.apply(cs);
        assert_eq!(hnsw(&index, SegmentKind::HnswInt8), graphs);
        assert_eq!(hnsw(&index, SegmentKind::Hnsw), 0);
        assert!(
            index.memory_bytes() < memory,
            "{} vs {memory}",
            index.memory_bytes()
        );
        assert!(index.bytes() < stored);
        let int8_recall = recall(&index);
        assert!(
            int8_recall >= float_recall - 0.05,
            "{int8_recall} vs {float_recall}"
        );
        // Deleted ids stay deleted; a stored vector still finds itself.
        let hits = index.search(&vs[3], 5).unwrap();
        assert!(hits.iter().all(|h| h.id != 3));
        let hits = index.search(&vs[7], 1).unwrap();
        assert_eq!(hits[0].id, 7);
        assert!((hits[0].score - 1.0).abs() < 0.01, "{}", hits[0].score);
        // Quantising again changes nothing.
        assert!(index.quantize().unwrap().is_empty());

        // Later seals are quantised too, and everything reloads as it was.
        fill(&mut index, &mut blobs, &random_unit(250, dim, 23), 1000, 50);
        assert_eq!(index.config().quantization, Quantization::Int8);
        assert_eq!(hnsw(&index, SegmentKind::Hnsw), 0, "{:?}", index.segments());
        let m = index.manifest();
        let json = serde_json::to_string(&m).unwrap();
        assert!(
            json.contains("\"hnsw-int8\"") && json.contains("\"int8\""),
            "{json}"
        );
        let (back, damage) = Index::load(dim, "fp", &m, &blobs, false).unwrap();
        assert!(damage.is_empty());
        assert_eq!(back.segments(), index.segments());
        assert_eq!(back.memory_bytes(), index.memory_bytes());
        for q in &queries {
            assert_eq!(back.search(q, 10).unwrap(), index.search(q, 10).unwrap());
        }
        for (name, bytes) in index.blobs().unwrap() {
            assert_eq!(blobs.0.get(&name), Some(&bytes), "{name}");
        }
        // A manifest written before quantisation existed reads as float.
        let old: IndexConfig = serde_json::from_str(r#"{"growing_capacity":100}"#).unwrap();
        assert_eq!(old.quantization, Quantization::None);
        assert_eq!("int8".parse::<Quantization>().unwrap(), Quantization::Int8);
        assert!("int4".parse::<Quantization>().is_err());
    }

    #[test]
    fn optimize_rebuilds_everything_into_one_graph() {
        let dim = 16;
        // Seals that do not merge: several sealed segments and the growing one.
        let config = IndexConfig {
            merge_factor: 8,
            ..small_config()
        };
        let mut index = Index::new(dim, "fp", config.clone()).unwrap();
        let mut blobs = Blobs::new();
        let vs = random_unit(530, dim, 31);
        fill(&mut index, &mut blobs, &vs, 0, 40);
        index.remove(&[2, 300]);
        let m = index.manifest();
        assert!(m.segments.len() >= 2 && !m.growing.is_empty(), "{m:?}");
        let queries = random_unit(30, dim, 32);
        let exact: Vec<Vec<u64>> = queries
            .iter()
            .map(|q| ids(&index.search_exact(q, 10).unwrap()))
            .collect();

        let job = index.start_optimize().unwrap().expect("several parts");
        // Enrolled while the graph is built: stays in the growing segment.
        blobs.apply(index.add(&[9000], &random_unit(1, dim, 33)).unwrap());
        index.remove(&[7]);
        assert!(index.start_maintenance().is_none(), "a job is out");
        assert!(index.start_optimize().is_err());
        let cs = index.finish_maintenance(job.build().unwrap()).unwrap();
        // Every old blob goes, one graph comes.
        let old: HashSet<String> = m
            .segments
            .iter()
            .chain(&m.growing)
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(cs.deletes.iter().cloned().collect::<HashSet<_>>(), old);
        assert_eq!(cs.puts.len(), 1);
        blobs.apply(cs);
        let segs = index.segments();
        assert_eq!(segs.len(), 2, "{segs:?}"); // the graph and the new chunk
        assert_eq!(
            segs.iter().filter(|s| s.kind == SegmentKind::Hnsw).count(),
            1
        );
        // Vectors deleted before the job are gone from it; the one deleted
        // during it stays tombstoned; the new one is found.
        assert_eq!(index.len(), 530 - 3 + 1);
        assert!(!index.contains(2) && !index.contains(7) && index.contains(9000));
        assert_eq!(index.deleted(), 1);
        let hit: usize = queries
            .iter()
            .zip(&exact)
            .map(|(q, t)| {
                let found = index.search_ef(q, 10, 128).unwrap();
                assert!(found.iter().all(|h| h.id != 7));
                found.iter().filter(|h| t.contains(&h.id)).count()
            })
            .sum();
        assert!(hit as f64 >= 0.9 * (10 * queries.len()) as f64, "{hit}");
        // It reloads as it is.
        let (back, damage) = Index::load(dim, "fp", &index.manifest(), &blobs, false).unwrap();
        assert!(damage.is_empty());
        assert_eq!(back.segments(), index.segments());

        // Optimising again folds in the chunk and the deleted vector; then
        // there is nothing left to do.
        blobs.apply(index.optimize().unwrap().expect("a chunk and a deletion"));
        assert_eq!(index.segments().len(), 1);
        assert_eq!(index.deleted(), 0);
        assert!(index.optimize().unwrap().is_none());
        assert!(
            Index::new(dim, "fp", config)
                .unwrap()
                .optimize()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn quantize_waits_for_a_running_job() {
        let dim = 8;
        let mut index = Index::new(dim, "fp", small_config()).unwrap();
        let ids: Vec<u64> = (0..150).collect();
        index.add(&ids, &random_unit(150, dim, 5)).unwrap();
        let job = index.start_maintenance().expect("a seal is due");
        let err = index.quantize().unwrap_err();
        assert!(
            err.is_user_error() && err.to_string().contains("being built"),
            "{err}"
        );
        index.finish_maintenance(job.build().unwrap()).unwrap();
        assert!(index.quantize().is_ok());
    }

    #[test]
    fn damaged_blobs_fail_strict_and_are_skipped_otherwise() {
        let dim = 8;
        let mut index = Index::new(dim, "fp", small_config()).unwrap();
        let mut blobs = Blobs::new();
        let vs = random_unit(230, dim, 11);
        fill(&mut index, &mut blobs, &vs, 0, 10);
        let m = index.manifest();
        assert!(!m.segments.is_empty() && !m.growing.is_empty());
        let seg = m.segments[0].name.clone();
        let chunk = m.growing[0].name.clone();
        // Flip a byte in the segment, drop the chunk.
        let b = blobs.0.get_mut(&seg).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x40;
        blobs.0.remove(&chunk);

        let err = Index::load(dim, "fp", &m, &blobs, false).unwrap_err();
        match err {
            Error::Corrupt { name, .. } => assert_eq!(name, seg),
            other => panic!("{other:?}"),
        }
        let (back, damage) = Index::load(dim, "fp", &m, &blobs, true).unwrap();
        let names: Vec<&str> = damage.iter().map(|d| d.blob.as_str()).collect();
        assert_eq!(names, vec![seg.as_str(), chunk.as_str()]);
        assert!(damage[0].reason.contains("checksum"));
        assert!(damage[1].reason.contains("missing"));
        let lost = m.segments[0].vectors + m.growing[0].vectors;
        assert_eq!(back.len() as u64, 230 - lost);
        let m2 = back.manifest();
        assert!(m2.segments.iter().all(|e| e.name != seg));
        assert!(m2.growing.iter().all(|e| e.name != chunk));
        // The survivors are searchable.
        let survivor = *back.ids().last().unwrap();
        assert_eq!(
            back.search(&vs[survivor as usize], 1).unwrap()[0].id,
            survivor
        );
    }

    #[test]
    fn another_models_segment_is_refused() {
        let dim = 4;
        let mut index = Index::new(dim, "model-a", IndexConfig::default()).unwrap();
        let mut blobs = Blobs::new();
        blobs.apply(index.add(&[1], &random_unit(1, dim, 1)).unwrap());
        let m = index.manifest();
        match Index::load(dim, "model-b", &m, &blobs, false).unwrap_err() {
            Error::ModelMismatch {
                what,
                expected,
                found,
            } => {
                assert!(what.contains("index") && what.contains("grow-1"));
                assert_eq!((expected.as_str(), found.as_str()), ("model-b", "model-a"));
            }
            other => panic!("{other:?}"),
        }
        let err = Index::load(8, "model-a", &m, &blobs, false).unwrap_err();
        assert!(err.to_string().contains("dimension 4"), "{err}");
        // Manifest size mismatch.
        let mut m2 = m.clone();
        m2.growing[0].bytes += 1;
        let err = Index::load(dim, "model-a", &m2, &blobs, false).unwrap_err();
        assert!(err.to_string().contains("the manifest says"), "{err}");
    }

    #[test]
    fn duplicate_ids_across_blobs_are_corrupt() {
        let dim = 4;
        let mut index = Index::new(dim, "fp", IndexConfig::default()).unwrap();
        let mut blobs = Blobs::new();
        blobs.apply(index.add(&[1, 2], &random_unit(2, dim, 1)).unwrap());
        let mut m = index.manifest();
        let mut dup = m.growing[0].clone();
        dup.name = "grow-9".into();
        blobs.0.insert("grow-9".into(), blobs.0["grow-1"].clone());
        m.growing.push(dup);
        let err = Index::load(dim, "fp", &m, &blobs, false).unwrap_err();
        assert!(err.to_string().contains("grow-9") && err.to_string().contains("twice"));
    }

    #[test]
    fn blob_names_are_never_reused() {
        let dim = 4;
        let cfg = IndexConfig {
            growing_capacity: 30,
            merge_factor: 2,
            ..Default::default()
        };
        let mut index = Index::new(dim, "fp", cfg).unwrap();
        let mut blobs = Blobs::new();
        let mut names = HashSet::new();
        let vs = random_unit(300, dim, 12);
        for (b, chunk) in vs.chunks(7).enumerate() {
            let ids: Vec<u64> = (0..chunk.len()).map(|i| (b * 7 + i) as u64).collect();
            let mut cs = index.add(&ids, chunk).unwrap();
            if let Some(more) = index.maintain().unwrap() {
                cs.extend(more);
            }
            for (n, _) in &cs.puts {
                assert!(names.insert(n.clone()), "{n} reused");
            }
            blobs.apply(cs);
        }
        // A reload continues the sequence.
        let (mut back, _) = Index::load(dim, "fp", &index.manifest(), &blobs, false).unwrap();
        let cs = back.add(&[10_000], &random_unit(1, dim, 13)).unwrap();
        assert!(!names.contains(&cs.puts[0].0));
    }
}
