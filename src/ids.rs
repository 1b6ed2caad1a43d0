//! Customer ids written as text: the one spelling an integer id has.
//!
//! Ids come from TOML, CSV and Parquet lists, command lines and HTTP paths. An integer id is
//! accepted only in its canonical decimal spelling (`123`, `-7`), so that `000123`, `+5`,
//! ` 5` or `5.0` never silently become another customer's id: a suppression list that
//! excludes the wrong customer is a privacy incident.

/// The integer an id spells, if it is written canonically: an optional `-`, then `0` or
/// digits without a leading zero. `-0`, signs, spaces and anything else are refused.
pub fn canonical_int(text: &str) -> Option<i128> {
    canonical(text)
}

/// [`canonical_int`] as a `T` (`u32` for identity bits, `i64`, `u64`): `None` outside its
/// range too.
#[inline]
pub fn canonical<T: std::str::FromStr>(text: &str) -> Option<T> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if canonical {
        text.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_spelling_is_an_integer_id() {
        let cases: &[(&str, Option<i128>)] = &[
            ("0", Some(0)),
            ("123", Some(123)),
            ("-7", Some(-7)),
            ("18446744073709551615", Some(u64::MAX as i128)),
            ("000123", None),
            ("0123", None),
            ("+5", None),
            (" 5", None),
            ("5 ", None),
            ("5.0", None),
            ("-0", None),
            ("-", None),
            ("", None),
            ("1e3", None),
            ("abc", None),
            ("１２", None),
            ("99999999999999999999999999999999999999999", None),
        ];
        for (text, want) in cases {
            assert_eq!(canonical_int(text), *want, "{text:?}");
        }
        assert_eq!(canonical::<u32>("4294967296"), None);
        assert_eq!(canonical::<u32>("-1"), None);
        assert_eq!(canonical::<i64>("-9223372036854775808"), Some(i64::MIN));
    }
}
