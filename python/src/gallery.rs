//! `Gallery`: classes of examples in a folder on disk, the same format the CLI
//! and the browser package read and write.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use metricann::blob::ChangeSet;
use metricann::gallery::{Enrollment, Gallery as Inner, GalleryConfig, OpenMode};
use metricann::index::{IndexConfig, Quantization};
use metricann::store::{BlobStore, FsStore};
use metricann::{Error, Result};
use numpy::{PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::convert::{images, matrix, rows};
use crate::errors::{OrRaise, to_py};
use crate::model::{Model, embed_flat};

/// One class in a search result: label, score, distance, metadata as JSON.
type Match = (String, f32, f32, Option<String>);

/// A gallery folder, open for reading and writing (holding its lock) or
/// reading only.
#[pyclass(module = "metricann._metricann", frozen)]
pub struct Gallery {
    dir: PathBuf,
    state: Mutex<Option<State>>,
}

struct State {
    gallery: Inner,
    store: FsStore,
    /// Blobs left out at open (`skip_damaged`), as "name: reason".
    damaged: Vec<String>,
}

#[pymethods]
impl Gallery {
    /// Creates a gallery in `dir` (which must not hold one) for vectors of
    /// `dim` made by the model with `fingerprint`.
    #[staticmethod]
    #[pyo3(signature = (dir, dim, fingerprint, m = 16, ef_construction = 100, segment_size = 1024, quantize = "none"))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        dir: PathBuf,
        dim: usize,
        fingerprint: String,
        m: usize,
        ef_construction: usize,
        segment_size: usize,
        quantize: &str,
    ) -> PyResult<Self> {
        let quantization = quantize.parse::<Quantization>().or_raise()?;
        let config = GalleryConfig {
            dim,
            fingerprint,
            index: IndexConfig {
                growing_capacity: segment_size,
                m,
                ef_construction,
                quantization,
                ..IndexConfig::default()
            },
            head: None,
        };
        let state = py
            .detach(|| new_state(&dir, || Inner::create(config)))
            .map_err(to_py)?;
        Ok(Self::with(dir, state))
    }

    /// Opens the gallery in `dir`. `read_only` takes no lock (several
    /// processes may read one folder); `skip_damaged` searches what is intact.
    #[staticmethod]
    #[pyo3(signature = (dir, read_only = false, skip_damaged = false))]
    fn open(py: Python<'_>, dir: PathBuf, read_only: bool, skip_damaged: bool) -> PyResult<Self> {
        let state = py
            .detach(|| open_state(&dir, read_only, skip_damaged))
            .map_err(to_py)?;
        Ok(Self::with(dir, state))
    }

    /// Writes a gallery from an export file (`export`, the CLI's `export` or
    /// the browser's `MetricAnn.export`) into the new folder `dir`.
    #[staticmethod]
    fn import_file(py: Python<'_>, path: PathBuf, dir: PathBuf) -> PyResult<Self> {
        let state = py
            .detach(|| {
                let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                new_state(&dir, || Inner::import_bytes(&bytes, None))
            })
            .map_err(to_py)?;
        Ok(Self::with(dir, state))
    }

    /// Embeds images with `model` as this gallery's vectors are embedded (with
    /// the head adapted on the device, when it has one).
    fn embed<'py>(
        &self,
        py: Python<'py>,
        model: &Model,
        items: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let inputs = images(items)?;
        let base = Arc::clone(&model.embedder);
        let flat = py
            .detach(|| {
                let embedder = self.read(|s| s.gallery.embedder_for(&base))?;
                embed_flat(&embedder, inputs)
            })
            .map_err(to_py)?;
        matrix(py, flat, model.embedder.dim())
    }

    /// Adds examples (rows of `vectors`) to class `label`, creating it;
    /// `metadata` (JSON) replaces the class's. One atomic write.
    #[pyo3(signature = (label, vectors, metadata = None))]
    fn enroll(
        &self,
        py: Python<'_>,
        label: String,
        vectors: PyReadonlyArray2<'_, f32>,
        metadata: Option<String>,
    ) -> PyResult<usize> {
        let vectors = rows(&vectors)?;
        let metadata = metadata.map(|m| parse_json(&m)).transpose()?;
        let n = vectors.len();
        py.detach(|| self.write(|g| g.enroll(&label, &vectors, metadata, Vec::new())))
            .map_err(to_py)?;
        Ok(n)
    }

    /// Enrolls many classes in one atomic write: row `i` of `vectors` is an
    /// example of `labels[i]`. `sealed` builds one graph over them at once
    /// (for bulk loads).
    #[pyo3(signature = (labels, vectors, sealed = false))]
    fn enroll_many(
        &self,
        py: Python<'_>,
        labels: Vec<String>,
        vectors: PyReadonlyArray2<'_, f32>,
        sealed: bool,
    ) -> PyResult<usize> {
        let vectors = rows(&vectors)?;
        if labels.len() != vectors.len() {
            return Err(crate::errors::bad_input(format!(
                "{} labels for {} vectors",
                labels.len(),
                vectors.len()
            )));
        }
        let n = vectors.len();
        let entries = Enrollment::by_label(labels, vectors);
        py.detach(|| {
            self.write(|g| {
                if sealed {
                    g.enroll_sealed(entries)
                } else {
                    g.enroll_batch(&entries)
                }
            })
        })
        .map_err(to_py)?;
        Ok(n)
    }

    /// Removes class `label` and all its examples.
    fn remove(&self, py: Python<'_>, label: String) -> PyResult<()> {
        py.detach(|| self.write(|g| g.remove(&label)))
            .map_err(to_py)
    }

    /// Renames class `old` to `new` (which must be free).
    fn rename(&self, py: Python<'_>, old: String, new: String) -> PyResult<()> {
        py.detach(|| self.write(|g| g.rename(&old, &new)))
            .map_err(to_py)
    }

    /// Replaces (or with `None` clears) the metadata (JSON) of class `label`.
    #[pyo3(signature = (label, metadata))]
    fn set_metadata(
        &self,
        py: Python<'_>,
        label: String,
        metadata: Option<String>,
    ) -> PyResult<()> {
        let metadata = metadata.map(|m| parse_json(&m)).transpose()?;
        py.detach(|| self.write(|g| g.set_metadata(&label, metadata)))
            .map_err(to_py)
    }

    /// Class-level top-`k` for each row of `queries`: `(unknown, matches)`
    /// per query, matches best first. A best score below `threshold` is unknown.
    #[pyo3(signature = (queries, k = 5, threshold = None))]
    fn search(
        &self,
        py: Python<'_>,
        queries: PyReadonlyArray2<'_, f32>,
        k: usize,
        threshold: Option<f32>,
    ) -> PyResult<Vec<(bool, Vec<Match>)>> {
        let queries = rows(&queries)?;
        py.detach(|| {
            self.read(|s| {
                queries
                    .iter()
                    .map(|q| {
                        let r = s.gallery.search(q, k, threshold)?;
                        let matches = r
                            .matches
                            .into_iter()
                            .map(|m| {
                                let meta = m.metadata.map(|v| v.to_string());
                                (m.label, m.score, m.distance, meta)
                            })
                            .collect();
                        Ok((r.unknown, matches))
                    })
                    .collect()
            })
        })
        .map_err(to_py)
    }

    /// Builds one graph over every vector (faster searches after many small
    /// enrollments). Returns whether there was anything to do.
    fn optimize(&self, py: Python<'_>) -> PyResult<bool> {
        py.detach(|| {
            self.with_state(|s| match s.gallery.optimize()? {
                Some(cs) => commit(s, cs).map(|()| true),
                None => Ok(false),
            })
        })
        .map_err(to_py)
    }

    /// Writes the whole gallery as one export file (what the browser package
    /// imports); returns its size in bytes.
    fn export(&self, py: Python<'_>, path: PathBuf) -> PyResult<usize> {
        py.detach(|| {
            let bytes = self.read(|s| s.gallery.export_bytes())?;
            std::fs::write(&path, &bytes).map_err(|e| Error::io(&path, e))?;
            Ok(bytes.len())
        })
        .map_err(to_py)
    }

    /// Every class (label, examples, metadata) as a JSON list.
    fn classes_json(&self) -> PyResult<String> {
        self.read(|s| json(&s.gallery.classes())).map_err(to_py)
    }

    /// Counts, segments and sizes as a JSON object (the CLI's `stats --json` keys).
    fn stats_json(&self) -> PyResult<String> {
        self.read(|s| json(&s.gallery.stats())).map_err(to_py)
    }

    #[getter]
    fn fingerprint(&self) -> PyResult<String> {
        self.read(|s| Ok(s.gallery.fingerprint().to_string()))
            .map_err(to_py)
    }

    #[getter]
    fn dim(&self) -> PyResult<usize> {
        self.read(|s| Ok(s.gallery.dim())).map_err(to_py)
    }

    #[getter]
    fn dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// The damaged blobs `skip_damaged` left out, as "name: reason".
    #[getter]
    fn damaged(&self) -> PyResult<Vec<String>> {
        self.read(|s| Ok(s.damaged.clone())).map_err(to_py)
    }

    #[getter]
    fn read_only(&self) -> PyResult<bool> {
        self.read(|s| Ok(s.store.is_read_only())).map_err(to_py)
    }

    /// Number of classes.
    fn __len__(&self) -> PyResult<usize> {
        self.read(|s| Ok(s.gallery.len())).map_err(to_py)
    }

    /// Releases the folder (and its lock); later calls raise.
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            if let Ok(mut state) = self.state.lock() {
                state.take();
            }
        })
    }
}

impl Gallery {
    fn with(dir: PathBuf, state: State) -> Self {
        Gallery {
            dir,
            state: Mutex::new(Some(state)),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Option<State>>> {
        self.state
            .lock()
            .map_err(|_| Error::Internal("a gallery call panicked earlier".into()))
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut guard = self.lock()?;
        let state = guard
            .as_mut()
            .ok_or_else(|| Error::BadInput(format!("gallery {} is closed", self.dir.display())))?;
        f(state)
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> Result<T>) -> Result<T> {
        self.with_state(|s| f(s))
    }

    /// Runs a mutation and stores its changes.
    fn write(&self, f: impl FnOnce(&mut Inner) -> Result<ChangeSet>) -> Result<()> {
        self.with_state(|s| {
            if s.store.is_read_only() {
                return Err(Error::BadInput(format!(
                    "gallery {} is open read-only",
                    s.store.dir().display()
                )));
            }
            let cs = f(&mut s.gallery)?;
            commit(s, cs)
        })
    }
}

/// Stores a mutation's changes. When the store refuses them, the gallery in
/// memory is read back from the folder, so that it never claims what the
/// disk does not hold.
fn commit(s: &mut State, cs: ChangeSet) -> Result<()> {
    if let Err(e) = s.store.apply(cs) {
        if let Ok((gallery, _)) = Inner::open(&s.store, None, OpenMode::Strict) {
            s.gallery = gallery;
        }
        return Err(e);
    }
    Ok(())
}

/// A new gallery folder `dir` holding what `make` returns; refused when `dir`
/// already holds a gallery.
fn new_state(dir: &Path, make: impl FnOnce() -> Result<(Inner, ChangeSet)>) -> Result<State> {
    if dir.join("manifest").exists() {
        return Err(Error::BadInput(format!(
            "{} already holds a gallery; open it instead",
            dir.display()
        )));
    }
    let (gallery, changes) = make()?;
    let mut store = FsStore::create(dir)?;
    store.apply(changes)?;
    Ok(State {
        gallery,
        store,
        damaged: Vec::new(),
    })
}

fn open_state(dir: &Path, read_only: bool, skip_damaged: bool) -> Result<State> {
    let store = if read_only {
        FsStore::open_read_only(dir)?
    } else {
        FsStore::open(dir)?
    };
    let mode = if skip_damaged {
        OpenMode::SkipDamaged
    } else {
        OpenMode::Strict
    };
    let (gallery, damaged) = Inner::open(&store, None, mode)?;
    let damaged = damaged
        .iter()
        .map(|d| format!("{}: {}", d.blob, d.reason))
        .collect();
    Ok(State {
        gallery,
        store,
        damaged,
    })
}

fn parse_json(text: &str) -> PyResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| crate::errors::bad_input(format!("metadata: {e}")))
}

fn json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))
}
