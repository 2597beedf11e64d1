use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use metricann_trainer::cli::{Cli, run};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("METRICANN_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
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
