//! A reader of postcard's wire format for payloads too large for serde.
//!
//! serde decodes a sequence element by element through a visitor: right for
//! small records, slow for the arrays of a million-vector graph (64 million
//! links at a million points, each one a varint). This reader walks the same
//! bytes postcard writes (the format stays postcard's: what serde wrote, this
//! reads, and the other way round) and decodes an array in one tight loop into
//! memory sized once.
//!
//! postcard's encoding, as used here: unsigned integers are LEB128 varints
//! (at most 5 bytes for a `u32`, 10 for a `u64`), `f32` is 4 bytes
//! little-endian, a sequence, string or byte string is its length (a varint)
//! then its elements, an `Option` is a tag byte (0 or 1) then the value, and a
//! struct or tuple is its fields in order with nothing between them.
//!
//! Every read checks the bytes: a length that cannot fit in what is left, a
//! varint too long for its type, or anything past the end is an error, never
//! a panic or an allocation sized by untrusted input.

use std::fmt;

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for WireError {
    fn from(what: String) -> WireError {
        WireError(what)
    }
}

impl From<WireError> for String {
    fn from(e: WireError) -> String {
        e.0
    }
}

type Result<T> = std::result::Result<T, WireError>;

fn err<T>(what: impl Into<String>) -> Result<T> {
    Err(WireError(what.into()))
}

/// A cursor over a postcard payload.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// Decodes one LEB128 varint of at most `max_bytes` bytes whose value fits in
/// `bits` bits, from `bytes[*at..]`.
#[inline(always)]
fn varint(bytes: &[u8], at: &mut usize, bits: u32) -> Option<u64> {
    let first = *bytes.get(*at)?;
    *at += 1;
    if first < 0x80 {
        return Some(first as u64);
    }
    let mut value = (first & 0x7f) as u64;
    let mut shift = 7;
    loop {
        let b = *bytes.get(*at)?;
        *at += 1;
        // The last byte a type allows may only carry the bits left.
        if shift + 7 > bits && (b as u64) >> (bits - shift) != 0 {
            return None;
        }
        value |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Some(value);
        }
        shift += 7;
        if shift >= bits {
            return None;
        }
    }
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// Fails unless every byte was read (trailing bytes are corruption).
    pub fn finish(self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => err(format!("{n} undecoded bytes after the record")),
        }
    }

    pub fn u64(&mut self, what: &str) -> Result<u64> {
        varint(self.bytes, &mut self.at, 64)
            .map_or_else(|| err(format!("{what}: bad or truncated varint")), Ok)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8> {
        let Some(&b) = self.bytes.get(self.at) else {
            return err(format!("{what}: truncated"));
        };
        self.at += 1;
        Ok(b)
    }

    /// A sequence length, which must be possible given what is left when each
    /// element takes at least `min_element_bytes` bytes.
    pub fn len(&mut self, what: &str, min_element_bytes: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let fits = usize::try_from(n)
            .ok()
            .filter(|&n| n.saturating_mul(min_element_bytes.max(1)) <= self.remaining());
        match fits {
            Some(n) => Ok(n),
            None => err(format!(
                "{what}: length {n} but {} bytes left",
                self.remaining()
            )),
        }
    }

    /// `n` raw bytes.
    pub fn raw(&mut self, what: &str, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return err(format!("{what}: {n} bytes but {} left", self.remaining()));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    /// A byte string (`serde_bytes`).
    pub fn bytes(&mut self, what: &str) -> Result<&'a [u8]> {
        let n = self.len(what, 1)?;
        self.raw(what, n)
    }

    pub fn str(&mut self, what: &str) -> Result<&'a str> {
        let bytes = self.bytes(what)?;
        std::str::from_utf8(bytes).or_else(|_| err(format!("{what}: not UTF-8")))
    }

    /// `Option` tag: whether a value follows.
    pub fn some(&mut self, what: &str) -> Result<bool> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            t => err(format!("{what}: option tag {t}")),
        }
    }

    /// `count` varint `u32`s appended to `out`.
    pub fn u32s_into(&mut self, what: &str, count: usize, out: &mut Vec<u32>) -> Result<()> {
        if count > self.remaining() {
            return err(format!(
                "{what}: {count} values but {} bytes left",
                self.remaining()
            ));
        }
        let start = out.len();
        out.reserve(count);
        // A plain loop, one value after the other: the links of a graph are
        // mostly the same length (three bytes below 2^21 points), which the
        // branches predict. A branchless decoder of eight bytes at a time
        // measured slower in wasm, where this runs.
        let bytes = self.bytes;
        let mut at = self.at;
        for _ in 0..count {
            match varint(bytes, &mut at, 32) {
                Some(v) => out.push(v as u32),
                None => {
                    out.truncate(start);
                    return err(format!("{what}: bad or truncated varint"));
                }
            }
        }
        self.at = at;
        Ok(())
    }

    /// A sequence of varint `u32`s.
    pub fn u32_seq(&mut self, what: &str) -> Result<Vec<u32>> {
        let n = self.len(what, 1)?;
        let mut out = Vec::new();
        self.u32s_into(what, n, &mut out)?;
        Ok(out)
    }

    /// A sequence of varint `u64`s.
    pub fn u64_seq(&mut self, what: &str) -> Result<Vec<u64>> {
        let n = self.len(what, 1)?;
        let mut out = vec![0u64; n];
        let bytes = self.bytes;
        let mut at = self.at;
        for slot in &mut out {
            *slot = varint(bytes, &mut at, 64)
                .map_or_else(|| err(format!("{what}: bad or truncated varint")), Ok)?;
        }
        self.at = at;
        Ok(out)
    }

    /// `count` little-endian `f32`s appended to `out`.
    pub fn f32s_into(&mut self, what: &str, count: usize, out: &mut Vec<f32>) -> Result<()> {
        let raw = self.raw(what, count.saturating_mul(4))?;
        out.extend(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        Ok(())
    }

    /// A sequence of `f32`s.
    pub fn f32_seq(&mut self, what: &str) -> Result<Vec<f32>> {
        let n = self.len(what, 4)?;
        let mut out = Vec::with_capacity(n);
        self.f32s_into(what, n, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize)]
    struct Sample<'a> {
        small: u32,
        big: u64,
        name: &'a str,
        links: Vec<u32>,
        ids: Vec<u64>,
        floats: Vec<f32>,
        #[serde(with = "serde_bytes")]
        raw: &'a [u8],
        tag: Option<u64>,
        none: Option<u64>,
    }

    fn sample() -> Sample<'static> {
        Sample {
            small: 5,
            big: u64::MAX,
            name: "ok ✓",
            links: vec![0, 127, 128, 16_383, 16_384, 1 << 21, u32::MAX - 1, u32::MAX],
            ids: vec![0, 1, 300, 1 << 35, u64::MAX],
            floats: vec![0.5, -1.25, f32::MIN_POSITIVE],
            raw: &[1, 2, 255],
            tag: Some(7),
            none: None,
        }
    }

    fn read(bytes: &[u8]) -> Result<()> {
        let s = sample();
        let mut r = Reader::new(bytes);
        assert_eq!(r.u64("small")?, s.small as u64);
        assert_eq!(r.u64("big")?, s.big);
        assert_eq!(r.str("name")?, s.name);
        assert_eq!(r.u32_seq("links")?, s.links);
        assert_eq!(r.u64_seq("ids")?, s.ids);
        assert_eq!(r.f32_seq("floats")?, s.floats);
        assert_eq!(r.bytes("raw")?, s.raw);
        assert!(r.some("tag")?);
        assert_eq!(r.u64("tag")?, 7);
        assert!(!r.some("none")?);
        r.finish()
    }

    #[test]
    fn reads_what_postcard_writes() {
        let bytes = postcard::to_allocvec(&sample()).unwrap();
        read(&bytes).unwrap();
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_an_error() {
        let bytes = postcard::to_allocvec(&sample()).unwrap();
        for cut in 0..bytes.len() {
            assert!(read(&bytes[..cut]).is_err(), "cut at {cut} read");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read(&longer).unwrap_err().0.contains("1 undecoded"));
    }

    #[test]
    fn overlong_varints_and_lengths_are_refused() {
        // u32::MAX + 1 as a varint: five bytes, the last carrying a fifth bit.
        let mut r = Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x10]);
        let mut out = Vec::new();
        assert!(r.u32s_into("x", 1, &mut out).is_err());
        assert!(out.is_empty());
        // Eleven bytes is too long for any u64.
        let mut r = Reader::new(&[0xff; 11]);
        assert!(r.u64("x").is_err());
        // A length far beyond the bytes left allocates nothing and fails.
        let huge = postcard::to_allocvec(&(u64::MAX / 2)).unwrap();
        assert!(Reader::new(&huge).u32_seq("x").is_err());
        assert!(Reader::new(&[2]).some("tag").is_err());
    }

    #[test]
    fn fast_and_slow_paths_agree_with_postcard_on_long_runs() {
        // Mixed lengths (1 to 5 bytes) in an order no branch predicts.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let values: Vec<u32> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x as u32) >> ((x >> 32) % 32)
            })
            .collect();
        let bytes = postcard::to_allocvec(&values).unwrap();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u32_seq("v").unwrap(), values);
        r.finish().unwrap();
        // A bad varint deep inside the fast path is still found.
        let mut broken = bytes.clone();
        let at = broken.len() / 2;
        broken[at..at + 6].fill(0xff);
        assert!(Reader::new(&broken).u32_seq("v").is_err());
    }

    #[test]
    fn agrees_with_postcard_on_every_u32_boundary() {
        let values: Vec<u32> = (0..32)
            .flat_map(|b| {
                let v = 1u64 << b;
                [v - 1, v, v + 1]
            })
            .filter_map(|v| u32::try_from(v).ok())
            .collect();
        let bytes = postcard::to_allocvec(&values).unwrap();
        assert_eq!(Reader::new(&bytes).u32_seq("v").unwrap(), values);
    }
}
