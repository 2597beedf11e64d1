//! Few-shot evaluation: leave-one-out retrieval (validation), the enrolled
//! gallery protocol of `metricann eval`, and N-way K-shot episodes.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rayon::prelude::*;
use serde::Serialize;

use metricann::gallery::{Gallery, GalleryConfig};
use metricann::index::IndexConfig;
use metricann::metrics::{self, RetrievalMetrics};
use metricann::{Error, Result};

/// The non-learned baseline: the image as `side`×`side` grey pixels, minus their
/// mean, scaled to unit length, so it goes through the same cosine index as a model's
/// embeddings and the table shows what learning adds.
pub fn pixel_vector(image: &image::DynamicImage, side: u32) -> Vec<f32> {
    let grey = image
        .resize_exact(side, side, image::imageops::FilterType::Triangle)
        .to_luma8();
    let mut v: Vec<f32> = grey.pixels().map(|p| p.0[0] as f32 / 255.0).collect();
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    v.iter_mut().for_each(|x| *x -= mean);
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Leave-one-out: every vector queries all the others, exactly.
pub fn leave_one_out(vectors: &[Vec<f32>], labels: &[usize]) -> RetrievalMetrics {
    let mut retrieved = Vec::with_capacity(vectors.len());
    let mut relevant = Vec::with_capacity(vectors.len());
    for (q, query) in vectors.iter().enumerate() {
        let r = labels
            .iter()
            .enumerate()
            .filter(|&(i, &l)| i != q && l == labels[q])
            .count();
        relevant.push(r);
        if r == 0 {
            retrieved.push(Vec::new());
            continue;
        }
        let mut scored: Vec<(f32, usize)> = vectors
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != q)
            .map(|(i, v)| (dot(query, v), labels[i]))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        // The metrics read only the first R places: keeping every vector's
        // ranking would be quadratic in memory.
        scored.truncate(r);
        retrieved.push(scored.into_iter().map(|(_, l)| l).collect());
    }
    metrics::retrieval_metrics(&retrieved, labels, &relevant)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// The gallery protocol: per class `shots` images are enrolled, the rest query.
#[derive(Clone, Debug, Serialize)]
pub struct GalleryEval {
    pub classes: usize,
    pub queries: usize,
    pub shots: usize,
    pub top1: f64,
    pub top5: f64,
    pub mrr: f64,
    pub map_at_r: f64,
}

/// Which images of a class are enrolled and which query.
#[derive(Clone, Copy, Debug)]
pub enum Support<'a> {
    /// `shots` random images per class, with this seed; the rest query.
    Random(u64),
    /// The first `shots` marked images of each class; the unmarked ones query
    /// (an evaluation set whose enrollment photos and camera captures differ).
    Marked(&'a [bool]),
}

/// Enrolls `shots` examples of each class into a real [`Gallery`] (the same
/// index users get) and searches it with the class's query images.
pub fn gallery_eval(
    vectors: &[Vec<f32>],
    labels: &[usize],
    class_names: &[String],
    fingerprint: &str,
    shots: usize,
    support: Support<'_>,
) -> Result<GalleryEval> {
    if shots == 0 {
        return Err(Error::BadInput("--shots must be at least 1".into()));
    }
    let dim = vectors
        .first()
        .map(Vec::len)
        .ok_or_else(|| Error::BadInput("no images to evaluate".into()))?;
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); class_names.len()];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l].push(i);
    }
    let splits = split_classes(by_class, shots, support);
    // A class needs its shots plus at least one query to be evaluated.
    let evaluated: Vec<usize> = (0..splits.len())
        .filter(|&c| splits[c].0.len() >= shots && !splits[c].1.is_empty())
        .collect();
    let queries: Vec<(usize, usize)> = evaluated
        .iter()
        .flat_map(|&c| splits[c].1.iter().map(move |&i| (i, c)))
        .collect();
    if queries.is_empty() {
        return Err(Error::BadInput(format!(
            "no class has {shots} enrollment images and a query: nothing to evaluate"
        )));
    }
    // Every enrolled example, for the exact example-level MAP@R.
    let enrolled: Vec<(usize, usize)> = evaluated
        .iter()
        .flat_map(|&c| splits[c].0.iter().map(move |&j| (j, c)))
        .collect();
    let (mut gallery, _) = Gallery::create(GalleryConfig {
        dim,
        fingerprint: fingerprint.to_string(),
        index: IndexConfig::default(),
        head: None,
    })?;
    for &c in &evaluated {
        let examples: Vec<Vec<f32>> = splits[c].0.iter().map(|&i| vectors[i].clone()).collect();
        gallery.enroll(&class_names[c], &examples, None, Vec::new())?;
    }
    let scorer = QueryScorer {
        gallery: &gallery,
        vectors,
        class_names,
        enrolled: &enrolled,
        k: evaluated.len().min(100),
        shots,
    };
    // Queries are independent: score them on all cores (a full level-2 gallery
    // is 100k queries against 15k examples).
    let per_query: Vec<[f64; 4]> = queries
        .par_iter()
        .map(|&(i, class)| scorer.score(i, class))
        .collect::<Result<_>>()?;
    let column = |m: usize| mean(per_query.iter().map(|q| q[m]));
    Ok(GalleryEval {
        classes: evaluated.len(),
        queries: queries.len(),
        shots,
        top1: column(0),
        top5: column(1),
        mrr: column(2),
        map_at_r: column(3),
    })
}

/// Scores one query of [`gallery_eval`] against the enrolled gallery.
struct QueryScorer<'a> {
    gallery: &'a Gallery,
    vectors: &'a [Vec<f32>],
    class_names: &'a [String],
    /// (image, class) of every enrolled example.
    enrolled: &'a [(usize, usize)],
    /// Classes a search returns.
    k: usize,
    shots: usize,
}

impl QueryScorer<'_> {
    /// Top-1, top-5 and reciprocal rank of the query's class among the
    /// gallery's answer, and MAP@R among the enrolled examples.
    fn score(&self, query: usize, class: usize) -> Result<[f64; 4]> {
        let result = self.gallery.search(&self.vectors[query], self.k, None)?;
        let answer: Vec<&str> = result.matches.iter().map(|m| m.label.as_str()).collect();
        let found = metrics::relevance(&answer, &self.class_names[class].as_str());
        Ok([
            metrics::accuracy_at_k(&found, 1),
            metrics::accuracy_at_k(&found, 5),
            metrics::reciprocal_rank(&found),
            metrics::map_at_r(&self.nearest_examples(query, class), self.shots),
        ])
    }

    /// Whether each of the `shots` enrolled examples nearest to `query` is of
    /// its class, nearest first.
    fn nearest_examples(&self, query: usize, class: usize) -> Vec<bool> {
        let mut scored: Vec<(f32, bool)> = self
            .enrolled
            .iter()
            .map(|&(j, c)| (dot(&self.vectors[query], &self.vectors[j]), c == class))
            .collect();
        // MAP@R reads only the first R = shots places: select them, sort those.
        let r = self.shots.min(scored.len());
        if r < scored.len() {
            scored.select_nth_unstable_by(r - 1, |a, b| b.0.total_cmp(&a.0));
            scored.truncate(r);
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.iter().map(|&(_, h)| h).collect()
    }
}

/// Each class's (enrolled, querying) images under `support`.
fn split_classes(
    by_class: Vec<Vec<usize>>,
    shots: usize,
    support: Support<'_>,
) -> Vec<(Vec<usize>, Vec<usize>)> {
    match support {
        Support::Random(seed) => {
            let mut rng = StdRng::seed_from_u64(seed);
            by_class
                .into_iter()
                .map(|mut members| {
                    members.shuffle(&mut rng);
                    let queried = members.split_off(shots.min(members.len()));
                    (members, queried)
                })
                .collect()
        }
        Support::Marked(marked) => by_class
            .into_iter()
            .map(|members| {
                let (enrolled, queried): (Vec<usize>, Vec<usize>) =
                    members.into_iter().partition(|&i| marked[i]);
                (enrolled.into_iter().take(shots).collect(), queried)
            })
            .collect(),
    }
}

/// Accuracy of N-way K-shot episodes with class prototypes (Snell et al. 2017).
#[derive(Clone, Debug, Serialize)]
pub struct EpisodicEval {
    pub ways: usize,
    pub shots: usize,
    pub episodes: usize,
    pub accuracy: f64,
    /// Half-width of the 95% confidence interval of the accuracy.
    pub ci95: f64,
}

/// Runs `episodes` episodes: `ways` random classes, `shots` support and
/// `queries` query images each; a query is right when its class prototype
/// (the normalised mean of the support vectors) is the nearest.
pub fn episodic_eval(
    vectors: &[Vec<f32>],
    labels: &[usize],
    ways: usize,
    shots: usize,
    queries: usize,
    episodes: usize,
    seed: u64,
) -> Result<EpisodicEval> {
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l].push(i);
    }
    let eligible: Vec<usize> = (0..classes)
        .filter(|&c| by_class[c].len() > shots)
        .collect();
    if eligible.len() < ways || ways < 2 {
        return Err(Error::BadInput(format!(
            "{ways}-way {shots}-shot episodes need {ways} classes with at least {} images; {} have",
            shots + 1,
            eligible.len()
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut per_episode = Vec::with_capacity(episodes);
    for _ in 0..episodes {
        let chosen: Vec<usize> = eligible.choose_multiple(&mut rng, ways).copied().collect();
        let mut prototypes = Vec::with_capacity(ways);
        let mut query_items = Vec::new();
        for (w, &c) in chosen.iter().enumerate() {
            let mut members = by_class[c].clone();
            members.shuffle(&mut rng);
            let dim = vectors[members[0]].len();
            let mut proto = vec![0.0f32; dim];
            for &i in &members[..shots] {
                for (p, v) in proto.iter_mut().zip(&vectors[i]) {
                    *p += v;
                }
            }
            let norm = proto.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            proto.iter_mut().for_each(|x| *x /= norm);
            prototypes.push(proto);
            query_items.extend(members[shots..].iter().take(queries).map(|&i| (i, w)));
        }
        let correct = query_items
            .iter()
            .filter(|&&(i, w)| {
                let best = prototypes
                    .iter()
                    .enumerate()
                    .max_by(|a, b| dot(&vectors[i], a.1).total_cmp(&dot(&vectors[i], b.1)))
                    .map(|(j, _)| j);
                best == Some(w)
            })
            .count();
        per_episode.push(correct as f64 / query_items.len().max(1) as f64);
    }
    let accuracy = mean(per_episode.iter().copied());
    let var = per_episode
        .iter()
        .map(|a| (a - accuracy).powi(2))
        .sum::<f64>()
        / (per_episode.len().max(2) - 1) as f64;
    Ok(EpisodicEval {
        ways,
        shots,
        episodes,
        accuracy,
        ci95: 1.96 * (var / per_episode.len().max(1) as f64).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_vectors_are_unit_and_tell_shapes_apart() {
        let bar = |vertical: bool| {
            image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(32, 32, |x, y| {
                let on = if vertical {
                    (12..20).contains(&x)
                } else {
                    (12..20).contains(&y)
                };
                image::Luma([if on { 0 } else { 255 }])
            }))
        };
        let (v, h) = (pixel_vector(&bar(true), 16), pixel_vector(&bar(false), 16));
        assert_eq!(v.len(), 256);
        assert!((dot(&v, &v) - 1.0).abs() < 1e-4);
        assert!(
            dot(&v, &h) < 0.5,
            "a vertical and a horizontal bar look alike: {}",
            dot(&v, &h)
        );
        assert!((dot(&v, &pixel_vector(&bar(true), 16)) - 1.0).abs() < 1e-4);
    }

    /// Two tight clusters on the unit circle.
    fn clusters() -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut v = Vec::new();
        let mut l = Vec::new();
        for i in 0..6 {
            let a = i as f32 * 0.01;
            v.push(vec![a.cos(), a.sin()]);
            l.push(0);
            v.push(vec![-(a.cos()), -(a.sin())]);
            l.push(1);
        }
        (v, l)
    }

    #[test]
    fn separable_clusters_score_perfectly() {
        let (v, l) = clusters();
        let m = leave_one_out(&v, &l);
        assert!((m.map_at_r - 1.0).abs() < 1e-9 && (m.precision_at_1 - 1.0).abs() < 1e-9);
        let names = vec!["a".to_string(), "b".to_string()];
        let g = gallery_eval(&v, &l, &names, "f", 2, Support::Random(1)).unwrap();
        assert_eq!((g.classes, g.queries), (2, 8));
        assert!((g.top1 - 1.0).abs() < 1e-9 && (g.mrr - 1.0).abs() < 1e-9);
        let e = episodic_eval(&v, &l, 2, 1, 3, 20, 7).unwrap();
        assert!((e.accuracy - 1.0).abs() < 1e-9);
    }

    #[test]
    fn shuffled_labels_score_worse() {
        let (v, _) = clusters();
        let l: Vec<usize> = (0..v.len()).map(|i| (i / 2) % 2).collect();
        assert!(leave_one_out(&v, &l).map_at_r < 0.9);
    }

    #[test]
    fn impossible_protocols_are_clear_errors() {
        let (v, l) = clusters();
        let names = vec!["a".to_string(), "b".to_string()];
        assert!(gallery_eval(&v, &l, &names, "f", 6, Support::Random(1)).is_err());
        assert!(
            episodic_eval(&v, &l, 5, 1, 1, 1, 1)
                .unwrap_err()
                .to_string()
                .contains("5-way")
        );
    }

    #[test]
    fn marked_support_enrolls_the_marked_images_and_queries_the_rest() {
        // Class 0: marked image 0 points one way, its query too; class 1 the other way.
        let v = vec![
            vec![1.0, 0.0],
            vec![0.9, 0.1],
            vec![0.0, 1.0],
            vec![0.1, 0.9],
        ];
        let l = vec![0, 0, 1, 1];
        let names = vec!["a".to_string(), "b".to_string()];
        let marked = [true, false, true, false];
        let g = gallery_eval(&v, &l, &names, "f", 1, Support::Marked(&marked)).unwrap();
        assert_eq!((g.classes, g.queries), (2, 2));
        assert_eq!(g.top1, 1.0);
        // Enrolling the unmarked ones instead would make class 0's query its own vector.
        let none = [false; 4];
        assert!(gallery_eval(&v, &l, &names, "f", 1, Support::Marked(&none)).is_err());
    }
}
