//! The gallery's stored records: the manifest (and its format-1 predecessor),
//! class records and the pages that hold them, and their encodings.

use super::*;

/// The manifest: the commit point of a gallery's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub fingerprint: String,
    pub dim: usize,
    pub next_class_id: u64,
    pub next_vector_id: u64,
    pub next_class_seq: u64,
    pub index: IndexManifest,
    pub pages: Vec<PageEntry>,
    /// Removed classes of which a listed page still holds a (stale) record.
    pub removed_classes: Vec<u64>,
    /// The adapted head (blob `head`), when the vectors were not embedded
    /// with the shipped model's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<HeadEntry>,
}

/// A format-1 manifest, read to migrate it.
#[derive(Deserialize)]
pub(super) struct ManifestV1 {
    pub(super) fingerprint: String,
    pub(super) dim: usize,
    pub(super) next_class_id: u64,
    pub(super) next_vector_id: u64,
    pub(super) next_class_seq: u64,
    pub(super) index: IndexManifest,
    pub(super) classes: Vec<ClassEntry>,
}

/// A format-1 class blob as its manifest lists it, in JSON the array
/// `[id, seq, bytes]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "array::ClassEntry", into = "array::ClassEntry")]
pub struct ClassEntry {
    /// The class whose record the blob holds.
    pub id: u64,
    /// The blob is `class-<seq>`.
    pub seq: u64,
    /// Size of the blob.
    pub bytes: u64,
}

/// The manifest's form of a `ClassEntry`, a JSON array. A tuple
/// struct of the same name, so that serde's message about a malformed entry
/// says `ClassEntry`.
mod array {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub(super) struct ClassEntry(u64, u64, u64);

    impl From<ClassEntry> for super::ClassEntry {
        fn from(ClassEntry(id, seq, bytes): ClassEntry) -> Self {
            super::ClassEntry { id, seq, bytes }
        }
    }

    impl From<super::ClassEntry> for ClassEntry {
        fn from(e: super::ClassEntry) -> Self {
            ClassEntry(e.id, e.seq, e.bytes)
        }
    }
}

/// A class record as stored.
#[derive(Serialize, Deserialize)]
pub(super) struct ClassRecord {
    pub(super) id: u64,
    pub(super) label: String,
    pub(super) vector_ids: Vec<u64>,
    /// JSON text (postcard cannot carry a self-describing `Value`).
    pub(super) metadata: Option<String>,
    pub(super) images: Vec<serde_bytes::ByteBuf>,
}

/// [`ClassRecord`] borrowed from a [`Class`], to encode without copying images
/// (postcard writes both the same way).
#[derive(Serialize)]
pub(super) struct ClassRecordRef<'a> {
    pub(super) id: u64,
    pub(super) label: &'a str,
    pub(super) vector_ids: &'a [u64],
    pub(super) metadata: Option<String>,
    pub(super) images: Vec<&'a serde_bytes::Bytes>,
}

#[derive(Debug, Clone)]
pub(super) struct Class {
    pub(super) label: String,
    pub(super) vector_ids: Vec<u64>,
    pub(super) metadata: Option<Value>,
    pub(super) images: Vec<Vec<u8>>,
    /// Sequence number of the page holding the class's current record; 0
    /// while it is in none (new, or read from a format-1 blob).
    pub(super) page: u64,
}

/// A format-1 class blob.
pub(super) fn class_blob(seq: u64) -> String {
    format!("class-{seq}")
}

impl Class {
    pub(super) fn record(&self, id: u64) -> Result<ClassRecordRef<'_>> {
        let metadata = match &self.metadata {
            Some(v) => Some(
                serde_json::to_string(v)
                    .map_err(|e| Error::Internal(format!("encoding class metadata: {e}")))?,
            ),
            None => None,
        };
        Ok(ClassRecordRef {
            id,
            label: &self.label,
            vector_ids: &self.vector_ids,
            metadata,
            images: self
                .images
                .iter()
                .map(|i| serde_bytes::Bytes::new(i))
                .collect(),
        })
    }

    pub(super) fn from_record(name: &str, record: ClassRecord) -> Result<(u64, Class)> {
        check_label(&record.label).map_err(|e| Error::corrupt(name, e.to_string()))?;
        blob::check_ids(name, "class id", [record.id])?;
        blob::check_ids(name, "vector id", record.vector_ids.iter().copied())?;
        let metadata = match record.metadata {
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|e| Error::corrupt(name, format!("metadata is not JSON: {e}")))?,
            ),
            None => None,
        };
        Ok((
            record.id,
            Class {
                label: record.label,
                vector_ids: record.vector_ids,
                metadata,
                images: record.images.into_iter().map(|b| b.into_vec()).collect(),
                page: 0,
            },
        ))
    }
}

/// Encodes the page holding `ids`' records.
pub(super) fn encode_page(classes: &BTreeMap<u64, Class>, ids: &[u64]) -> Result<Vec<u8>> {
    let mut records = Vec::with_capacity(ids.len());
    for &id in ids {
        let class = classes
            .get(&id)
            .ok_or_else(|| Error::Internal(format!("class {id} vanished")))?;
        records.push(class.record(id)?);
    }
    let payload = postcard::to_allocvec(&records)
        .map_err(|e| Error::Internal(format!("encoding a class page: {e}")))?;
    Ok(blob::seal(KIND_CLASS_PAGE, &payload))
}

/// Decodes a page into its records, in stored order.
#[cfg(test)]
pub(super) fn decode_page(name: &str, bytes: &[u8]) -> Result<Vec<(u64, Class)>> {
    let mut out = Vec::new();
    decode_page_into(name, bytes, &mut out)?;
    Ok(out)
}

/// Decodes a page, appending its records to `out` (nothing on error);
/// returns how many.
pub(super) fn decode_page_into(
    name: &str,
    bytes: &[u8],
    out: &mut Vec<(u64, Class)>,
) -> Result<usize> {
    let payload = blob::open(name, KIND_CLASS_PAGE, bytes)?;
    let records: Vec<ClassRecord> = blob::decode_all(name, payload)?;
    let start = out.len();
    out.reserve(records.len());
    for record in records {
        match Class::from_record(name, record) {
            Ok(r) => out.push(r),
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
    Ok(out.len() - start)
}

/// Decodes a format-1 class blob (one record).
pub(super) fn decode_v1_class(name: &str, bytes: &[u8]) -> Result<(u64, Class)> {
    let payload = blob::open(name, KIND_CLASS, bytes)?;
    let record: ClassRecord = blob::decode_all(name, payload)?;
    Class::from_record(name, record)
}

/// Reads a listed blob, checking the size the manifest gives.
pub(super) fn read_listed<'a>(
    blobs: &'a dyn BlobRead,
    name: &str,
    size: u64,
) -> Result<Cow<'a, [u8]>> {
    let bytes = blobs
        .read(name)?
        .ok_or_else(|| Error::corrupt(name, "missing (listed in the manifest)"))?;
    if bytes.len() as u64 != size {
        return Err(Error::corrupt(
            name,
            format!("{} bytes, the manifest says {size}", bytes.len()),
        ));
    }
    Ok(bytes)
}

pub(super) fn encode_manifest(m: &Manifest) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(m)
        .map_err(|e| Error::Internal(format!("encoding the manifest: {e}")))?;
    Ok(blob::seal(KIND_MANIFEST, &json))
}

/// The manifest, and for format 1 the class blobs it lists (its `pages` are
/// then empty).
pub(super) fn decode_manifest(bytes: &[u8]) -> Result<(Manifest, Vec<ClassEntry>)> {
    let (manifest, v1_classes) = parse_manifest(bytes)?;
    let counters = [
        manifest.next_class_id,
        manifest.next_vector_id,
        manifest.next_class_seq,
    ];
    blob::check_ids(MANIFEST, "a counter", counters)?;
    blob::check_ids(MANIFEST, "a page", manifest.pages.iter().map(|p| p.seq))?;
    blob::check_ids(
        MANIFEST,
        "a removed class",
        manifest.removed_classes.iter().copied(),
    )?;
    let v1 = v1_classes.iter().flat_map(|c| [c.id, c.seq]);
    blob::check_ids(MANIFEST, "a class entry", v1)?;
    Ok((manifest, v1_classes))
}

fn parse_manifest(bytes: &[u8]) -> Result<(Manifest, Vec<ClassEntry>)> {
    let json = blob::open(MANIFEST, KIND_MANIFEST, bytes)?;
    let value: Value = serde_json::from_slice(json)
        .map_err(|e| Error::corrupt(MANIFEST, format!("not JSON: {e}")))?;
    let bad = |e: serde_json::Error| Error::corrupt(MANIFEST, format!("bad manifest: {e}"));
    match value.get("format").and_then(Value::as_u64) {
        Some(v) if v == GALLERY_FORMAT as u64 => {
            Ok((serde_json::from_value(value).map_err(bad)?, Vec::new()))
        }
        Some(1) => {
            let v1: ManifestV1 = serde_json::from_value(value).map_err(bad)?;
            let manifest = Manifest {
                format: 1,
                fingerprint: v1.fingerprint,
                dim: v1.dim,
                next_class_id: v1.next_class_id,
                next_vector_id: v1.next_vector_id,
                next_class_seq: v1.next_class_seq,
                index: v1.index,
                pages: Vec::new(),
                removed_classes: Vec::new(),
                head: None,
            };
            Ok((manifest, v1.classes))
        }
        Some(v) => Err(Error::corrupt(
            MANIFEST,
            format!(
                "gallery format {v} is not supported (this build reads formats 1 and {GALLERY_FORMAT})"
            ),
        )),
        None => Err(Error::corrupt(MANIFEST, "no gallery format version")),
    }
}

/// Bounds-checked little-endian reader over an export payload.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| Error::corrupt("export", "truncated blob list"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    pub(super) fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    pub(super) fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
}
