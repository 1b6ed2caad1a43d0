//! One attribute condition → a DataFusion `Expr`, type-checked against the column.
//!
//! The returned expression may be NULL for a missing value; the caller wraps it in
//! `IS TRUE`, which is exactly SPEC §2.1's rule that a condition on a null is false.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::functions::expr_fn::{contains, ends_with, lower, starts_with};
use datafusion::functions_nested::expr_fn::{array_has_any, make_array};
use std::ops::Not;

use datafusion::logical_expr::{lit, Expr};
use datafusion::prelude::Column;
use datafusion::scalar::ScalarValue;

use super::decimal::{self, DecimalColumn};
use super::tree;
use crate::definition::{AttributeCondition, Literal, Op, Window};

const NANOS_PER_DAY: i128 = 86_400 * 1_000_000_000;

/// What kind of values a column holds, as far as operators care.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnKind {
    /// Utf8, LargeUtf8, Utf8View.
    String,
    /// Any integer.
    Integer,
    /// Floats and decimals.
    Float,
    /// Boolean.
    Boolean,
    /// Dates and timestamps: values are multiples of `nanos_per_unit` since the epoch, UTC.
    Temporal {
        /// How many nanoseconds one stored unit is.
        nanos_per_unit: i128,
        /// The exact column type, so literals are built in it and need no cast.
        data_type: DataType,
    },
    /// A list of strings.
    StringList,
    /// Anything else (only `exists` / `not_exists` apply).
    Other(DataType),
}

impl ColumnKind {
    /// Classifies an Arrow type.
    pub fn of(data_type: &DataType) -> ColumnKind {
        use DataType::*;
        let temporal = |nanos: i128| ColumnKind::Temporal {
            nanos_per_unit: nanos,
            data_type: data_type.clone(),
        };
        match data_type {
            Utf8 | LargeUtf8 | Utf8View => ColumnKind::String,
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => ColumnKind::Integer,
            Float16 | Float32 | Float64 | Decimal128(_, _) | Decimal256(_, _) => ColumnKind::Float,
            Boolean => ColumnKind::Boolean,
            Date32 => temporal(NANOS_PER_DAY),
            Date64 => temporal(1_000_000),
            Timestamp(unit, _) => temporal(match unit {
                TimeUnit::Second => 1_000_000_000,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            }),
            List(f) | LargeList(f) | ListView(f) | LargeListView(f)
                if matches!(f.data_type(), Utf8 | LargeUtf8 | Utf8View) =>
            {
                ColumnKind::StringList
            }
            Dictionary(_, value) => ColumnKind::of(value),
            other => ColumnKind::Other(other.clone()),
        }
    }

    /// How messages name it: `string`, `integer`, `number`, `date`, ...
    pub fn name(&self) -> String {
        match self {
            ColumnKind::String => "string".into(),
            ColumnKind::Integer => "integer".into(),
            ColumnKind::Float => "number".into(),
            ColumnKind::Boolean => "boolean".into(),
            ColumnKind::Temporal { data_type, .. } => match data_type {
                DataType::Date32 | DataType::Date64 => "date".into(),
                _ => "timestamp".into(),
            },
            ColumnKind::StringList => "list of strings".into(),
            ColumnKind::Other(t) => format!("{t}"),
        }
    }

    /// The coarse kind a form picks operators by: `string`, `number`, `boolean`, `date`,
    /// `timestamp`, `list` or `other`.
    pub fn family(&self) -> &'static str {
        match self {
            ColumnKind::String => "string",
            ColumnKind::Integer | ColumnKind::Float => "number",
            ColumnKind::Boolean => "boolean",
            ColumnKind::Temporal { data_type, .. } => match data_type {
                DataType::Date32 | DataType::Date64 => "date",
                _ => "timestamp",
            },
            ColumnKind::StringList => "list",
            ColumnKind::Other(_) => "other",
        }
    }

    /// Whether `op` applies to a column of this kind (group references never do).
    pub fn allows(&self, op: Op) -> bool {
        use Op::*;
        match op {
            Exists | NotExists => true,
            Equals | NotEquals | In | NotIn => {
                !matches!(self, ColumnKind::StringList | ColumnKind::Other(_))
            }
            Contains | NotContains => matches!(self, ColumnKind::String | ColumnKind::StringList),
            StartsWith | EndsWith => matches!(self, ColumnKind::String),
            Gt | Gte | Lt | Lte | Between => matches!(
                self,
                ColumnKind::String
                    | ColumnKind::Integer
                    | ColumnKind::Float
                    | ColumnKind::Temporal { .. }
            ),
            IsTrue | IsFalse => matches!(self, ColumnKind::Boolean),
            WithinLast | NotWithinLast | Before | After | On => {
                matches!(self, ColumnKind::Temporal { .. })
            }
            InGroup | NotInGroup => false,
        }
    }
}

/// A problem with one condition: message plus optional hint. Location is added by the caller.
pub type ConditionError = (String, Option<String>);

/// Compiles an attribute condition over a column of type `data_type`.
pub fn compile(
    cond: &AttributeCondition,
    data_type: &DataType,
    as_of: DateTime<Utc>,
) -> Result<Expr, ConditionError> {
    let kind = ColumnKind::of(data_type);
    let AttributeCondition {
        attribute,
        op,
        values,
        ignore_case,
    } = cond;
    let op = *op;
    if !kind.allows(op) {
        return Err((
            format!(
                "operator '{op}' is not valid for '{attribute}' of type {}",
                kind.name()
            ),
            None,
        ));
    }
    if *ignore_case && !matches!(kind, ColumnKind::String) {
        return Err((
            format!(
                "ignore_case applies to string columns; '{attribute}' is {}",
                kind.name()
            ),
            None,
        ));
    }
    let column = Expr::Column(Column::new_unqualified(attribute));
    match op {
        Op::Exists => return Ok(column.is_not_null()),
        Op::NotExists => return Ok(column.is_null()),
        Op::IsTrue => return Ok(column.is_true()),
        Op::IsFalse => return Ok(column.is_false()),
        _ => {}
    }
    let wrong_type = |v: &Literal| {
        (
            format!(
                "value {v} is a {} but '{attribute}' is {}",
                v.type_name(),
                kind.name()
            ),
            None,
        )
    };
    match &kind {
        ColumnKind::Temporal {
            nanos_per_unit,
            data_type,
        } => {
            let t = TemporalColumn {
                column,
                nanos_per_unit: *nanos_per_unit,
                data_type: data_type.clone(),
            };
            temporal(&t, op, values, as_of, attribute)
        }
        ColumnKind::StringList => {
            let strings = strings(values).ok_or_else(|| wrong_type(first_non_string(values)))?;
            Ok(match (op, strings.is_empty()) {
                (Op::Contains, true) => lit(false),
                (_, true) => column.is_not_null(),
                (_, false) => {
                    let any =
                        array_has_any(column, make_array(strings.into_iter().map(lit).collect()));
                    if op == Op::NotContains {
                        any.not()
                    } else {
                        any
                    }
                }
            })
        }
        ColumnKind::String => {
            let mut strings =
                strings(values).ok_or_else(|| wrong_type(first_non_string(values)))?;
            let column = if *ignore_case {
                strings = strings.iter().map(|s| s.to_lowercase()).collect();
                lower(column)
            } else {
                column
            };
            let lits: Vec<Expr> = strings.into_iter().map(lit).collect();
            Ok(scalar(column, op, lits))
        }
        ColumnKind::Float if DecimalColumn::of(column.clone(), data_type).is_some() => {
            let decimal = DecimalColumn::of(column, data_type).expect("checked above");
            decimal::compile(&decimal, attribute, op, values, wrong_type)
        }
        ColumnKind::Integer | ColumnKind::Float => {
            let lits = values
                .iter()
                .map(|v| match v {
                    Literal::Int(i) => Ok(lit(*i)),
                    Literal::Float(x) => Ok(lit(*x)),
                    other => Err(wrong_type(other)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(scalar(column, op, lits))
        }
        ColumnKind::Boolean => {
            let lits = values
                .iter()
                .map(|v| match v {
                    Literal::Bool(b) => Ok(lit(*b)),
                    other => Err(wrong_type(other)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(scalar(column, op, lits))
        }
        ColumnKind::Other(_) => unreachable!("only exists/not_exists are allowed on other types"),
    }
}

fn strings(values: &[Literal]) -> Option<Vec<String>> {
    values
        .iter()
        .map(|v| match v {
            Literal::Str(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn first_non_string(values: &[Literal]) -> &Literal {
    values
        .iter()
        .find(|v| !matches!(v, Literal::Str(_)))
        .unwrap()
}

/// Operators over plain scalar literals (strings, numbers, booleans).
fn scalar(column: Expr, op: Op, lits: Vec<Expr>) -> Expr {
    // Balanced: a list of 5,000 suffixes must not be 5,000 levels deep.
    let any = |f: &dyn Fn(Expr, Expr) -> Expr| {
        tree::any(lits.iter().map(|l| f(column.clone(), l.clone())).collect()).unwrap_or(lit(false))
    };
    match op {
        Op::Equals => column.eq(lits[0].clone()),
        Op::NotEquals => column.not_eq(lits[0].clone()),
        Op::In if lits.is_empty() => lit(false),
        // `x NOT IN ()` is true for every present value, and still false for a missing one.
        Op::NotIn if lits.is_empty() => column.is_not_null(),
        Op::In => column.in_list(lits, false),
        Op::NotIn => column.in_list(lits, true),
        Op::Contains => any(&|c, l| contains(c, l)),
        Op::NotContains => {
            let hit = any(&|c, l| contains(c, l));
            if lits.is_empty() {
                column.is_not_null()
            } else {
                hit.not()
            }
        }
        Op::StartsWith => any(&|c, l| starts_with(c, l)),
        Op::EndsWith => any(&|c, l| ends_with(c, l)),
        Op::Gt => column.gt(lits[0].clone()),
        Op::Gte => column.gt_eq(lits[0].clone()),
        Op::Lt => column.lt(lits[0].clone()),
        Op::Lte => column.lt_eq(lits[0].clone()),
        Op::Between => column
            .clone()
            .gt_eq(lits[0].clone())
            .and(column.lt_eq(lits[1].clone())),
        other => unreachable!("operator {other} is not a scalar comparison"),
    }
}

/// A date or timestamp column: stored values are `v` units of `nanos_per_unit` since the epoch.
struct TemporalColumn {
    column: Expr,
    nanos_per_unit: i128,
    data_type: DataType,
}

impl TemporalColumn {
    fn literal(&self, units: i128) -> Expr {
        let v = units.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        lit(match &self.data_type {
            DataType::Date32 => {
                ScalarValue::Date32(Some(v.clamp(i32::MIN as i64, i32::MAX as i64) as i32))
            }
            DataType::Date64 => ScalarValue::Date64(Some(v)),
            DataType::Timestamp(TimeUnit::Second, tz) => {
                ScalarValue::TimestampSecond(Some(v), tz.clone())
            }
            DataType::Timestamp(TimeUnit::Millisecond, tz) => {
                ScalarValue::TimestampMillisecond(Some(v), tz.clone())
            }
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                ScalarValue::TimestampMicrosecond(Some(v), tz.clone())
            }
            DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
                ScalarValue::TimestampNanosecond(Some(v), tz.clone())
            }
            other => unreachable!("{other} is not temporal"),
        })
    }

    /// `value <op> instant`, where the column's value stands for the instant `v * unit`.
    /// Rounding the instant to whole units keeps the comparison exact.
    fn compare(&self, op: Op, instant: i128) -> Expr {
        let unit = self.nanos_per_unit;
        let floor = instant.div_euclid(unit);
        let ceil = -(-instant).div_euclid(unit);
        let c = self.column.clone();
        match op {
            Op::Lt => c.lt(self.literal(ceil)),
            Op::Lte => c.lt_eq(self.literal(floor)),
            Op::Gt => c.gt(self.literal(floor)),
            Op::Gte => c.gt_eq(self.literal(ceil)),
            Op::Equals if instant.rem_euclid(unit) == 0 => c.eq(self.literal(floor)),
            // No stored value can equal an instant between two units.
            Op::Equals => lit(false),
            other => unreachable!("{other} is not an instant comparison"),
        }
    }

    fn range(&self, from: i128, to_inclusive: i128) -> Expr {
        self.compare(Op::Gte, from)
            .and(self.compare(Op::Lte, to_inclusive))
    }
}

fn temporal(
    t: &TemporalColumn,
    op: Op,
    values: &[Literal],
    as_of: DateTime<Utc>,
    attribute: &str,
) -> Result<Expr, ConditionError> {
    let as_of_ns = as_of.timestamp_nanos_opt().unwrap_or(i64::MAX) as i128;
    let instants = || -> Result<Vec<i128>, ConditionError> {
        values
            .iter()
            .map(|v| {
                parse_instant(v).ok_or_else(|| {
                    (
                        format!(
                            "value {v} for '{attribute}' is not a date (YYYY-MM-DD) or an RFC 3339 timestamp"
                        ),
                        Some("dates between 1677-09-22 and 2262-04-11 can be compared".into()),
                    )
                })
            })
            .collect()
    };
    let window = || -> Result<i128, ConditionError> {
        match &values[0] {
            Literal::Str(s) => Window::parse(s)
                .map(|w| w.nanos())
                .ok_or_else(|| bad_window(s)),
            other => Err(bad_window(&other.to_string())),
        }
    };
    let present = t.column.clone().is_not_null();
    Ok(match op {
        Op::WithinLast => t.range(as_of_ns - window()?, as_of_ns),
        Op::NotWithinLast => t.compare(Op::Lt, as_of_ns - window()?),
        Op::Before | Op::Lt => t.compare(Op::Lt, instants()?[0]),
        Op::After | Op::Gt => t.compare(Op::Gt, instants()?[0]),
        Op::Lte | Op::Gte => t.compare(op, instants()?[0]),
        Op::On => {
            let day = instants()?[0].div_euclid(NANOS_PER_DAY) * NANOS_PER_DAY;
            t.range(day, day + NANOS_PER_DAY - 1)
        }
        Op::Between => {
            let v = instants()?;
            t.range(v[0], v[1])
        }
        Op::Equals => t.compare(Op::Equals, instants()?[0]),
        // NOT(x = t) is NULL for a missing x, which IS TRUE turns into false.
        Op::NotEquals => present.and(t.compare(Op::Equals, instants()?[0]).not()),
        Op::In => tree::any(
            instants()?
                .into_iter()
                .map(|i| t.compare(Op::Equals, i))
                .collect(),
        )
        .unwrap_or(lit(false)),
        Op::NotIn => {
            let mut terms = vec![present];
            terms.extend(
                instants()?
                    .into_iter()
                    .map(|i| t.compare(Op::Equals, i).not()),
            );
            tree::all(terms).expect("one term at least")
        }
        other => unreachable!("{other} is not a temporal operator"),
    })
}

fn bad_window(text: &str) -> ConditionError {
    (
        format!("bad window '{text}'"),
        Some("write a whole number followed by h, d or w, e.g. '30d'".into()),
    )
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

    #[test]
    fn instants() {
        let s = |t: &str| parse_instant(&Literal::Str(t.into()));
        assert_eq!(s("1970-01-02"), Some(NANOS_PER_DAY));
        assert_eq!(s("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(s("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(s("yesterday"), None);
    }
}
