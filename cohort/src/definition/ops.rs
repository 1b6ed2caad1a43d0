//! The operator registry of SPEC §2.2: for every operator its canonical name, aliases,
//! arity, the column families it applies to, whether `ignore_case` applies, the fast path
//! that evaluates it over mostly distinct values, and what it means. Parsing, "did you
//! mean", type checks, the dashboard (through `/v1/schema`), `schema/vocabulary.json` and
//! the fast-path test all read this one table.

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

impl Arity {
    /// How `/v1/schema` and `schema/vocabulary.json` name it.
    pub fn name(self) -> &'static str {
        match self {
            Arity::None => "none",
            Arity::One => "one",
            Arity::Two => "two",
            Arity::List => "list",
        }
    }
}

/// The coarse kinds of column that operators are chosen by (a form's column families).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Utf8, LargeUtf8, Utf8View (and dictionaries of them).
    String,
    /// Integers, floats and decimals.
    Number,
    /// Boolean.
    Boolean,
    /// Date32, Date64.
    Date,
    /// Timestamps of any unit.
    Timestamp,
    /// Lists of strings.
    List,
    /// Anything else: only `exists` / `not_exists` apply.
    Other,
}

impl Family {
    /// Every family, in the order forms list them.
    pub const ALL: [Family; 7] = [
        Family::String,
        Family::Number,
        Family::Boolean,
        Family::Date,
        Family::Timestamp,
        Family::List,
        Family::Other,
    ];

    /// `string`, `number`, `boolean`, `date`, `timestamp`, `list` or `other`.
    pub fn name(self) -> &'static str {
        match self {
            Family::String => "string",
            Family::Number => "number",
            Family::Boolean => "boolean",
            Family::Date => "date",
            Family::Timestamp => "timestamp",
            Family::List => "list",
            Family::Other => "other",
        }
    }
}

/// What evaluates an operator's conditions when a column's values are mostly distinct.
///
/// Whatever the operator, a condition on one column is evaluated once per distinct value
/// when the column is read as a Parquet dictionary or a batch's integers span a short
/// range (`evaluate/by_value.rs`); this names the path for the other batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluator {
    /// Once per range between the constants compared with, on number, date and
    /// timestamp columns (`evaluate/ranges.rs`); DataFusion row by row on the others.
    Ranges,
    /// In one pass of substring searches on string columns (`evaluate/patterns/`);
    /// DataFusion row by row on lists.
    Substrings,
    /// DataFusion, row by row: no fast path takes it.
    DataFusion,
    /// Never scanned: group references are bitmap algebra (`evaluate/combine.rs`).
    Bitmaps,
}

impl Evaluator {
    /// How `schema/vocabulary.json` names it.
    pub fn name(self) -> &'static str {
        match self {
            Evaluator::Ranges => "ranges",
            Evaluator::Substrings => "substrings",
            Evaluator::DataFusion => "datafusion",
            Evaluator::Bitmaps => "bitmaps",
        }
    }
}

/// One operator's entry in the registry.
#[derive(Debug)]
pub struct Operator {
    /// The operator.
    pub op: Op,
    /// Its canonical name.
    pub name: &'static str,
    /// Its other spellings (matched case-insensitively), the form's label first.
    pub aliases: &'static [&'static str],
    /// How many values it takes.
    pub arity: Arity,
    /// The column families it applies to (none: a group reference).
    pub families: &'static [Family],
    /// Whether `ignore_case = true` applies (on string columns).
    pub ignore_case: bool,
    /// What evaluates it over mostly distinct values.
    pub evaluator: Evaluator,
    /// What it means, as the JSON Schema and the dashboard say it.
    pub meaning: &'static str,
}

use Family::{
    Boolean as B, Date as D, List as L, Number as N, Other as O, String as S, Timestamp as T,
};

const SCALARS: &[Family] = &[S, N, B, D, T];
const ORDERED: &[Family] = &[S, N, D, T];
const TEMPORAL: &[Family] = &[D, T];

/// Every operator, in the order of the spec's table.
pub const OPERATORS: &[Operator] = &[
    Operator {
        op: Op::Equals,
        name: "equals",
        aliases: &["is equal", "="],
        arity: Arity::One,
        families: SCALARS,
        ignore_case: true,
        evaluator: Evaluator::Ranges,
        meaning: "True when the attribute equals value. Any scalar (string, number, boolean, date, timestamp). Strings compare case-sensitively unless ignore_case = true.",
    },
    Operator {
        op: Op::NotEquals,
        name: "not_equals",
        aliases: &["is not equal", "!="],
        arity: Arity::One,
        families: SCALARS,
        ignore_case: true,
        evaluator: Evaluator::Ranges,
        meaning: "True when the attribute is present and differs from value. A missing (null) attribute makes it false, like every operator except not_exists.",
    },
    Operator {
        op: Op::In,
        name: "in",
        aliases: &["is one of"],
        arity: Arity::List,
        families: SCALARS,
        ignore_case: true,
        evaluator: Evaluator::Ranges,
        meaning: "True when the attribute is one of values. A single value is accepted too. An empty list never matches (and lints).",
    },
    Operator {
        op: Op::NotIn,
        name: "not_in",
        aliases: &["is not one of"],
        arity: Arity::List,
        families: SCALARS,
        ignore_case: true,
        evaluator: Evaluator::Ranges,
        meaning: "True when the attribute is present and none of values. A single value is accepted too. False for a missing attribute.",
    },
    Operator {
        op: Op::Contains,
        name: "contains",
        aliases: &[],
        arity: Arity::List,
        families: &[S, L],
        ignore_case: true,
        evaluator: Evaluator::Substrings,
        meaning: "String column: any of values is a substring. List-of-strings column: the list contains any of values. A single value is accepted too.",
    },
    Operator {
        op: Op::NotContains,
        name: "not_contains",
        aliases: &["does not contain"],
        arity: Arity::List,
        families: &[S, L],
        ignore_case: true,
        evaluator: Evaluator::Substrings,
        meaning: "Negation of contains: none of values is a substring / in the list. On a list column an empty list qualifies, a missing (null) list does not.",
    },
    Operator {
        op: Op::StartsWith,
        name: "starts_with",
        aliases: &["starts with"],
        arity: Arity::List,
        families: &[S],
        ignore_case: true,
        evaluator: Evaluator::Substrings,
        meaning: "String column: the value starts with any of values (a single value is accepted too).",
    },
    Operator {
        op: Op::EndsWith,
        name: "ends_with",
        aliases: &["ends with"],
        arity: Arity::List,
        families: &[S],
        ignore_case: true,
        evaluator: Evaluator::Substrings,
        meaning: "String column: the value ends with any of values (a single value is accepted too).",
    },
    Operator {
        op: Op::Gt,
        name: "gt",
        aliases: &["is greater than", ">"],
        arity: Arity::One,
        families: ORDERED,
        ignore_case: false,
        evaluator: Evaluator::Ranges,
        meaning: "Strictly greater than value. Numbers, dates, timestamps, strings (byte order).",
    },
    Operator {
        op: Op::Gte,
        name: "gte",
        aliases: &["is greater than or equal", ">="],
        arity: Arity::One,
        families: ORDERED,
        ignore_case: false,
        evaluator: Evaluator::Ranges,
        meaning: "Greater than or equal to value. Numbers, dates, timestamps, strings (byte order).",
    },
    Operator {
        op: Op::Lt,
        name: "lt",
        aliases: &["is less than", "<"],
        arity: Arity::One,
        families: ORDERED,
        ignore_case: false,
        evaluator: Evaluator::Ranges,
        meaning: "Strictly less than value. Numbers, dates, timestamps, strings (byte order).",
    },
    Operator {
        op: Op::Lte,
        name: "lte",
        aliases: &["is less than or equal", "<="],
        arity: Arity::One,
        families: ORDERED,
        ignore_case: false,
        evaluator: Evaluator::Ranges,
        meaning: "Less than or equal to value. Numbers, dates, timestamps, strings (byte order).",
    },
    Operator {
        op: Op::Between,
        name: "between",
        aliases: &["is between"],
        arity: Arity::Two,
        families: ORDERED,
        ignore_case: false,
        evaluator: Evaluator::Ranges,
        meaning: "Inclusive range: values = [low, high] (exactly two). Numbers, dates, timestamps, strings.",
    },
    Operator {
        op: Op::Exists,
        name: "exists",
        aliases: &[],
        arity: Arity::None,
        families: &[S, N, B, D, T, L, O],
        ignore_case: false,
        evaluator: Evaluator::Ranges,
        meaning: "True when the attribute is present (not null). Takes no value.",
    },
    Operator {
        op: Op::NotExists,
        name: "not_exists",
        aliases: &["doesn't exist", "does not exist"],
        arity: Arity::None,
        families: &[S, N, B, D, T, L, O],
        ignore_case: false,
        evaluator: Evaluator::Ranges,
        meaning: "True exactly when the attribute is missing (null): the only operator that is true on a missing value. Takes no value.",
    },
    Operator {
        op: Op::IsTrue,
        name: "is_true",
        aliases: &["is true"],
        arity: Arity::None,
        families: &[B],
        ignore_case: false,
        evaluator: Evaluator::DataFusion,
        meaning: "Boolean column is true. Takes no value.",
    },
    Operator {
        op: Op::IsFalse,
        name: "is_false",
        aliases: &["is false"],
        arity: Arity::None,
        families: &[B],
        ignore_case: false,
        evaluator: Evaluator::DataFusion,
        meaning: "Boolean column is false (a missing value is not false). Takes no value.",
    },
    Operator {
        op: Op::WithinLast,
        name: "within_last",
        aliases: &["is in the last"],
        arity: Arity::One,
        families: TEMPORAL,
        ignore_case: false,
        evaluator: Evaluator::Ranges,
        meaning: "Date/timestamp within a window ending at as_of: as_of - window <= value <= as_of. value is a window such as \"30d\" (units h, d, w).",
    },
    Operator {
        op: Op::NotWithinLast,
        name: "not_within_last",
        aliases: &["is not in the last"],
        arity: Arity::One,
        families: TEMPORAL,
        ignore_case: false,
        evaluator: Evaluator::Ranges,
        meaning: "Date/timestamp older than the window: value < as_of - window. value is a window such as \"180d\". False for a missing value.",
    },
    Operator {
        op: Op::Before,
        name: "before",
        aliases: &["is before"],
        arity: Arity::One,
        families: TEMPORAL,
        ignore_case: false,
        evaluator: Evaluator::Ranges,
        meaning: "Date/timestamp strictly before value: a date 2026-01-31 (its UTC midnight) or an RFC 3339 timestamp.",
    },
    Operator {
        op: Op::After,
        name: "after",
        aliases: &["is after"],
        arity: Arity::One,
        families: TEMPORAL,
        ignore_case: false,
        evaluator: Evaluator::Ranges,
        meaning: "Date/timestamp strictly after value: a date 2026-01-31 (its UTC midnight) or an RFC 3339 timestamp.",
    },
    Operator {
        op: Op::On,
        name: "on",
        aliases: &["is on"],
        arity: Arity::One,
        families: TEMPORAL,
        ignore_case: false,
        evaluator: Evaluator::Ranges,
        meaning: "Date/timestamp on the same UTC calendar day as value (a date or an RFC 3339 timestamp).",
    },
    Operator {
        op: Op::InGroup,
        name: "in_group",
        aliases: &["in group"],
        arity: Arity::One,
        families: &[],
        ignore_case: false,
        evaluator: Evaluator::Bitmaps,
        meaning: "Member of another group (its final membership, after static overrides). value is the group id: the other definition's file stem. No attribute.",
    },
    Operator {
        op: Op::NotInGroup,
        name: "not_in_group",
        aliases: &["not in group"],
        arity: Arity::One,
        families: &[],
        ignore_case: false,
        evaluator: Evaluator::Bitmaps,
        meaning: "Not a member of another group. value is the group id (file stem). No attribute.",
    },
];

// One entry per variant: the last variant's index is the table's last.
const _: () = assert!(OPERATORS.len() == Op::NotInGroup as usize + 1);

impl Op {
    /// Its entry in the registry.
    pub fn info(self) -> &'static Operator {
        // OPERATORS lists the variants in declaration order (checked below and by
        // `every_operator_has_one_entry_and_spellings_are_unique`).
        &OPERATORS[self as usize]
    }

    /// Parses an operator name or alias, case-insensitively, ignoring surrounding blanks.
    pub fn parse(text: &str) -> Option<Op> {
        let wanted = text.trim().to_lowercase().replace('’', "'");
        OPERATORS
            .iter()
            .find(|o| o.name == wanted || o.aliases.contains(&&*wanted))
            .map(|o| o.op)
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Every spelling (canonical first) of every operator; used for "did you mean".
    pub fn all_spellings() -> impl Iterator<Item = &'static str> {
        OPERATORS
            .iter()
            .flat_map(|o| std::iter::once(o.name).chain(o.aliases.iter().copied()))
    }

    /// How many values the operator takes.
    pub fn arity(self) -> Arity {
        self.info().arity
    }

    /// Whether `ignore_case` applies to the operator.
    pub fn accepts_ignore_case(self) -> bool {
        self.info().ignore_case
    }

    /// Whether the operator applies to a column of `family`.
    pub fn applies_to(self, family: Family) -> bool {
        self.info().families.contains(&family)
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
        for o in OPERATORS {
            assert_eq!(Op::parse(o.name), Some(o.op));
            assert_eq!(Op::parse(&o.name.to_uppercase()), Some(o.op));
            for alias in o.aliases {
                assert_eq!(Op::parse(alias), Some(o.op), "{alias}");
                assert_eq!(Op::parse(&alias.to_uppercase()), Some(o.op), "{alias}");
            }
        }
        assert_eq!(Op::parse("doesn’t exist"), Some(Op::NotExists));
        assert_eq!(Op::parse("equal"), None);
        assert_eq!(Op::parse("=="), None);
    }

    #[test]
    fn every_operator_has_one_entry_and_spellings_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (i, o) in OPERATORS.iter().enumerate() {
            assert_eq!(o.op as usize, i, "{} is out of order", o.name);
            for spelling in std::iter::once(o.name).chain(o.aliases.iter().copied()) {
                assert!(seen.insert(spelling), "'{spelling}' names two operators");
            }
            // Group references apply to no column; every other operator to some.
            assert_eq!(
                o.families.is_empty(),
                o.evaluator == Evaluator::Bitmaps,
                "{}",
                o.name
            );
            assert!(
                !o.ignore_case || o.families.contains(&Family::String),
                "{}",
                o.name
            );
        }
    }
}
