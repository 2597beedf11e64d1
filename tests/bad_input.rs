//! Every kind of input the library takes, bad in each way we know of, and
//! what it gets back: the error code (the npm package's `error.code`, the
//! Python exception's `.code`, the CLI's exit status 2) and the message.
//! `docs/errors.md` is this test's table; the test fails when the two differ,
//! and `METRICANN_BLESS=1 cargo test -p metricann --test bad_input` rewrites it.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, RgbImage};
use metricann::gallery::{Gallery, GalleryConfig, OpenMode};
use metricann::index::{Index, IndexConfig};
use metricann::model::{Architecture, Bundle, ResNetConfig};
use metricann::store::BlobStore;
use metricann::store::MemoryStore;
use metricann::{Error, Result};

const DIM: usize = 4;

struct Case {
    input: &'static str,
    variant: &'static str,
    code: &'static str,
    run: fn() -> Result<()>,
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(RgbImage::new(width, height))
        .write_to(&mut out, ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn jpeg() -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(RgbImage::new(16, 16))
        .write_to(&mut out, ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// A PNG whose header claims `side`×`side` pixels and holds none.
fn png_claiming(side: u32) -> Vec<u8> {
    let mut bytes = png(1, 1);
    bytes[16..20].copy_from_slice(&side.to_be_bytes());
    bytes[20..24].copy_from_slice(&side.to_be_bytes());
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Result<()> {
    metricann::image::decode("photo.png", bytes).map(drop)
}

fn gallery() -> (Gallery, MemoryStore) {
    let config = GalleryConfig {
        dim: DIM,
        fingerprint: "model-a".into(),
        index: IndexConfig::default(),
        head: None,
    };
    let (mut gallery, created) = Gallery::create(config).unwrap();
    let mut store = MemoryStore::new();
    store.apply(created).unwrap();
    store
        .apply(
            gallery
                .enroll("cat", &[vec![1.0, 0.0, 0.0, 0.0]], None, vec![])
                .unwrap(),
        )
        .unwrap();
    store
        .apply(
            gallery
                .enroll("dog", &[vec![0.0, 1.0, 0.0, 0.0]], None, vec![])
                .unwrap(),
        )
        .unwrap();
    (gallery, store)
}

fn enroll(label: &str, vectors: &[Vec<f32>]) -> Result<()> {
    gallery().0.enroll(label, vectors, None, vec![]).map(drop)
}

fn search(query: &[f32], k: usize) -> Result<()> {
    gallery().0.search(query, k, None).map(drop)
}

fn bundle_bytes() -> Vec<u8> {
    let device = metricann::backend::Backend::Ndarray.device().unwrap();
    let config = Architecture::from(ResNetConfig::tiny(8));
    let model = config.init(&device).unwrap();
    let preprocessing = metricann::image::Preprocessing::new(16);
    let bundle = Bundle::from_model(&model, &config, &preprocessing, None).unwrap();
    bundle.to_bytes().unwrap()
}

fn open_bundle(bytes: &[u8]) -> Result<()> {
    Bundle::from_bytes("model.bundle", bytes).map(drop)
}

fn export_bytes() -> Vec<u8> {
    gallery().0.export_bytes().unwrap()
}

fn import(bytes: &[u8], fingerprint: Option<&str>) -> Result<()> {
    Gallery::import_bytes(bytes, fingerprint).map(drop)
}

fn open(store: &MemoryStore, fingerprint: Option<&str>) -> Result<()> {
    Gallery::open(store, fingerprint, OpenMode::Strict).map(drop)
}

fn damaged_store(blob_prefix: &str, damage: fn(&mut Vec<u8>)) -> MemoryStore {
    let (_, mut store) = gallery();
    let names: Vec<String> = store.names();
    let name = names.iter().find(|n| n.starts_with(blob_prefix)).unwrap();
    damage(store.raw_mut().get_mut(name.as_str()).unwrap());
    store
}

fn flip_last(bytes: &mut [u8]) {
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            input: "image bytes",
            variant: "empty",
            code: "BAD_IMAGE",
            run: || decode(&[]),
        },
        Case {
            input: "image bytes",
            variant: "text, not an image",
            code: "BAD_IMAGE",
            run: || decode(b"hello, world"),
        },
        Case {
            input: "image bytes",
            variant: "a PNG cut in half",
            code: "BAD_IMAGE",
            run: || {
                let p = png(32, 32);
                decode(&p[..p.len() / 2])
            },
        },
        Case {
            input: "image bytes",
            variant: "a JPEG without its end",
            code: "BAD_IMAGE",
            run: || {
                let j = jpeg();
                decode(&j[..j.len() - 2])
            },
        },
        Case {
            input: "image bytes",
            variant: "a PNG header claiming 100,000² pixels",
            code: "BAD_IMAGE",
            run: || decode(&png_claiming(100_000)),
        },
        Case {
            input: "image bytes",
            variant: "a PNG of 0×0 pixels",
            code: "BAD_IMAGE",
            run: || decode(&png_claiming(0)),
        },
        Case {
            input: "RGBA pixels (camera frame)",
            variant: "fewer bytes than width × height × 4",
            code: "BAD_IMAGE",
            run: || metricann::image::from_rgba("frame", 4, 4, vec![0; 10]).map(drop),
        },
        Case {
            input: "RGBA pixels (camera frame)",
            variant: "0×0",
            code: "BAD_IMAGE",
            run: || metricann::image::from_rgba("frame", 0, 0, vec![]).map(drop),
        },
        Case {
            input: "example vectors",
            variant: "none",
            code: "BAD_INPUT",
            run: || enroll("bird", &[]),
        },
        Case {
            input: "example vectors",
            variant: "another dimension than the gallery's",
            code: "BAD_INPUT",
            run: || enroll("bird", &[vec![1.0, 0.0]]),
        },
        Case {
            input: "example vectors",
            variant: "a NaN",
            code: "BAD_INPUT",
            run: || enroll("bird", &[vec![1.0, f32::NAN, 0.0, 0.0]]),
        },
        Case {
            input: "example vectors",
            variant: "all zeros",
            code: "BAD_INPUT",
            run: || enroll("bird", &[vec![0.0; DIM]]),
        },
        Case {
            input: "class label",
            variant: "empty",
            code: "BAD_INPUT",
            run: || enroll("", &[vec![1.0, 0.0, 0.0, 0.0]]),
        },
        Case {
            input: "class label",
            variant: "removing one that does not exist",
            code: "NOT_FOUND",
            run: || gallery().0.remove("bird").map(drop),
        },
        Case {
            input: "class label",
            variant: "renaming onto one that exists",
            code: "ALREADY_EXISTS",
            run: || gallery().0.rename("cat", "dog").map(drop),
        },
        Case {
            input: "class label",
            variant: "renaming one that does not exist",
            code: "NOT_FOUND",
            run: || gallery().0.rename("bird", "owl").map(drop),
        },
        Case {
            input: "query vector",
            variant: "another dimension than the gallery's",
            code: "BAD_INPUT",
            run: || search(&[1.0, 0.0], 3),
        },
        Case {
            input: "query vector",
            variant: "an infinity",
            code: "BAD_INPUT",
            run: || search(&[f32::INFINITY, 0.0, 0.0, 0.0], 3),
        },
        Case {
            input: "query vector",
            variant: "k = 0",
            code: "BAD_INPUT",
            run: || search(&[1.0, 0.0, 0.0, 0.0], 0),
        },
        Case {
            input: "index settings",
            variant: "dimension 0",
            code: "BAD_INPUT",
            run: || Index::new(0, "m", IndexConfig::default()).map(drop),
        },
        Case {
            input: "index settings",
            variant: "M outside 2..=64",
            code: "BAD_INPUT",
            run: || {
                Index::new(
                    4,
                    "m",
                    IndexConfig {
                        m: 1,
                        ..IndexConfig::default()
                    },
                )
                .map(drop)
            },
        },
        Case {
            input: "model bundle",
            variant: "empty",
            code: "CORRUPT",
            run: || open_bundle(&[]),
        },
        Case {
            input: "model bundle",
            variant: "another file (a PNG)",
            code: "CORRUPT",
            run: || open_bundle(&png(4, 4)),
        },
        Case {
            input: "model bundle",
            variant: "cut short",
            code: "CORRUPT",
            run: || {
                let b = bundle_bytes();
                open_bundle(&b[..b.len() - 100])
            },
        },
        Case {
            input: "model bundle",
            variant: "one byte changed",
            code: "CORRUPT",
            run: || {
                let mut b = bundle_bytes();
                flip_last(&mut b);
                open_bundle(&b)
            },
        },
        Case {
            input: "export file",
            variant: "empty",
            code: "CORRUPT",
            run: || import(&[], None),
        },
        Case {
            input: "export file",
            variant: "cut short",
            code: "CORRUPT",
            run: || {
                let e = export_bytes();
                import(&e[..e.len() / 2], None)
            },
        },
        Case {
            input: "export file",
            variant: "one byte changed",
            code: "CORRUPT",
            run: || {
                let mut e = export_bytes();
                flip_last(&mut e);
                import(&e, None)
            },
        },
        Case {
            input: "export file",
            variant: "made by another model",
            code: "MODEL_MISMATCH",
            run: || import(&export_bytes(), Some("model-b")),
        },
        Case {
            input: "stored gallery",
            variant: "nothing stored",
            code: "NOT_FOUND",
            run: || open(&MemoryStore::new(), None),
        },
        Case {
            input: "stored gallery",
            variant: "made by another model",
            code: "MODEL_MISMATCH",
            run: || open(&gallery().1, Some("model-b")),
        },
        Case {
            input: "stored gallery",
            variant: "its manifest cut short",
            code: "CORRUPT",
            run: || {
                open(
                    &damaged_store("manifest", |b| b.truncate(b.len() / 2)),
                    None,
                )
            },
        },
        Case {
            input: "stored gallery",
            variant: "a growing chunk with one byte changed",
            code: "CORRUPT",
            run: || open(&damaged_store("grow-", |b| flip_last(b)), None),
        },
    ]
}

/// The message without what changes from run to run.
fn message(err: &Error) -> String {
    err.to_string().replace('|', "\\|").replace('\n', " ")
}

#[test]
fn every_bad_input_gets_its_code_and_the_table_says_so() {
    let mut table =
        String::from("| input | bad variant | code | message |\n| --- | --- | --- | --- |\n");
    let mut wrong = Vec::new();
    for case in cases() {
        let got = match (case.run)() {
            Ok(()) => {
                wrong.push(format!("{} / {}: accepted", case.input, case.variant));
                continue;
            }
            Err(e) => e,
        };
        if got.code() != case.code {
            wrong.push(format!(
                "{} / {}: {} ({got}), expected {}",
                case.input,
                case.variant,
                got.code(),
                case.code
            ));
        }
        table += &format!(
            "| {} | {} | `{}` | {} |\n",
            case.input,
            case.variant,
            got.code(),
            message(&got)
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/errors.md");
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let marker = "<!-- the table: tests/bad_input.rs -->\n";
    let intro = doc.split(marker).next().unwrap_or_default().to_string();
    let expected = format!("{intro}{marker}\n{table}");
    if std::env::var_os("METRICANN_BLESS").is_some() {
        std::fs::write(path, &expected).unwrap();
        return;
    }
    assert!(
        doc == expected,
        "docs/errors.md is not this test's table: run METRICANN_BLESS=1 cargo test -p metricann --test bad_input\n{table}"
    );
}
