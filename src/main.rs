//! The `cohort` binary: parse flags, run, print the error, map it to an exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(cohort::Error::Definitions(problems)) => {
            for p in &problems {
                let kind = if p.is_error() { "error" } else { "warning" };
                eprintln!("{kind}: {p}");
            }
            let errors = problems.iter().filter(|p| p.is_error()).count();
            eprintln!("{errors} error(s) in definitions; nothing was scanned or published");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
