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

mod charset;
mod draw;
mod fonts;
mod scan;
mod write;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use charset::CharSet;
pub use draw::{FILL, class_dir_name, encode_png, render_glyph};
pub use fonts::face_count;
use scan::{plan, report, scan};
use write::write_images;

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
    write_images(spec, &scan, &plan, &chars, &dir_names, &progress)?;
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
