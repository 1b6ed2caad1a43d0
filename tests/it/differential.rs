//! Differential test: random definitions over random data (nulls everywhere; int, negative
//! int and string ids; rows in random order) must give exactly the reference evaluator's
//! members, through the whole pipeline: scan, algebra, id mapping, publish, verified load.

use std::collections::BTreeMap;
use std::sync::Arc;

use cohort::pipeline::RunOptions;
use cohort::Snapshot;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, ListBuilder, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::harness::{self, Project};
use super::reference::{self, Cell, GroupDef, Row};

/// Non-ASCII values too: `ignore_case` lowers them by Unicode rules (the Kelvin sign
/// lowers to an ASCII `k`).
const STRINGS: &[&str] = &["a", "A", "ab", "b", "", "ba", "Äb", "äB", "\u{212A}a", "ka"];
const TAGS: &[&str] = &["a", "b", "c"];
/// Dates and times cluster around as_of (2026-11-22) so windows hit their boundaries.
const AS_OF_DAY: i32 = 20_414;

#[derive(Debug, Clone)]
struct Customer {
    s: Option<&'static str>,
    n: Option<i64>,
    x: Option<f64>,
    b: Option<bool>,
    d: Option<i32>,
    t: Option<i64>,
    tags: Option<Vec<&'static str>>,
}

fn customer() -> impl Strategy<Value = Customer> {
    (
        proptest::option::weighted(0.8, proptest::sample::select(STRINGS)),
        proptest::option::weighted(0.8, -2i64..4),
        proptest::option::weighted(
            0.8,
            proptest::sample::select(&[-1.0, -0.0, 0.0, 0.5, 1.0][..]),
        ),
        proptest::option::weighted(0.8, any::<bool>()),
        proptest::option::weighted(0.8, AS_OF_DAY - 4..AS_OF_DAY + 2),
        proptest::option::weighted(0.8, -80i64..30),
        proptest::option::weighted(
            0.8,
            proptest::collection::vec(proptest::sample::select(TAGS), 0..3),
        ),
    )
        .prop_map(|(s, n, x, b, d, t, tags)| Customer {
            s,
            n,
            x,
            b,
            d,
            // hours around as_of, in microseconds
            t: t.map(|h| (AS_OF_DAY as i64 * 24 + h) * 3_600_000_000),
            tags,
        })
}

fn string_value() -> impl Strategy<Value = Value> {
    proptest::sample::select(STRINGS).prop_map(|s| json!(s))
}

fn date_value() -> impl Strategy<Value = Value> {
    (AS_OF_DAY - 4..AS_OF_DAY + 2, proptest::bool::ANY).prop_map(|(d, with_time)| {
        let date =
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(d as i64);
        if with_time {
            json!(format!("{date}T06:00:00Z"))
        } else {
            json!(date.to_string())
        }
    })
}

fn window() -> impl Strategy<Value = Value> {
    proptest::sample::select(&["1d", "2d", "3d", "24h", "30h", "1w", "0d"][..])
        .prop_map(|w| json!(w))
}

fn accepts_ignore_case(op: &str) -> bool {
    cohort::definition::Op::parse(op)
        .unwrap()
        .accepts_ignore_case()
}

/// One attribute condition of a type-correct shape.
fn attribute_condition() -> impl Strategy<Value = Value> {
    let string_ops = proptest::sample::select(
        &[
            "equals",
            "not_equals",
            "contains",
            "not_contains",
            "starts_with",
            "ends_with",
            "gt",
            "gte",
            "lt",
            "lte",
        ][..],
    );
    let list_ops = proptest::sample::select(&["in", "not_in", "contains", "not_contains"][..]);
    let number_ops =
        proptest::sample::select(&["equals", "not_equals", "gt", "gte", "lt", "lte"][..]);
    let instant_ops = proptest::sample::select(
        &["before", "after", "on", "equals", "not_equals", "gt", "lte"][..],
    );
    let temporal_column = proptest::sample::select(&["d", "t"][..]);
    prop_oneof![
        (string_ops, string_value(), any::<bool>()).prop_map(|(op, v, ic)| {
            json!({"attribute": "s", "op": op, "value": v, "ignore_case": ic && accepts_ignore_case(op)})
        }),
        (list_ops, proptest::collection::vec(string_value(), 0..3), any::<bool>()).prop_map(|(op, vs, ic)| {
            json!({"attribute": "s", "op": op, "values": vs, "ignore_case": ic})
        }),
        (proptest::sample::select(&["s", "n", "x", "b", "d", "t", "tags"][..]), any::<bool>()).prop_map(|(c, e)| {
            json!({"attribute": c, "op": if e { "exists" } else { "doesn't exist" }})
        }),
        (number_ops.clone(), -2i64..4).prop_map(|(op, v)| json!({"attribute": "n", "op": op, "value": v})),
        (number_ops, proptest::sample::select(&[-1.0, 0.0, 0.5, 0.75][..]))
            .prop_map(|(op, v)| json!({"attribute": "x", "op": op, "value": v})),
        (-2i64..4, -2i64..4).prop_map(|(a, b)| json!({"attribute": "n", "op": "between", "values": [a.min(b), a.max(b)]})),
        (proptest::sample::select(&["in", "not_in"][..]), proptest::collection::vec(-2i64..4, 0..3))
            .prop_map(|(op, vs)| json!({"attribute": "n", "op": op, "values": vs})),
        proptest::sample::select(&["is true", "is false"][..]).prop_map(|op| json!({"attribute": "b", "op": op})),
        (temporal_column.clone(), instant_ops, date_value())
            .prop_map(|(c, op, v)| json!({"attribute": c, "op": op, "value": v})),
        (temporal_column, any::<bool>(), window()).prop_map(|(c, within, w)| {
            json!({"attribute": c, "op": if within { "within_last" } else { "not_within_last" }, "value": w})
        }),
        (proptest::sample::select(&["contains", "not_contains"][..]), proptest::collection::vec(proptest::sample::select(TAGS), 0..3))
            .prop_map(|(op, vs)| json!({"attribute": "tags", "op": op, "values": vs})),
    ]
}

/// An order: customer index (past the customers: not in the table), hours from as_of,
/// amount, category.
#[derive(Debug, Clone)]
struct Event {
    customer: usize,
    hours: i64,
    amount: Option<f64>,
    category: Option<&'static str>,
}

const CATEGORIES: &[&str] = &["shoes", "Shoes", "hats"];

fn event(customers: usize) -> impl Strategy<Value = Event> {
    (
        0..customers + 2,
        -400i64..60,
        proptest::option::weighted(
            0.8,
            proptest::sample::select(&[-5.0, 0.0, 0.1, 0.2, 2.5, 10.0][..]),
        ),
        proptest::option::weighted(0.8, proptest::sample::select(CATEGORIES)),
    )
        .prop_map(|(customer, hours, amount, category)| Event {
            customer,
            hours,
            amount,
            category,
        })
}

/// A behavioural condition of a type-correct shape (SPEC §3.4).
fn event_condition() -> impl Strategy<Value = Value> {
    let filter = prop_oneof![
        Just(json!([])),
        Just(
            json!([{"attribute": "category", "op": "equals", "value": "shoes", "ignore_case": true}])
        ),
        Just(json!([{"attribute": "amount", "op": ">", "value": 0}])),
        Just(json!([{"attribute": "category", "op": "doesn't exist"}])),
    ];
    let window = prop_oneof![
        Just(json!({})),
        proptest::sample::select(&["1d", "5d", "2w", "24h"][..])
            .prop_map(|w| json!({"within_last": w})),
        date_value().prop_map(|d| json!({"before": d})),
        date_value().prop_map(|d| json!({"after": d})),
    ];
    let number_ops =
        proptest::sample::select(&["equals", "not_equals", "gt", "gte", "lt", "lte"][..]);
    let comparison = prop_oneof![
        (proptest::sample::select(&["count", "count_distinct", "sum", "min", "max", "avg"][..]), number_ops, -1i64..4)
            .prop_map(|(aggregate, op, v)| {
                let column = match aggregate {
                    "count" => Value::Null,
                    "count_distinct" => json!("category"),
                    _ => json!("amount"),
                };
                json!({"aggregate": aggregate, "column": column, "op": op, "value": v})
            }),
        // Sums and means that land exactly on decimal bounds (0.1 + 0.2 = 0.3).
        (proptest::sample::select(&["sum", "avg"][..]), number_ops_exact(), proptest::sample::select(&[0.1, 0.15, 0.3, 0.2, 2.6, -4.9][..]))
            .prop_map(|(aggregate, op, v)| json!({"aggregate": aggregate, "column": "amount", "op": op, "value": v})),
        (proptest::sample::select(&["first", "last"][..]), any::<bool>(), window_value(), date_value(), any::<bool>())
            .prop_map(|(aggregate, relative, w, d, flip)| {
                if relative {
                    json!({"aggregate": aggregate, "op": if flip { "within_last" } else { "not_within_last" }, "value": w})
                } else {
                    json!({"aggregate": aggregate, "op": if flip { "before" } else { "after" }, "value": d})
                }
            }),
        (proptest::sample::select(&["min", "max"][..]), string_value()).prop_map(|(aggregate, v)| {
            json!({"aggregate": aggregate, "column": "category", "op": "gte", "value": v})
        }),
    ];
    (filter, window, comparison).prop_map(|(filter, window, comparison)| {
        let mut c = comparison.as_object().unwrap().clone();
        c.retain(|_, v| !v.is_null());
        c.insert("events".into(), json!("orders"));
        if filter.as_array().is_some_and(|f| !f.is_empty()) {
            c.insert("where".into(), filter);
        }
        for (k, v) in window.as_object().unwrap() {
            c.insert(k.clone(), v.clone());
        }
        Value::Object(c)
    })
}

fn number_ops_exact() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(&["equals", "not_equals", "gt", "gte", "lt", "lte"][..])
}

fn window_value() -> impl Strategy<Value = Value> {
    window()
}

fn clause(groups_before: usize) -> impl Strategy<Value = Value> {
    let reference = (0..groups_before.max(1), any::<bool>())
        .prop_map(|(g, neg)| json!({"op": if neg { "not in group" } else { "in group" }, "value": format!("g{g}")}));
    let condition = if groups_before == 0 {
        prop_oneof![4 => attribute_condition(), 2 => event_condition()].boxed()
    } else {
        prop_oneof![4 => attribute_condition(), 2 => event_condition(), 1 => reference].boxed()
    };
    (any::<bool>(), proptest::collection::vec(condition, 0..4))
        .prop_map(|(any, conditions)| json!({"match": if any { "any" } else { "all" }, "conditions": conditions}))
}

fn group(index: usize, customers: usize) -> impl Strategy<Value = Value> {
    let ids = proptest::collection::vec(0..customers + 3, 0..3);
    (
        proptest::collection::vec(clause(index), 0..3),
        proptest::collection::vec(clause(index), 0..2),
        ids.clone(),
        ids,
    )
        .prop_map(|(include, exclude, static_in, static_out)| {
            json!({"include": include, "exclude": exclude,
                   "static": {"include": static_in, "exclude": static_out}})
        })
}

/// A group of 4 to 8 comparisons on one number, date or timestamp column, in an `any` and
/// an `all` clause: enough on one column that the scan finds each row's range of values
/// by binary search and evaluates the conditions once per range (`evaluate/ranges.rs`).
fn ranged_group() -> impl Strategy<Value = Value> {
    let number_ops =
        proptest::sample::select(&["equals", "not_equals", "gt", "gte", "lt", "lte"][..]);
    let instant_ops = proptest::sample::select(
        &["before", "after", "on", "equals", "not_equals", "gt", "lte"][..],
    );
    let on_n = prop_oneof![
        (number_ops.clone(), -3i64..5)
            .prop_map(|(op, v)| json!({"attribute": "n", "op": op, "value": v})),
        (-2i64..4, -2i64..4).prop_map(
            |(a, b)| json!({"attribute": "n", "op": "between", "values": [a.min(b), a.max(b)]})
        ),
        (
            proptest::sample::select(&["in", "not_in"][..]),
            proptest::collection::vec(-2i64..4, 0..3)
        )
            .prop_map(|(op, vs)| json!({"attribute": "n", "op": op, "values": vs})),
        any::<bool>().prop_map(
            |e| json!({"attribute": "n", "op": if e { "exists" } else { "doesn't exist" }})
        ),
    ];
    let on_x = (
        number_ops,
        proptest::sample::select(&[-1.0, -0.5, 0.0, 0.5, 0.75, 1.0, 2.0][..]),
    )
        .prop_map(|(op, v)| json!({"attribute": "x", "op": op, "value": v}));
    let on_time = |c: &'static str| {
        prop_oneof![
            (instant_ops.clone(), date_value())
                .prop_map(move |(op, v)| json!({"attribute": c, "op": op, "value": v})),
            (any::<bool>(), window()).prop_map(move |(within, w)| {
                json!({"attribute": c, "op": if within { "within_last" } else { "not_within_last" }, "value": w})
            }),
        ]
    };
    let conditions = prop_oneof![
        proptest::collection::vec(on_n, 4..9),
        proptest::collection::vec(on_x, 4..9),
        proptest::collection::vec(on_time("d"), 4..9),
        proptest::collection::vec(on_time("t"), 4..9),
    ];
    (conditions, 0usize..9).prop_map(|(conditions, split)| {
        let split = split.min(conditions.len());
        json!({"include": [{"match": "any", "conditions": conditions[..split]},
                           {"match": "all", "conditions": conditions[split..]}],
               "static": {"include": [], "exclude": []}})
    })
}

#[derive(Debug, Clone, Copy)]
enum IdKind {
    Small,
    Negative,
    Text,
}

type Scenario = (Vec<Customer>, Vec<Value>, IdKind, Vec<usize>, Vec<Event>);

fn scenario() -> impl Strategy<Value = Scenario> {
    proptest::collection::vec(customer(), 0..40).prop_flat_map(|customers| {
        let n = customers.len();
        let groups = (group(0, n), group(1, n), group(2, n), ranged_group())
            .prop_map(|(a, b, c, d)| vec![a, b, c, d]);
        let kind = prop_oneof![
            Just(IdKind::Small),
            Just(IdKind::Negative),
            Just(IdKind::Text)
        ];
        let order = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
        let events = proptest::collection::vec(event(n), 0..60);
        (Just(customers), groups, kind, order, events)
    })
}

/// The external id of the customer at `index` (static lists name customers by index).
fn external_id(kind: IdKind, index: usize) -> String {
    match kind {
        IdKind::Small => (index * 3).to_string(),
        IdKind::Negative => (index as i64 - 10).to_string(),
        IdKind::Text => format!("c{index}"),
    }
}

fn table(customers: &[Customer], kind: IdKind, order: &[usize]) -> (RecordBatch, Vec<Row>) {
    let rows: Vec<(usize, &Customer)> = order.iter().map(|&i| (i, &customers[i])).collect();
    let ids: ArrayRef = match kind {
        IdKind::Text => Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(i, _)| external_id(kind, *i)),
        )),
        _ => Arc::new(Int64Array::from_iter_values(
            rows.iter()
                .map(|(i, _)| external_id(kind, *i).parse::<i64>().unwrap()),
        )),
    };
    let mut tags = ListBuilder::new(StringBuilder::new());
    for (_, c) in &rows {
        match &c.tags {
            Some(items) => {
                for i in items {
                    tags.values().append_value(i);
                }
                tags.append(true);
            }
            None => tags.append(false),
        }
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("customer_id", ids),
        (
            "s",
            Arc::new(rows.iter().map(|(_, c)| c.s).collect::<StringArray>()),
        ),
        (
            "n",
            Arc::new(rows.iter().map(|(_, c)| c.n).collect::<Int64Array>()),
        ),
        (
            "x",
            Arc::new(rows.iter().map(|(_, c)| c.x).collect::<Float64Array>()),
        ),
        (
            "b",
            Arc::new(rows.iter().map(|(_, c)| c.b).collect::<BooleanArray>()),
        ),
        (
            "d",
            Arc::new(rows.iter().map(|(_, c)| c.d).collect::<Date32Array>()),
        ),
        (
            "t",
            Arc::new(
                rows.iter()
                    .map(|(_, c)| c.t)
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
        ),
        ("tags", Arc::new(tags.finish())),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let reference_rows = rows
        .iter()
        .map(|(i, c)| {
            let mut cells = BTreeMap::new();
            cells.insert("s".into(), c.s.map_or(Cell::Null, |v| Cell::Str(v.into())));
            cells.insert("n".into(), c.n.map_or(Cell::Null, Cell::Int));
            cells.insert("x".into(), c.x.map_or(Cell::Null, Cell::Float));
            cells.insert("b".into(), c.b.map_or(Cell::Null, Cell::Bool));
            cells.insert("d".into(), c.d.map_or(Cell::Null, Cell::Date));
            cells.insert("t".into(), c.t.map_or(Cell::Null, Cell::Ts));
            cells.insert(
                "tags".into(),
                c.tags.as_ref().map_or(Cell::Null, |v| {
                    Cell::List(v.iter().map(|s| s.to_string()).collect())
                }),
            );
            Row {
                id: external_id(kind, *i),
                cells,
                events: Vec::new(),
            }
        })
        .collect();
    (batch, reference_rows)
}

fn event_micros(e: &Event) -> i64 {
    (AS_OF_DAY as i64 * 24 + e.hours) * 3_600_000_000
}

fn event_cells(e: &Event) -> BTreeMap<String, Cell> {
    BTreeMap::from([
        (reference::EVENT_TIME.to_string(), Cell::Ts(event_micros(e))),
        (
            "amount".to_string(),
            e.amount.map_or(Cell::Null, Cell::Float),
        ),
        (
            "category".to_string(),
            e.category.map_or(Cell::Null, |c| Cell::Str(c.into())),
        ),
    ])
}

fn orders_table(events: &[Event], kind: IdKind) -> RecordBatch {
    let ids: ArrayRef = match kind {
        IdKind::Text => Arc::new(StringArray::from_iter_values(
            events.iter().map(|e| external_id(kind, e.customer)),
        )),
        _ => Arc::new(Int64Array::from_iter_values(
            events
                .iter()
                .map(|e| external_id(kind, e.customer).parse::<i64>().unwrap()),
        )),
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("customer_id", ids),
        (
            reference::EVENT_TIME,
            Arc::new(
                events
                    .iter()
                    .map(|e| Some(event_micros(e)))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
        ),
        (
            "amount",
            Arc::new(events.iter().map(|e| e.amount).collect::<Float64Array>()),
        ),
        (
            "category",
            Arc::new(events.iter().map(|e| e.category).collect::<StringArray>()),
        ),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

/// Static lists are generated as customer indexes; write them as external ids (strings
/// for text ids, integers otherwise, with an occasional string-written integer).
fn with_external_static_ids(mut def: Value, kind: IdKind) -> Value {
    for key in ["include", "exclude"] {
        let ids = def["static"][key].as_array().cloned().unwrap_or_default();
        let written: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let id = external_id(kind, v.as_u64().unwrap() as usize);
                match kind {
                    IdKind::Text => json!(id),
                    _ if j % 2 == 1 => json!(id),
                    _ => json!(id.parse::<i64>().unwrap()),
                }
            })
            .collect();
        def["static"][key] = json!(written);
    }
    def
}

/// How the customers file is encoded: string columns arrive as dictionaries (evaluated
/// once per distinct value) only when every page is dictionary-encoded.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// The writer's defaults: dictionary pages, one row group.
    Default,
    /// No dictionaries: every condition is evaluated row by row.
    Plain,
    /// Dictionary pages in row groups of 3 rows: a new dictionary every few rows.
    SmallRowGroups,
}

impl Layout {
    fn properties(self) -> Option<datafusion::parquet::file::properties::WriterProperties> {
        use datafusion::parquet::file::properties::WriterProperties;
        match self {
            Layout::Default => None,
            Layout::Plain => Some(
                WriterProperties::builder()
                    .set_dictionary_enabled(false)
                    .build(),
            ),
            Layout::SmallRowGroups => Some(
                WriterProperties::builder()
                    .set_max_row_group_row_count(Some(3))
                    .build(),
            ),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, max_shrink_iters: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn columnar_engine_equals_reference(
        (customers, groups, kind, order, events) in scenario(),
        layout in prop_oneof![Just(Layout::Default), Just(Layout::Plain), Just(Layout::SmallRowGroups)],
    ) {
        let (batch, mut rows) = table(&customers, kind, &order);
        let project = Project::new();
        harness::write_parquet_with(&project.path("customers.parquet"), &batch, layout.properties());
        project.write_parquet("orders.parquet", &orders_table(&events, kind));
        for row in &mut rows {
            row.events = events
                .iter()
                .filter(|e| external_id(kind, e.customer) == row.id)
                .map(event_cells)
                .collect();
        }
        let defs: Vec<GroupDef> = groups
            .into_iter()
            .enumerate()
            .map(|(i, def)| GroupDef { id: format!("g{i}"), json: with_external_static_ids(def, kind) })
            .collect();
        for d in &defs {
            project.write(&format!("queries/{}.json", d.id), &d.json.to_string());
        }
        let as_of = reference::instant(&json!(harness::AS_OF));
        let want = reference::evaluate(&rows, &defs, as_of);

        let pipeline = project.pipeline();
        let published = harness::runtime().block_on(async {
            pipeline.run(RunOptions::default()).await?;
            Ok::<_, cohort::Error>(Snapshot::open(pipeline.publish_url()).await?)
        });
        let snapshot = published.unwrap_or_else(|e| {
            let defs: Vec<String> = defs.iter().map(|d| format!("{}: {}", d.id, d.json)).collect();
            panic!("{e}\n{}", defs.join("\n"))
        });
        for d in &defs {
            let bitmap = snapshot.bitmap(&d.id).unwrap();
            let mut got: Vec<String> = bitmap.iter().map(|b| snapshot.external_id(b)).collect();
            got.sort();
            prop_assert_eq!(&got, &want[&d.id], "group {} = {}", d.id, d.json);
            for id in &want[&d.id] {
                prop_assert!(snapshot.contains(&d.id, id).unwrap());
            }
        }
    }
}
