//! Behavioural conditions (SPEC §3.4): event tables, per-customer aggregates, and the one
//! aggregate query per event table that joins them onto the customers scan.
//!
//! Every distinct aggregate (table, function, column, filter) becomes one column of the
//! joined customers table; a condition is then an ordinary comparison on that column, so
//! it shares the single scan, the interning and the bitmap algebra of every other
//! condition. Customers without matching events get 0 for count / count_distinct / sum
//! and a missing value otherwise (so the null rule applies).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::logical_expr::Expr;

use super::attribute::{self, ColumnKind};
use super::ConditionError;
use crate::definition::{
    did_you_mean, Aggregate, AttributeCondition, EventCondition, Literal, Op, Operand,
};
use crate::Result;

/// Where an event table is: `[events.<name>]` in `cohort.toml`, `--events name=url`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventConfig {
    /// Table URL.
    pub url: String,
    /// Customer id column (default: the customers' id column name).
    pub id_column: Option<String>,
    /// Time column (default: the table's only timestamp column).
    pub time_column: Option<String>,
}

/// Why an event table has no time column of its own choosing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NoTimeColumn {
    /// No timestamp column at all.
    #[error("has no timestamp column; set time_column")]
    None,
    /// More than one: which one is meant must be said.
    #[error("has {} timestamp columns ({}); set time_column", .0.len(), .0.join(", "))]
    Many(Vec<String>),
}

/// An event table, resolved: where it is, its schema, and its id and time columns.
#[derive(Debug, Clone)]
pub(crate) struct EventTable {
    /// Its name in definitions.
    pub name: String,
    /// Its Parquet schema.
    pub schema: Arc<Schema>,
    /// The customer id column.
    pub id_column: String,
    /// The time column, or why there is none.
    pub time_column: std::result::Result<String, NoTimeColumn>,
    /// Its rows, when the Parquet footers give them (for progress).
    pub rows: Option<u64>,
    /// The table as opened (its files listed and footers read once).
    pub frame: datafusion::prelude::DataFrame,
}

/// Event tables by name.
pub(crate) type EventTables = BTreeMap<String, EventTable>;

/// One per-customer aggregate, computed once however many conditions use it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct EventAggregate {
    /// The event table.
    pub table: String,
    /// The function.
    pub aggregate: Aggregate,
    /// The aggregated expression's input column (the time column for first / last).
    pub column: Option<String>,
    /// The type `column` is cast to before aggregating (sum and avg), if any.
    pub input: Option<DataType>,
    /// Which events count: `where` and the window, never NULL.
    pub filter: Option<Expr>,
    /// The type of the per-customer value.
    pub output: DataType,
}

/// The column an aggregate becomes in the joined customers table.
pub(crate) fn alias(index: usize) -> String {
    format!("__events_{index}")
}

/// Checks a condition against its table and returns its aggregate and the comparison on it.
pub(crate) fn compile(
    condition: &EventCondition,
    tables: &EventTables,
    customers_id_type: Option<&DataType>,
    as_of: DateTime<Utc>,
) -> std::result::Result<(EventAggregate, AttributeCondition), ConditionError> {
    let Some(table) = tables.get(&condition.table) else {
        let hint =
            did_you_mean(&condition.table, tables.keys().map(String::as_str)).or_else(|| {
                Some(format!(
                    "name it with --events {}=<url> or [events.{}] in cohort.toml",
                    condition.table, condition.table
                ))
            });
        return Err((format!("unknown event table '{}'", condition.table), hint));
    };
    let field_type = |column: &str| -> std::result::Result<DataType, ConditionError> {
        table
            .schema
            .field_with_name(column)
            .map(|f| f.data_type().clone())
            .map_err(|_| {
                let names = table.schema.fields().iter().map(|f| f.name().as_str());
                (
                    format!("unknown column '{column}' in event table '{}'", table.name),
                    did_you_mean(column, names),
                )
            })
    };
    let time_column = table
        .time_column
        .clone()
        .map_err(|why| (format!("event table '{}' {why}", table.name), None))?;
    let time_type = field_type(&time_column)?;
    if !matches!(ColumnKind::of(&time_type), ColumnKind::Temporal { .. }) {
        return Err((
            format!(
                "time column '{time_column}' of event table '{}' is {time_type}, not a date or timestamp",
                table.name
            ),
            None,
        ));
    }
    let id_type = field_type(&table.id_column).map_err(|(m, h)| {
        (
            format!("{m} (its customer id column)"),
            h.or_else(|| Some(format!("set [events.{}] id_column", table.name))),
        )
    })?;
    if let Some(customers) = customers_id_type {
        let text = |t: &DataType| ColumnKind::of(t) == ColumnKind::String;
        if text(customers) != text(&id_type) {
            return Err((
                format!(
                    "customer ids of event table '{}' ('{}', {id_type}) cannot match the customers' ({customers})",
                    table.name, table.id_column
                ),
                None,
            ));
        }
    }

    // Which events count: `where`, then the window.
    let mut filters = Vec::new();
    for f in &condition.filters {
        let data_type = field_type(&f.attribute)?;
        filters.push(attribute::compile(f, &data_type, as_of)?.is_true());
    }
    let on_time = |op: Op, value: Literal| -> std::result::Result<Expr, ConditionError> {
        let window = AttributeCondition {
            attribute: time_column.clone(),
            op,
            operand: Operand::One(value),
            ignore_case: false,
        };
        Ok(attribute::compile(&window, &time_type, as_of)?.is_true())
    };
    if let Some(w) = &condition.within_last {
        filters.push(on_time(Op::WithinLast, Literal::Str(w.to_string()))?);
    }
    if let Some(b) = &condition.before {
        filters.push(on_time(Op::Before, b.clone())?);
    }
    if let Some(a) = &condition.after {
        filters.push(on_time(Op::After, a.clone())?);
    }
    let filter = filters.into_iter().reduce(Expr::and);

    let aggregate = condition.aggregate;
    let (column, input, output) = match aggregate {
        Aggregate::Count => (None, None, DataType::Int64),
        Aggregate::First | Aggregate::Last => {
            if let Some(c) = &condition.column {
                if *c != time_column {
                    return Err((
                        format!(
                            "aggregate '{aggregate}' reads the time column '{time_column}', not '{c}'"
                        ),
                        Some("leave out 'column', or use min / max of it".into()),
                    ));
                }
            }
            (Some(time_column.clone()), None, time_type.clone())
        }
        _ => {
            let c = condition.column.clone().unwrap_or_default();
            let data_type = field_type(&c)?;
            let kind = ColumnKind::of(&data_type);
            let numeric = matches!(kind, ColumnKind::Integer | ColumnKind::Float);
            let (input, output) = match aggregate {
                Aggregate::CountDistinct => (None, DataType::Int64),
                Aggregate::Sum if kind == ColumnKind::Integer => {
                    (Some(DataType::Int64), DataType::Int64)
                }
                // A sum of integers is exact in f64 up to 2^53, so the mean is one
                // correctly rounded division, whatever the order.
                Aggregate::Avg if kind == ColumnKind::Integer => {
                    (Some(DataType::Float64), DataType::Float64)
                }
                Aggregate::Sum | Aggregate::Avg if numeric => {
                    let input = exact_input(&data_type);
                    let output = exact_output(aggregate, &input).map_err(|e| {
                        (
                            format!("aggregate '{aggregate}' cannot apply to '{c}': {e}"),
                            None,
                        )
                    })?;
                    (Some(input), output)
                }
                Aggregate::Min | Aggregate::Max
                    if numeric
                        || matches!(kind, ColumnKind::String | ColumnKind::Temporal { .. }) =>
                {
                    (None, data_type.clone())
                }
                _ => {
                    return Err((
                        format!(
                            "aggregate '{aggregate}' cannot apply to '{c}' of type {data_type}"
                        ),
                        Some(match aggregate {
                            Aggregate::Sum | Aggregate::Avg => "it needs a numeric column".into(),
                            _ => "it needs a number, string, date or timestamp column".into(),
                        }),
                    ))
                }
            };
            (Some(c), input, output)
        }
    };
    let mut comparison = condition.comparison.clone();
    comparison.attribute = aggregate.name().to_string();
    // Type-check the comparison now, so its errors name the aggregate, not a hidden column.
    attribute::compile(&comparison, &output, as_of)?;
    Ok((
        EventAggregate {
            table: table.name.clone(),
            aggregate,
            column,
            input,
            filter,
            output,
        },
        comparison,
    ))
}

/// Floats are summed as this fixed-point decimal: each value rounded to 10 decimal
/// places, then integer additions, which give the same bits in any order (a float sum
/// depends on the order of its additions, hence on partitions, batches and threads).
/// |value| < 10^18; the sum, Decimal128(38, 10), cannot overflow below 1.7 × 10^10
/// such values per customer. See docs/decisions.md.
pub(crate) const FLOAT_SUM_TYPE: DataType = DataType::Decimal128(28, 10);

/// The type a float or decimal column is summed in: decimals as they are.
fn exact_input(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => data_type.clone(),
        _ => FLOAT_SUM_TYPE,
    }
}

/// What DataFusion's sum / avg return for an exact (decimal) input.
fn exact_output(aggregate: Aggregate, input: &DataType) -> Result<DataType> {
    let udaf = match aggregate {
        Aggregate::Avg => datafusion::functions_aggregate::average::avg_udaf(),
        _ => datafusion::functions_aggregate::sum::sum_udaf(),
    };
    Ok(udaf.return_type(std::slice::from_ref(input))?)
}
