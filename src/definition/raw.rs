//! The on-disk shape of a group file (TOML or JSON), deserialized with serde before any typing.

use serde::Deserialize;

/// A group file as written. `C` is the condition type: `toml::Spanned<RawCondition>` for
/// TOML (so problems can name a line) and plain [`RawCondition`] for JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "C: Deserialize<'de>"))]
pub struct RawGroup<C> {
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub include: Vec<RawClause<C>>,
    #[serde(default)]
    pub exclude: Vec<RawClause<C>>,
    #[serde(rename = "static", default)]
    pub statics: RawStatic,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "C: Deserialize<'de>"))]
pub struct RawClause<C> {
    #[serde(rename = "match")]
    pub mode: Option<String>,
    #[serde(default = "Vec::new")]
    pub conditions: Vec<C>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatic {
    #[serde(default)]
    pub include: Vec<IdLiteral>,
    #[serde(default)]
    pub exclude: Vec<IdLiteral>,
    pub include_from: Option<String>,
    pub exclude_from: Option<String>,
}

/// One condition with every key any kind of condition may use; typing decides which apply.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    pub attribute: Option<String>,
    pub op: Option<String>,
    pub value: Option<Literal>,
    pub values: Option<Vec<Literal>>,
    pub ignore_case: Option<bool>,
    pub sql: Option<String>,
    pub events: Option<String>,
    pub aggregate: Option<String>,
    pub column: Option<String>,
    pub within_last: Option<String>,
    pub before: Option<Literal>,
    pub after: Option<Literal>,
    #[serde(rename = "where")]
    pub where_: Option<Vec<RawCondition>>,
}

/// A customer id written in a static list: TOML/JSON string or integer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(untagged)]
pub enum IdLiteral {
    Int(i64),
    Str(String),
}

/// A condition value as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    Bool(bool),
    Int(i64),
    Float(f64),
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
