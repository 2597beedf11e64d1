//! `Model`: a model bundle loaded for embedding.

use std::sync::Arc;

use metricann::backend::Backend;
use metricann::embed::Embedder;
use metricann::model::Bundle;
use numpy::PyArray2;
use pyo3::prelude::*;

use crate::convert::{ImageInput, decode_all, images, matrix};
use crate::errors::{OrRaise, to_py};

/// An embedding model (a `.mcm` bundle) on one backend.
#[pyclass(module = "metricann._metricann", frozen)]
pub struct Model {
    pub(crate) embedder: Arc<Embedder>,
    pub(crate) header: metricann::model::BundleHeader,
}

#[pymethods]
impl Model {
    /// Loads a bundle file; `backend` is `ndarray` (CPU, everywhere) or `wgpu`.
    #[staticmethod]
    #[pyo3(signature = (path, backend = "ndarray"))]
    fn open(py: Python<'_>, path: std::path::PathBuf, backend: &str) -> PyResult<Self> {
        let backend = backend.parse::<Backend>().or_raise()?;
        let (embedder, header) = py
            .detach(|| -> metricann::Result<_> {
                let bytes = std::fs::read(&path).map_err(|e| metricann::Error::io(&path, e))?;
                let bundle = Bundle::from_bytes(&path.display().to_string(), &bytes)?;
                let embedder = Embedder::new(&bundle, backend.device()?)?;
                Ok((embedder, bundle.header))
            })
            .map_err(to_py)?;
        Ok(Model {
            embedder: Arc::new(embedder),
            header,
        })
    }

    /// Embeds images (bytes or uint8 pixel arrays) into unit vectors, one row each.
    fn embed<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let inputs = images(items)?;
        let embedder = Arc::clone(&self.embedder);
        let flat = py
            .detach(move || embed_flat(&embedder, inputs))
            .or_raise()?;
        matrix(py, flat, self.embedder.dim())
    }

    /// Length of the embeddings.
    #[getter]
    fn dim(&self) -> usize {
        self.embedder.dim()
    }

    /// The weights' fingerprint: galleries record the model that built them.
    #[getter]
    fn fingerprint(&self) -> &str {
        self.embedder.fingerprint()
    }

    /// The calibrated open-set threshold, if the bundle has one.
    #[getter]
    fn threshold(&self) -> Option<f32> {
        self.header.calibration.as_ref().map(|c| c.threshold)
    }

    /// The bundle's header (architecture, preprocessing, training) as JSON.
    #[getter]
    fn header_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.header).map_err(|e| crate::errors::bad_input(e.to_string()))
    }

    fn __repr__(&self) -> String {
        format!(
            "Model(fingerprint={:?}, dim={})",
            self.embedder.fingerprint(),
            self.embedder.dim()
        )
    }
}

/// Images decoded and embedded at once: bounds the memory a long list takes.
const BATCH: usize = 32;

/// Decodes and embeds, row after row in one buffer; runs without the GIL.
pub(crate) fn embed_flat(
    embedder: &Embedder,
    inputs: Vec<ImageInput>,
) -> metricann::Result<Vec<f32>> {
    let mut flat = Vec::with_capacity(inputs.len() * embedder.dim());
    let mut inputs = inputs.into_iter().peekable();
    while inputs.peek().is_some() {
        let batch = decode_all(inputs.by_ref().take(BATCH).collect())?;
        for v in embedder.embed(&batch)? {
            flat.extend_from_slice(&v);
        }
    }
    Ok(flat)
}
