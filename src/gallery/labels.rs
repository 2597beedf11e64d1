//! Which class has each label.
//!
//! Like [`super::owners`]: rather than a million label copies inserted into a
//! hash map when a million classes are read at open, they are one array of
//! `(hash of the label, class)` sorted by hash, built by one sort and
//! checked against the class map on every lookup, so that an entry of a class
//! renamed or removed since simply stops matching; labels given after open
//! go to a hash map beside it.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use rustc_hash::{FxBuildHasher, FxHashMap};

use super::Class;

fn hash(label: &str) -> u64 {
    FxBuildHasher.hash_one(label)
}

#[derive(Debug, Default)]
pub(crate) struct Labels {
    /// `(hash of the label, class)` read at open, sorted.
    base: Vec<(u64, u64)>,
    /// Labels given since open.
    changes: FxHashMap<String, u64>,
}

impl Labels {
    /// The labels of `classes` (sorted by class id); `None` if two classes
    /// have the same label.
    pub(crate) fn from_classes(classes: &[(u64, Class)]) -> Option<Labels> {
        let mut base: Vec<(u64, u64)> = classes
            .iter()
            .map(|(id, c)| (hash(&c.label), *id))
            .collect();
        base.sort_unstable();
        let label = |id: u64| {
            classes
                .binary_search_by_key(&id, |(i, _)| *i)
                .ok()
                .map(|at| classes[at].1.label.as_str())
        };
        // Equal hashes are next to each other; equal labels among them are
        // the conflict (different labels of one hash are only a collision).
        for (i, &(h, id)) in base.iter().enumerate() {
            let mut same_hash = base[i + 1..].iter().take_while(|(g, _)| *g == h);
            if same_hash.any(|&(_, other)| label(other) == label(id)) {
                return None;
            }
        }
        Some(Labels {
            base,
            changes: FxHashMap::default(),
        })
    }

    /// The class labelled `label`, given the class map it indexes.
    pub(crate) fn get(&self, label: &str, classes: &BTreeMap<u64, Class>) -> Option<u64> {
        if let Some(&id) = self.changes.get(label) {
            return Some(id);
        }
        let h = hash(label);
        let from = self.base.partition_point(|&(g, _)| g < h);
        self.base[from..]
            .iter()
            .take_while(|&&(g, _)| g == h)
            .map(|&(_, id)| id)
            .find(|id| classes.get(id).is_some_and(|c| c.label == label))
    }

    pub(crate) fn insert(&mut self, label: &str, class: u64) {
        self.changes.insert(label.to_string(), class);
    }

    /// Forgets `label` given since open; one read at open stops matching by
    /// itself once its class is renamed or removed.
    pub(crate) fn remove(&mut self, label: &str) {
        self.changes.remove(label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(label: &str) -> Class {
        Class {
            label: label.into(),
            vector_ids: Vec::new(),
            metadata: None,
            images: Vec::new(),
            page: 0,
        }
    }

    #[test]
    fn follows_renames_and_removals_of_the_classes_it_indexes() {
        let records = vec![(1, class("a")), (2, class("b")), (5, class("c"))];
        let mut labels = Labels::from_classes(&records).unwrap();
        let mut classes: BTreeMap<u64, Class> = records.into_iter().collect();
        assert_eq!(labels.get("a", &classes), Some(1));
        assert_eq!(labels.get("c", &classes), Some(5));
        assert_eq!(labels.get("d", &classes), None);
        // Rename c → d (as Gallery::rename does), remove a, add e.
        classes.get_mut(&5).unwrap().label = "d".into();
        labels.remove("c");
        labels.insert("d", 5);
        classes.remove(&1);
        labels.remove("a");
        classes.insert(9, class("e"));
        labels.insert("e", 9);
        assert_eq!(labels.get("c", &classes), None);
        assert_eq!(labels.get("d", &classes), Some(5));
        assert_eq!(labels.get("a", &classes), None);
        assert_eq!(labels.get("e", &classes), Some(9));
        assert_eq!(labels.get("b", &classes), Some(2));
        // "a" given to a new class.
        classes.insert(10, class("a"));
        labels.insert("a", 10);
        assert_eq!(labels.get("a", &classes), Some(10));
    }

    #[test]
    fn one_label_twice_is_refused_and_a_hash_collision_is_not() {
        assert!(
            Labels::from_classes(&[(1, class("x")), (2, class("y")), (3, class("x"))]).is_none()
        );
        // Two labels of one hash: entries forged with equal hashes.
        let classes: BTreeMap<u64, Class> =
            [(1, class("p")), (2, class("q"))].into_iter().collect();
        let h = hash("p");
        let mut base = vec![(hash("q"), 2), (h, 1), (h, 2)];
        base.sort_unstable();
        let labels = Labels {
            base,
            changes: FxHashMap::default(),
        };
        assert_eq!(labels.get("p", &classes), Some(1));
        assert_eq!(labels.get("q", &classes), Some(2));
    }
}
