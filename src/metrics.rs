//! Evaluation metrics, as pure functions.
//!
//! - classification-style, over ranked *class* predictions: [`top_k_accuracy`],
//!   [`mean_reciprocal_rank`] (per query: [`accuracy_at_k`], [`reciprocal_rank`]);
//! - retrieval-style, per query over the relevance of the retrieved *examples*
//!   (nearest neighbours, the query itself excluded, `true` = same label):
//!   [`precision_at_k`] (P@1 with k = 1), [`r_precision`] and [`map_at_r`] as
//!   defined by Musgrave, Belongie & Lim, "A Metric Learning Reality Check"
//!   (ECCV 2020), where R is the number of references sharing the query's
//!   label; [`retrieval_metrics`] averages them from labels;
//! - index quality: [`recall_at_k`] of approximate against exact neighbour ids.
//!
//! Means over zero queries are 0.

use std::collections::HashSet;

/// Fraction of queries whose true label is among the first `k` predictions.
pub fn top_k_accuracy<L: PartialEq>(ranked: &[Vec<L>], truth: &[L], k: usize) -> f64 {
    mean(
        ranked
            .iter()
            .zip(truth)
            .map(|(r, t)| accuracy_at_k(&relevance(r, t), k)),
    )
}

/// Mean over queries of 1 / (rank of the first correct prediction), 0 when the
/// true label is not predicted at all.
pub fn mean_reciprocal_rank<L: PartialEq>(ranked: &[Vec<L>], truth: &[L]) -> f64 {
    mean(
        ranked
            .iter()
            .zip(truth)
            .map(|(r, t)| reciprocal_rank(&relevance(r, t))),
    )
}

/// Which retrieved items are correct: `retrieved[i] == truth`.
pub fn relevance<L: PartialEq>(retrieved: &[L], truth: &L) -> Vec<bool> {
    retrieved.iter().map(|x| x == truth).collect()
}

/// Top-k accuracy of one query: 1 when any of the first `k` retrieved is
/// correct, else 0.
pub fn accuracy_at_k(relevant: &[bool], k: usize) -> f64 {
    f64::from(u8::from(relevant.iter().take(k).any(|&h| h)))
}

/// 1 / (rank of the first correct item), 0 when none is correct.
pub fn reciprocal_rank(relevant: &[bool]) -> f64 {
    relevant
        .iter()
        .position(|&h| h)
        .map_or(0.0, |p| 1.0 / (p as f64 + 1.0))
}

/// Precision at `k` of one query: the fraction of the first `k` retrieved that
/// are correct (fewer than `k` retrieved count the missing ones as wrong). P@1
/// is `precision_at_k(relevant, 1)`. 0 when `k` is 0.
pub fn precision_at_k(relevant: &[bool], k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    relevant.iter().take(k).filter(|&&h| h).count() as f64 / k as f64
}

/// R-precision of one query: the fraction of the first `r` retrieved that are
/// correct, where `r` is the number of relevant references. 0 when `r` is 0
/// (such queries should be skipped; [`retrieval_metrics`] does).
pub fn r_precision(relevant: &[bool], r: usize) -> f64 {
    precision_at_k(relevant, r)
}

/// MAP@R of one query: `(1/R) · Σ_{i=1..R} P(i) · rel(i)`, where `rel(i)` is
/// whether the i-th retrieved item is correct and `P(i)` the precision of the
/// first `i`. 0 when `r` is 0.
pub fn map_at_r(relevant: &[bool], r: usize) -> f64 {
    if r == 0 {
        return 0.0;
    }
    let mut correct = 0usize;
    let mut sum = 0.0;
    for (i, &h) in relevant.iter().take(r).enumerate() {
        if h {
            correct += 1;
            sum += correct as f64 / (i as f64 + 1.0);
        }
    }
    sum / r as f64
}

/// Retrieval metrics averaged over queries.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RetrievalMetrics {
    /// Queries counted (those with at least one relevant reference).
    pub queries: usize,
    pub precision_at_1: f64,
    pub r_precision: f64,
    pub map_at_r: f64,
}

/// P@1, R-precision and MAP@R over queries. `retrieved[q]` are the labels of
/// query `q`'s neighbours, nearest first (at least `r[q]` of them for exact
/// values), `truth[q]` its label and `r[q]` the number of references with that
/// label (not counting the query itself). Queries with `r = 0` are skipped, as
/// in the paper.
pub fn retrieval_metrics<L: PartialEq>(
    retrieved: &[Vec<L>],
    truth: &[L],
    r: &[usize],
) -> RetrievalMetrics {
    let mut n = 0usize;
    let (mut p1, mut rp, mut map) = (0.0, 0.0, 0.0);
    for ((ret, t), &r) in retrieved.iter().zip(truth).zip(r) {
        if r == 0 {
            continue;
        }
        let rel = relevance(ret, t);
        n += 1;
        p1 += precision_at_k(&rel, 1);
        rp += r_precision(&rel, r);
        map += map_at_r(&rel, r);
    }
    let d = n.max(1) as f64;
    RetrievalMetrics {
        queries: n,
        precision_at_1: p1 / d,
        r_precision: rp / d,
        map_at_r: map / d,
    }
}

/// Recall@k of one approximate result against the exact one: the fraction of
/// the exact first `k` ids found among the approximate first `k`. 1 when the
/// exact result is empty.
pub fn recall_at_k(approx: &[u64], exact: &[u64], k: usize) -> f64 {
    let truth: HashSet<u64> = exact.iter().take(k).copied().collect();
    if truth.is_empty() {
        return 1.0;
    }
    let found: HashSet<u64> = approx
        .iter()
        .take(k)
        .copied()
        .filter(|id| truth.contains(id))
        .collect();
    found.len() as f64 / truth.len() as f64
}

/// [`recall_at_k`] averaged over queries.
pub fn mean_recall_at_k(approx: &[Vec<u64>], exact: &[Vec<u64>], k: usize) -> f64 {
    mean(approx.iter().zip(exact).map(|(a, e)| recall_at_k(a, e, k)))
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn top_k_and_mrr() {
        let ranked = vec![
            vec!["a", "b", "c"],
            vec!["b", "c", "a"],
            vec!["c", "b", "x"],
        ];
        let truth = vec!["a", "a", "a"];
        assert!(close(top_k_accuracy(&ranked, &truth, 1), 1.0 / 3.0));
        assert!(close(top_k_accuracy(&ranked, &truth, 2), 1.0 / 3.0));
        assert!(close(top_k_accuracy(&ranked, &truth, 3), 2.0 / 3.0));
        // 1/1, 1/3, 0 → 4/9.
        assert!(close(mean_reciprocal_rank(&ranked, &truth), 4.0 / 9.0));
        assert_eq!(top_k_accuracy::<u8>(&[], &[], 5), 0.0);
    }

    #[test]
    fn r_precision_and_map_at_r_by_hand() {
        // Truth A, R = 3; top 3 = A, B, A → relevance 1, 0, 1.
        let rel = relevance(&["A", "B", "A", "A", "B"], &"A");
        assert_eq!(rel, vec![true, false, true, true, false]);
        assert!(close(r_precision(&rel, 3), 2.0 / 3.0));
        // (P(1)·1 + P(3)·1) / R = (1 + 2/3) / 3 = 5/9.
        assert!(close(map_at_r(&rel, 3), 5.0 / 9.0));
        assert_eq!(precision_at_k(&rel, 1), 1.0);
        assert!(close(precision_at_k(&rel, 5), 0.6));
        assert_eq!(precision_at_k(&[false, true], 1), 0.0);
        assert_eq!(reciprocal_rank(&[false, false, true]), 1.0 / 3.0);
        assert_eq!(accuracy_at_k(&[false, false, true], 2), 0.0);
        assert_eq!(accuracy_at_k(&[false, false, true], 3), 1.0);
        assert_eq!(accuracy_at_k(&[], 1), 0.0);
        assert_eq!(reciprocal_rank(&[false]), 0.0);
        // R = 10: only the first correct gives 0.1. Five correct give the same
        // R-precision (0.5) whether they come first or last, but MAP@R rewards
        // the ranking that puts them first.
        let mut first = vec![false; 10];
        first[0] = true;
        assert!(close(map_at_r(&first, 10), 0.1));
        let early: Vec<bool> = (0..10).map(|i| i < 5).collect();
        let late: Vec<bool> = (0..10).map(|i| i >= 5).collect();
        assert!(close(map_at_r(&early, 10), 0.5));
        // (1/6 + 2/7 + 3/8 + 4/9 + 5/10) / 10
        let want = (1.0 / 6.0 + 2.0 / 7.0 + 3.0 / 8.0 + 4.0 / 9.0 + 0.5) / 10.0;
        assert!(close(map_at_r(&late, 10), want));
        assert_eq!(r_precision(&late, 10), r_precision(&early, 10));
        // Too few retrieved: missing ones count as wrong.
        assert_eq!(r_precision(&[true], 4), 0.25);
        assert_eq!(map_at_r(&[true], 4), 0.25);
        assert_eq!((r_precision(&[true], 0), map_at_r(&[true], 0)), (0.0, 0.0));
    }

    #[test]
    fn retrieval_metrics_skip_queries_without_positives() {
        let retrieved = vec![vec![1, 2, 1], vec![2, 2, 1], vec![3, 1, 1]];
        let truth = vec![1, 2, 3];
        let r = vec![2, 1, 0];
        let m = retrieval_metrics(&retrieved, &truth, &r);
        assert_eq!(m.queries, 2);
        assert!(close(m.precision_at_1, 1.0));
        // q0: R=2, top2 = 1,2 → RP 1/2, AP (1)/2 = 1/2. q1: R=1 → 1, 1.
        assert!(close(m.r_precision, 0.75));
        assert!(close(m.map_at_r, 0.75));
        let empty = retrieval_metrics::<u8>(&[], &[], &[]);
        assert_eq!((empty.queries, empty.map_at_r), (0, 0.0));
    }

    #[test]
    fn recall() {
        assert_eq!(recall_at_k(&[1, 2, 3], &[1, 2, 3], 3), 1.0);
        assert!(close(
            recall_at_k(&[1, 9, 3, 2], &[1, 2, 3, 4], 3),
            2.0 / 3.0
        ));
        // Order within the top k does not matter, duplicates count once.
        assert!(close(recall_at_k(&[3, 3, 1], &[1, 2, 3], 3), 2.0 / 3.0));
        // Fewer exact neighbours than k.
        assert_eq!(recall_at_k(&[5, 6], &[5], 10), 1.0);
        assert_eq!(recall_at_k(&[], &[], 10), 1.0);
        assert_eq!(recall_at_k(&[], &[1], 10), 0.0);
        let m = mean_recall_at_k(&[vec![1, 2], vec![7, 8]], &[vec![1, 2], vec![8, 9]], 2);
        assert!(close(m, 0.75));
    }
}
