//! Segments: flat arrays searched exactly, and sealed HNSW graphs.
//!
//! A *flat* segment (the growing segment, its persisted chunks, and sealed
//! segments too small to deserve a graph) is `ids` plus one contiguous `f32`
//! array, scanned with the SIMD dot product. A *HNSW* segment is a [`Graph`]:
//! built and searched in this crate's own layout ([`graph`](super::graph)).
//!
//! A graph built with `IndexConfig::quantization` = int8 is quantised right
//! after it is built and stored as codes (segment kind `hnsw-int8`): flat
//! segments and the growing segment stay float, as they hold at most a growing
//! segment's worth of vectors.
//!
//! Both are persisted inside a [`blob`](crate::blob) frame, together with the
//! model fingerprint and the dimension, so a segment is self-describing: flat
//! ones with postcard, graphs in the [`packed`] layout (blob kind `SEGM`;
//! graphs stored before it, `SEGP`, `SEGH` and `SEGQ`, all with `M` = 32, are
//! still read).
//! Decoding never trusts the bytes: every neighbour reference of a graph is
//! checked to be in range before anything searches it.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use serde::{Deserialize, Serialize};

use super::distance;
use super::graph::legacy::{QuantizedLayout, read_stored};
use super::graph::{BuildParams, Graph, LEGACY_M, Scored, packed};
use super::{Hit, IndexConfig, SegmentKind};
use crate::blob;
use crate::blob::wire::Reader;
use crate::{Error, Result};

/// Blob kind of a sealed graph segment, float or int8, in the packed layout
/// with its `M` ([`packed`](super::graph::packed)): the only graph kind this
/// build writes.
pub const KIND_PACKED_GRAPH: [u8; 4] = *b"SEGM";
/// Blob kind of the packed layout without `M` (every such graph has `M` = 32),
/// written before `M` became a parameter; still read, never written.
pub const KIND_PACKED_GRAPH_M32: [u8; 4] = *b"SEGP";
/// Blob kind of a sealed float graph in instant-distance's serialized layout,
/// written before the packed one; still read, never written.
pub const KIND_LEGACY_FLOAT_GRAPH: [u8; 4] = *b"SEGH";
/// Blob kind of a sealed int8 graph in the varint layout written before the
/// packed one; still read, never written.
pub const KIND_LEGACY_INT8_GRAPH: [u8; 4] = *b"SEGQ";
/// Blob kind of a sealed segment too small for a graph: ids and float vectors.
pub const KIND_FLAT_SEGMENT: [u8; 4] = *b"SEGF";
/// Blob kind of a persisted chunk of the growing segment.
pub const KIND_GROWING_CHUNK: [u8; 4] = *b"GROW";

/// Sealed segments with fewer live vectors than this are kept flat: below a few
/// dozen vectors an exact scan costs about what a graph search does (HNSW visits
/// `ef_search` ≥ 64 nodes anyway), is exact, and costs nothing to build.
pub const FLAT_MAX: usize = 64;

/// A query as the segments take it: unit length, and its `i8` codes when
/// some graph is quantised (empty otherwise), quantised once for all graphs.
pub(crate) struct Query<'a> {
    pub unit: &'a [f32],
    pub codes: &'a [i8],
}

/// Keeps the `k` best (score, id) pairs seen: higher score first, lower id on ties.
#[derive(Default)]
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Scored<u64>>>,
}

impl TopK {
    #[cfg(test)]
    pub(crate) fn new(k: usize) -> Self {
        let mut top = TopK::default();
        top.reset(k);
        top
    }

    /// Empties it for a search of the `k` best, keeping its storage.
    pub(crate) fn reset(&mut self, k: usize) {
        self.k = k;
        self.heap.clear();
        self.heap.reserve(k.min(4096) + 1);
    }

    #[inline]
    pub(crate) fn push(&mut self, id: u64, score: f32) {
        if self.k == 0 {
            return;
        }
        let item = Scored { score, id };
        if self.heap.len() < self.k {
            self.heap.push(Reverse(item));
        } else if let Some(Reverse(worst)) = self.heap.peek()
            && item > *worst
        {
            self.heap.pop();
            self.heap.push(Reverse(item));
        }
    }

    /// Moves the pairs into `out`, best first, and leaves it empty.
    pub(crate) fn drain_into(&mut self, out: &mut Vec<Hit>) {
        let start = out.len();
        out.extend(self.heap.drain().map(|Reverse(r)| Hit {
            id: r.id,
            score: r.score,
        }));
        out[start..]
            .sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    }

    #[cfg(test)]
    pub(crate) fn into_hits(mut self) -> Vec<Hit> {
        let mut out = Vec::new();
        self.drain_into(&mut out);
        out
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
    Hnsw(Graph),
}

impl Sealed {
    /// Builds a sealed segment from vectors: flat below [`FLAT_MAX`], HNSW above.
    pub(crate) fn build(flat: Flat, dim: usize, config: &IndexConfig, seed: u64) -> Result<Sealed> {
        if flat.len() < FLAT_MAX {
            return Ok(Sealed::Flat(flat));
        }
        let params = BuildParams {
            m: config.m,
            ef_construction: config.ef_construction,
            ef_search: config.ef_search,
            neighbors: config.neighbors,
            seed,
        };
        let mut graph = Graph::build(flat.ids, flat.data, dim, &params)
            .map_err(|e| Error::Internal(format!("building a HNSW segment: {e}")))?;
        graph
            .quantize(config.quantization)
            .map_err(Error::Internal)?;
        Ok(Sealed::Hnsw(graph))
    }

    /// Inserts `more` into `graph` ([`Graph::extend`]), quantising the result
    /// when the configuration says so.
    pub(crate) fn extend(
        mut graph: Graph,
        more: Flat,
        config: &IndexConfig,
        seed: u64,
    ) -> Result<Sealed> {
        let params = BuildParams {
            m: graph.m(),
            ef_construction: config.ef_construction,
            ef_search: graph.ef_search(),
            neighbors: config.neighbors,
            seed,
        };
        graph
            .extend(more.ids, more.data, &params)
            .map_err(|e| Error::Internal(format!("inserting into a HNSW segment: {e}")))?;
        graph
            .quantize(config.quantization)
            .map_err(Error::Internal)?;
        Ok(Sealed::Hnsw(graph))
    }

    /// Changes the `ef` a HNSW segment is searched with by default (flat
    /// segments have none). It is stored with the graph.
    pub(crate) fn set_ef_search(&mut self, ef: usize) {
        if let Sealed::Hnsw(graph) = self {
            graph.set_ef_search(ef);
        }
    }

    pub(crate) fn kind(&self) -> SegmentKind {
        match self {
            Sealed::Flat(_) => SegmentKind::Flat,
            Sealed::Hnsw(graph) if graph.is_quantized() => SegmentKind::HnswInt8,
            Sealed::Hnsw(_) => SegmentKind::Hnsw,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Sealed::Flat(f) => f.len(),
            Sealed::Hnsw(graph) => graph.len(),
        }
    }

    /// Every (id, vector) of the segment, tombstoned ones included.
    pub(crate) fn for_each(&self, dim: usize, mut f: impl FnMut(u64, &[f32])) {
        match self {
            Sealed::Flat(flat) => flat.iter(dim).for_each(|(id, v)| f(id, v)),
            Sealed::Hnsw(graph) => graph.for_each(f),
        }
    }

    /// The ids of the segment, sorted.
    pub(crate) fn sorted_ids(&self) -> Vec<u64> {
        let mut ids = match self {
            Sealed::Flat(f) => f.ids.clone(),
            Sealed::Hnsw(graph) => graph.ids().to_vec(),
        };
        ids.sort_unstable();
        ids
    }

    pub(crate) fn is_quantized(&self) -> bool {
        matches!(self, Sealed::Hnsw(graph) if graph.is_quantized())
    }

    /// Searches into `top`. `exact` scans every vector; otherwise a HNSW segment
    /// is searched through its graph with `ef` = `ef` (or the graph's own when
    /// `None`), raised to `k`, and raised again while tombstones leave fewer
    /// than `k` live results. `found` is the graph's candidate buffer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn search(
        &self,
        query: &Query,
        k: usize,
        ef: Option<usize>,
        exact: bool,
        tombstones: &BTreeSet<u64>,
        found: &mut Vec<(f32, u64)>,
        top: &mut TopK,
    ) {
        let graph = match self {
            Sealed::Flat(flat) => {
                let dim = query.unit.len();
                return flat.scan(dim, query.unit, tombstones, top);
            }
            Sealed::Hnsw(graph) => graph,
        };
        if exact {
            graph.for_each(|id, v| {
                if !tombstones.contains(&id) {
                    top.push(id, distance::dot(query.unit, v));
                }
            });
            return;
        }
        let mut ef = ef.unwrap_or(graph.ef_search()).max(k);
        loop {
            graph.search_coded(query.unit, query.codes, ef, found);
            if tombstones.is_empty() {
                break;
            }
            let live = found
                .iter()
                .filter(|(_, id)| !tombstones.contains(id))
                .count();
            if live >= k || found.len() < ef || ef >= graph.len() {
                break;
            }
            ef = (ef * 2).min(graph.len());
        }
        let mut live = 0;
        for &(score, id) in found.iter() {
            if live == k {
                break;
            }
            if tombstones.is_empty() || !tombstones.contains(&id) {
                top.push(id, score);
                live += 1;
            }
        }
    }

    /// The segment as a framed blob.
    pub(crate) fn encode(&self, fingerprint: &str, dim: usize) -> Result<Vec<u8>> {
        match self {
            Sealed::Flat(flat) => encode_flat(KIND_FLAT_SEGMENT, fingerprint, dim, flat),
            Sealed::Hnsw(graph) => {
                let mut framed = blob::start_frame(0);
                packed::write(graph, fingerprint, &mut framed);
                Ok(blob::finish_frame(KIND_PACKED_GRAPH, framed))
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
                let (fp, dim, flat) = decode_flat(name, KIND_FLAT_SEGMENT, bytes)?;
                Ok((fp, dim, Sealed::Flat(flat)))
            }
            SegmentKind::Hnsw => decode_graph(name, KIND_LEGACY_FLOAT_GRAPH, false, bytes),
            SegmentKind::HnswInt8 => decode_graph(name, KIND_LEGACY_INT8_GRAPH, true, bytes),
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
    let file: FlatFile = blob::decode_all(name, payload)?;
    let dim = checked_dim(name, file.dim)?;
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

/// Decodes a graph segment listed as float or int8 (`quantized`): the packed
/// layout, or the layout of its kind written before it (`legacy`:
/// instant-distance's for `SEGH`, the varint one for `SEGQ`), both read with
/// [`wire`](crate::blob::wire).
fn decode_graph(
    name: &str,
    legacy: [u8; 4],
    quantized: bool,
    bytes: &[u8],
) -> Result<(String, usize, Sealed)> {
    let corrupt = |e: String| Error::corrupt(name, format!("undecodable: {e}"));
    let kind = blob::peek_kind(bytes);
    if kind != Some(legacy) {
        let (kind, m) = if kind == Some(KIND_PACKED_GRAPH_M32) {
            (KIND_PACKED_GRAPH_M32, Some(LEGACY_M))
        } else {
            (KIND_PACKED_GRAPH, None)
        };
        let payload = blob::open(name, kind, bytes)?;
        let mut r = Reader::new(payload);
        let found = packed::read(&mut r, m).map_err(corrupt)?;
        r.finish().map_err(|e| corrupt(e.into()))?;
        if found.graph.is_quantized() != quantized {
            let (listed, stored) = if quantized {
                ("int8", "float")
            } else {
                ("float", "int8")
            };
            return Err(Error::corrupt(
                name,
                format!("listed as a {listed} graph but holds {stored} vectors"),
            ));
        }
        return Ok((found.fingerprint, found.dim, Sealed::Hnsw(found.graph)));
    }
    let payload = blob::open(name, legacy, bytes)?;
    let mut r = Reader::new(payload);
    let fingerprint = r
        .str("fingerprint")
        .map_err(|e| corrupt(e.into()))?
        .to_string();
    let dim = checked_dim(name, r.u64("dimension").map_err(|e| corrupt(e.into()))?)?;
    let graph = if quantized {
        QuantizedLayout::read(&mut r)
            .map_err(|e| corrupt(e.into()))?
            .check(dim)
    } else {
        read_stored(&mut r, dim)
    }
    .map_err(|e| Error::corrupt(name, e))?;
    r.finish().map_err(|e| corrupt(e.into()))?;
    Ok((fingerprint, dim, Sealed::Hnsw(graph)))
}

fn checked_dim(name: &str, dim: u64) -> Result<usize> {
    usize::try_from(dim)
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| Error::corrupt(name, format!("bad dimension {dim}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::test_data::unit_vectors;
    use crate::index::{NeighborSelection, Quantization};

    fn query(unit: &[f32]) -> Query<'_> {
        Query { unit, codes: &[] }
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
        let s = Sealed::build(flat(FLAT_MAX - 1, 8), 8, &cfg, 1).unwrap();
        assert_eq!(s.kind(), SegmentKind::Flat);
        let s = Sealed::build(flat(FLAT_MAX, 8), 8, &cfg, 1).unwrap();
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
        let s = Sealed::build(f.clone(), dim, &cfg, 7).unwrap();
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
            back.search(
                &query(q),
                1,
                None,
                false,
                &BTreeSet::new(),
                &mut Vec::new(),
                &mut top,
            );
            let hits = top.into_hits();
            assert_eq!(hits[0].id, f.ids[i]);
            assert!((hits[0].score - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn int8_segment_roundtrips_under_its_own_kind() {
        let dim = 16;
        let cfg = IndexConfig {
            quantization: Quantization::Int8,
            ..IndexConfig::default()
        };
        let f = flat(200, dim);
        let s = Sealed::build(f.clone(), dim, &cfg, 7).unwrap();
        assert_eq!(s.kind(), SegmentKind::HnswInt8);
        let bytes = s.encode("fp", dim).unwrap();
        let float = Sealed::build(f.clone(), dim, &IndexConfig::default(), 7).unwrap();
        // 16 floats (64 bytes) a vector become 16 codes and a scale (20).
        let float_len = float.encode("fp", dim).unwrap().len();
        assert!(
            float_len > bytes.len() + 200 * 40,
            "{float_len} vs {}",
            bytes.len()
        );
        let (fp, d, back) = Sealed::decode("seg-2", SegmentKind::HnswInt8, &bytes).unwrap();
        assert_eq!(
            (fp.as_str(), d, back.kind()),
            ("fp", dim, SegmentKind::HnswInt8)
        );
        assert_eq!(
            back.encode("fp", dim).unwrap(),
            bytes,
            "re-encoding is stable"
        );
        // Listed as the other kind, it is refused by name.
        let err = Sealed::decode("seg-2", SegmentKind::Hnsw, &bytes)
            .err()
            .unwrap();
        assert!(err.to_string().contains("seg-2"), "{err}");
        assert!(err.to_string().contains("holds int8 vectors"), "{err}");
        // Dequantised vectors come back (for merges and exact search).
        let mut n = 0;
        back.for_each(dim, |id, v| {
            let i = (id / 10) as usize;
            let orig = &f.data[i * dim..(i + 1) * dim];
            assert!(v.iter().zip(orig).all(|(a, b)| (a - b).abs() < 0.01));
            n += 1;
        });
        assert_eq!(n, 200);
        for (i, q) in f.data.chunks_exact(dim).enumerate().step_by(17) {
            for exact in [false, true] {
                let mut top = TopK::new(1);
                back.search(
                    &query(q),
                    1,
                    None,
                    exact,
                    &BTreeSet::new(),
                    &mut Vec::new(),
                    &mut top,
                );
                assert_eq!(top.into_hits()[0].id, f.ids[i]);
            }
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
            Sealed::build(f.clone(), dim, &IndexConfig::default(), 3).unwrap(),
        ] {
            for exact in [false, true] {
                let mut top = TopK::new(5);
                s.search(&query(&q), 5, None, exact, &dead, &mut Vec::new(), &mut top);
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
        let bytes = encode_flat(KIND_GROWING_CHUNK, "fp", dim, &f).unwrap();
        let (fp, d, back) = decode_flat("grow-1", KIND_GROWING_CHUNK, &bytes).unwrap();
        assert_eq!((fp.as_str(), d), ("fp", dim));
        assert_eq!(back, f);
        // Wrong kind is refused by the frame.
        assert!(matches!(
            decode_flat("grow-1", KIND_FLAT_SEGMENT, &bytes),
            Err(Error::Corrupt { .. })
        ));
        // A well-framed but inconsistent payload is refused by the decoder.
        let bad = FlatFileRef {
            fingerprint: "fp",
            dim: 4,
            ids: &[1, 2],
            data: &[0.0; 7],
        };
        let framed = blob::seal(KIND_GROWING_CHUNK, &postcard::to_allocvec(&bad).unwrap());
        let err = decode_flat("grow-9", KIND_GROWING_CHUNK, &framed).unwrap_err();
        assert!(err.to_string().contains("grow-9"), "{err}");
        assert!(err.to_string().contains("2 ids but 7 floats"), "{err}");
        let nan = FlatFileRef {
            fingerprint: "fp",
            dim: 1,
            ids: &[1],
            data: &[f32::NAN],
        };
        let framed = blob::seal(KIND_GROWING_CHUNK, &postcard::to_allocvec(&nan).unwrap());
        assert!(decode_flat("g", KIND_GROWING_CHUNK, &framed).is_err());
    }

    /// Re-frames a HNSW payload after `edit` changed it, so that only the
    /// structural validation (not the checksum) can catch the problem.
    fn reframe(bytes: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        reframe_as(bytes, KIND_PACKED_GRAPH, edit)
    }

    /// [`reframe`] into a blob of kind `kind`.
    fn reframe_as(bytes: &[u8], kind: [u8; 4], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut payload = blob::open("x", KIND_PACKED_GRAPH, bytes).unwrap().to_vec();
        edit(&mut payload);
        blob::seal(kind, &payload)
    }

    #[test]
    fn hnsw_with_dangling_links_is_corrupt_not_a_panic() {
        let dim = 4;
        // A graph of 10 points: every node has empty neighbour slots.
        let f = flat(10, dim);
        let params = BuildParams {
            m: 16,
            ef_construction: 100,
            ef_search: 64,
            neighbors: NeighborSelection::Nearest,
            seed: 5,
        };
        let s = Sealed::Hnsw(Graph::build(f.ids.clone(), f.data.clone(), dim, &params).unwrap());
        let bytes = s.encode("fp", dim).unwrap();
        assert!(Sealed::decode("seg-4", SegmentKind::Hnsw, &bytes).is_ok());
        // The links come last, 3 bytes each; with 10 points every byte of a
        // link is 0..=9 except in an empty slot (ff ff ff). Point the last
        // empty slot far out of range.
        let bad = reframe(&bytes, |p| {
            let pos = p
                .windows(3)
                .rposition(|w| w == [0xff; 3])
                .expect("an empty slot");
            p[pos..pos + 3].copy_from_slice(&[0x00, 0x00, 0x0f]);
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
        let s = Sealed::build(flat(80, dim), dim, &IndexConfig::default(), 5).unwrap();
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

    #[derive(Serialize)]
    struct HnswFileRef<'a, G: Serialize> {
        fingerprint: &'a str,
        dim: u64,
        map: G,
    }

    /// A graph segment as stored before the packed layout.
    fn legacy_blob(kind: [u8; 4], dim: usize, map: impl Serialize) -> Vec<u8> {
        let file = HnswFileRef {
            fingerprint: "fp",
            dim: dim as u64,
            map,
        };
        blob::seal(kind, &postcard::to_allocvec(&file).unwrap())
    }

    #[test]
    fn graphs_stored_before_the_packed_layout_still_read() {
        let dim = 8;
        let f = flat(120, dim);
        // The legacy layouts have M 32 and no field for another.
        let config = IndexConfig {
            m: LEGACY_M,
            ..IndexConfig::default()
        };
        let Sealed::Hnsw(float) = Sealed::build(f.clone(), dim, &config, 4).unwrap() else {
            panic!("120 vectors get a graph");
        };
        let mut quantized = float.clone();
        quantized.quantize(Quantization::Int8).unwrap();
        for (kind, listed, graph, old) in [
            (
                KIND_LEGACY_FLOAT_GRAPH,
                SegmentKind::Hnsw,
                &float,
                legacy_blob(KIND_LEGACY_FLOAT_GRAPH, dim, float.serializable()),
            ),
            (
                KIND_LEGACY_INT8_GRAPH,
                SegmentKind::HnswInt8,
                &quantized,
                legacy_blob(
                    KIND_LEGACY_INT8_GRAPH,
                    dim,
                    quantized.quantized_layout().unwrap(),
                ),
            ),
        ] {
            assert_eq!(blob::peek_kind(&old), Some(kind));
            let (fp, d, back) = Sealed::decode("seg-7", listed, &old).unwrap();
            assert_eq!((fp.as_str(), d), ("fp", dim));
            let Sealed::Hnsw(back) = &back else {
                panic!("a graph comes back");
            };
            assert_eq!(back, graph);
            // Written again, it is packed, and reads back the same.
            let packed = Sealed::Hnsw(back.clone()).encode("fp", dim).unwrap();
            assert_eq!(blob::peek_kind(&packed), Some(KIND_PACKED_GRAPH));
            let (_, _, again) = Sealed::decode("seg-7", listed, &packed).unwrap();
            assert!(matches!(&again, Sealed::Hnsw(g) if g == graph));
            // A corrupt old blob is still caught by its own checksum.
            let mut bad = old.clone();
            bad[blob::HEADER_LEN + 3] ^= 0x40;
            let err = Sealed::decode("seg-7", listed, &bad).err().unwrap();
            assert!(err.to_string().contains("checksum"), "{err}");
        }
        // A blob of neither kind is refused, naming what was expected.
        let other = blob::seal(*b"SEGF", b"xyz");
        let err = Sealed::decode("seg-8", SegmentKind::Hnsw, &other)
            .err()
            .unwrap();
        assert!(err.to_string().contains("\"SEGM\""), "{err}");
        // The packed layout without M reads as M 32.
        let packed = Sealed::Hnsw(float.clone()).encode("fp", dim).unwrap();
        let old = reframe_as(&packed, KIND_PACKED_GRAPH_M32, |p| {
            // fingerprint (1 + 2 bytes), dim, ef_search, n, vector type, width: then M.
            assert_eq!(p[8], LEGACY_M as u8);
            p.remove(8);
        });
        let (_, _, back) = Sealed::decode("seg-9", SegmentKind::Hnsw, &old).unwrap();
        assert!(matches!(&back, Sealed::Hnsw(g) if *g == float));
    }
}
