//! The operator and aggregate registries as JSON: what `GET /v1/schema` serves the
//! dashboard and what `schema/vocabulary.json` holds for the editor schema's tests.

use serde_json::{json, Value};

use super::aggregates::{Reads, AGGREGATES};
use super::ops::{Family, OPERATORS};

/// Every operator and aggregate with its spellings, arity, families and meaning, and the
/// operators that apply to each column family.
pub fn vocabulary() -> Value {
    let operators: Vec<Value> = OPERATORS
        .iter()
        .map(|o| {
            json!({
                "op": o.name,
                "aliases": o.aliases,
                "arity": o.arity.name(),
                "families": o.families.iter().map(|f| f.name()).collect::<Vec<_>>(),
                "ignore_case": o.ignore_case,
                "evaluator": o.evaluator.name(),
                "meaning": o.meaning,
            })
        })
        .collect();
    let aggregates: Vec<Value> = AGGREGATES
        .iter()
        .map(|a| {
            json!({
                "aggregate": a.name,
                "column": match a.reads {
                    Reads::Rows => "none",
                    Reads::Column => "required",
                    Reads::TimeOrColumn => "optional",
                },
                "zero_when_empty": a.zero_when_empty,
                "meaning": a.meaning,
            })
        })
        .collect();
    let by_family: serde_json::Map<String, Value> = Family::ALL
        .iter()
        .map(|family| {
            let names: Vec<&str> = OPERATORS
                .iter()
                .filter(|o| o.families.contains(family))
                .map(|o| o.name)
                .collect();
            (family.name().to_string(), json!(names))
        })
        .collect();
    json!({
        "operators": operators,
        "aggregates": aggregates,
        "families": by_family,
    })
}
