//! The `metricann` Python package's native module (`metricann._metricann`):
//! the embedding model, galleries on disk and raw-vector indexes. The Python
//! side (`python/metricann/`) turns paths and PIL images into what this module
//! takes and its tuples into dataclasses; everything that computes is here,
//! with the GIL released.

mod convert;
mod errors;
mod gallery;
mod index;
mod model;

use pyo3::prelude::*;

#[pymodule]
fn _metricann(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<model::Model>()?;
    m.add_class::<gallery::Gallery>()?;
    m.add_class::<index::Index>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
