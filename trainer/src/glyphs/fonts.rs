//! Font files: counting a collection's faces, reading and checking each face.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use ab_glyph::{Font, FontRef};

use super::{GlyphError, Result, io_err};

/// A font file and the faces it holds.
pub(super) struct FontFile {
    pub(super) path: PathBuf,
    stem: String,
    pub(super) faces: u32,
}

impl FontFile {
    pub(super) fn face_name(&self, face: u32) -> String {
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

pub(super) fn read_font(path: &Path) -> Result<Vec<u8>> {
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

pub(super) fn parse_face<'a>(file: &FontFile, data: &'a [u8], face: u32) -> Result<FontRef<'a>> {
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
pub(super) fn font_files(fonts: &[PathBuf]) -> Result<Vec<FontFile>> {
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
