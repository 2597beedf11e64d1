//! What the index writes into the gallery manifest: its configuration, the
//! blobs it consists of, and its tombstones. These are stored records: a
//! field renamed here is a gallery that no longer opens.

use serde::{Deserialize, Serialize};

use super::IndexConfig;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_kinds_print_as_the_manifest_names_them() {
        assert_eq!(SegmentKind::Hnsw.to_string(), "hnsw");
        assert_eq!(
            serde_json::to_string(&SegmentKind::Growing).unwrap(),
            "\"growing\""
        );
    }
}
