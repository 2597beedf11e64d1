//! The first pass: which faces draw which characters, and which renderings
//! are kept (new for their character, for characters with enough of them).

use std::collections::HashSet;
use std::path::PathBuf;

use rayon::prelude::*;

use super::draw::{pixel_hash, render_glyph};
use super::fonts::{FontFile, font_files, parse_face, read_font};
use super::{FaceReport, Phase, Progress, RenderReport, Result};

/// Coverage of every face, per character: `hashes[face][char]` is the pixel
/// hash of its rendering, or `None` when the face lacks the glyph.
pub(super) struct Scan {
    pub(super) files: Vec<FontFile>,
    /// (file index, face index, name) in order.
    pub(super) faces: Vec<(usize, u32, String)>,
    hashes: Vec<Vec<Option<u64>>>,
}

pub(super) fn scan(
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
pub(super) struct Plan {
    pub(super) keep: Vec<Vec<usize>>,
    covered: Vec<usize>,
    duplicates: Vec<usize>,
    chars_missing: usize,
    classes_dropped: usize,
}

pub(super) fn plan(scan: &Scan, n_chars: usize, min_fonts: usize) -> Plan {
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

pub(super) fn report(
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
