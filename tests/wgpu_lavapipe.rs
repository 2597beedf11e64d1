//! burn's wgpu backend (the one the browser runs on WebGPU) against ndarray, on
//! Mesa's lavapipe Vulkan driver (Debian `mesa-vulkan-drivers`): the same bundle
//! must give the same embeddings (cosine ≥ 0.999), so the GPU kernels are
//! exercised in CI without a GPU. Skipped, with the reason printed, only when no
//! Vulkan adapter exists.

#![cfg(feature = "wgpu")]

use burn::tensor::Device;
use burn::tensor::wgpu::WgpuBackend;
use image::{DynamicImage, Rgb, RgbImage};
use metricann::backend::Backend;
use metricann::embed::Embedder;
use metricann::image::Preprocessing;
use metricann::model::{Architecture, Bundle, ResNetConfig};

const LAVAPIPE_ICD: &str = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";

fn images() -> Vec<DynamicImage> {
    (0..6u32)
        .map(|k| {
            DynamicImage::ImageRgb8(RgbImage::from_fn(40 + k * 3, 36, |x, y| {
                let ink =
                    (x * (k + 1) + y * 7) % 11 < 3 || (x as i32 - y as i32).unsigned_abs() < k;
                if ink {
                    Rgb([20, 20 + 30 * k as u8, 40])
                } else {
                    Rgb([250, 248, 240])
                }
            }))
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn wgpu_on_lavapipe_matches_ndarray() {
    if std::env::var_os("VK_ICD_FILENAMES").is_none() && std::path::Path::new(LAVAPIPE_ICD).exists()
    {
        // SAFETY: this test binary holds this one test, which sets the variable
        // before any wgpu/Vulkan code runs; no other thread reads the environment.
        unsafe { std::env::set_var("VK_ICD_FILENAMES", LAVAPIPE_ICD) };
    }
    let gpu: Device = match Device::wgpu_options()
        .graphics_api(WgpuBackend::Vulkan)
        .init()
    {
        Ok(device) => device,
        Err(e) => {
            println!(
                "SKIPPED wgpu_on_lavapipe_matches_ndarray: no Vulkan adapter ({e}); install mesa-vulkan-drivers"
            );
            return;
        }
    };
    println!(
        "wgpu device on Vulkan: {gpu:?} (VK_ICD_FILENAMES={:?})",
        std::env::var_os("VK_ICD_FILENAMES")
    );

    let cpu = Backend::Ndarray.device().unwrap();
    let config = Architecture::from(ResNetConfig::tiny(32));
    let model = config.init(&cpu).unwrap();
    let bundle = Bundle::from_model(&model, &config, &Preprocessing::new(32), None).unwrap();
    let bundle = Bundle::from_bytes("test.bundle", &bundle.to_bytes().unwrap()).unwrap();

    let on_cpu = Embedder::new(&bundle, cpu)
        .unwrap()
        .embed(&images())
        .unwrap();
    let on_gpu = Embedder::new(&bundle, gpu)
        .unwrap()
        .embed(&images())
        .unwrap();
    assert_eq!(on_cpu.len(), on_gpu.len());
    for (i, (a, b)) in on_cpu.iter().zip(&on_gpu).enumerate() {
        let c = cosine(a, b);
        println!("image {i}: cosine(ndarray, wgpu/lavapipe) = {c:.6}");
        assert!(c >= 0.999, "image {i}: cosine {c}");
    }
}
