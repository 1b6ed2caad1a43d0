//! SPEC §1's determinism: the same data, definitions and as_of give the same members
//! whatever the partitioning, batch size or file layout (float aggregates included), and
//! whatever day the run happens on; definitions that cannot be evaluated the same way
//! every time are refused at validation; deep definitions do not overflow the stack.

use std::collections::BTreeMap;
use std::sync::Arc;

use cohort::ids::IdKey;
use datafusion::arrow::array::{
    ArrayRef, Decimal128Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::SessionConfig;
use serde_json::{json, Value};

use super::harness::{int_ids, runtime, Project, AS_OF};

const HOUR_US: i64 = 3_600_000_000;

fn as_of_us() -> i64 {
    chrono::DateTime::parse_from_rfc3339(AS_OF)
        .unwrap()
        .timestamp_micros()
}

/// Amounts in cents of the customers whose aggregates sit exactly on a boundary.
/// Customers 1..=4 have these; 5.. have many pseudo-random two-decimal amounts.
const BOUNDARY_CENTS: &[&[i64]] = &[&[10, 20], &[10, 20, 30], &[70, 10, 20], &[33, 33, 34]];
const CUSTOMERS: i64 = 60;

/// A small deterministic generator (no dependency on proptest's seeds).
fn cents(customer: i64, i: i64) -> i64 {
    let x = (customer * 7919 + i * 104_729) as u64;
    (x.wrapping_mul(6_364_136_223_846_793_005) >> 40) as i64 % 100_000 - 20_000
}

/// Every order, (customer, cents), in an order that mixes customers.
fn orders() -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for (c, amounts) in BOUNDARY_CENTS.iter().enumerate() {
        out.extend(amounts.iter().map(|a| (c as i64 + 1, *a)));
    }
    for customer in BOUNDARY_CENTS.len() as i64 + 1..=CUSTOMERS {
        out.extend((0..40).map(|i| (customer, cents(customer, i))));
    }
    // Interleave customers, so each one's orders spread over files and batches.
    out.sort_by_key(|(c, a)| (a.rem_euclid(7), *c, *a));
    out
}

/// Customers 1..=CUSTOMERS; their orders written to `files` Parquet files of small row
/// groups, in a folder the event table reads as one.
fn project(files: usize) -> Project {
    let p = Project::new();
    let ids: Vec<i64> = (1..=CUSTOMERS).collect();
    let customers = RecordBatch::try_from_iter(vec![(
        "customer_id",
        Arc::new(Int64Array::from(ids)) as ArrayRef,
    )])
    .unwrap();
    p.write_parquet("customers.parquet", &customers);
    let all = orders();
    let chunk = all.len().div_ceil(files);
    for (f, part) in all.chunks(chunk).enumerate() {
        let batch = RecordBatch::try_from_iter(vec![
            (
                "customer_id",
                Arc::new(Int64Array::from_iter_values(part.iter().map(|(c, _)| *c))) as ArrayRef,
            ),
            (
                "ordered_at",
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        part.iter().map(|_| as_of_us() - HOUR_US),
                    )
                    .with_timezone("UTC"),
                ) as ArrayRef,
            ),
            (
                "amount",
                Arc::new(Float64Array::from_iter_values(
                    part.iter().map(|(_, a)| *a as f64 / 100.0),
                )) as ArrayRef,
            ),
            (
                "price",
                Arc::new(
                    Decimal128Array::from_iter_values(part.iter().map(|(_, a)| *a as i128))
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ) as ArrayRef,
            ),
        ])
        .unwrap();
        let path = p.path(&format!("orders.parquet/part-{f}.parquet"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(37))
            .build();
        let mut writer = ArrowWriter::try_new(
            std::fs::File::create(path).unwrap(),
            batch.schema(),
            Some(props),
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
    p
}

/// (group, condition on the orders, who qualifies given a customer's amounts in cents).
type Case = (&'static str, Value, fn(&[i64]) -> bool);

fn cases() -> Vec<Case> {
    vec![
        // 0.10 + 0.20 averages to exactly 0.15: the bound is included.
        (
            "avg_from_015",
            json!({"aggregate": "avg", "column": "amount", "op": "between", "values": [0.15, 1000]}),
            |a| {
                a.iter().sum::<i64>() * 100 >= 15 * 100 * a.len() as i64
                    && a.iter().sum::<i64>() <= 100_000 * a.len() as i64
            },
        ),
        (
            "sum_is_03",
            json!({"aggregate": "sum", "column": "amount", "op": "=", "value": 0.3}),
            |a| a.iter().sum::<i64>() == 30,
        ),
        (
            "sum_is_06",
            json!({"aggregate": "sum", "column": "amount", "op": "=", "value": 0.6}),
            |a| a.iter().sum::<i64>() == 60,
        ),
        (
            "sum_is_1",
            json!({"aggregate": "sum", "column": "amount", "op": "=", "value": 1}),
            |a| a.iter().sum::<i64>() == 100,
        ),
        (
            "avg_is_02",
            json!({"aggregate": "avg", "column": "amount", "op": "=", "value": 0.2}),
            |a| a.iter().sum::<i64>() == 20 * a.len() as i64,
        ),
        (
            "avg_over_0333",
            json!({"aggregate": "avg", "column": "amount", "op": ">", "value": 0.33}),
            |a| a.iter().sum::<i64>() > 33 * a.len() as i64,
        ),
        (
            "sum_over_150",
            json!({"aggregate": "sum", "column": "amount", "op": ">=", "value": 150.5}),
            |a| a.iter().sum::<i64>() >= 15_050,
        ),
        (
            "avg_under_125",
            json!({"aggregate": "avg", "column": "amount", "op": "<=", "value": 125.25}),
            |a| a.iter().sum::<i64>() <= 12_525 * a.len() as i64,
        ),
        // The decimal column compares exactly too, never through a float.
        (
            "price_sum_is_03",
            json!({"aggregate": "sum", "column": "price", "op": "=", "value": 0.3}),
            |a| a.iter().sum::<i64>() == 30,
        ),
        (
            "price_avg_from_015",
            json!({"aggregate": "avg", "column": "price", "op": ">=", "value": 0.15}),
            |a| a.iter().sum::<i64>() >= 15 * a.len() as i64,
        ),
        (
            "price_max_over_0335",
            json!({"aggregate": "max", "column": "price", "op": ">", "value": 0.335}),
            |a| a.iter().max().is_some_and(|m| *m > 33),
        ),
    ]
}

fn expected() -> BTreeMap<String, Vec<IdKey>> {
    let mut by_customer: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (c, a) in orders() {
        by_customer.entry(c).or_default().push(a);
    }
    cases()
        .into_iter()
        .map(|(id, _, qualifies)| {
            let members: Vec<i64> = by_customer
                .iter()
                .filter(|(_, a)| qualifies(a))
                .map(|(c, _)| *c)
                .collect();
            (id.to_string(), int_ids(&members))
        })
        .collect()
}

fn write_cases(p: &Project) {
    for (id, condition, _) in cases() {
        let mut condition = condition;
        condition["events"] = json!("orders");
        p.write(
            &format!("queries/{id}.json"),
            &json!({"include": [{"conditions": [condition]}]}).to_string(),
        );
    }
}

#[test]
fn float_aggregates_do_not_depend_on_partitions_batches_or_files() {
    let expected = expected();
    // The boundary customers are in the groups their exact sums put them in.
    assert_eq!(expected["sum_is_03"], int_ids(&[1]));
    assert_eq!(expected["avg_is_02"], int_ids(&[2]));
    assert_eq!(expected["sum_is_1"], int_ids(&[3, 4]));
    assert!(expected["avg_from_015"].contains(&IdKey::Int(1)));
    let rt = runtime();
    for files in [1, 3] {
        let p = project(files);
        write_cases(&p);
        for partitions in [1, 2, 8] {
            for batch_size in [5, 64, 8192] {
                let config = SessionConfig::new()
                    .with_target_partitions(partitions)
                    .with_batch_size(batch_size);
                let engine = cohort::Engine::local_with(config);
                let got: BTreeMap<String, Vec<IdKey>> = rt
                    .block_on(p.members_in(engine))
                    .unwrap()
                    .into_iter()
                    .collect();
                assert_eq!(
                    got, expected,
                    "{files} files, {partitions} partitions, batches of {batch_size}"
                );
            }
        }
    }
}

/// A customer with a timestamp an hour before as_of, one a day after it, one missing.
fn clock_project() -> Project {
    let p = Project::new();
    let t = as_of_us();
    let customers = RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
        ),
        (
            "seen",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    Some(t - HOUR_US),
                    Some(t + 24 * HOUR_US),
                    None,
                ])
                .with_timezone("UTC"),
            ) as ArrayRef,
        ),
        (
            "email",
            Arc::new(StringArray::from(vec![
                Some("a@x.com"),
                Some("b@y.com"),
                None,
            ])) as ArrayRef,
        ),
    ])
    .unwrap();
    p.write_parquet("customers.parquet", &customers);
    p
}

#[test]
fn sql_clock_functions_mean_as_of() {
    // (sql, members at AS_OF, whatever day the test runs)
    let cases: &[(&str, &[i64])] = &[
        ("seen <= now()", &[1]),
        (
            "seen > now() - INTERVAL '2 hours' AND seen <= current_timestamp",
            &[1],
        ),
        ("CAST(seen AS DATE) < current_date()", &[1]),
        ("CAST(seen AS DATE) > current_date()", &[2]),
        ("current_time() = '00:00:00'", &[1, 2, 3]),
    ];
    let p = clock_project();
    for (i, (sql, _)) in cases.iter().enumerate() {
        p.write(
            &format!("queries/case{i}.json"),
            &json!({"include": [{"conditions": [{"sql": sql}]}]}).to_string(),
        );
    }
    let members = runtime().block_on(p.members()).unwrap();
    for (i, (sql, want)) in cases.iter().enumerate() {
        assert_eq!(members[i].1, int_ids(want), "{sql}");
    }
}

#[test]
fn sql_that_cannot_run_the_same_way_every_time_is_refused_at_validation() {
    let p = clock_project();
    let bad = [
        (
            "volatile",
            "uuid() = email",
            "calls 'uuid()', which is not deterministic",
        ),
        (
            "division",
            "seen IS NULL OR 1 / 0 = 1",
            "cannot be evaluated",
        ),
        ("cast", "CAST('abc' AS INT) = 1", "cannot be evaluated"),
        ("regex", "email ~ '(unclosed'", "cannot be evaluated"),
        (
            "repeat",
            "repeat(email, 100000000) = 'x'",
            "building 100000000 elements",
        ),
        (
            "series",
            "cardinality(range(0, 1000000000)) > 0",
            "'range()' building 1000000000",
        ),
    ];
    for (id, sql, _) in bad {
        p.write(
            &format!("queries/{id}.toml"),
            &format!("[[include]]\nconditions = [{{ sql = \"{sql}\" }}]\n"),
        );
    }
    let out = p.cohort(&["validate", "--customers=customers.parquet"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for (id, sql, wanted) in bad {
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains(&format!("group '{id}'")))
            .unwrap_or_else(|| panic!("no problem for '{id}' in:\n{}", out.stderr));
        assert!(line.contains(wanted), "{id}: '{line}' lacks '{wanted}'");
        assert!(line.contains(sql), "{id}: '{line}' does not quote the sql");
    }
}

/// Runs `f` in a thread with the default 2 MiB test stack, and its runtime's workers too.
fn on_small_stacks<T: Send + 'static>(
    f: impl FnOnce(&tokio::runtime::Runtime) -> T + Send + 'static,
) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(2 << 20)
                .enable_all()
                .build()
                .unwrap();
            f(&rt)
        })
        .unwrap()
        .join()
        .expect("the pipeline thread panicked")
}

#[test]
fn long_value_lists_and_sql_or_chains_do_not_overflow_the_stack() {
    let p = Project::new();
    let ids: Vec<i64> = (0..50).collect();
    let emails: Vec<String> = ids.iter().map(|i| format!("user{i}@d{i}.com")).collect();
    let customers = RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(Int64Array::from(ids.clone())) as ArrayRef,
        ),
        ("email", Arc::new(StringArray::from(emails)) as ArrayRef),
    ])
    .unwrap();
    p.write_parquet("customers.parquet", &customers);
    // 5,000 values each; customer i matches value i (i < 50) only.
    let values = |f: fn(usize) -> String| (0..5000).map(f).collect::<Vec<_>>();
    let groups = [
        (
            "ends",
            json!({"attribute": "email", "op": "ends_with", "values": values(|i| format!("@d{i}.com"))}),
        ),
        (
            "contains",
            json!({"attribute": "email", "op": "contains", "values": values(|i| format!("r{i}@"))}),
        ),
        (
            "starts",
            json!({"attribute": "email", "op": "starts_with", "values": values(|i| format!("user{i}@"))}),
        ),
        (
            "not_contains",
            json!({"attribute": "email", "op": "not_contains", "values": values(|i| format!("r{}@", i + 10))}),
        ),
        (
            "sql_or",
            json!({"sql": (0..3000).map(|i| format!("customer_id = {}", i * 2)).collect::<Vec<_>>().join(" OR ")}),
        ),
        (
            "sql_and",
            json!({"sql": (0..3000).map(|i| format!("customer_id <> {}", i * 2 + 1)).collect::<Vec<_>>().join(" AND ")}),
        ),
    ];
    for (id, condition) in &groups {
        p.write(
            &format!("queries/{id}.json"),
            &json!({"include": [{"conditions": [condition]}]}).to_string(),
        );
    }
    let p = Arc::new(p);
    let project = p.clone();
    let members: BTreeMap<String, Vec<IdKey>> =
        on_small_stacks(move |rt| rt.block_on(project.members()).unwrap())
            .into_iter()
            .collect();
    let evens: Vec<i64> = ids.iter().copied().filter(|i| i % 2 == 0).collect();
    assert_eq!(members["ends"], int_ids(&ids));
    assert_eq!(members["contains"], int_ids(&ids));
    assert_eq!(members["starts"], int_ids(&ids));
    assert_eq!(
        members["not_contains"],
        int_ids(&(0..10).collect::<Vec<_>>())
    );
    assert_eq!(members["sql_or"], int_ids(&evens));
    assert_eq!(members["sql_and"], int_ids(&evens));
}
