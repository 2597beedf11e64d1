//! The index's parameters: graph construction, search breadth, segment
//! sizes and quantisation. Stored in the gallery manifest.

use super::*;

/// Parameters of the index. Stored in the gallery manifest; fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IndexConfig {
    /// Vectors in the growing segment before it is sealed into a graph.
    pub growing_capacity: usize,
    /// HNSW `M`: links per node on the upper layers, twice that on layer 0.
    /// More links cost memory and build time and raise the recall a given
    /// `ef` reaches; stored with each graph, so graphs of different `M` mix.
    pub m: usize,
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
            m: DEFAULT_M,
            ef_construction: 100,
            ef_search: 64,
            neighbors: NeighborSelection::default(),
            merge_factor: 4,
            seed: 0x6d65_7472_6963_616e, // "metrican"
            quantization: Quantization::None,
        }
    }
}

/// The `M` new graphs get unless the configuration says otherwise.
pub const DEFAULT_M: usize = 16;

/// How a node's graph neighbours are chosen while a HNSW graph is built. Only
/// the build reads it: a graph is searched the same way whichever built it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NeighborSelection {
    /// The HNSW paper's diversity heuristic (hnswlib's): a candidate is linked
    /// only when it is closer to the node than to every neighbour already
    /// linked. Fewer, more useful links, so both building and searching
    /// visit fewer nodes.
    #[default]
    Diverse,
    /// The diversity heuristic, then the candidates it pruned fill the rest of
    /// the list, so every list is full: more links, a little more recall at a
    /// given `ef` on hard data, slower.
    DiverseFill,
    /// The nearest candidates, no heuristic: the weakest graph on clustered data.
    Nearest,
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
    /// `Int8` plus one `i8` a dimension of what the codes rounded off (260
    /// bytes at dimension 128): the walk runs on the codes as with `Int8`, and
    /// the re-ranking reads both, so the scores and the recall are the float
    /// graph's to within a 254th of int8's rounding. For galleries that need
    /// recall int8 cannot reach (its ceiling is in the benchmarks' README) at
    /// about half the memory of `f32`.
    Int8Residual,
}

impl Quantization {
    /// The name `from_str` reads and the stats report.
    pub fn name(self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::Int8 => "int8",
            Quantization::Int8Residual => "int8-residual",
        }
    }
}

impl std::str::FromStr for Quantization {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" | "f32" => Ok(Quantization::None),
            "int8" => Ok(Quantization::Int8),
            "int8-residual" => Ok(Quantization::Int8Residual),
            other => Err(Error::BadInput(format!(
                "quantization {other:?}: expected none, int8 or int8-residual"
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
        if !graph::M_RANGE.contains(&self.m) {
            return Err(Error::BadInput(format!(
                "index m must be in {}..={}, got {}",
                graph::M_RANGE.start(),
                graph::M_RANGE.end(),
                self.m
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
        super::policy::size_tier(count / self.growing_capacity.max(1), self.merge_factor)
    }
}
