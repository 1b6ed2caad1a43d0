//! Time in definitions: relative windows (`30d`, `12h`, `2w`) and absolute dates and
//! timestamps, parsed once where definitions are read, and the range of instants they and
//! `as_of` must stay in (SPEC §1).

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::Literal;

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

/// An instant outside the range of nanosecond timestamps, where comparisons would be
/// clamped (and so wrong) rather than exact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} is outside the range of timestamps (1677-09-22 to 2262-04-11): windows and dates \
     are computed in nanoseconds there and would be clamped"
)]
pub struct OutOfRange(pub String);

/// `as_of` in nanoseconds since the epoch, or why it can't be an evaluation time.
pub fn as_of_nanos(as_of: DateTime<Utc>) -> Result<i64, OutOfRange> {
    as_of
        .timestamp_nanos_opt()
        .ok_or_else(|| OutOfRange(as_of.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
}

/// `as_of` if it lies in the range of nanosecond timestamps.
pub fn check_as_of(as_of: DateTime<Utc>) -> Result<DateTime<Utc>, OutOfRange> {
    as_of_nanos(as_of).map(|_| as_of)
}

impl Window {
    /// `as_of_ns` minus this window, in nanoseconds, if that stays in range.
    pub fn before(&self, as_of_ns: i64) -> Option<i64> {
        i64::try_from(as_of_ns as i128 - self.nanos).ok()
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses a date (its UTC midnight) or RFC 3339 timestamp into nanoseconds since the epoch.
pub fn parse_instant(value: &Literal) -> Option<i128> {
    let text = match value {
        Literal::Str(s) => s.trim().to_string(),
        Literal::Date(d) => d.to_string(),
        _ => return None,
    };
    if let Ok(date) = NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0)?.and_utc();
        return Some(midnight.timestamp_nanos_opt()? as i128);
    }
    if let Ok(ts) = DateTime::parse_from_rfc3339(&text) {
        return Some(ts.timestamp_nanos_opt()? as i128);
    }
    // A TOML local datetime has no offset; like naive timestamps in the data, it is UTC.
    let naive = NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    Some(naive.and_utc().timestamp_nanos_opt()? as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NANOS_PER_DAY: i128 = 86_400_000_000_000;

    #[test]
    fn instants() {
        let s = |t: &str| parse_instant(&Literal::Str(t.into()));
        assert_eq!(s("1970-01-02"), Some(NANOS_PER_DAY));
        assert_eq!(s("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(s("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(s("yesterday"), None);
    }

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

    #[test]
    fn as_of_outside_the_nanosecond_range_is_refused_not_clamped() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        for ok in [
            "1677-09-22T00:00:00Z",
            "2026-11-22T00:00:00Z",
            "2262-04-11T00:00:00Z",
        ] {
            assert!(check_as_of(at(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "1677-09-20T00:00:00Z",
            "2262-04-12T00:00:00Z",
            "9999-01-01T00:00:00Z",
        ] {
            let e = check_as_of(at(bad)).unwrap_err();
            assert!(e.to_string().contains("outside the range"), "{e}");
        }
        let early = as_of_nanos(at("1677-10-01T00:00:00Z")).unwrap();
        assert_eq!(Window::parse("30d").unwrap().before(early), None);
        assert!(Window::parse("1d").unwrap().before(early).is_some());
    }
}
