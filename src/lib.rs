//! MetricANN: recognise things from one to three examples per class.
//!
//! The modules follow the pipeline: [`image`] (decode, resize, normalise) →
//! [`model`] (backbone, head, bundle) → [`embed`] (and `adapt`, the head
//! retrained on the device) → [`index`] (segments,
//! distance kernels) → [`gallery`] (classes, class-level top-K, open-set
//! threshold) → [`store`] (file system, memory, IndexedDB) → `web` (bindings).
//! Lower layers never import higher ones.

#[cfg(feature = "adapt")]
pub mod adapt;
pub mod backend;
pub mod blob;
pub mod embed;
pub mod error;
#[cfg(not(target_arch = "wasm32"))]
pub mod fuzzing;
pub mod gallery;
pub mod image;
pub mod index;
pub mod metrics;
pub mod model;
#[cfg(test)]
mod mutate;
pub mod store;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
