//! Reading JS option objects and plain JS arguments. A wrong type is
//! BAD_INPUT naming the option; undefined and null mean "not given".
//!
//! Options are read in a fixed order per call, so that of several mistakes
//! the same one is reported every time.

use js_sys::{Array, Float32Array, Reflect};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::js::kind_of;
use crate::gallery::{Enrollment, OpenMode};
use crate::{Error, Result};

/// Reads `options[key]`; `None` for undefined and null (and when `options` is not an object).
pub(super) fn opt(options: &JsValue, key: &str) -> Option<JsValue> {
    if !options.is_object() {
        return None;
    }
    let v = Reflect::get(options, &JsValue::from_str(key)).ok()?;
    (!v.is_undefined() && !v.is_null()).then_some(v)
}

pub(super) fn opt_bool(options: &JsValue, key: &str) -> Result<bool> {
    match opt(options, key) {
        None => Ok(false),
        Some(v) => v.as_bool().ok_or_else(|| {
            Error::BadInput(format!(
                "option {key} must be a boolean, got {}",
                kind_of(&v)
            ))
        }),
    }
}

pub(super) fn opt_string(options: &JsValue, key: &str) -> Result<Option<String>> {
    match opt(options, key) {
        None => Ok(None),
        Some(v) => v.as_string().map(Some).ok_or_else(|| {
            Error::BadInput(format!(
                "option {key} must be a string, got {}",
                kind_of(&v)
            ))
        }),
    }
}

fn opt_number(options: &JsValue, key: &str) -> Result<Option<f64>> {
    match opt(options, key) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(Error::BadInput(format!(
                "option {key} must be a finite number"
            ))),
        },
    }
}

/// `options` may be left out, but when given it must be an object.
pub(super) fn check_options(options: &JsValue, what: &str) -> Result<()> {
    if !options.is_undefined() && !options.is_null() && !options.is_object() {
        return Err(Error::BadInput(format!(
            "{what} options must be an object, got {}",
            kind_of(options)
        )));
    }
    Ok(())
}

pub(super) fn metadata_of(value: Option<JsValue>) -> Result<Option<Value>> {
    match value {
        None => Ok(None),
        Some(v) => serde_wasm_bindgen::from_value::<Value>(v)
            .map(Some)
            .map_err(|e| Error::BadInput(format!("metadata is not JSON-compatible: {e}"))),
    }
}

pub(super) fn vector_of(value: &JsValue, what: &str) -> Result<Vec<f32>> {
    if value.is_instance_of::<Float32Array>()
        || value.is_instance_of::<js_sys::Float64Array>()
        || Array::is_array(value)
    {
        return Ok(Float32Array::new(value).to_vec());
    }
    Err(Error::BadInput(format!(
        "{what} must be a Float32Array or an array of numbers, got {}",
        kind_of(value)
    )))
}

/// `open`'s own options (the model's are [`super::model::load_model`]'s).
pub(super) struct OpenOptions {
    pub(super) mode: OpenMode,
    pub(super) reembed: bool,
    pub(super) allow_mismatch: bool,
    /// The IndexedDB gallery; `None`: in memory.
    pub(super) name: Option<String>,
}

impl OpenOptions {
    pub(super) fn parse(options: &JsValue) -> Result<OpenOptions> {
        check_options(options, "open")?;
        let skip = opt_bool(options, "skipDamaged")?;
        let reembed = opt_bool(options, "reembed")?;
        let allow_mismatch = opt_bool(options, "allowModelMismatch")?;
        let name = opt_string(options, "gallery")?;
        Ok(OpenOptions {
            mode: if skip {
                OpenMode::SkipDamaged
            } else {
                OpenMode::Strict
            },
            reembed,
            allow_mismatch,
            name,
        })
    }
}

/// `search`'s `k` (default 5) and `threshold`.
pub(super) fn search_options(options: &JsValue) -> Result<(usize, Option<f32>)> {
    check_options(options, "search")?;
    let k = match opt_number(options, "k")? {
        None => 5,
        Some(k) if k >= 1.0 && k.fract() == 0.0 && k <= 10_000.0 => k as usize,
        Some(k) => {
            return Err(Error::BadInput(format!(
                "k must be an integer in 1..=10000, got {k}"
            )));
        }
    };
    let threshold = opt_number(options, "threshold")?.map(|t| t as f32);
    Ok((k, threshold))
}

/// `enrollVectors`' `[{ label, vectors: Float32Array[], metadata? }]`.
pub(super) fn enrollments_of(entries: &JsValue) -> Result<Vec<Enrollment>> {
    if !Array::is_array(entries) {
        return Err(Error::BadInput(format!(
            "enrollVectors expects an array of {{ label, vectors }}, got {}",
            kind_of(entries)
        )));
    }
    Array::from(entries)
        .iter()
        .enumerate()
        .map(|(i, e)| enrollment_of(i, &e))
        .collect()
}

fn enrollment_of(i: usize, entry: &JsValue) -> Result<Enrollment> {
    let label = opt_string(entry, "label")?
        .ok_or_else(|| Error::BadInput(format!("entry {i}: label is missing")))?;
    let vectors = opt(entry, "vectors")
        .ok_or_else(|| Error::BadInput(format!("entry {i}: vectors are missing")))?;
    if !Array::is_array(&vectors) {
        return Err(Error::BadInput(format!(
            "entry {i}: vectors must be an array"
        )));
    }
    let vectors = Array::from(&vectors)
        .iter()
        .map(|v| vector_of(&v, &format!("entry {i} vector")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Enrollment {
        label,
        vectors,
        metadata: metadata_of(opt(entry, "metadata"))?,
    })
}
