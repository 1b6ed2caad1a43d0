//! Relative time windows (`30d`, `12h`, `2w`), parsed once where definitions are read.

use std::fmt;

/// The longest window accepted: 200 years (so `as_of - window` stays a valid timestamp).
const MAX_WINDOW_HOURS: i128 = 200 * 366 * 24;

/// A window of whole hours, days or weeks, at most 200 years.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    text: String,
    nanos: i128,
}

impl Window {
    /// Parses a window such as `30d`, `12h` or `2w`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Window> {
        let trimmed = text.trim();
        let (at, unit) = trimmed.char_indices().last()?;
        let number = &trimmed[..at];
        if number.is_empty() || number.len() > 12 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: i128 = number.parse().ok()?;
        let hours = match unit {
            'h' => 1,
            'd' => 24,
            'w' => 24 * 7,
            _ => return None,
        };
        (n * hours <= MAX_WINDOW_HOURS).then(|| Window {
            text: trimmed.to_string(),
            nanos: n * hours * 3_600_000_000_000,
        })
    }

    /// Its length in nanoseconds.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_window(text: &str) -> Option<i128> {
        Window::parse(text).map(|w| w.nanos())
    }

    #[test]
    fn windows() {
        let hour = 3_600_000_000_000i128;
        for (text, want) in [
            ("30d", Some(30 * 24 * hour)),
            ("12h", Some(12 * hour)),
            ("2w", Some(14 * 24 * hour)),
            ("0d", Some(0)),
        ] {
            assert_eq!(parse_window(text), want, "{text}");
        }
        let hostile = [
            "3é",
            "é",
            "3日",
            "99999999999999999999999999999999999d",
            "73201d",
        ];
        for bad in ["", "d", "30", "30x", "-3d", "3.5d", "30 days"]
            .into_iter()
            .chain(hostile)
        {
            assert_eq!(parse_window(bad), None, "{bad}");
        }
    }
}
