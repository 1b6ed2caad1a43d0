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
//! - a fixed-width, boolean or list column with several conditions: the batch's values,
//!   made distinct through Arrow's row format and a hash map. A batch with many distinct
//!   values (over a quarter of its rows: timestamps, amounts) is not worth it, and that
//!   column's conditions are evaluated row by row from then on.

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
use crate::{Error, Result};

/// A column without a Parquet dictionary is evaluated per value only with this many
/// conditions on it: making a batch's values distinct costs about what two comparisons do.
const MIN_CONDITIONS: usize = 3;

/// Distinct values a batch may always have and still be evaluated per value.
const SMALL_BATCH_VALUES: usize = 64;

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
}

/// One partition's state for one column: the truth tables of the last Parquet dictionary,
/// and whether making batches distinct was given up.
#[derive(Debug, Default)]
pub(crate) struct ColumnState {
    dictionary: Option<Truths>,
    row_by_row: bool,
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
        })
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
        if !state.row_by_row {
            // Small batches (tests, the last rows of a file) are cheap either way.
            let limit = (column.len() / 4).max(SMALL_BATCH_VALUES);
            if let Some((keys, values)) = distinct(column, limit)? {
                let tables = self.evaluate(&values)?;
                let keys = Keys {
                    keys: &keys,
                    nulls: None,
                    null_key: 0,
                };
                let masks = self.conditions.iter().map(|(mask, _)| *mask);
                keys::map(masks.zip(&tables), keys, holds);
                return Ok(());
            }
            state.row_by_row = true;
        }
        let batch = RecordBatch::try_new(self.schema.clone(), vec![column.clone()])?;
        for (mask, expr) in &self.conditions {
            let result = boolean(expr.evaluate(&batch)?.into_array(column.len())?)?;
            holds.set(*mask, holding(&result));
        }
        Ok(())
    }

    /// Every condition over `values`: one truth table each.
    fn evaluate(&self, values: &ArrayRef) -> Result<Vec<Table>> {
        let batch = RecordBatch::try_new(self.schema.clone(), vec![values.clone()])?;
        self.conditions
            .iter()
            .map(|(_, expr)| {
                let result = boolean(expr.evaluate(&batch)?.into_array(values.len())?)?;
                Ok(Table::new(holding(&result).iter().collect()))
            })
            .collect()
    }
}

fn boolean(array: ArrayRef) -> Result<BooleanArray> {
    array.as_boolean_opt().cloned().ok_or_else(|| {
        Error::Data(format!(
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
