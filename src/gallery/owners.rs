//! Which class owns each vector: what a search hit is turned into.
//!
//! Inserting a million vector ids into a hash map at open would cost one
//! cache miss each, about a fifth of a browser reload. So the owners read at
//! open are one array sorted by vector id, built by one sort; what changes after (enrollments, removals) goes to a hash map
//! beside it, which stays the size of the changes.

use rustc_hash::FxHashMap;

#[derive(Debug, Default)]
pub(crate) struct Owners {
    /// `(vector, class)` read at open, sorted by vector, no vector twice.
    base: Vec<(u64, u64)>,
    /// Since open: `Some(class)` owns the vector, `None` took it from `base`.
    changes: FxHashMap<u64, Option<u64>>,
}

impl Owners {
    /// Owners of `pairs` (`(vector, class)`), which must not hold a vector
    /// twice; `None` if one does.
    pub(crate) fn from_pairs(mut pairs: Vec<(u64, u64)>) -> Option<Owners> {
        pairs.sort_unstable_by_key(|&(v, _)| v);
        if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        Some(Owners {
            base: pairs,
            changes: FxHashMap::default(),
        })
    }

    /// The vectors read at open, ascending (what [`Owners::from_pairs`] was
    /// given, whatever changed since).
    pub(crate) fn base_vectors(&self) -> impl Iterator<Item = u64> + '_ {
        self.base.iter().map(|&(v, _)| v)
    }

    fn in_base(&self, vector: u64) -> Option<u64> {
        self.base
            .binary_search_by_key(&vector, |&(v, _)| v)
            .ok()
            .map(|i| self.base[i].1)
    }

    /// The class owning `vector`.
    pub(crate) fn get(&self, vector: u64) -> Option<u64> {
        match self.changes.get(&vector) {
            Some(&owner) => owner,
            None => self.in_base(vector),
        }
    }

    pub(crate) fn contains(&self, vector: u64) -> bool {
        self.get(vector).is_some()
    }

    /// Gives `vector` to `class`; `false` (and nothing changed) if another
    /// class owns it.
    pub(crate) fn claim(&mut self, vector: u64, class: u64) -> bool {
        match self.get(vector) {
            Some(owner) => owner == class,
            None => {
                self.changes.insert(vector, Some(class));
                true
            }
        }
    }

    /// Gives `vector` to `class`, whoever owned it.
    pub(crate) fn insert(&mut self, vector: u64, class: u64) {
        self.changes.insert(vector, Some(class));
    }

    pub(crate) fn remove(&mut self, vector: u64) {
        if self.in_base(vector).is_some() {
            self.changes.insert(vector, None);
        } else {
            self.changes.remove(&vector);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_and_changes_answer_together() {
        let mut o = Owners::from_pairs(vec![(30, 3), (10, 1), (20, 1)]).unwrap();
        assert_eq!(o.get(10), Some(1));
        assert_eq!(o.get(30), Some(3));
        assert_eq!(o.get(15), None);
        o.remove(10);
        assert_eq!(o.get(10), None);
        assert!(!o.contains(10));
        assert!(o.claim(10, 7), "a removed vector can be claimed again");
        assert_eq!(o.get(10), Some(7));
        assert!(!o.claim(30, 7), "owned by class 3");
        assert_eq!(o.get(30), Some(3));
        assert!(o.claim(30, 3), "claiming one's own vector is no conflict");
        o.insert(40, 4);
        assert_eq!(o.get(40), Some(4));
        o.remove(40);
        assert_eq!(o.get(40), None);
        assert!(
            !o.changes.contains_key(&40),
            "a change undone leaves nothing"
        );
    }

    #[test]
    fn a_vector_of_two_classes_is_refused() {
        assert!(Owners::from_pairs(vec![(5, 1), (6, 1), (5, 2)]).is_none());
        assert!(Owners::from_pairs(Vec::new()).is_some());
    }
}
