//! Renders Han characters from font files into an ImageFolder: a class per
//! character, an image per font face, like Omniglot's characters × drawers.
//!
//! Every face of a collection (`.ttc`/`.otc`) is its own example: Noto CJK's
//! SC, TC, JP and KR faces draw many characters differently. A face that lacks
//! a character (glyph id 0, or an empty outline) is skipped for it, and so is a
//! face whose rendering of a character is pixel-identical to an earlier face's
//! (a proportional and a monospaced variant share their Han glyphs). Characters
//! left with fewer than `min_fonts` distinct renderings are dropped.
//!
//! Output: `OUT/<char>/<font-stem>[-<face index>].png`, 8-bit grayscale, black
//! ink on white, the glyph's outline bounding box scaled to [`FILL`] of the
//! square and centred. The same inputs give the same bytes.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ab_glyph::{Font, FontRef, PxScale, point};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, GrayImage, ImageEncoder, Luma};
use rayon::prelude::*;
use serde::Serialize;

/// Fraction of the square's side that the longer side of the glyph's outline
/// bounding box is scaled to.
pub const FILL: f32 = 0.85;

/// Smallest and largest accepted image side.
pub const SIZE_RANGE: std::ops::RangeInclusive<u32> = 8..=1024;

/// What can go wrong rendering glyphs; every variant names its file or input.
#[derive(Debug, thiserror::Error)]
pub enum GlyphError {
    #[error("bad character set {spec:?}: {reason}")]
    CharSet { spec: String, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a readable font{}: {reason}", path.display(), face.map(|f| format!(" (face {f})")).unwrap_or_default())]
    Font {
        path: PathBuf,
        face: Option<u32>,
        reason: String,
    },
    #[error("{0}")]
    Spec(String),
    #[error("{}: cannot encode PNG: {reason}", path.display())]
    Encode { path: PathBuf, reason: String },
}

pub type Result<T, E = GlyphError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GlyphError + '_ {
    move |source| GlyphError::Io {
        path: path.to_path_buf(),
        source,
    }
}

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

/// What to render, and where.
#[derive(Clone, Debug)]
pub struct GlyphSpec {
    pub chars: CharSet,
    /// Font files (`.ttf`, `.otf`, `.ttc`, `.otc`); each face of a collection is one example.
    pub fonts: Vec<PathBuf>,
    /// The ImageFolder to create; it must be missing or empty.
    pub out: PathBuf,
    /// Side of the square images, in pixels.
    pub size: u32,
    /// Drop characters drawn by fewer distinct faces than this.
    pub min_fonts: usize,
}

/// Per face: how many of the requested characters it draws, and what became of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FaceReport {
    pub font: PathBuf,
    /// Index of the face in its file (0 for a single-face font).
    pub face: u32,
    /// The file name stem of its images: `<font-stem>` or `<font-stem>-<face>`.
    pub name: String,
    /// Requested characters this face has a glyph for.
    pub covered: usize,
    /// Of those, renderings identical to an earlier face's (skipped).
    pub duplicates: usize,
    /// Images written (`covered - duplicates`, less those of dropped classes).
    pub written: usize,
}

/// What [`render`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RenderReport {
    pub out: PathBuf,
    pub size: u32,
    pub min_fonts: usize,
    pub chars_requested: usize,
    /// Characters no face draws at all.
    pub chars_missing: usize,
    /// Characters drawn by at least one but fewer than `min_fonts` distinct faces.
    pub classes_dropped: usize,
    pub classes_kept: usize,
    pub images: usize,
    pub faces: Vec<FaceReport>,
}

/// Which pass a [`Progress`] report is about: scanning coverage or writing PNGs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Phase {
    Scan,
    Write,
}

/// Reported after each face of each pass.
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    pub phase: Phase,
    /// The face just finished (its image name).
    pub face: &'a str,
    /// Faces finished in this phase, and the total.
    pub done: usize,
    pub total: usize,
}

/// A font file and the faces it holds.
struct FontFile {
    path: PathBuf,
    stem: String,
    faces: u32,
}

impl FontFile {
    fn face_name(&self, face: u32) -> String {
        if self.faces == 1 {
            self.stem.clone()
        } else {
            format!("{}-{face}", self.stem)
        }
    }
}

/// Number of faces in font data: a collection's header count, else 1.
pub fn face_count(data: &[u8]) -> u32 {
    if data.len() >= 12 && (&data[..4] == b"ttcf") {
        u32::from_be_bytes([data[8], data[9], data[10], data[11]])
    } else {
        1
    }
}

fn read_font(path: &Path) -> Result<Vec<u8>> {
    let data = fs::read(path).map_err(io_err(path))?;
    if data.is_empty() {
        return Err(GlyphError::Font {
            path: path.to_path_buf(),
            face: None,
            reason: "the file is empty".into(),
        });
    }
    Ok(data)
}

fn parse_face<'a>(file: &FontFile, data: &'a [u8], face: u32) -> Result<FontRef<'a>> {
    let font = FontRef::try_from_slice_and_index(data, face).map_err(|e| GlyphError::Font {
        path: file.path.clone(),
        face: (file.faces > 1).then_some(face),
        reason: e.to_string(),
    })?;
    let height = font.height_unscaled();
    if height.is_nan() || height <= 0.0 {
        return Err(GlyphError::Font {
            path: file.path.clone(),
            face: (file.faces > 1).then_some(face),
            reason: "the face has no vertical metrics (ascent - descent <= 0)".into(),
        });
    }
    Ok(font)
}

/// Reads each font's header to count faces, and checks names are unique.
fn font_files(fonts: &[PathBuf]) -> Result<Vec<FontFile>> {
    if fonts.is_empty() {
        return Err(GlyphError::Spec("no font files given".into()));
    }
    let mut files: Vec<FontFile> = Vec::with_capacity(fonts.len());
    for path in fonts {
        let mut head = [0u8; 12];
        let mut f = fs::File::open(path).map_err(io_err(path))?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]).map_err(io_err(path))? {
                0 => break,
                k => n += k,
            }
        }
        let faces = face_count(&head[..n]);
        if faces == 0 || faces > 1024 {
            return Err(GlyphError::Font {
                path: path.clone(),
                face: None,
                reason: format!("a collection header claiming {faces} faces"),
            });
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                GlyphError::Spec(format!("{}: font file name is not UTF-8", path.display()))
            })?;
        if let Some(other) = files.iter().find(|f| f.stem == stem) {
            return Err(GlyphError::Spec(format!(
                "{} and {} have the same file stem {stem:?}, and so would write the same image names",
                other.path.display(),
                path.display()
            )));
        }
        files.push(FontFile {
            path: path.clone(),
            stem,
            faces,
        });
    }
    Ok(files)
}

/// Renders `c` from `font` into a `size`×`size` image, black on white, its
/// outline bounding box scaled to [`FILL`] of the side and centred. `None` when
/// the face has no glyph for `c` (glyph id 0, no or an empty outline).
pub fn render_glyph<F: Font>(font: &F, c: char, size: u32) -> Option<GrayImage> {
    let id = font.glyph_id(c);
    if id.0 == 0 {
        return None;
    }
    let outline = font.outline(id)?;
    let b = outline.bounds;
    // ab_glyph stores the outline box with min.y at the top (font units grow
    // upwards): take extents without assuming an orientation.
    let (bw, bh) = ((b.max.x - b.min.x).abs(), (b.max.y - b.min.y).abs());
    let height = font.height_unscaled();
    let usable = |v: f32| v.is_finite() && v > 0.0;
    if !(usable(bw) && usable(bh) && usable(height)) {
        return None;
    }
    let side = size as f32;
    // Font units → pixels; PxScale is the pixel height of ascent - descent.
    let f = FILL * side / bw.max(bh);
    let scale = PxScale::from(f * height);
    // Outline y grows upwards, pixel y downwards.
    let position = point(
        side / 2.0 - f * (b.min.x + b.max.x) / 2.0,
        side / 2.0 + f * (b.min.y + b.max.y) / 2.0,
    );
    let outlined = font.outline_glyph(id.with_scale_and_position(scale, position))?;
    let bounds = outlined.px_bounds();
    let (ox, oy) = (bounds.min.x as i64, bounds.min.y as i64);
    let mut img = GrayImage::from_pixel(size, size, Luma([255]));
    let mut inked = false;
    outlined.draw(|x, y, coverage| {
        let (px, py) = (ox + x as i64, oy + y as i64);
        if px < 0 || py < 0 || px >= size as i64 || py >= size as i64 {
            return;
        }
        let ink = (coverage.clamp(0.0, 1.0) * 255.0).round() as u8;
        if ink > 0 {
            inked = true;
            img.put_pixel(px as u32, py as u32, Luma([255 - ink]));
        }
    });
    inked.then_some(img)
}

fn pixel_hash(img: &GrayImage) -> u64 {
    // DefaultHasher::new() has fixed keys: the same pixels hash the same in every run.
    let mut h = DefaultHasher::new();
    h.write(img.as_raw());
    h.finish()
}

/// Encodes an 8-bit grayscale PNG (deterministic: no timestamps or text chunks).
pub fn encode_png(img: &GrayImage) -> Result<Vec<u8>, image::ImageError> {
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(&mut bytes, CompressionType::Best, FilterType::Adaptive)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::L8,
        )?;
    Ok(bytes)
}

/// The folder name of a character's class: the character itself, or `U+XXXX`
/// where that would not be a plain folder name (`/`, `.`, `\`, spaces, controls).
pub fn class_dir_name(c: char) -> String {
    if c.is_control() || c.is_whitespace() || matches!(c, '/' | '\\' | '.' | '\0') {
        format!("U+{:04X}", c as u32)
    } else {
        c.to_string()
    }
}

/// Coverage of every face, per character: `hashes[face][char]` is the pixel
/// hash of its rendering, or `None` when the face lacks the glyph.
struct Scan {
    files: Vec<FontFile>,
    /// (file index, face index, name) in order.
    faces: Vec<(usize, u32, String)>,
    hashes: Vec<Vec<Option<u64>>>,
}

fn scan(
    fonts: &[PathBuf],
    chars: &[char],
    size: u32,
    progress: &impl Fn(&Progress),
) -> Result<Scan> {
    let files = font_files(fonts)?;
    let faces: Vec<(usize, u32, String)> = files
        .iter()
        .enumerate()
        .flat_map(|(i, f)| (0..f.faces).map(move |face| (i, face, f.face_name(face))))
        .collect();
    let mut hashes = Vec::with_capacity(faces.len());
    for file in &files {
        let data = read_font(&file.path)?;
        for face in 0..file.faces {
            let font = parse_face(file, &data, face)?;
            let row: Vec<Option<u64>> = chars
                .par_iter()
                .map(|&c| render_glyph(&font, c, size).map(|img| pixel_hash(&img)))
                .collect();
            hashes.push(row);
            let name = file.face_name(face);
            progress(&Progress {
                phase: Phase::Scan,
                face: &name,
                done: hashes.len(),
                total: faces.len(),
            });
            tracing::debug!(font = %file.path.display(), face, "scanned");
        }
    }
    Ok(Scan {
        files,
        faces,
        hashes,
    })
}

/// Which faces to keep per character: `keep[char]` lists face indices whose
/// rendering is new for that character, when there are at least `min_fonts`.
struct Plan {
    keep: Vec<Vec<usize>>,
    covered: Vec<usize>,
    duplicates: Vec<usize>,
    chars_missing: usize,
    classes_dropped: usize,
}

fn plan(scan: &Scan, n_chars: usize, min_fonts: usize) -> Plan {
    let n_faces = scan.faces.len();
    let mut covered = vec![0; n_faces];
    let mut duplicates = vec![0; n_faces];
    let mut keep = Vec::with_capacity(n_chars);
    let (mut chars_missing, mut classes_dropped) = (0, 0);
    for ci in 0..n_chars {
        let mut seen = HashSet::new();
        let mut kept = Vec::new();
        for fi in 0..n_faces {
            if let Some(h) = scan.hashes[fi][ci] {
                covered[fi] += 1;
                if seen.insert(h) {
                    kept.push(fi);
                } else {
                    duplicates[fi] += 1;
                }
            }
        }
        if kept.is_empty() {
            chars_missing += 1;
        } else if kept.len() < min_fonts.max(1) {
            classes_dropped += 1;
            kept.clear();
        }
        keep.push(kept);
    }
    Plan {
        keep,
        covered,
        duplicates,
        chars_missing,
        classes_dropped,
    }
}

fn check_spec(spec: &GlyphSpec) -> Result<()> {
    if !SIZE_RANGE.contains(&spec.size) {
        return Err(GlyphError::Spec(format!(
            "image size {} is outside {}..={}",
            spec.size,
            SIZE_RANGE.start(),
            SIZE_RANGE.end()
        )));
    }
    if spec.out.is_file() {
        return Err(GlyphError::Spec(format!(
            "{} is a file, not a folder",
            spec.out.display()
        )));
    }
    if spec.out.is_dir() {
        let mut entries = fs::read_dir(&spec.out).map_err(io_err(&spec.out))?;
        if entries.next().is_some() {
            return Err(GlyphError::Spec(format!(
                "{} is not empty: remove it or choose another output folder",
                spec.out.display()
            )));
        }
    }
    Ok(())
}

/// Scans `fonts` for `chars` without writing anything: what [`render`] would do.
/// The report's `written` counts the images render would write.
pub fn coverage(
    fonts: &[PathBuf],
    chars: &CharSet,
    size: u32,
    min_fonts: usize,
) -> Result<RenderReport> {
    let list = chars.chars();
    let scan = scan(fonts, &list, size, &|_: &Progress| {})?;
    let plan = plan(&scan, list.len(), min_fonts);
    Ok(report(
        &scan,
        &plan,
        PathBuf::new(),
        size,
        min_fonts,
        list.len(),
    ))
}

fn report(
    scan: &Scan,
    plan: &Plan,
    out: PathBuf,
    size: u32,
    min_fonts: usize,
    n_chars: usize,
) -> RenderReport {
    let mut written = vec![0; scan.faces.len()];
    for kept in &plan.keep {
        for &fi in kept {
            written[fi] += 1;
        }
    }
    let faces = scan
        .faces
        .iter()
        .enumerate()
        .map(|(fi, (file, face, name))| FaceReport {
            font: scan.files[*file].path.clone(),
            face: *face,
            name: name.clone(),
            covered: plan.covered[fi],
            duplicates: plan.duplicates[fi],
            written: written[fi],
        })
        .collect();
    RenderReport {
        out,
        size,
        min_fonts,
        chars_requested: n_chars,
        chars_missing: plan.chars_missing,
        classes_dropped: plan.classes_dropped,
        classes_kept: plan.keep.iter().filter(|k| !k.is_empty()).count(),
        images: written.iter().sum(),
        faces,
    }
}

/// Renders the ImageFolder `spec` describes. See [`render_with`] for progress reports.
pub fn render(spec: &GlyphSpec) -> Result<RenderReport> {
    render_with(spec, |_: &Progress| {})
}

/// Renders the ImageFolder `spec` describes, calling `progress` after each face
/// of each pass. Every font is read and checked before anything is written.
pub fn render_with(spec: &GlyphSpec, progress: impl Fn(&Progress)) -> Result<RenderReport> {
    check_spec(spec)?;
    let chars = spec.chars.chars();
    let dir_names: Vec<String> = chars.iter().map(|&c| class_dir_name(c)).collect();
    if let Some(dup) = first_duplicate(&dir_names) {
        return Err(GlyphError::Spec(format!(
            "two characters share the folder name {dup}"
        )));
    }
    let scan = scan(&spec.fonts, &chars, spec.size, &progress)?;
    let plan = plan(&scan, chars.len(), spec.min_fonts);

    fs::create_dir_all(&spec.out).map_err(io_err(&spec.out))?;
    for (ci, kept) in plan.keep.iter().enumerate() {
        if !kept.is_empty() {
            let dir = spec.out.join(&dir_names[ci]);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
    }
    let mut done = 0;
    let mut fi = 0;
    for file in &scan.files {
        let data = read_font(&file.path)?;
        for face in 0..file.faces {
            let font = parse_face(file, &data, face)?;
            let name = file.face_name(face);
            let todo: Vec<usize> = (0..chars.len())
                .filter(|&ci| plan.keep[ci].contains(&fi))
                .collect();
            todo.par_iter().try_for_each(|&ci| -> Result<()> {
                let path = spec.out.join(&dir_names[ci]).join(format!("{name}.png"));
                let img =
                    render_glyph(&font, chars[ci], spec.size).ok_or_else(|| GlyphError::Font {
                        path: file.path.clone(),
                        face: (file.faces > 1).then_some(face),
                        reason: format!("{} rendered in the scan but not now", chars[ci]),
                    })?;
                let bytes = encode_png(&img).map_err(|e| GlyphError::Encode {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                fs::write(&path, bytes).map_err(io_err(&path))
            })?;
            done += 1;
            fi += 1;
            progress(&Progress {
                phase: Phase::Write,
                face: &name,
                done,
                total: scan.faces.len(),
            });
        }
    }
    let report = report(
        &scan,
        &plan,
        spec.out.clone(),
        spec.size,
        spec.min_fonts,
        chars.len(),
    );
    tracing::info!(
        classes = report.classes_kept,
        images = report.images,
        dropped = report.classes_dropped,
        missing = report.chars_missing,
        out = %spec.out.display(),
        "glyphs rendered"
    );
    Ok(report)
}

fn first_duplicate(names: &[String]) -> Option<&str> {
    let mut seen = BTreeSet::new();
    names
        .iter()
        .find(|n| !seen.insert(n.as_str()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests;
