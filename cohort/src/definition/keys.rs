//! Keys no part of a group file has, and values of the wrong shape: each reported where it
//! is written, with "did you mean", as a problem beside the file's others (serde would
//! have refused the whole file with its own words).

use super::raw::{RawValue, RawValues, CLAUSE_KEYS, CONDITION_KEYS, GROUP_KEYS, STATIC_KEYS};
use super::spans::{position, Node};
use super::*;

/// A parsed file's text and where each of its keys and values is.
#[derive(Debug, Clone, Copy)]
pub(super) struct Source<'a> {
    /// The file.
    pub(super) text: &'a str,
    /// Its spans (an empty node when they are unknown).
    pub(super) root: &'a Node,
}

impl<'a> Source<'a> {
    /// Where `node` is, for a problem.
    pub(super) fn position(&self, node: Option<&Node>) -> Option<Position> {
        node.and_then(|n| position(self.text, &n.span))
    }

    /// The clauses of `kind` (`include` / `exclude`), as written.
    pub(super) fn clauses(&self, kind: &str) -> &'a [Node] {
        self.root.get(kind).map_or(&[], |e| e.value.items())
    }

    /// The text of a value, short enough to quote on one line.
    fn quote(&self, node: &Node) -> String {
        let text = self.text.get(node.span.clone()).unwrap_or("");
        let line = text.lines().next().unwrap_or("");
        let shown: String = line.chars().take(40).collect();
        match shown.len() < text.len() {
            true => format!("{shown}..."),
            false => shown,
        }
    }
}

/// Every key of the file that no group file has, at its key.
pub(super) fn unknown_keys(source: Source<'_>, file_at: &Location, problems: &mut Vec<Problem>) {
    let root = source.root;
    check(source, root, GROUP_KEYS, "", file_at, problems);
    for kind in ["include", "exclude"] {
        for (i, clause) in source.clauses(kind).iter().enumerate() {
            let path = format!("{kind}[{i}]");
            let at = Location {
                path: path.clone(),
                ..file_at.clone()
            };
            check(source, clause, CLAUSE_KEYS, " in a clause", &at, problems);
            let conditions = clause
                .get("conditions")
                .map_or(&[][..], |e| e.value.items());
            for (j, condition) in conditions.iter().enumerate() {
                condition_keys(
                    source,
                    condition,
                    &format!("{path}.conditions[{j}]"),
                    file_at,
                    problems,
                );
            }
        }
    }
    if let Some(statics) = root.get("static") {
        let at = Location {
            path: "static".into(),
            ..file_at.clone()
        };
        check(
            source,
            &statics.value,
            STATIC_KEYS,
            " in [static]",
            &at,
            problems,
        );
    }
}

fn condition_keys(
    source: Source<'_>,
    node: &Node,
    path: &str,
    file_at: &Location,
    problems: &mut Vec<Problem>,
) {
    let at = Location {
        path: path.to_string(),
        ..file_at.clone()
    };
    check(
        source,
        node,
        CONDITION_KEYS,
        " in a condition",
        &at,
        problems,
    );
    let filters = node.get("where").map_or(&[][..], |e| e.value.items());
    for (k, filter) in filters.iter().enumerate() {
        condition_keys(
            source,
            filter,
            &format!("{path}.where[{k}]"),
            file_at,
            problems,
        );
    }
}

fn check(
    source: Source<'_>,
    node: &Node,
    known: &[&str],
    place: &str,
    at: &Location,
    problems: &mut Vec<Problem>,
) {
    for entry in node.entries() {
        if known.contains(&entry.key.as_str()) {
            continue;
        }
        let hint = did_you_mean(&entry.key, known.iter().copied())
            .unwrap_or_else(|| format!("expected one of: {}", known.join(", ")));
        let at = at.at(position(source.text, &entry.key_span));
        problems.push(
            Problem::error(&at, format!("unknown key '{}'{place}", entry.key))
                .with_hint(Some(hint)),
        );
    }
}

/// Problems with the shape of a condition's `value` / `values` (and those of its `where`
/// conditions), each at the value, quoting it. None means the condition can be typed.
pub(super) fn value_shapes(
    raw: &RawCondition,
    node: Option<&Node>,
    source: Source<'_>,
    at: &Location,
) -> Vec<Problem> {
    let mut found = Vec::new();
    // (key, what is wrong, the hint); `{}` is the value as written.
    let wrong = match (&raw.value, &raw.values) {
        (Some(RawValue::List(_)), _) => Some((
            "value",
            "'value' takes one value, not the list {}",
            "for several values use 'values = [...]'",
        )),
        (Some(RawValue::Other(_)), _) => Some((
            "value",
            "'value' must be a string, number, boolean or date, not {}",
            "write e.g. value = \"Canada\", value = 18 or value = 2026-01-31",
        )),
        (_, Some(RawValues::One(_))) => Some((
            "values",
            "'values' takes a list, not {}",
            "write values = [{}], or value = {} for one value",
        )),
        (_, Some(RawValues::Other(_))) => Some((
            "values",
            "'values' takes a list of strings, numbers, booleans or dates, not {}",
            "write e.g. values = [\"Alaska\", \"Florida\"]",
        )),
        _ => None,
    };
    if let Some((key, message, hint)) = wrong {
        let value = node.and_then(|n| n.get(key)).map(|e| &e.value);
        let quoted = value.map_or_else(|| "what is written".into(), |v| source.quote(v));
        let at = at.at(source.position(value).or(at.line.map(|line| Position {
            line,
            column: at.column.unwrap_or(1),
            width: at.width.unwrap_or(1),
        })));
        found.push(
            Problem::error(&at, message.replace("{}", &quoted))
                .with_hint(Some(hint.replace("{}", &quoted))),
        );
    }
    let filters = node
        .and_then(|n| n.get("where"))
        .map_or(&[][..], |e| e.value.items());
    for (k, filter) in raw.where_.iter().flatten().enumerate() {
        let filter_at = Location {
            path: format!("{}.where[{k}]", at.path),
            ..at.clone()
        };
        found.extend(value_shapes(filter, filters.get(k), source, &filter_at));
    }
    found
}

#[cfg(test)]
mod tests {
    use serde::de::{self, Deserialize, Deserializer, Visitor};

    use super::super::raw::{RawClause, RawGroup, RawStatic};
    use super::*;

    /// The field names serde gives a struct's `deserialize_struct`: what it accepts.
    fn fields_of<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
        struct Catch<'a>(&'a mut Vec<&'static str>);
        impl<'de> Deserializer<'de> for Catch<'_> {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0.extend(fields);
                Err(de::Error::custom("caught"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
                enum identifier ignored_any
            }
        }
        let mut fields = Vec::new();
        let _ = T::deserialize(Catch(&mut fields));
        fields
    }

    #[test]
    fn the_key_lists_are_the_fields_serde_accepts() {
        assert_eq!(fields_of::<RawGroup>(), GROUP_KEYS);
        assert_eq!(fields_of::<RawClause>(), CLAUSE_KEYS);
        assert_eq!(fields_of::<RawStatic>(), STATIC_KEYS);
        assert_eq!(fields_of::<RawCondition>(), CONDITION_KEYS);
    }

    #[test]
    fn unknown_keys_at_every_level_are_problems_beside_the_others() {
        let text = "nmae = \"x\"\n[[include]]\nmtch = \"any\"\nconditions = [{ attribute = \"age\", op = \"gtt\", value = 1, valeu = 2 }]\n[static]\nincluded = [1]\n";
        let (_, problems) = parse_group(std::path::Path::new("q/g.toml"), text).unwrap();
        let shown: Vec<String> = problems
            .iter()
            .map(|p| {
                format!(
                    "{}:{} {} / {:?}",
                    p.at.line.unwrap(),
                    p.at.column.unwrap(),
                    p.message,
                    p.hint
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "1:1 unknown key 'nmae' / Some(\"did you mean 'name'?\")",
                "3:1 unknown key 'mtch' in a clause / Some(\"did you mean 'match'?\")",
                "4:59 unknown key 'valeu' in a condition / Some(\"did you mean 'value'?\")",
                "6:1 unknown key 'included' in [static] / Some(\"did you mean 'include'?\")",
                "4:15 unknown operator 'gtt' / Some(\"did you mean 'gt'?\")",
            ]
        );
    }
}
