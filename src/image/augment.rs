//! Camera-like augmentation, run per image per training step on the CPU.
//!
//! One projective warp does the random resized crop, the rotation and a mild
//! perspective tilt in a single bilinear resampling pass (the uncovered corners
//! take the image's border colour, white paper for a glyph). Then the colours:
//! ink and paper are tinted towards random colours (a camera sees ink on paper
//! under coloured light), brightness and contrast jitter, an occasional gaussian
//! blur (focus, motion) and gaussian sensor noise. No flips by default: glyphs
//! are not mirror-symmetric.
//!
//! Everything random comes from the `rng` passed in, so a seed gives the same
//! image. At 64×64 one call takes well under a millisecond.

use ::image::imageops::FilterType;
use ::image::{DynamicImage, RgbImage};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How strongly to augment. [`Default`] is tuned for glyphs at 32–128 px.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AugmentConfig {
    /// `false`: [`augment`] only resizes (as preprocessing does at inference).
    pub enabled: bool,
    /// Range of the crop's area as a fraction of the image's.
    pub crop_scale: (f32, f32),
    /// Range of the crop's aspect ratio (width / height), sampled log-uniformly.
    pub crop_aspect: (f32, f32),
    /// Rotation up to ± this many degrees.
    pub max_rotation_deg: f32,
    /// Strength of the perspective tilt: the projective terms are drawn from
    /// ± this (0.1 makes one edge of the view about 20% longer than the other).
    pub perspective: f32,
    /// Strength of colour changes in [0, 1]: brightness ± s/2, contrast 1 ± s,
    /// ink tinted up to 0.6 s away from black, paper up to 0.5 s away from white.
    pub color_jitter: f32,
    /// Probability of a gaussian blur.
    pub blur_prob: f32,
    /// Upper bound of the per-image noise standard deviation (pixel values in [0, 1]).
    pub noise_std: f32,
    /// Mirror horizontally half of the time.
    pub flip: bool,
    /// Probability of a JPEG round trip at quality 30–70, as a phone's upload
    /// or a messenger leaves a photo.
    pub jpeg_prob: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            crop_scale: (0.7, 1.0),
            crop_aspect: (3.0 / 4.0, 4.0 / 3.0),
            max_rotation_deg: 15.0,
            perspective: 0.1,
            color_jitter: 0.4,
            blur_prob: 0.3,
            noise_std: 0.04,
            flip: false,
            jpeg_prob: 0.0,
        }
    }
}

/// A configuration value out of its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("augmentation setting {field} = {value}: {expected}")]
pub struct AugmentError {
    pub field: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl AugmentConfig {
    /// Checks every field is in range. [`augment`] clamps instead of failing, so
    /// this is for reporting a user's mistake early.
    pub fn validate(&self) -> Result<(), AugmentError> {
        let bad = |field, value: String, expected| AugmentError {
            field,
            value,
            expected,
        };
        let (s0, s1) = self.crop_scale;
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0) {
            return Err(bad(
                "crop_scale",
                format!("{s0}..{s1}"),
                "0 < min <= max <= 1",
            ));
        }
        let (a0, a1) = self.crop_aspect;
        if !(a0 > 0.0 && a0 <= a1 && a1.is_finite()) {
            return Err(bad("crop_aspect", format!("{a0}..{a1}"), "0 < min <= max"));
        }
        let ranges: [(&'static str, f32, f32, &'static str); 5] = [
            (
                "max_rotation_deg",
                self.max_rotation_deg,
                180.0,
                "between 0 and 180",
            ),
            ("perspective", self.perspective, 0.5, "between 0 and 0.5"),
            ("color_jitter", self.color_jitter, 1.0, "between 0 and 1"),
            ("blur_prob", self.blur_prob, 1.0, "between 0 and 1"),
            ("noise_std", self.noise_std, 1.0, "between 0 and 1"),
        ];
        for (field, v, max, expected) in ranges {
            if !(0.0..=max).contains(&v) {
                return Err(bad(field, v.to_string(), expected));
            }
        }
        Ok(())
    }
}

/// A uniform draw in [a, b) that never panics (an empty or reversed range gives a).
fn uniform(rng: &mut impl Rng, a: f32, b: f32) -> f32 {
    let u: f32 = rng.random();
    if b > a { a + (b - a) * u } else { a }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn finite_or(v: f32, default: f32) -> f32 {
    if v.is_finite() { v } else { default }
}

/// A float RGB image, values in [0, 1].
struct Planes {
    w: usize,
    h: usize,
    px: Vec<[f32; 3]>,
}

impl Planes {
    fn from_rgb(rgb: &RgbImage) -> Self {
        let px = rgb
            .pixels()
            .map(|p| {
                [
                    p.0[0] as f32 / 255.0,
                    p.0[1] as f32 / 255.0,
                    p.0[2] as f32 / 255.0,
                ]
            })
            .collect();
        Self {
            w: rgb.width() as usize,
            h: rgb.height() as usize,
            px,
        }
    }

    fn to_rgb(&self) -> RgbImage {
        let mut rgb = RgbImage::new(self.w as u32, self.h as u32);
        for (dst, p) in rgb.pixels_mut().zip(&self.px) {
            dst.0 = p.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8);
        }
        rgb
    }

    /// Mean colour of the outermost rows and columns: the paper.
    fn border_mean(&self) -> [f32; 3] {
        let mut sum = [0.0f64; 3];
        let mut n = 0usize;
        for y in 0..self.h {
            for x in 0..self.w {
                if x == 0 || y == 0 || x + 1 == self.w || y + 1 == self.h {
                    for (s, v) in sum.iter_mut().zip(self.px[y * self.w + x]) {
                        *s += v as f64;
                    }
                    n += 1;
                }
            }
        }
        if n == 0 {
            return [1.0; 3];
        }
        sum.map(|s| (s / n as f64) as f32)
    }

    /// Bilinear sample at continuous pixel coordinates (pixel i spans [i, i + 1)),
    /// `fill` outside the image.
    fn sample(&self, x: f32, y: f32, fill: [f32; 3]) -> [f32; 3] {
        let (fx, fy) = (x - 0.5, y - 0.5);
        let (x0, y0) = (fx.floor(), fy.floor());
        let (tx, ty) = (fx - x0, fy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let get = |xi: i64, yi: i64| -> [f32; 3] {
            if xi < 0 || yi < 0 || xi >= self.w as i64 || yi >= self.h as i64 {
                fill
            } else {
                self.px[yi as usize * self.w + xi as usize]
            }
        };
        let (a, b, c, d) = (
            get(x0, y0),
            get(x0 + 1, y0),
            get(x0, y0 + 1),
            get(x0 + 1, y0 + 1),
        );
        let mut out = [0.0; 3];
        for ch in 0..3 {
            let top = a[ch] + (b[ch] - a[ch]) * tx;
            let bottom = c[ch] + (d[ch] - c[ch]) * tx;
            out[ch] = top + (bottom - top) * ty;
        }
        out
    }
}

/// The geometry of one augmentation: output [-1, 1]² → source pixels.
struct Warp {
    /// Crop centre and half-size, in source pixels.
    cx: f32,
    cy: f32,
    hw: f32,
    hh: f32,
    cos: f32,
    sin: f32,
    px: f32,
    py: f32,
    flip: bool,
}

impl Warp {
    fn random(w: f32, h: f32, cfg: &AugmentConfig, rng: &mut impl Rng) -> Self {
        let s0 = finite_or(cfg.crop_scale.0, 1.0).clamp(0.01, 1.0);
        let s1 = finite_or(cfg.crop_scale.1, 1.0).clamp(s0, 1.0);
        let scale = uniform(rng, s0, s1);
        let a0 = finite_or(cfg.crop_aspect.0, 1.0).clamp(0.1, 10.0);
        let a1 = finite_or(cfg.crop_aspect.1, 1.0).clamp(a0, 10.0);
        let aspect = uniform(rng, a0.ln(), a1.ln()).exp();
        let cw = (w * (scale * aspect).sqrt()).min(w);
        let ch = (h * (scale / aspect).sqrt()).min(h);
        let cx = uniform(rng, cw / 2.0, w - cw / 2.0);
        let cy = uniform(rng, ch / 2.0, h - ch / 2.0);
        let max_rot = finite_or(cfg.max_rotation_deg, 0.0)
            .clamp(0.0, 180.0)
            .to_radians();
        let angle = uniform(rng, -max_rot, max_rot);
        let p = finite_or(cfg.perspective, 0.0).clamp(0.0, 0.5);
        let px = uniform(rng, -p, p);
        let py = uniform(rng, -p, p);
        let flip = cfg.flip && rng.random_bool(0.5);
        Self {
            cx,
            cy,
            hw: cw / 2.0,
            hh: ch / 2.0,
            cos: angle.cos(),
            sin: angle.sin(),
            px,
            py,
            flip,
        }
    }

    /// Source coordinates of the normalised output point (x, y).
    fn map(&self, x: f32, y: f32) -> (f32, f32) {
        let x = if self.flip { -x } else { x };
        // |px|, |py| ≤ 0.5 keep d ≥ 0 on the square; guard the edge anyway.
        let d = (1.0 + self.px * x + self.py * y).max(1e-3);
        let (x, y) = (x / d, y / d);
        let (xr, yr) = (self.cos * x - self.sin * y, self.sin * x + self.cos * y);
        (self.cx + xr * self.hw, self.cy + yr * self.hh)
    }

    /// The `n`×`n` output: each pixel samples `src` where the warp maps it.
    fn resample(&self, src: &Planes, fill: [f32; 3], n: usize) -> Planes {
        let mut out = Planes {
            w: n,
            h: n,
            px: Vec::with_capacity(n * n),
        };
        for v in 0..n {
            let y = (v as f32 + 0.5) / n as f32 * 2.0 - 1.0;
            for u in 0..n {
                let x = (u as f32 + 0.5) / n as f32 * 2.0 - 1.0;
                let (sx, sy) = self.map(x, y);
                out.px.push(src.sample(sx, sy, fill));
            }
        }
        out
    }
}

/// Separable gaussian blur with clamped edges.
fn blur(img: &mut Planes, sigma: f32) {
    let radius = (2.5 * sigma).ceil().max(1.0) as i64;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let norm: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / norm).collect();
    let (w, h) = (img.w as i64, img.h as i64);
    for horizontal in [true, false] {
        let src = img.px.clone();
        for y in 0..h {
            for x in 0..w {
                let mut acc = [0.0f32; 3];
                for (k, &kv) in kernel.iter().enumerate() {
                    let o = k as i64 - radius;
                    let (sx, sy) = if horizontal {
                        ((x + o).clamp(0, w - 1), y)
                    } else {
                        (x, (y + o).clamp(0, h - 1))
                    };
                    let p = src[(sy * w + sx) as usize];
                    for c in 0..3 {
                        acc[c] += kv * p[c];
                    }
                }
                img.px[(y * w + x) as usize] = acc;
            }
        }
    }
}

/// Augments `img` into an `out_size`×`out_size` RGB image. With
/// `cfg.enabled == false` it is the inference preprocessing's resize and
/// centre crop ([`crate::image::fit_square`]) and draws nothing from `rng`.
pub fn augment(
    img: &DynamicImage,
    out_size: u32,
    cfg: &AugmentConfig,
    rng: &mut impl Rng,
) -> RgbImage {
    if !cfg.enabled || out_size == 0 || img.width() == 0 || img.height() == 0 {
        if out_size == 0 || img.width() == 0 || img.height() == 0 {
            return RgbImage::from_pixel(out_size, out_size, image::Rgb([255, 255, 255]));
        }
        return crate::image::fit_square(img, out_size);
    }
    let src = Planes::from_rgb(&source_pixels(img, out_size));
    let fill = src.border_mean();
    let warp = Warp::random(src.w as f32, src.h as f32, cfg, rng);
    let n = out_size as usize;
    let mut out = warp.resample(&src, fill, n);
    jitter_colours(&mut out, cfg, rng);
    let blur_draw: f32 = rng.random();
    let sigma = uniform(rng, 0.3, 1.0) * (n as f32 / 64.0).max(0.5);
    if blur_draw < finite_or(cfg.blur_prob, 0.0) {
        blur(&mut out, sigma);
    }
    add_noise(&mut out, cfg, rng);
    let mut result = out.to_rgb();
    // Drawn only when enabled, so configurations without it keep their sequence.
    let jpeg = finite_or(cfg.jpeg_prob, 0.0);
    if jpeg > 0.0 && rng.random::<f32>() < jpeg {
        let quality = rng.random_range(30..=70);
        result = jpeg_round_trip(result, quality);
    }
    result
}

/// The whole image (no centre crop), transparency flattened on white, shrunk
/// first when far larger than the output so bilinear sampling does not alias.
fn source_pixels(img: &DynamicImage, out_size: u32) -> RgbImage {
    let rgb = crate::image::flatten_on_white(img);
    let target = out_size.saturating_mul(3) / 2 + 1;
    if rgb.width().min(rgb.height()) <= 2 * target {
        return rgb;
    }
    let k = target as f32 / rgb.width().min(rgb.height()) as f32;
    let (nw, nh) = (
        ((rgb.width() as f32 * k).round() as u32).max(1),
        ((rgb.height() as f32 * k).round() as u32).max(1),
    );
    image::imageops::resize(&rgb, nw, nh, FilterType::Triangle)
}

/// Tints ink and paper, then jitters brightness and contrast around the mean.
/// The values are drawn even when `color_jitter` is 0, so what is drawn after
/// them does not depend on it.
fn jitter_colours(out: &mut Planes, cfg: &AugmentConfig, rng: &mut impl Rng) {
    let j = finite_or(cfg.color_jitter, 0.0).clamp(0.0, 1.0);
    let ink: [f32; 3] = std::array::from_fn(|_| uniform(rng, 0.0, 0.6 * j));
    let paper: [f32; 3] = std::array::from_fn(|_| uniform(rng, 1.0 - 0.5 * j, 1.0));
    let contrast = uniform(rng, 1.0 - j, 1.0 + j);
    let brightness = uniform(rng, -j / 2.0, j / 2.0);
    if j <= 0.0 {
        return;
    }
    for p in out.px.iter_mut() {
        for c in 0..3 {
            p[c] = ink[c] + p[c] * (paper[c] - ink[c]);
        }
    }
    let mean = out
        .px
        .iter()
        .map(|p| (p[0] + p[1] + p[2]) / 3.0)
        .sum::<f32>()
        / (out.w * out.h) as f32;
    for p in out.px.iter_mut() {
        for v in p.iter_mut() {
            *v = (*v - mean) * contrast + mean + brightness;
        }
    }
}

/// Gaussian sensor noise of a random strength up to `cfg.noise_std`.
fn add_noise(out: &mut Planes, cfg: &AugmentConfig, rng: &mut impl Rng) {
    let noise = uniform(rng, 0.0, finite_or(cfg.noise_std, 0.0).clamp(0.0, 1.0));
    if noise > 0.0 {
        for p in out.px.iter_mut() {
            for v in p.iter_mut() {
                *v += noise * normal(rng);
            }
        }
    }
}

/// Encodes and decodes `img` as JPEG; on an encoder error the image stays as it was.
fn jpeg_round_trip(img: RgbImage, quality: u8) -> RgbImage {
    let mut bytes = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality);
    if img.write_with_encoder(encoder).is_err() {
        return img;
    }
    match image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg) {
        Ok(decoded) => decoded.to_rgb8(),
        Err(_) => img,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::path::Path;

    /// The first image of class 人 in the committed glyph fixture.
    fn fixture_glyph() -> DynamicImage {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/glyphs/train/人");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        ::image::open(&files[0]).unwrap()
    }

    fn still() -> AugmentConfig {
        AugmentConfig {
            enabled: true,
            crop_scale: (1.0, 1.0),
            crop_aspect: (1.0, 1.0),
            max_rotation_deg: 0.0,
            perspective: 0.0,
            color_jitter: 0.0,
            blur_prob: 0.0,
            noise_std: 0.0,
            flip: false,
            jpeg_prob: 0.0,
        }
    }

    fn luma(p: &image::Rgb<u8>) -> u8 {
        ((p.0[0] as u32 + p.0[1] as u32 + p.0[2] as u32) / 3) as u8
    }

    #[test]
    fn output_has_the_requested_size() {
        let img = fixture_glyph();
        let wide = DynamicImage::ImageRgba8(image::RgbaImage::new(90, 40));
        let mut rng = StdRng::seed_from_u64(1);
        for cfg in [
            AugmentConfig::default(),
            AugmentConfig {
                enabled: false,
                ..Default::default()
            },
        ] {
            for size in [1u32, 32, 64, 96] {
                assert_eq!(
                    augment(&img, size, &cfg, &mut rng).dimensions(),
                    (size, size)
                );
                assert_eq!(
                    augment(&wide, size, &cfg, &mut rng).dimensions(),
                    (size, size)
                );
            }
        }
        assert_eq!(
            augment(&img, 0, &AugmentConfig::default(), &mut rng).dimensions(),
            (0, 0)
        );
    }

    #[test]
    fn a_seed_gives_the_same_image() {
        let img = fixture_glyph();
        let cfg = AugmentConfig::default();
        let a = augment(&img, 64, &cfg, &mut StdRng::seed_from_u64(9));
        let b = augment(&img, 64, &cfg, &mut StdRng::seed_from_u64(9));
        assert_eq!(a, b);
        let c = augment(&img, 64, &cfg, &mut StdRng::seed_from_u64(10));
        assert_ne!(a, c);
    }

    #[test]
    fn disabled_is_the_plain_resize_and_draws_nothing() {
        let img = fixture_glyph();
        let cfg = AugmentConfig {
            enabled: false,
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(3);
        let out = augment(&img, 40, &cfg, &mut rng);
        assert_eq!(out, crate::image::fit_square(&img, 40));
        assert_eq!(
            rng.random::<u64>(),
            StdRng::seed_from_u64(3).random::<u64>()
        );
    }

    #[test]
    fn jpeg_round_trips_change_pixels_but_not_the_size() {
        let img = fixture_glyph();
        let always = AugmentConfig {
            jpeg_prob: 1.0,
            ..still()
        };
        let out = augment(&img, 64, &always, &mut StdRng::seed_from_u64(3));
        assert_eq!(out.dimensions(), (64, 64));
        assert_ne!(out, img.to_rgb8(), "a JPEG at quality 30-70 is lossy");
    }

    #[test]
    fn the_identity_warp_reproduces_the_input_and_flip_mirrors_it() {
        let img = fixture_glyph();
        let rgb = img.to_rgb8();
        let out = augment(&img, 64, &still(), &mut StdRng::seed_from_u64(0));
        assert_eq!(out, rgb, "crop 1, no rotation, no colour: the same pixels");
        let flip = AugmentConfig {
            flip: true,
            ..still()
        };
        let mirrored = image::imageops::flip_horizontal(&rgb);
        let outs: Vec<RgbImage> = (0..8)
            .map(|s| augment(&img, 64, &flip, &mut StdRng::seed_from_u64(s)))
            .collect();
        assert!(outs.iter().all(|o| *o == rgb || *o == mirrored));
        assert!(outs.contains(&mirrored) && outs.contains(&rgb));
        assert!(
            !AugmentConfig::default().flip,
            "glyphs are not mirror-symmetric"
        );
    }

    #[test]
    fn the_glyph_survives_augmentation() {
        let img = fixture_glyph();
        let cfg = AugmentConfig::default();
        let ink_before = img.to_luma8().pixels().filter(|p| p.0[0] < 128).count();
        assert!(ink_before > 100);
        let mut tinted = 0;
        for seed in 0..100 {
            let out = augment(&img, 64, &cfg, &mut StdRng::seed_from_u64(seed));
            let mut l: Vec<u8> = out.pixels().map(luma).collect();
            l.sort_unstable();
            let paper = l[l.len() / 2];
            let dark = l
                .iter()
                .filter(|&&v| (v as i32) < paper as i32 - 60)
                .count();
            assert!(
                dark >= ink_before / 4,
                "seed {seed}: {dark} dark pixels (paper {paper})"
            );
            if out
                .pixels()
                .any(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 12)
            {
                tinted += 1;
            }
        }
        assert!(tinted > 50, "colour tints show up: {tinted}/100");
    }

    #[test]
    fn geometry_moves_the_glyph() {
        let img = fixture_glyph();
        let cfg = AugmentConfig {
            color_jitter: 0.0,
            blur_prob: 0.0,
            noise_std: 0.0,
            ..Default::default()
        };
        let rgb = img.to_rgb8();
        let changed = (0..20)
            .filter(|&s| augment(&img, 64, &cfg, &mut StdRng::seed_from_u64(s)) != rgb)
            .count();
        assert_eq!(changed, 20);
        // Blur alone softens: fewer pure black pixels.
        let blurred = AugmentConfig {
            blur_prob: 1.0,
            ..still()
        };
        let out = augment(&img, 64, &blurred, &mut StdRng::seed_from_u64(1));
        let black = |i: &RgbImage| i.pixels().filter(|p| p.0[0] < 20).count();
        assert!(
            black(&out) < black(&rgb),
            "{} < {}",
            black(&out),
            black(&rgb)
        );
    }

    #[test]
    fn validates_and_never_panics_on_odd_settings() {
        assert_eq!(AugmentConfig::default().validate(), Ok(()));
        let bad = [
            AugmentConfig {
                crop_scale: (0.9, 0.5),
                ..Default::default()
            },
            AugmentConfig {
                crop_scale: (0.0, 1.0),
                ..Default::default()
            },
            AugmentConfig {
                crop_aspect: (2.0, 1.0),
                ..Default::default()
            },
            AugmentConfig {
                max_rotation_deg: -1.0,
                ..Default::default()
            },
            AugmentConfig {
                perspective: f32::NAN,
                ..Default::default()
            },
            AugmentConfig {
                blur_prob: 1.5,
                ..Default::default()
            },
            AugmentConfig {
                noise_std: f32::INFINITY,
                ..Default::default()
            },
        ];
        let img = fixture_glyph();
        for cfg in &bad {
            assert!(cfg.validate().is_err(), "{cfg:?}");
            let out = augment(&img, 32, cfg, &mut StdRng::seed_from_u64(2));
            assert_eq!(out.dimensions(), (32, 32));
        }
        let e = bad[0].validate().unwrap_err();
        assert_eq!(e.field, "crop_scale");
    }
}
