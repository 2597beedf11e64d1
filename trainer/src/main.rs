use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use metricann_trainer::cli::{Cli, run};

/// Our own progress at info, everything else at warn: cubecl's kernel
/// compiler (pliron) logs its whole IR after every pass at info, gigabytes
/// before the first GPU training step, and that logging, not the compiling,
/// is what kept a CUDA run of EfficientNet from starting.
const DEFAULT_LOG: &str = "warn,metricann=info,metricann_trainer=info";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("METRICANN_LOG")
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            // 2: the user's input or files are at fault; 1: ours.
            ExitCode::from(if e.is_user_error() { 2 } else { 1 })
        }
    }
}
