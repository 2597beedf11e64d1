//! What several commands share: loading models, image folders and extracted
//! embeddings, progress bars, and printing.

use std::fs;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use metricann::backend::Backend;
use metricann::embed::Embedder;
use metricann::model::Bundle;
use metricann::{Error, Result};

use crate::dataset::ImageFolder;
use crate::train::LabeledImages;

pub(crate) fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// Prints a command's report as one JSON object.
pub(crate) fn print_report(report: &impl Serialize) -> Result<()> {
    print_json(&to_json(report)?);
    Ok(())
}

pub(crate) fn to_json(value: &impl Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::Internal(e.to_string()))
}

/// A progress bar, or a hidden one when stdout carries JSON (`hidden`).
pub(crate) fn spinner(len: u64, what: &str, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

pub(crate) fn load_bundle(path: &Path) -> Result<Bundle> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    Bundle::from_bytes(&path.display().to_string(), &bytes)
}

pub(crate) fn embedder(model: &Path, backend: &str) -> Result<Embedder> {
    let bundle = load_bundle(model)?;
    Embedder::new(&bundle, backend.parse::<Backend>()?.device()?)
}

/// Opens an ImageFolder, reporting every unreadable file it skipped.
pub(crate) fn open_folder(dir: &Path) -> Result<ImageFolder> {
    // The dataset already logs each skipped file and empty class folder.
    let folder = ImageFolder::open(dir).map_err(|e| Error::BadInput(e.to_string()))?;
    if folder.is_empty() {
        let empty = folder.empty_classes();
        let hint = if empty.is_empty() {
            String::new()
        } else {
            format!(" (empty class folders: {})", empty.join(", "))
        };
        return Err(Error::BadInput(format!(
            "{}: no readable images{hint}",
            dir.display()
        )));
    }
    Ok(folder)
}

/// Embeds decoded images in batches, with a progress bar.
pub(crate) fn embed_images(
    embedder: &Embedder,
    images: &[image::DynamicImage],
    hidden: bool,
) -> Result<Vec<Vec<f32>>> {
    let bar = spinner(images.len() as u64, "embedding", hidden);
    let mut vectors = Vec::with_capacity(images.len());
    for chunk in images.chunks(64) {
        vectors.extend(embedder.embed(chunk)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(vectors)
}

/// Decodes every image of a folder in memory, with a progress bar.
pub(crate) fn load_images(folder: &ImageFolder, hidden: bool) -> Result<LabeledImages> {
    let bar = spinner(folder.len() as u64, "loading", hidden);
    let mut images = Vec::with_capacity(folder.len());
    let mut labels = Vec::with_capacity(folder.len());
    for i in 0..folder.len() {
        let image = folder.load(i).map_err(|e| Error::BadInput(e.to_string()))?;
        images.push(image);
        labels.push(folder.items()[i].class);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(LabeledImages {
        images,
        labels,
        classes: folder.classes().to_vec(),
    })
}

/// Reads `labels.tsv` (with its header) into the class of each row.
pub(crate) fn read_labels(path: &Path) -> Result<Vec<String>> {
    Ok(read_label_rows(path)?.into_iter().map(|(_, c)| c).collect())
}

/// labels.tsv's rows after its header: (image path, class).
pub(crate) fn read_label_rows(path: &Path) -> Result<Vec<(String, String)>> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|line| {
            line.rsplit_once('\t')
                .map(|(file, class)| (file.to_string(), class.to_string()))
                .ok_or_else(|| {
                    Error::BadInput(format!("{}: line without a tab: {line}", path.display()))
                })
        })
        .collect()
}

/// The `meta.json` that `extract` writes next to its vectors.
pub(crate) fn read_meta(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join("meta.json");
    let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::BadInput(format!("{}: {e}", path.display())))
}

/// `extract` writes one label per vector; anything else is a damaged or mixed folder.
pub(crate) fn check_one_label_per_vector(vectors: usize, labels: usize, dir: &Path) -> Result<()> {
    if vectors != labels {
        return Err(Error::BadInput(format!(
            "{vectors} vectors but {labels} labels in {}",
            dir.display()
        )));
    }
    Ok(())
}
