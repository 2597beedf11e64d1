//! Small conversions between JS values and the library's results and errors.

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise};

use crate::store::idb::describe;
use crate::{Error, Result};

/// A library error as a JS `Error` with `code` (and `blob` for CORRUPT).
pub(super) fn to_js(e: Error) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    err.set_name("MetricAnnError");
    let _ = Reflect::set(&err, &"code".into(), &e.code().into());
    if let Error::Corrupt { name, .. } = &e {
        let _ = Reflect::set(&err, &"blob".into(), &name.as_str().into());
    }
    err.into()
}

pub(super) fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| Error::Internal(format!("converting a result to JS: {e}")))
}

/// `future` as a Promise that rejects with [`to_js`]'s `Error`.
pub(super) fn run<F>(future: F) -> Promise
where
    F: std::future::Future<Output = Result<JsValue>> + 'static,
{
    future_to_promise(async move { future.await.map_err(to_js) })
}

/// What kind of JS value this is, for error messages.
pub(super) fn kind_of(value: &JsValue) -> String {
    if value.is_null() {
        return "null".into();
    }
    if value.is_undefined() {
        return "undefined".into();
    }
    if let Some(o) = value.dyn_ref::<js_sys::Object>() {
        let name = String::from(o.constructor().name());
        if !name.is_empty() {
            return name;
        }
    }
    value.js_typeof().as_string().unwrap_or_else(|| "?".into())
}

pub(super) fn global_get(key: &str) -> JsValue {
    Reflect::get(&js_sys::global(), &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// An IO error about `what` (a URL, an input); its code is NOT_FOUND when
/// `not_found` (an HTTP 404), else IO.
pub(super) fn io_error(what: &str, reason: String, not_found: bool) -> Error {
    let kind = if not_found {
        std::io::ErrorKind::NotFound
    } else {
        std::io::ErrorKind::Other
    };
    Error::io(what, std::io::Error::new(kind, reason))
}

/// `console.warn`, for failures that no Promise is left to report.
pub(super) fn web_warn(message: &str) {
    let console = global_get("console");
    if let Ok(warn) = Reflect::get(&console, &"warn".into())
        && let Ok(warn) = warn.dyn_into::<Function>()
    {
        let _ = warn.call1(&console, &JsValue::from_str(message));
    }
}

/// Bytes of a `Uint8Array`, `ArrayBuffer` or `Blob`.
pub(super) async fn bytes_of(value: &JsValue, what: &str) -> Result<Vec<u8>> {
    if let Some(a) = value.dyn_ref::<Uint8Array>() {
        return Ok(a.to_vec());
    }
    if value.is_instance_of::<js_sys::ArrayBuffer>() {
        return Ok(Uint8Array::new(value).to_vec());
    }
    if let Some(blob) = value.dyn_ref::<web_sys::Blob>() {
        let buffer = JsFuture::from(blob.array_buffer()).await.map_err(|e| {
            io_error(
                what,
                format!("reading the Blob failed: {}", describe(&e)),
                false,
            )
        })?;
        return Ok(Uint8Array::new(&buffer).to_vec());
    }
    Err(Error::BadInput(format!(
        "{what} must be a Uint8Array, ArrayBuffer or Blob, got {}",
        kind_of(value)
    )))
}

/// `bytes` as a Uint8Array when `as_bytes` or where there is no `Blob`
/// (older Node.js), else as a Blob of `mime_type`.
pub(super) fn blob_or_bytes(bytes: &[u8], as_bytes: bool, mime_type: &str) -> Result<JsValue> {
    let array = Uint8Array::from(bytes);
    if as_bytes || !global_get("Blob").is_function() {
        return Ok(array.into());
    }
    let parts = Array::of1(&array);
    let props = web_sys::BlobPropertyBag::new();
    props.set_type(mime_type);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &props)
        .map_err(|e| Error::Internal(format!("creating the Blob: {}", describe(&e))))?;
    Ok(blob.into())
}
