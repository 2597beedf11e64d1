//! Image preprocessing: decode, resize, centre-crop, normalise. Everything the
//! model sees goes through here, in the trainer, the CLI and the browser alike.

use ::image::imageops::FilterType;
use ::image::{DynamicImage, ImageFormat, ImageReader, Limits, RgbImage, RgbaImage};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub mod augment;

/// Images larger than this are refused before decoding: a 16k × 16k PNG would
/// take a gigabyte to decode, and nothing the model sees needs it.
pub const MAX_PIXELS: u64 = 40_000_000;
/// The longest side accepted.
pub const MAX_SIDE: u32 = 16_384;

/// How an image becomes the model's input tensor. Stored in the model bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Side of the square input, in pixels.
    pub input_size: u32,
    /// Per-channel mean subtracted after scaling pixels to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by after the mean.
    pub std: [f32; 3],
}

impl Preprocessing {
    /// Glyphs are mostly white paper: centre the data around it.
    pub fn new(input_size: u32) -> Self {
        Self {
            input_size,
            mean: [0.5, 0.5, 0.5],
            std: [0.5, 0.5, 0.5],
        }
    }

    /// Number of f32 values in one preprocessed image (3 × size × size).
    pub fn tensor_len(&self) -> usize {
        3 * (self.input_size as usize).pow(2)
    }

    /// Checks the fields make sense (a bundle header is user input).
    pub fn validate(&self) -> Result<()> {
        if !(8..=1024).contains(&self.input_size) {
            return Err(Error::BadInput(format!(
                "input size {} is outside 8..=1024",
                self.input_size
            )));
        }
        if self.std.iter().any(|s| !s.is_finite() || *s <= 0.0)
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err(Error::BadInput(
                "normalisation mean/std must be finite, std positive".into(),
            ));
        }
        Ok(())
    }

    /// Resize + centre-crop to the input size, then normalise into CHW floats.
    pub fn apply(&self, image: &DynamicImage) -> Vec<f32> {
        self.normalise(&fit_square(image, self.input_size))
    }

    /// Normalise an already square image of the input size into CHW floats.
    pub fn normalise(&self, rgb: &RgbImage) -> Vec<f32> {
        debug_assert_eq!(rgb.width(), self.input_size);
        let plane = (rgb.width() * rgb.height()) as usize;
        let mut out = vec![0.0f32; 3 * plane];
        for (i, pixel) in rgb.pixels().enumerate() {
            for c in 0..3 {
                let v = pixel.0[c] as f32 / 255.0;
                out[c * plane + i] = (v - self.mean[c]) / self.std[c];
            }
        }
        out
    }
}

/// Decodes encoded image bytes (jpeg, png, webp, gif, bmp), naming `name` in any error.
/// Zero-byte, truncated, unsupported and oversized inputs are [`Error::BadImage`].
pub fn decode(name: &str, bytes: &[u8]) -> Result<DynamicImage> {
    let bad = |reason: String| Error::BadImage {
        name: name.to_string(),
        reason,
    };
    if bytes.is_empty() {
        return Err(bad("the file is empty (0 bytes)".into()));
    }
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?;
    let format = reader.format();
    if format.is_none() {
        return Err(bad(
            "not a supported image format (expected jpeg, png, webp, gif or bmp)".into(),
        ));
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| bad(format!("unreadable header: {e}")))?;
    check_dimensions(name, w, h)?;
    if format == Some(ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        // The jpeg decoder fills a cut-off scan with grey and says nothing; a
        // half-downloaded photo must not be enrolled as if it were whole.
        return Err(bad("truncated: the JPEG has no end-of-image marker".into()));
    }
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    reader.decode().map_err(|e| bad(e.to_string()))
}

/// Whether an end-of-image marker follows the last start-of-scan. Entropy-coded
/// data stuffs every 0xFF with 0x00, so `FF D9` after the scan header can only be
/// the real end; an EXIF thumbnail's markers all come before the main scan.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(at) => bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

/// Wraps a raw RGBA buffer (a camera frame, canvas ImageData) as an image.
pub fn from_rgba(name: &str, width: u32, height: u32, rgba: Vec<u8>) -> Result<DynamicImage> {
    check_dimensions(name, width, height)?;
    let expected = width as usize * height as usize * 4;
    if rgba.len() != expected {
        return Err(Error::BadImage {
            name: name.to_string(),
            reason: format!(
                "RGBA buffer has {} bytes, expected {expected} for {width}×{height}",
                rgba.len()
            ),
        });
    }
    RgbaImage::from_raw(width, height, rgba)
        .map(DynamicImage::ImageRgba8)
        .ok_or_else(|| Error::Internal("RGBA buffer size was checked".into()))
}

fn check_dimensions(name: &str, w: u32, h: u32) -> Result<()> {
    let bad = |reason: String| Error::BadImage {
        name: name.to_string(),
        reason,
    };
    if w == 0 || h == 0 {
        return Err(bad(format!("image has no pixels ({w}×{h})")));
    }
    if w > MAX_SIDE || h > MAX_SIDE || w as u64 * h as u64 > MAX_PIXELS {
        return Err(bad(format!(
            "image is too large ({w}×{h}; at most {MAX_SIDE} per side and {MAX_PIXELS} pixels)"
        )));
    }
    Ok(())
}

/// Resizes the shorter side to `size` and crops the centre square, flattening
/// transparency onto white (a transparent PNG glyph is ink on paper).
pub fn fit_square(image: &DynamicImage, size: u32) -> RgbImage {
    let rgb = flatten_on_white(image);
    let (w, h) = rgb.dimensions();
    if w == size && h == size {
        return rgb;
    }
    let scale = size as f32 / w.min(h) as f32;
    let nw = ((w as f32 * scale).round() as u32).max(size);
    let nh = ((h as f32 * scale).round() as u32).max(size);
    let resized = ::image::imageops::resize(&rgb, nw, nh, FilterType::Triangle);
    ::image::imageops::crop_imm(&resized, (nw - size) / 2, (nh - size) / 2, size, size).to_image()
}

/// The image as RGB at its own size, transparency flattened onto white:
/// [`fit_square`]'s first step, and training augmentation's, so that both see
/// the same pixels.
pub fn flatten_on_white(image: &DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = p.0[3] as u32;
        for c in 0..3 {
            o.0[c] = ((p.0[c] as u32 * a + 255 * (255 - a)) / 255) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::image::Rgb;

    fn png_bytes(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, _| Rgb([x as u8, 0, 255]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_png_and_fits_square() {
        let img = decode("a.png", &png_bytes(40, 20)).unwrap();
        let sq = fit_square(&img, 16);
        assert_eq!(sq.dimensions(), (16, 16));
    }

    #[test]
    fn rejects_empty_truncated_and_text() {
        let e = decode("zero.png", &[]).unwrap_err();
        assert_eq!(e.code(), "BAD_IMAGE");
        assert!(e.to_string().contains("zero.png"));

        let png = png_bytes(32, 32);
        let e = decode("half.png", &png[..png.len() / 2]).unwrap_err();
        assert!(e.to_string().contains("half.png"), "{e}");

        let e = decode("notes.png", b"hello, this is text").unwrap_err();
        assert!(
            e.to_string().contains("not a supported image format"),
            "{e}"
        );
    }

    #[test]
    fn rejects_a_jpeg_cut_short_and_accepts_it_whole() {
        let img = RgbImage::from_fn(64, 64, |x, y| Rgb([(x * 4) as u8, (y * 4) as u8, 90]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        let jpeg = out.into_inner();
        assert_eq!(decode("whole.jpg", &jpeg).unwrap().width(), 64);
        let e = decode("cut.jpg", &jpeg[..jpeg.len() * 3 / 4]).unwrap_err();
        assert!(
            e.to_string().contains("cut.jpg") && e.to_string().contains("truncated"),
            "{e}"
        );
    }

    #[test]
    fn rejects_huge_dimensions_before_decoding() {
        // A valid header claiming 20000×20000 is refused from the header alone.
        let e = check_dimensions("big.png", 20_000, 20_000).unwrap_err();
        assert!(e.to_string().contains("too large"));
    }

    #[test]
    fn rgba_buffer_size_is_checked() {
        assert!(from_rgba("frame", 2, 2, vec![0; 16]).is_ok());
        let e = from_rgba("frame", 2, 2, vec![0; 15]).unwrap_err();
        assert!(e.to_string().contains("expected 16"));
    }

    #[test]
    fn normalises_into_chw() {
        let p = Preprocessing::new(8);
        let white = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, Rgb([255, 255, 255])));
        let v = p.apply(&white);
        assert_eq!(v.len(), p.tensor_len());
        assert!(v.iter().all(|x| (*x - 1.0).abs() < 1e-6));
        let black = DynamicImage::ImageRgb8(RgbImage::new(8, 8));
        assert!(p.apply(&black).iter().all(|x| (*x + 1.0).abs() < 1e-6));
    }

    #[test]
    fn transparency_becomes_white() {
        let clear = DynamicImage::ImageRgba8(RgbaImage::new(4, 4));
        assert_eq!(fit_square(&clear, 4).get_pixel(0, 0), &Rgb([255, 255, 255]));
    }

    #[test]
    fn validates_preprocessing() {
        assert!(Preprocessing::new(64).validate().is_ok());
        assert!(Preprocessing::new(2).validate().is_err());
        let mut p = Preprocessing::new(64);
        p.std[1] = 0.0;
        assert!(p.validate().is_err());
    }

    /// Mutated images of every format the decoder takes: an error naming the
    /// file, or an image that preprocesses to the model's input, never a panic.
    #[test]
    fn mutated_images_are_bad_images_never_panics() {
        use crate::mutate::{Rng, iterations, mutate};
        let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(40, 30, |x, y| {
            Rgb([x as u8 * 6, y as u8 * 8, (x ^ y) as u8])
        }));
        let mut seeds = Vec::new();
        for format in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Gif,
            ImageFormat::Bmp,
            ImageFormat::WebP,
        ] {
            let mut out = std::io::Cursor::new(Vec::new());
            let image = match format {
                ImageFormat::Jpeg | ImageFormat::WebP => photo.clone(),
                _ => DynamicImage::ImageRgba8(photo.to_rgba8()),
            };
            image.write_to(&mut out, format).unwrap();
            seeds.push((format, out.into_inner()));
        }
        let pre = Preprocessing::new(32);
        let (mut decoded, mut refused) = (0, 0);
        for (s, (format, seed)) in seeds.iter().enumerate() {
            assert!(decode("seed", seed).is_ok(), "{format:?}");
            let mut rng = Rng(0xBAD_1A6E ^ (s as u64) << 24);
            for i in 0..iterations(200) {
                let bytes = mutate(&mut rng, seed);
                let outcome = std::panic::catch_unwind(|| match decode("x.img", &bytes) {
                    Ok(image) => Some(pre.apply(&image).len()),
                    Err(Error::BadImage { name, .. }) => {
                        assert_eq!(name, "x.img");
                        None
                    }
                    Err(other) => panic!("not BadImage: {other}"),
                });
                match outcome {
                    Ok(Some(len)) => {
                        assert_eq!(len, pre.tensor_len());
                        decoded += 1;
                    }
                    Ok(None) => refused += 1,
                    Err(_) => panic!("{format:?} mutation {i}: a panic"),
                }
            }
        }
        eprintln!("mutated images: {decoded} decoded, {refused} refused");
        assert!(refused > 0 && decoded > 0);
    }
}
