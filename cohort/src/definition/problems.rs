//! Definition problems: what is wrong, where it was written, and "did you mean".

use std::fmt;

/// Where something was written: file, line (TOML only), and its path inside the group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The definition file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the start of what is wrong, when known.
    pub column: Option<usize>,
    /// How many characters, from `column`, on that line, are what is wrong.
    pub width: Option<usize>,
    /// The group id.
    pub group: String,
    /// e.g. `include[0].conditions[1]`.
    pub path: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if !self.path.is_empty() {
            write!(f, ", {}", self.path)?;
        }
        Ok(())
    }
}

/// Where a piece of text starts in its file and how long it is on its first line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Characters from `column` to the end of the piece or of its first line.
    pub width: usize,
}

impl Position {
    /// The position of `text[range]`.
    pub fn of(text: &str, range: std::ops::Range<usize>) -> Position {
        let start = range.start.min(text.len());
        let end = range.end.clamp(start, text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let piece = &text[start..end];
        let width = piece
            .split('\n')
            .next()
            .unwrap_or("")
            .chars()
            .count()
            .max(1);
        Position {
            line,
            column,
            width,
        }
    }
}

impl Location {
    /// This location, pointing at `position`.
    pub fn at(&self, position: Option<Position>) -> Location {
        Location {
            line: position.map(|p| p.line).or(self.line),
            column: position.map(|p| p.column),
            width: position.map(|p| p.width),
            ..self.clone()
        }
    }
}

/// Error or lint warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Refuses the run (exit 2).
    Error,
    /// Reported, exit 0.
    Warning,
}

/// A definition problem: what is wrong, where, and a hint when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Lowercase, quoting the input: `unknown attribute 'agee'`.
    pub message: String,
    /// Where.
    pub at: Location,
    /// e.g. `did you mean 'age'?`
    pub hint: Option<String>,
}

impl Problem {
    /// An error at a location.
    pub fn error(at: &Location, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            message: message.into(),
            at: at.clone(),
            hint: None,
        }
    }

    /// A lint warning at a location.
    pub fn warning(at: &Location, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(at, message)
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Whether this problem refuses the run.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The problem as JSON, the one shape `cohort validate --format json` prints and
    /// `POST /v1/size` answers: `severity`, `message`, `hint`, `group`, `file`, `line`,
    /// `column`, `path` (e.g. `include[0].conditions[1]`; also as `condition`) and `text`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "severity": if self.is_error() { "error" } else { "warning" },
            "message": self.message,
            "hint": self.hint,
            "group": self.at.group,
            "file": self.at.file,
            "line": self.at.line,
            "column": self.at.column,
            "path": self.at.path,
            "condition": self.at.path,
            "text": self.to_string(),
        })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if !self.at.group.is_empty() {
            write!(f, " in group '{}'", self.at.group)?;
        }
        write!(f, " ({})", self.at)?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

/// The closest candidate to `word`, formatted as a hint, if any is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&word_lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean '{c}'?"))
}
