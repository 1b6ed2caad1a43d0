//! The `cohort` binary: parse flags, run, print the error, map it to an exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::output;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    logging(cli.log_format());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            output::error(format_args!("cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(cohort::Error::Definitions(problems)) => {
            problems.iter().for_each(output::problem);
            let errors = problems.iter().filter(|p| p.is_error()).count();
            output::error(format_args!(
                "{errors} error(s) in definitions; nothing was scanned or published"
            ));
            ExitCode::from(2)
        }
        Err(cohort::Error::Config { file, problems }) => {
            problems.iter().for_each(output::problem);
            output::error(format_args!(
                "{} error(s) in config '{file}'",
                problems.len()
            ));
            ExitCode::from(2)
        }
        Err(e) => {
            output::error(&e);
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Logs on stderr (`RUST_LOG`, default warn): text, coloured only on a terminal and
/// without `NO_COLOR`; or JSON lines, and then every other line on stderr is one too.
/// The lines a command writes for its user (target `cohort::report`) pass whatever
/// `RUST_LOG` says, as they do in text.
fn logging(format: cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn".into())
        .add_directive(
            format!("{}=info", output::REPORT)
                .parse()
                .expect("a valid directive"),
        );
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        cli::LogFormat::Json => {
            output::set_json_lines(true);
            builder.json().init()
        }
        cli::LogFormat::Text => builder.with_ansi(output::stderr_colour()).init(),
    }
}

/// A command line clap refuses (or `--help`, `--version`): clap's text, or under
/// `--log-format json` (flag or `COHORT_LOG_FORMAT`) one JSON line.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let informational = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if informational || !json_requested() {
        e.exit();
    }
    let line = serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": "ERROR",
        "fields": {"message": e.to_string().trim_end()},
        "target": output::REPORT,
    });
    eprintln!("{line}");
    ExitCode::from(e.exit_code() as u8)
}

/// Whether the command line or the environment asks for JSON lines on stderr.
fn json_requested() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = args
        .iter()
        .position(|a| a == "--log-format")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--log-format=")));
    match flag {
        Some(value) => value == "json",
        None => std::env::var("COHORT_LOG_FORMAT").is_ok_and(|v| v == "json"),
    }
}
