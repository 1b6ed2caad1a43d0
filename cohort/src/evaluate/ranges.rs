//! Conditions that compare one orderable column with constants (`<`, `<=`, `>`, `>=`, `=`,
//! `<>`, `in`, null checks, and AND / OR / NOT of those): their constants cut the values
//! into ranges on each of which every such condition gives one result. A row's range is
//! found by binary search and each condition is evaluated once per range, by DataFusion,
//! on a value of that range: with 40 window conditions on a timestamp, one search per row
//! instead of 80 comparisons.
//!
//! Values are ordered as integers: integers, dates and timestamps by value, doubles by
//! IEEE total order (`-0.0 < 0.0`, NaN past infinity), with ±0 and ±infinity always cuts
//! so that no range mixes values that IEEE comparisons tell apart from total order's. `in`
//! lists of doubles (hashed) are left out, and so are `f32` columns: a value strictly
//! between two `f32`s is not always an `f32`.

use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, Array, ArrayRef, AsArray, PrimitiveArray};
use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{self as types, ArrowPrimitiveType, DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{ColumnarValue, Expr, Operator};
use datafusion::physical_expr::expressions::{
    BinaryExpr, CastExpr, InListExpr, IsNotNullExpr, IsNullExpr, Literal, NotExpr,
};
use datafusion::physical_expr::{utils::collect_columns, PhysicalExpr};

use super::batch::BatchHolds;
use super::holding;
use super::keys::{self, Keys, Table};
use crate::Result;

/// Fewer conditions than this on a column are compared row by row: a binary search costs
/// about what a few comparisons do.
const MIN_CONDITIONS: usize = 4;

/// A column's range conditions, if enough, and its other conditions (mask, expression).
pub(crate) type Split<'e> = (Option<RangeConditions>, Vec<(usize, &'e Expr)>);

/// The range conditions on one column of the scan.
#[derive(Debug)]
pub(crate) struct RangeConditions {
    /// The cuts, as order keys, ascending and distinct.
    cuts: Vec<i64>,
    /// Each condition's mask and result per range: range `2i` lies below cut `i` (and above
    /// cut `i - 1`), range `2i + 1` is cut `i` itself; the last entry is a null value.
    conditions: Vec<(usize, Table)>,
}

impl RangeConditions {
    /// Splits `conditions` (mask, expression) on `column` of `schema` into the range
    /// conditions, if there are enough of them, and the others.
    pub(crate) fn new<'e>(
        state: &SessionState,
        column: &Column,
        schema: &DFSchema,
        conditions: &[(usize, &'e Expr)],
    ) -> Result<Split<'e>> {
        let (qualifier, field) = schema.qualified_field_from_column(column)?;
        let data_type = field.data_type().clone();
        if !orderable(&data_type) || conditions.len() < MIN_CONDITIONS {
            return Ok((None, conditions.to_vec()));
        }
        let field = Arc::new(Field::new(field.name(), data_type.clone(), true));
        let single = DFSchema::new_with_metadata(
            vec![(qualifier.cloned(), field.clone())],
            Default::default(),
        )?;
        let float = matches!(data_type, DataType::Float32 | DataType::Float64);
        let mut ranged = Vec::new();
        let mut others = Vec::new();
        let mut constants = Vec::new();
        for (mask, condition) in conditions {
            let physical = state.create_physical_expr((*condition).clone(), &single)?;
            let before = constants.len();
            if cuts_of(&physical, &data_type, float, &mut constants) {
                ranged.push((*mask, physical));
            } else {
                constants.truncate(before);
                others.push((*mask, *condition));
            }
        }
        if ranged.len() < MIN_CONDITIONS {
            return Ok((None, conditions.to_vec()));
        }
        let mut cuts = Vec::with_capacity(constants.len());
        for constant in constants.iter().filter(|c| !c.is_null()) {
            cuts.extend(order_keys(&constant.to_array()?)?);
        }
        if float {
            // Whether the kernels compare doubles by IEEE rules (`-0.0 = 0.0`, NaN
            // unordered) or by total order, no range then mixes values they tell apart:
            // negative NaNs, negative numbers, -0.0, 0.0, positive numbers, positive NaNs.
            cuts.extend([f64::NEG_INFINITY, -0.0, 0.0, f64::INFINITY].map(float_key));
        }
        cuts.sort_unstable();
        cuts.dedup();
        // One value of each range (any value where a range is empty: no row falls in it),
        // then a null.
        let mut representatives = Vec::with_capacity(2 * cuts.len() + 1);
        for (i, cut) in cuts.iter().enumerate() {
            let below = cut.checked_sub(1).filter(|b| i == 0 || *b > cuts[i - 1]);
            representatives.push(below.unwrap_or(*cut));
            representatives.push(*cut);
        }
        let last = cuts.last().and_then(|c| c.checked_add(1)).unwrap_or(0);
        representatives.push(last);
        let values = from_order_keys(&representatives, &data_type)?;
        let values = datafusion::arrow::compute::concat(&[
            values.as_ref(),
            new_null_array(&data_type, 1).as_ref(),
        ])?;
        let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![values])?;
        let conditions = ranged
            .into_iter()
            .map(|(mask, expr)| {
                let result = expr.evaluate(&batch)?.into_array(batch.num_rows())?;
                let result = result.as_boolean_opt().cloned().ok_or_else(|| {
                    crate::Error::Internal(format!(
                        "a condition gave {}, not booleans",
                        result.data_type()
                    ))
                })?;
                Ok((mask, Table::new(holding(&result).iter().collect())))
            })
            .collect::<Result<_>>()?;
        Ok((Some(RangeConditions { cuts, conditions }), others))
    }

    /// The masks of the conditions taken here.
    pub(crate) fn masks(&self) -> impl Iterator<Item = usize> + '_ {
        self.conditions.iter().map(|(mask, _)| *mask)
    }

    /// Sets, in `holds`, where each condition holds among the rows of `column`.
    pub(crate) fn apply(&self, column: &ArrayRef, holds: &mut BatchHolds) -> Result<()> {
        let cuts = &self.cuts;
        let ranges: Vec<i32> = order_keys(column)?
            .into_iter()
            .map(|key| {
                let i = cuts.partition_point(|c| *c < key);
                (2 * i + usize::from(cuts.get(i) == Some(&key))) as i32
            })
            .collect();
        let keys = Keys {
            keys: &ranges,
            nulls: column.nulls().filter(|n| n.null_count() > 0),
            null_key: 2 * cuts.len() + 1,
        };
        keys::map(
            self.conditions.iter().map(|(mask, table)| (*mask, table)),
            keys,
            holds,
        );
        Ok(())
    }
}

/// Whether values of this type are integers here (their order keys are consecutive).
pub(crate) fn integral(data_type: &DataType) -> bool {
    orderable(data_type) && !matches!(data_type, DataType::Float64)
}

/// Whether values of this type are ordered here.
fn orderable(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Int8 | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float64
            | Date32
            | Date64
            | Timestamp(_, _)
    )
}

/// Whether `expr` is a range condition on its one column (of `data_type`); pushes its
/// constants onto `constants`.
fn cuts_of(
    expr: &Arc<dyn PhysicalExpr>,
    data_type: &DataType,
    float: bool,
    constants: &mut Vec<ScalarValue>,
) -> bool {
    if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
        let (left, right) = (binary.left(), binary.right());
        return match binary.op() {
            Operator::And | Operator::Or => {
                cuts_of(left, data_type, float, constants)
                    && cuts_of(right, data_type, float, constants)
            }
            // `(…) IS TRUE`, `IS FALSE`, `IS NOT DISTINCT FROM false`…: of a condition and
            // a boolean constant.
            Operator::IsDistinctFrom | Operator::IsNotDistinctFrom => {
                match (constant(left), constant(right)) {
                    (None, Some(ScalarValue::Boolean(_))) => {
                        cuts_of(left, data_type, float, constants)
                    }
                    (Some(ScalarValue::Boolean(_)), None) => {
                        cuts_of(right, data_type, float, constants)
                    }
                    _ => false,
                }
            }
            Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::Eq
            | Operator::NotEq => {
                let value = match (compared_as(left, data_type), compared_as(right, data_type)) {
                    (Some(as_type), None) => constant(right).map(|v| (v, as_type)),
                    (None, Some(as_type)) => constant(left).map(|v| (v, as_type)),
                    _ => None,
                };
                match value {
                    Some((v, as_type)) if v.data_type() == as_type => {
                        constants.push(v);
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        };
    }
    if let Some(not) = expr.downcast_ref::<NotExpr>() {
        return cuts_of(not.arg(), data_type, float, constants);
    }
    if let Some(is_null) = expr.downcast_ref::<IsNullExpr>() {
        return is_column(is_null.arg());
    }
    if let Some(is_not_null) = expr.downcast_ref::<IsNotNullExpr>() {
        return is_column(is_not_null.arg());
    }
    if let Some(list) = expr.downcast_ref::<InListExpr>() {
        let Some(as_type) = compared_as(list.expr(), data_type).filter(|_| !float) else {
            return false;
        };
        for item in list.list() {
            match constant(item) {
                Some(v) if v.data_type() == as_type => constants.push(v),
                _ => return false,
            }
        }
        return true;
    }
    expr.downcast_ref::<Literal>().is_some()
}

/// The type the column is compared in when `expr` is the column (its own type) or the
/// column cast to `Int64` from a narrower integer (what comparing an `Int32` column with
/// an integer constant plans): its values' order keys are the same either way.
fn compared_as(expr: &Arc<dyn PhysicalExpr>, data_type: &DataType) -> Option<DataType> {
    if is_column(expr) {
        return Some(data_type.clone());
    }
    let cast = expr.downcast_ref::<CastExpr>()?;
    let widened = matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    );
    (widened && is_column(cast.expr()) && *cast.cast_type() == DataType::Int64)
        .then_some(DataType::Int64)
}

fn is_column(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.downcast_ref::<datafusion::physical_expr::expressions::Column>()
        .is_some()
}

/// The value of an expression that reads no column (a literal, a cast of one…).
fn constant(expr: &Arc<dyn PhysicalExpr>) -> Option<ScalarValue> {
    if let Some(literal) = expr.downcast_ref::<Literal>() {
        return Some(literal.value().clone());
    }
    if !collect_columns(expr).is_empty() {
        return None;
    }
    let empty = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .ok()?;
    match expr.evaluate(&empty).ok()? {
        ColumnarValue::Scalar(value) => Some(value),
        ColumnarValue::Array(array) => ScalarValue::try_from_array(&array, 0).ok(),
    }
}

/// Each value's order key, an `i64` ordered as the values are (anything under a null).
pub(crate) fn order_keys(array: &ArrayRef) -> Result<Vec<i64>> {
    fn keys<T: ArrowPrimitiveType>(array: &ArrayRef, key: impl Fn(T::Native) -> i64) -> Vec<i64> {
        array
            .as_primitive::<T>()
            .values()
            .iter()
            .map(|v| key(*v))
            .collect()
    }
    use DataType::*;
    Ok(match array.data_type() {
        Int8 => keys::<types::Int8Type>(array, i64::from),
        Int16 => keys::<types::Int16Type>(array, i64::from),
        Int32 | Date32 => keys::<types::Int32Type>(&cast(array, &Int32)?, i64::from),
        Int64 | Date64 | Timestamp(_, _) => keys::<types::Int64Type>(&cast(array, &Int64)?, |v| v),
        UInt8 => keys::<types::UInt8Type>(array, i64::from),
        UInt16 => keys::<types::UInt16Type>(array, i64::from),
        UInt32 => keys::<types::UInt32Type>(array, i64::from),
        UInt64 => keys::<types::UInt64Type>(array, |v| (v ^ (1 << 63)) as i64),
        Float64 => keys::<types::Float64Type>(array, float_key),
        other => {
            return Err(crate::Error::Internal(format!(
                "range conditions on a column of {other}"
            )))
        }
    })
}

/// IEEE total order as an integer order.
fn float_key(v: f64) -> i64 {
    let bits = v.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

fn float_of_key(key: i64) -> f64 {
    f64::from_bits((key ^ (((key >> 63) as u64) >> 1) as i64) as u64)
}

/// Values of `data_type` with these order keys.
pub(crate) fn from_order_keys(keys: &[i64], data_type: &DataType) -> Result<ArrayRef> {
    fn values<T: ArrowPrimitiveType>(
        keys: &[i64],
        value: impl Fn(i64) -> Option<T::Native>,
    ) -> Option<ArrayRef> {
        let values: Option<Vec<T::Native>> = keys.iter().map(|k| value(*k)).collect();
        Some(Arc::new(PrimitiveArray::<T>::new(
            ScalarBuffer::from(values?),
            None,
        )))
    }
    use DataType::*;
    let array = match data_type {
        Int8 => values::<types::Int8Type>(keys, |k| i8::try_from(k).ok()),
        Int16 => values::<types::Int16Type>(keys, |k| i16::try_from(k).ok()),
        Int32 | Date32 => values::<types::Int32Type>(keys, |k| i32::try_from(k).ok()),
        Int64 | Date64 | Timestamp(_, _) => values::<types::Int64Type>(keys, Some),
        UInt8 => values::<types::UInt8Type>(keys, |k| u8::try_from(k).ok()),
        UInt16 => values::<types::UInt16Type>(keys, |k| u16::try_from(k).ok()),
        UInt32 => values::<types::UInt32Type>(keys, |k| u32::try_from(k).ok()),
        UInt64 => values::<types::UInt64Type>(keys, |k| Some((k as u64) ^ (1 << 63))),
        // A key next to a float's: the next float in total order.
        Float64 => values::<types::Float64Type>(keys, |k| Some(float_of_key(k))),
        _ => None,
    };
    // A key outside the type's range (below the least `Int8`…) only stands for an empty
    // range: clamp it.
    let array = match array {
        Some(a) => a,
        None => {
            let clamped: Vec<i64> = keys.iter().map(|k| clamp(*k, data_type)).collect();
            return from_order_keys(&clamped, data_type);
        }
    };
    // The same width: Arrow reinterprets the values.
    Ok(cast(&array, data_type)?)
}

fn clamp(key: i64, data_type: &DataType) -> i64 {
    use DataType::*;
    let (lo, hi) = match data_type {
        Int8 => (i8::MIN as i64, i8::MAX as i64),
        Int16 => (i16::MIN as i64, i16::MAX as i64),
        Int32 | Date32 => (i32::MIN as i64, i32::MAX as i64),
        UInt8 => (0, u8::MAX as i64),
        UInt16 => (0, u16::MAX as i64),
        UInt32 => (0, u32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    };
    key.clamp(lo, hi)
}

#[cfg(test)]
mod tests;
