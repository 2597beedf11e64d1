//! Which characters to render: GB2312's levels, code point ranges, a file or
//! a literal list.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::path::Path;
use std::str::FromStr;

use super::{GlyphError, Result, io_err};

/// Which characters to render.
///
/// Parsed from a string ([`FromStr`]):
/// - `gb2312-1`: GB2312 level 1, the 3,755 common characters (rows 16–55);
/// - `gb2312-2`: GB2312 level 2, the 3,008 rarer ones (rows 56–87);
/// - `U+4E00..U+4E2F`: code point ranges, inclusive, separated by commas or
///   spaces (`U+4E00` alone is one character; `-` works like `..`);
/// - `@path` or the path of an existing file: its characters, one per line or
///   as plain strings (whitespace ignored, lines starting with `#` skipped);
/// - anything else: a literal list of characters, e.g. `人大山水` (whitespace
///   and ASCII commas separate, and are not characters of the set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CharSet {
    Gb2312Level1,
    Gb2312Level2,
    /// Inclusive code point ranges; surrogates are skipped.
    Ranges(Vec<(u32, u32)>),
    List(Vec<char>),
}

impl CharSet {
    /// The characters, without duplicates, in the set's own order
    /// (GB2312 code order, range order, or as listed).
    pub fn chars(&self) -> Vec<char> {
        let all: Vec<char> = match self {
            CharSet::Gb2312Level1 => gb2312_chars(0xB0..=0xD7),
            CharSet::Gb2312Level2 => gb2312_chars(0xD8..=0xF7),
            CharSet::Ranges(ranges) => ranges
                .iter()
                .flat_map(|&(a, b)| (a..=b).filter_map(char::from_u32))
                .collect(),
            CharSet::List(list) => list.clone(),
        };
        let mut seen = HashSet::new();
        all.into_iter().filter(|c| seen.insert(*c)).collect()
    }

    /// Reads a character file: one character per line or plain strings.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(io_err(path))?;
        let chars: Vec<char> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .flat_map(str::chars)
            .filter(|c| !c.is_whitespace() && *c != '\u{feff}')
            .collect();
        if chars.is_empty() {
            return Err(GlyphError::CharSet {
                spec: path.display().to_string(),
                reason: "the file holds no characters".into(),
            });
        }
        Ok(CharSet::List(chars))
    }
}

impl fmt::Display for CharSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CharSet::Gb2312Level1 => f.write_str("gb2312-1"),
            CharSet::Gb2312Level2 => f.write_str("gb2312-2"),
            CharSet::Ranges(ranges) => {
                let parts: Vec<String> = ranges
                    .iter()
                    .map(|&(a, b)| {
                        if a == b {
                            format!("U+{a:04X}")
                        } else {
                            format!("U+{a:04X}..U+{b:04X}")
                        }
                    })
                    .collect();
                f.write_str(&parts.join(","))
            }
            CharSet::List(list) => f.write_str(&list.iter().collect::<String>()),
        }
    }
}

impl FromStr for CharSet {
    type Err = GlyphError;

    fn from_str(s: &str) -> Result<Self> {
        let spec = s.trim();
        let bad = |reason: String| GlyphError::CharSet {
            spec: s.to_string(),
            reason,
        };
        if spec.is_empty() {
            return Err(bad("empty".into()));
        }
        match spec.to_ascii_lowercase().as_str() {
            "gb2312-1" | "gb2312-level1" | "gb2312-l1" => return Ok(CharSet::Gb2312Level1),
            "gb2312-2" | "gb2312-level2" | "gb2312-l2" => return Ok(CharSet::Gb2312Level2),
            _ => {}
        }
        if let Some(path) = spec.strip_prefix('@') {
            return CharSet::from_file(Path::new(path));
        }
        if spec.starts_with("U+") || spec.starts_with("u+") {
            return parse_ranges(spec).map_err(bad);
        }
        if Path::new(spec).is_file() {
            return CharSet::from_file(Path::new(spec));
        }
        let list: Vec<char> = spec
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ',')
            .collect();
        if list.is_empty() {
            return Err(bad("no characters".into()));
        }
        if let Some(c) = list.iter().find(|c| c.is_control()) {
            return Err(bad(format!("control character U+{:04X}", *c as u32)));
        }
        Ok(CharSet::List(list))
    }
}

fn parse_code_point(s: &str) -> Result<u32, String> {
    let hex = s
        .strip_prefix("U+")
        .or_else(|| s.strip_prefix("u+"))
        .unwrap_or(s);
    let v = u32::from_str_radix(hex, 16)
        .map_err(|_| format!("{s:?} is not a code point like U+4E00"))?;
    if v > 0x10FFFF {
        return Err(format!("{s} is beyond U+10FFFF"));
    }
    Ok(v)
}

fn parse_ranges(spec: &str) -> Result<CharSet, String> {
    let mut ranges = Vec::new();
    for part in spec.split(|c: char| c == ',' || c.is_whitespace()) {
        if part.is_empty() {
            continue;
        }
        let (a, b) = match part.split_once("..").or_else(|| part.split_once('-')) {
            Some((a, b)) => (parse_code_point(a)?, parse_code_point(b)?),
            None => {
                let v = parse_code_point(part)?;
                (v, v)
            }
        };
        if a > b {
            return Err(format!("range {part} runs backwards"));
        }
        ranges.push((a, b));
    }
    if ranges.is_empty() {
        return Err("no ranges".into());
    }
    Ok(CharSet::Ranges(ranges))
}

/// Decodes the GB2312 rows whose lead bytes are `lead` (row r has lead byte
/// 0xA0 + r) into characters, skipping unassigned code points (the five at the
/// end of row 55, 0xD7FA–0xD7FE).
fn gb2312_chars(lead: std::ops::RangeInclusive<u8>) -> Vec<char> {
    let mut out = Vec::new();
    for hi in lead {
        for lo in 0xA1..=0xFEu8 {
            if hi == 0xD7 && lo >= 0xFA {
                continue;
            }
            let bytes = [hi, lo];
            if let Some(text) =
                encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(&bytes)
            {
                let mut it = text.chars();
                if let (Some(c), None) = (it.next(), it.next()) {
                    out.push(c);
                }
            }
        }
    }
    out
}
