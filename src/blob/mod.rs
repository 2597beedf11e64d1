//! The lowest layer: named, checksummed byte blobs.
//!
//! Everything MetricANN persists (the gallery manifest, index segments, growing
//! chunks, class records, exports) is a *blob*: a byte string framed by [`seal`]
//! and checked by [`open`]. A store (memory, file system, IndexedDB) only sees
//! names and bytes; it applies mutations as whole [`ChangeSet`]s.
//!
//! # Frame layout (all integers little-endian)
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `b"MANB"` |
//! | 4 | 2 | format version ([`FORMAT_VERSION`]) |
//! | 6 | 4 | kind (four ASCII bytes, e.g. `b"MNFT"`) |
//! | 10 | 8 | payload length `n` |
//! | 18 | n | payload |
//! | 18 + n | 8 | XXH3-64 of bytes `0 .. 18 + n` |
//!
//! Version 1 frames, written before, end in a 4-byte CRC-32 (IEEE) instead and
//! are read as before. The checksum changed because a gallery of a million
//! vectors is hundreds of megabytes checked on every page load: CRC-32 ran at
//! about 0.6 GB/s in wasm (no carry-less multiply there), XXH3 has a `simd128`
//! path and still catches every error a storage layer makes short of a
//! deliberate forgery, which no checksum here defends against.

use std::borrow::Cow;

use crate::{Error, Result};

pub mod wire;

/// The first four bytes of every blob.
pub const MAGIC: [u8; 4] = *b"MANB";

/// The frame format this build writes (it reads this and [`FORMAT_VERSION_CRC32`]).
pub const FORMAT_VERSION: u16 = 2;

/// The first frame format, checked by CRC-32; still read.
pub const FORMAT_VERSION_CRC32: u16 = 1;

/// Bytes before the payload: magic, version, kind, payload length.
pub const HEADER_LEN: usize = 4 + 2 + 4 + 8;

/// Bytes after the payload: the XXH3-64 checksum.
pub const TRAILER_LEN: usize = 8;

/// Bytes after the payload of a version-1 frame: its CRC-32.
const TRAILER_LEN_CRC32: usize = 4;

/// Bytes after the payload of a frame of `version`, if this build reads it.
fn trailer_len(version: u16) -> Option<usize> {
    match version {
        FORMAT_VERSION => Some(TRAILER_LEN),
        FORMAT_VERSION_CRC32 => Some(TRAILER_LEN_CRC32),
        _ => None,
    }
}

fn checksum(body: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(body)
}

/// Ids, sequence numbers and counters a gallery stores stay below 2^53 (exact
/// as a JavaScript number). A stored one at or above it is corrupt: counting
/// on from it could otherwise overflow.
pub const MAX_ID: u64 = 1 << 53;

/// An error unless every value of `what` in blob `name` is below [`MAX_ID`].
pub fn check_ids(name: &str, what: &str, ids: impl IntoIterator<Item = u64>) -> Result<()> {
    match ids.into_iter().find(|&id| id >= MAX_ID) {
        Some(id) => Err(Error::corrupt(
            name,
            format!("{what} {id} is out of range (at most 2^53)"),
        )),
        None => Ok(()),
    }
}

/// Frames `payload` as a blob of the given `kind`.
pub fn seal(kind: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = start_frame(payload.len());
    out.extend_from_slice(payload);
    finish_frame(kind, out)
}

/// A buffer to write a payload into after a frame header's worth of room,
/// for [`finish_frame`]: a payload of hundreds of megabytes (a large graph)
/// is then framed where it was written instead of copied.
pub fn start_frame(payload_hint: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload_hint + TRAILER_LEN);
    out.resize(HEADER_LEN, 0);
    out
}

/// Frames what follows the room [`start_frame`] left as a blob of `kind`.
pub fn finish_frame(kind: [u8; 4], mut out: Vec<u8>) -> Vec<u8> {
    let payload = (out.len() - HEADER_LEN) as u64;
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC);
    header[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[6..10].copy_from_slice(&kind);
    header[10..].copy_from_slice(&payload.to_le_bytes());
    out[..HEADER_LEN].copy_from_slice(&header);
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Checks a blob frame and returns its payload.
///
/// `name` only labels the error: every failure is an [`Error::Corrupt`] naming
/// the blob and saying what was wrong (bad magic, unknown version, wrong kind,
/// truncation, trailing bytes, checksum mismatch).
pub fn open<'a>(name: &str, kind: [u8; 4], bytes: &'a [u8]) -> Result<&'a [u8]> {
    let corrupt = |reason: String| Error::corrupt(name, reason);
    if bytes.is_empty() {
        return Err(corrupt("empty (0 bytes)".into()));
    }
    if bytes.len() < MAGIC.len() || bytes[..4] != MAGIC {
        let shown = &bytes[..bytes.len().min(4)];
        if MAGIC.starts_with(shown) && bytes.len() < 4 {
            return Err(corrupt(format!("truncated: {} bytes", bytes.len())));
        }
        return Err(corrupt(format!(
            "bad magic {} (expected {})",
            show_tag(shown),
            show_tag(&MAGIC)
        )));
    }
    if bytes.len() < HEADER_LEN + TRAILER_LEN_CRC32 {
        return Err(corrupt(format!(
            "truncated: {} bytes, shorter than the {}-byte frame",
            bytes.len(),
            HEADER_LEN + TRAILER_LEN_CRC32
        )));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let Some(trailer) = trailer_len(version) else {
        return Err(corrupt(format!(
            "unknown blob format version {version} (this build reads versions \
             {FORMAT_VERSION_CRC32} and {FORMAT_VERSION})"
        )));
    };
    let found_kind = &bytes[6..10];
    if found_kind != kind {
        return Err(corrupt(format!(
            "wrong kind {} (expected {})",
            show_tag(found_kind),
            show_tag(&kind)
        )));
    }
    check_length(name, bytes, trailer)?;
    let body_end = bytes.len() - trailer;
    let mut sum_bytes = [0u8; 8];
    sum_bytes[..trailer].copy_from_slice(&bytes[body_end..]);
    let stored = u64::from_le_bytes(sum_bytes);
    let computed = if version == FORMAT_VERSION {
        checksum(&bytes[..body_end])
    } else {
        u64::from(crc32fast::hash(&bytes[..body_end]))
    };
    if stored != computed {
        let width = trailer * 2;
        return Err(corrupt(format!(
            "checksum mismatch (stored {stored:0width$x}, computed {computed:0width$x})"
        )));
    }
    Ok(&bytes[HEADER_LEN..body_end])
}

/// The frame's declared payload length against its actual size.
fn check_length(name: &str, bytes: &[u8], trailer: usize) -> Result<()> {
    let corrupt = |reason: String| Error::corrupt(name, reason);
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&bytes[10..18]);
    let declared = u64::from_le_bytes(len_bytes);
    let expected_total = usize::try_from(declared)
        .ok()
        .and_then(|n| n.checked_add(HEADER_LEN + trailer));
    match expected_total {
        Some(total) if total == bytes.len() => Ok(()),
        Some(total) if total > bytes.len() => Err(corrupt(format!(
            "truncated: {} bytes, the header declares {total}",
            bytes.len()
        ))),
        Some(total) => Err(corrupt(format!(
            "{} trailing bytes after the {total}-byte frame",
            bytes.len() - total
        ))),
        None => Err(corrupt(format!(
            "truncated: {} bytes, the header declares a {declared}-byte payload",
            bytes.len()
        ))),
    }
}

/// The kind of a blob frame, if `bytes` starts like one (no checksum check).
pub fn peek_kind(bytes: &[u8]) -> Option<[u8; 4]> {
    if bytes.len() < HEADER_LEN || bytes[..4] != MAGIC {
        return None;
    }
    let mut kind = [0u8; 4];
    kind.copy_from_slice(&bytes[6..10]);
    Some(kind)
}

/// Four tag bytes as text when printable, as hex otherwise.
fn show_tag(tag: &[u8]) -> String {
    if !tag.is_empty() && tag.iter().all(|b| b.is_ascii_graphic()) {
        format!("\"{}\"", String::from_utf8_lossy(tag))
    } else {
        let hex: Vec<String> = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("0x{}", hex.join(""))
    }
}

/// Whether `name` is acceptable as a blob name in every store: 1–200 bytes of
/// ASCII letters, digits, `-`, `_` and `.`, not starting with `.` (the file-system
/// store keeps its temp and lock files under dot names).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// One atomic mutation of a store: a store applies all of it or none of it.
///
/// The gallery's manifest is one of the puts, named [`MANIFEST`]; stores write it
/// last (it is the commit point) and perform the deletes after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Blobs to create or replace: name and framed bytes.
    pub puts: Vec<(String, Vec<u8>)>,
    /// Blobs to remove (missing ones are ignored).
    pub deletes: Vec<String>,
}

/// The name of the blob that commits a gallery's state.
pub const MANIFEST: &str = "manifest";

impl ChangeSet {
    /// An empty change set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether applying this would change nothing.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }

    /// Adds a put.
    pub fn put(&mut self, name: impl Into<String>, bytes: Vec<u8>) {
        self.puts.push((name.into(), bytes));
    }

    /// Adds a delete.
    pub fn delete(&mut self, name: impl Into<String>) {
        self.deletes.push(name.into());
    }

    /// Appends another change set's puts and deletes after this one's.
    pub fn extend(&mut self, other: ChangeSet) {
        self.puts.extend(other.puts);
        self.deletes.extend(other.deletes);
    }

    /// This change set followed by `other` (for chaining).
    pub fn then(mut self, other: ChangeSet) -> ChangeSet {
        self.extend(other);
        self
    }

    /// Total bytes of the puts.
    pub fn put_bytes(&self) -> u64 {
        self.puts.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// The manifest put, if this change set has one.
    pub fn manifest(&self) -> Option<&[u8]> {
        self.puts
            .iter()
            .rev()
            .find(|(name, _)| name == MANIFEST)
            .map(|(_, b)| b.as_slice())
    }
}

/// Read access to named blobs.
pub trait BlobRead {
    /// The bytes of blob `name`, or `None` when there is no such blob.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>>;

    /// As [`BlobRead::get`], borrowing the bytes where the store holds them in
    /// memory: opening a gallery of a million vectors reads hundreds of
    /// megabytes, and a copy of each blob on the way was a good part of it.
    fn read(&self, name: &str) -> Result<Option<Cow<'_, [u8]>>> {
        Ok(self.get(name)?.map(Cow::Owned))
    }
}

/// A blob that could not be loaded: its name and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    /// The blob's name.
    pub blob: String,
    /// What was wrong with it.
    pub reason: String,
}

impl Damage {
    /// The damage an error describes (the blob named by a `Corrupt` error, or `name`).
    pub fn from_error(name: &str, err: &Error) -> Self {
        match err {
            Error::Corrupt { name, reason } => Damage {
                blob: name.clone(),
                reason: reason.clone(),
            },
            other => Damage {
                blob: name.to_string(),
                reason: other.to_string(),
            },
        }
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.blob, self.reason)
    }
}

/// postcard-decodes the whole of `payload` (trailing bytes are corruption too).
pub(crate) fn decode_all<'de, T: serde::Deserialize<'de>>(
    name: &str,
    payload: &'de [u8],
) -> Result<T> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: [u8; 4] = *b"TEST";

    fn reason(err: Error) -> String {
        match err {
            Error::Corrupt { name, reason } => {
                assert_eq!(name, "blob-1");
                reason
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn roundtrip() {
        for payload in [&b""[..], b"x", b"hello world", &[0u8; 1000]] {
            let sealed = seal(KIND, payload);
            assert_eq!(sealed.len(), HEADER_LEN + payload.len() + TRAILER_LEN);
            assert_eq!(open("blob-1", KIND, &sealed).unwrap(), payload);
            assert_eq!(peek_kind(&sealed), Some(KIND));
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let sealed = seal(KIND, b"abc");
        assert_eq!(&sealed[0..4], b"MANB");
        assert_eq!(&sealed[4..6], &2u16.to_le_bytes());
        assert_eq!(&sealed[6..10], b"TEST");
        assert_eq!(&sealed[10..18], &3u64.to_le_bytes());
        assert_eq!(&sealed[18..21], b"abc");
        assert_eq!(
            &sealed[21..],
            &xxhash_rust::xxh3::xxh3_64(&sealed[..21]).to_le_bytes()
        );
        // XXH3-64's published value for the empty input: the checksum is the
        // standard one, which other tools can recompute.
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2d06_8005_38d3_94c2);
    }

    /// A frame as version 1 wrote it: CRC-32 trailer.
    fn seal_v1(kind: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&kind);
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn version_1_frames_still_open_and_are_checked() {
        for payload in [&b""[..], b"x", b"hello world"] {
            let old = seal_v1(KIND, payload);
            assert_eq!(open("blob-1", KIND, &old).unwrap(), payload);
            for i in 0..old.len() {
                let mut bad = old.clone();
                bad[i] ^= 0x10;
                assert!(open("blob-1", KIND, &bad).is_err(), "flip in byte {i}");
            }
            for cut in 0..old.len() {
                assert!(open("blob-1", KIND, &old[..cut]).is_err(), "cut at {cut}");
            }
        }
        let mut bad = seal_v1(KIND, b"abc");
        bad[HEADER_LEN] ^= 0x01;
        let r = reason(open("blob-1", KIND, &bad).unwrap_err());
        assert!(r.contains("checksum mismatch"), "{r}");
    }

    #[test]
    fn bad_magic() {
        let mut sealed = seal(KIND, b"abc");
        sealed[0] = b'X';
        assert!(reason(open("blob-1", KIND, &sealed).unwrap_err()).contains("bad magic"));
        let r = reason(open("blob-1", KIND, b"\x89PNG\r\n\x1a\n....").unwrap_err());
        assert!(r.contains("bad magic 0x89504e47"), "{r}");
    }

    #[test]
    fn unknown_version_is_named() {
        let mut sealed = seal(KIND, b"abc");
        sealed[4..6].copy_from_slice(&7u16.to_le_bytes());
        let r = reason(open("blob-1", KIND, &sealed).unwrap_err());
        assert!(r.contains("version 7"), "{r}");
        assert!(r.contains("reads versions 1 and 2"), "{r}");
    }

    #[test]
    fn wrong_kind() {
        let sealed = seal(*b"SEGH", b"abc");
        let r = reason(open("blob-1", KIND, &sealed).unwrap_err());
        assert!(r.contains("wrong kind \"SEGH\""), "{r}");
        assert!(r.contains("\"TEST\""), "{r}");
    }

    #[test]
    fn truncation_at_every_length() {
        let sealed = seal(KIND, b"some payload");
        for cut in 0..sealed.len() {
            let r = reason(open("blob-1", KIND, &sealed[..cut]).unwrap_err());
            assert!(
                r.contains("truncated") || r.contains("empty"),
                "cut at {cut}: {r}"
            );
        }
    }

    #[test]
    fn trailing_bytes() {
        let mut sealed = seal(KIND, b"abc");
        sealed.push(0);
        assert!(reason(open("blob-1", KIND, &sealed).unwrap_err()).contains("trailing"));
    }

    #[test]
    fn huge_declared_length_is_truncation_not_panic() {
        let mut sealed = seal(KIND, b"abc");
        sealed[10..18].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(reason(open("blob-1", KIND, &sealed).unwrap_err()).contains("truncated"));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let sealed = seal(KIND, b"payload bytes");
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    open("blob-1", KIND, &bad).is_err(),
                    "flip of bit {bit} in byte {i} went unnoticed"
                );
            }
        }
        let mut bad = sealed.clone();
        bad[HEADER_LEN] ^= 0x01;
        assert!(reason(open("blob-1", KIND, &bad).unwrap_err()).contains("checksum mismatch"));
    }

    #[test]
    fn names() {
        assert!(valid_name("seg-12"));
        assert!(valid_name("manifest"));
        assert!(!valid_name(""));
        assert!(!valid_name(".lock"));
        assert!(!valid_name("../etc/passwd"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("a\\b"));
        assert!(!valid_name(&"x".repeat(201)));
    }

    #[test]
    fn change_set_helpers() {
        let mut cs = ChangeSet::new();
        assert!(cs.is_empty());
        cs.put("grow-1", vec![1, 2]);
        cs.put(MANIFEST, vec![3]);
        let mut other = ChangeSet::new();
        other.delete("seg-0");
        cs.extend(other);
        assert!(!cs.is_empty());
        let mut last = ChangeSet::new();
        last.delete("grow-1");
        let cs = cs.then(last);
        assert_eq!(cs.deletes, vec!["seg-0".to_string(), "grow-1".to_string()]);
        assert_eq!(cs.put_bytes(), 3);
        assert_eq!(cs.manifest(), Some(&[3u8][..]));
    }

    #[test]
    fn damage_from_error() {
        let d = Damage::from_error("x", &Error::corrupt("seg-3", "checksum mismatch"));
        assert_eq!(d.blob, "seg-3");
        assert_eq!(d.to_string(), "seg-3: checksum mismatch");
        let d = Damage::from_error("class-2", &Error::BadInput("nope".into()));
        assert_eq!(d.blob, "class-2");
        assert!(d.reason.contains("nope"));
    }
}
