//! JS image inputs → decoded images. Encoded bytes go through `crate::image::decode`;
//! DOM images are drawn to an `OffscreenCanvas` and read back as RGBA.

use ::image::DynamicImage;
use js_sys::{Array, ArrayBuffer, Reflect, Uint8Array, Uint8ClampedArray};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, File, HtmlCanvasElement, HtmlImageElement, HtmlVideoElement, ImageBitmap, ImageData,
    OffscreenCanvas, OffscreenCanvasRenderingContext2d,
};

use super::js::kind_of;
use crate::image::{MAX_PIXELS, MAX_SIDE, decode, from_rgba};
use crate::store::idb::describe;
use crate::{Error, Result};

/// Longest side of an enrollment image kept for re-embedding when it came as
/// pixels (it is stored as PNG).
const KEEP_MAX_SIDE: u32 = 1024;

/// One decoded input and, when it came encoded, its original bytes.
pub(super) struct Input {
    pub(super) image: DynamicImage,
    pub(super) encoded: Option<Vec<u8>>,
}

impl Input {
    /// The bytes to keep for re-embedding: the original file, or a PNG of the pixels.
    fn keep_bytes(&self, name: &str) -> Result<Vec<u8>> {
        if let Some(bytes) = &self.encoded {
            return Ok(bytes.clone());
        }
        let image = if self.image.width().max(self.image.height()) > KEEP_MAX_SIDE {
            self.image.resize(
                KEEP_MAX_SIDE,
                KEEP_MAX_SIDE,
                ::image::imageops::FilterType::Triangle,
            )
        } else {
            self.image.clone()
        };
        let mut out = std::io::Cursor::new(Vec::new());
        image
            .write_to(&mut out, ::image::ImageFormat::Png)
            .map_err(|e| Error::BadImage {
                name: name.to_string(),
                reason: format!("cannot encode it as PNG to keep it: {e}"),
            })?;
        Ok(out.into_inner())
    }
}

fn bad(name: &str, reason: impl Into<String>) -> Error {
    Error::BadImage {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// Converts images given as one input or an array of inputs; `what` names
/// them in errors ("enrollment of class \"a\", image 2").
pub(super) async fn inputs_of(images: &JsValue, what: &str) -> Result<Vec<Input>> {
    let list: Vec<JsValue> = if Array::is_array(images) {
        Array::from(images).iter().collect()
    } else {
        vec![images.clone()]
    };
    if list.is_empty() {
        return Err(Error::BadInput(format!("{what}: no images given")));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let name = if list.len() == 1 {
            what.to_string()
        } else {
            format!("{what}, image {i}")
        };
        out.push(to_image(v, &name).await?);
    }
    Ok(out)
}

/// The bytes of each of `inputs` to keep for re-embedding; an error names
/// the image as "`what`, image `i`".
pub(super) fn kept_bytes(inputs: &[Input], what: &str) -> Result<Vec<Vec<u8>>> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, input)| input.keep_bytes(&format!("{what}, image {i}")))
        .collect()
}

/// Converts one JS image input. `name` labels errors ("image 2 of class \"a\"").
pub(super) async fn to_image(value: &JsValue, name: &str) -> Result<Input> {
    if let Some(input) = from_encoded(value, name).await {
        return input;
    }
    if let Some(data) = value.dyn_ref::<ImageData>() {
        let pixels = data.data().0;
        return pixels_input(name, data.width(), data.height(), pixels);
    }
    if let Some(input) = from_drawable(value, name) {
        return input;
    }
    if let Some(input) = from_rgba_object(value, name) {
        return input;
    }
    Err(bad(
        name,
        format!(
            "unsupported input {}: expected ImageData, ImageBitmap, HTMLImageElement, \
             HTMLVideoElement, HTMLCanvasElement, OffscreenCanvas, Blob/File, or a Uint8Array \
             of encoded image bytes",
            kind_of(value)
        ),
    ))
}

/// Encoded image bytes: a `Uint8Array`, an `ArrayBuffer`, or a `Blob`/`File`
/// (whose file name joins `name`). `None`: not one of those.
async fn from_encoded(value: &JsValue, name: &str) -> Option<Result<Input>> {
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        return Some(decoded(name, bytes.to_vec()));
    }
    if value.is_instance_of::<ArrayBuffer>() {
        return Some(decoded(name, Uint8Array::new(value).to_vec()));
    }
    let blob = value.dyn_ref::<Blob>()?;
    let label = match value.dyn_ref::<File>() {
        Some(file) => format!("{name} ({})", file.name()),
        None => name.to_string(),
    };
    Some(match JsFuture::from(blob.array_buffer()).await {
        Ok(buffer) => decoded(&label, Uint8Array::new(&buffer).to_vec()),
        Err(e) => Err(bad(
            &label,
            format!("reading the Blob failed: {}", describe(&e)),
        )),
    })
}

/// Something a canvas can draw: a bitmap, a loaded `<img>`, a `<video>` with
/// a frame, a canvas. `None`: not one of those.
fn from_drawable(value: &JsValue, name: &str) -> Option<Result<Input>> {
    if let Some(bitmap) = value.dyn_ref::<ImageBitmap>() {
        let (w, h) = (bitmap.width(), bitmap.height());
        return Some(draw(name, w, h, |ctx| {
            ctx.draw_image_with_image_bitmap(bitmap, 0.0, 0.0)
        }));
    }
    if let Some(img) = value.dyn_ref::<HtmlImageElement>() {
        return Some(image_element(img, name));
    }
    if let Some(video) = value.dyn_ref::<HtmlVideoElement>() {
        return Some(video_frame(video, name));
    }
    if let Some(canvas) = value.dyn_ref::<HtmlCanvasElement>() {
        let (w, h) = (canvas.width(), canvas.height());
        return Some(draw(name, w, h, |ctx| {
            ctx.draw_image_with_html_canvas_element(canvas, 0.0, 0.0)
        }));
    }
    let canvas = value.dyn_ref::<OffscreenCanvas>()?;
    let (w, h) = (canvas.width(), canvas.height());
    Some(draw(name, w, h, |ctx| {
        ctx.draw_image_with_offscreen_canvas(canvas, 0.0, 0.0)
    }))
}

fn image_element(img: &HtmlImageElement, name: &str) -> Result<Input> {
    let (w, h) = (img.natural_width(), img.natural_height());
    if !img.complete() || w == 0 || h == 0 {
        return Err(bad(
            name,
            format!(
                "the <img> ({}) has not loaded (await img.decode() first)",
                short(&img.current_src())
            ),
        ));
    }
    draw(name, w, h, |ctx| {
        ctx.draw_image_with_html_image_element(img, 0.0, 0.0)
    })
}

fn video_frame(video: &HtmlVideoElement, name: &str) -> Result<Input> {
    let (w, h) = (video.video_width(), video.video_height());
    // HAVE_CURRENT_DATA = 2: a frame can be drawn.
    if video.ready_state() < 2 || w == 0 || h == 0 {
        return Err(bad(
            name,
            format!(
                "the <video> has no current frame yet (readyState {}, {w}×{h}); wait for \
                 its 'loadeddata' event",
                video.ready_state()
            ),
        ));
    }
    draw(name, w, h, |ctx| {
        ctx.draw_image_with_html_video_element(video, 0.0, 0.0)
    })
}

/// A duck-typed ImageData (`{ width, height, data }` of RGBA bytes), as
/// Node.js code builds it. `None`: not shaped so.
fn from_rgba_object(value: &JsValue, name: &str) -> Option<Result<Input>> {
    if !value.is_object() {
        return None;
    }
    let get = |k: &str| Reflect::get(value, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
    let (w, h, data) = (get("width"), get("height"), get("data"));
    let (w, h) = (w.as_f64()?, h.as_f64()?);
    if !(data.is_instance_of::<Uint8ClampedArray>() || data.is_instance_of::<Uint8Array>()) {
        return None;
    }
    if w < 0.0
        || h < 0.0
        || w.fract() != 0.0
        || h.fract() != 0.0
        || w > u32::MAX as f64
        || h > u32::MAX as f64
    {
        return Some(Err(bad(
            name,
            format!("width/height {w}×{h} are not pixel counts"),
        )));
    }
    let pixels = Uint8Array::new(&data).to_vec();
    Some(pixels_input(name, w as u32, h as u32, pixels))
}

fn short(s: &str) -> String {
    if s.len() > 80 {
        let mut end = 77;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else if s.is_empty() {
        "no src".into()
    } else {
        s.to_string()
    }
}

fn decoded(name: &str, bytes: Vec<u8>) -> Result<Input> {
    let image = decode(name, &bytes)?;
    Ok(Input {
        image,
        encoded: Some(bytes),
    })
}

fn pixels_input(name: &str, w: u32, h: u32, pixels: Vec<u8>) -> Result<Input> {
    Ok(Input {
        image: from_rgba(name, w, h, pixels)?,
        encoded: None,
    })
}

fn draw(
    name: &str,
    w: u32,
    h: u32,
    paint: impl FnOnce(&OffscreenCanvasRenderingContext2d) -> std::result::Result<(), JsValue>,
) -> Result<Input> {
    if w == 0 || h == 0 {
        return Err(bad(name, format!("it has no pixels ({w}×{h})")));
    }
    // Refuse absurd sizes before allocating a canvas for them.
    if w > MAX_SIDE || h > MAX_SIDE || w as u64 * h as u64 > MAX_PIXELS {
        return Err(bad(
            name,
            format!(
                "it is too large ({w}×{h}; at most {MAX_SIDE} per side and {MAX_PIXELS} pixels)"
            ),
        ));
    }
    let has_offscreen = Reflect::get(&js_sys::global(), &JsValue::from_str("OffscreenCanvas"))
        .map(|v| v.is_function())
        .unwrap_or(false);
    if !has_offscreen {
        return Err(bad(
            name,
            "reading its pixels needs OffscreenCanvas, which this environment lacks; pass \
             encoded bytes (Uint8Array) or { width, height, data } RGBA instead",
        ));
    }
    let canvas = OffscreenCanvas::new(w, h).map_err(|e| {
        bad(
            name,
            format!("cannot create a {w}×{h} canvas: {}", describe(&e)),
        )
    })?;
    let ctx = canvas
        .get_context("2d")
        .map_err(|e| bad(name, format!("no 2d canvas context: {}", describe(&e))))?
        .ok_or_else(|| bad(name, "no 2d canvas context"))?
        .dyn_into::<OffscreenCanvasRenderingContext2d>()
        .map_err(|_| bad(name, "the 2d context has an unexpected type"))?;
    paint(&ctx).map_err(|e| bad(name, format!("drawing it failed: {}", describe(&e))))?;
    let data = ctx
        .get_image_data(0.0, 0.0, w as f64, h as f64)
        .map_err(|e| {
            bad(
                name,
                format!(
                    "reading its pixels failed (a cross-origin image without CORS?): {}",
                    describe(&e)
                ),
            )
        })?;
    pixels_input(name, w, h, data.data().0)
}
