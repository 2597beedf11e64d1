//! A store in a directory (native only): one file per blob.
//!
//! [`BlobStore::apply`] writes every put to a temp file (`.tmp-<name>`), fsyncs
//! it and renames it into place; fsyncs the directory; then writes the manifest
//! the same way — that rename is the commit point — and fsyncs the directory
//! again; only then does it delete. A crash at any moment leaves either the old
//! or the new manifest, and blob names are never reused, so whichever manifest
//! is there finds all its blobs. If a write fails before the commit, the blobs
//! this change set created are removed again.
//!
//! A writer holds `.lock` (created exclusively, holding the process id) so a
//! second writer gets [`Error::Locked`]; the lock is released on drop, and a
//! lock left by a process that no longer exists is taken over (Linux).
//! [`FsStore::open_read_only`] takes no lock (search while another process
//! enrolls); such a reader may see a blob deleted under it and should reopen.
//!
//! Fault testing: [`FsStore::set_faults`] fails or stops a commit at any of its
//! steps ([`super::fault`]). With `METRICANN_FAULT_AFTER_WRITES=N` in the environment the
//! process aborts half-way through its (N+1)-th file write, the way a power cut
//! or `kill -9` would stop it, so tests can check every crash point of a commit.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use super::BlobStore;
use super::fault::Faults;
use crate::blob::{self, BlobRead, ChangeSet, MANIFEST};
use crate::{Error, Result};

/// Name of the writer's lock file inside the store directory.
pub const LOCK_FILE: &str = ".lock";
/// Prefix of temp files (removed by [`FsStore::open`] if a crash left them).
pub const TEMP_PREFIX: &str = ".tmp-";

/// The process-abort hook (`METRICANN_FAULT_AFTER_WRITES`) the module docs describe.
mod abort_hook {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    static WRITES: AtomicU64 = AtomicU64::new(0);

    pub(super) fn crash_now() -> bool {
        static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
        let limit = LIMIT.get_or_init(|| {
            std::env::var("METRICANN_FAULT_AFTER_WRITES")
                .ok()
                .and_then(|v| v.parse().ok())
        });
        match limit {
            Some(n) => WRITES.fetch_add(1, Ordering::SeqCst) == *n,
            None => false,
        }
    }
}

/// A directory of blobs.
#[derive(Debug)]
pub struct FsStore {
    dir: PathBuf,
    /// Whether this store holds the lock (and may write).
    locked: bool,
    faults: Faults,
}

/// An I/O error on `path`; a full disk or exhausted quota is `QuotaExceeded`.
fn io_err(path: &Path, e: std::io::Error) -> Error {
    match e.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            Error::QuotaExceeded(format!("{}: {e}", path.display()))
        }
        _ => Error::io(path, e),
    }
}

fn check_name(name: &str) -> Result<()> {
    if blob::valid_name(name) {
        Ok(())
    } else {
        Err(Error::BadInput(format!("bad blob name {name:?}")))
    }
}

/// Makes the directory's entries (renames, creations, deletions) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Whether a process with this id is running (only known on Linux).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

impl FsStore {
    /// Opens `dir` for writing, creating it if needed.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        Self::open(dir)
    }

    /// Opens an existing directory for writing: takes the lock and removes temp
    /// files an interrupted writer left.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let meta = fs::metadata(&dir).map_err(|e| io_err(&dir, e))?;
        if !meta.is_dir() {
            return Err(Error::BadInput(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        Self::lock(&dir)?;
        let store = FsStore {
            dir,
            locked: true,
            faults: Faults::default(),
        };
        store.remove_temp_files()?;
        Ok(store)
    }

    /// Opens an existing directory for reading only, without the lock.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let meta = fs::metadata(&dir).map_err(|e| io_err(&dir, e))?;
        if !meta.is_dir() {
            return Err(Error::BadInput(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        Ok(FsStore {
            dir,
            locked: false,
            faults: Faults::default(),
        })
    }

    fn lock(dir: &Path) -> Result<()> {
        let path = dir.join(LOCK_FILE);
        for attempt in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(std::process::id().to_string().as_bytes())
                        .and_then(|_| f.sync_all())
                        .map_err(|e| io_err(&path, e))?;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let mut text = String::new();
                    let _ = File::open(&path).and_then(|mut f| f.read_to_string(&mut text));
                    let holder: Option<u32> = text.trim().parse().ok();
                    if attempt == 0
                        && let Some(pid) = holder
                        && pid != std::process::id()
                        && !process_alive(pid)
                    {
                        // The writer died without releasing the lock.
                        tracing::warn!(
                            "taking over {} left by process {pid}, which is gone",
                            path.display()
                        );
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    let who = match holder {
                        Some(pid) => format!("process {pid}"),
                        None => "another writer".into(),
                    };
                    return Err(Error::Locked(format!(
                        "{} is being written by {who} (lock file {}; remove it if that process is gone)",
                        dir.display(),
                        path.display()
                    )));
                }
                Err(e) => return Err(io_err(&path, e)),
            }
        }
        Err(Error::Locked(format!(
            "could not take the lock {}",
            path.display()
        )))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this store was opened without the lock.
    pub fn is_read_only(&self) -> bool {
        !self.locked
    }

    fn remove_temp_files(&self) -> Result<()> {
        let entries = fs::read_dir(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&self.dir, e))?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(TEMP_PREFIX) {
                let path = entry.path();
                fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            }
        }
        Ok(())
    }

    /// Names of the blobs in the directory, sorted (temp and lock files excluded).
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| io_err(&self.dir, e))? {
            let entry = entry.map_err(|e| io_err(&self.dir, e))?;
            if let Some(name) = entry.file_name().to_str()
                && blob::valid_name(name)
                && entry.file_type().map(|t| t.is_file()).unwrap_or(false)
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Deletes blobs not in `keep` (garbage a crash between commit and delete
    /// left behind). Returns how many were deleted.
    pub fn remove_unreferenced(&mut self, keep: &[String]) -> Result<usize> {
        self.check_writable()?;
        let keep: std::collections::HashSet<&str> = keep.iter().map(String::as_str).collect();
        let mut removed = 0;
        for name in self.names()? {
            if !keep.contains(name.as_str()) {
                let path = self.dir.join(&name);
                fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Injects a fault into the commits from now on (see [`super::fault`]);
    /// `Faults::default()` only counts their steps.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// The steps the commits took since [`FsStore::set_faults`].
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// A commit step: `op`, unless a fault is planned for it.
    fn step<T>(
        &self,
        what: &str,
        path: &Path,
        op: impl FnOnce() -> std::io::Result<T>,
    ) -> Result<T> {
        self.faults
            .step(what)
            .and_then(|()| op())
            .map_err(|e| io_err(path, e))
    }

    fn sync_dir(&self) -> Result<()> {
        self.step("sync the directory", &self.dir, || Ok(()))?;
        sync_dir(&self.dir)
    }

    fn check_writable(&self) -> Result<()> {
        if self.locked {
            Ok(())
        } else {
            Err(Error::BadInput(format!(
                "{} was opened read-only",
                self.dir.display()
            )))
        }
    }

    /// Writes `bytes` to `.tmp-<name>`, fsyncs, renames to `<name>`.
    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let tmp = self.dir.join(format!("{TEMP_PREFIX}{name}"));
        let path = self.dir.join(name);
        let written = self
            .step("write", &tmp, || File::create(&tmp))
            .and_then(|mut f| {
                if abort_hook::crash_now() {
                    let _ = f.write_all(&bytes[..bytes.len() / 2]);
                    std::process::abort();
                }
                f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
                self.step("sync a file", &tmp, || f.sync_all())
            })
            .and_then(|()| self.step("rename", &path, || fs::rename(&tmp, &path)));
        if written.is_err() && !self.faults.crashed() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

impl Drop for FsStore {
    fn drop(&mut self) {
        if self.locked {
            let _ = fs::remove_file(self.dir.join(LOCK_FILE));
        }
    }
}

impl BlobRead for FsStore {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        check_name(name)?;
        let path = self.dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        }
    }
}

impl BlobStore for FsStore {
    fn apply(&mut self, changes: ChangeSet) -> Result<()> {
        self.check_writable()?;
        for (name, _) in &changes.puts {
            check_name(name)?;
        }
        for name in &changes.deletes {
            check_name(name)?;
        }
        let ChangeSet { puts, deletes } = changes;
        let mut manifest = None;
        let mut blobs = Vec::with_capacity(puts.len());
        for (name, bytes) in puts {
            if name == MANIFEST {
                manifest = Some(bytes);
            } else {
                blobs.push((name, bytes));
            }
        }

        // Blobs first; on failure remove the ones this change set created.
        let mut created: Vec<PathBuf> = Vec::new();
        let mut result = Ok(());
        for (name, bytes) in &blobs {
            let path = self.dir.join(name);
            let existed = path.exists();
            if let Err(e) = self.write_atomic(name, bytes) {
                result = Err(e);
                break;
            }
            if !existed {
                created.push(path);
            }
        }
        if result.is_ok() && !blobs.is_empty() {
            result = self.sync_dir();
        }
        // The commit point.
        if result.is_ok()
            && let Some(m) = &manifest
        {
            result = self.write_atomic(MANIFEST, m);
        }
        if let Err(e) = result {
            if !self.faults.crashed() {
                for path in created {
                    let _ = fs::remove_file(path);
                }
                let _ = sync_dir(&self.dir);
            }
            return Err(e);
        }
        self.sync_dir()?;

        // Committed: deletes can only leave garbage behind, never lose state.
        let mut deleted = false;
        for name in deletes {
            let path = self.dir.join(&name);
            match self.step("delete", &path, || fs::remove_file(&path)) {
                Ok(()) => deleted = true,
                Err(e) if self.faults.crashed() => return Err(e),
                Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("could not delete {}: {e}", path.display()),
            }
        }
        if deleted {
            self.sync_dir()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::{Gallery, GalleryConfig, OpenMode};
    use crate::index::IndexConfig;

    fn unit(i: usize, dim: usize) -> Vec<f32> {
        let mut v = vec![0.01; dim];
        v[i % dim] = 1.0;
        v
    }

    /// A second example of class `i`: near `unit(i)`, far from the others.
    fn unit2(i: usize, dim: usize) -> Vec<f32> {
        let mut v = unit(i, dim);
        v[(i + 1) % dim] = 0.2;
        v
    }

    fn config(dim: usize, capacity: usize) -> GalleryConfig {
        GalleryConfig {
            dim,
            fingerprint: "model-1".into(),
            index: IndexConfig {
                growing_capacity: capacity,
                merge_factor: 2,
                ..Default::default()
            },
            head: None,
        }
    }

    #[test]
    fn roundtrip_through_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("g");
        let (mut g, cs) = Gallery::create(config(16, 4)).unwrap();
        {
            let mut store = FsStore::create(&dir).unwrap();
            store.apply(cs).unwrap();
            for i in 0..10 {
                let cs = g
                    .enroll(
                        &format!("class {i}"),
                        &[unit(i, 16), unit2(i, 16)],
                        None,
                        vec![vec![i as u8; 3]],
                    )
                    .unwrap();
                store.apply(cs).unwrap();
            }
            store.apply(g.remove("class 3").unwrap()).unwrap();
            let mut names = g.blob_names();
            names.sort();
            assert_eq!(
                store.names().unwrap(),
                names,
                "exactly the referenced blobs"
            );
        }
        let store = FsStore::open_read_only(&dir).unwrap();
        let (back, damage) = Gallery::open(&store, Some("model-1"), OpenMode::Strict).unwrap();
        assert!(damage.is_empty());
        assert_eq!(back.classes(), g.classes());
        assert_eq!(back.class_images("class 7").unwrap(), &[vec![7u8; 3]]);
        let r = back.search(&unit(5, 16), 1, Some(0.5)).unwrap();
        assert_eq!(r.matches[0].label, "class 5");
        assert!(!r.unknown);
    }

    #[test]
    fn second_writer_is_locked_until_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let first = FsStore::create(tmp.path()).unwrap();
        let lock = tmp.path().join(LOCK_FILE);
        assert_eq!(
            fs::read_to_string(&lock).unwrap(),
            std::process::id().to_string()
        );
        match FsStore::open(tmp.path()) {
            Err(Error::Locked(msg)) => assert!(msg.contains(&std::process::id().to_string())),
            other => panic!("expected Locked, got {other:?}"),
        }
        // Readers do not need the lock, and cannot write.
        let mut reader = FsStore::open_read_only(tmp.path()).unwrap();
        assert!(reader.is_read_only());
        let mut cs = ChangeSet::new();
        cs.put("x", vec![1]);
        assert!(matches!(reader.apply(cs), Err(Error::BadInput(_))));
        drop(first);
        assert!(!lock.exists());
        let _again = FsStore::open(tmp.path()).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stale_lock_of_a_dead_process_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        // Pids are below 2^22 on Linux: this one cannot exist.
        fs::write(tmp.path().join(LOCK_FILE), "4294967").unwrap();
        let store = FsStore::open(tmp.path()).unwrap();
        assert!(!store.is_read_only());
        drop(store);
        // A lock whose holder is unknown is respected.
        fs::write(tmp.path().join(LOCK_FILE), "garbage").unwrap();
        assert!(matches!(FsStore::open(tmp.path()), Err(Error::Locked(_))));
    }

    #[test]
    fn orphan_temp_files_are_removed_on_open() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(".tmp-seg-9"), b"half written").unwrap();
        fs::write(tmp.path().join(".tmp-manifest"), b"half written").unwrap();
        fs::write(tmp.path().join("seg-1"), b"kept").unwrap();
        let store = FsStore::open(tmp.path()).unwrap();
        assert!(!tmp.path().join(".tmp-seg-9").exists());
        assert!(!tmp.path().join(".tmp-manifest").exists());
        assert_eq!(store.names().unwrap(), vec!["seg-1"]);
        assert_eq!(store.get("seg-1").unwrap(), Some(b"kept".to_vec()));
        assert_eq!(store.get("seg-2").unwrap(), None);
        assert!(matches!(store.get("../x"), Err(Error::BadInput(_))));
    }

    #[test]
    fn failed_apply_leaves_the_old_state() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = FsStore::create(tmp.path()).unwrap();
        let (mut g, cs) = Gallery::create(config(4, 100)).unwrap();
        store.apply(cs).unwrap();
        store
            .apply(g.enroll("a", &[unit(0, 4)], None, vec![]).unwrap())
            .unwrap();
        let before = store.names().unwrap();
        let manifest_before = store.get(MANIFEST).unwrap();
        // Make the second new blob unwritable: a directory occupies its temp name.
        let mut cs = g.enroll("b", &[unit(1, 4)], None, vec![]).unwrap();
        cs.puts.insert(1, ("zz-blocked".into(), vec![1, 2, 3]));
        fs::create_dir(tmp.path().join(format!("{TEMP_PREFIX}zz-blocked"))).unwrap();
        let err = store.apply(cs).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        fs::remove_dir(tmp.path().join(format!("{TEMP_PREFIX}zz-blocked"))).unwrap();
        assert_eq!(store.names().unwrap(), before, "created blobs were removed");
        assert_eq!(store.get(MANIFEST).unwrap(), manifest_before);
        let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
        assert_eq!(back.classes().len(), 1);
    }

    #[test]
    fn crash_before_commit_keeps_old_state_readable() {
        // Simulate a crash after the blobs were written but before the manifest
        // rename: apply everything except the manifest.
        let tmp = tempfile::tempdir().unwrap();
        let mut store = FsStore::create(tmp.path()).unwrap();
        let (mut g, cs) = Gallery::create(config(4, 2)).unwrap();
        store.apply(cs).unwrap();
        store
            .apply(
                g.enroll("a", &[unit(0, 4), unit(1, 4)], None, vec![])
                    .unwrap(),
            )
            .unwrap();
        let mut cs = g.enroll("a", &[unit(2, 4)], None, vec![]).unwrap();
        // Class "a" is rewritten under a new name; the old record is deleted.
        assert!(!cs.deletes.is_empty());
        cs.puts.retain(|(n, _)| n != MANIFEST);
        cs.deletes.clear();
        store.apply(cs).unwrap();
        let (back, damage) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
        assert!(damage.is_empty());
        assert_eq!(back.classes()[0].examples, 2);
        // The garbage can be collected.
        let removed = store.remove_unreferenced(&back.blob_names()).unwrap();
        assert!(removed >= 2);
        let mut names = back.blob_names();
        names.sort();
        assert_eq!(store.names().unwrap(), names);
    }
}
