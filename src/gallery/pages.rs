//! Class pages: the class records, stored log-structured like the index.
//!
//! A mutation writes the records of the classes it changed into one new page
//! (`classes-<seq>`); the manifest lists pages, not classes, so an enrollment
//! costs the same in a gallery of ten classes as in one of a million. A class's
//! current record is the one in the newest page that holds it; older copies are
//! *stale*. A removed class is listed in the manifest (`removed_classes`) while
//! a page still holds a stale record of it, so that it does not come back on
//! reload.
//!
//! Pages merge by size tiers, as the index's segments do (`PAGE_MERGE_FACTOR`
//! pages of one tier into one page of the next, so that each record is
//! rewritten O(log n) times) up to `PAGE_SETTLED` records, which bounds what
//! one mutation can rewrite; a page more than half stale is rewritten alone,
//! and a page with no current record is deleted. This module does the
//! bookkeeping; the gallery encodes the records.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::index::policy;

/// Pages of one size tier merged into one of the next.
pub const PAGE_MERGE_FACTOR: usize = 4;

/// A page with this many current records merges no further (it is still
/// rewritten alone once more than half stale). A merge runs inside whichever
/// mutation's change set triggers it, so without a bound one enrollment into
/// a gallery of a million classes could rewrite most of them (tens of
/// milliseconds, in the one call that pays). Past this size, a manifest entry
/// per page costs less than that. Merged pages stay under
/// `PAGE_MERGE_FACTOR × PAGE_SETTLED` records.
pub const PAGE_SETTLED: usize = 4096;

/// A page as the manifest lists it, in JSON the array `[seq, bytes, records]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "array::PageEntry", into = "array::PageEntry")]
pub struct PageEntry {
    /// The page's blob is `classes-<seq>`.
    pub seq: u64,
    /// Size of the blob.
    pub bytes: u64,
    /// Records in the page, current and stale.
    pub records: u64,
}

/// The manifest's form of a `PageEntry`, a JSON array. A tuple struct
/// of the same name, so that serde's message about a malformed entry says
/// `PageEntry`.
mod array {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub(super) struct PageEntry(u64, u64, u64);

    impl From<PageEntry> for super::PageEntry {
        fn from(PageEntry(seq, bytes, records): PageEntry) -> Self {
            super::PageEntry {
                seq,
                bytes,
                records,
            }
        }
    }

    impl From<super::PageEntry> for PageEntry {
        fn from(e: super::PageEntry) -> Self {
            PageEntry(e.seq, e.bytes, e.records)
        }
    }
}

pub fn page_blob(seq: u64) -> String {
    format!("classes-{seq}")
}

#[derive(Debug, Clone)]
struct Page {
    bytes: u64,
    /// The class id of every record in the page, current or stale.
    ids: Vec<u64>,
    /// Records that are still their class's current one.
    live: usize,
}

/// Which pages exist, and which of their records are stale.
#[derive(Debug, Clone, Default)]
pub struct Pages {
    pages: BTreeMap<u64, Page>,
    /// Class id → stale records of it still stored.
    stale: HashMap<u64, u32>,
    /// Removed classes with stale records still stored.
    removed: BTreeSet<u64>,
}

impl Pages {
    /// A page read at open; its live count is set by [`Pages::count_live`].
    pub fn insert_loaded(&mut self, seq: u64, bytes: u64, ids: Vec<u64>) {
        self.pages.insert(
            seq,
            Page {
                bytes,
                ids,
                live: 0,
            },
        );
    }

    /// At open: a class whose current record is in page `seq`.
    pub fn count_live(&mut self, seq: u64) {
        if let Some(p) = self.pages.get_mut(&seq) {
            p.live += 1;
        }
    }

    /// At open: an older record of `id` was superseded by a newer one.
    pub fn superseded(&mut self, id: u64) {
        *self.stale.entry(id).or_default() += 1;
    }

    /// At open: `id` is listed as removed. Kept only while a page holds it.
    pub fn loaded_removed(&mut self, id: u64, had_record: bool) {
        if had_record {
            self.superseded(id);
            self.removed.insert(id);
        }
    }

    /// A new page whose records are all current.
    pub fn add(&mut self, seq: u64, bytes: u64, ids: Vec<u64>) {
        let live = ids.len();
        self.pages.insert(seq, Page { bytes, ids, live });
    }

    /// The record of class `id` in page `seq` is no longer current (the class
    /// was rewritten elsewhere, or removed when `removed`). Page 0 is "not
    /// stored in a page" and changes nothing.
    pub fn retire(&mut self, id: u64, seq: u64, removed: bool) {
        let Some(p) = self.pages.get_mut(&seq) else {
            return;
        };
        p.live = p.live.saturating_sub(1);
        *self.stale.entry(id).or_default() += 1;
        if removed {
            self.removed.insert(id);
        }
    }

    /// Forgets a page with no current record; returns whether it existed.
    pub fn drop_dead(&mut self, seq: u64) -> bool {
        let Some(page) = self.pages.remove(&seq) else {
            return false;
        };
        debug_assert_eq!(page.live, 0, "dropping page {seq} with current records");
        for id in page.ids {
            if let Some(n) = self.stale.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    self.stale.remove(&id);
                    self.removed.remove(&id);
                }
            }
        }
        true
    }

    /// Pages without any current record.
    pub fn dead(&self) -> Vec<u64> {
        self.pages
            .iter()
            .filter(|(_, p)| p.live == 0)
            .map(|(&s, _)| s)
            .collect()
    }

    /// The next pages to rewrite into one: a page more than half stale, or the
    /// oldest `PAGE_MERGE_FACTOR` pages of a tier that has that many.
    pub fn plan(&self) -> Option<Vec<u64>> {
        if let Some((&seq, _)) = self
            .pages
            .iter()
            .find(|(_, p)| p.live > 0 && policy::mostly_deleted(p.ids.len() - p.live, p.ids.len()))
        {
            return Some(vec![seq]);
        }
        let mut tiers: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for (&seq, p) in self.pages.iter().filter(|(_, p)| p.live < PAGE_SETTLED) {
            let group = tiers.entry(tier(p.live)).or_default();
            group.push(seq);
            if group.len() == PAGE_MERGE_FACTOR {
                return Some(group.clone());
            }
        }
        None
    }

    /// Class ids recorded in page `seq` (current and stale).
    pub fn ids(&self, seq: u64) -> &[u64] {
        self.pages
            .get(&seq)
            .map(|p| p.ids.as_slice())
            .unwrap_or(&[])
    }

    pub fn contains(&self, seq: u64) -> bool {
        self.pages.contains_key(&seq)
    }

    pub fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.pages.keys().copied()
    }

    pub fn entries(&self) -> Vec<PageEntry> {
        self.pages
            .iter()
            .map(|(&seq, p)| PageEntry {
                seq,
                bytes: p.bytes,
                records: p.ids.len() as u64,
            })
            .collect()
    }

    pub fn removed(&self) -> Vec<u64> {
        self.removed.iter().copied().collect()
    }

    pub fn bytes(&self) -> u64 {
        self.pages.values().map(|p| p.bytes).sum()
    }
}

/// Size tier of a page with `live` current records: 0 below the merge factor,
/// then one tier per factor.
fn tier(live: usize) -> u32 {
    policy::size_tier(live, PAGE_MERGE_FACTOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_grow_by_the_merge_factor() {
        let f = PAGE_MERGE_FACTOR;
        assert_eq!([1, f - 1, f, f * f - 1, f * f].map(tier), [0, 0, 1, 1, 2]);
    }

    #[test]
    fn stale_records_keep_a_removed_class_listed_until_their_page_goes() {
        let mut p = Pages::default();
        p.add(1, 100, vec![10, 11]);
        p.add(2, 50, vec![10]);
        p.retire(10, 1, false); // class 10 rewritten into page 2
        assert_eq!(p.plan(), None, "page 1 is half stale, not more");
        p.retire(10, 2, true); // class 10 removed
        assert_eq!(p.dead(), vec![2]);
        assert!(p.drop_dead(2));
        assert_eq!(p.removed(), vec![10], "page 1 still holds a record of 10");
        p.retire(11, 1, false);
        assert!(p.drop_dead(1));
        assert!(p.removed().is_empty());
        assert_eq!((p.entries().len(), p.bytes()), (0, 0));
    }

    #[test]
    fn a_full_tier_is_planned_oldest_first() {
        let mut p = Pages::default();
        for seq in 1..=PAGE_MERGE_FACTOR as u64 + 1 {
            p.add(seq, 10, vec![seq]);
        }
        assert_eq!(
            p.plan(),
            Some((1..=PAGE_MERGE_FACTOR as u64).collect::<Vec<_>>())
        );
        // Settled pages merge no further, however many share a tier.
        let mut big = Pages::default();
        let settled: Vec<u64> = (0..PAGE_SETTLED as u64).collect();
        for seq in 1..=PAGE_MERGE_FACTOR as u64 {
            big.add(seq, 10, settled.clone());
        }
        assert_eq!(big.plan(), None);
        big.add(9, 10, settled[1..].to_vec());
        for seq in 10..13 {
            big.add(seq, 10, settled[1..].to_vec());
        }
        assert_eq!(big.plan(), Some(vec![9, 10, 11, 12]), "just under: merged");
        let mut q = Pages::default();
        q.add(1, 10, vec![1, 2, 3]);
        q.retire(1, 1, false);
        q.retire(2, 1, false);
        assert_eq!(q.plan(), Some(vec![1]), "more than half stale");
    }
}
