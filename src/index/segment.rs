//! Segments: flat arrays searched exactly, and sealed HNSW graphs.
//!
//! A *flat* segment (the growing segment, its persisted chunks, and sealed
//! segments too small to deserve a graph) is `ids` plus one contiguous `f32`
//! array, scanned with the SIMD dot product. A *HNSW* segment is an
//! [`instant_distance::HnswMap`] from [`Point`] to vector id.
//!
//! Both are persisted with postcard inside a [`blob`](crate::blob) frame, together
//! with the model fingerprint and the dimension, so a segment is self-describing.
//! Decoding never trusts the bytes: a HNSW graph is first walked by a shadow
//! deserializer that checks every neighbour reference is in range (a graph with a
//! dangling reference would make instant-distance index out of bounds at search
//! time), and only then deserialized for real.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap};
use std::fmt;

use instant_distance::{Builder, HnswMap, Search};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::distance;
use super::{Hit, IndexConfig, SegmentKind};
use crate::blob;
use crate::{Error, Result};

/// Blob kind of a sealed HNSW segment.
pub const KIND_HNSW: [u8; 4] = *b"SEGH";
/// Blob kind of a sealed flat segment.
pub const KIND_FLAT: [u8; 4] = *b"SEGF";
/// Blob kind of a growing-segment chunk.
pub const KIND_GROW: [u8; 4] = *b"GROW";

/// Sealed segments with fewer live vectors than this are kept flat: below a few
/// dozen vectors an exact scan costs about what a graph search does (HNSW visits
/// `ef_search` ≥ 64 nodes anyway), is exact, and costs nothing to build.
pub const FLAT_MAX: usize = 64;

/// A vector as instant-distance sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Point(pub Box<[f32]>);

impl instant_distance::Point for Point {
    fn distance(&self, other: &Self) -> f32 {
        distance::cosine_distance(&self.0, &other.0)
    }
}

thread_local! {
    /// instant-distance's search state, reused by the queries of a thread: a fresh
    /// `Search` allocates and zeroes one "visited" byte per graph node (1 MB at a
    /// million vectors) on every query.
    static SEARCH: std::cell::RefCell<Search> = std::cell::RefCell::new(Search::default());
}

/// Keeps the `k` best (score, id) pairs seen: higher score first, lower id on ties.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Ranked>>,
}

#[derive(Clone, Copy, Debug)]
struct Ranked {
    score: f32,
    id: u64,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    /// Greater = better.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.id.cmp(&self.id))
    }
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, id: u64, score: f32) {
        if self.k == 0 {
            return;
        }
        let item = Ranked { score, id };
        if self.heap.len() < self.k {
            self.heap.push(Reverse(item));
        } else if let Some(Reverse(worst)) = self.heap.peek()
            && item > *worst
        {
            self.heap.pop();
            self.heap.push(Reverse(item));
        }
    }

    pub(crate) fn into_hits(self) -> Vec<Hit> {
        let mut items: Vec<Ranked> = self.heap.into_iter().map(|Reverse(r)| r).collect();
        items.sort_unstable_by(|a, b| b.cmp(a));
        items
            .into_iter()
            .map(|r| Hit {
                id: r.id,
                score: r.score,
            })
            .collect()
    }
}

/// Vectors with their ids, stored contiguously.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Flat {
    pub ids: Vec<u64>,
    pub data: Vec<f32>,
}

impl Flat {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn iter<'a>(&'a self, dim: usize) -> impl Iterator<Item = (u64, &'a [f32])> + 'a {
        self.ids.iter().copied().zip(self.data.chunks_exact(dim))
    }

    /// Exact scan into `top`, skipping tombstoned ids.
    pub(crate) fn scan(
        &self,
        dim: usize,
        query: &[f32],
        tombstones: &BTreeSet<u64>,
        top: &mut TopK,
    ) {
        let check = !tombstones.is_empty();
        for (id, v) in self.iter(dim) {
            if check && tombstones.contains(&id) {
                continue;
            }
            top.push(id, distance::dot(query, v));
        }
    }
}

/// A sealed (immutable) segment.
pub(crate) enum Sealed {
    Flat(Flat),
    Hnsw {
        map: HnswMap<Point, u64>,
        /// The `ef` the graph was built with: instant-distance returns at most
        /// this many neighbours per search.
        ef_search: usize,
    },
}

impl Sealed {
    /// Builds a sealed segment from vectors: flat below [`FLAT_MAX`], HNSW above.
    pub(crate) fn build(flat: Flat, dim: usize, config: &IndexConfig, seed: u64) -> Sealed {
        if flat.len() < FLAT_MAX {
            return Sealed::Flat(flat);
        }
        let points: Vec<Point> = flat
            .data
            .chunks_exact(dim)
            .map(|c| Point(c.to_vec().into_boxed_slice()))
            .collect();
        let map = Builder::default()
            .ef_construction(config.ef_construction)
            .ef_search(config.ef_search)
            .select_heuristic(config.neighbors.heuristic())
            .seed(seed)
            .build(points, flat.ids);
        Sealed::Hnsw {
            map,
            ef_search: config.ef_search,
        }
    }

    /// Changes the `ef` a HNSW segment is searched with (flat segments have none).
    ///
    /// instant-distance fixes `ef_search` when it builds a graph and has no setter,
    /// but it is the first field of its serialized form: the graph is encoded,
    /// that leading varint replaced, and the graph decoded again. That costs about
    /// one save and load of the segment, so it is for tuning and benchmarks, not
    /// for every query.
    pub(crate) fn set_ef_search(&mut self, ef: usize) -> Result<()> {
        let Sealed::Hnsw { map, ef_search } = self else {
            return Ok(());
        };
        if *ef_search == ef {
            return Ok(());
        }
        let bytes = postcard::to_allocvec(&*map)
            .map_err(|e| Error::Internal(format!("encoding a HNSW segment: {e}")))?;
        let (old, rest) = postcard::take_from_bytes::<u64>(&bytes)
            .map_err(|e| Error::Internal(format!("re-reading a HNSW segment: {e}")))?;
        if old != *ef_search as u64 {
            return Err(Error::Internal(format!(
                "HNSW segment layout: expected ef_search {ef_search} first, found {old}"
            )));
        }
        let mut patched = postcard::to_allocvec(&(ef as u64))
            .map_err(|e| Error::Internal(format!("encoding ef_search: {e}")))?;
        patched.extend_from_slice(rest);
        drop(bytes);
        *map = postcard::from_bytes(&patched)
            .map_err(|e| Error::Internal(format!("decoding a HNSW segment: {e}")))?;
        *ef_search = ef;
        Ok(())
    }

    pub(crate) fn kind(&self) -> SegmentKind {
        match self {
            Sealed::Flat(_) => SegmentKind::Flat,
            Sealed::Hnsw { .. } => SegmentKind::Hnsw,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Sealed::Flat(f) => f.len(),
            Sealed::Hnsw { map, .. } => map.values.len(),
        }
    }

    /// Every (id, vector) of the segment, tombstoned ones included.
    pub(crate) fn for_each(&self, dim: usize, mut f: impl FnMut(u64, &[f32])) {
        match self {
            Sealed::Flat(flat) => flat.iter(dim).for_each(|(id, v)| f(id, v)),
            Sealed::Hnsw { map, .. } => {
                for (pid, p) in map.iter() {
                    if let Some(id) = map.values.get(pid.into_inner() as usize) {
                        f(*id, &p.0);
                    }
                }
            }
        }
    }

    /// The ids of the segment, sorted.
    pub(crate) fn sorted_ids(&self) -> Vec<u64> {
        let mut ids = match self {
            Sealed::Flat(f) => f.ids.clone(),
            Sealed::Hnsw { map, .. } => map.values.clone(),
        };
        ids.sort_unstable();
        ids
    }

    /// Searches into `top`. `exact` scans every vector; otherwise a HNSW segment
    /// is searched through its graph, unless `k` exceeds the graph's `ef` (it
    /// could then return fewer than `k` neighbours), in which case it is scanned.
    pub(crate) fn search(
        &self,
        dim: usize,
        query: &[f32],
        k: usize,
        exact: bool,
        tombstones: &BTreeSet<u64>,
        top: &mut TopK,
    ) {
        match self {
            Sealed::Flat(flat) => flat.scan(dim, query, tombstones, top),
            Sealed::Hnsw { map, ef_search } => {
                if exact || k > *ef_search {
                    self.for_each(dim, |id, v| {
                        if !tombstones.contains(&id) {
                            top.push(id, distance::dot(query, v));
                        }
                    });
                    return;
                }
                let point = Point(query.to_vec().into_boxed_slice());
                let mut run = |search: &mut Search| {
                    // Nearest first: past the k-th live one nothing can enter the top k.
                    let mut live = 0;
                    for item in map.search(&point, search) {
                        let id = *item.value;
                        if !tombstones.contains(&id) {
                            // Recomputed rather than taken as 1 − distance, so that a
                            // vector scores exactly the same in every kind of segment.
                            top.push(id, distance::dot(query, &item.point.0));
                            live += 1;
                            if live == k {
                                break;
                            }
                        }
                    }
                };
                SEARCH.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut search) => run(&mut search),
                    Err(_) => run(&mut Search::default()),
                });
            }
        }
    }

    /// The segment as a framed blob.
    pub(crate) fn encode(&self, fingerprint: &str, dim: usize) -> Result<Vec<u8>> {
        match self {
            Sealed::Flat(flat) => encode_flat(KIND_FLAT, fingerprint, dim, flat),
            Sealed::Hnsw { map, .. } => {
                let file = HnswFileRef {
                    fingerprint,
                    dim: dim as u64,
                    map,
                };
                let payload = postcard::to_allocvec(&file)
                    .map_err(|e| Error::Internal(format!("encoding a HNSW segment: {e}")))?;
                Ok(blob::seal(KIND_HNSW, &payload))
            }
        }
    }

    /// Decodes and validates a sealed segment blob of the given kind.
    pub(crate) fn decode(
        name: &str,
        kind: SegmentKind,
        bytes: &[u8],
    ) -> Result<(String, usize, Sealed)> {
        match kind {
            SegmentKind::Flat => {
                let (fp, dim, flat) = decode_flat(name, KIND_FLAT, bytes)?;
                Ok((fp, dim, Sealed::Flat(flat)))
            }
            SegmentKind::Hnsw => decode_hnsw(name, bytes),
            SegmentKind::Growing => Err(Error::corrupt(
                name,
                "listed as a sealed segment of kind \"growing\"",
            )),
        }
    }
}

#[derive(Serialize)]
struct FlatFileRef<'a> {
    fingerprint: &'a str,
    dim: u64,
    ids: &'a [u64],
    data: &'a [f32],
}

#[derive(Deserialize)]
struct FlatFile {
    fingerprint: String,
    dim: u64,
    ids: Vec<u64>,
    data: Vec<f32>,
}

/// Encodes ids + vectors (a growing chunk or a flat segment) as a framed blob.
pub(crate) fn encode_flat_parts(
    kind: [u8; 4],
    fingerprint: &str,
    dim: usize,
    ids: &[u64],
    data: &[f32],
) -> Result<Vec<u8>> {
    let file = FlatFileRef {
        fingerprint,
        dim: dim as u64,
        ids,
        data,
    };
    let payload = postcard::to_allocvec(&file)
        .map_err(|e| Error::Internal(format!("encoding a flat segment: {e}")))?;
    Ok(blob::seal(kind, &payload))
}

fn encode_flat(kind: [u8; 4], fingerprint: &str, dim: usize, flat: &Flat) -> Result<Vec<u8>> {
    encode_flat_parts(kind, fingerprint, dim, &flat.ids, &flat.data)
}

/// Decodes a flat blob (a growing chunk or a flat segment): fingerprint, dim, data.
pub(crate) fn decode_flat(
    name: &str,
    kind: [u8; 4],
    bytes: &[u8],
) -> Result<(String, usize, Flat)> {
    let payload = blob::open(name, kind, bytes)?;
    let file: FlatFile = decode_all(name, payload)?;
    let dim = usize::try_from(file.dim)
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| Error::corrupt(name, format!("bad dimension {}", file.dim)))?;
    if file.data.len() != file.ids.len().saturating_mul(dim) {
        return Err(Error::corrupt(
            name,
            format!(
                "{} ids but {} floats (dimension {dim})",
                file.ids.len(),
                file.data.len()
            ),
        ));
    }
    if let Some(pos) = file.data.iter().position(|x| !x.is_finite()) {
        return Err(Error::corrupt(
            name,
            format!("non-finite value in vector {}", pos / dim),
        ));
    }
    Ok((
        file.fingerprint,
        dim,
        Flat {
            ids: file.ids,
            data: file.data,
        },
    ))
}

/// postcard-decodes the whole of `payload` (trailing bytes are corruption too).
pub(crate) fn decode_all<'de, T: Deserialize<'de>>(name: &str, payload: &'de [u8]) -> Result<T> {
    let (value, rest) = postcard::take_from_bytes(payload)
        .map_err(|e| Error::corrupt(name, format!("undecodable: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::corrupt(
            name,
            format!("{} undecoded bytes after the record", rest.len()),
        ));
    }
    Ok(value)
}

#[derive(Serialize)]
struct HnswFileRef<'a> {
    fingerprint: &'a str,
    dim: u64,
    map: &'a HnswMap<Point, u64>,
}

#[derive(Deserialize)]
struct HnswFile {
    fingerprint: String,
    /// Checked by the shadow pass already.
    #[allow(dead_code)]
    dim: u64,
    map: HnswMap<Point, u64>,
}

fn decode_hnsw(name: &str, bytes: &[u8]) -> Result<(String, usize, Sealed)> {
    let payload = blob::open(name, KIND_HNSW, bytes)?;
    // First pass: the shadow structure, which checks shapes and references
    // without building anything big.
    let shape: HnswFileShape = decode_all(name, payload)?;
    let dim = usize::try_from(shape.dim)
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| Error::corrupt(name, format!("bad dimension {}", shape.dim)))?;
    let ef_search = shape
        .map
        .validate(dim)
        .map_err(|e| Error::corrupt(name, e))?;
    // Second pass: the real thing, now known to be safe to search.
    let file: HnswFile = decode_all(name, payload)?;
    Ok((
        file.fingerprint,
        dim,
        Sealed::Hnsw {
            map: file.map,
            ef_search,
        },
    ))
}

// ---- Shadow of instant-distance's serialized layout, for validation ----
//
// `HnswMap { hnsw: Hnsw { ef_search: usize, points: Vec<P>, zero: Vec<[PointId; 2M]>,
// layers: Vec<Vec<[PointId; M]>> }, values: Vec<V> }` with M = 32, where `PointId`
// is a `u32` newtype and `u32::MAX` means "no neighbour".

const M: usize = 32;
const INVALID: u32 = u32::MAX;

#[derive(Deserialize)]
struct HnswFileShape {
    #[allow(dead_code)]
    fingerprint: String,
    dim: u64,
    map: MapShape,
}

#[derive(Deserialize)]
struct MapShape {
    hnsw: HnswShape,
    values: Vec<u64>,
}

#[derive(Deserialize)]
struct HnswShape {
    ef_search: u64,
    points: Vec<PointShape>,
    zero: Vec<NodeShape<{ 2 * M }>>,
    layers: Vec<Vec<NodeShape<M>>>,
}

impl MapShape {
    /// Checks everything a search relies on; returns `ef_search`.
    fn validate(&self, dim: usize) -> std::result::Result<usize, String> {
        let h = &self.hnsw;
        let n = h.points.len();
        if self.values.len() != n {
            return Err(format!("{} points but {} ids", n, self.values.len()));
        }
        if h.zero.len() != n {
            return Err(format!("{} points but {} graph nodes", n, h.zero.len()));
        }
        for (i, p) in h.points.iter().enumerate() {
            if p.len != dim {
                return Err(format!("point {i} has {} values, expected {dim}", p.len));
            }
            if !p.finite {
                return Err(format!("point {i} has a non-finite value"));
            }
        }
        for (i, node) in h.zero.iter().enumerate() {
            if let Some(max) = node.max
                && max as usize >= n
            {
                return Err(format!("node {i} links to point {max} of {n}"));
            }
        }
        // Upper layers hold a prefix of the points, shrinking upwards; the search
        // starts at point 0 of the top layer.
        let mut below = n;
        for (l, layer) in h.layers.iter().enumerate() {
            let len = layer.len();
            if len == 0 || len > below {
                return Err(format!(
                    "layer {} has {len} nodes (layer below has {below})",
                    l + 1
                ));
            }
            for (i, node) in layer.iter().enumerate() {
                if let Some(max) = node.max
                    && max as usize >= len
                {
                    return Err(format!(
                        "layer {} node {i} links to point {max} of {len}",
                        l + 1
                    ));
                }
            }
            below = len;
        }
        if n == 0 && !h.layers.is_empty() {
            return Err("empty graph with upper layers".into());
        }
        let ef = usize::try_from(h.ef_search)
            .ok()
            .filter(|ef| *ef >= 1)
            .ok_or_else(|| format!("bad ef_search {}", h.ef_search))?;
        Ok(ef)
    }
}

/// A point's vector, checked for length and finiteness but not kept.
struct PointShape {
    len: usize,
    finite: bool,
}

impl<'de> Deserialize<'de> for PointShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PointShape;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence of f32")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<PointShape, A::Error> {
                let mut shape = PointShape {
                    len: 0,
                    finite: true,
                };
                while let Some(x) = seq.next_element::<f32>()? {
                    shape.len += 1;
                    shape.finite &= x.is_finite();
                }
                Ok(shape)
            }
        }
        d.deserialize_seq(V)
    }
}

/// A graph node's N neighbour slots; only the largest valid reference is kept.
struct NodeShape<const N: usize> {
    max: Option<u32>,
}

impl<'de, const N: usize> Deserialize<'de> for NodeShape<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for V<N> {
            type Value = NodeShape<N>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "{N} neighbour ids")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<NodeShape<N>, A::Error> {
                let mut max: Option<u32> = None;
                for i in 0..N {
                    let pid: u32 = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                    if pid != INVALID {
                        max = Some(max.map_or(pid, |m| m.max(pid)));
                    }
                }
                Ok(NodeShape { max })
            }
        }
        d.deserialize_tuple(N, V::<N>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let v: Vec<f32> = (0..dim)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect();
            let norm = distance::norm_squared(&v).sqrt();
            out.extend(v.iter().map(|x| x / norm));
        }
        out
    }

    fn flat(n: usize, dim: usize) -> Flat {
        Flat {
            ids: (0..n as u64).map(|i| i * 10).collect(),
            data: unit_vectors(n, dim, 42),
        }
    }

    #[test]
    fn topk_keeps_best_with_id_tiebreak() {
        let mut top = TopK::new(3);
        for (id, s) in [(5, 0.1), (1, 0.9), (7, 0.5), (3, 0.9), (9, 0.95), (2, -1.0)] {
            top.push(id, s);
        }
        let hits = top.into_hits();
        let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
        assert_eq!(ids, vec![9, 1, 3]);
        assert_eq!(hits[0].score, 0.95);
        let mut none = TopK::new(0);
        none.push(1, 1.0);
        assert!(none.into_hits().is_empty());
    }

    #[test]
    fn small_segments_stay_flat_large_ones_get_a_graph() {
        let cfg = IndexConfig::default();
        let s = Sealed::build(flat(FLAT_MAX - 1, 8), 8, &cfg, 1);
        assert_eq!(s.kind(), SegmentKind::Flat);
        let s = Sealed::build(flat(FLAT_MAX, 8), 8, &cfg, 1);
        assert_eq!(s.kind(), SegmentKind::Hnsw);
        assert_eq!(s.len(), FLAT_MAX);
        let mut ids = s.sorted_ids();
        ids.dedup();
        assert_eq!(ids.len(), FLAT_MAX);
    }

    #[test]
    fn hnsw_segment_roundtrips_and_finds_itself() {
        let dim = 16;
        let cfg = IndexConfig::default();
        let f = flat(120, dim);
        let s = Sealed::build(f.clone(), dim, &cfg, 7);
        let bytes = s.encode("fp", dim).unwrap();
        let (fp, d, back) = Sealed::decode("seg-1", SegmentKind::Hnsw, &bytes).unwrap();
        assert_eq!((fp.as_str(), d), ("fp", dim));
        assert_eq!(
            back.encode("fp", dim).unwrap(),
            bytes,
            "re-encoding is stable"
        );
        for (i, q) in f.data.chunks_exact(dim).enumerate().step_by(13) {
            let mut top = TopK::new(1);
            back.search(dim, q, 1, false, &BTreeSet::new(), &mut top);
            let hits = top.into_hits();
            assert_eq!(hits[0].id, f.ids[i]);
            assert!((hits[0].score - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn tombstones_are_skipped_in_every_kind() {
        let dim = 8;
        let f = flat(100, dim);
        let q = f.data[..dim].to_vec();
        let dead: BTreeSet<u64> = [f.ids[0]].into();
        for s in [
            Sealed::Flat(f.clone()),
            Sealed::build(f.clone(), dim, &IndexConfig::default(), 3),
        ] {
            for exact in [false, true] {
                let mut top = TopK::new(5);
                s.search(dim, &q, 5, exact, &dead, &mut top);
                let hits = top.into_hits();
                assert_eq!(hits.len(), 5);
                assert!(hits.iter().all(|h| h.id != f.ids[0]));
            }
        }
    }

    #[test]
    fn flat_roundtrip_and_corruption() {
        let dim = 4;
        let f = flat(10, dim);
        let bytes = encode_flat(KIND_GROW, "fp", dim, &f).unwrap();
        let (fp, d, back) = decode_flat("grow-1", KIND_GROW, &bytes).unwrap();
        assert_eq!((fp.as_str(), d), ("fp", dim));
        assert_eq!(back, f);
        // Wrong kind is refused by the frame.
        assert!(matches!(
            decode_flat("grow-1", KIND_FLAT, &bytes),
            Err(Error::Corrupt { .. })
        ));
        // A well-framed but inconsistent payload is refused by the decoder.
        let bad = FlatFileRef {
            fingerprint: "fp",
            dim: 4,
            ids: &[1, 2],
            data: &[0.0; 7],
        };
        let framed = blob::seal(KIND_GROW, &postcard::to_allocvec(&bad).unwrap());
        let err = decode_flat("grow-9", KIND_GROW, &framed).unwrap_err();
        assert!(err.to_string().contains("grow-9"), "{err}");
        assert!(err.to_string().contains("2 ids but 7 floats"), "{err}");
        let nan = FlatFileRef {
            fingerprint: "fp",
            dim: 1,
            ids: &[1],
            data: &[f32::NAN],
        };
        let framed = blob::seal(KIND_GROW, &postcard::to_allocvec(&nan).unwrap());
        assert!(decode_flat("g", KIND_GROW, &framed).is_err());
    }

    /// Re-frames a HNSW payload after `edit` changed it, so that only the
    /// structural validation (not the checksum) can catch the problem.
    fn reframe(bytes: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut payload = blob::open("x", KIND_HNSW, bytes).unwrap().to_vec();
        edit(&mut payload);
        blob::seal(KIND_HNSW, &payload)
    }

    #[test]
    fn hnsw_with_dangling_links_is_corrupt_not_a_panic() {
        let dim = 4;
        // A graph of 10 points: every node has empty neighbour slots.
        let f = flat(10, dim);
        let points = f
            .data
            .chunks_exact(dim)
            .map(|c| Point(c.to_vec().into_boxed_slice()))
            .collect();
        let map = Builder::default().seed(5).build(points, f.ids.clone());
        let s = Sealed::Hnsw { map, ef_search: 64 };
        let bytes = s.encode("fp", dim).unwrap();
        assert!(Sealed::decode("seg-4", SegmentKind::Hnsw, &bytes).is_ok());
        // Find the encoding of a neighbour id in the zero layer and point it far
        // out of range: u32 varint of a large value has the same length as any
        // other 5-byte varint, so rewrite one INVALID (5 bytes ff ff ff ff 0f)
        // into 4_000_000_000 (also 5 bytes).
        let invalid = [0xff, 0xff, 0xff, 0xff, 0x0f];
        let mut big = Vec::new();
        let mut v: u32 = 4_000_000_000;
        while v >= 0x80 {
            big.push((v as u8) | 0x80);
            v >>= 7;
        }
        big.push(v as u8);
        assert_eq!(big.len(), 5);
        let bad = reframe(&bytes, |p| {
            let pos = p
                .windows(5)
                .position(|w| w == invalid)
                .expect("an empty slot");
            p[pos..pos + 5].copy_from_slice(&big);
        });
        let err = Sealed::decode("seg-4", SegmentKind::Hnsw, &bad)
            .err()
            .expect("must be refused");
        let msg = err.to_string();
        assert!(
            msg.contains("seg-4") && msg.contains("links to point"),
            "{msg}"
        );
    }

    #[test]
    fn hnsw_truncated_payload_is_corrupt() {
        let dim = 4;
        let s = Sealed::build(flat(80, dim), dim, &IndexConfig::default(), 5);
        let bytes = s.encode("fp", dim).unwrap();
        for cut in [1, 10, 100, 1000] {
            let bad = reframe(&bytes, |p| p.truncate(p.len() - cut));
            assert!(matches!(
                Sealed::decode("seg-1", SegmentKind::Hnsw, &bad),
                Err(Error::Corrupt { .. })
            ));
        }
        let bad = reframe(&bytes, |p| p.push(0));
        let msg = Sealed::decode("seg-1", SegmentKind::Hnsw, &bad)
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("undecoded"), "{msg}");
    }
}
