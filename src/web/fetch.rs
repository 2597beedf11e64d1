//! Downloading a model bundle with `fetch`, reporting progress as it arrives.

use js_sys::{Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, ReadableStreamDefaultReader, Response};

use super::js::{global_get, io_error};
use crate::store::idb::describe;
use crate::{Error, Result};

/// Fetches `url`, reporting `{ loaded, total }` to `progress` as chunks arrive.
pub(super) async fn fetch_bytes(url: &str, progress: Option<&Function>) -> Result<Vec<u8>> {
    let response = response_of(url).await?;
    let progress = Progress {
        callback: progress,
        total: content_length(&response),
    };
    match response.body() {
        Some(body) => read_stream(url, &body, &progress).await,
        None => read_whole(url, &response, &progress).await,
    }
}

/// The successful response to a GET of `url` (an HTTP 404 is NOT_FOUND).
async fn response_of(url: &str) -> Result<Response> {
    let fetch = global_get("fetch").dyn_into::<Function>().map_err(|_| {
        Error::BadInput("fetch is not available here: pass the model as bytes".into())
    })?;
    let failed = |e: JsValue| io_error(url, format!("fetch failed: {}", describe(&e)), false);
    let response = fetch
        .call1(&JsValue::UNDEFINED, &JsValue::from_str(url))
        .map_err(failed)?;
    let response = JsFuture::from(Promise::resolve(&response))
        .await
        .map_err(failed)?
        .dyn_into::<Response>()
        .map_err(|_| Error::Internal("fetch did not return a Response".into()))?;
    if !response.ok() {
        return Err(io_error(
            url,
            format!("HTTP {} {}", response.status(), response.status_text()),
            response.status() == 404,
        ));
    }
    Ok(response)
}

fn content_length(response: &Response) -> Option<f64> {
    response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|s| s.parse::<f64>().ok())
}

/// The `onProgress` callback and the size the server announced.
struct Progress<'a> {
    callback: Option<&'a Function>,
    total: Option<f64>,
}

impl Progress<'_> {
    fn report(&self, loaded: usize) {
        let Some(f) = self.callback else {
            return;
        };
        let o = js_sys::Object::new();
        let _ = Reflect::set(&o, &"loaded".into(), &(loaded as f64).into());
        let _ = Reflect::set(
            &o,
            &"total".into(),
            &self.total.map(JsValue::from).unwrap_or(JsValue::NULL),
        );
        let _ = f.call1(&JsValue::UNDEFINED, &o);
    }
}

fn download_failed(url: &str, e: &JsValue) -> Error {
    io_error(url, format!("download failed: {}", describe(e)), false)
}

/// The body chunk by chunk, reporting after each.
async fn read_stream(url: &str, body: &ReadableStream, progress: &Progress<'_>) -> Result<Vec<u8>> {
    let reader = body
        .get_reader()
        .dyn_into::<ReadableStreamDefaultReader>()
        .map_err(|_| Error::Internal("the response body has no default reader".into()))?;
    // The announced size is only a hint: a lying header must not allocate gigabytes.
    let mut bytes = Vec::with_capacity(progress.total.unwrap_or(0.0).min(1e9) as usize);
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| download_failed(url, &e))?;
        if Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            == Some(true)
        {
            break;
        }
        let value = Reflect::get(&chunk, &"value".into()).unwrap_or(JsValue::UNDEFINED);
        if let Some(a) = value.dyn_ref::<Uint8Array>() {
            bytes.extend(a.to_vec());
            progress.report(bytes.len());
        }
    }
    Ok(bytes)
}

/// The body at once, where the response has no stream (reported once).
async fn read_whole(url: &str, response: &Response, progress: &Progress<'_>) -> Result<Vec<u8>> {
    let buffer = response
        .array_buffer()
        .map_err(|e| download_failed(url, &e))?;
    let buffer = JsFuture::from(buffer)
        .await
        .map_err(|e| download_failed(url, &e))?;
    let bytes = Uint8Array::new(&buffer).to_vec();
    progress.report(bytes.len());
    Ok(bytes)
}
