//! The typed model of a group definition: groups, clauses, conditions, statics.

use std::fmt;

use super::*;

/// A parsed, shape-checked group definition.
#[derive(Debug, Clone)]
pub struct Group {
    /// The group id: the file stem.
    pub id: String,
    /// Display name (`name = ...`), if any.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// The file it came from, as given on the command line.
    pub file: String,
    /// Include clauses (OR-ed).
    pub include: Vec<Clause>,
    /// Exclude clauses (OR-ed).
    pub exclude: Vec<Clause>,
    /// Static overrides.
    pub statics: Statics,
    /// `sha256:<hex>` of the definition file's bytes.
    pub definition_hash: String,
}

/// How a clause combines its conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Match {
    /// AND; true when there are no conditions.
    All,
    /// OR; false when there are no conditions.
    Any,
}

/// One include or exclude clause.
#[derive(Debug, Clone)]
pub struct Clause {
    /// AND or OR.
    pub mode: Match,
    /// The conditions, in file order.
    pub conditions: Vec<Condition>,
    /// Where the clause is, for clause-level lints.
    pub at: Location,
}

/// A condition and where it was written.
#[derive(Debug, Clone)]
pub struct Condition {
    /// What it tests.
    pub spec: ConditionSpec,
    /// Where it is.
    pub at: Location,
}

/// The four kinds of condition of SPEC §2.2.
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionSpec {
    /// `{ attribute, op, value(s), ignore_case }`.
    Attribute(AttributeCondition),
    /// `in group` / `not in group`.
    GroupRef {
        /// The referenced group id.
        group: String,
        /// `not in group`.
        negated: bool,
    },
    /// `{ sql = "..." }`.
    Sql(String),
    /// A behavioural condition over an event table (SPEC §3.4).
    Events(Box<EventCondition>),
}

/// `{ events, aggregate, column, where, within_last / before / after, op, value }`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventCondition {
    /// The event table's name.
    pub table: String,
    /// What is computed per customer.
    pub aggregate: Aggregate,
    /// The aggregated column (count_distinct, sum, min, max, avg; optional for first/last).
    pub column: Option<String>,
    /// Conditions on the event rows, all of which must hold.
    pub filters: Vec<AttributeCondition>,
    /// Only events within this window before `as_of`.
    pub within_last: Option<super::Window>,
    /// Only events strictly before this instant.
    pub before: Option<Literal>,
    /// Only events strictly after this instant.
    pub after: Option<Literal>,
    /// The comparison of the aggregate; its `attribute` is the aggregate's name.
    pub comparison: AttributeCondition,
}

/// An attribute comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeCondition {
    /// The customers column.
    pub attribute: String,
    /// The operator.
    pub op: Op,
    /// What the operator compares with, shaped by its arity.
    pub operand: Operand,
    /// Case-insensitive string comparison.
    pub ignore_case: bool,
}

/// What an operator compares with, shaped by the operator's arity once, when the
/// definition is read (`value` or `values`, whichever spelling was used).
#[derive(Debug, Clone, PartialEq)]
pub enum Operand<T = Literal> {
    /// No value (`exists`, `is_true`, ...).
    None,
    /// One value.
    One(T),
    /// `between`: the low and high ends.
    Range(T, T),
    /// Any number of values, possibly none (`in`, `contains`, ...).
    List(Vec<T>),
}

impl<T> Operand<T> {
    /// Every value, in order.
    pub fn values(&self) -> Vec<&T> {
        match self {
            Operand::None => Vec::new(),
            Operand::One(v) => vec![v],
            Operand::Range(lo, hi) => vec![lo, hi],
            Operand::List(vs) => vs.iter().collect(),
        }
    }

    /// The same shape, each value converted by `f`; the first failure is returned.
    pub fn try_map<U, E>(&self, mut f: impl FnMut(&T) -> Result<U, E>) -> Result<Operand<U>, E> {
        Ok(match self {
            Operand::None => Operand::None,
            Operand::One(v) => Operand::One(f(v)?),
            Operand::Range(lo, hi) => Operand::Range(f(lo)?, f(hi)?),
            Operand::List(vs) => Operand::List(vs.iter().map(f).collect::<Result<_, _>>()?),
        })
    }
}

/// Static overrides of a group.
#[derive(Debug, Clone, Default)]
pub struct Statics {
    /// Always members (unless excluded).
    pub include: Vec<IdLiteral>,
    /// Never members.
    pub exclude: Vec<IdLiteral>,
    /// A CSV or Parquet file of ids to include.
    pub include_from: Option<String>,
    /// A CSV or Parquet file of ids to exclude.
    pub exclude_from: Option<String>,
}

impl Statics {
    /// Whether the group has any static override at all.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty()
            && self.exclude.is_empty()
            && self.include_from.is_none()
            && self.exclude_from.is_none()
    }
}

/// The event tables named by any condition of `groups`.
pub fn event_tables(groups: &[Group]) -> std::collections::BTreeSet<String> {
    groups
        .iter()
        .flat_map(|g| g.include.iter().chain(&g.exclude))
        .flat_map(|c| &c.conditions)
        .filter_map(|c| match &c.spec {
            ConditionSpec::Events(e) => Some(e.table.clone()),
            _ => None,
        })
        .collect()
}

impl fmt::Display for ConditionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConditionSpec::Attribute(a) => {
                write!(f, "{} {}", a.attribute, a.op)?;
                match &a.operand {
                    Operand::None => Ok(()),
                    Operand::One(v) => write!(f, " {v}"),
                    vs => {
                        let list: Vec<String> = vs.values().iter().map(|v| v.to_string()).collect();
                        write!(f, " [{}]", list.join(", "))
                    }
                }
            }
            ConditionSpec::GroupRef { group, negated } => {
                write!(
                    f,
                    "{} '{group}'",
                    if *negated { "not in group" } else { "in group" }
                )
            }
            ConditionSpec::Sql(sql) => write!(f, "sql '{sql}'"),
            ConditionSpec::Events(e) => {
                write!(f, "{}", e.aggregate)?;
                if let Some(column) = &e.column {
                    write!(f, "({column})")?;
                }
                write!(f, " of events '{}'", e.table)?;
                if let Some(window) = &e.within_last {
                    write!(f, " within the last {window}")?;
                }
                let c = ConditionSpec::Attribute(e.comparison.clone()).to_string();
                write!(
                    f,
                    " {}",
                    c.trim_start_matches(e.aggregate.name()).trim_start()
                )
            }
        }
    }
}
