//! The `cohort` binary: parse flags, run, print the error, map it to an exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging(cli.log_format);
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
                eprintln!("{}", cli::diagnostics::render(p));
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

/// Logs on stderr (`RUST_LOG`, default warn): text, coloured only on a terminal and
/// without `NO_COLOR`; or JSON lines.
fn logging(format: cli::LogFormat) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        cli::LogFormat::Json => builder.json().init(),
        cli::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
    }
}
