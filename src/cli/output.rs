//! Shared output helpers: tables, JSON, warnings, the progress bar.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

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
        eprintln!("error: cannot write to stdout: {e}");
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

/// Prints lint warnings on stderr.
pub fn print_warnings(problems: &[Problem]) {
    for p in problems.iter().filter(|p| !p.is_error()) {
        eprintln!("{}", super::diagnostics::render(p));
    }
}

/// Prints run warnings on stderr.
pub fn print_run_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// The progress display on stderr when it is a terminal (hidden otherwise): the phase, and
/// for the scan a bar with percentage and ETA when the row count is known.
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new() -> Bar {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        Bar { bar }
    }
}

impl Progress for Bar {
    fn start(&self, phase: Phase, total: Option<u64>) {
        let template = match total {
            Some(_) => {
                "{spinner} {msg}: {percent}% ({human_pos}/{human_len} rows, {elapsed}, ETA {eta})"
            }
            None if phase == Phase::ScanningCustomers => {
                "{spinner} {msg}: {human_pos} rows ({elapsed})"
            }
            None => "{spinner} {msg} ({elapsed})",
        };
        self.bar
            .set_style(ProgressStyle::with_template(template).expect("valid template"));
        self.bar.set_message(phase.to_string());
        self.bar.set_position(0);
        match total {
            Some(n) => self.bar.set_length(n),
            None => self.bar.unset_length(),
        }
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

/// `12.3%` of a total (or `-` when the total is zero).
pub fn percent(part: u64, total: u64) -> String {
    if total == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / total as f64)
    }
}
