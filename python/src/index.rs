//! `Index`: raw vectors under integer ids, in memory, searched by cosine
//! similarity (hnswlib's and FAISS's place in a Python pipeline).

use std::sync::RwLock;

use metricann::index::{Index as Inner, IndexConfig, Quantization};
use metricann::{Error, Result};
use numpy::{PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use rayon::prelude::*;

use crate::convert::rows;
use crate::errors::{OrRaise, to_py};

/// Nearest ids (-1 padded) and their scores (NaN padded), one row per query.
type Neighbours<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>);

/// The fingerprint raw-vector indexes carry: no model made their vectors.
const RAW: &str = "raw-vectors";

/// Vectors under `u64` ids; queries return the `k` most similar (cosine).
#[pyclass(module = "metricann._metricann", frozen)]
pub struct Index {
    inner: RwLock<Inner>,
}

#[pymethods]
impl Index {
    #[new]
    #[pyo3(signature = (dim, m = 16, ef_construction = 100, ef_search = 64, quantize = "none"))]
    fn new(
        dim: usize,
        m: usize,
        ef_construction: usize,
        ef_search: usize,
        quantize: &str,
    ) -> PyResult<Self> {
        let config = IndexConfig {
            m,
            ef_construction,
            ef_search,
            quantization: quantize.parse::<Quantization>().or_raise()?,
            ..IndexConfig::default()
        };
        let inner = Inner::new(dim, RAW, config).or_raise()?;
        Ok(Index {
            inner: RwLock::new(inner),
        })
    }

    /// Adds rows of `vectors` under `ids` (new, distinct, below 2^53). A batch
    /// into an empty index is built as one graph at once.
    fn add(
        &self,
        py: Python<'_>,
        ids: PyReadonlyArray1<'_, u64>,
        vectors: PyReadonlyArray2<'_, f32>,
    ) -> PyResult<()> {
        let ids = ids.as_array().to_vec();
        let dim = vectors.as_array().ncols();
        let flat = vectors
            .as_array()
            .as_standard_layout()
            .iter()
            .copied()
            .collect::<Vec<_>>();
        if dim == 0 || flat.len() != ids.len() * dim {
            return Err(crate::errors::bad_input(format!(
                "{} ids for {} vectors",
                ids.len(),
                flat.len().checked_div(dim).unwrap_or(0)
            )));
        }
        py.detach(|| {
            let mut index = self.write()?;
            if index.is_empty() && ids.len() >= index.config().growing_capacity {
                index.add_sealed(ids, flat)?;
            } else {
                let vectors: Vec<Vec<f32>> = flat.chunks_exact(dim).map(<[f32]>::to_vec).collect();
                index.add(&ids, &vectors)?;
            }
            index.maintain()?;
            Ok(())
        })
        .map_err(to_py)
    }

    /// The `k` nearest ids and their cosine similarities for each row of
    /// `queries`, best first; rows with fewer than `k` hits are padded with id
    /// -1 and score NaN. `ef` overrides the search breadth.
    #[pyo3(signature = (queries, k = 10, ef = None))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: PyReadonlyArray2<'py, f32>,
        k: usize,
        ef: Option<usize>,
    ) -> PyResult<Neighbours<'py>> {
        if k == 0 {
            return Err(crate::errors::bad_input("k must be at least 1"));
        }
        let queries = rows(&queries)?;
        let n = queries.len();
        let (ids, scores) = py
            .detach(|| -> Result<(Vec<i64>, Vec<f32>)> {
                let index = self.read()?;
                let hits: Vec<Vec<metricann::index::Hit>> = queries
                    .par_iter()
                    .map(|q| match ef {
                        Some(ef) => index.search_ef(q, k, ef),
                        None => index.search(q, k),
                    })
                    .collect::<Result<_>>()?;
                let mut ids = vec![-1i64; n * k];
                let mut scores = vec![f32::NAN; n * k];
                for (row, hits) in hits.iter().enumerate() {
                    for (col, h) in hits.iter().take(k).enumerate() {
                        ids[row * k + col] = h.id as i64;
                        scores[row * k + col] = h.score;
                    }
                }
                Ok((ids, scores))
            })
            .map_err(to_py)?;
        let ids = numpy::ndarray::Array2::from_shape_vec((n, k), ids)
            .map_err(|e| crate::errors::bad_input(e.to_string()))?;
        Ok((
            numpy::IntoPyArray::into_pyarray(ids, py),
            crate::convert::matrix(py, scores, k)?,
        ))
    }

    /// Deletes ids; unknown ones are ignored. Returns how many were deleted.
    fn remove(&self, py: Python<'_>, ids: PyReadonlyArray1<'_, u64>) -> PyResult<usize> {
        let ids = ids.as_array().to_vec();
        py.detach(|| {
            let mut index = self.write()?;
            let removed = index.remove(&ids);
            index.maintain()?;
            Ok(removed)
        })
        .map_err(to_py)
    }

    /// The search breadth graphs use when `search` is given no `ef`.
    #[getter]
    fn ef_search(&self) -> PyResult<usize> {
        Ok(self.read().map_err(to_py)?.config().ef_search)
    }

    #[setter]
    fn set_ef_search(&self, ef: usize) -> PyResult<()> {
        self.write().map_err(to_py)?.set_ef_search(ef).or_raise()
    }

    #[getter]
    fn dim(&self) -> PyResult<usize> {
        Ok(self.read().map_err(to_py)?.dim())
    }

    /// Bytes held in memory for vectors, links and ids.
    #[getter]
    fn memory_bytes(&self) -> PyResult<u64> {
        Ok(self.read().map_err(to_py)?.memory_bytes())
    }

    /// Live (not deleted) vectors.
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.read().map_err(to_py)?.len())
    }
}

impl Index {
    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Inner>> {
        self.inner
            .read()
            .map_err(|_| Error::Internal("an index call panicked earlier".into()))
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, Inner>> {
        self.inner
            .write()
            .map_err(|_| Error::Internal("an index call panicked earlier".into()))
    }
}
