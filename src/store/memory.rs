//! A store in memory.

use std::borrow::Cow;
use std::collections::HashMap;

use super::BlobStore;
use super::fault::Faults;
use crate::blob::{self, BlobRead, ChangeSet};
use crate::{Error, Result};

/// Blobs in a `HashMap`, optionally with a byte quota (to exercise the
/// quota-exceeded path the browser has).
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    blobs: HashMap<String, Vec<u8>>,
    quota: Option<u64>,
    faults: Faults,
}

impl MemoryStore {
    /// An empty store without quota.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store holding at most `bytes` bytes of blobs.
    pub fn with_quota(bytes: u64) -> Self {
        Self {
            quota: Some(bytes),
            ..Self::default()
        }
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether the store holds no blob.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Blob names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.blobs.keys().cloned().collect();
        names.sort();
        names
    }

    /// Total bytes stored.
    pub fn bytes(&self) -> u64 {
        self.blobs.values().map(|b| b.len() as u64).sum()
    }

    /// A change set that recreates this store's content elsewhere (every blob
    /// as a put, the manifest last, so it is the commit point there too).
    pub fn snapshot(&self) -> ChangeSet {
        let mut cs = ChangeSet::new();
        for name in self.names() {
            if name != blob::MANIFEST {
                cs.put(name.clone(), self.blobs[&name].clone());
            }
        }
        if let Some(m) = self.blobs.get(blob::MANIFEST) {
            cs.put(blob::MANIFEST, m.clone());
        }
        cs
    }

    /// Injects a fault into the commits from now on (see [`super::fault`]).
    /// A commit here is one step per put and per delete, all taken before
    /// anything changes: a fault at any of them leaves the old state.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// The steps the commits took since [`MemoryStore::set_faults`].
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Direct access to the blobs, bypassing change sets (tests use it to
    /// damage a stored gallery).
    pub fn raw_mut(&mut self) -> &mut HashMap<String, Vec<u8>> {
        &mut self.blobs
    }
}

impl BlobRead for MemoryStore {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.blobs.get(name).cloned())
    }

    fn read(&self, name: &str) -> Result<Option<Cow<'_, [u8]>>> {
        Ok(self.blobs.get(name).map(|b| Cow::Borrowed(b.as_slice())))
    }
}

impl BlobStore for MemoryStore {
    fn apply(&mut self, changes: ChangeSet) -> Result<()> {
        for name in changes
            .puts
            .iter()
            .map(|(n, _)| n)
            .chain(changes.deletes.iter())
        {
            if !blob::valid_name(name) {
                return Err(Error::BadInput(format!("bad blob name {name:?}")));
            }
        }
        if let Some(quota) = self.quota {
            // The size after applying, computed before changing anything.
            let mut sizes: HashMap<&str, u64> = self
                .blobs
                .iter()
                .map(|(n, b)| (n.as_str(), b.len() as u64))
                .collect();
            for (n, b) in &changes.puts {
                sizes.insert(n.as_str(), b.len() as u64);
            }
            for n in &changes.deletes {
                sizes.remove(n.as_str());
            }
            let after: u64 = sizes.values().sum();
            if after > quota {
                return Err(Error::QuotaExceeded(format!(
                    "the change needs {after} bytes, the store holds at most {quota}"
                )));
            }
        }
        let steps = changes.puts.iter().map(|(n, _)| ("put", n));
        for (what, name) in steps.chain(changes.deletes.iter().map(|n| ("delete", n))) {
            self.faults.step(what).map_err(|e| match e.kind() {
                std::io::ErrorKind::StorageFull => Error::QuotaExceeded(format!("{name}: {e}")),
                _ => Error::Internal(format!("{name}: {e}")),
            })?;
        }
        for (name, bytes) in changes.puts {
            self.blobs.insert(name, bytes);
        }
        for name in changes.deletes {
            self.blobs.remove(&name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::{Gallery, GalleryConfig, OpenMode};
    use crate::index::IndexConfig;

    fn config() -> GalleryConfig {
        GalleryConfig {
            dim: 4,
            fingerprint: "fp".into(),
            index: IndexConfig::default(),
            head: None,
        }
    }

    #[test]
    fn apply_puts_then_deletes() {
        let mut s = MemoryStore::new();
        let mut cs = ChangeSet::new();
        cs.put("a", vec![1]);
        cs.put("b", vec![2, 3]);
        s.apply(cs).unwrap();
        assert_eq!(s.names(), vec!["a", "b"]);
        assert_eq!(s.bytes(), 3);
        let mut cs = ChangeSet::new();
        cs.put("c", vec![4]);
        cs.delete("a");
        cs.delete("never-existed");
        s.apply(cs).unwrap();
        assert_eq!(s.names(), vec!["b", "c"]);
        assert_eq!(s.get("c").unwrap(), Some(vec![4]));
        assert_eq!(s.get("a").unwrap(), None);
    }

    #[test]
    fn bad_names_change_nothing() {
        let mut s = MemoryStore::new();
        let mut cs = ChangeSet::new();
        cs.put("ok", vec![1]);
        cs.put("../escape", vec![1]);
        assert!(matches!(s.apply(cs), Err(Error::BadInput(_))));
        assert!(s.is_empty());
    }

    #[test]
    fn quota_exceeded_is_all_or_nothing() {
        let (mut g, cs) = Gallery::create(config()).unwrap();
        let need = cs.put_bytes();
        let mut s = MemoryStore::with_quota(need + 600);
        s.apply(cs).unwrap();
        s.apply(
            g.enroll("cat", &[vec![1.0, 0.0, 0.0, 0.0]], None, vec![])
                .unwrap(),
        )
        .unwrap();
        let before = s.names();
        let snapshot: Vec<Vec<u8>> = before.iter().map(|n| s.get(n).unwrap().unwrap()).collect();
        // A big image does not fit: nothing of the enrollment is stored.
        let cs = g
            .enroll(
                "dog",
                &[vec![0.0, 1.0, 0.0, 0.0]],
                None,
                vec![vec![7u8; 4096]],
            )
            .unwrap();
        assert!(matches!(s.apply(cs), Err(Error::QuotaExceeded(_))));
        assert_eq!(s.names(), before);
        for (n, b) in before.iter().zip(&snapshot) {
            assert_eq!(&s.get(n).unwrap().unwrap(), b);
        }
        // The store still opens with what was there.
        let (back, damage) = Gallery::open(&s, Some("fp"), OpenMode::Strict).unwrap();
        assert!(damage.is_empty());
        let labels: Vec<String> = back.classes().into_iter().map(|c| c.label).collect();
        assert_eq!(labels, vec!["cat"]);
    }

    #[test]
    fn gallery_lifecycle_in_memory() {
        let (mut g, cs) = Gallery::create(config()).unwrap();
        let mut s = MemoryStore::new();
        s.apply(cs).unwrap();
        s.apply(
            g.enroll("a", &[vec![1.0, 0.0, 0.0, 0.0]], None, vec![])
                .unwrap(),
        )
        .unwrap();
        s.apply(
            g.enroll("b", &[vec![0.0, 1.0, 0.0, 0.0]], None, vec![])
                .unwrap(),
        )
        .unwrap();
        s.apply(g.rename("a", "c").unwrap()).unwrap();
        s.apply(g.remove("b").unwrap()).unwrap();
        // Only referenced blobs remain.
        let mut referenced = g.blob_names();
        referenced.sort();
        assert_eq!(s.names(), referenced);
        let (back, _) = Gallery::open(&s, None, OpenMode::Strict).unwrap();
        assert_eq!(back.classes(), g.classes());
        // A snapshot copies the gallery into another store, manifest last.
        let snap = s.snapshot();
        assert_eq!(
            snap.puts.last().map(|(n, _)| n.as_str()),
            Some(blob::MANIFEST)
        );
        let mut copy = MemoryStore::new();
        copy.apply(snap).unwrap();
        assert_eq!(copy.names(), s.names());
        let (copied, _) = Gallery::open(&copy, None, OpenMode::Strict).unwrap();
        assert_eq!(copied.classes(), g.classes());
        let r = back.search(&[1.0, 0.1, 0.0, 0.0], 3, None).unwrap();
        assert_eq!(r.matches.len(), 1);
        assert_eq!(r.matches[0].label, "c");
    }
}
