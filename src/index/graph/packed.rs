//! The packed layout of a sealed graph: fixed-width little-endian arrays.
//!
//! Opening a gallery reads every stored graph, and at a million points that
//! read was most of a browser reload: the 64 million layer-0 links were
//! varints (postcard's encoding of instant-distance's layout), decoded one
//! branchy byte at a time, about 10 ns a link in wasm. Here each array is a
//! block of fixed-width values, so reading it is a copy with a shift.
//!
//! Links take 3 bytes when the graph has fewer than 2²⁴ − 1 points (as many
//! bytes as their varints did below 2²¹ points, and the same for a million),
//! 4 bytes above; an empty slot is all ones in either width.
//!
//! | field | encoding |
//! | --- | --- |
//! | fingerprint | varint length, UTF-8 |
//! | dimension | varint |
//! | `ef_search` | varint |
//! | points `n` | varint |
//! | vectors | `u8`: 0 = `f32`, 1 = `i8` codes with a scale each, 2 = the same plus residual codes |
//! | link width | `u8`: 3 or 4 |
//! | `M` | varint (absent in `SEGP`, whose graphs all have `M` = 32) |
//! | upper layers | varint count, then each layer's node count (varint) |
//! | ids | `n` × `u64` |
//! | vectors | `n·dim` × `f32`, or `n` × `f32` scales then `n·dim` × `i8` (then `n·dim` × `i8` residual codes for 2) |
//! | layer 0 | `n·2M` links |
//! | upper layers | each layer's nodes × `M` links, bottom up |
//!
//! Every size is checked against the bytes left before anything is allocated,
//! and the graph goes through [`Graph::checked`] like every other.

use super::nodes::Nodes;
use super::{Graph, INVALID, Quantization, Vectors};
use crate::blob::wire::{Reader, WireError};

const VECTORS_F32: u8 = 0;
const VECTORS_I8: u8 = 1;
const VECTORS_I8_RESIDUAL: u8 = 2;

/// The largest point count whose links fit in 3 bytes next to the empty slot.
const MAX_POINTS_U24: usize = 0xFF_FFFF;

/// The link width for a graph of `n` points.
fn link_bytes(n: usize) -> usize {
    if n < MAX_POINTS_U24 { 3 } else { 4 }
}

/// Appends `graph` in the packed layout (with its `M`), after its fingerprint
/// and dimension.
pub(crate) fn write(graph: &Graph, fingerprint: &str, out: &mut Vec<u8>) {
    let n = graph.ids.len();
    let width = link_bytes(n);
    let nodes = &graph.nodes;
    let links = n * nodes.width() + graph.upper.iter().map(Vec::len).sum::<usize>();
    let floats = n * nodes.dim() * 4;
    out.reserve(64 + fingerprint.len() + n * 8 + floats + graph.vectors.bytes() + links * width);
    put_varint(out, fingerprint.len() as u64);
    out.extend_from_slice(fingerprint.as_bytes());
    put_varint(out, graph.dim as u64);
    put_varint(out, graph.ef_search as u64);
    put_varint(out, n as u64);
    out.push(match graph.quantization() {
        Quantization::None => VECTORS_F32,
        Quantization::Int8 => VECTORS_I8,
        Quantization::Int8Residual => VECTORS_I8_RESIDUAL,
    });
    out.push(width as u8);
    put_varint(out, graph.m as u64);
    put_varint(out, graph.upper.len() as u64);
    for layer in &graph.upper {
        put_varint(out, (layer.len() / graph.m) as u64);
    }
    for id in &graph.ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    match &graph.vectors {
        Vectors::F32 => {
            for x in (0..n).flat_map(|p| nodes.vector(p)) {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        Vectors::I8 {
            codes,
            scales,
            residual,
        } => {
            for s in scales {
                out.extend_from_slice(&s.to_le_bytes());
            }
            out.extend_from_slice(bytemuck::cast_slice(codes));
            if let Some(residual) = residual {
                out.extend_from_slice(bytemuck::cast_slice(residual));
            }
        }
    }
    // INVALID is all ones, so its low `width` bytes are the empty slot.
    let zero = (0..n).flat_map(|p| nodes.links(p));
    for p in zero.chain(graph.upper.iter().flatten()) {
        out.extend_from_slice(&p.to_le_bytes()[..width]);
    }
}

/// What [`read`] found before the graph: the fingerprint and dimension, which
/// the caller checks against the gallery's.
pub(crate) struct Packed {
    pub fingerprint: String,
    pub dim: usize,
    pub graph: Graph,
}

/// Reads what [`write`] wrote, checking every size and link. `m` is `Some`
/// for the layout without its `M` (`SEGP`): the `M` every such graph has.
pub(crate) fn read(r: &mut Reader, m: Option<usize>) -> Result<Packed, String> {
    let fingerprint = r.str("fingerprint")?.to_string();
    let dim = r.u64("dimension")?;
    let dim = usize::try_from(dim)
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| format!("bad dimension {dim}"))?;
    let ef_search = r.u64("ef_search")?;
    // Every point takes at least its id's 8 bytes: a bound before any allocation.
    let n = r.len("points", 8)?;
    let vectors = r.u8("vector type")?;
    let width = r.u8("link width")? as usize;
    if width != link_bytes(n) {
        return Err(format!("{width}-byte links for {n} points"));
    }
    let m = match m {
        Some(m) => m,
        None => {
            let m = r.u64("M")?;
            usize::try_from(m)
                .ok()
                .filter(|m| super::M_RANGE.contains(m))
                .ok_or_else(|| format!("M {m} is outside {:?}", super::M_RANGE))?
        }
    };
    let layers = r.len("upper layers", 1)?;
    let mut counts = Vec::with_capacity(layers);
    for _ in 0..layers {
        counts.push(r.len("upper layer", m * width)?);
    }
    let ids = fixed(r, "ids", n, 8, |b| {
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    })?;
    let values = n
        .checked_mul(dim)
        .ok_or_else(|| format!("{n} points of dimension {dim}"))?;
    let m0 = 2 * m;
    let (vectors, mut nodes) = match vectors {
        VECTORS_F32 => (Vectors::F32, float_nodes(r, n, m0, dim, width)?),
        VECTORS_I8 | VECTORS_I8_RESIDUAL => {
            let scales = fixed(r, "scales", n, 4, |b| {
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            })?;
            if let Some(p) = scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
                return Err(format!("point {p} has scale {}", scales[p]));
            }
            let codes = bytemuck::cast_slice(r.raw("codes", values)?).to_vec();
            let residual = if vectors == VECTORS_I8_RESIDUAL {
                Some(bytemuck::cast_slice(r.raw("residual codes", values)?).to_vec())
            } else {
                None
            };
            let codes = Vectors::I8 {
                codes,
                scales,
                residual,
            };
            ensure_left(r, n, 0, m0 * width)?;
            (codes, Nodes::new(n, m0, 0))
        }
        t => return Err(format!("unknown vector type {t}")),
    };
    let raw = r.raw("layer 0", n * m0 * width)?;
    for (p, bytes) in raw.chunks_exact(m0 * width).enumerate() {
        decode_links(bytes, width, nodes.links_mut(p));
    }
    let upper = counts
        .into_iter()
        .map(|nodes| links(r, "upper layer", nodes * m, width))
        .collect::<Result<Vec<_>, _>>()?;
    let graph = Graph::checked(dim, m, ef_search, vectors, ids, nodes, upper)?;
    Ok(Packed {
        fingerprint,
        dim,
        graph,
    })
}

/// `count` values of `width` bytes each, decoded by `f`.
fn fixed<T>(
    r: &mut Reader,
    what: &str,
    count: usize,
    width: usize,
    f: impl Fn(&[u8]) -> T,
) -> Result<Vec<T>, WireError> {
    let bytes = count
        .checked_mul(width)
        .ok_or_else(|| WireError::from(format!("{what}: {count} values")))?;
    Ok(r.raw(what, bytes)?.chunks_exact(width).map(f).collect())
}

/// Fails unless `n` nodes' vectors (`floats` each) and layer-0 links
/// (`link_bytes` each) are left to read: checked before the nodes are allocated.
fn ensure_left(r: &Reader, n: usize, floats: usize, link_bytes: usize) -> Result<(), String> {
    let need = floats
        .checked_mul(4)
        .and_then(|b| b.checked_add(link_bytes))
        .and_then(|b| b.checked_mul(n))
        .ok_or_else(|| format!("{n} points of dimension {floats}: too many bytes"))?;
    if r.remaining() < need {
        return Err(format!(
            "{n} points need {need} bytes of vectors and layer 0, {} are left",
            r.remaining()
        ));
    }
    Ok(())
}

/// A float graph's nodes with their vectors read in (`n × dim` little-endian
/// floats, each checked finite) and their links still empty.
fn float_nodes(
    r: &mut Reader,
    n: usize,
    m0: usize,
    dim: usize,
    width: usize,
) -> Result<Nodes, String> {
    // After this check every product below fits: they are parts of `need`.
    ensure_left(r, n, dim, m0 * width)?;
    let raw = r.raw("vectors", n * dim * 4)?;
    let mut nodes = Nodes::new(n, m0, dim);
    for (p, bytes) in raw.chunks_exact(dim * 4).enumerate() {
        let v = nodes.vector_mut(p);
        for (x, b) in v.iter_mut().zip(bytes.chunks_exact(4)) {
            *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(format!("point {p} has a non-finite value"));
        }
    }
    Ok(nodes)
}

/// `count` links of `width` bytes, the empty slot mapped to [`INVALID`].
fn links(r: &mut Reader, what: &str, count: usize, width: usize) -> Result<Vec<u32>, WireError> {
    let bytes = count
        .checked_mul(width)
        .ok_or_else(|| WireError::from(format!("{what}: {count} values")))?;
    let raw = r.raw(what, bytes)?;
    let mut out = vec![0; count];
    decode_links(raw, width, &mut out);
    Ok(out)
}

/// Decodes `out.len()` links of `width` bytes from `raw`.
fn decode_links(raw: &[u8], width: usize, out: &mut [u32]) {
    if width == 4 {
        for (o, b) in out.iter_mut().zip(raw.chunks_exact(4)) {
            *o = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        return;
    }
    // Four links from three words: one load per word instead of one per
    // byte (at a million points this reads 64 million links); the tail
    // holds what an odd `M` leaves.
    let (body, tail) = raw.split_at(out.len() / 4 * 12);
    let (quads, rest) = out.split_at_mut(out.len() / 4 * 4);
    for (w, o) in body.chunks_exact(12).zip(quads.chunks_exact_mut(4)) {
        let a = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let b = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        let c = u32::from_le_bytes([w[8], w[9], w[10], w[11]]);
        o[0] = u24(a & 0xFF_FFFF);
        o[1] = u24((a >> 24) | ((b & 0xFFFF) << 8));
        o[2] = u24((b >> 16) | ((c & 0xFF) << 16));
        o[3] = u24(c >> 8);
    }
    for (b, o) in tail.chunks_exact(3).zip(rest) {
        *o = u24(u32::from(b[0]) | (u32::from(b[1]) << 8) | (u32::from(b[2]) << 16));
    }
}

/// A 3-byte link: the empty slot (all ones) becomes [`INVALID`] (a select,
/// not a branch, once compiled).
fn u24(p: u32) -> u32 {
    if p == MAX_POINTS_U24 as u32 {
        INVALID
    } else {
        p
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::super::BuildParams;
    use super::*;

    fn graph(n: usize, dim: usize) -> Graph {
        graph_m(n, dim, 7)
    }

    fn graph_m(n: usize, dim: usize, m: usize) -> Graph {
        let mut s = 0x2545_f491_4f6c_dd1d_u64;
        let data: Vec<f32> = (0..n * dim)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect();
        let ids: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
        let params = BuildParams {
            m,
            ef_construction: 40,
            ef_search: 50,
            neighbors: crate::index::NeighborSelection::Nearest,
            seed: 2,
        };
        Graph::build(ids, data, dim, &params).unwrap()
    }

    #[test]
    fn three_byte_links_of_every_count_read_back() {
        // Counts around the four-at-a-time step, with empty slots and the
        // largest link in every position.
        for count in 0..14usize {
            let want: Vec<u32> = (0..count as u32)
                .map(|i| match i % 3 {
                    0 => INVALID,
                    1 => MAX_POINTS_U24 as u32 - 1,
                    _ => i * 0x01_0203,
                })
                .collect();
            let mut bytes: Vec<u8> = want
                .iter()
                .flat_map(|p| p.to_le_bytes()[..3].to_vec())
                .collect();
            bytes.push(0xAB); // what follows is not read
            let mut r = Reader::new(&bytes);
            assert_eq!(
                links(&mut r, "links", count, 3).unwrap(),
                want,
                "{count} links"
            );
            assert_eq!(r.u8("after").unwrap(), 0xAB);
            let mut short = Reader::new(&bytes[..count * 3 - count.min(1)]);
            if count > 0 {
                assert!(links(&mut short, "links", count, 3).is_err());
            }
        }
    }

    fn packed(g: &Graph) -> Vec<u8> {
        let mut out = Vec::new();
        write(g, "fp-1", &mut out);
        out
    }

    #[test]
    fn float_and_int8_graphs_roundtrip() {
        let float = graph(300, 12);
        let mut quantized = float.clone();
        quantized.quantize(Quantization::Int8).unwrap();
        let mut residual = float.clone();
        residual.quantize(Quantization::Int8Residual).unwrap();
        for g in [&float, &quantized, &residual] {
            let bytes = packed(g);
            let mut r = Reader::new(&bytes);
            let back = read(&mut r, None).unwrap();
            r.finish().unwrap();
            assert_eq!((back.fingerprint.as_str(), back.dim), ("fp-1", 12));
            assert_eq!(&back.graph, g);
        }
        // Codes take a byte a value where floats take 4, plus a 4-byte scale
        // a point; links take 3 bytes each.
        assert_eq!(
            packed(&float).len() - packed(&quantized).len(),
            300 * 12 * 3 - 300 * 4
        );
        // Residual codes add a byte a value.
        assert_eq!(packed(&residual).len() - packed(&quantized).len(), 300 * 12);
        let links =
            float.nodes.flat_links().len() + float.upper.iter().map(Vec::len).sum::<usize>();
        assert!(packed(&quantized).len() < 300 * (8 + 4 + 12) + links * 3 + 64);
    }

    #[test]
    fn a_dimension_whose_bytes_overflow_is_an_error() {
        for dim in [1u64 << 40, 1 << 62, (1 << 62) + 1, u64::MAX / 3] {
            let mut bytes = vec![0]; // empty fingerprint
            put_varint(&mut bytes, dim);
            put_varint(&mut bytes, 1); // ef_search
            put_varint(&mut bytes, 1); // one point
            bytes.extend_from_slice(&[VECTORS_F32, 3]);
            put_varint(&mut bytes, 32); // M
            put_varint(&mut bytes, 0); // no upper layers
            bytes.extend_from_slice(&[0; 8]); // its id
            bytes.extend_from_slice(&[0xFF; 192]);
            let e = read(&mut Reader::new(&bytes), None).err();
            assert!(e.is_some(), "dimension {dim} was read");
        }
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_an_error() {
        let g = graph(40, 4);
        let bytes = packed(&g);
        for cut in 0..bytes.len() {
            let mut r = Reader::new(&bytes[..cut]);
            let whole = read(&mut r, None).and_then(|_| r.finish().map_err(String::from));
            assert!(whole.is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let mut r = Reader::new(&longer);
        read(&mut r, None).unwrap();
        assert!(r.finish().is_err());
    }

    #[test]
    fn bad_headers_are_named() {
        let g = graph(40, 4);
        let bytes = packed(&g);
        // fingerprint (1 + 4 bytes), dim, ef_search, n: one byte each here.
        let tag = 5 + 3;
        let mut bad = bytes.clone();
        bad[tag] = 7;
        let e = read(&mut Reader::new(&bad), None).err().unwrap();
        assert!(e.contains("unknown vector type 7"), "{e}");
        let mut bad = bytes.clone();
        bad[tag + 1] = 4;
        let e = read(&mut Reader::new(&bad), None).err().unwrap();
        assert!(e.contains("4-byte links for 40 points"), "{e}");
        // A point count the bytes cannot hold is refused before allocating.
        let mut bad = bytes[..7].to_vec();
        bad.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        bad.extend_from_slice(&bytes[8..]);
        let e = read(&mut Reader::new(&bad), None).err().unwrap();
        assert!(e.contains("points: length"), "{e}");
    }

    #[test]
    fn the_layout_without_m_reads_as_m_32() {
        let g = graph_m(200, 8, 32);
        let bytes = packed(&g);
        // fingerprint (1 + 4 bytes), dim, ef_search, n (two bytes), vector
        // type, width: then M, one byte.
        let at = 5 + 1 + 1 + 2 + 2;
        assert_eq!(bytes[at], 32);
        let mut old = bytes.clone();
        old.remove(at);
        let mut r = Reader::new(&old);
        assert_eq!(read(&mut r, Some(32)).unwrap().graph, g);
        r.finish().unwrap();
        // An M out of range is refused before its layers are read.
        let mut bad = bytes.clone();
        bad[at] = 65;
        let e = read(&mut Reader::new(&bad), None).err().unwrap();
        assert!(e.contains("M 65 is outside"), "{e}");
    }

    #[test]
    fn links_of_both_widths_keep_the_empty_slot() {
        let values = [0u32, 1, 0x12_3456, MAX_POINTS_U24 as u32 - 1, INVALID];
        for width in [3, 4] {
            let mut bytes = Vec::new();
            for p in values {
                bytes.extend_from_slice(&p.to_le_bytes()[..width]);
            }
            let back = links(&mut Reader::new(&bytes), "l", values.len(), width).unwrap();
            assert_eq!(back, values, "width {width}");
        }
        assert_eq!(link_bytes(1_000_000), 3);
        assert_eq!(link_bytes(MAX_POINTS_U24 - 1), 3);
        assert_eq!(link_bytes(MAX_POINTS_U24), 4);
    }
}
