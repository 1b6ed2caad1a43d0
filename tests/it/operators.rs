//! Table-driven cases for every operator and alias: nulls, empty lists, boundaries.
//! Each case is checked three ways: the engine, the reference evaluator, and the expected
//! ids written here by hand; then again with every alias of its operator.

use std::collections::BTreeMap;
use std::sync::Arc;

use cohort::definition::Op;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, ListBuilder,
    StringArray, StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{json, Value};

use super::harness::{self, Project};
use super::reference::{self, Cell, GroupDef, Row};

fn date(s: &str) -> i32 {
    (chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
        - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
    .num_days() as i32
}

fn ts(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_micros()
}

/// Seven customers; every column has a null somewhere.
pub fn fixture() -> (RecordBatch, Vec<Row>) {
    let s = [
        Some("apple"),
        Some("Apple"),
        Some("banana"),
        Some(""),
        None,
        Some("cherry pie"),
        Some("app"),
    ];
    let n = [
        Some(10),
        Some(18),
        Some(17),
        None,
        Some(-5),
        Some(0),
        Some(18),
    ];
    let x = [
        Some(1.5),
        None,
        Some(2.0),
        Some(2.5),
        Some(-1.0),
        Some(0.0),
        Some(100.0),
    ];
    let b = [
        Some(true),
        Some(false),
        None,
        Some(true),
        Some(false),
        None,
        Some(true),
    ];
    let d = [
        Some("2026-01-01"),
        Some("2026-01-02"),
        None,
        Some("2025-12-31"),
        Some("2026-11-01"),
        Some("2026-10-25"),
        Some("2026-08-24"),
    ];
    let t = [
        Some("2026-11-21T23:59:59Z"),
        Some("2026-11-22T00:00:00Z"),
        None,
        Some("2026-10-23T00:00:00Z"),
        Some("2026-10-22T23:59:59Z"),
        Some("2026-01-01T12:00:00Z"),
        Some("2026-11-22T00:00:01Z"),
    ];
    let tags: [Option<&[&str]>; 7] = [
        Some(&["a", "b"]),
        Some(&[]),
        None,
        Some(&["b"]),
        Some(&["c", "a"]),
        Some(&["a"]),
        Some(&["A"]),
    ];

    let mut list = ListBuilder::new(StringBuilder::new());
    for t in &tags {
        match t {
            Some(items) => {
                for i in *items {
                    list.values().append_value(i);
                }
                list.append(true);
            }
            None => list.append(false),
        }
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "customer_id",
            Arc::new(Int64Array::from((1..=7).collect::<Vec<i64>>())),
        ),
        ("s", Arc::new(StringArray::from(s.to_vec()))),
        ("n", Arc::new(Int32Array::from(n.to_vec()))),
        ("x", Arc::new(Float64Array::from(x.to_vec()))),
        ("b", Arc::new(BooleanArray::from(b.to_vec()))),
        (
            "d",
            Arc::new(Date32Array::from(
                d.iter().map(|v| v.map(date)).collect::<Vec<_>>(),
            )),
        ),
        (
            "t",
            Arc::new(
                TimestampMicrosecondArray::from(t.iter().map(|v| v.map(ts)).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
        ),
        ("tags", Arc::new(list.finish())),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let rows = (0..7)
        .map(|i| {
            let mut cells = BTreeMap::new();
            cells.insert("s".into(), s[i].map_or(Cell::Null, |v| Cell::Str(v.into())));
            cells.insert("n".into(), n[i].map_or(Cell::Null, |v| Cell::Int(v as i64)));
            cells.insert("x".into(), x[i].map_or(Cell::Null, Cell::Float));
            cells.insert("b".into(), b[i].map_or(Cell::Null, Cell::Bool));
            cells.insert("d".into(), d[i].map_or(Cell::Null, |v| Cell::Date(date(v))));
            cells.insert("t".into(), t[i].map_or(Cell::Null, |v| Cell::Ts(ts(v))));
            cells.insert(
                "tags".into(),
                tags[i].map_or(Cell::Null, |v| {
                    Cell::List(v.iter().map(|s| s.to_string()).collect())
                }),
            );
            Row {
                id: (i + 1).to_string(),
                cells,
                events: Vec::new(),
            }
        })
        .collect();
    (batch, rows)
}

/// (condition, expected member ids). `as_of` is 2026-11-22T00:00:00Z.
fn cases() -> Vec<(Value, Vec<i64>)> {
    vec![
        // strings
        (
            json!({"attribute": "s", "op": "equals", "value": "apple"}),
            vec![1],
        ),
        (
            json!({"attribute": "s", "op": "equals", "value": "APPLE", "ignore_case": true}),
            vec![1, 2],
        ),
        (
            json!({"attribute": "s", "op": "not_equals", "value": "apple"}),
            vec![2, 3, 4, 6, 7],
        ),
        (
            json!({"attribute": "s", "op": "in", "values": ["apple", "banana"]}),
            vec![1, 3],
        ),
        (
            json!({"attribute": "s", "op": "in", "value": "banana"}),
            vec![3],
        ),
        (
            json!({"attribute": "s", "op": "not_in", "values": ["apple", "banana"]}),
            vec![2, 4, 6, 7],
        ),
        (json!({"attribute": "s", "op": "in", "values": []}), vec![]),
        (
            json!({"attribute": "s", "op": "not_in", "values": []}),
            vec![1, 2, 3, 4, 6, 7],
        ),
        (
            json!({"attribute": "s", "op": "not_in", "values": ["APPLE"], "ignore_case": true}),
            vec![3, 4, 6, 7],
        ),
        (
            json!({"attribute": "s", "op": "contains", "value": "pp"}),
            vec![1, 2, 7],
        ),
        (
            json!({"attribute": "s", "op": "contains", "values": ["an", "pie"]}),
            vec![3, 6],
        ),
        (
            json!({"attribute": "s", "op": "not_contains", "value": "pp"}),
            vec![3, 4, 6],
        ),
        (
            json!({"attribute": "s", "op": "contains", "value": "PP", "ignore_case": true}),
            vec![1, 2, 7],
        ),
        (
            json!({"attribute": "s", "op": "not_contains", "value": "PP", "ignore_case": true}),
            vec![3, 4, 6],
        ),
        (
            json!({"attribute": "s", "op": "starts_with", "value": "app"}),
            vec![1, 7],
        ),
        (
            json!({"attribute": "s", "op": "starts_with", "value": "APP", "ignore_case": true}),
            vec![1, 2, 7],
        ),
        (
            json!({"attribute": "s", "op": "ends_with", "values": ["pie", "na"]}),
            vec![3, 6],
        ),
        (
            json!({"attribute": "s", "op": "ends_with", "value": "PLE", "ignore_case": true}),
            vec![1, 2],
        ),
        (
            json!({"attribute": "s", "op": "gt", "value": "b"}),
            vec![3, 6],
        ),
        (
            json!({"attribute": "s", "op": "lt", "value": "a"}),
            vec![2, 4],
        ),
        (
            json!({"attribute": "s", "op": "gte", "value": "banana"}),
            vec![3, 6],
        ),
        (
            json!({"attribute": "s", "op": "lte", "value": "app"}),
            vec![2, 4, 7],
        ),
        (
            json!({"attribute": "s", "op": "between", "values": ["app", "b"]}),
            vec![1, 7],
        ),
        (
            json!({"attribute": "s", "op": "exists"}),
            vec![1, 2, 3, 4, 6, 7],
        ),
        (json!({"attribute": "s", "op": "not_exists"}), vec![5]),
        // integers
        (
            json!({"attribute": "n", "op": "gt", "value": 17}),
            vec![2, 7],
        ),
        (
            json!({"attribute": "n", "op": "gte", "value": 18}),
            vec![2, 7],
        ),
        (
            json!({"attribute": "n", "op": "lt", "value": 18}),
            vec![1, 3, 5, 6],
        ),
        (
            json!({"attribute": "n", "op": "lte", "value": 17}),
            vec![1, 3, 5, 6],
        ),
        (
            json!({"attribute": "n", "op": "between", "values": [0, 17]}),
            vec![1, 3, 6],
        ),
        (
            json!({"attribute": "n", "op": "equals", "value": 18}),
            vec![2, 7],
        ),
        (
            json!({"attribute": "n", "op": "equals", "values": [18]}),
            vec![2, 7],
        ),
        (
            json!({"attribute": "n", "op": "not_equals", "value": 18}),
            vec![1, 3, 5, 6],
        ),
        (
            json!({"attribute": "n", "op": "in", "values": [17, 0]}),
            vec![3, 6],
        ),
        (
            json!({"attribute": "n", "op": "not_in", "values": [17, 0]}),
            vec![1, 2, 5, 7],
        ),
        (
            json!({"attribute": "n", "op": "gt", "value": 17.5}),
            vec![2, 7],
        ),
        (json!({"attribute": "n", "op": "not_exists"}), vec![4]),
        // floats
        (
            json!({"attribute": "x", "op": "gte", "value": 2}),
            vec![3, 4, 7],
        ),
        (json!({"attribute": "x", "op": "lt", "value": 0}), vec![5]),
        (
            json!({"attribute": "x", "op": "between", "values": [1.5, 2.5]}),
            vec![1, 3, 4],
        ),
        (
            json!({"attribute": "x", "op": "equals", "value": 2}),
            vec![3],
        ),
        // booleans
        (json!({"attribute": "b", "op": "is_true"}), vec![1, 4, 7]),
        (json!({"attribute": "b", "op": "is_false"}), vec![2, 5]),
        (
            json!({"attribute": "b", "op": "equals", "value": false}),
            vec![2, 5],
        ),
        (
            json!({"attribute": "b", "op": "not_equals", "value": true}),
            vec![2, 5],
        ),
        (
            json!({"attribute": "b", "op": "exists"}),
            vec![1, 2, 4, 5, 7],
        ),
        // dates
        (
            json!({"attribute": "d", "op": "before", "value": "2026-01-01"}),
            vec![4],
        ),
        (
            json!({"attribute": "d", "op": "after", "value": "2026-01-01"}),
            vec![2, 5, 6, 7],
        ),
        (
            json!({"attribute": "d", "op": "on", "value": "2026-01-01"}),
            vec![1],
        ),
        (
            json!({"attribute": "d", "op": "on", "value": "2026-01-01T15:00:00Z"}),
            vec![1],
        ),
        (
            json!({"attribute": "d", "op": "equals", "value": "2026-01-01"}),
            vec![1],
        ),
        (
            json!({"attribute": "d", "op": "equals", "value": "2026-01-01T15:00:00Z"}),
            vec![],
        ),
        (
            json!({"attribute": "d", "op": "not_equals", "value": "2026-01-01"}),
            vec![2, 4, 5, 6, 7],
        ),
        (
            json!({"attribute": "d", "op": "within_last", "value": "30d"}),
            vec![5, 6],
        ),
        (
            json!({"attribute": "d", "op": "within_last", "value": "90d"}),
            vec![5, 6, 7],
        ),
        (
            json!({"attribute": "d", "op": "not_within_last", "value": "30d"}),
            vec![1, 2, 4, 7],
        ),
        (
            json!({"attribute": "d", "op": "gt", "value": "2026-01-01T12:00:00Z"}),
            vec![2, 5, 6, 7],
        ),
        (
            json!({"attribute": "d", "op": "gte", "value": "2026-01-01T12:00:00Z"}),
            vec![2, 5, 6, 7],
        ),
        (
            json!({"attribute": "d", "op": "lte", "value": "2026-01-01T12:00:00Z"}),
            vec![1, 4],
        ),
        (
            json!({"attribute": "d", "op": "between", "values": ["2026-01-01", "2026-01-02"]}),
            vec![1, 2],
        ),
        (
            json!({"attribute": "d", "op": "in", "values": ["2026-01-02", "2026-08-24"]}),
            vec![2, 7],
        ),
        (
            json!({"attribute": "d", "op": "not_in", "values": ["2026-01-02", "2026-08-24"]}),
            vec![1, 4, 5, 6],
        ),
        // timestamps
        (
            json!({"attribute": "t", "op": "within_last", "value": "30d"}),
            vec![1, 2, 4],
        ),
        (
            json!({"attribute": "t", "op": "not_within_last", "value": "30d"}),
            vec![5, 6],
        ),
        (
            json!({"attribute": "t", "op": "within_last", "value": "1h"}),
            vec![1, 2],
        ),
        (
            json!({"attribute": "t", "op": "within_last", "value": "1w"}),
            vec![1, 2],
        ),
        (
            json!({"attribute": "t", "op": "on", "value": "2026-11-22"}),
            vec![2, 7],
        ),
        (
            json!({"attribute": "t", "op": "before", "value": "2026-11-22"}),
            vec![1, 4, 5, 6],
        ),
        (
            json!({"attribute": "t", "op": "after", "value": "2026-11-22T00:00:00Z"}),
            vec![7],
        ),
        (
            json!({"attribute": "t", "op": "equals", "value": "2026-11-22T00:00:00Z"}),
            vec![2],
        ),
        (
            json!({"attribute": "t", "op": "not_equals", "value": "2026-11-22T01:00:00+01:00"}),
            vec![1, 4, 5, 6, 7],
        ),
        (
            json!({"attribute": "t", "op": "lte", "value": "2026-10-23"}),
            vec![4, 5, 6],
        ),
        (
            json!({"attribute": "t", "op": "in", "values": ["2026-10-23", "2026-11-22"]}),
            vec![2, 4],
        ),
        (json!({"attribute": "t", "op": "not_exists"}), vec![3]),
        // list of strings
        (
            json!({"attribute": "tags", "op": "contains", "value": "a"}),
            vec![1, 5, 6],
        ),
        (
            json!({"attribute": "tags", "op": "contains", "values": ["b", "c"]}),
            vec![1, 4, 5],
        ),
        (
            json!({"attribute": "tags", "op": "not_contains", "value": "a"}),
            vec![2, 4, 7],
        ),
        (
            json!({"attribute": "tags", "op": "contains", "values": []}),
            vec![],
        ),
        (
            json!({"attribute": "tags", "op": "not_contains", "values": []}),
            vec![1, 2, 4, 5, 6, 7],
        ),
        (json!({"attribute": "tags", "op": "not_exists"}), vec![3]),
    ]
}

fn write_group(project: &Project, id: &str, condition: &Value) {
    let def = json!({"include": [{"conditions": [condition]}]});
    project.write(&format!("queries/{id}.json"), &def.to_string());
}

/// Every case, as canonical and as each alias, evaluated in one scan.
#[test]
fn every_operator_and_alias_matches_the_spec() {
    let (batch, rows) = fixture();
    let project = Project::new();
    project.write_parquet("customers.parquet", &batch);
    let mut expected: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut reference_groups = Vec::new();
    for (i, (condition, want)) in cases().into_iter().enumerate() {
        let op = Op::parse(condition["op"].as_str().unwrap()).unwrap();
        let entry = op.info();
        for (j, spelling) in std::iter::once(entry.name)
            .chain(entry.aliases.iter().copied())
            .enumerate()
        {
            let mut c = condition.clone();
            c["op"] = json!(spelling.to_uppercase());
            let id = format!("case{i:03}_{j}");
            write_group(&project, &id, &c);
            expected.insert(id.clone(), want.clone());
            reference_groups.push(GroupDef {
                id,
                json: json!({"include": [{"conditions": [c]}]}),
            });
        }
    }
    let as_of = reference::instant(&json!(harness::AS_OF));
    let by_reference = reference::evaluate(&rows, &reference_groups, as_of);
    let by_engine = harness::runtime().block_on(project.members()).unwrap();
    for (id, members) in by_engine {
        let want = &expected[&id];
        let case = &reference_groups.iter().find(|g| g.id == id).unwrap().json;
        assert_eq!(members, harness::int_ids(want), "engine, {id}: {case}");
        let reference: Vec<i64> = by_reference[&id]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut reference = reference;
        reference.sort();
        assert_eq!(&reference, want, "reference evaluator, {id}: {case}");
    }
}

/// SQL escape hatch: NULL results are false, like every other condition.
#[test]
fn sql_conditions_follow_the_null_rule() {
    let (batch, _) = fixture();
    let project = Project::new();
    project.write_parquet("customers.parquet", &batch);
    for (id, sql) in [
        ("either", "n > 10 OR s = 'banana'"),
        ("negated", "NOT (n > 10)"),
        ("like", "lower(s) LIKE 'app%'"),
    ] {
        write_group(&project, id, &json!({"sql": sql}));
    }
    let members: BTreeMap<_, _> = harness::runtime()
        .block_on(project.members())
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(members["either"], harness::int_ids(&[2, 3, 7]));
    assert_eq!(members["negated"], harness::int_ids(&[1, 5, 6]));
    assert_eq!(members["like"], harness::int_ids(&[1, 2, 7]));
}

/// Regression (issue 20, SQL conditions split at `AND` / `OR`): each leaf goes to the
/// scan's own evaluators, and the condition must hold exactly where DataFusion's whole
/// evaluation of it holds, nulls included. Enough leaves on `n` and `s` for them to be
/// evaluated per value and by the substring search.
#[test]
fn split_sql_conditions_hold_where_the_whole_condition_holds() {
    let (batch, _) = fixture();
    let project = Project::new();
    project.write_parquet("customers.parquet", &batch);
    let cases = [
        "n > 10 AND s = 'banana'",
        "n >= 18 OR b",
        "(n > 0 AND b) OR strpos(s, 'pp') > 0",
        "strpos(s, 'an') > 0 AND b",
        "strpos(lower(s), 'app') > 0 OR n < 0",
        "s >= 'a' AND s <= 'b'",
        "x > 1 AND (n < 18 OR s IS NULL)",
        "NOT (n > 10) AND b",
        "NOT (n > 10 AND b)",
        "b AND n / 2 > 4",
        "n % 2 = 0 OR x < 0",
        "b IS NOT TRUE OR x IS NULL",
        "(n = 18 OR n = 17) AND (x >= 2 OR s LIKE 'b%') AND NOT b",
        "CAST(n AS DOUBLE) * x > 20 OR d > DATE '2026-10-01'",
    ];
    for (i, sql) in cases.iter().enumerate() {
        write_group(&project, &format!("sql{i:02}"), &json!({"sql": sql}));
    }
    let members: BTreeMap<_, _> = harness::runtime()
        .block_on(project.members())
        .unwrap()
        .into_iter()
        .collect();
    let context = datafusion::prelude::SessionContext::new();
    context.register_batch("t", batch).unwrap();
    for (i, sql) in cases.iter().enumerate() {
        let query = format!("SELECT customer_id FROM t WHERE ({sql}) IS TRUE ORDER BY 1");
        let rows = harness::runtime()
            .block_on(async { context.sql(&query).await?.collect().await })
            .unwrap();
        let whole: Vec<i64> = rows
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(
            members[&format!("sql{i:02}")],
            harness::int_ids(&whole),
            "{sql}"
        );
    }
}

/// SPEC §2.1: clauses, empty clauses, statics (exclude wins), references.
#[test]
fn membership_algebra() {
    let (batch, _) = fixture();
    let project = Project::new();
    project.write_parquet("customers.parquet", &batch);
    let groups = [
        (
            "all_empty",
            json!({"include": [{"match": "all", "conditions": []}]}),
            vec![1, 2, 3, 4, 5, 6, 7],
        ),
        (
            "any_empty",
            json!({"include": [{"match": "any", "conditions": []}]}),
            vec![],
        ),
        (
            "no_include",
            json!({"exclude": [{"conditions": []}]}),
            vec![],
        ),
        (
            "static_only",
            json!({"static": {"include": [1, "2", 99], "exclude": ["2"]}}),
            vec![1],
        ),
        (
            "adults",
            json!({"include": [{"conditions": [{"attribute": "n", "op": ">=", "value": 18}]}],
                   "static": {"include": [5]}}),
            vec![2, 5, 7],
        ),
        (
            "seed_mistake",
            json!({"include": [{"conditions": []}],
                   "exclude": [{"match": "all", "conditions": [
                        {"attribute": "n", "op": "lt", "value": 18},
                        {"attribute": "n", "op": "not_exists"}]}]}),
            vec![1, 2, 3, 4, 5, 6, 7],
        ),
        (
            "seed_fixed",
            json!({"include": [{"conditions": []}],
                   "exclude": [{"match": "any", "conditions": [
                        {"attribute": "n", "op": "lt", "value": 18},
                        {"attribute": "n", "op": "not_exists"}]}]}),
            vec![2, 7],
        ),
        (
            "refs",
            json!({"include": [{"conditions": [{"op": "not in group", "value": "adults"}]}],
                   "exclude": [{"conditions": [{"op": "in group", "value": "static_only"}]}],
                   "static": {"exclude": [6]}}),
            vec![3, 4],
        ),
    ];
    for (id, def, _) in &groups {
        project.write(&format!("queries/{id}.json"), &def.to_string());
    }
    let members: BTreeMap<_, _> = harness::runtime()
        .block_on(project.members())
        .unwrap()
        .into_iter()
        .collect();
    for (id, _, want) in &groups {
        assert_eq!(members[*id], harness::int_ids(want), "{id}");
    }
}

/// `schema/vocabulary.json` is the operator and aggregate registry as `GET /v1/schema`
/// serves it; the editor schema's tests (tests/python/test_schema.py) read it. Run with
/// `COHORT_BLESS=1` to rewrite it after changing the registry.
#[test]
fn vocabulary_json_is_the_registry() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/vocabulary.json");
    let want = serde_json::to_string_pretty(&cohort::definition::vocabulary()).unwrap() + "\n";
    if std::env::var_os("COHORT_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is not the registry (cohort/src/definition/ops.rs, aggregates.rs): rerun with COHORT_BLESS=1",
        path.display()
    );
}
