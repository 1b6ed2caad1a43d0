//! Event tables at evaluation time: opening them, and the one aggregate query per table
//! whose per-customer values are joined onto the customers scan (SPEC §3.4).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use cohort_snapshot::Stores;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::functions_aggregate::expr_fn::{avg, bit_or, count, count_distinct, max, min, sum};
use datafusion::logical_expr::{bitwise_and, bitwise_shift_right, cast, lit, when, Expr, JoinType};
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::scalar::ScalarValue;

use crate::compile::attribute;
use crate::compile::col_exact;
use crate::compile::events::{
    alias, EventAggregate, EventConfig, EventTable, EventTables, NoTimeColumn,
};
use crate::definition::{Aggregate, AttributeCondition, Literal, Op, Operand};
use crate::{Error, Result};

/// Opens the named event tables (Parquet metadata only) and resolves their columns.
pub(crate) async fn resolve(
    ctx: &SessionContext,
    stores: &Stores,
    configured: &BTreeMap<String, EventConfig>,
    names: impl IntoIterator<Item = String>,
    customers_id_column: &str,
) -> Result<EventTables> {
    let mut tables = EventTables::new();
    for name in names {
        let Some(config) = configured.get(&name) else {
            continue; // reported, with the condition's location, by the compiler
        };
        let df = open(ctx, stores, &name, &config.url).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let time_column = match &config.time_column {
            Some(c) => Ok(c.clone()),
            None => {
                let temporal: Vec<&str> = schema
                    .fields()
                    .iter()
                    .filter(|f| matches!(f.data_type(), DataType::Timestamp(_, _)))
                    .map(|f| f.name().as_str())
                    .collect();
                match temporal.as_slice() {
                    [one] => Ok(one.to_string()),
                    [] => Err(NoTimeColumn::None),
                    many => Err(NoTimeColumn::Many(
                        many.iter().map(|c| c.to_string()).collect(),
                    )),
                }
            }
        };
        let rows = super::footer_rows(&df).await;
        tables.insert(
            name.clone(),
            EventTable {
                name: name.clone(),
                rows,
                schema,
                id_column: config
                    .id_column
                    .clone()
                    .unwrap_or_else(|| customers_id_column.to_string()),
                time_column,
                frame: df,
            },
        );
    }
    Ok(tables)
}

/// Opens an event table: its files listed and footers read as the customers table's are
/// (each unreadable file named), then read over those files.
async fn open(ctx: &SessionContext, stores: &Stores, name: &str, url: &str) -> Result<DataFrame> {
    let what = format!("event table '{name}'");
    let files = super::files::list(&stores.location(url)?, &what).await?;
    super::files::open(ctx, &files).await.map_err(|e| match e {
        datafusion::error::DataFusionError::ObjectStore(source) => Error::storage(url, *source),
        other => Error::File {
            what: format!("event table '{name}' at"),
            url: url.to_string(),
            source: Box::new(other),
        },
    })
}

impl EventAggregate {
    /// The aggregate expression over the event rows, `filter` being the column that holds
    /// this aggregate's filter (`CASE WHEN filter` lets one pass per table serve
    /// aggregates with different filters).
    fn expr(&self, filter: Option<Expr>) -> Result<Expr> {
        let input = self.input_value(filter)?;
        Ok(match self.aggregate {
            Aggregate::Count => count(input),
            Aggregate::CountDistinct => count_distinct(input),
            Aggregate::Sum => sum(input),
            Aggregate::Avg => avg(input),
            Aggregate::Min | Aggregate::First => min(input),
            Aggregate::Max | Aggregate::Last => max(input),
        })
    }

    /// What the aggregate reads of each event row: its column (cast as summed), or 1 to
    /// count, null where `filter` does not hold.
    fn input_value(&self, filter: Option<Expr>) -> Result<Expr> {
        let input = match (&self.aggregate, &self.column) {
            (Aggregate::Count, _) | (_, None) => lit(1i64),
            (_, Some(c)) => match &self.input {
                Some(t) => cast(col_exact(c), t.clone()),
                None => col_exact(c),
            },
        };
        Ok(match filter {
            None => input,
            Some(f) => when(f, input).end()?,
        })
    }

    /// The value of a customer without matching events.
    fn when_empty(&self) -> Result<Option<Expr>> {
        if !self.aggregate.zero_when_empty() {
            return Ok(None);
        }
        Ok(Some(lit(ScalarValue::new_zero(&self.output)?)))
    }
}

/// The most distinct values a `count_distinct` column may have to be counted as a bit mask.
const MASK_VALUES: usize = 63;

/// For a `count_distinct` over a column of few distinct values (at most [`MASK_VALUES`], as
/// categories and channels have), those values in order; `None` otherwise. Floats never
/// qualify (`NaN` and `-0.0` make equality unlike distinctness).
async fn few_distinct_values(
    events: &DataFrame,
    a: &EventAggregate,
    schema: &Schema,
) -> Result<Option<Vec<ScalarValue>>> {
    let (Aggregate::CountDistinct, Some(c)) = (a.aggregate, a.column.as_deref()) else {
        return Ok(None);
    };
    let data_type = schema.field_with_name(c).map(|f| f.data_type().clone());
    let countable = matches!(
        data_type,
        Ok(DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(_, _))
    );
    if !countable || a.input.is_some() {
        return Ok(None);
    }
    let batches = events
        .clone()
        .select(vec![col_exact(c)])?
        .filter(col_exact(c).is_not_null())?
        .aggregate(vec![col_exact(c)], vec![])?
        .limit(0, Some(MASK_VALUES + 1))?
        .collect()
        .await?;
    let mut values = Vec::new();
    for batch in &batches {
        for row in 0..batch.num_rows() {
            values.push(ScalarValue::try_from_array(batch.column(0), row)?);
        }
    }
    // (No values at all: a CASE without a branch has no type; the pairs plan counts 0.)
    if values.is_empty() || values.len() > MASK_VALUES {
        return Ok(None);
    }
    // Sorted, so the plan is the same whatever order the distinct values arrived in.
    values.sort_by(|x, y| x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal));
    Ok(Some(values))
}

/// What joining the event aggregates found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attached {
    /// Per event table: events (up to `as_of`) whose customer is not in the customers table.
    pub ignored: Vec<(String, u64)>,
}

/// Joins every aggregate onto `customers` as column [`alias`]`(i)`: one aggregate query per
/// event table (events after `as_of` dropped first), left-joined on the customer id.
pub(crate) async fn attach(
    mut customers: DataFrame,
    customers_id: &str,
    tables: &EventTables,
    aggregates: &[EventAggregate],
    as_of: DateTime<Utc>,
) -> Result<(DataFrame, Attached)> {
    let id_type = crate::evaluate::id_type(&customers, customers_id)?;
    let mut attached = Attached::default();
    let ids = customers.clone().select(vec![col_exact(customers_id)])?;
    for (t, table) in tables.values().enumerate() {
        let mine: Vec<(usize, &EventAggregate)> = aggregates
            .iter()
            .enumerate()
            .filter(|(_, a)| a.table == table.name)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let time_column = table.time_column.clone().map_err(|why| Error::EventTable {
            table: table.name.clone(),
            problem: why.to_string(),
        })?;
        let time_type = table
            .schema
            .field_with_name(&time_column)
            .map_err(|e| Error::EventTable {
                table: table.name.clone(),
                problem: e.to_string(),
            })?
            .data_type()
            .clone();
        let until_as_of = AttributeCondition {
            attribute: time_column,
            op: Op::Lte,
            operand: Operand::One(Literal::Str(
                as_of.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            )),
            ignore_case: false,
        };
        let until_as_of = attribute::compile(&until_as_of, &time_type, as_of)
            .map_err(|(m, _)| Error::EventTable {
                table: table.name.clone(),
                problem: m,
            })?
            .is_true();
        let key = format!("__events_key_{t}");
        let events = table.frame.clone().filter(until_as_of)?;
        let event_key = cast(col_exact(&table.id_column), id_type.clone()).alias(&key);
        // Each distinct filter is computed once, as a column, before aggregating.
        let mut projection = vec![event_key.clone()];
        let mut filter_columns: Vec<(&Expr, String)> = Vec::new();
        let mut inputs: Vec<&str> = Vec::new();
        for (_, a) in &mine {
            if let Some(f) = &a.filter {
                if !filter_columns.iter().any(|(g, _)| *g == f) {
                    let name = format!("__events_filter_{t}_{}", filter_columns.len());
                    projection.push(f.clone().alias(&name));
                    filter_columns.push((f, name));
                }
            }
            if let Some(c) = a.column.as_deref() {
                if !inputs.contains(&c) {
                    projection.push(col_exact(c));
                    inputs.push(c);
                }
            }
        }
        let filter_of = |a: &EventAggregate| {
            a.filter.as_ref().map(|f| {
                let (_, name) = filter_columns
                    .iter()
                    .find(|(g, _)| *g == f)
                    .expect("every filter was projected");
                col_exact(name)
            })
        };
        let projected = events.clone().select(projection)?;
        let mut aggregate_exprs = Vec::with_capacity(mine.len());
        let mut popcounts = Vec::new();
        for (i, a) in &mine {
            if let Some(values) = few_distinct_values(&events, a, &table.schema).await? {
                // Few distinct values: one bit each, OR-ed per customer in the one pass
                // with the table's other aggregates, then counted. One i64 per customer.
                let mut bits = datafusion::logical_expr::case(a.input_value(filter_of(a))?);
                for (j, v) in values.iter().enumerate() {
                    bits = bits.when(lit(v.clone()), lit(1i64 << j));
                }
                let mask = format!("{}_mask", alias(*i));
                aggregate_exprs.push(bit_or(bits.end()?).alias(&mask));
                popcounts.push((format!("{}_raw", alias(*i)), mask, values.len()));
                continue;
            }
            if a.aggregate == Aggregate::CountDistinct {
                // `count(DISTINCT x) GROUP BY customer` keeps a hash set per customer
                // (7.7 GB for 200k customers × 2M orders of a 5-value column); distinct
                // (customer, value) pairs, then a count per customer, keep one table.
                let key_i = format!("{key}_distinct_{i}");
                let value = a.input_value(filter_of(a))?;
                let per_customer = projected
                    .clone()
                    .select(vec![
                        col_exact(&key).alias(&key_i),
                        value.alias("__distinct_value"),
                    ])?
                    .filter(col_exact("__distinct_value").is_not_null())?
                    .aggregate(
                        vec![col_exact(&key_i), col_exact("__distinct_value")],
                        vec![],
                    )?
                    .aggregate(
                        vec![col_exact(&key_i)],
                        vec![count(lit(1i64)).alias(format!("{}_raw", alias(*i)))],
                    )?;
                customers = customers.join(
                    per_customer,
                    JoinType::Left,
                    &[customers_id],
                    &[&key_i],
                    None,
                )?;
                continue;
            }
            aggregate_exprs.push(a.expr(filter_of(a))?.alias(format!("{}_raw", alias(*i))));
        }
        if !aggregate_exprs.is_empty() {
            let per_customer = projected.aggregate(vec![col_exact(&key)], aggregate_exprs)?;
            customers =
                customers.join(per_customer, JoinType::Left, &[customers_id], &[&key], None)?;
        }
        for (raw, mask, bits) in popcounts {
            let one = |j: usize| {
                bitwise_and(
                    bitwise_shift_right(col_exact(&mask), lit(j as i64)),
                    lit(1i64),
                )
            };
            let count = (1..bits).fold(one(0), |sum, j| sum + one(j));
            customers = customers.with_column(&raw, count)?;
        }
        for (i, a) in &mine {
            let raw = col_exact(&format!("{}_raw", alias(*i)));
            let value = match a.when_empty()? {
                Some(zero) => datafusion::functions::expr_fn::coalesce(vec![raw, zero]),
                None => raw,
            };
            customers = customers.with_column(&alias(*i), value)?;
        }
        // Events of customers not in the table are ignored, and counted for the report.
        let orphans = events
            .select(vec![event_key])?
            .join(
                ids.clone(),
                JoinType::LeftAnti,
                &[&key],
                &[customers_id],
                None,
            )?
            .count()
            .await? as u64;
        attached.ignored.push((table.name.clone(), orphans));
    }
    Ok((customers, attached))
}
