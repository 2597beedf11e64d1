//! One character of one face as a square grayscale image, and its PNG bytes.

use std::hash::{DefaultHasher, Hasher};

use ab_glyph::{Font, PxScale, point};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, GrayImage, ImageEncoder, Luma};

/// Fraction of the square's side that the longer side of the glyph's outline
/// bounding box is scaled to.
pub const FILL: f32 = 0.85;

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

pub(super) fn pixel_hash(img: &GrayImage) -> u64 {
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
