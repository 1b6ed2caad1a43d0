//! Conditions on one dictionary column, evaluated once per distinct value and mapped to
//! rows through the keys: the same DataFusion expression, on the dictionary's values.
//!
//! A condition qualifies when it reads exactly one column, that column arrives as
//! `Dictionary(Int32, Utf8)` (see `dictionary.rs`), and it is a deterministic function of
//! that one value (no volatile functions, subqueries or outer references). Its result for
//! a row is then its result for the row's value, so evaluating it over the distinct
//! values (plus one null, for rows without a value) and looking rows up gives exactly
//! what evaluating it row by row gives. A row group's batches share one dictionary, so
//! the truth table is computed once per row group and condition.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, DictionaryArray, Int32Array};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::{Int32Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{Column, DFSchema};
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use roaring::RoaringBitmap;

use super::bitmap_from_bits;
use super::dictionary::dictionary_type;
use crate::{Error, Result};

/// The dictionary column `condition` can be evaluated per value of, if any.
pub(crate) fn column_of(condition: &Expr, schema: &DFSchema) -> Option<Column> {
    let columns = condition.column_refs();
    let [column] = columns.into_iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    let (_, field) = schema.qualified_field_from_column(column).ok()?;
    if *field.data_type() != dictionary_type() || condition.is_volatile() {
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

/// One condition, planned against its column alone.
#[derive(Debug)]
pub(crate) struct ByValue {
    expr: Arc<dyn PhysicalExpr>,
    schema: SchemaRef,
}

/// A condition's result for every value of one dictionary, and for a missing value.
#[derive(Debug)]
pub(crate) struct Truth {
    /// The dictionary values it was computed for (kept, so their address stays theirs).
    values: ArrayRef,
    table: Vec<bool>,
    null: bool,
    any: bool,
    all: bool,
}

impl ByValue {
    /// Plans `condition` over `column` (a dictionary column of `schema`).
    pub(crate) fn new(
        state: &SessionState,
        condition: &Expr,
        column: &Column,
        schema: &DFSchema,
    ) -> Result<ByValue> {
        let (qualifier, field) = schema.qualified_field_from_column(column)?;
        // Nullable even if the column is not: the truth table has a row for "no value".
        let field = Arc::new(field.as_ref().clone().with_nullable(true));
        let single = DFSchema::new_with_metadata(
            vec![(qualifier.cloned(), field.clone())],
            Default::default(),
        )?;
        let expr = state.create_physical_expr(condition.clone(), &single)?;
        Ok(ByValue {
            expr,
            schema: Arc::new(Schema::new(vec![field])),
        })
    }

    /// ORs the rows of `column` (a batch's dictionary column, its rows at `start`) where
    /// the condition holds into `mask`; `truth` is this condition's last truth table.
    pub(crate) fn apply(
        &self,
        truth: &mut Option<Truth>,
        column: &ArrayRef,
        start: u32,
        mask: &mut RoaringBitmap,
    ) -> Result<()> {
        let dictionary = column.as_dictionary_opt::<Int32Type>().ok_or_else(|| {
            Error::Data(format!(
                "expected a dictionary column, got {}",
                column.data_type()
            ))
        })?;
        let values = dictionary.values();
        let current = match truth {
            Some(t) if std::ptr::addr_eq(Arc::as_ptr(&t.values), Arc::as_ptr(values)) => t,
            _ => truth.insert(self.truth(values)?),
        };
        let len = dictionary.len() as u32;
        let nulls = dictionary.nulls().filter(|n| n.null_count() > 0);
        let null_rows_hold = nulls.is_some() && current.null;
        if !current.any && !null_rows_hold {
            return Ok(());
        }
        if current.all && (nulls.is_none() || current.null) {
            mask.insert_range(start..start + len);
            return Ok(());
        }
        let keys = dictionary.keys().values();
        let table = &current.table;
        let mut bits = BooleanBuffer::collect_bool(keys.len(), |i| {
            // Keys under null rows may be anything: they are masked below.
            table.get(keys[i] as usize).copied().unwrap_or(false)
        });
        if let Some(valid) = nulls {
            bits = if current.null {
                &bits | &!valid.inner()
            } else {
                &bits & valid.inner()
            };
        }
        *mask |= bitmap_from_bits(start, &bits);
        Ok(())
    }

    /// Evaluates the condition over `values` and one null.
    fn truth(&self, values: &ArrayRef) -> Result<Truth> {
        let n = values.len();
        let keys: Int32Array = (0..n)
            .map(|k| i32::try_from(k).ok())
            .chain(std::iter::once(None))
            .collect();
        let all_values = DictionaryArray::<Int32Type>::try_new(keys, values.clone())?;
        let batch = RecordBatch::try_new(self.schema.clone(), vec![Arc::new(all_values)])?;
        let result = self.expr.evaluate(&batch)?.into_array(n + 1)?;
        let result = result.as_boolean_opt().ok_or_else(|| {
            Error::Data(format!(
                "a condition gave {}, not booleans",
                result.data_type()
            ))
        })?;
        let holds = |i: usize| result.is_valid(i) && result.value(i);
        let table: Vec<bool> = (0..n).map(holds).collect();
        Ok(Truth {
            values: values.clone(),
            any: table.iter().any(|t| *t),
            all: table.iter().all(|t| *t),
            null: holds(n),
            table,
        })
    }
}
