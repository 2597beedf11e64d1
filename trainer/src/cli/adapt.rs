//! `metricann bench-adapt`: what on-device adaptation ([`metricann::adapt`])
//! does for classes the model never saw, measured natively with the same code
//! the browser runs.
//!
//! The data is an evaluation folder of the objects model's kind: one folder per
//! class holding `enroll-*` images (what a user enrolls) and `query-*` images
//! (camera-like captures of the same thing, never trained on). The gallery is
//! the first `--shots` enroll images of `--classes` classes; top-1 of every
//! query is measured with the shipped head and with the adapted one.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use image::DynamicImage;
use serde::Serialize;
use tracing::info;

use metricann::adapt::{AdaptLoss, AdaptOptions, AdaptReport, Progress, adapt};
use metricann::embed::Embedder;
use metricann::index::distance::dot;
use metricann::{Error, Result};

use super::common::{embedder, print_report, spinner};

#[derive(Args, Debug)]
pub struct BenchAdaptArgs {
    /// Model bundle to adapt (its projection head is retrained).
    #[arg(long)]
    pub model: PathBuf,
    /// Evaluation folder: one sub-folder per class with enroll-* and query-* images.
    #[arg(long)]
    pub data: PathBuf,
    /// Classes to enroll (the first, by folder name).
    #[arg(long, default_value_t = 20)]
    pub classes: usize,
    /// Enrolled images per class (1 to 3).
    #[arg(long, default_value_t = 3)]
    pub shots: usize,
    /// Optimisation steps.
    #[arg(long, default_value_t = AdaptOptions::default().steps)]
    pub steps: usize,
    /// Augmented views of each enrolled image.
    #[arg(long, default_value_t = AdaptOptions::default().views)]
    pub views: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = AdaptOptions::default().learning_rate)]
    pub lr: f64,
    /// Seed of the views and batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Metric loss: triplet (batch-hard) or proxy (normalised softmax over class proxies).
    #[arg(long, default_value = "triplet", value_parser = ["triplet", "proxy"])]
    pub loss: String,
    /// Backend: ndarray (CPU) or wgpu.
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    /// Print one JSON object instead of progress and a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct BenchAdaptReport {
    data: String,
    classes: usize,
    shots: usize,
    queries: usize,
    top1_before: f64,
    top1_after: f64,
    features_seconds: f64,
    training_seconds: f64,
    adaptation: AdaptReport,
}

pub fn bench_adapt(a: BenchAdaptArgs) -> Result<()> {
    if !(1..=3).contains(&a.shots) {
        return Err(Error::BadInput("--shots must be 1, 2 or 3".into()));
    }
    let base = embedder(&a.model, &a.backend)?;
    let (enrolled, queries) = load_classes(&a.data, a.classes, a.shots)?;
    let before = top1(&base, &enrolled, &queries)?;
    info!(
        classes = enrolled.len(),
        queries = queries.len(),
        top1 = before,
        "shipped head"
    );

    let options = AdaptOptions {
        steps: a.steps,
        views: a.views,
        learning_rate: a.lr,
        seed: a.seed,
        loss: if a.loss == "proxy" {
            AdaptLoss::Proxy
        } else {
            AdaptLoss::Triplet
        },
        ..AdaptOptions::default()
    };
    let bar = spinner(0, "adapting", a.json);
    let start = Instant::now();
    let mut features_done = start;
    let adapted = adapt(&base, &enrolled, &options, |p| {
        match p {
            Progress::Features { done, total } => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                features_done = Instant::now();
            }
            Progress::Step { step, steps, loss } => {
                if step == 1 {
                    bar.set_prefix("training");
                    bar.set_length(steps as u64);
                }
                bar.set_position(step as u64);
                bar.set_message(format!("loss {loss:.4}"));
            }
        }
        ControlFlow::Continue(())
    })?
    .ok_or_else(|| Error::Internal("adaptation cancelled".into()))?;
    bar.finish_and_clear();
    let training = features_done.elapsed().as_secs_f64();
    let features = (features_done - start).as_secs_f64();
    let after = top1(&base.with_head(&adapted.head)?, &enrolled, &queries)?;
    let report = BenchAdaptReport {
        data: a.data.display().to_string(),
        classes: enrolled.len(),
        shots: a.shots,
        queries: queries.len(),
        top1_before: before,
        top1_after: after,
        features_seconds: features,
        training_seconds: training,
        adaptation: adapted.report,
    };
    if a.json {
        return print_report(&report);
    }
    println!(
        "{} classes × {} shots, {} queries: top-1 {:.3} → {:.3}; features {:.1} s, training {:.1} s; held-out check {:?}, kept {}",
        report.classes,
        report.shots,
        report.queries,
        before,
        after,
        features,
        training,
        report.adaptation.held_out,
        report.adaptation.kept
    );
    Ok(())
}

type Queries = Vec<(usize, DynamicImage)>;

/// The enrolled images of each class and every query with its class.
fn load_classes(
    dir: &Path,
    classes: usize,
    shots: usize,
) -> Result<(Vec<Vec<DynamicImage>>, Queries)> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    folders.truncate(classes);
    if folders.len() < 2 {
        return Err(Error::BadInput(format!(
            "{}: fewer than two class folders",
            dir.display()
        )));
    }
    let mut enrolled = Vec::new();
    let mut queries = Vec::new();
    for (class, folder) in folders.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
            .map_err(|e| Error::io(folder, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        let named = |prefix: &str| {
            files
                .iter()
                .filter(|f| {
                    f.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                })
                .cloned()
                .collect::<Vec<_>>()
        };
        let open = |path: &PathBuf| {
            image::open(path).map_err(|e| Error::BadImage {
                name: path.display().to_string(),
                reason: e.to_string(),
            })
        };
        let enroll = named("enroll-");
        if enroll.len() < shots {
            return Err(Error::BadInput(format!(
                "{}: fewer than {shots} enroll-* images",
                folder.display()
            )));
        }
        enrolled.push(
            enroll[..shots]
                .iter()
                .map(open)
                .collect::<Result<Vec<_>>>()?,
        );
        for path in named("query-") {
            queries.push((class, open(&path)?));
        }
    }
    Ok((enrolled, queries))
}

/// Top-1 of the queries against the enrolled images (the nearest image's class).
fn top1(embedder: &Embedder, enrolled: &[Vec<DynamicImage>], queries: &Queries) -> Result<f64> {
    let mut gallery = Vec::new();
    for (class, images) in enrolled.iter().enumerate() {
        for v in embedder.embed(images)? {
            gallery.push((class, v));
        }
    }
    let images: Vec<DynamicImage> = queries.iter().map(|(_, i)| i.clone()).collect();
    let vectors = embedder.embed(&images)?;
    let right = vectors
        .iter()
        .zip(queries)
        .filter(|(q, (class, _))| {
            let best = gallery
                .iter()
                .max_by(|a, b| dot(&a.1, q).total_cmp(&dot(&b.1, q)))
                .map(|(c, _)| *c);
            best == Some(*class)
        })
        .count();
    Ok(right as f64 / queries.len().max(1) as f64)
}
