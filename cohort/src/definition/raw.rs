//! The on-disk shape of a group file (TOML or JSON), deserialized with serde before any typing.
//!
//! Unknown keys are not refused here: serde skips them, and `load` reports each one at
//! its key with "did you mean" (one typo must not hide the file's other problems). The
//! `*_KEYS` lists are what `load` checks against; a test holds them to the fields.

use serde::Deserialize;

/// A group file as written.
#[derive(Debug, Deserialize)]
pub struct RawGroup {
    /// Display name.
    pub name: Option<String>,
    /// What the group is for.
    pub description: Option<String>,
    /// Include clauses (OR-ed).
    #[serde(default)]
    pub include: Vec<RawClause>,
    /// Exclude clauses (OR-ed).
    #[serde(default)]
    pub exclude: Vec<RawClause>,
    /// `[static]` overrides.
    #[serde(rename = "static", default)]
    pub statics: RawStatic,
}

/// The keys a group file may have at its top level.
pub const GROUP_KEYS: &[&str] = &["name", "description", "include", "exclude", "static"];

/// `[[include]]` / `[[exclude]]` as written.
#[derive(Debug, Deserialize)]
pub struct RawClause {
    /// `match = "all" | "any"`.
    #[serde(rename = "match")]
    pub mode: Option<String>,
    /// The clause's conditions.
    #[serde(default = "Vec::new")]
    pub conditions: Vec<RawCondition>,
}

/// The keys a clause may have.
pub const CLAUSE_KEYS: &[&str] = &["match", "conditions"];

/// `[static]` as written.
#[derive(Debug, Default, Deserialize)]
pub struct RawStatic {
    /// Ids always in the group (unless excluded).
    #[serde(default)]
    pub include: Vec<IdLiteral>,
    /// Ids never in the group.
    #[serde(default)]
    pub exclude: Vec<IdLiteral>,
    /// A CSV or Parquet file of ids to include.
    pub include_from: Option<String>,
    /// A CSV or Parquet file of ids to exclude.
    pub exclude_from: Option<String>,
}

/// The keys `[static]` may have.
pub const STATIC_KEYS: &[&str] = &["include", "exclude", "include_from", "exclude_from"];

/// One condition with every key any kind of condition may use; typing decides which apply.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct RawCondition {
    /// The customers (or events) column compared.
    pub attribute: Option<String>,
    /// The operator, canonical or alias.
    pub op: Option<String>,
    /// One value.
    pub value: Option<RawValue>,
    /// Several values.
    pub values: Option<RawValues>,
    /// Case-insensitive string comparison.
    pub ignore_case: Option<bool>,
    /// An SQL escape-hatch expression.
    pub sql: Option<String>,
    /// The event table a behavioural condition aggregates.
    pub events: Option<String>,
    /// The aggregate (`count`, `sum`, ...).
    pub aggregate: Option<String>,
    /// The aggregated column.
    pub column: Option<String>,
    /// Only events within this window before `as_of`.
    pub within_last: Option<String>,
    /// Only events before this instant.
    pub before: Option<Literal>,
    /// Only events after this instant.
    pub after: Option<Literal>,
    /// Conditions on the event rows.
    #[serde(rename = "where")]
    pub where_: Option<Vec<RawCondition>>,
}

/// `value` as written: a literal, or a shape typing reports (rather than the parser
/// failing the whole file with serde's words).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawValue {
    /// One literal, as expected.
    One(Literal),
    /// A list (`value = []`): `values` was meant.
    List(Vec<serde::de::IgnoredAny>),
    /// Anything else (a table).
    Other(serde::de::IgnoredAny),
}

/// `values` as written: a list of literals, or a shape typing reports.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawValues {
    /// A list of literals, as expected.
    List(Vec<Literal>),
    /// One literal (`values = "x"`).
    One(Literal),
    /// Anything else (a table, a list of lists).
    Other(serde::de::IgnoredAny),
}

impl From<Literal> for RawValue {
    fn from(literal: Literal) -> Self {
        RawValue::One(literal)
    }
}

impl From<Vec<Literal>> for RawValues {
    fn from(list: Vec<Literal>) -> Self {
        RawValues::List(list)
    }
}

/// The keys a condition may have.
pub const CONDITION_KEYS: &[&str] = &[
    "attribute",
    "op",
    "value",
    "values",
    "ignore_case",
    "sql",
    "events",
    "aggregate",
    "column",
    "within_last",
    "before",
    "after",
    "where",
];

/// A customer id written in a static list: TOML/JSON string or integer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(untagged)]
pub enum IdLiteral {
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
}

/// A condition value as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (also dates and windows written as strings).
    Str(String),
    /// A bare TOML date or datetime (`value = 2024-01-31`).
    Date(toml::value::Datetime),
}

impl std::fmt::Display for Literal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write!(f, "{x}"),
            Literal::Str(s) => write!(f, "'{s}'"),
            Literal::Date(d) => write!(f, "{d}"),
        }
    }
}

impl Literal {
    /// The name of the literal's type, for "value of the wrong type" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Literal::Bool(_) => "boolean",
            Literal::Int(_) => "integer",
            Literal::Float(_) => "number",
            Literal::Str(_) => "string",
            Literal::Date(_) => "date",
        }
    }
}

impl std::fmt::Display for IdLiteral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdLiteral::Int(i) => write!(f, "{i}"),
            IdLiteral::Str(s) => f.write_str(s),
        }
    }
}
