//! One attribute condition → a DataFusion `Expr`, type-checked against the column.
//!
//! The returned expression may be NULL for a missing value; the caller wraps it in
//! `IS TRUE`, which is exactly SPEC §2.1's rule that a condition on a null is false.

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::functions::expr_fn::{contains, ends_with, lower, starts_with};
use datafusion::functions_nested::expr_fn::{array_has_any, make_array};
use std::ops::Not;

use datafusion::logical_expr::{lit, Expr};
use datafusion::prelude::Column;
use datafusion::scalar::ScalarValue;

use super::compare::{comparison, Compares, Plain};
use super::decimal::{self, DecimalColumn};
use super::tree;
use super::{shape_mismatch, Cmp, ConditionError};
use crate::definition::{
    as_of_nanos, parse_instant, AttributeCondition, Family, Literal, Op, Operand, Window,
};

const NANOS_PER_DAY: i128 = 86_400 * 1_000_000_000;

/// What kind of values a column holds, as far as operators care.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ColumnKind {
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
    pub(crate) fn of(data_type: &DataType) -> ColumnKind {
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
    pub(crate) fn name(&self) -> String {
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

    /// The family a form picks operators by, and the registry lists them under.
    pub(crate) fn family(&self) -> Family {
        match self {
            ColumnKind::String => Family::String,
            ColumnKind::Integer | ColumnKind::Float => Family::Number,
            ColumnKind::Boolean => Family::Boolean,
            ColumnKind::Temporal { data_type, .. } => match data_type {
                DataType::Date32 | DataType::Date64 => Family::Date,
                _ => Family::Timestamp,
            },
            ColumnKind::StringList => Family::List,
            ColumnKind::Other(_) => Family::Other,
        }
    }

    /// Whether `op` applies to a column of this kind (the registry's families; group
    /// references never do).
    pub(crate) fn allows(&self, op: Op) -> bool {
        op.applies_to(self.family())
    }
}

/// Compiles an attribute condition over a column of type `data_type`.
pub(crate) fn compile(
    cond: &AttributeCondition,
    data_type: &DataType,
    as_of: DateTime<Utc>,
) -> Result<Expr, ConditionError> {
    let kind = ColumnKind::of(data_type);
    let AttributeCondition {
        attribute,
        op,
        operand,
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
            temporal(&t, op, operand, as_of, attribute)
        }
        ColumnKind::StringList => {
            let strings = operand.try_map(|v| string(v).ok_or_else(|| wrong_type(v)))?;
            let Operand::List(strings) = strings else {
                return Err(shape_mismatch(op, attribute));
            };
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
            let strings = operand.try_map(|v| string(v).ok_or_else(|| wrong_type(v)))?;
            let fold = |s: &String| -> Result<Expr, ConditionError> {
                Ok(lit(if *ignore_case {
                    s.to_lowercase()
                } else {
                    s.clone()
                }))
            };
            let lits = strings.try_map(fold)?;
            let column = if *ignore_case { lower(column) } else { column };
            scalar(column, op, lits, attribute)
        }
        ColumnKind::Float => match DecimalColumn::of(column.clone(), data_type) {
            Some(decimal) => decimal::compile(&decimal, attribute, op, operand, wrong_type),
            None => scalar(
                column,
                op,
                operand.try_map(|v| number(v).ok_or_else(|| wrong_type(v)))?,
                attribute,
            ),
        },
        ColumnKind::Integer => {
            let lits = operand.try_map(|v| number(v).ok_or_else(|| wrong_type(v)))?;
            scalar(column, op, lits, attribute)
        }
        ColumnKind::Boolean => {
            let lits = operand.try_map(|v| match v {
                Literal::Bool(b) => Ok(lit(*b)),
                other => Err(wrong_type(other)),
            })?;
            scalar(column, op, lits, attribute)
        }
        // `allows` admitted only exists / not_exists here, compiled above.
        ColumnKind::Other(_) => Err(shape_mismatch(op, attribute)),
    }
}

fn string(value: &Literal) -> Option<String> {
    match value {
        Literal::Str(s) => Some(s.clone()),
        _ => None,
    }
}

fn number(value: &Literal) -> Option<Expr> {
    match value {
        Literal::Int(i) => Some(lit(*i)),
        Literal::Float(x) => Some(lit(*x)),
        _ => None,
    }
}

/// Operators over plain scalar literals (strings, numbers, booleans).
fn scalar(
    column: Expr,
    op: Op,
    operand: Operand<Expr>,
    attribute: &str,
) -> Result<Expr, ConditionError> {
    if let Some(compared) = comparison(&Plain(column.clone()), op, operand.clone()) {
        return Ok(compared);
    }
    // Balanced: a list of 5,000 suffixes must not be 5,000 levels deep.
    let any = |lits: Vec<Expr>, f: &dyn Fn(Expr, Expr) -> Expr| {
        tree::any(lits.into_iter().map(|l| f(column.clone(), l)).collect()).unwrap_or(lit(false))
    };
    Ok(match (op, operand) {
        (Op::Contains, Operand::List(lits)) => any(lits, &|c, l| contains(c, l)),
        (Op::NotContains, Operand::List(lits)) if lits.is_empty() => column.is_not_null(),
        (Op::NotContains, Operand::List(lits)) => any(lits, &|c, l| contains(c, l)).not(),
        (Op::StartsWith, Operand::List(lits)) => any(lits, &|c, l| starts_with(c, l)),
        (Op::EndsWith, Operand::List(lits)) => any(lits, &|c, l| ends_with(c, l)),
        (op, _) => return Err(shape_mismatch(op, attribute)),
    })
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
            // `ColumnKind::of` makes temporal columns of dates and timestamps only: the
            // rest is Date64 (milliseconds).
            _ => ScalarValue::Date64(Some(v)),
        })
    }

    fn range(&self, from: i128, to_inclusive: i128) -> Expr {
        self.compare(Cmp::Gte, from)
            .and(self.compare(Cmp::Lte, to_inclusive))
    }
}

impl Compares<i128> for TemporalColumn {
    fn present(&self) -> Expr {
        self.column.clone().is_not_null()
    }

    /// `value <cmp> instant`, where the column's value stands for the instant `v * unit`.
    /// Rounding the instant to whole units keeps the comparison exact.
    fn compare(&self, cmp: Cmp, instant: i128) -> Expr {
        let unit = self.nanos_per_unit;
        let floor = instant.div_euclid(unit);
        let ceil = -(-instant).div_euclid(unit);
        let c = self.column.clone();
        match cmp {
            Cmp::Lt => c.lt(self.literal(ceil)),
            Cmp::Lte => c.lt_eq(self.literal(floor)),
            Cmp::Gt => c.gt(self.literal(floor)),
            Cmp::Gte => c.gt_eq(self.literal(ceil)),
            Cmp::Eq if instant.rem_euclid(unit) == 0 => c.eq(self.literal(floor)),
            // No stored value can equal an instant between two units.
            Cmp::Eq => lit(false),
        }
    }
}

fn temporal(
    t: &TemporalColumn,
    op: Op,
    operand: &Operand,
    as_of: DateTime<Utc>,
    attribute: &str,
) -> Result<Expr, ConditionError> {
    if matches!(op, Op::WithinLast | Op::NotWithinLast) {
        let window = match operand {
            Operand::One(Literal::Str(s)) => Window::parse(s).ok_or_else(|| bad_window(s))?,
            Operand::One(other) => return Err(bad_window(&other.to_string())),
            _ => return Err(shape_mismatch(op, attribute)),
        };
        let as_of_ns = as_of_nanos(as_of).map_err(|e| (e.to_string(), None))?;
        let start = window.before(as_of_ns).ok_or_else(|| {
            (
                format!(
                    "window '{window}' before as_of {} starts before 1677-09-22, the earliest \
                     instant that can be compared",
                    as_of.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                ),
                Some("use a shorter window or a later --as-of".into()),
            )
        })?;
        let (start, as_of_ns) = (start as i128, as_of_ns as i128);
        return Ok(if op == Op::WithinLast {
            t.range(start, as_of_ns)
        } else {
            t.compare(Cmp::Lt, start)
        });
    }
    let instants = operand.try_map(|v| {
        parse_instant(v).ok_or_else(|| {
            (
                format!(
                    "value {v} for '{attribute}' is not a date (YYYY-MM-DD) or an RFC 3339 timestamp"
                ),
                Some("dates between 1677-09-22 and 2262-04-11 can be compared".into()),
            )
        })
    })?;
    Ok(match (op, instants) {
        (Op::On, Operand::One(i)) => {
            let day = i.div_euclid(NANOS_PER_DAY) * NANOS_PER_DAY;
            t.range(day, day + NANOS_PER_DAY - 1)
        }
        (op, instants) => {
            comparison(t, op, instants).ok_or_else(|| shape_mismatch(op, attribute))?
        }
    })
}

fn bad_window(text: &str) -> ConditionError {
    (
        format!("bad window '{text}'"),
        Some("write a whole number followed by h, d or w, e.g. '30d'".into()),
    )
}
