//! ImageFolder datasets: one sub-folder per class, images inside it.
//!
//! ```text
//! DIR/人/NotoSansCJK-Regular-2.png      class "人"
//! DIR/人/wqy-microhei-0.png
//! DIR/大/...
//! ```
//!
//! Class folders are sorted by name and numbered from 0, so class ids are the
//! same on every machine. Files are found recursively inside a class folder;
//! only image extensions (png jpg jpeg webp gif bmp, any case) count, and hidden
//! files and folders are ignored. [`ImageFolder::open`] checks every image's
//! header (and that JPEG, PNG and GIF files are not truncated) without decoding
//! the pixels, so bad files are reported, with their path, before training
//! starts; they are skipped, never a panic. Pixels are decoded lazily by
//! [`ImageFolder::load`].
//!
//! Metric learning evaluates on classes it never trained on, so
//! [`ImageFolder::split_by_class`] splits by class, never by image.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, ImageReader};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use tracing::warn;

/// File extensions considered images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "gif", "bmp"];

/// What can go wrong with a dataset; every variant names its path.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a folder (an ImageFolder has one sub-folder per class)", path.display())]
    NotADir { path: PathBuf },
    #[error("bad image {}: {reason}", path.display())]
    BadImage { path: PathBuf, reason: String },
    #[error("image index {index} is out of range: the folder has {len} images")]
    OutOfRange { index: usize, len: usize },
}

pub type Result<T, E = DatasetError> = std::result::Result<T, E>;

/// One image of the folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub path: PathBuf,
    /// Index into [`ImageFolder::classes`].
    pub class: usize,
    /// The class name (its folder name).
    pub label: String,
}

/// A dataset of labelled images on disk; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    items: Vec<Item>,
    skipped: Vec<(PathBuf, String)>,
    empty_classes: Vec<String>,
}

impl ImageFolder {
    /// Scans `dir`: one sub-folder per class. Unreadable, empty, truncated or
    /// non-image files are skipped and listed in [`Self::skipped`] (and logged
    /// with `tracing::warn!`); class folders left with no image are listed in
    /// [`Self::empty_classes`] and get no class id. Fails only when `dir` itself
    /// cannot be read.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let root = dir.as_ref().to_path_buf();
        let meta = fs::metadata(&root).map_err(io_err(&root))?;
        if !meta.is_dir() {
            return Err(DatasetError::NotADir { path: root });
        }
        let mut skipped = Vec::new();
        let mut class_dirs = Vec::new();
        for path in sorted_entries(&root)? {
            let name = file_name(&path);
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                match path.file_name().and_then(|n| n.to_str()) {
                    Some(label) => class_dirs.push((label.to_string(), path)),
                    None => {
                        skipped.push((path, "class folder name is not valid UTF-8".to_string()))
                    }
                }
            } else if has_image_extension(&path) {
                skipped.push((path, "not inside a class folder".to_string()));
            }
        }

        // Candidate files of every class, in a deterministic order.
        let mut candidates: Vec<(usize, PathBuf)> = Vec::new();
        for (ci, (_, dir)) in class_dirs.iter().enumerate() {
            let mut files = Vec::new();
            collect_images(dir, &mut files, &mut skipped);
            candidates.extend(files.into_iter().map(|p| (ci, p)));
        }
        let verdicts: Vec<Result<(), String>> =
            candidates.par_iter().map(|(_, p)| verify(p)).collect();

        let mut per_class: Vec<Vec<PathBuf>> = vec![Vec::new(); class_dirs.len()];
        for ((ci, path), verdict) in candidates.into_iter().zip(verdicts) {
            match verdict {
                Ok(()) => per_class[ci].push(path),
                Err(reason) => skipped.push((path, reason)),
            }
        }
        let mut classes = Vec::new();
        let mut items = Vec::new();
        let mut empty_classes = Vec::new();
        for ((label, dir), paths) in class_dirs.into_iter().zip(per_class) {
            if paths.is_empty() {
                warn!(class = %label, dir = %dir.display(), "class folder has no readable images: skipped");
                empty_classes.push(label);
                continue;
            }
            let class = classes.len();
            items.extend(paths.into_iter().map(|path| Item {
                path,
                class,
                label: label.clone(),
            }));
            classes.push(label);
        }
        skipped.sort();
        for (path, reason) in &skipped {
            warn!(path = %path.display(), "skipped: {reason}");
        }
        Ok(Self {
            root,
            classes,
            items,
            skipped,
            empty_classes,
        })
    }

    /// Opens `root/train` and, when present, `root/val` if `root` has a `train`
    /// folder; otherwise opens `root` itself, with no validation part.
    pub fn open_train_val(root: impl AsRef<Path>) -> Result<(Self, Option<Self>)> {
        let root = root.as_ref();
        let train = root.join("train");
        if !train.is_dir() {
            return Ok((Self::open(root)?, None));
        }
        let val = root.join("val");
        let val = if val.is_dir() {
            Some(Self::open(val)?)
        } else {
            None
        };
        Ok((Self::open(train)?, val))
    }

    /// The folder this was opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Class names (folder names), sorted; a class id indexes this.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Every usable image, grouped by class in class order, sorted by path within a class.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The class id of every item, in item order.
    pub fn labels(&self) -> Vec<usize> {
        self.items.iter().map(|i| i.class).collect()
    }

    /// Number of images of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for item in &self.items {
            counts[item.class] += 1;
        }
        counts
    }

    /// Files that were not usable, with the reason, sorted by path.
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }

    /// Class folders that had no usable image (and got no class id).
    pub fn empty_classes(&self) -> &[String] {
        &self.empty_classes
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Decodes image `index`. A file that changed or broke since `open` is an
    /// error naming it, never a panic.
    pub fn load(&self, index: usize) -> Result<DynamicImage> {
        let item = self.items.get(index).ok_or(DatasetError::OutOfRange {
            index,
            len: self.items.len(),
        })?;
        load_image(&item.path)
    }

    /// Splits by class: about `fraction` of the classes (chosen with `seed`) go
    /// to the second part, the rest to the first; no class is in both. With two
    /// or more classes and `0 < fraction < 1`, each part gets at least one class.
    /// Class ids are renumbered in each part (classes stay sorted). The first
    /// part keeps [`Self::skipped`] and [`Self::empty_classes`].
    pub fn split_by_class(&self, fraction: f32, seed: u64) -> (ImageFolder, ImageFolder) {
        let n = self.classes.len();
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut n_val = (fraction * n as f32).round() as usize;
        if n >= 2 && fraction > 0.0 && fraction < 1.0 {
            n_val = n_val.clamp(1, n - 1);
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let mut in_val = vec![false; n];
        for &c in &order[..n_val.min(n)] {
            in_val[c] = true;
        }
        let mut train = self.subset(|c| !in_val[c]);
        train.skipped = self.skipped.clone();
        train.empty_classes = self.empty_classes.clone();
        let val = self.subset(|c| in_val[c]);
        (train, val)
    }

    /// The classes for which `keep(class id)` holds, renumbered from 0.
    pub fn subset(&self, keep: impl Fn(usize) -> bool) -> ImageFolder {
        let mut new_id = vec![None; self.classes.len()];
        let mut classes = Vec::new();
        for (c, name) in self.classes.iter().enumerate() {
            if keep(c) {
                new_id[c] = Some(classes.len());
                classes.push(name.clone());
            }
        }
        let items = self
            .items
            .iter()
            .filter_map(|item| {
                new_id[item.class].map(|class| Item {
                    path: item.path.clone(),
                    class,
                    label: item.label.clone(),
                })
            })
            .collect();
        ImageFolder {
            root: self.root.clone(),
            classes,
            items,
            skipped: Vec::new(),
            empty_classes: Vec::new(),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        out.push(entry.map_err(io_err(dir))?.path());
    }
    out.sort();
    Ok(out)
}

/// Whether `path` ends in one of [`IMAGE_EXTENSIONS`] (any case).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Image files under `dir`, recursively, sorted; unreadable sub-folders are skipped.
fn collect_images(dir: &Path, files: &mut Vec<PathBuf>, skipped: &mut Vec<(PathBuf, String)>) {
    let entries = match sorted_entries(dir) {
        Ok(e) => e,
        Err(e) => {
            skipped.push((dir.to_path_buf(), format!("unreadable folder: {e}")));
            return;
        }
    };
    for path in entries {
        if file_name(&path).starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_images(&path, files, skipped);
        } else if has_image_extension(&path) {
            files.push(path);
        }
    }
}

/// Checks an image file without decoding its pixels: not empty, a supported
/// format by content, a readable header with sane dimensions, and (JPEG, PNG,
/// GIF) not truncated. Returns the reason it is unusable.
pub fn verify(path: &Path) -> Result<(), String> {
    let mut file = fs::File::open(path).map_err(|e| format!("unreadable: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("unreadable: {e}"))?
        .len();
    if len == 0 {
        return Err("the file is empty (0 bytes)".into());
    }
    let mut head = vec![0u8; len.min(64) as usize];
    file.read_exact(&mut head)
        .map_err(|e| format!("unreadable: {e}"))?;
    let format = content_format(&head)?;
    let reader = ImageReader::open(path)
        .map_err(|e| format!("unreadable: {e}"))?
        .with_guessed_format()
        .map_err(|e| format!("unreadable: {e}"))?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| format!("unreadable {} header: {e}", format_name(format)))?;
    check_dimensions(w, h)?;

    let tail_len = len.min(64);
    let mut tail = vec![0u8; tail_len as usize];
    file.seek(SeekFrom::Start(len - tail_len))
        .map_err(|e| format!("unreadable: {e}"))?;
    file.read_exact(&mut tail)
        .map_err(|e| format!("unreadable: {e}"))?;
    if ends_complete(format, &tail) {
        return Ok(());
    }
    // No end marker where it usually is: look at the whole file.
    let bytes = fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
    complete(format, &bytes)?;
    if format != ImageFormat::Jpeg {
        decode_bytes(path, &bytes)?;
    }
    Ok(())
}

/// The format a file's content says it is, among those we decode.
fn content_format(head: &[u8]) -> Result<ImageFormat, String> {
    let not_image = || "not an image: its content is none of png, jpeg, webp, gif, bmp".to_string();
    let format = image::guess_format(head).map_err(|_| not_image())?;
    match format {
        ImageFormat::Png
        | ImageFormat::Jpeg
        | ImageFormat::WebP
        | ImageFormat::Gif
        | ImageFormat::Bmp => Ok(format),
        other => Err(format!(
            "unsupported image format {other:?} (expected png, jpeg, webp, gif or bmp)"
        )),
    }
}

fn format_name(format: ImageFormat) -> &'static str {
    format.extensions_str().first().copied().unwrap_or("image")
}

fn check_dimensions(w: u32, h: u32) -> Result<(), String> {
    use metricann::image::{MAX_PIXELS, MAX_SIDE};
    if w == 0 || h == 0 {
        return Err(format!("image has no pixels ({w}×{h})"));
    }
    if w > MAX_SIDE || h > MAX_SIDE || w as u64 * h as u64 > MAX_PIXELS {
        return Err(format!(
            "image is too large ({w}×{h}; at most {MAX_SIDE} per side and {MAX_PIXELS} pixels)"
        ));
    }
    Ok(())
}

/// Whether the last bytes of a file hold its format's end marker (zero padding
/// after a JPEG's is allowed). Formats without one always pass.
fn ends_complete(format: ImageFormat, tail: &[u8]) -> bool {
    match format {
        ImageFormat::Jpeg => {
            let end = tail.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            tail[..end].ends_with(&[0xFF, 0xD9])
        }
        ImageFormat::Png => {
            tail.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82])
        }
        ImageFormat::Gif => tail.last() == Some(&0x3B),
        _ => true,
    }
}

/// A whole-file truncation check for formats whose decoder would not notice:
/// JPEG decoding is lenient (a JPEG cut in half decodes to a half-grey image),
/// so a JPEG must have an end-of-image marker after its last scan.
fn complete(format: ImageFormat, bytes: &[u8]) -> Result<(), String> {
    if format != ImageFormat::Jpeg || ends_complete(format, bytes) {
        return Ok(());
    }
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let last_end = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]);
    match (last_scan, last_end) {
        (Some(s), Some(e)) if e > s => Ok(()),
        _ => Err("truncated: the JPEG has no end-of-image marker after its image data".into()),
    }
}

fn decode_bytes(path: &Path, bytes: &[u8]) -> Result<DynamicImage, String> {
    match metricann::image::decode(&path.display().to_string(), bytes) {
        Ok(img) => Ok(img),
        Err(metricann::Error::BadImage { reason, .. }) => Err(reason),
        Err(other) => Err(other.to_string()),
    }
}

/// Reads and decodes one image file (the checks of [`verify`], then the pixels).
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let bad = |reason: String| DatasetError::BadImage {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.is_empty() {
        return Err(bad("the file is empty (0 bytes)".into()));
    }
    let format = content_format(&bytes[..bytes.len().min(64)]).map_err(bad)?;
    complete(format, &bytes).map_err(bad)?;
    decode_bytes(path, &bytes).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
    }

    fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn glyph() -> DynamicImage {
        DynamicImage::ImageLuma8(image::GrayImage::from_fn(32, 32, |x, y| {
            image::Luma([if (8..24).contains(&x) && (14..18).contains(&y) {
                0
            } else {
                255
            }])
        }))
    }

    /// a/: 2 good PNGs + the bad fixtures + a non-image; b/: one JPEG in a
    /// sub-folder; c/: bad files only; a stray image at the root; a hidden folder.
    fn messy() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["a", "b/nested", "c", ".hidden"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let png = encode(&glyph(), ImageFormat::Png);
        fs::write(root.join("a/one.png"), &png).unwrap();
        fs::write(root.join("a/TWO.PNG"), &png).unwrap();
        for bad in ["corrupt.jpg", "empty.png", "text.png"] {
            fs::copy(fixtures().join("bad").join(bad), root.join("a").join(bad)).unwrap();
        }
        fs::write(
            root.join("a/notes.txt"),
            "not an image, and not named like one",
        )
        .unwrap();
        let rgb = DynamicImage::ImageRgb8(glyph().to_rgb8());
        fs::write(
            root.join("b/nested/photo.jpeg"),
            encode(&rgb, ImageFormat::Jpeg),
        )
        .unwrap();
        fs::write(root.join("c/half.png"), &png[..png.len() / 2]).unwrap();
        fs::write(root.join("c/empty.gif"), b"").unwrap();
        fs::write(root.join("stray.png"), &png).unwrap();
        fs::write(root.join(".hidden/x.png"), &png).unwrap();
        dir
    }

    #[test]
    fn opens_a_messy_folder_skipping_bad_files_with_reasons() {
        let dir = messy();
        let root = dir.path();
        let f = ImageFolder::open(root).unwrap();
        assert_eq!(f.classes(), ["a", "b"]);
        assert_eq!(f.empty_classes(), ["c"]);
        assert_eq!(f.class_counts(), vec![2, 1]);
        assert_eq!(f.labels(), vec![0, 0, 1]);
        assert_eq!(f.items()[2].path, root.join("b/nested/photo.jpeg"));
        assert_eq!(f.items()[2].label, "b");

        let skipped: Vec<(String, &str)> = f
            .skipped()
            .iter()
            .map(|(p, r)| {
                (
                    p.strip_prefix(root).unwrap().display().to_string(),
                    r.as_str(),
                )
            })
            .collect();
        let names: Vec<&str> = skipped.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "a/corrupt.jpg",
                "a/empty.png",
                "a/text.png",
                "c/empty.gif",
                "c/half.png",
                "stray.png"
            ]
        );
        let reason = |name: &str| skipped.iter().find(|(p, _)| p == name).unwrap().1;
        assert!(
            reason("a/corrupt.jpg").contains("truncated"),
            "{}",
            reason("a/corrupt.jpg")
        );
        assert!(reason("a/empty.png").contains("empty"));
        assert!(reason("a/text.png").contains("not an image"));
        assert!(!reason("c/half.png").is_empty());
        assert!(reason("stray.png").contains("class folder"));

        for i in 0..f.len() {
            let img = f.load(i).unwrap();
            assert_eq!((img.width(), img.height()), (32, 32));
        }
        assert!(matches!(
            f.load(3),
            Err(DatasetError::OutOfRange { index: 3, len: 3 })
        ));
    }

    #[test]
    fn a_file_broken_after_open_is_an_error_naming_it() {
        let dir = messy();
        let f = ImageFolder::open(dir.path()).unwrap();
        let path = f.items()[0].path.clone();
        fs::write(&path, b"garbage now").unwrap();
        let e = f.load(0).unwrap_err();
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        fs::remove_file(&path).unwrap();
        assert!(matches!(f.load(0), Err(DatasetError::Io { .. })));
    }

    #[test]
    fn the_bad_fixtures_are_caught_by_verify_and_load() {
        let bad = fixtures().join("bad");
        for name in ["corrupt.jpg", "empty.png", "text.png"] {
            let path = bad.join(name);
            assert!(verify(&path).is_err(), "{name}");
            let e = load_image(&path).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
        }
        // corrupt.jpg is a real JPEG: its header reads fine, only its end is missing.
        let reader = ImageReader::open(bad.join("corrupt.jpg"))
            .unwrap()
            .with_guessed_format()
            .unwrap();
        assert_eq!(reader.format(), Some(ImageFormat::Jpeg));
        assert!(reader.into_dimensions().is_ok());
    }

    #[test]
    fn a_jpeg_with_trailing_bytes_after_its_end_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let mut jpeg = encode(
            &DynamicImage::ImageRgb8(glyph().to_rgb8()),
            ImageFormat::Jpeg,
        );
        jpeg.extend_from_slice(b"appended by some camera");
        let p = dir.path().join("x.jpg");
        fs::write(&p, &jpeg).unwrap();
        assert_eq!(verify(&p), Ok(()));
        assert!(load_image(&p).is_ok());
    }

    #[test]
    fn opens_the_glyph_fixture() {
        let (train, val) = ImageFolder::open_train_val(fixtures().join("glyphs")).unwrap();
        let val = val.expect("val/");
        assert_eq!(train.num_classes(), 32);
        assert_eq!(val.num_classes(), 8);
        assert!(train.skipped().is_empty() && val.skipped().is_empty());
        assert!(
            train.class_counts().iter().all(|&n| n >= 8),
            "{:?}",
            train.class_counts()
        );
        let t: BTreeSet<&String> = train.classes().iter().collect();
        assert!(val.classes().iter().all(|c| !t.contains(c)));
        let mut sorted = train.classes().to_vec();
        sorted.sort();
        assert_eq!(train.classes(), sorted.as_slice());
        let img = train.load(0).unwrap();
        assert_eq!(
            (img.width(), img.height(), img.color()),
            (64, 64, image::ColorType::L8)
        );
        let new = ImageFolder::open(fixtures().join("glyphs/new")).unwrap();
        assert_eq!(new.num_classes(), 2);
    }

    #[test]
    fn splits_by_class_disjointly_and_deterministically() {
        let f = ImageFolder::open(fixtures().join("glyphs/train")).unwrap();
        let (t, v) = f.split_by_class(0.25, 7);
        assert_eq!((t.num_classes(), v.num_classes()), (24, 8));
        assert_eq!(t.len() + v.len(), f.len());
        let tc: BTreeSet<&String> = t.classes().iter().collect();
        assert!(
            v.classes().iter().all(|c| !tc.contains(c)),
            "disjoint classes"
        );
        for part in [&t, &v] {
            for item in part.items() {
                assert_eq!(
                    part.classes()[item.class],
                    item.label,
                    "renumbered ids match labels"
                );
            }
            assert_eq!(part.class_counts().len(), part.num_classes());
            assert!(part.class_counts().iter().all(|&n| n > 0));
        }
        let (_, v2) = f.split_by_class(0.25, 7);
        assert_eq!(v.classes(), v2.classes());
        let others: BTreeSet<Vec<String>> = (0..5)
            .map(|s| f.split_by_class(0.25, s).1.classes().to_vec())
            .collect();
        assert!(others.len() > 1, "the seed chooses the classes");

        let (t, v) = f.split_by_class(0.001, 1);
        assert_eq!(
            (t.num_classes(), v.num_classes()),
            (31, 1),
            "a positive fraction holds out a class"
        );
        let (t, v) = f.split_by_class(0.0, 1);
        assert_eq!((t.num_classes(), v.num_classes()), (32, 0));
        let (t, v) = f.split_by_class(f32::NAN, 1);
        assert_eq!((t.num_classes(), v.num_classes()), (32, 0));
    }

    #[test]
    fn refuses_missing_and_non_folders() {
        let e = ImageFolder::open("/no/such/folder").unwrap_err();
        assert!(matches!(e, DatasetError::Io { .. }) && e.to_string().contains("/no/such/folder"));
        let file = fixtures().join("bad/text.png");
        assert!(matches!(
            ImageFolder::open(&file),
            Err(DatasetError::NotADir { .. })
        ));
        let empty = tempfile::tempdir().unwrap();
        let f = ImageFolder::open(empty.path()).unwrap();
        assert!(f.is_empty() && f.classes().is_empty());
    }
}
