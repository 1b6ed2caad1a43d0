//! Customer ids, the ground floor every stage stands on: the one spelling an integer id
//! has, the key type ids compare by across sources, the normalized id column types, and
//! the numbering of ids as bits (identity, or a dictionary in perfect-hash order) with its
//! encoding and decoding.
//!
//! ## Ids written as text
//!
//! Ids come from TOML, CSV and Parquet lists, command lines and HTTP paths. An integer id is
//! accepted only in its canonical decimal spelling (`123`, `-7`), so that `000123`, `+5`,
//! ` 5` or `5.0` never silently become another customer's id: a suppression list that
//! excludes the wrong customer is a privacy incident.

pub mod bucket;
pub mod dictionary;
pub mod mapping;
pub mod perfect_hash;
mod runs;
mod transposed;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type, UInt64Type};

pub use bucket::{bucket, BUCKETS};
pub use mapping::IdMapping;

/// The type ids are kept in once read from a column of type `data_type`: every integer
/// type widens to `Int64` or `UInt64`, every string type to `Utf8`; `None` for a type that
/// can't hold customer ids.
pub fn normalized_id_type(data_type: &DataType) -> Option<DataType> {
    use DataType::*;
    match data_type {
        Int8 | Int16 | Int32 | Int64 => Some(Int64),
        UInt8 | UInt16 | UInt32 | UInt64 => Some(UInt64),
        Utf8 | LargeUtf8 | Utf8View => Some(Utf8),
        Dictionary(_, v) => normalized_id_type(v),
        _ => None,
    }
}

/// How a normalized id type is named in messages and manifests.
pub fn id_type_name(id_type: &DataType) -> &'static str {
    match id_type {
        DataType::Int64 => "int64",
        DataType::UInt64 => "uint64",
        _ => "string",
    }
}

/// A customer id in a form that compares across sources (inline, CSV, Parquet, the table).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKey {
    /// Integer id columns.
    Int(i128),
    /// String id columns.
    Str(String),
}

impl std::fmt::Display for IdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdKey::Int(i) => write!(f, "{i}"),
            IdKey::Str(s) => f.write_str(s),
        }
    }
}

impl IdKey {
    /// Interprets a written id for an id column of (normalized) type `id_type`.
    /// `None` when it cannot be an id of that column (a non-numeric string for integer ids).
    /// Integer ids must be written canonically (`123`, never `000123`, `+123` or `123.0`)
    /// and lie in the column's range.
    pub fn parse(text: &str, id_type: &DataType) -> Option<IdKey> {
        match id_type {
            DataType::Utf8 => Some(IdKey::Str(text.to_string())),
            DataType::UInt64 => canonical::<u64>(text).map(|i| IdKey::Int(i as i128)),
            _ => canonical::<i64>(text).map(|i| IdKey::Int(i as i128)),
        }
    }

    /// The key of row `i` of a normalized id array (Int64, UInt64 or Utf8); None for null.
    pub fn of_row(ids: &ArrayRef, i: usize) -> Option<IdKey> {
        if ids.is_null(i) {
            return None;
        }
        Some(match ids.data_type() {
            DataType::Int64 => IdKey::Int(ids.as_primitive::<Int64Type>().value(i) as i128),
            DataType::UInt64 => IdKey::Int(ids.as_primitive::<UInt64Type>().value(i) as i128),
            _ => IdKey::Str(ids.as_string::<i32>().value(i).to_string()),
        })
    }
}

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

    /// Member by member: what every faster way of remapping positions to bits must equal.
    pub(super) fn remapped_one_by_one(
        pos_to_bit: &[u32],
        positions: &roaring::RoaringBitmap,
    ) -> roaring::RoaringBitmap {
        positions.iter().map(|p| pos_to_bit[p as usize]).collect()
    }

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
