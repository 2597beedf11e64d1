//! `dataset`: making training data.

use std::path::PathBuf;

use clap::Args;

use metricann::{Error, Result};

use super::common::print_report;
use crate::glyphs::{CharSet, GlyphSpec};

#[derive(Args, Debug)]
pub struct GlyphArgs {
    /// Characters to render: gb2312-1, gb2312-2, a range like U+4E00..U+4E2F, a literal list, or a file.
    #[arg(long)]
    pub chars: String,
    /// Font files (.ttf, .otf, .ttc); every face of a collection is one example.
    #[arg(long, num_args = 1.., required = true)]
    pub fonts: Vec<PathBuf>,
    /// ImageFolder to create (a missing or empty folder).
    #[arg(long)]
    pub out: PathBuf,
    /// Side of the square images, in pixels (8 to 1024).
    #[arg(long, default_value_t = 64)]
    pub size: u32,
    /// Drop characters drawn by fewer distinct faces than this.
    #[arg(long, default_value_t = 2)]
    pub min_fonts: usize,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn glyphs(a: GlyphArgs) -> Result<()> {
    let chars = a
        .chars
        .parse::<CharSet>()
        .map_err(|e| Error::BadInput(e.to_string()))?;
    let spec = GlyphSpec {
        chars,
        fonts: a.fonts,
        out: a.out.clone(),
        size: a.size,
        min_fonts: a.min_fonts,
    };
    let report = crate::glyphs::render(&spec).map_err(|e| Error::BadInput(e.to_string()))?;
    if a.json {
        return print_report(&report);
    }
    println!("{report:#?}");
    Ok(())
}
