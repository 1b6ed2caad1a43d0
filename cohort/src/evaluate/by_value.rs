//! Conditions on one column, evaluated once per distinct value of a batch and mapped to
//! rows through keys: the same DataFusion expressions, on the column's distinct values.
//!
//! A condition qualifies when it reads exactly one column and is a deterministic function
//! of that one value (no volatile functions, subqueries or outer references): its result
//! for a row is then its result for the row's value, so evaluating it over the distinct
//! values and looking rows up gives exactly what evaluating it row by row gives.
//!
//! Where the distinct values come from:
//! - a column read as a dictionary (`dictionary.rs`): the Parquet dictionary itself. A
//!   row group's batches share it, so each condition is evaluated once per row group;
//! - an integer or date column whose batch values lie within `SPAN` of each other: every
//!   integer of the span, a row's offset in it being its key (no hashing);
//! - a fixed-width, boolean or list column with several conditions: the batch's values,
//!   made distinct through Arrow's row format and a hash map. A batch with many distinct
//!   values (over a quarter of its rows: timestamps, amounts) is not worth it, and that
//!   column's conditions are evaluated row by row from then on, except those that only
//!   compare it with constants: one value per range between the constants (`ranges.rs`).

use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, UInt32Array,
};
use datafusion::arrow::compute::{concat, take};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{Column, DFSchema};
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;

use super::batch::BatchHolds;
use super::holding;
use super::keys::{self, Keys, Table};
use super::ranges::{self, RangeConditions};
use crate::{Error, Result};

/// A column without a Parquet dictionary is evaluated per value only with this many
/// conditions on it: making a batch's values distinct costs about what two comparisons do.
const MIN_CONDITIONS: usize = 3;

/// Distinct values a batch may always have and still be evaluated per value.
const SMALL_BATCH_VALUES: usize = 64;

/// The widest span of integer values evaluated value by value (ages, counts, dates over
/// a century fit).
const SPAN: i64 = 1 << 16;

/// The column `condition` can be evaluated per value of, if any.
pub(crate) fn column_of(condition: &Expr, schema: &DFSchema) -> Option<Column> {
    let columns = condition.column_refs();
    let [column] = columns.into_iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    schema.qualified_field_from_column(column).ok()?;
    if condition.is_volatile() {
        return None;
    }
    let row_independent = !condition
        .exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_)
                    | Expr::InSubquery(_)
                    | Expr::Exists(_)
                    | Expr::OuterReferenceColumn(..)
                    | Expr::AggregateFunction(_)
                    | Expr::WindowFunction(_)
                    | Expr::Placeholder(_)
            ))
        })
        .unwrap_or(true);
    row_independent.then(|| column.clone())
}

/// Whether `conditions` conditions on a column of this type are worth evaluating per
/// value. Strings without a Parquet dictionary are not: they are mostly distinct (emails,
/// names), and DataFusion shares `lower(column)` between their conditions row by row.
pub(crate) fn worth_it(data_type: &DataType, conditions: usize) -> bool {
    match data_type {
        DataType::Dictionary(key, _) => **key == DataType::Int32,
        DataType::List(_) | DataType::LargeList(_) | DataType::Boolean => {
            conditions >= MIN_CONDITIONS
        }
        other => other.is_primitive() && conditions >= MIN_CONDITIONS,
    }
}

/// The conditions on one column of the scan, planned against its values alone.
#[derive(Debug)]
pub(crate) struct ColumnConditions {
    /// The column's index in the scan's batches.
    pub(crate) index: usize,
    /// Each condition's mask (its index among the scan's conditions) and expression.
    conditions: Vec<(usize, Arc<dyn PhysicalExpr>)>,
    /// A one-column batch of the column's values.
    schema: SchemaRef,
    /// The conditions that compare the column with constants, evaluated per range of
    /// values when a batch's values span too wide a range to be evaluated each.
    ranged: Option<RangeConditions>,
    /// The indexes (in `conditions`) of the others.
    unranged: Vec<usize>,
}

/// One partition's state for one column: the truth tables of the last Parquet dictionary
/// or of the last span of integers, and whether making batches distinct was given up.
#[derive(Debug, Default)]
pub(crate) struct ColumnState {
    dictionary: Option<Truths>,
    span: Option<Span>,
    /// A condition failed on a value of the span (a value perhaps no row has).
    no_span: bool,
    row_by_row: bool,
}

/// Every condition's result for each integer (as order keys) from `low` to `high`, then
/// for a null value.
#[derive(Debug)]
struct Span {
    low: i64,
    high: i64,
    tables: Vec<Table>,
}

/// Every condition's result for each value of `values` (the last entry: a null value).
#[derive(Debug)]
struct Truths {
    /// The values they were computed for (kept, so their address stays theirs).
    values: ArrayRef,
    tables: Vec<Table>,
}

impl ColumnConditions {
    /// Plans `conditions` (mask index, expression) over `column` of `schema`, whose values
    /// are at `index` in the scan's batches.
    pub(crate) fn new(
        state: &SessionState,
        column: &Column,
        schema: &DFSchema,
        index: usize,
        conditions: &[(usize, &Expr)],
    ) -> Result<ColumnConditions> {
        let (qualifier, field) = schema.qualified_field_from_column(column)?;
        // The values' own type (a dictionary's values), nullable: a value may be missing.
        let value_type = match field.data_type() {
            DataType::Dictionary(_, value) => value.as_ref().clone(),
            other => other.clone(),
        };
        let field = Arc::new(Field::new(field.name(), value_type, true));
        let single = DFSchema::new_with_metadata(
            vec![(qualifier.cloned(), field.clone())],
            Default::default(),
        )?;
        let (ranged, unranged) = RangeConditions::new(state, column, schema, conditions)?;
        let unranged = conditions
            .iter()
            .enumerate()
            .filter(|(_, (mask, _))| unranged.iter().any(|(m, _)| m == mask))
            .map(|(i, _)| i)
            .collect();
        let conditions = conditions
            .iter()
            .map(|(mask, condition)| {
                Ok((
                    *mask,
                    state.create_physical_expr((*condition).clone(), &single)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(ColumnConditions {
            index,
            conditions,
            schema: Arc::new(Schema::new(vec![field])),
            ranged,
            unranged,
        })
    }

    /// How many of them compare the column with constants only.
    pub(crate) fn ranged(&self) -> usize {
        self.ranged.as_ref().map_or(0, |r| r.masks().count())
    }

    /// How many conditions read this column.
    pub(crate) fn len(&self) -> usize {
        self.conditions.len()
    }

    /// Sets, in `holds`, where each condition holds among the rows of `column` (a batch's
    /// values of this column).
    pub(crate) fn apply(
        &self,
        state: &mut ColumnState,
        column: &ArrayRef,
        holds: &mut BatchHolds,
    ) -> Result<()> {
        if let Some(dictionary) = column.as_dictionary_opt::<Int32Type>() {
            let values = dictionary.values();
            let truths = match &mut state.dictionary {
                Some(t) if std::ptr::addr_eq(Arc::as_ptr(&t.values), Arc::as_ptr(values)) => t,
                slot => {
                    let with_null =
                        concat(&[values.as_ref(), &new_null_array(values.data_type(), 1)])?;
                    let tables = self.evaluate(&with_null)?;
                    slot.insert(Truths {
                        values: values.clone(),
                        tables,
                    })
                }
            };
            let keys = dictionary.keys();
            let keys = Keys {
                keys: keys.values(),
                nulls: keys.nulls().filter(|n| n.null_count() > 0),
                null_key: values.len(),
            };
            let masks = self.conditions.iter().map(|(mask, _)| *mask);
            keys::map(masks.zip(&truths.tables), keys, holds);
            return Ok(());
        }
        if self.span(state, column, holds)? {
            return Ok(());
        }
        // Too wide a span: the range conditions per range, the others per distinct value
        // or row by row.
        let conditions: Vec<usize> = match &self.ranged {
            Some(ranged) => {
                ranged.apply(column, holds)?;
                self.unranged.clone()
            }
            None => (0..self.conditions.len()).collect(),
        };
        if conditions.is_empty() {
            return Ok(());
        }
        let masks = || conditions.iter().map(|c| self.conditions[*c].0);
        if !state.row_by_row {
            // Small batches (tests, the last rows of a file) are cheap either way.
            let limit = (column.len() / 4).max(SMALL_BATCH_VALUES);
            if let Some((keys, values)) = distinct(column, limit)? {
                let tables = self.evaluate_some(&values, &conditions)?;
                let keys = Keys {
                    keys: &keys,
                    nulls: None,
                    null_key: 0,
                };
                keys::map(masks().zip(&tables), keys, holds);
                return Ok(());
            }
            state.row_by_row = true;
        }
        let batch = RecordBatch::try_new(self.schema.clone(), vec![column.clone()])?;
        for c in &conditions {
            let (mask, expr) = &self.conditions[*c];
            let result = boolean(expr.evaluate(&batch)?.into_array(column.len())?)?;
            holds.set(*mask, holding(&result));
        }
        Ok(())
    }

    /// Evaluates every condition through the span of integer values of `column`, if it
    /// is an integer column whose values lie within `SPAN` of each other: each value's
    /// offset in the span is its key, with no hashing. The tables of the last span are kept,
    /// and grown when a batch needs more, so that a partition evaluates the conditions
    /// about once.
    fn span(
        &self,
        state: &mut ColumnState,
        column: &ArrayRef,
        holds: &mut BatchHolds,
    ) -> Result<bool> {
        if state.no_span || !ranges::integral(column.data_type()) {
            return Ok(false);
        }
        let values = ranges::order_keys(column)?;
        let nulls = column.nulls().filter(|n| n.null_count() > 0);
        let valid = |row: &usize| nulls.is_none_or(|n| n.is_valid(*row));
        let (mut low, mut high) = (i64::MAX, i64::MIN);
        for row in (0..values.len()).filter(valid) {
            low = low.min(values[row]);
            high = high.max(values[row]);
        }
        if low > high {
            // Every value null.
            (low, high) = (0, 0);
        }
        if let Some(span) = &state.span {
            low = low.min(span.low);
            high = high.max(span.high);
        }
        if high.checked_sub(low).is_none_or(|width| width >= SPAN) {
            return Ok(false);
        }
        let span = match &mut state.span {
            Some(span) if span.low == low && span.high == high => span,
            slot => {
                let keys: Vec<i64> = (low..=high).collect();
                let values = ranges::from_order_keys(&keys, column.data_type())?;
                let with_null = concat(&[values.as_ref(), &new_null_array(values.data_type(), 1)])?;
                let Ok(tables) = self.evaluate(&with_null) else {
                    // Only rows' values may fail a run: those go the other ways.
                    state.no_span = true;
                    return Ok(false);
                };
                slot.insert(Span { low, high, tables })
            }
        };
        let keys: Vec<i32> = values.iter().map(|v| v.wrapping_sub(low) as i32).collect();
        let keys = Keys {
            keys: &keys,
            nulls,
            null_key: (high - low + 1) as usize,
        };
        let masks = self.conditions.iter().map(|(mask, _)| *mask);
        keys::map(masks.zip(&span.tables), keys, holds);
        Ok(true)
    }

    /// Every condition over `values`: one truth table each.
    fn evaluate(&self, values: &ArrayRef) -> Result<Vec<Table>> {
        let all: Vec<usize> = (0..self.conditions.len()).collect();
        self.evaluate_some(values, &all)
    }

    /// The conditions at `which` over `values`: one truth table each.
    fn evaluate_some(&self, values: &ArrayRef, which: &[usize]) -> Result<Vec<Table>> {
        let batch = RecordBatch::try_new(self.schema.clone(), vec![values.clone()])?;
        which
            .iter()
            .map(|c| &self.conditions[*c])
            .map(|(_, expr)| {
                let result = boolean(expr.evaluate(&batch)?.into_array(values.len())?)?;
                Ok(Table::new(holding(&result).iter().collect()))
            })
            .collect()
    }
}

fn boolean(array: ArrayRef) -> Result<BooleanArray> {
    array.as_boolean_opt().cloned().ok_or_else(|| {
        Error::Internal(format!(
            "a condition gave {}, not booleans",
            array.data_type()
        ))
    })
}

/// The distinct values of `column` (nulls included, as one value) and each row's key
/// into them; `None` when there are more than `limit`.
fn distinct(column: &ArrayRef, limit: usize) -> Result<Option<(Vec<i32>, ArrayRef)>> {
    let converter = RowConverter::new(vec![SortField::new(column.data_type().clone())])?;
    let rows = converter.convert_columns(std::slice::from_ref(column))?;
    let mut seen: hashbrown::HashMap<datafusion::arrow::row::Row<'_>, i32> =
        hashbrown::HashMap::with_capacity(256);
    let mut firsts: Vec<u32> = Vec::new();
    let mut keys = Vec::with_capacity(column.len());
    for (i, row) in rows.iter().enumerate() {
        let next = firsts.len() as i32;
        let key = *seen.entry(row).or_insert(next);
        if key == next {
            if firsts.len() >= limit {
                return Ok(None);
            }
            firsts.push(i as u32);
        }
        keys.push(key);
    }
    let values = take(column.as_ref(), &UInt32Array::from(firsts), None)?;
    Ok(Some((keys, values)))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Date32Array, Int64Array};
    use datafusion::common::ScalarValue;
    use datafusion::prelude::{col, lit, SessionContext};

    use super::*;

    /// Per condition, the rows where it holds: through `ColumnConditions` over `batches`
    /// in turn (one partition's state), and by DataFusion row by row.
    fn both_ways(batches: &[ArrayRef], conditions: &[Expr]) -> Vec<(Vec<u32>, Vec<u32>)> {
        let field = Field::new("v", batches[0].data_type().clone(), true);
        let schema = DFSchema::try_from(Schema::new(vec![field.clone()])).unwrap();
        let state = SessionContext::new().state();
        let on: Vec<(usize, &Expr)> = conditions.iter().enumerate().collect();
        let columns =
            ColumnConditions::new(&state, &Column::from_name("v"), &schema, 0, &on).unwrap();
        let mut column_state = ColumnState::default();
        let mut got = vec![roaring::RoaringBitmap::new(); conditions.len()];
        let mut expected = vec![roaring::RoaringBitmap::new(); conditions.len()];
        let mut start = 0u32;
        for values in batches {
            let mut holds = BatchHolds::new(conditions.len(), values.len());
            columns
                .apply(&mut column_state, values, &mut holds)
                .unwrap();
            let batch = RecordBatch::try_new(
                Arc::new(Schema::new(vec![field.clone()])),
                vec![values.clone()],
            )
            .unwrap();
            for (c, condition) in conditions.iter().enumerate() {
                holds.or_into(c, start, &mut got[c]);
                let expr = state
                    .create_physical_expr(condition.clone(), &schema)
                    .unwrap();
                let result = expr
                    .evaluate(&batch)
                    .unwrap()
                    .into_array(values.len())
                    .unwrap();
                let bits = holding(result.as_boolean());
                expected[c].extend(bits.set_indices().map(|i| start + i as u32));
            }
            start += values.len() as u32;
        }
        got.iter()
            .zip(&expected)
            .map(|(g, e)| (g.iter().collect(), e.iter().collect()))
            .collect()
    }

    /// Integers within a span: evaluated once per value of the span, the tables grown when
    /// a later batch reaches past it; dates too.
    #[test]
    fn spans_of_integers_agree_with_row_by_row() {
        let v = || col("v");
        let int_batches: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![
                Some(3),
                None,
                Some(7),
                Some(3),
                Some(-2),
            ])),
            Arc::new(Int64Array::from(vec![Some(40), Some(7), None])),
            Arc::new(Int64Array::from(vec![None, None])),
        ];
        let conditions = [
            v().gt(lit(3i64)).is_true(),
            (v() % lit(2i64)).eq(lit(1i64)).is_true(),
            v().is_null(),
            v().in_list(vec![lit(7i64), lit(40i64)], false).is_true(),
        ];
        for (c, (got, expected)) in both_ways(&int_batches, &conditions).into_iter().enumerate() {
            assert_eq!(got, expected, "{}", conditions[c]);
        }
        let dates: Vec<ArrayRef> = vec![Arc::new(Date32Array::from(vec![
            Some(20_000),
            Some(-40_000),
            None,
            Some(20_414),
        ]))];
        let conditions = [
            v().gt(lit(ScalarValue::Date32(Some(0)))).is_true(),
            v().is_not_null(),
            v().lt_eq(lit(ScalarValue::Date32(Some(20_000)))).is_true(),
        ];
        for (c, (got, expected)) in both_ways(&dates, &conditions).into_iter().enumerate() {
            assert_eq!(got, expected, "{}", conditions[c]);
        }
    }

    /// A condition that fails on a value of the span that no row has (here 5: division by
    /// zero) must not fail the scan: such a column is evaluated the other ways.
    #[test]
    fn a_condition_failing_on_a_value_no_row_has_is_not_an_error() {
        let v = || col("v");
        let batches: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![
            Some(1),
            Some(7),
            None,
            Some(9),
        ]))];
        let conditions = [
            (lit(100i64) / (v() - lit(5i64))).gt(lit(10i64)).is_true(),
            v().gt(lit(1i64)).is_true(),
            v().is_null(),
        ];
        for (c, (got, expected)) in both_ways(&batches, &conditions).into_iter().enumerate() {
            assert_eq!(got, expected, "{}", conditions[c]);
        }
    }
}
