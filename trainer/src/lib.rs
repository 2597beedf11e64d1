//! The native side of MetricANN: data, augmentation, losses, the training loop and the CLI.

pub mod ann_bench;
pub mod calibrate;
pub mod cli;
pub mod dataset;
pub mod enroll_bench;
pub mod eval;
pub mod glyphs;
pub mod import;
pub mod npy;
pub mod sampler;
pub mod stress;
pub mod train;
