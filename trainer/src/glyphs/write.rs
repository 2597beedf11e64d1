//! The second pass: the kept renderings as PNG files, one folder per character.

use std::fs;

use ab_glyph::FontRef;
use rayon::prelude::*;

use super::draw::{encode_png, render_glyph};
use super::fonts::{FontFile, parse_face, read_font};
use super::scan::{Plan, Scan};
use super::{GlyphError, GlyphSpec, Phase, Progress, Result, io_err};

/// Writes `OUT/<dir name>/<face name>.png` for every rendering `plan` keeps,
/// a face at a time (its characters in parallel).
pub(super) fn write_images(
    spec: &GlyphSpec,
    scan: &Scan,
    plan: &Plan,
    chars: &[char],
    dir_names: &[String],
    progress: &impl Fn(&Progress),
) -> Result<()> {
    fs::create_dir_all(&spec.out).map_err(io_err(&spec.out))?;
    for (ci, kept) in plan.keep.iter().enumerate() {
        if !kept.is_empty() {
            let dir = spec.out.join(&dir_names[ci]);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
    }
    let mut fi = 0;
    for file in &scan.files {
        let data = read_font(&file.path)?;
        for face in 0..file.faces {
            let face_images = FaceImages {
                file,
                face,
                font: parse_face(file, &data, face)?,
                name: file.face_name(face),
                spec,
                chars,
                dir_names,
            };
            let todo: Vec<usize> = (0..chars.len())
                .filter(|&ci| plan.keep[ci].contains(&fi))
                .collect();
            todo.par_iter().try_for_each(|&ci| face_images.write(ci))?;
            fi += 1;
            progress(&Progress {
                phase: Phase::Write,
                face: &face_images.name,
                done: fi,
                total: scan.faces.len(),
            });
        }
    }
    Ok(())
}

/// One face's images.
struct FaceImages<'a> {
    file: &'a FontFile,
    face: u32,
    font: FontRef<'a>,
    name: String,
    spec: &'a GlyphSpec,
    chars: &'a [char],
    dir_names: &'a [String],
}

impl FaceImages<'_> {
    /// Renders character `ci` and writes its PNG.
    fn write(&self, ci: usize) -> Result<()> {
        let path = self
            .spec
            .out
            .join(&self.dir_names[ci])
            .join(format!("{}.png", self.name));
        let img = render_glyph(&self.font, self.chars[ci], self.spec.size).ok_or_else(|| {
            GlyphError::Font {
                path: self.file.path.clone(),
                face: (self.file.faces > 1).then_some(self.face),
                reason: format!("{} rendered in the scan but not now", self.chars[ci]),
            }
        })?;
        let bytes = encode_png(&img).map_err(|e| GlyphError::Encode {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        fs::write(&path, bytes).map_err(io_err(&path))
    }
}
