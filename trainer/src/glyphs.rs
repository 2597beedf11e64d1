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
mod tests {
    use super::*;

    fn fonts_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fonts")
    }

    fn pair() -> PathBuf {
        fonts_dir().join("noto-pair.ttc")
    }

    fn droid() -> PathBuf {
        fonts_dir().join("droid-subset.ttf")
    }

    fn spec(chars: &str, out: &Path, min_fonts: usize) -> GlyphSpec {
        GlyphSpec {
            chars: chars.parse().unwrap(),
            fonts: vec![pair(), droid()],
            out: out.to_path_buf(),
            size: 48,
            min_fonts,
        }
    }

    /// Files under `dir` (relative paths) with their bytes, sorted.
    fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for class in fs::read_dir(dir).unwrap() {
            let class = class.unwrap().path();
            for f in fs::read_dir(&class).unwrap() {
                let f = f.unwrap().path();
                let rel = f.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, fs::read(&f).unwrap()));
            }
        }
        out.sort();
        out
    }

    /// Bounding box (x0, y0, x1, y1), inclusive, of pixels darker than 128.
    fn ink_box(img: &GrayImage) -> Option<(u32, u32, u32, u32)> {
        let mut b: Option<(u32, u32, u32, u32)> = None;
        for (x, y, p) in img.enumerate_pixels() {
            if p.0[0] < 128 {
                b = Some(match b {
                    None => (x, y, x, y),
                    Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
                });
            }
        }
        b
    }

    #[test]
    fn gb2312_levels_have_their_sizes_and_ends() {
        let l1 = CharSet::Gb2312Level1.chars();
        let l2 = CharSet::Gb2312Level2.chars();
        assert_eq!(l1.len(), 3755);
        assert_eq!(l2.len(), 3008);
        assert_eq!((l1[0], l1[l1.len() - 1]), ('啊', '座'));
        assert_eq!((l2[0], l2[l2.len() - 1]), ('亍', '齄'));
        assert!(
            l1.iter()
                .chain(&l2)
                .all(|&c| ('\u{4E00}'..='\u{9FFF}').contains(&c))
        );
        let s1: HashSet<char> = l1.iter().copied().collect();
        assert!(
            l2.iter().all(|c| !s1.contains(c)),
            "the levels are disjoint"
        );
        assert!(s1.contains(&'人') && s1.contains(&'水'));
    }

    #[test]
    fn parses_character_sets() {
        assert_eq!(
            "gb2312-1".parse::<CharSet>().unwrap(),
            CharSet::Gb2312Level1
        );
        assert_eq!(
            " GB2312-2 ".parse::<CharSet>().unwrap(),
            CharSet::Gb2312Level2
        );
        let r: CharSet = "U+4E00..U+4E02, u+4e05".parse().unwrap();
        assert_eq!(r.chars(), vec!['一', '丁', '丂', '丅']);
        assert_eq!(r.to_string(), "U+4E00..U+4E02,U+4E05");
        assert_eq!(
            "U+4E00-U+4E01".parse::<CharSet>().unwrap().chars(),
            vec!['一', '丁']
        );
        // Surrogates inside a range are skipped, not an error.
        assert_eq!(
            "U+D7FF..U+E000".parse::<CharSet>().unwrap().chars().len(),
            2
        );
        let l: CharSet = "人大 山,水人".parse().unwrap();
        assert_eq!(
            l.chars(),
            vec!['人', '大', '山', '水'],
            "separators dropped, duplicates once"
        );

        for bad in ["", "  ", "U+ZZZZ", "U+4E05..U+4E00", "U+110000", ",,,"] {
            let e = bad.parse::<CharSet>().unwrap_err();
            assert!(matches!(e, GlyphError::CharSet { .. }), "{bad:?}: {e}");
        }
    }

    #[test]
    fn reads_character_files() {
        let dir = tempfile::tempdir().unwrap();
        let lines = dir.path().join("chars.txt");
        fs::write(&lines, "# comment\n人\n大\n\n山\n").unwrap();
        let plain = dir.path().join("plain.txt");
        fs::write(&plain, "\u{feff}水火 木\n").unwrap();
        let at = format!("@{}", lines.display());
        assert_eq!(
            at.parse::<CharSet>().unwrap().chars(),
            vec!['人', '大', '山']
        );
        let bare = plain.display().to_string();
        assert_eq!(
            bare.parse::<CharSet>().unwrap().chars(),
            vec!['水', '火', '木']
        );
        let empty = dir.path().join("empty.txt");
        fs::write(&empty, "\n# nothing\n").unwrap();
        assert!(CharSet::from_file(&empty).is_err());
        let e = "@/no/such/file.txt".parse::<CharSet>().unwrap_err();
        assert!(e.to_string().contains("/no/such/file.txt"), "{e}");
    }

    #[test]
    fn counts_faces_of_collections() {
        let mut header = b"ttcf\x00\x01\x00\x00\x00\x00\x00\x03".to_vec();
        assert_eq!(face_count(&header), 3);
        header[0] = b'x';
        assert_eq!(face_count(&header), 1);
        assert_eq!(face_count(&fs::read(pair()).unwrap()), 2);
        assert_eq!(face_count(&fs::read(droid()).unwrap()), 1);
    }

    #[test]
    fn renders_a_glyph_fitted_and_centred() {
        let data = fs::read(droid()).unwrap();
        let font = FontRef::try_from_slice(&data).unwrap();
        for size in [32u32, 64, 100] {
            let img = render_glyph(&font, '大', size).expect("大 is in the font");
            assert_eq!(img.dimensions(), (size, size));
            let (x0, y0, x1, y1) = ink_box(&img).expect("ink");
            let (w, h) = ((x1 - x0 + 1) as f32, (y1 - y0 + 1) as f32);
            let want = FILL * size as f32;
            assert!(
                (w.max(h) - want).abs() <= 2.0,
                "size {size}: {w}×{h}, want {want}"
            );
            let (cx, cy) = ((x0 + x1 + 1) as f32 / 2.0, (y0 + y1 + 1) as f32 / 2.0);
            let mid = size as f32 / 2.0;
            assert!(
                (cx - mid).abs() <= 1.5 && (cy - mid).abs() <= 1.5,
                "size {size}: centre {cx},{cy}"
            );
            // White paper at the corners.
            assert_eq!(img.get_pixel(0, 0).0[0], 255);
        }
        assert!(render_glyph(&font, '火', 64).is_none(), "missing glyph");
        assert!(render_glyph(&font, ' ', 64).is_none(), "no outline");
    }

    #[test]
    fn renders_an_image_folder_with_dedupe_and_min_fonts() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let calls = std::cell::Cell::new(0);
        let report = render_with(&spec("人大山骨水火", &out, 2), |p: &Progress| {
            assert!(p.done <= p.total && p.total == 3);
            calls.set(calls.get() + 1);
        })
        .unwrap();
        assert_eq!(calls.get(), 6, "3 faces × 2 phases");
        let names: Vec<String> = tree(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "人/droid-subset.png",
                "人/noto-pair-0.png",
                "人/noto-pair-1.png",
                "大/droid-subset.png",
                "大/noto-pair-0.png",
                "山/droid-subset.png",
                "山/noto-pair-0.png",
                "骨/noto-pair-0.png",
                "骨/noto-pair-1.png",
            ]
        );
        assert_eq!(report.chars_requested, 6);
        assert_eq!(report.chars_missing, 1, "火 is in no font");
        assert_eq!(report.classes_dropped, 1, "水 has one face < min_fonts");
        assert_eq!(report.classes_kept, 4);
        assert_eq!(report.images, 9);
        let jp = &report.faces[1];
        assert_eq!(
            (
                jp.name.as_str(),
                jp.face,
                jp.covered,
                jp.duplicates,
                jp.written
            ),
            ("noto-pair-1", 1, 3, 1, 2)
        );
        let droid = &report.faces[2];
        assert_eq!((droid.covered, droid.duplicates, droid.written), (4, 0, 3));

        let png = image::open(out.join("骨/noto-pair-1.png")).unwrap();
        assert_eq!(png.color(), image::ColorType::L8);
        assert_eq!((png.width(), png.height()), (48, 48));
        let sc = image::open(out.join("骨/noto-pair-0.png")).unwrap();
        assert_ne!(
            png.as_bytes(),
            sc.as_bytes(),
            "SC and JP draw 骨 differently"
        );

        let all = render(&spec("水", &dir.path().join("one"), 1)).unwrap();
        assert_eq!(
            (all.classes_kept, all.images),
            (1, 1),
            "min_fonts 1 keeps a one-face class"
        );
    }

    #[test]
    fn same_inputs_give_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        render(&spec("人大山骨", &a, 1)).unwrap();
        render(&spec("人大山骨", &b, 1)).unwrap();
        let (ta, tb) = (tree(&a), tree(&b));
        assert_eq!(ta.len(), 9);
        assert_eq!(ta, tb);
    }

    #[test]
    fn bad_fonts_and_outputs_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.ttf");
        fs::write(&garbage, b"this is not a font at all, just some text").unwrap();
        let empty = dir.path().join("empty.otf");
        fs::write(&empty, b"").unwrap();
        let missing = dir.path().join("missing.ttf");
        for (i, (font, kind)) in [(&garbage, "font"), (&empty, "font"), (&missing, "io")]
            .into_iter()
            .enumerate()
        {
            let mut s = spec("人", &dir.path().join(format!("out-{i}")), 1);
            s.fonts = vec![droid(), font.clone()];
            let e = render(&s).unwrap_err();
            assert!(e.to_string().contains(&font.display().to_string()), "{e}");
            match kind {
                "font" => assert!(matches!(e, GlyphError::Font { .. }), "{e}"),
                _ => assert!(matches!(e, GlyphError::Io { .. }), "{e}"),
            }
            // Nothing is written before every font has been read.
            assert!(!s.out.exists(), "{}", s.out.display());
        }

        let busy = dir.path().join("busy");
        fs::create_dir_all(&busy).unwrap();
        fs::write(busy.join("x"), b"x").unwrap();
        let e = render(&spec("人", &busy, 1)).unwrap_err();
        assert!(e.to_string().contains("not empty"), "{e}");

        let mut twice = spec("人", &dir.path().join("twice"), 1);
        twice.fonts = vec![droid(), droid()];
        assert!(
            render(&twice)
                .unwrap_err()
                .to_string()
                .contains("same file stem")
        );

        let mut tiny = spec("人", &dir.path().join("tiny"), 1);
        tiny.size = 2;
        assert!(matches!(render(&tiny), Err(GlyphError::Spec(_))));
    }

    #[test]
    fn awkward_characters_get_safe_folder_names() {
        assert_eq!(class_dir_name('人'), "人");
        assert_eq!(class_dir_name('/'), "U+002F");
        assert_eq!(class_dir_name('.'), "U+002E");
        assert_eq!(class_dir_name('\u{3000}'), "U+3000");
    }
}
