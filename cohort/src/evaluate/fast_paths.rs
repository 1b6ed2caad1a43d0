//! Every operator of the registry is taken by the fast path the registry names for it
//! (`definition::Evaluator`), and an operator named as evaluated by DataFusion is taken by
//! none: a new operator the fast paths don't know fails here instead of being slow.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;

use super::by_value;
use super::patterns::PatternConditions;
use super::ranges::RangeConditions;
use crate::compile::attribute::{self, ColumnKind};
use crate::definition::{
    Arity, AttributeCondition, Evaluator, Family, Literal, Operand, OPERATORS,
};

/// Column types of each family. Left out: Float64 (`in` on doubles is evaluated row by
/// row, `ranges.rs` says why) and UInt64 (compared with an integer constant, both sides
/// are cast to a common type that `ranges.rs` does not order).
fn types_of(family: Family) -> Vec<DataType> {
    match family {
        Family::String => vec![DataType::Utf8, DataType::Utf8View],
        Family::Number => vec![DataType::Int64, DataType::Int32, DataType::UInt16],
        Family::Boolean => vec![DataType::Boolean],
        Family::Date => vec![DataType::Date32],
        Family::Timestamp => vec![DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        )],
        Family::List => vec![DataType::List(Arc::new(Field::new(
            "item",
            DataType::Utf8,
            true,
        )))],
        Family::Other => vec![DataType::Binary],
    }
}

/// A value of the family that the operator compares with.
fn value(family: Family, op_name: &str, i: i64) -> Literal {
    match (family, op_name) {
        (_, "within_last" | "not_within_last") => Literal::Str(format!("{}d", 10 + i)),
        (Family::Number, _) => Literal::Int(10 + i),
        (Family::Boolean, _) => Literal::Bool(i % 2 == 0),
        (Family::Date, _) => Literal::Str(format!("2024-01-{:02}", 10 + i)),
        (Family::Timestamp, _) => Literal::Str(format!("2024-01-{:02}T08:00:00Z", 10 + i)),
        _ => Literal::Str(format!("v{i}")),
    }
}

/// The fast path that takes `condition` (eight copies of it, as a scan with enough
/// conditions on one column would hold) on a column of `data_type` with mostly distinct
/// values.
fn taken_by(condition: &Expr, data_type: &DataType) -> Evaluator {
    let schema =
        DFSchema::try_from(Schema::new(vec![Field::new("v", data_type.clone(), true)])).unwrap();
    let column = Column::from_name("v");
    let on: Vec<(usize, &Expr)> = (0..8).map(|i| (i, condition)).collect();
    let state = SessionContext::new().state();
    let (ranged, _) = RangeConditions::new(&state, &column, &schema, &on).unwrap();
    if ranged.is_some_and(|r| r.masks().count() == on.len()) {
        return Evaluator::Ranges;
    }
    if let Some(found) = PatternConditions::new(&column, 0, &on).unwrap() {
        if found.masks().count() == on.len() {
            return Evaluator::Substrings;
        }
    }
    Evaluator::DataFusion
}

#[test]
fn every_operator_is_taken_by_the_fast_path_the_registry_names() {
    let as_of = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
    let mut checked = 0;
    for entry in OPERATORS {
        let mut taken_somewhere = false;
        for &family in entry.families {
            for data_type in types_of(family) {
                assert_eq!(ColumnKind::of(&data_type).family(), family);
                let operand = match entry.arity {
                    Arity::None => Operand::None,
                    Arity::One => Operand::One(value(family, entry.name, 0)),
                    Arity::Two => {
                        Operand::Range(value(family, entry.name, 0), value(family, entry.name, 5))
                    }
                    Arity::List => Operand::List(vec![
                        value(family, entry.name, 0),
                        value(family, entry.name, 1),
                    ]),
                };
                let folds = [false, true];
                let cases = if entry.ignore_case && family == Family::String {
                    &folds[..]
                } else {
                    &folds[..1]
                };
                for &ignore_case in cases {
                    let condition = AttributeCondition {
                        attribute: "v".into(),
                        op: entry.op,
                        operand: operand.clone(),
                        ignore_case,
                    };
                    let at = format!("{} on {data_type} (ignore_case {ignore_case})", entry.name);
                    let expr = attribute::compile(&condition, &data_type, as_of)
                        .unwrap_or_else(|e| panic!("{at}: {e:?}"))
                        .is_true();
                    let schema = DFSchema::try_from(Schema::new(vec![Field::new(
                        "v",
                        data_type.clone(),
                        true,
                    )]))
                    .unwrap();
                    // Every operator is evaluated once per distinct value of a dictionary
                    // or a span of integers.
                    assert!(
                        by_value::column_of(&expr, &schema).is_some(),
                        "{at}: not per value"
                    );
                    let taken = taken_by(&expr, &data_type);
                    match entry.evaluator {
                        Evaluator::DataFusion => {
                            assert_eq!(taken, Evaluator::DataFusion, "{at}: the registry says DataFusion evaluates it, but a fast path takes it")
                        }
                        Evaluator::Ranges
                            if matches!(
                                family,
                                Family::Number | Family::Date | Family::Timestamp
                            ) =>
                        {
                            assert_eq!(taken, Evaluator::Ranges, "{at}")
                        }
                        Evaluator::Substrings if family == Family::String => {
                            assert_eq!(taken, Evaluator::Substrings, "{at}")
                        }
                        _ => {}
                    }
                    taken_somewhere |= taken == entry.evaluator;
                    checked += 1;
                }
            }
        }
        match entry.evaluator {
            Evaluator::DataFusion => {}
            Evaluator::Bitmaps => assert!(entry.families.is_empty(), "{}", entry.name),
            _ => assert!(taken_somewhere, "{}: no fast path takes it", entry.name),
        }
    }
    assert!(checked > 60, "{checked} cases");
}
