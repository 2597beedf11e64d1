//! When log-structured pieces are rewritten: the size tiers that sealed
//! segments and growing chunks merge by (the gallery's class pages use the
//! same tiers), and the rule that rewrites a piece alone once it is mostly
//! deleted. Functions of sizes only, so that every log-structured part of a
//! gallery can apply the one policy to its own pieces.

use std::collections::BTreeMap;

use super::SegmentEntry;

/// Growing chunks past which the newest are folded into one even when their
/// sizes fall in different tiers.
pub(crate) const MAX_FREE_CHUNKS: usize = 64;

/// How many times `factor` (at least 2) fits in `count`: the size tier that
/// log-structured merging groups segments, growing chunks and class pages by.
pub(crate) fn size_tier(count: usize, factor: usize) -> u32 {
    let factor = factor.max(2);
    let (mut x, mut t) = (count, 0);
    while x >= factor {
        x /= factor;
        t += 1;
    }
    t
}

/// Whether a piece of `stored` records, `deleted` of them deleted or stale,
/// is rewritten alone: more than half of it is dead weight that every search
/// and every reload still pays for.
pub(crate) fn mostly_deleted(deleted: usize, stored: usize) -> bool {
    deleted > 0 && deleted * 2 > stored
}

/// The pieces to merge next, given each piece's key and size: `factor` of
/// them from the lowest tier (by `tier` of the size) that has that many, the
/// smallest first, ties going to the piece listed first. The lowest tier
/// first, because its merges are the cheapest and keep the piece count down.
pub(crate) fn merge_group<K>(
    pieces: impl IntoIterator<Item = (K, usize)>,
    factor: usize,
    tier: impl Fn(usize) -> u32,
) -> Option<Vec<K>> {
    let mut by_tier: BTreeMap<u32, Vec<(usize, K)>> = BTreeMap::new();
    for (key, size) in pieces {
        by_tier.entry(tier(size)).or_default().push((size, key));
    }
    let (_, mut group) = by_tier.into_iter().find(|(_, g)| g.len() >= factor)?;
    // A stable sort: equal sizes keep the order they were listed in.
    group.sort_by_key(|&(size, _)| size);
    Some(group.into_iter().take(factor).map(|(_, key)| key).collect())
}

/// How many of the newest growing chunks to fold into one: `factor` when the
/// newest `factor` share a size tier, every one of them once there are more
/// than [`MAX_FREE_CHUNKS`] (sizes that keep missing each other's tier), else
/// none. Only the newest merge, so the chunks stay in insertion order.
pub(crate) fn chunk_fold(chunks: &[SegmentEntry], factor: usize) -> Option<usize> {
    let factor = factor.max(2);
    let tier = |c: &SegmentEntry| size_tier(c.vectors as usize, factor);
    let n = chunks.len();
    if n >= factor
        && chunks[n - factor..]
            .iter()
            .all(|c| tier(c) == tier(&chunks[n - 1]))
    {
        Some(factor)
    } else if n > MAX_FREE_CHUNKS {
        Some(n)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::SegmentKind;

    fn chunks(sizes: &[u64]) -> Vec<SegmentEntry> {
        sizes
            .iter()
            .map(|&vectors| SegmentEntry {
                name: String::new(),
                kind: SegmentKind::Growing,
                vectors,
                bytes: 0,
            })
            .collect()
    }

    #[test]
    fn size_tiers_count_factors() {
        assert_eq!(
            [0, 1, 3, 4, 15, 16, 64].map(|n| size_tier(n, 4)),
            [0, 0, 0, 1, 1, 2, 3]
        );
        assert_eq!(size_tier(8, 0), 3, "a factor below 2 counts as 2");
    }

    #[test]
    fn more_than_half_deleted_is_rewritten() {
        assert!(!mostly_deleted(0, 0));
        assert!(!mostly_deleted(5, 10));
        assert!(mostly_deleted(6, 10));
        assert!(mostly_deleted(1, 1));
    }

    #[test]
    fn the_lowest_full_tier_merges_smallest_first() {
        let tier = |n| size_tier(n, 2);
        // Tier 2 (4..8) is full first in the list, but tier 1 (2..4) is lower.
        let pieces = [('a', 5), ('b', 6), ('c', 3), ('d', 7), ('e', 2), ('f', 3)];
        assert_eq!(merge_group(pieces, 2, tier), Some(vec!['e', 'c']));
        assert_eq!(merge_group(pieces, 4, tier), None);
        assert_eq!(merge_group([('x', 9)], 2, tier), None);
    }

    #[test]
    fn the_newest_chunks_fold_when_they_share_a_tier() {
        assert_eq!(chunk_fold(&chunks(&[16, 4, 4, 4]), 4), None);
        assert_eq!(chunk_fold(&chunks(&[16, 4, 4, 4, 4]), 4), Some(4));
        assert_eq!(chunk_fold(&chunks(&[4, 4, 4, 16]), 4), None);
        let scattered: Vec<u64> = (0..=MAX_FREE_CHUNKS as u64)
            .map(|i| 1 << (i % 3 * 2))
            .collect();
        assert_eq!(
            chunk_fold(&chunks(&scattered), 4),
            Some(MAX_FREE_CHUNKS + 1)
        );
    }
}
