//! Shared output helpers: tables, JSON, warnings and other lines for the user on stderr
//! (JSON objects under `--log-format json`), colour, the progress bar.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use cohort::definition::Problem;
use cohort::progress::{Phase, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    text.push('\n');
    stdout_write(text.as_bytes());
}

/// Writes to stdout. When the reader has gone (`cohort ... | head`), the process ends
/// quietly with success, as Unix tools do, instead of failing or panicking. (SIGPIPE stays
/// ignored, as Rust sets it: restoring its default would let any closed socket kill a
/// scheduler, an executor or a run talking to S3.)
pub fn stdout_write(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        error(format_args!("cannot write to stdout: {e}"));
        std::process::exit(1);
    }
}

/// Prints an aligned table on stdout; numeric-looking cells are right-aligned.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                let numeric = i > 0
                    && c.chars()
                        .next()
                        .is_some_and(|ch| ch.is_ascii_digit() || ch == '+' || ch == '-');
                if numeric {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", line(header.to_vec()));
    let _ = writeln!(
        out,
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
    );
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
    stdout_write(out.as_bytes());
}

/// Whether stderr carries JSON lines (`--log-format json`).
static JSON_LINES: AtomicBool = AtomicBool::new(false);

/// The tracing target of the lines a command writes for its user (warnings, what it
/// published, the final error): always shown, whatever `RUST_LOG` says, as in text.
pub const REPORT: &str = "cohort::report";

/// With `--log-format json`, every line on stderr is a JSON object: the lines below become
/// tracing events (target [`REPORT`]) in the same format as the logs.
pub fn set_json_lines(on: bool) {
    JSON_LINES.store(on, Ordering::Relaxed);
}

/// Whether stderr carries JSON lines.
pub fn json_lines() -> bool {
    JSON_LINES.load(Ordering::Relaxed)
}

/// Whether to colour stderr: only on a terminal, and not when `NO_COLOR` is set to
/// anything but the empty string (no-color.org).
pub fn colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// [`colour`] for this process.
pub fn stderr_colour() -> bool {
    colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// A line for the user on stderr: what was done (`published run ...`).
pub fn note(text: impl std::fmt::Display) {
    match json_lines() {
        true => tracing::info!(target: REPORT, "{text}"),
        false => eprintln!("{text}"),
    }
}

/// `warning: ...` on stderr.
pub fn warn(text: impl std::fmt::Display) {
    match json_lines() {
        true => tracing::warn!(target: REPORT, "{text}"),
        false => eprintln!("warning: {text}"),
    }
}

/// `error: ...` on stderr.
pub fn error(text: impl std::fmt::Display) {
    match json_lines() {
        true => tracing::error!(target: REPORT, "{text}"),
        false => eprintln!("error: {text}"),
    }
}

/// A definition or config problem on stderr: the file's line with a caret, or one event
/// with the problem's fields.
pub fn problem(p: &Problem) {
    if !json_lines() {
        eprintln!("{}", super::diagnostics::render(p, stderr_colour()));
        return;
    }
    macro_rules! event {
        ($level:ident) => {
            tracing::$level!(
                target: REPORT,
                group = %p.at.group,
                file = %p.at.file,
                line = p.at.line,
                column = p.at.column,
                path = %p.at.path,
                hint = p.hint.as_deref(),
                "{}",
                p.message
            )
        };
    }
    match p.is_error() {
        true => event!(error),
        false => event!(warn),
    }
}

/// Prints lint warnings on stderr.
pub fn print_warnings(problems: &[Problem]) {
    for p in problems.iter().filter(|p| !p.is_error()) {
        problem(p);
    }
}

/// Prints run warnings on stderr.
pub fn print_run_warnings(warnings: &[String]) {
    for w in warnings {
        warn(w);
    }
}

/// The progress display on stderr when it is a terminal (hidden otherwise, and under
/// `--log-format json`): the phase, and
/// for the scan a bar with percentage and ETA when the row count is known.
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new() -> Bar {
        // JSON lines on stderr leave no room for a bar.
        let bar = if std::io::stderr().is_terminal() && !json_lines() {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        Bar { bar }
    }
}

impl Progress for Bar {
    fn start(&self, phase: Phase, total: Option<u64>) {
        // The length before the style: a style with a length drawn before it is set
        // showed a brief `0/0`.
        let total = total.filter(|n| *n > 0);
        self.bar.set_position(0);
        match total {
            Some(n) => self.bar.set_length(n),
            None => self.bar.unset_length(),
        }
        self.bar.set_message(phase.to_string());
        self.bar.set_style(
            ProgressStyle::with_template(&template(phase, total)).expect("valid template"),
        );
        self.bar
            .enable_steady_tick(std::time::Duration::from_millis(120));
    }

    fn advance(&self, amount: u64) {
        self.bar.inc(amount);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The progress line of a phase: the scan (counted row by row) with percentage and ETA
/// when its rows are known; the other phases, which advance at once when done, with their
/// size; no count at all when it is not known (never `0/0`).
fn template(phase: Phase, total: Option<u64>) -> String {
    let unit = phase.unit();
    match (total.filter(|n| *n > 0), phase) {
        (Some(_), Phase::ScanningCustomers) => format!(
            "{{spinner}} {{msg}}: {{percent}}% ({{human_pos}}/{{human_len}} {unit}, {{elapsed}}, ETA {{eta}})"
        ),
        (Some(_), _) => format!("{{spinner}} {{msg}}: {{human_len}} {unit} ({{elapsed}})"),
        (None, Phase::ScanningCustomers) => {
            format!("{{spinner}} {{msg}}: {{human_pos}} {unit} ({{elapsed}})")
        }
        (None, _) => "{spinner} {msg} ({elapsed})".into(),
    }
}

/// `12.3%` of a total (or `-` when the total is zero).
pub fn percent(part: u64, total: u64) -> String {
    if total == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_lines_name_their_unit_and_never_show_zero_of_zero() {
        let phases = [
            Phase::ReadingEvents,
            Phase::ScanningCustomers,
            Phase::BuildingBitmaps,
            Phase::Publishing,
        ];
        for phase in phases {
            for total in [None, Some(0), Some(12)] {
                let line = template(phase, total);
                assert!(ProgressStyle::with_template(&line).is_ok(), "{line}");
                let counted = line.contains("{human_pos}/{human_len}");
                assert_eq!(
                    counted,
                    phase == Phase::ScanningCustomers && total == Some(12),
                    "{phase}: {line}"
                );
                if total == Some(12) {
                    assert!(
                        line.contains(&format!("{{human_len}} {}", phase.unit())),
                        "{line}"
                    );
                }
                if total != Some(12) {
                    assert!(!line.contains("human_len"), "{phase} {total:?}: {line}");
                }
            }
        }
        assert_eq!(
            template(Phase::BuildingBitmaps, Some(12)),
            "{spinner} {msg}: {human_len} groups ({elapsed})"
        );
        assert_eq!(
            template(Phase::ReadingEvents, Some(12)),
            "{spinner} {msg}: {human_len} rows ({elapsed})"
        );
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour(true, None));
        assert!(
            colour(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is not set"
        );
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new("1"))));
    }
}
