//! The native side of MetricANN: data, augmentation, losses, the training loop and the CLI.

pub mod augment;
pub mod dataset;
pub mod glyphs;
pub mod sampler;
