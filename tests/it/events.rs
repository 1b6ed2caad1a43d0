//! Behavioural conditions (SPEC §3.4) on a fixed orders table whose events sit exactly on
//! the boundaries: customers without events, events after as_of, window edges to the
//! microsecond, strict before/after, and events of unknown customers.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::json;

use super::harness::{int_ids, runtime, Project, AS_OF};

const DAY_US: i64 = 86_400_000_000;

/// as_of (2026-11-22T00:00:00Z) in microseconds.
fn as_of_us() -> i64 {
    chrono::DateTime::parse_from_rfc3339(AS_OF)
        .unwrap()
        .timestamp_micros()
}

/// Customers 1..=5; orders:
/// 1: exactly at as_of (10, shoes) · 2: 1 µs after as_of (100) · 3: exactly as_of − 90d (5, shoes)
/// 4: 1 µs before as_of − 90d (7, hats) · 5: none · 99, 98: not customers (1 day ago).
fn project() -> Project {
    let p = Project::new();
    let customers = RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])) as ArrayRef,
        ),
        (
            "age",
            Arc::new(Int64Array::from(vec![30, 40, 50, 60, 70])) as ArrayRef,
        ),
    ])
    .unwrap();
    p.write_parquet("customers.parquet", &customers);
    let t = as_of_us();
    let window_start = t - 90 * DAY_US;
    let orders = RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 99, 98])) as ArrayRef,
        ),
        (
            "ordered_at",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    t,
                    t + 1,
                    window_start,
                    window_start - 1,
                    t - DAY_US,
                    t - DAY_US,
                ])
                .with_timezone("UTC"),
            ) as ArrayRef,
        ),
        (
            "amount",
            Arc::new(Float64Array::from(vec![10.0, 100.0, 5.0, 7.0, 1.0, 1.0])) as ArrayRef,
        ),
        (
            "category",
            Arc::new(StringArray::from(vec![
                "shoes", "shoes", "shoes", "hats", "hats", "hats",
            ])) as ArrayRef,
        ),
    ])
    .unwrap();
    p.write_parquet("orders.parquet", &orders);
    p
}

#[test]
fn event_conditions_follow_the_spec_at_every_boundary() {
    // (condition, members)
    let cases: &[(serde_json::Value, &[i64])] = &[
        (
            json!({"aggregate": "count", "within_last": "90d", "op": ">=", "value": 1}),
            &[1, 3],
        ),
        (
            json!({"aggregate": "count", "op": ">=", "value": 1}),
            &[1, 3, 4],
        ),
        // Lapsed: no order in 90 days, including customers who never ordered and one whose
        // only order is after as_of.
        (
            json!({"aggregate": "count", "within_last": "90d", "op": "<", "value": 1}),
            &[2, 4, 5],
        ),
        (
            json!({"aggregate": "count", "op": "=", "value": 0}),
            &[2, 5],
        ),
        (
            json!({"aggregate": "sum", "column": "amount", "op": ">", "value": 0}),
            &[1, 3, 4],
        ),
        (
            json!({"aggregate": "sum", "column": "amount", "op": "=", "value": 0}),
            &[2, 5],
        ),
        (
            json!({"aggregate": "sum", "column": "amount", "within_last": "90d", "op": ">=", "value": 10}),
            &[1],
        ),
        (
            json!({"aggregate": "max", "column": "amount", "op": ">=", "value": 0}),
            &[1, 3, 4],
        ),
        (
            json!({"aggregate": "min", "column": "amount", "op": "doesn't exist"}),
            &[2, 5],
        ),
        (
            json!({"aggregate": "avg", "column": "amount", "op": "<", "value": 100}),
            &[1, 3, 4],
        ),
        (
            json!({"aggregate": "count_distinct", "column": "category", "op": "=", "value": 1}),
            &[1, 3, 4],
        ),
        (
            json!({"aggregate": "last", "op": "is in the last", "value": "90d"}),
            &[1, 3],
        ),
        (
            json!({"aggregate": "last", "column": "ordered_at", "op": "is not in the last", "value": "90d"}),
            &[4],
        ),
        (
            json!({"aggregate": "first", "op": "is before", "value": "2026-08-24T00:00:00Z"}),
            &[4],
        ),
        (
            json!({"aggregate": "count", "after": "2026-08-24T00:00:00Z", "op": ">=", "value": 1}),
            &[1],
        ),
        (
            json!({"aggregate": "count", "before": "2026-11-22T00:00:00Z", "op": ">=", "value": 1}),
            &[3, 4],
        ),
        (
            json!({"aggregate": "count", "where": [{"attribute": "category", "op": "equals", "value": "SHOES", "ignore_case": true}],
                   "within_last": "90d", "op": ">=", "value": 1}),
            &[1, 3],
        ),
    ];
    let p = project();
    for (i, (condition, _)) in cases.iter().enumerate() {
        let mut condition = condition.clone();
        condition["events"] = json!("orders");
        p.write(
            &format!("queries/case{i:02}.json"),
            &json!({"include": [{"conditions": [condition]}]}).to_string(),
        );
    }
    let members = runtime().block_on(p.members()).unwrap();
    for (i, (condition, expected)) in cases.iter().enumerate() {
        let (_, got) = &members[i];
        assert_eq!(got, &int_ids(expected), "case {i}: {condition}");
    }

    // The CLI reports events of unknown customers (up to as_of) and ignores them.
    let report = p
        .cohort(&[
            "run",
            "--customers=customers.parquet",
            "--events=orders=orders.parquet",
            &format!("--as-of={AS_OF}"),
            "--format=json",
        ])
        .ok()
        .json();
    assert_eq!(report["ignored_events"]["orders"], 2);
    assert!(report["event_aggregates"].as_u64().unwrap() < cases.len() as u64 + 1);
}

#[test]
fn conditions_on_the_same_aggregate_share_one_query_column() {
    let p = project();
    for (name, op) in [("a", ">="), ("b", "<")] {
        p.write(
            &format!("queries/{name}.json"),
            &json!({"include": [{"conditions": [
                {"events": "orders", "aggregate": "count", "within_last": "90d", "op": op, "value": 1}
            ]}]})
            .to_string(),
        );
    }
    let report = p
        .cohort(&[
            "run",
            "--dry-run",
            "--customers=customers.parquet",
            "--events=orders=orders.parquet",
            &format!("--as-of={AS_OF}"),
            "--format=json",
        ])
        .ok()
        .json();
    assert_eq!(report["event_aggregates"], 1);
    assert_eq!(report["conditions"], 2);
}

#[test]
fn event_condition_errors_name_the_table_column_and_window() {
    let p = project();
    p.write(
        "queries/bad.toml",
        r#"[[include]]
conditions = [
  { events = "ordrs", aggregate = "count", op = ">", value = 1 },
  { events = "orders", aggregate = "sume", column = "amount", op = ">", value = 1 },
  { events = "orders", aggregate = "sum", column = "amont", op = ">", value = 1 },
  { events = "orders", aggregate = "sum", column = "category", op = ">", value = 1 },
  { events = "orders", aggregate = "count", within_last = "90x", op = ">", value = 1 },
  { events = "orders", where = [{ attribute = "categry", op = "equals", value = "shoes" }], aggregate = "count", op = ">", value = 1 },
  { events = "orders", aggregate = "count", op = ">", value = "lots" },
  { events = "orders", aggregate = "count", before = "yesterday", op = ">", value = 3 },
  { events = "orders", aggregate = "sum", op = ">", value = 3 },
]
"#,
    );
    let out = p.cohort(&[
        "validate",
        "--customers=customers.parquet",
        "--events=orders=orders.parquet",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for expected in [
        "unknown event table 'ordrs' in group 'bad' (include[0].conditions[0])",
        "--> queries/bad.toml:3:3",
        "did you mean 'orders'?",
        "unknown aggregate 'sume' in group 'bad' (include[0].conditions[1])",
        "--> queries/bad.toml:4:3",
        "unknown column 'amont' in event table 'orders'",
        "did you mean 'amount'?",
        "aggregate 'sum' cannot apply to 'category'",
        "bad window within_last = '90x'",
        "unknown column 'categry' in event table 'orders'",
        "value 'lots' is a string but 'count' is integer",
        "bad before = 'yesterday'",
        "aggregate 'sum' on events 'orders' needs a 'column'",
    ] {
        assert!(
            out.stderr.contains(expected),
            "missing '{expected}' in:\n{}",
            out.stderr
        );
    }
    assert!(!p.path("snapshots").exists());
}

/// `count_distinct` has two plans: a bit per value for columns of few distinct values (at
/// most 63), distinct (customer, value) pairs otherwise. Both count the same, with a
/// `where` filter, nulls ignored and customers without events at 0.
#[test]
fn count_distinct_counts_alike_over_few_and_many_distinct_values() {
    let p = Project::new();
    let customers = RecordBatch::try_from_iter(vec![(
        "customer_id",
        Arc::new(Int64Array::from(vec![1, 2, 3, 4])) as ArrayRef,
    )])
    .unwrap();
    p.write_parquet("customers.parquet", &customers);
    // Customer 1: 100 orders, 100 distinct skus, 3 categories; customer 2: 2 orders of one
    // sku (and a null sku); customer 3: one order; customer 4: none.
    let mut ids = vec![1i64; 100];
    let mut skus: Vec<Option<i64>> = (0..100).map(Some).collect();
    let mut categories: Vec<Option<&str>> =
        (0..100).map(|i| Some(["a", "b", "c"][i % 3])).collect();
    ids.extend([2, 2, 2, 3]);
    skus.extend([Some(7), Some(7), None, Some(1)]);
    categories.extend([Some("a"), None, Some("b"), Some("a")]);
    let times = vec![as_of_us() - DAY_US; ids.len()];
    let notes: Vec<Option<&str>> = vec![None; ids.len()];
    let orders = RecordBatch::try_from_iter(vec![
        ("customer_id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        (
            "ordered_at",
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")) as ArrayRef,
        ),
        ("sku", Arc::new(Int64Array::from(skus)) as ArrayRef),
        (
            "category",
            Arc::new(StringArray::from(categories)) as ArrayRef,
        ),
        ("note", Arc::new(StringArray::from(notes)) as ArrayRef),
    ])
    .unwrap();
    p.write_parquet("orders.parquet", &orders);
    let cases: &[(&str, serde_json::Value, &[i64])] = &[
        (
            "skus_many",
            json!({"column": "sku", "op": ">=", "value": 2}),
            &[1],
        ),
        (
            "skus_one",
            json!({"column": "sku", "op": "=", "value": 1}),
            &[2, 3],
        ),
        (
            "skus_none",
            json!({"column": "sku", "op": "=", "value": 0}),
            &[4],
        ),
        (
            "cats_three",
            json!({"column": "category", "op": "=", "value": 3}),
            &[1],
        ),
        (
            "cats_one",
            json!({"column": "category", "op": "=", "value": 1}),
            &[3],
        ),
        (
            "cats_two",
            json!({"column": "category", "op": "=", "value": 2}),
            &[2],
        ),
        // Regression: a column without any value made a CASE with no branch (a planning
        // error), found by the differential proptest.
        (
            "notes_all_null",
            json!({"column": "note", "op": "=", "value": 0}),
            &[1, 2, 3, 4],
        ),
        (
            "skus_where",
            json!({"column": "sku", "where": [{"attribute": "category", "op": "=", "value": "a"}], "op": "=", "value": 34}),
            &[1],
        ),
        (
            "cats_where",
            json!({"column": "category", "where": [{"attribute": "sku", "op": "<", "value": 3}], "op": "=", "value": 3}),
            &[1],
        ),
    ];
    for (name, condition, _) in cases {
        let mut condition = condition.clone();
        condition["events"] = json!("orders");
        condition["aggregate"] = json!("count_distinct");
        p.write(
            &format!("queries/{name}.json"),
            &json!({"include": [{"conditions": [condition]}]}).to_string(),
        );
    }
    let members = runtime().block_on(p.members()).unwrap();
    for (name, _, want) in cases {
        let got = &members.iter().find(|(g, _)| g == name).unwrap().1;
        assert_eq!(got, &int_ids(want), "{name}");
    }
}
