//! P×K batch sampling for metric learning: every batch holds P distinct
//! classes with K examples each, so each anchor has positives and negatives.
//!
//! An epoch visits every class about once: the classes are shuffled and cut
//! into groups of P; the last, short group is filled up with classes drawn from
//! the others (never a class twice in one batch). A class with fewer than K
//! images repeats them (augmentation makes the repeats differ), so even a
//! one-shot class is usable. Batches are a pure function of (seed, epoch):
//! resuming at epoch e replays exactly the batches a run without a stop saw.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Why a sampler cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamplerError {
    #[error("P×K sampling needs P ≥ 2 classes and K ≥ 1 examples per batch, got P = {p}, K = {k}")]
    BadShape { p: usize, k: usize },
    #[error("P×K sampling needs images of at least 2 classes, got {0}")]
    TooFewClasses(usize),
}

/// Samples P×K batches of item indices from a list of item labels.
#[derive(Clone, Debug)]
pub struct PkSampler {
    /// Item indices of every class that has any, in class id order.
    by_class: Vec<Vec<usize>>,
    p: usize,
    k: usize,
    seed: u64,
}

impl PkSampler {
    /// `labels[i]` is the class id of item `i`. Asking for more classes per batch
    /// than there are (`p` > classes) uses every class in each batch instead.
    pub fn new(labels: &[usize], p: usize, k: usize, seed: u64) -> Result<Self, SamplerError> {
        if p < 2 || k == 0 {
            return Err(SamplerError::BadShape { p, k });
        }
        let n_classes = labels.iter().max().map_or(0, |m| m + 1);
        let mut by_class = vec![Vec::new(); n_classes];
        for (i, &c) in labels.iter().enumerate() {
            by_class[c].push(i);
        }
        by_class.retain(|items| !items.is_empty());
        if by_class.len() < 2 {
            return Err(SamplerError::TooFewClasses(by_class.len()));
        }
        let p_eff = p.min(by_class.len());
        if p_eff < p {
            tracing::warn!(
                requested = p,
                classes = by_class.len(),
                "fewer classes than P: each batch holds every class"
            );
        }
        Ok(Self {
            by_class,
            p: p_eff,
            k,
            seed,
        })
    }

    /// Classes per batch (P; at most the number of classes).
    pub fn p(&self) -> usize {
        self.p
    }

    /// Examples per class in a batch (K).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Items per batch: P × K.
    pub fn batch_size(&self) -> usize {
        self.p * self.k
    }

    /// Classes that have at least one item.
    pub fn num_classes(&self) -> usize {
        self.by_class.len()
    }

    /// Batches in every epoch: ⌈classes / P⌉.
    pub fn batches_per_epoch(&self) -> usize {
        self.by_class.len().div_ceil(self.p)
    }

    /// The batches of epoch `epoch`: each is P × K item indices, K consecutive
    /// entries per class. The same (seed, epoch) always gives the same batches.
    pub fn epoch_batches(&self, epoch: u64) -> Vec<Vec<usize>> {
        let mut rng = StdRng::seed_from_u64(mix(self.seed, epoch));
        let n = self.by_class.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let mut batches = Vec::with_capacity(self.batches_per_epoch());
        for chunk in order.chunks(self.p) {
            let mut classes = chunk.to_vec();
            if classes.len() < self.p {
                // Fill the last batch with other classes, each at most once.
                let mut others: Vec<usize> = (0..n).filter(|c| !chunk.contains(c)).collect();
                others.shuffle(&mut rng);
                classes.extend(others.into_iter().take(self.p - chunk.len()));
            }
            let mut batch = Vec::with_capacity(self.batch_size());
            for c in classes {
                self.push_examples(c, &mut rng, &mut batch);
            }
            batches.push(batch);
        }
        batches
    }

    /// K items of class `c`: a random K of them, or all of them repeated
    /// (in shuffled rounds) when the class has fewer than K.
    fn push_examples(&self, c: usize, rng: &mut StdRng, batch: &mut Vec<usize>) {
        let items = &self.by_class[c];
        let mut taken = 0;
        while taken < self.k {
            let mut round = items.clone();
            round.shuffle(rng);
            let take = (self.k - taken).min(round.len());
            batch.extend_from_slice(&round[..take]);
            taken += take;
        }
    }
}

/// A per-epoch seed: SplitMix64 of the run seed and the epoch.
fn mix(seed: u64, epoch: u64) -> u64 {
    let mut z = seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// 10 classes: class c has c + 1 items (class 0 is one-shot).
    fn labels() -> Vec<usize> {
        (0..10)
            .flat_map(|c| std::iter::repeat_n(c, c + 1))
            .collect()
    }

    fn per_class(batch: &[usize], labels: &[usize]) -> BTreeMap<usize, Vec<usize>> {
        let mut m: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &i in batch {
            m.entry(labels[i]).or_default().push(i);
        }
        m
    }

    #[test]
    fn batches_have_p_classes_of_exactly_k() {
        let labels = labels();
        let s = PkSampler::new(&labels, 4, 3, 7).unwrap();
        let batches = s.epoch_batches(1);
        assert_eq!(batches.len(), 3, "⌈10 / 4⌉ batches");
        assert_eq!(s.batches_per_epoch(), 3);
        for batch in &batches {
            assert_eq!(batch.len(), 12);
            let groups = per_class(batch, &labels);
            assert_eq!(groups.len(), 4, "P distinct classes in {batch:?}");
            for (c, items) in &groups {
                assert_eq!(items.len(), 3, "class {c} has K entries");
                assert!(items.iter().all(|&i| labels[i] == *c));
            }
            // K consecutive entries per class.
            for run in batch.chunks(3) {
                assert!(run.iter().all(|&i| labels[i] == labels[run[0]]));
            }
        }
    }

    #[test]
    fn an_epoch_covers_every_class() {
        let labels = labels();
        let s = PkSampler::new(&labels, 4, 2, 3).unwrap();
        for epoch in 0..5 {
            let seen: BTreeSet<usize> = s
                .epoch_batches(epoch)
                .iter()
                .flatten()
                .map(|&i| labels[i])
                .collect();
            assert_eq!(seen.len(), 10, "epoch {epoch}");
        }
    }

    #[test]
    fn small_classes_repeat_and_large_ones_do_not() {
        let labels = labels();
        let s = PkSampler::new(&labels, 10, 4, 11).unwrap();
        let batch = &s.epoch_batches(0)[0];
        let groups = per_class(batch, &labels);
        // The one-shot class repeats its only image.
        assert_eq!(groups[&0], vec![0; 4]);
        // A 2-image class uses both, twice each.
        let mut two = groups[&1].clone();
        two.sort();
        assert_eq!(two, vec![1, 1, 2, 2]);
        // A class with ≥ K images uses K distinct ones.
        for c in 3..10 {
            let distinct: BTreeSet<_> = groups[&c].iter().collect();
            assert_eq!(distinct.len(), 4, "class {c}");
        }
    }

    #[test]
    fn deterministic_for_a_seed_and_varies_by_epoch_and_seed() {
        let labels = labels();
        let a = PkSampler::new(&labels, 3, 2, 42).unwrap();
        let b = PkSampler::new(&labels, 3, 2, 42).unwrap();
        assert_eq!(a.epoch_batches(5), b.epoch_batches(5));
        assert_ne!(a.epoch_batches(5), a.epoch_batches(6));
        let c = PkSampler::new(&labels, 3, 2, 43).unwrap();
        assert_ne!(a.epoch_batches(5), c.epoch_batches(5));
    }

    #[test]
    fn p_larger_than_the_classes_uses_them_all() {
        let labels = vec![0, 0, 1, 2, 2, 2];
        let s = PkSampler::new(&labels, 8, 2, 1).unwrap();
        assert_eq!(s.p(), 3);
        let batches = s.epoch_batches(0);
        assert_eq!(batches.len(), 1);
        assert_eq!(per_class(&batches[0], &labels).len(), 3);
    }

    #[test]
    fn gaps_in_class_ids_are_ignored() {
        // Class 1 has no items: it must never be sampled (nor crash).
        let labels = vec![0, 0, 2, 2, 3];
        let s = PkSampler::new(&labels, 2, 2, 5).unwrap();
        assert_eq!(s.num_classes(), 3);
        for batch in s.epoch_batches(0) {
            assert!(batch.iter().all(|&i| i < labels.len()));
            assert_eq!(per_class(&batch, &labels).len(), 2);
        }
    }

    #[test]
    fn refuses_bad_shapes() {
        assert_eq!(
            PkSampler::new(&[0, 1], 1, 2, 0).unwrap_err(),
            SamplerError::BadShape { p: 1, k: 2 }
        );
        assert_eq!(
            PkSampler::new(&[0, 1], 2, 0, 0).unwrap_err(),
            SamplerError::BadShape { p: 2, k: 0 }
        );
        assert_eq!(
            PkSampler::new(&[0, 0, 0], 2, 2, 0).unwrap_err(),
            SamplerError::TooFewClasses(1)
        );
        assert_eq!(
            PkSampler::new(&[], 2, 2, 0).unwrap_err(),
            SamplerError::TooFewClasses(0)
        );
    }
}
