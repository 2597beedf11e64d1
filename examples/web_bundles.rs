//! Writes two random-initialised model bundles for the browser and Node tests:
//! `default.bundle` and `other.bundle` (same architecture, other weights, so
//! another fingerprint). Usage: `web_bundles OUT_DIR [INPUT_SIZE] [DIM]`.
//!
//! A random network still maps an image to a fixed unit vector, which is all
//! the tests need (an enrolled image must find its own class at top-1); the
//! trained model (`metricann train`) is used instead when it exists.

use std::path::PathBuf;

use metricann::backend::Backend;
use metricann::image::Preprocessing;
use metricann::model::{Architecture, Bundle, ResNetConfig};

fn main() {
    if let Err(e) = run() {
        eprintln!("web_bundles: {e}");
        std::process::exit(if e.is_user_error() { 2 } else { 1 });
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> metricann::Result<T> {
    match args.get(i) {
        None => Ok(default),
        Some(s) => s.parse().map_err(|_| {
            metricann::Error::BadInput(format!("argument {i}: {s:?} is not a number"))
        }),
    }
}

fn run() -> metricann::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(args.get(1).ok_or_else(|| {
        metricann::Error::BadInput("usage: web_bundles OUT_DIR [INPUT_SIZE] [DIM]".into())
    })?);
    let input_size: u32 = arg(&args, 2, 32)?;
    let dim: usize = arg(&args, 3, 64)?;
    std::fs::create_dir_all(&out).map_err(|e| metricann::Error::io(&out, e))?;
    let device = Backend::Ndarray.device()?;
    let config = Architecture::from(ResNetConfig::tiny(dim));
    let preprocessing = Preprocessing::new(input_size);
    let mut fingerprints = Vec::new();
    for name in ["default.bundle", "other.bundle"] {
        let model = config.init(&device)?;
        let bundle = Bundle::from_model(&model, &config, &preprocessing, None)?;
        let path = out.join(name);
        std::fs::write(&path, bundle.to_bytes()?).map_err(|e| metricann::Error::io(&path, e))?;
        println!("{}: fingerprint {}", path.display(), bundle.fingerprint());
        fingerprints.push(bundle.fingerprint().to_string());
    }
    if fingerprints[0] == fingerprints[1] {
        return Err(metricann::Error::Internal(
            "two random inits gave the same weights".into(),
        ));
    }
    Ok(())
}
