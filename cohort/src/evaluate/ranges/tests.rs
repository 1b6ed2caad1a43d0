//! Range conditions against DataFusion row by row, on every orderable type and at the
//! edges of each (extremes, nulls, signed zeros, NaN, constants beyond a narrow column).

use datafusion::arrow::array::{
    Date32Array, Float64Array, Int64Array, Int8Array, TimestampMicrosecondArray, UInt32Array,
    UInt64Array,
};
use datafusion::prelude::{col, lit, SessionContext};

use super::*;

/// Per condition, the rows where it holds: through ranges, and by DataFusion row by row.
fn both_ways(values: ArrayRef, conditions: &[Expr]) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let field = Field::new("v", values.data_type().clone(), true);
    let schema = DFSchema::try_from(Schema::new(vec![field.clone()])).unwrap();
    let state = SessionContext::new().state();
    let on: Vec<(usize, &Expr)> = conditions.iter().enumerate().collect();
    let (ranged, others) =
        RangeConditions::new(&state, &Column::from_name("v"), &schema, &on).unwrap();
    assert!(others.is_empty(), "not range conditions: {others:?}");
    let ranged = ranged.expect("range conditions");
    let mut holds = BatchHolds::new(conditions.len(), values.len());
    ranged.apply(&values, &mut holds).unwrap();
    let batch =
        RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![values.clone()]).unwrap();
    let got = (0..conditions.len())
        .map(|c| {
            let mut mask = roaring::RoaringBitmap::new();
            holds.or_into(c, 0, &mut mask);
            mask.iter().collect()
        })
        .collect();
    let expected = conditions
        .iter()
        .map(|c| {
            let expr = state.create_physical_expr(c.clone(), &schema).unwrap();
            let result = expr
                .evaluate(&batch)
                .unwrap()
                .into_array(values.len())
                .unwrap();
            holding(result.as_boolean())
                .set_indices()
                .map(|i| i as u32)
                .collect()
        })
        .collect();
    (got, expected)
}

#[test]
fn ranges_agree_with_comparing_row_by_row() {
    let v = || col("v");
    let cases: Vec<(&str, ArrayRef, Vec<Expr>)> = vec![
        (
            "int64 at its extremes, with nulls",
            Arc::new(Int64Array::from(vec![
                Some(i64::MIN),
                Some(-5),
                None,
                Some(0),
                Some(4),
                Some(5),
                Some(6),
                Some(100),
                Some(i64::MAX),
                Some(99),
            ])),
            vec![
                v().gt(lit(5i64)).is_true(),
                v().between(lit(0i64), lit(99i64)).is_true(),
                v().eq(lit(i64::MAX)).or(v().lt_eq(lit(i64::MIN))).is_true(),
                v().not_eq(lit(4i64)).is_true(),
                v().is_null(),
                v().in_list(vec![lit(6i64), lit(100i64)], false).is_true(),
                v().in_list(vec![lit(6i64), lit(100i64)], true).is_false(),
                (!v().gt_eq(lit(0i64)).and(v().lt(lit(5i64)))).is_true(),
            ],
        ),
        (
            "int8 near its bounds",
            Arc::new(Int8Array::from(vec![
                Some(-128),
                Some(-127),
                Some(0),
                Some(126),
                Some(127),
                None,
            ])),
            vec![
                v().gt(lit(-128i8)).is_true(),
                v().lt(lit(127i8)).is_true(),
                v().eq(lit(0i8)).is_true(),
                v().is_not_null(),
            ],
        ),
        (
            // Planned as `CAST(v AS Int64) op constant`: taken through the cast.
            "int8 compared with int64 constants beyond its bounds",
            Arc::new(Int8Array::from(vec![
                Some(-128),
                Some(-1),
                Some(0),
                Some(5),
                Some(127),
                None,
            ])),
            vec![
                v().gt(lit(5i64)).is_true(),
                v().lt(lit(300i64)).is_true(),
                v().gt_eq(lit(-300i64)).and(v().lt(lit(0i64))).is_true(),
                v().eq(lit(1000i64)).is_true(),
                v().in_list(vec![lit(-128i64), lit(5i64), lit(999i64)], false)
                    .is_true(),
                v().not_eq(lit(127i64)).is_true(),
            ],
        ),
        (
            "uint32 compared with int64 constants, negative ones too",
            Arc::new(UInt32Array::from(vec![
                Some(0),
                Some(1),
                Some(u32::MAX),
                None,
                Some(70_000),
            ])),
            vec![
                v().gt(lit(-1i64)).is_true(),
                v().lt_eq(lit(70_000i64)).is_true(),
                v().eq(lit(4_294_967_295i64)).is_true(),
                v().between(lit(1i64), lit(5_000_000_000i64)).is_true(),
            ],
        ),
        (
            "uint64 across the sign bit",
            Arc::new(UInt64Array::from(vec![
                0,
                1,
                1 << 63,
                (1 << 63) + 1,
                u64::MAX,
            ])),
            vec![
                v().gt(lit(1u64 << 63)).is_true(),
                v().lt_eq(lit(1u64)).is_true(),
                v().eq(lit(u64::MAX)).is_true(),
                v().not_eq(lit(0u64)).is_true(),
            ],
        ),
        (
            "doubles: signed zeros, infinities, NaN",
            Arc::new(Float64Array::from(vec![
                Some(-0.0),
                Some(0.0),
                Some(f64::NAN),
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                Some(1.5),
                Some(1.5000000000000002),
                None,
                Some(-1e300),
            ])),
            vec![
                v().gt(lit(0.0)).is_true(),
                v().lt(lit(0.0)).is_true(),
                v().eq(lit(-0.0)).is_true(),
                v().gt_eq(lit(1.5))
                    .and(v().lt_eq(lit(f64::INFINITY)))
                    .is_true(),
                v().eq(lit(f64::NAN)).is_true(),
                v().lt(lit(f64::NAN)).is_true(),
            ],
        ),
        (
            "doubles, no zero among the constants",
            Arc::new(Float64Array::from(vec![
                Some(-1.0),
                Some(-0.0),
                Some(0.0),
                Some(1.0),
                Some(f64::NAN),
                Some(-f64::NAN),
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                None,
            ])),
            vec![
                v().lt(lit(0.5)).is_true(),
                v().gt(lit(-0.5)).is_true(),
                v().gt_eq(lit(1.0)).is_true(),
                v().not_eq(lit(2.0)).is_true(),
                v().lt(lit(0)).is_true(),
            ],
        ),
        (
            "timestamps with a time zone, dates",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    Some(0),
                    Some(86_400_000_000),
                    None,
                    Some(-1),
                    Some(1_794_160_800_000_000),
                ])
                .with_timezone("UTC"),
            ),
            vec![
                v().lt(lit(ScalarValue::TimestampMicrosecond(
                    Some(1),
                    Some("UTC".into()),
                )))
                .is_true(),
                v().gt_eq(lit(ScalarValue::TimestampMicrosecond(
                    Some(86_400_000_000),
                    Some("UTC".into()),
                )))
                .is_true(),
                v().between(
                    lit(ScalarValue::TimestampMicrosecond(
                        Some(-1),
                        Some("UTC".into()),
                    )),
                    lit(ScalarValue::TimestampMicrosecond(
                        Some(0),
                        Some("UTC".into()),
                    )),
                )
                .is_true(),
                v().is_null()
                    .or(v().gt(lit(ScalarValue::TimestampMicrosecond(
                        Some(1_794_160_799_999_999),
                        Some("UTC".into()),
                    )))),
            ],
        ),
        (
            "dates",
            Arc::new(Date32Array::from(vec![
                Some(0),
                Some(20_000),
                None,
                Some(-3),
                Some(20_001),
            ])),
            vec![
                v().gt(lit(ScalarValue::Date32(Some(19_999)))).is_true(),
                v().lt_eq(lit(ScalarValue::Date32(Some(0)))).is_true(),
                v().eq(lit(ScalarValue::Date32(Some(20_001)))).is_true(),
                v().not_eq(lit(ScalarValue::Date32(Some(-3)))).is_true(),
            ],
        ),
    ];
    for (what, values, conditions) in cases {
        let (got, expected) = both_ways(values, &conditions);
        for (c, (got, expected)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(got, expected, "{what}: {}", conditions[c]);
        }
    }
}

#[test]
fn other_shapes_are_compared_row_by_row() {
    let v = || col("v");
    let conditions = [
        v().gt(lit(1i64)).is_true(),
        v().lt(lit(9i64)).is_true(),
        v().eq(lit(3i64)).is_true(),
        v().gt(lit(4i64)).is_true(),
        (v() + lit(1i64)).gt(lit(3i64)).is_true(),
        (v() % lit(2i64)).eq(lit(0i64)).is_true(),
    ];
    let field = Field::new("v", DataType::Int64, true);
    let schema = DFSchema::try_from(Schema::new(vec![field])).unwrap();
    let state = SessionContext::new().state();
    let on: Vec<(usize, &Expr)> = conditions.iter().enumerate().collect();
    let (ranged, others) =
        RangeConditions::new(&state, &Column::from_name("v"), &schema, &on).unwrap();
    assert_eq!(ranged.unwrap().masks().collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert_eq!(others.iter().map(|(m, _)| *m).collect::<Vec<_>>(), [4, 5]);
}
