//! `cohort_bitmap(position, condition)`: the aggregate executors run to turn a condition
//! column into a serialized roaring bitmap of the positions where it holds. Partial
//! bitmaps of disjoint rows merge by OR, so the aggregate is order-independent.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, UInt64Type};
use datafusion::common::{exec_err, ScalarValue};
use datafusion::logical_expr::{create_udaf, Accumulator, AggregateUDF, Volatility};
use roaring::RoaringBitmap;

/// The name the aggregate travels by: client, scheduler and executors register it.
pub(crate) const NAME: &str = "cohort_bitmap";

/// The aggregate: `(UInt64 position, Boolean condition) -> Binary` (a portable roaring
/// bitmap of the positions where the condition is true; NULL counts as false).
pub(crate) fn udaf() -> AggregateUDF {
    create_udaf(
        NAME,
        vec![DataType::UInt64, DataType::Boolean],
        Arc::new(DataType::Binary),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::<BitmapAccumulator>::default())),
        Arc::new(vec![DataType::Binary]),
    )
}

#[derive(Debug, Default)]
struct BitmapAccumulator {
    bitmap: RoaringBitmap,
}

impl BitmapAccumulator {
    fn serialized(&self) -> datafusion::error::Result<ScalarValue> {
        let mut bytes = Vec::with_capacity(self.bitmap.serialized_size());
        self.bitmap.serialize_into(&mut bytes)?;
        Ok(ScalarValue::Binary(Some(bytes)))
    }
}

impl Accumulator for BitmapAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> datafusion::error::Result<()> {
        let [positions, condition] = values else {
            return exec_err!("{NAME} takes (position, condition)");
        };
        let positions = positions.as_primitive::<UInt64Type>();
        let condition = condition.as_boolean();
        let holds = match condition.nulls() {
            Some(valid) => condition.values() & valid.inner(),
            None => condition.values().clone(),
        };
        for row in holds.set_indices() {
            if positions.is_null(row) {
                continue;
            }
            let position = positions.value(row);
            let Ok(position) = u32::try_from(position) else {
                return exec_err!("scan position {position} is beyond 4,294,967,295 customers");
            };
            self.bitmap.insert(position);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> datafusion::error::Result<ScalarValue> {
        self.serialized()
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bitmap.serialized_size()
    }

    fn state(&mut self) -> datafusion::error::Result<Vec<ScalarValue>> {
        Ok(vec![self.serialized()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> datafusion::error::Result<()> {
        let Some(states) = states.first() else {
            return exec_err!("{NAME} merges one state column");
        };
        for bytes in states.as_binary::<i32>().iter().flatten() {
            self.bitmap |= RoaringBitmap::deserialize_from(bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BinaryArray, BooleanArray, UInt64Array};

    #[test]
    fn nulls_are_false_and_partials_merge_by_or() {
        let mut a = BitmapAccumulator::default();
        a.update_batch(&[
            Arc::new(UInt64Array::from(vec![
                Some(0),
                Some(1),
                None,
                Some(70_000),
            ])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                None,
                Some(true),
                Some(true),
            ])),
        ])
        .unwrap();
        let mut b = BitmapAccumulator::default();
        b.update_batch(&[
            Arc::new(UInt64Array::from(vec![5u64, 6])),
            Arc::new(BooleanArray::from(vec![false, true])),
        ])
        .unwrap();
        let ScalarValue::Binary(Some(state)) = b.state().unwrap().remove(0) else {
            panic!("binary state")
        };
        a.merge_batch(&[Arc::new(BinaryArray::from(vec![state.as_slice()]))])
            .unwrap();
        assert_eq!(a.bitmap.iter().collect::<Vec<_>>(), vec![0, 6, 70_000]);
    }

    #[test]
    fn a_position_past_u32_is_an_error_not_a_wrap() {
        let mut a = BitmapAccumulator::default();
        let err = a
            .update_batch(&[
                Arc::new(UInt64Array::from(vec![u32::MAX as u64 + 1])),
                Arc::new(BooleanArray::from(vec![true])),
            ])
            .unwrap_err();
        assert!(err.to_string().contains("beyond"), "{err}");
    }
}
