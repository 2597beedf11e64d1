//! Graph layouts stored before the [`packed`](super::packed) one, still read
//! so that galleries written then keep opening: a float graph in
//! instant-distance's own serialized form (`HnswMap<Point, u64>` through serde,
//! blob kind `SEGH`), a quantised one in a varint layout (`SEGQ`). Nothing
//! writes them any more except the tests, which need old blobs to read.

use super::nodes::Nodes;
use super::{Graph, LEGACY_M, MapLayout, Vectors};
use crate::blob::wire::{Reader, WireError};

/// A quantised graph as read back, not yet checked: [`QuantizedLayout::check`]
/// makes it a [`Graph`].
pub(crate) struct QuantizedLayout {
    ef_search: u64,
    ids: Vec<u64>,
    scales: Vec<f32>,
    codes: Vec<i8>,
    zero: Vec<u32>,
    upper: Vec<Vec<u32>>,
}

impl QuantizedLayout {
    /// Reads the varint layout: `ef_search`, then the ids, the scales, the
    /// codes as one byte block, layer 0 with `2M` slots per node and each
    /// upper layer with `M`, every sequence prefixed by its length.
    pub(crate) fn read(r: &mut Reader) -> Result<QuantizedLayout, WireError> {
        let ef_search = r.u64("ef_search")?;
        let ids = r.u64_seq("ids")?;
        let scales = r.f32_seq("scales")?;
        let codes = r.bytes("codes")?.iter().map(|&b| b as i8).collect();
        let zero = r.u32_seq("layer 0")?;
        let layers = r.len("layers", 1)?;
        let upper = (0..layers)
            .map(|_| r.u32_seq("upper layer"))
            .collect::<Result<_, _>>()?;
        Ok(QuantizedLayout {
            ef_search,
            ids,
            scales,
            codes,
            zero,
            upper,
        })
    }

    pub(crate) fn check(self, dim: usize) -> Result<Graph, String> {
        let n = self.ids.len();
        if self.scales.len() != n || self.codes.len() != n * dim {
            return Err(format!(
                "{n} ids but {} scales and {} codes (dimension {dim})",
                self.scales.len(),
                self.codes.len()
            ));
        }
        if let Some(p) = self.scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
            return Err(format!("point {p} has scale {}", self.scales[p]));
        }
        let vectors = Vectors::I8 {
            codes: self.codes,
            scales: self.scales,
            residual: None,
        };
        let nodes = Nodes::from_parts(&self.zero, 2 * LEGACY_M, &[], 0)?;
        drop(self.zero);
        Graph::checked(
            dim,
            LEGACY_M,
            self.ef_search,
            vectors,
            self.ids,
            nodes,
            self.upper,
        )
    }
}

/// Reads a float graph in instant-distance's layout (as instant-distance
/// serializes it, and the tests' `Graph::serializable`) and checks it:
/// every point must have `dim` values and every reference must be in range.
pub(crate) fn read_stored(r: &mut Reader, dim: usize) -> Result<Graph, String> {
    let mut layout = MapLayout::read(r, |r| {
        let n = r.len("points", 1)?;
        let mut vectors = Vec::with_capacity(n.saturating_mul(dim).min(r.remaining() / 4));
        for p in 0..n {
            let len = r.len("point", 4)?;
            if len != dim {
                return Err(WireError::from(format!(
                    "point {p} has {len} values, expected {dim}"
                )));
            }
            r.f32s_into("point", len, &mut vectors)?;
        }
        Ok(vectors)
    })?;
    let vectors = std::mem::take(&mut layout.points);
    Graph::from_layout(layout, dim, vectors)
}

/// The legacy layouts written again, which only the tests do: they need old
/// blobs to read, and no old writer is left to make them.
#[cfg(test)]
mod write {
    use serde::Serialize;
    use serde::ser::{SerializeSeq, SerializeStruct, SerializeTuple, Serializer};

    use super::super::{Graph, LEGACY_M, Vectors};

    impl Graph {
        /// Serializes a float graph in instant-distance's `HnswMap<Point, u64>`
        /// layout (a quantised one has [`Graph::quantized_layout`]): segments were
        /// stored so before the packed layout, and the tests write them this way.
        pub(crate) fn serializable(&self) -> impl Serialize + '_ {
            MapRef(self)
        }

        /// A quantised graph's serializable form as stored before the packed
        /// layout; `None` for a float graph.
        pub(crate) fn quantized_layout(&self) -> Option<impl Serialize + '_> {
            let Vectors::I8 { codes, scales, .. } = &self.vectors else {
                return None;
            };
            Some(QuantizedLayoutRef {
                ef_search: self.ef_search as u64,
                ids: &self.ids,
                scales,
                // i8 and u8 share a layout; postcard writes bytes as one block.
                codes: serde_bytes::ByteBuf::from(
                    codes.iter().map(|&c| c as u8).collect::<Vec<u8>>(),
                ),
                zero: self.nodes.flat_links(),
                upper: &self.upper,
            })
        }
    }

    /// A quantised graph's serialized form: its ids, scales, codes (as bytes) and
    /// links (layer 0 with `2M` slots per node, upper layers with `M`).
    #[derive(Serialize)]
    struct QuantizedLayoutRef<'a> {
        ef_search: u64,
        ids: &'a [u64],
        scales: &'a [f32],
        codes: serde_bytes::ByteBuf,
        zero: Vec<u32>,
        upper: &'a [Vec<u32>],
    }

    struct MapRef<'a>(&'a Graph);

    impl Serialize for MapRef<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let g = self.0;
            let mut map = s.serialize_struct("HnswMap", 2)?;
            map.serialize_field("hnsw", &HnswRef(g))?;
            map.serialize_field("values", &g.ids)?;
            map.end()
        }
    }

    struct HnswRef<'a>(&'a Graph);

    impl Serialize for HnswRef<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let g = self.0;
            let mut h = s.serialize_struct("Hnsw", 4)?;
            h.serialize_field("ef_search", &g.ef_search)?;
            h.serialize_field("points", &RowsRef(g))?;
            let zero = g.nodes.flat_links();
            h.serialize_field("zero", &LinksRef::<{ 2 * LEGACY_M }>(&zero))?;
            let layers: Vec<LinksRef<LEGACY_M>> =
                g.upper.iter().map(|l| LinksRef::<LEGACY_M>(l)).collect();
            h.serialize_field("layers", &layers)?;
            h.end()
        }
    }

    struct RowsRef<'a>(&'a Graph);

    impl Serialize for RowsRef<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let g = self.0;
            let mut seq = s.serialize_seq(Some(g.len()))?;
            let mut failed = None;
            g.for_each(|_, row| {
                if failed.is_none()
                    && let Err(e) = seq.serialize_element(row)
                {
                    failed = Some(e);
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            seq.end()
        }
    }

    struct LinksRef<'a, const N: usize>(&'a [u32]);

    impl<const N: usize> Serialize for LinksRef<'_, N> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.len() / N))?;
            for node in self.0.chunks_exact(N) {
                seq.serialize_element(&NodeRef(node))?;
            }
            seq.end()
        }
    }

    struct NodeRef<'a>(&'a [u32]);

    impl Serialize for NodeRef<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_tuple(self.0.len())?;
            for p in self.0 {
                t.serialize_element(&PointIdRef(*p))?;
            }
            t.end()
        }
    }

    struct PointIdRef(u32);

    impl Serialize for PointIdRef {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_newtype_struct("PointId", &self.0)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use instant_distance::Builder;
    use serde::Serialize;

    use super::*;
    use crate::index::Quantization;
    use crate::index::distance;
    use crate::index::graph::tests::params;
    use crate::index::test_data::unit_vectors;

    /// The point type legacy float segments were written with:
    /// instant-distance's own serialization of it is the stored format.
    #[derive(Clone, Serialize)]
    #[serde(transparent)]
    pub(crate) struct Boxed(pub(crate) Box<[f32]>);

    impl instant_distance::Point for Boxed {
        fn distance(&self, other: &Self) -> f32 {
            distance::cosine_distance(&self.0, &other.0)
        }
    }

    #[test]
    fn reads_instant_distances_own_bytes_and_writes_them_back() {
        let (n, dim) = (700, 16);
        let data = unit_vectors(n, dim, 3);
        let ids: Vec<u64> = (0..n as u64).map(|i| i * 7 + 1).collect();
        let points = data
            .chunks_exact(dim)
            .map(|c| Boxed(c.to_vec().into_boxed_slice()))
            .collect();
        let map = Builder::default()
            .ef_search(40)
            .seed(2)
            .build(points, ids.clone());
        let theirs = postcard::to_allocvec(&map).unwrap();
        let mut r = Reader::new(&theirs);
        let graph = read_stored(&mut r, dim).unwrap();
        assert_eq!(r.remaining(), 0, "every byte is the graph's");
        assert_eq!(graph.len(), n);
        assert_eq!(graph.ef_search(), 40);
        assert!(!graph.upper.is_empty(), "700 points make upper layers");
        let ours = postcard::to_allocvec(&graph.serializable()).unwrap();
        assert_eq!(ours, theirs, "byte for byte instant-distance's layout");
        // Both searches agree on what they find.
        let mut search = instant_distance::Search::default();
        let mut found = Vec::new();
        for q in unit_vectors(30, dim, 4).chunks_exact(dim) {
            let q = Boxed(q.to_vec().into_boxed_slice());
            let theirs: Vec<u64> = map
                .search(&q, &mut search)
                .take(10)
                .map(|m| *m.value)
                .collect();
            graph.search(&q.0, 40, &mut found);
            let ours: Vec<u64> = found.iter().take(10).map(|(_, id)| *id).collect();
            let same = ours.iter().filter(|id| theirs.contains(id)).count();
            assert!(same >= 9, "{ours:?} vs {theirs:?}");
            assert_eq!(ours[0], theirs[0]);
        }
        // The wrong dimension is refused by name.
        let err = read_stored(&mut Reader::new(&theirs), 8).unwrap_err();
        assert!(err.contains("expected 8"), "{err}");
    }

    #[test]
    fn quantized_varint_layout_reads_back_and_refuses_damage() {
        let (n, dim) = (300, 16);
        let data = unit_vectors(n, dim, 11);
        let ids: Vec<u64> = (0..n as u64).collect();
        let float = Graph::build(ids.clone(), data.clone(), dim, &params(64)).unwrap();
        let mut quant = float.clone();
        quant.quantize(Quantization::Int8).unwrap();
        let bytes = postcard::to_allocvec(&quant.quantized_layout().unwrap()).unwrap();
        let read = |bytes: &[u8]| {
            let mut r = Reader::new(bytes);
            let layout = QuantizedLayout::read(&mut r).unwrap();
            assert_eq!(r.remaining(), 0);
            layout
        };
        let back = read(&bytes).check(dim).unwrap();
        assert_eq!(back, quant);
        assert!(float.quantized_layout().is_none());
        let again = postcard::to_allocvec(&back.quantized_layout().unwrap()).unwrap();
        assert_eq!(again, bytes);
        // The wrong dimension, and links out of range, are refused.
        let layout = read(&bytes);
        assert!(layout.check(dim + 1).unwrap_err().contains("codes"));
        let mut layout = read(&bytes);
        layout.zero[5] = n as u32 + 3;
        assert!(layout.check(dim).unwrap_err().contains("links to point"));
        let mut layout = read(&bytes);
        layout.scales[2] = f32::NAN;
        assert!(layout.check(dim).unwrap_err().contains("scale"));
    }
}
