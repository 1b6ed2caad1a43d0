//! The operator vocabulary of SPEC §2.2: canonical names and every accepted alias.

use std::fmt;

/// A condition operator, after alias resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    Gt,
    Gte,
    Lt,
    Lte,
    Between,
    Exists,
    NotExists,
    IsTrue,
    IsFalse,
    WithinLast,
    NotWithinLast,
    Before,
    After,
    On,
    InGroup,
    NotInGroup,
}

/// (canonical name, aliases) for every operator, in the order of the spec's table.
const NAMES: &[(Op, &str, &[&str])] = &[
    (Op::Equals, "equals", &["is equal", "="]),
    (Op::NotEquals, "not_equals", &["is not equal", "!="]),
    (Op::In, "in", &["is one of"]),
    (Op::NotIn, "not_in", &["is not one of"]),
    (Op::Contains, "contains", &[]),
    (Op::NotContains, "not_contains", &["does not contain"]),
    (Op::StartsWith, "starts_with", &["starts with"]),
    (Op::EndsWith, "ends_with", &["ends with"]),
    (Op::Gt, "gt", &["is greater than", ">"]),
    (Op::Gte, "gte", &["is greater than or equal", ">="]),
    (Op::Lt, "lt", &["is less than", "<"]),
    (Op::Lte, "lte", &["is less than or equal", "<="]),
    (Op::Between, "between", &["is between"]),
    (Op::Exists, "exists", &[]),
    (
        Op::NotExists,
        "not_exists",
        &["doesn't exist", "does not exist"],
    ),
    (Op::IsTrue, "is_true", &["is true"]),
    (Op::IsFalse, "is_false", &["is false"]),
    (Op::WithinLast, "within_last", &["is in the last"]),
    (
        Op::NotWithinLast,
        "not_within_last",
        &["is not in the last"],
    ),
    (Op::Before, "before", &["is before"]),
    (Op::After, "after", &["is after"]),
    (Op::On, "on", &["is on"]),
    (Op::InGroup, "in_group", &["in group"]),
    (Op::NotInGroup, "not_in_group", &["not in group"]),
];

/// How many values an operator takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// `exists`, `is_true`, ...
    None,
    /// Exactly one value.
    One,
    /// Exactly two (`between`).
    Two,
    /// A list (possibly empty, which lints).
    List,
}

impl Op {
    /// Parses an operator name or alias, case-insensitively, ignoring surrounding blanks.
    pub fn parse(text: &str) -> Option<Op> {
        let wanted = text.trim().to_lowercase().replace('’', "'");
        NAMES
            .iter()
            .find(|(_, canonical, aliases)| *canonical == wanted || aliases.contains(&&*wanted))
            .map(|(op, _, _)| *op)
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        NAMES.iter().find(|(op, _, _)| *op == self).unwrap().1
    }

    /// Every spelling (canonical first) of every operator; used for "did you mean".
    pub fn all_spellings() -> impl Iterator<Item = &'static str> {
        NAMES
            .iter()
            .flat_map(|(_, c, aliases)| std::iter::once(*c).chain(aliases.iter().copied()))
    }

    /// Every operator with its aliases (for docs and table-driven tests).
    pub fn table() -> impl Iterator<Item = (Op, &'static str, &'static [&'static str])> {
        NAMES.iter().copied()
    }

    /// How many values the operator takes.
    pub fn arity(self) -> Arity {
        use Op::*;
        match self {
            Exists | NotExists | IsTrue | IsFalse => Arity::None,
            In | NotIn | Contains | NotContains | StartsWith | EndsWith => Arity::List,
            Between => Arity::Two,
            _ => Arity::One,
        }
    }

    /// Whether `ignore_case` applies to the operator.
    pub fn accepts_ignore_case(self) -> bool {
        use Op::*;
        matches!(
            self,
            Equals | NotEquals | In | NotIn | Contains | NotContains | StartsWith | EndsWith
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips() {
        for (op, canonical, aliases) in Op::table() {
            assert_eq!(Op::parse(canonical), Some(op));
            assert_eq!(Op::parse(&canonical.to_uppercase()), Some(op));
            for alias in aliases {
                assert_eq!(Op::parse(alias), Some(op), "{alias}");
                assert_eq!(Op::parse(&alias.to_uppercase()), Some(op), "{alias}");
            }
        }
        assert_eq!(Op::parse("doesn’t exist"), Some(Op::NotExists));
        assert_eq!(Op::parse("equal"), None);
    }
}
