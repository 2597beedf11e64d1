//! What the fuzz targets (`fuzz/`) run on their input, and the replay of the
//! inputs that once failed (`tests/fuzz_replay.rs`): every reader of bytes
//! that come from an untrusted place, fed through the API a user calls.
//!
//! The property is the same for each: a result or an `Err`, never a panic.
//! The targets are structure-aware where plain bytes would stop at a checksum:
//! the input is a payload that the harness frames again (blob frame, bundle
//! checksum and fingerprint, the manifest's record of a blob's size), so that
//! it reaches the decoder behind the frame. A leading byte or two choose what
//! is fuzzed; [`seeds`] writes the starting inputs in that layout.
//!
//! Not part of the library's API: it is public only for the fuzz crate.
#![doc(hidden)]

use std::path::Path;

use crate::Error;
use crate::backend::Backend;
use crate::blob::{self, BlobRead};
use crate::embed::Embedder;
use crate::gallery::{Gallery, GalleryConfig, KIND_EXPORT, OpenMode};
use crate::image::{Preprocessing, decode};
use crate::index::{IndexConfig, Quantization};
use crate::model::{Architecture, Bundle, ResNetConfig};
use crate::store::{BlobStore, MemoryStore};

/// Dimension of the galleries built here.
pub const DIM: usize = 16;

/// A gallery vector: class `i`'s direction, nudged by `j`.
pub fn vector(i: usize, j: usize, dim: usize) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    v[i % dim] = 1.0;
    v[(i + 3) % dim] = 0.01 * j as f32;
    v[(i + 5) % dim] = 0.003 * (j % 11) as f32;
    v
}

/// A gallery holding one blob of every kind a gallery writes now: a graph
/// (its vectors stored as `storage` says), a flat segment, a growing chunk,
/// class pages with metadata and images, and the manifest.
pub fn fresh_gallery(storage: Quantization) -> MemoryStore {
    let mut store = MemoryStore::new();
    let (mut g, created) = Gallery::create(GalleryConfig {
        dim: DIM,
        fingerprint: "fp".into(),
        index: IndexConfig {
            growing_capacity: 9,
            ..IndexConfig::default()
        },
        head: None,
    })
    .expect("a valid config");
    let apply = |store: &mut MemoryStore, cs: crate::blob::ChangeSet| {
        store.apply(cs).expect("an in-memory store")
    };
    apply(&mut store, created);
    g.set_auto_maintain(false);
    let big: Vec<Vec<f32>> = (0..80).map(|j| vector(0, j, DIM)).collect();
    let meta = Some(serde_json::json!({"sku": "A-1", "n": [1, 2]}));
    let enroll =
        |g: &mut Gallery,
         name: &str,
         vs: &[Vec<f32>],
         meta: Option<serde_json::Value>,
         images: Vec<Vec<u8>>| { g.enroll(name, vs, meta, images).expect("valid vectors") };
    apply(
        &mut store,
        enroll(&mut g, "big", &big, meta, vec![vec![7; 9]]),
    );
    apply(&mut store, g.maintain().expect("maintain").expect("work"));
    for i in 1..4 {
        let vs: Vec<Vec<f32>> = (0..3).map(|j| vector(i, j, DIM)).collect();
        apply(
            &mut store,
            enroll(&mut g, &format!("c{i}"), &vs, None, vec![]),
        );
    }
    apply(&mut store, g.maintain().expect("maintain").expect("work"));
    let fresh = [vector(6, 0, DIM)];
    apply(&mut store, enroll(&mut g, "fresh", &fresh, None, vec![]));
    if storage != Quantization::None {
        apply(&mut store, g.quantize_to(storage).expect("quantize"));
    }
    store
}

/// A gallery directory read into memory (the legacy fixtures: class blobs of
/// format 1 and graphs of earlier layouts).
pub fn read_gallery(dir: &Path) -> std::io::Result<MemoryStore> {
    let mut store = MemoryStore::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            store.raw_mut().insert(name, std::fs::read(entry.path())?);
        }
    }
    Ok(store)
}

/// The legacy galleries [`gallery_blob`] mutates, relative to the repository.
pub const LEGACY_GALLERIES: [&str; 3] = [
    "tests/fixtures/legacy/gallery",
    "tests/fixtures/legacy/gallery-optimized",
    "tests/fixtures/legacy/gallery-int8",
];

/// The galleries [`gallery_blob`] mutates: the three fresh ones, then the
/// [`LEGACY_GALLERIES`] of the repository at `repo`. Always in that order, so
/// that an input's first byte picks the same gallery in every run.
pub fn base_galleries(repo: &Path) -> std::io::Result<Vec<MemoryStore>> {
    let mut bases = vec![
        fresh_gallery(Quantization::None),
        fresh_gallery(Quantization::Int8),
        fresh_gallery(Quantization::Int8Residual),
    ];
    for dir in LEGACY_GALLERIES {
        bases.push(read_gallery(&repo.join(dir))?);
    }
    Ok(bases)
}

/// Everything a user does with a gallery just opened: list, search, export,
/// enroll. Whether the strict open accepted it.
pub fn use_gallery(store: &dyn BlobRead) -> bool {
    let mut accepted = false;
    for mode in [OpenMode::Strict, OpenMode::SkipDamaged] {
        let Ok((mut g, _)) = Gallery::open(store, None, mode) else {
            continue;
        };
        accepted |= mode == OpenMode::Strict;
        let dim = g.dim();
        let _ = g.classes();
        let _ = g.stats();
        for i in 0..dim.min(DIM) {
            let _ = g.search(&vector(i, 1, dim), 3, None);
            let _ = g.search_examples(&vector(i, 1, dim), 5);
        }
        let _ = g.export_bytes();
        if g.enroll("after", &[vector(9, 0, dim)], None, vec![])
            .is_ok()
        {
            let _ = g.search(&vector(9, 0, dim), 1, None);
        }
    }
    accepted
}

/// Input: `[gallery, blob, how, payload…]`. Blob number `blob` (in name
/// order) of base gallery `gallery` is replaced by `payload`, framed again
/// with its kind and checksum when `how` is even, as it is otherwise; the
/// manifest's record of that blob's size is made true. Then [`use_gallery`].
pub fn gallery_blob(bases: &[MemoryStore], data: &[u8]) {
    let [g, b, how, payload @ ..] = data else {
        return;
    };
    let Some(base) = bases.get(*g as usize % bases.len().max(1)) else {
        return;
    };
    let mut names = base.names();
    names.sort();
    let name = &names[*b as usize % names.len()];
    let Some(kind) = base
        .get(name)
        .ok()
        .flatten()
        .and_then(|b| blob::peek_kind(&b))
    else {
        return;
    };
    let bytes = if how % 2 == 0 {
        blob::seal(kind, payload)
    } else {
        payload.to_vec()
    };
    let mut store = base.clone();
    let size = bytes.len() as u64;
    store.raw_mut().insert(name.clone(), bytes);
    if name != blob::MANIFEST {
        record_size(&mut store, name, size);
    }
    use_gallery(&store);
}

/// Rewrites the manifest so that every entry naming `name` says `size` bytes,
/// leaving it alone when it does not parse.
fn record_size(store: &mut MemoryStore, name: &str, size: u64) {
    let Some(bytes) = store.get(blob::MANIFEST).ok().flatten() else {
        return;
    };
    let Some(kind) = blob::peek_kind(&bytes) else {
        return;
    };
    let Ok(payload) = blob::open(blob::MANIFEST, kind, &bytes) else {
        return;
    };
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    set_sizes(&mut json, name, size);
    if let Ok(payload) = serde_json::to_vec(&json) {
        store
            .raw_mut()
            .insert(blob::MANIFEST.into(), blob::seal(kind, &payload));
    }
}

fn set_sizes(json: &mut serde_json::Value, name: &str, size: u64) {
    match json {
        serde_json::Value::Object(map) => {
            if map.get("name").and_then(|n| n.as_str()) == Some(name) && map.contains_key("bytes") {
                map.insert("bytes".into(), size.into());
            }
            map.values_mut().for_each(|v| set_sizes(v, name, size));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| set_sizes(v, name, size)),
        _ => {}
    }
}

/// Input: `[how, payload…]`: an export file whose payload is framed again
/// when `how` is even, as it is otherwise. Imported, then listed and searched.
pub fn export(data: &[u8]) {
    let [how, payload @ ..] = data else {
        return;
    };
    let bytes = if how % 2 == 0 {
        blob::seal(KIND_EXPORT, payload)
    } else {
        payload.to_vec()
    };
    if let Ok((g, changes)) = Gallery::import_bytes(&bytes, None) {
        let _ = g.classes();
        let _ = g.search(&vector(1, 0, g.dim()), 3, None);
        let mut store = MemoryStore::new();
        if store.apply(changes).is_ok() {
            use_gallery(&store);
        }
    }
}

/// Input: any bytes, checked as a blob frame of every kind; the frame's
/// errors are `Corrupt`.
pub fn blob_frame(data: &[u8]) {
    let kind = blob::peek_kind(data).unwrap_or(*b"MNFT");
    if let Err(e) = blob::open("fuzzed", kind, data) {
        assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    }
}

/// Input: `[how, header length (2 bytes), header JSON…, weights…]`. When
/// `how` is even the harness sets the header's fingerprint to the weights'
/// and frames them with true lengths and checksum; otherwise the bytes after
/// `how` are the file. A bundle that reads is loaded and embeds an image.
pub fn bundle(data: &[u8]) {
    let [how, rest @ ..] = data else {
        return;
    };
    let file = if how % 2 == 0 {
        frame_bundle(rest)
    } else {
        rest.to_vec()
    };
    let Ok(bundle) = Bundle::from_bytes("fuzzed.bundle", &file) else {
        return;
    };
    // Embedding costs the network's size: keep the fuzzer to small ones.
    if bundle.weights_len() > 1 << 20 || bundle.header.preprocessing.input_size > 64 {
        return;
    }
    let Ok(device) = Backend::Ndarray.device() else {
        return;
    };
    if let Ok(embedder) = Embedder::new(&bundle, device) {
        let image = ::image::DynamicImage::new_rgb8(9, 7);
        if let Ok(v) = embedder.embed_one(&image) {
            assert_eq!(v.len(), embedder.dim());
        }
    }
}

fn frame_bundle(rest: &[u8]) -> Vec<u8> {
    let Some((len, rest)) = rest.split_first_chunk::<2>() else {
        return rest.to_vec();
    };
    let split = (u16::from_le_bytes(*len) as usize).min(rest.len());
    let (header, weights) = rest.split_at(split);
    let header = match serde_json::from_slice::<serde_json::Value>(header) {
        Ok(mut json) if json.is_object() => {
            json["fingerprint"] = crate::model::bundle::fingerprint(weights).into();
            serde_json::to_vec(&json).unwrap_or_else(|_| header.to_vec())
        }
        _ => header.to_vec(),
    };
    crate::model::bundle::encode(&header, weights)
}

/// Input: an encoded image. Decoded and preprocessed as an upload is: an
/// input of the model's length, or `BadImage` naming the file.
pub fn image(data: &[u8]) {
    let pre = Preprocessing::new(32);
    match decode("fuzzed.img", data) {
        Ok(image) => assert_eq!(pre.apply(&image).len(), pre.tensor_len()),
        Err(Error::BadImage { name, .. }) => assert_eq!(name, "fuzzed.img"),
        Err(other) => panic!("not BadImage: {other}"),
    }
}

/// The fuzz targets, by name, with what each runs.
pub const TARGETS: [&str; 5] = ["blob_frame", "gallery_blob", "export", "bundle", "image"];

/// Starting inputs for each target, in its input layout: every blob of
/// `bases` (framed and not), their exports, a tiny bundle, and the images in
/// `images`.
pub fn seeds(bases: &[MemoryStore], images: &[Vec<u8>]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for (g, base) in bases.iter().enumerate() {
        let mut names = base.names();
        names.sort();
        for (b, name) in names.iter().enumerate() {
            let Some(bytes) = base.get(name).ok().flatten() else {
                continue;
            };
            out.push(("blob_frame", bytes.clone()));
            if let Some(payload) =
                blob::peek_kind(&bytes).and_then(|k| blob::open(name, k, &bytes).ok())
            {
                out.push((
                    "gallery_blob",
                    [&[g as u8, b as u8, 0][..], payload].concat(),
                ));
            }
        }
        if let Ok((gallery, _)) = Gallery::open(base, None, OpenMode::Strict)
            && let Ok(file) = gallery.export_bytes()
            && let Ok(payload) = blob::open("export", KIND_EXPORT, &file)
        {
            out.push(("export", [&[0u8][..], payload].concat()));
        }
    }
    if let Some(seed) = tiny_bundle_seed() {
        out.push(("bundle", seed));
    }
    out.extend(images.iter().map(|i| ("image", i.clone())));
    out
}

/// A small picture encoded in every format the decoder reads.
pub fn image_seeds() -> Vec<Vec<u8>> {
    use ::image::{DynamicImage, ImageFormat, Rgb, RgbImage};
    let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(24, 18, |x, y| {
        Rgb([x as u8 * 10, y as u8 * 14, (x ^ y) as u8])
    }));
    let formats = [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::Gif,
        ImageFormat::Bmp,
        ImageFormat::WebP,
    ];
    let encode = |format: ImageFormat| {
        let image = match format {
            ImageFormat::Jpeg | ImageFormat::WebP => photo.clone(),
            _ => DynamicImage::ImageRgba8(photo.to_rgba8()),
        };
        let mut out = std::io::Cursor::new(Vec::new());
        image
            .write_to(&mut out, format)
            .ok()
            .map(|()| out.into_inner())
    };
    formats.into_iter().filter_map(encode).collect()
}

/// A few-thousand-parameter glyph network, in [`bundle`]'s framed layout.
fn tiny_bundle_seed() -> Option<Vec<u8>> {
    let device = Backend::Ndarray.device().ok()?;
    let architecture = Architecture::from(ResNetConfig::tiny(8));
    let model = architecture.init(&device).ok()?;
    let bundle = Bundle::from_model(&model, &architecture, &Preprocessing::new(16), None).ok()?;
    let header = serde_json::to_vec(&bundle.header).ok()?;
    let weights = bundle.weights();
    let mut seed = vec![0u8];
    seed.extend_from_slice(&(u16::try_from(header.len()).ok()?).to_le_bytes());
    seed.extend_from_slice(&header);
    seed.extend_from_slice(weights);
    Some(seed)
}
