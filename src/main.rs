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
            let text = e.to_string();
            match cli::config::environment_note(&text) {
                Some(note) => output::error(format_args!("{text} {note}")),
                None => output::error(&text),
            }
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
    let from_environment = from_environment(&e);
    if informational || (!json_requested() && from_environment.is_none()) {
        e.exit();
    }
    let message = from_environment.unwrap_or_else(|| e.to_string().trim_end().to_string());
    if !json_requested() {
        eprintln!("error: {message}");
        return ExitCode::from(e.exit_code() as u8);
    }
    let line = serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": "ERROR",
        "fields": {"message": message},
        "target": output::REPORT,
    });
    eprintln!("{line}");
    ExitCode::from(e.exit_code() as u8)
}

/// clap's "invalid value" for a flag that is not on the command line: the value came from
/// its `COHORT_*` variable, which the message then names instead of the flag.
fn from_environment(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split_whitespace().next()?;
    let variable = cli::config::env_name(flag);
    let value = std::env::var(&variable).ok()?;
    if cli::config::given_on_command_line(flag) {
        return None;
    }
    let expected = match e.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) => format!(": expected one of {}", valid.join(", ")),
        _ => String::new(),
    };
    Some(format!(
        "invalid {variable} '{value}' (the variable of {flag}){expected}"
    ))
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
