//! A row-at-a-time reference evaluator of SPEC §2.1/§2.2, written straight from the spec
//! and independent of the engine (it shares only the operator vocabulary). The columnar
//! engine must agree with it on every row.

use std::collections::BTreeMap;

use cohort::definition::Op;
use serde_json::Value;

const DAY_NS: i128 = 86_400_000_000_000;

/// One cell of the customers table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Days since the epoch.
    Date(i32),
    /// Microseconds since the epoch, UTC.
    Ts(i64),
    List(Vec<String>),
    /// An exact rational `numerator / denominator` (denominator > 0): a float sum or mean.
    Exact(i128, i128),
}

/// Float values are summed at this many decimal places (SPEC §1: sums must not depend
/// on the order of additions; docs/decisions.md).
const SUM_SCALE: u32 = 10;

/// A number as the exact decimal its shortest form is written as: (mantissa, 10^digits).
fn exact(x: f64) -> (i128, i128) {
    let text = format!("{x}");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let mantissa: i128 = format!("{whole}{fraction}").parse().unwrap();
    (mantissa, 10i128.pow(fraction.len() as u32))
}

/// `x` in units of 10^-SUM_SCALE, rounded half away from zero.
fn sum_units(x: f64) -> i128 {
    let (m, d) = exact(x);
    let scaled = m * 10i128.pow(SUM_SCALE);
    let (q, r) = (scaled / d, scaled % d);
    if 2 * r.abs() >= d {
        q + scaled.signum()
    } else {
        q
    }
}

/// A customer: id plus named cells.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub cells: BTreeMap<String, Cell>,
    /// The customer's events (every one, including those after as_of), each with its
    /// time in the cell `EVENT_TIME`.
    pub events: Vec<BTreeMap<String, Cell>>,
}

/// The time column of reference events.
pub const EVENT_TIME: &str = "at";

/// A group definition in its JSON form, with its id.
pub struct GroupDef {
    pub id: String,
    pub json: Value,
}

/// Members (ids) of every group, in order; later groups may reference earlier ones.
pub fn evaluate(
    rows: &[Row],
    groups: &[GroupDef],
    as_of_ns: i128,
) -> BTreeMap<String, Vec<String>> {
    let mut result: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in groups {
        let clauses = |key: &str| {
            g.json
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let (include, exclude) = (clauses("include"), clauses("exclude"));
        let statics = |key: &str| -> Vec<String> {
            g.json
                .pointer(&format!("/static/{key}"))
                .and_then(Value::as_array)
                .map(|a| a.iter().map(id_text).collect())
                .unwrap_or_default()
        };
        let (static_in, static_out) = (statics("include"), statics("exclude"));
        let mut members = Vec::new();
        for row in rows {
            let clause_true = |c: &Value| clause(c, row, as_of_ns, &result);
            let dynamic = include.iter().any(clause_true) && !exclude.iter().any(clause_true);
            let member = (dynamic || static_in.contains(&row.id)) && !static_out.contains(&row.id);
            if member {
                members.push(row.id.clone());
            }
        }
        members.sort();
        result.insert(g.id.clone(), members);
    }
    result
}

fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn clause(c: &Value, row: &Row, as_of: i128, groups: &BTreeMap<String, Vec<String>>) -> bool {
    let any = c.get("match").and_then(Value::as_str) == Some("any");
    let conditions = c
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut results = conditions
        .iter()
        .map(|cond| condition(cond, row, as_of, groups));
    if any {
        results.any(|b| b)
    } else {
        results.all(|b| b)
    }
}

fn values_of(cond: &Value) -> Vec<Value> {
    match (cond.get("value"), cond.get("values")) {
        (Some(v), _) => vec![v.clone()],
        (None, Some(Value::Array(vs))) => vs.clone(),
        _ => Vec::new(),
    }
}

/// One condition on one row.
pub fn condition(
    cond: &Value,
    row: &Row,
    as_of: i128,
    groups: &BTreeMap<String, Vec<String>>,
) -> bool {
    if cond.get("events").is_some() {
        return event_condition(cond, row, as_of, groups);
    }
    let op = Op::parse(cond["op"].as_str().unwrap()).unwrap();
    let values = values_of(cond);
    if let Op::InGroup | Op::NotInGroup = op {
        let members = &groups[values[0].as_str().unwrap()];
        let is_member = members.contains(&row.id);
        return if op == Op::InGroup {
            is_member
        } else {
            !is_member
        };
    }
    let cell = &row.cells[cond["attribute"].as_str().unwrap()];
    match (op, cell) {
        (Op::NotExists, c) => return *c == Cell::Null,
        (Op::Exists, c) => return *c != Cell::Null,
        // The null rule: every other operator is false on a missing value.
        (_, Cell::Null) => return false,
        _ => {}
    }
    let ignore_case = cond
        .get("ignore_case")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match cell {
        Cell::Str(s) => string_op(op, s, &values, ignore_case),
        Cell::Int(i) => number_op(op, *i as f64, &values),
        Cell::Float(x) => number_op(op, *x, &values),
        Cell::Exact(n, d) => exact_op(op, *n, *d, &values),
        Cell::Bool(b) => match op {
            Op::IsTrue => *b,
            Op::IsFalse => !*b,
            Op::Equals => Value::Bool(*b) == values[0],
            Op::NotEquals => Value::Bool(*b) != values[0],
            Op::In => values.contains(&Value::Bool(*b)),
            Op::NotIn => !values.contains(&Value::Bool(*b)),
            _ => panic!("{op} on bool"),
        },
        Cell::Date(d) => instant_op(op, *d as i128 * DAY_NS, &values, as_of),
        Cell::Ts(us) => instant_op(op, *us as i128 * 1000, &values, as_of),
        Cell::List(items) => {
            let wanted: Vec<&str> = values.iter().map(|v| v.as_str().unwrap()).collect();
            let hit = items.iter().any(|i| wanted.contains(&i.as_str()));
            match op {
                Op::Contains => hit,
                Op::NotContains => !hit,
                _ => panic!("{op} on list"),
            }
        }
        Cell::Null => unreachable!(),
    }
}

/// SPEC §3.4, row at a time: the customer's events up to as_of that pass `where` and the
/// window, aggregated, then compared like an attribute (so the null rule applies).
fn event_condition(
    cond: &Value,
    row: &Row,
    as_of: i128,
    groups: &BTreeMap<String, Vec<String>>,
) -> bool {
    let time = |e: &BTreeMap<String, Cell>| match e[EVENT_TIME] {
        Cell::Ts(us) => us as i128 * 1000,
        ref other => panic!("event time {other:?}"),
    };
    let filters = cond
        .get("where")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let matching: Vec<&BTreeMap<String, Cell>> = row
        .events
        .iter()
        .filter(|e| time(e) <= as_of)
        .filter(|e| {
            let event_row = Row {
                id: row.id.clone(),
                cells: (*e).clone(),
                events: Vec::new(),
            };
            filters
                .iter()
                .all(|f| condition(f, &event_row, as_of, groups))
        })
        .filter(|e| {
            let t = time(e);
            cond.get("within_last")
                .is_none_or(|w| as_of - window(w) <= t && t <= as_of)
                && cond.get("before").is_none_or(|b| t < instant(b))
                && cond.get("after").is_none_or(|a| t > instant(a))
        })
        .collect();
    let column = cond.get("column").and_then(Value::as_str);
    let values: Vec<&Cell> = matching
        .iter()
        .map(|e| &e[column.unwrap_or(EVENT_TIME)])
        .filter(|c| **c != Cell::Null)
        .collect();
    let number = |c: &Cell| match c {
        Cell::Int(i) => *i as f64,
        Cell::Float(x) => *x,
        other => panic!("not a number: {other:?}"),
    };
    let order = |a: &&Cell, b: &&Cell| match (a, b) {
        (Cell::Str(x), Cell::Str(y)) => x.cmp(y),
        (Cell::Ts(x), Cell::Ts(y)) => x.cmp(y),
        _ => number(a).total_cmp(&number(b)),
    };
    let aggregate = match cond["aggregate"].as_str().unwrap() {
        "count" => Cell::Int(matching.len() as i64),
        "count_distinct" => {
            let mut distinct: Vec<String> = values.iter().map(|c| format!("{c:?}")).collect();
            distinct.sort();
            distinct.dedup();
            Cell::Int(distinct.len() as i64)
        }
        "sum" | "avg" if values.iter().any(|c| matches!(c, Cell::Float(_))) => {
            let total: i128 = values.iter().map(|c| sum_units(number(c))).sum();
            let scale = 10i128.pow(SUM_SCALE);
            match cond["aggregate"].as_str() {
                Some("sum") => Cell::Exact(total, scale),
                _ => Cell::Exact(total, scale * values.len() as i128),
            }
        }
        "sum" if values.is_empty() => Cell::Int(0),
        "sum" => Cell::Int(values.iter().map(|c| number(c) as i64).sum()),
        "avg" if values.is_empty() => Cell::Null,
        "avg" => Cell::Float(values.iter().map(|c| number(c)).sum::<f64>() / values.len() as f64),
        "min" | "first" => values
            .iter()
            .copied()
            .min_by(order)
            .cloned()
            .unwrap_or(Cell::Null),
        "max" | "last" => values
            .iter()
            .copied()
            .max_by(order)
            .cloned()
            .unwrap_or(Cell::Null),
        other => panic!("aggregate {other}"),
    };
    let aggregate_row = Row {
        id: row.id.clone(),
        cells: BTreeMap::from([("aggregate".to_string(), aggregate)]),
        events: Vec::new(),
    };
    let mut comparison = serde_json::Map::new();
    comparison.insert("attribute".into(), "aggregate".into());
    for key in ["op", "value", "values", "ignore_case"] {
        if let Some(v) = cond.get(key) {
            comparison.insert(key.into(), v.clone());
        }
    }
    condition(&Value::Object(comparison), &aggregate_row, as_of, groups)
}

fn string_op(op: Op, s: &str, values: &[Value], ignore_case: bool) -> bool {
    let fold = |x: &str| {
        if ignore_case {
            x.to_lowercase()
        } else {
            x.to_string()
        }
    };
    let s = fold(s);
    let vs: Vec<String> = values.iter().map(|v| fold(v.as_str().unwrap())).collect();
    match op {
        Op::Equals => s == vs[0],
        Op::NotEquals => s != vs[0],
        Op::In => vs.contains(&s),
        Op::NotIn => !vs.contains(&s),
        Op::Contains => vs.iter().any(|v| s.contains(v.as_str())),
        Op::NotContains => !vs.iter().any(|v| s.contains(v.as_str())),
        Op::StartsWith => vs.iter().any(|v| s.starts_with(v.as_str())),
        Op::EndsWith => vs.iter().any(|v| s.ends_with(v.as_str())),
        Op::Gt => s.as_bytes() > vs[0].as_bytes(),
        Op::Gte => s.as_bytes() >= vs[0].as_bytes(),
        Op::Lt => s.as_bytes() < vs[0].as_bytes(),
        Op::Lte => s.as_bytes() <= vs[0].as_bytes(),
        Op::Between => s.as_bytes() >= vs[0].as_bytes() && s.as_bytes() <= vs[1].as_bytes(),
        _ => panic!("{op} on string"),
    }
}

/// `n / d <op> values`, exactly: the literal is the decimal it is written as.
fn exact_op(op: Op, n: i128, d: i128, values: &[Value]) -> bool {
    let cmp = |v: &Value| {
        let (m, k) = exact(v.as_f64().unwrap());
        (n * k).cmp(&(m * d))
    };
    use std::cmp::Ordering::*;
    match op {
        Op::Equals => cmp(&values[0]) == Equal,
        Op::NotEquals => cmp(&values[0]) != Equal,
        Op::In => values.iter().any(|v| cmp(v) == Equal),
        Op::NotIn => !values.iter().any(|v| cmp(v) == Equal),
        Op::Gt => cmp(&values[0]) == Greater,
        Op::Gte => cmp(&values[0]) != Less,
        Op::Lt => cmp(&values[0]) == Less,
        Op::Lte => cmp(&values[0]) != Greater,
        Op::Between => cmp(&values[0]) != Less && cmp(&values[1]) != Greater,
        _ => panic!("{op} on an exact number"),
    }
}

fn number_op(op: Op, x: f64, values: &[Value]) -> bool {
    let vs: Vec<f64> = values.iter().map(|v| v.as_f64().unwrap()).collect();
    match op {
        Op::Equals => x == vs[0],
        Op::NotEquals => x != vs[0],
        Op::In => vs.contains(&x),
        Op::NotIn => !vs.contains(&x),
        Op::Gt => x > vs[0],
        Op::Gte => x >= vs[0],
        Op::Lt => x < vs[0],
        Op::Lte => x <= vs[0],
        Op::Between => x >= vs[0] && x <= vs[1],
        _ => panic!("{op} on number"),
    }
}

/// Parses a date (UTC midnight) or RFC 3339 timestamp to nanoseconds.
pub fn instant(v: &Value) -> i128 {
    let s = v.as_str().unwrap();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_nanos_opt()
            .unwrap() as i128;
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap() as i128
}

fn window(v: &Value) -> i128 {
    let s = v.as_str().unwrap();
    let (n, unit) = s.split_at(s.len() - 1);
    let hours: i128 = match unit {
        "h" => 1,
        "d" => 24,
        "w" => 168,
        _ => panic!("window {s}"),
    };
    n.parse::<i128>().unwrap() * hours * 3_600_000_000_000
}

fn instant_op(op: Op, t: i128, values: &[Value], as_of: i128) -> bool {
    match op {
        Op::WithinLast => as_of - window(&values[0]) <= t && t <= as_of,
        Op::NotWithinLast => t < as_of - window(&values[0]),
        Op::Before | Op::Lt => t < instant(&values[0]),
        Op::After | Op::Gt => t > instant(&values[0]),
        Op::Lte => t <= instant(&values[0]),
        Op::Gte => t >= instant(&values[0]),
        Op::On => t.div_euclid(DAY_NS) == instant(&values[0]).div_euclid(DAY_NS),
        Op::Equals => t == instant(&values[0]),
        Op::NotEquals => t != instant(&values[0]),
        Op::In => values.iter().any(|v| t == instant(v)),
        Op::NotIn => !values.iter().any(|v| t == instant(v)),
        Op::Between => instant(&values[0]) <= t && t <= instant(&values[1]),
        _ => panic!("{op} on instant"),
    }
}
