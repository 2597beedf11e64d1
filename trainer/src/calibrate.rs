//! `metricann calibrate`: the bundle a product ships. It chooses the score below
//! which a search answers "unknown", from same-class and other-class pairs of
//! held-out images, records it in the bundle header, and can round the weights
//! to 16 bits to halve the download.

use std::fs;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use tracing::info;

use metricann::backend::Backend;
use metricann::embed::Embedder;
use metricann::model::{Bundle, Calibration};
use metricann::{Error, Result};

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// The trained bundle.
    #[arg(long)]
    pub model: PathBuf,
    /// Held-out images, one folder per class (never the training classes).
    #[arg(long)]
    pub data: PathBuf,
    /// Where to write the calibrated bundle.
    #[arg(long)]
    pub out: PathBuf,
    /// Store the weights as 16-bit floats (half the bytes); the threshold is
    /// chosen with the rounded weights.
    #[arg(long)]
    pub half: bool,
    /// Backend to embed with: ndarray, wgpu or cuda.
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    /// Print the report (threshold, error rates, score histograms) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Cosine similarities of every pair of images, split by whether the two
/// images show the same class.
#[derive(Debug, Default)]
pub struct PairScores {
    pub same: Vec<f32>,
    pub other: Vec<f32>,
}

/// Scores every unordered pair of `vectors` (unit length).
pub fn pair_scores(vectors: &[Vec<f32>], labels: &[usize]) -> PairScores {
    let mut scores = PairScores::default();
    for i in 0..vectors.len() {
        for j in i + 1..vectors.len() {
            let s: f32 = vectors[i].iter().zip(&vectors[j]).map(|(a, b)| a * b).sum();
            if labels[i] == labels[j] {
                scores.same.push(s);
            } else {
                scores.other.push(s);
            }
        }
    }
    scores
}

/// The threshold with the fewest errors counted as a share of each kind
/// (false accepts + false rejects): the point where the two distributions cross
/// when they overlap, the middle of the gap between them when they do not.
pub fn choose_threshold(scores: &PairScores, data: &str) -> Result<Calibration> {
    if scores.same.is_empty() || scores.other.is_empty() {
        return Err(Error::BadInput(
            "calibration needs at least two classes and a class with two images".into(),
        ));
    }
    let mut same = scores.same.clone();
    let mut other = scores.other.clone();
    same.sort_by(f32::total_cmp);
    other.sort_by(f32::total_cmp);
    let rates = |t: f32| {
        let rejected = same.partition_point(|&s| s < t);
        let accepted = other.len() - other.partition_point(|&s| s < t);
        (
            accepted as f64 / other.len() as f64,
            rejected as f64 / same.len() as f64,
        )
    };
    let mut candidates: Vec<f32> = same.iter().chain(&other).copied().collect();
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let mut best = (f64::INFINITY, candidates[0], 0usize);
    for (i, &t) in candidates.iter().enumerate() {
        let (fa, fr) = rates(t);
        if fa + fr < best.0 {
            best = (fa + fr, t, i);
        }
    }
    // Between the chosen score and the one below it, so that a score equal to
    // neither decides the same way on every machine.
    let threshold = match best.2 {
        0 => best.1,
        i => (candidates[i - 1] + best.1) / 2.0,
    };
    let (false_accept, false_reject) = rates(threshold);
    Ok(Calibration {
        threshold,
        false_accept,
        false_reject,
        same_class_pairs: same.len(),
        other_class_pairs: other.len(),
        data: data.to_string(),
    })
}

/// Counts of scores in `bins` equal bins over [-1, 1].
pub fn histogram(scores: &[f32], bins: usize) -> Vec<usize> {
    let mut counts = vec![0; bins];
    for &s in scores {
        let at = (((s + 1.0) / 2.0) * bins as f32).floor() as isize;
        counts[at.clamp(0, bins as isize - 1) as usize] += 1;
    }
    counts
}

#[derive(Debug, Serialize)]
pub struct CalibrateReport {
    pub out: PathBuf,
    pub bytes: usize,
    pub fingerprint: String,
    pub half: bool,
    pub calibration: Calibration,
    /// 40 bins over [-1, 1] of same-class and other-class pair scores.
    pub same_class_histogram: Vec<usize>,
    pub other_class_histogram: Vec<usize>,
}

pub fn main(a: &CalibrateArgs) -> Result<CalibrateReport> {
    let bytes = fs::read(&a.model).map_err(|e| Error::io(&a.model, e))?;
    let mut bundle = Bundle::from_bytes(&a.model.display().to_string(), &bytes)?;
    let device = a.backend.parse::<Backend>()?.device()?;
    if a.half {
        bundle = bundle.to_half()?;
    }
    let embedder = Embedder::new(&bundle, device)?;
    let folder = crate::cli::open_folder(&a.data)?;
    let data = crate::cli::load_images(&folder, a.json)?;
    let vectors = crate::cli::embed_images(&embedder, &data.images, a.json)?;
    let scores = pair_scores(&vectors, &data.labels);
    let calibration = choose_threshold(&scores, &a.data.display().to_string())?;
    info!(
        threshold = calibration.threshold,
        false_accept = calibration.false_accept,
        false_reject = calibration.false_reject,
        "calibrated"
    );
    bundle.header.calibration = Some(calibration.clone());
    let out = bundle.to_bytes()?;
    fs::write(&a.out, &out).map_err(|e| Error::io(&a.out, e))?;
    Ok(CalibrateReport {
        out: a.out.clone(),
        bytes: out.len(),
        fingerprint: bundle.fingerprint().to_string(),
        half: a.half,
        calibration,
        same_class_histogram: histogram(&scores.same, 40),
        other_class_histogram: histogram(&scores.other, 40),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(same: &[f32], other: &[f32]) -> PairScores {
        PairScores {
            same: same.to_vec(),
            other: other.to_vec(),
        }
    }

    #[test]
    fn separated_scores_get_a_threshold_in_the_gap() {
        let c = choose_threshold(&scores(&[0.8, 0.9, 0.7], &[0.1, 0.3, 0.2, 0.0]), "t").unwrap();
        assert!(c.threshold > 0.3 && c.threshold <= 0.7, "{}", c.threshold);
        assert_eq!((c.false_accept, c.false_reject), (0.0, 0.0));
        assert_eq!((c.same_class_pairs, c.other_class_pairs), (3, 4));
    }

    #[test]
    fn overlapping_scores_report_the_errors_they_make() {
        let same = [0.9, 0.8, 0.4, 0.7];
        let other = [0.1, 0.5, 0.2, 0.3, 0.85];
        let c = choose_threshold(&scores(&same, &other), "t").unwrap();
        let fa = other.iter().filter(|&&s| s >= c.threshold).count() as f64 / 5.0;
        let fr = same.iter().filter(|&&s| s < c.threshold).count() as f64 / 4.0;
        assert_eq!((c.false_accept, c.false_reject), (fa, fr));
        // Just above 0.3: every same pair kept, 0.5 and 0.85 let in (2 of 5).
        assert!((c.threshold - 0.35).abs() < 1e-6, "{c:?}");
        assert!(
            (c.false_accept + c.false_reject - 0.4).abs() < 1e-9,
            "{c:?}"
        );
    }

    #[test]
    fn pairs_are_split_by_class_and_one_class_is_an_error() {
        let v = vec![vec![1.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0]];
        let s = pair_scores(&v, &[0, 0, 1]);
        assert_eq!(s.same, vec![1.0]);
        assert_eq!(s.other, vec![0.0, 0.0]);
        assert!(choose_threshold(&pair_scores(&v, &[0, 0, 0]), "t").is_err());
    }

    #[test]
    fn histogram_counts_every_score_once() {
        let h = histogram(&[-1.0, -0.99, 0.0, 0.5, 1.0], 4);
        assert_eq!(h, vec![2, 0, 1, 2]);
    }
}
