//! numpy and Python objects in, library types out, and back.

use image::DynamicImage;
use metricann::image::{decode, from_rgba};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::bad_input;

/// Rows of a C-contiguous float32 matrix (the Python side converts dtypes).
pub fn rows(vectors: &PyReadonlyArray2<'_, f32>) -> PyResult<Vec<Vec<f32>>> {
    let view = vectors.as_array();
    if view.ncols() == 0 {
        return Err(bad_input("vectors have 0 columns"));
    }
    Ok(view.rows().into_iter().map(|r| r.to_vec()).collect())
}

/// A float32 matrix of `rows × cols` for Python.
pub fn matrix<'py>(
    py: Python<'py>,
    data: Vec<f32>,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let rows = data.len().checked_div(cols).unwrap_or(0);
    let array = Array2::from_shape_vec((rows, cols), data)
        .map_err(|e| bad_input(format!("matrix shape: {e}")))?;
    Ok(array.into_pyarray(py))
}

/// An image the model can embed: encoded bytes (any format the library
/// decodes) or a uint8 array of height × width (gray) or height × width ×
/// 1, 3 or 4 channels.
pub enum ImageInput {
    Encoded(String, Vec<u8>),
    Pixels(String, u32, u32, Vec<u8>),
}

impl ImageInput {
    pub fn extract(index: usize, item: &Bound<'_, PyAny>) -> PyResult<Self> {
        let name = format!("image {index}");
        if let Ok(bytes) = item.cast::<PyBytes>() {
            return Ok(ImageInput::Encoded(name, bytes.as_bytes().to_vec()));
        }
        let Ok(array) = item.extract::<PyReadonlyArrayDyn<'_, u8>>() else {
            return Err(bad_input(format!(
                "{name}: expected bytes, a path, a PIL image or a uint8 array, got {}",
                item.get_type().name()?
            )));
        };
        let shape = array.shape().to_vec();
        let (h, w, c) = match shape[..] {
            [h, w] => (h, w, 1),
            [h, w, c] if matches!(c, 1 | 3 | 4) => (h, w, c),
            _ => {
                return Err(bad_input(format!(
                    "{name}: a pixel array must be H×W or H×W×(1, 3 or 4), not {shape:?}"
                )));
            }
        };
        let view = array.as_array();
        let pixels = view.as_standard_layout();
        let flat = pixels
            .as_slice()
            .ok_or_else(|| bad_input(format!("{name}: pixels not contiguous")))?;
        let mut rgba = Vec::with_capacity(h * w * 4);
        for px in flat.chunks_exact(c) {
            match *px {
                [g] => rgba.extend_from_slice(&[g, g, g, 255]),
                [r, g, b] => rgba.extend_from_slice(&[r, g, b, 255]),
                _ => rgba.extend_from_slice(px),
            }
        }
        let (w, h) = (dimension(&name, w)?, dimension(&name, h)?);
        Ok(ImageInput::Pixels(name, w, h, rgba))
    }

    /// Decodes: runs without the GIL.
    pub fn decode(self) -> metricann::Result<DynamicImage> {
        match self {
            ImageInput::Encoded(name, bytes) => decode(&name, &bytes),
            ImageInput::Pixels(name, w, h, rgba) => from_rgba(&name, w, h, rgba),
        }
    }
}

fn dimension(name: &str, n: usize) -> PyResult<u32> {
    u32::try_from(n).map_err(|_| bad_input(format!("{name}: {n} pixels is too large")))
}

/// The list of images a Python call passed.
pub fn images(items: &Bound<'_, PyAny>) -> PyResult<Vec<ImageInput>> {
    let mut out = Vec::new();
    for (i, item) in items.try_iter()?.enumerate() {
        out.push(ImageInput::extract(i, &item?)?);
    }
    if out.is_empty() {
        return Err(bad_input("no images given"));
    }
    Ok(out)
}

/// Decodes every image, or fails on the first bad one.
pub fn decode_all(inputs: Vec<ImageInput>) -> metricann::Result<Vec<DynamicImage>> {
    inputs.into_iter().map(ImageInput::decode).collect()
}
