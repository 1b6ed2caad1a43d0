//! Ids from lists are ids, not numbers: static lists are read as text, an entry that can't
//! be an id of the column is a warning with examples and a count, and integer lookups take
//! only the canonical spelling.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;

use super::harness::{int_ids, runtime, Project};

fn int_project() -> Project {
    let p = Project::new();
    let batch = RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(Int64Array::from(vec![5, 123, 7, 8])) as ArrayRef,
        ),
        (
            "age",
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])) as ArrayRef,
        ),
    ])
    .unwrap();
    p.write_parquet("customers.parquet", &batch);
    p
}

#[test]
fn listed_ids_are_read_as_text_never_inferred() {
    let p = int_project();
    // 000123 is not 123, 5.0 is not 5, abc is no integer: each is reported, none matches.
    p.write(
        "lists/vip.csv",
        "customer_id,name\n000123,x\n5.0,y\nabc,z\n7,w\n,empty\n",
    );
    let list = p.path("lists/vip.csv").display().to_string();
    p.write(
        "queries/vip.toml",
        &format!("[static]\ninclude_from = \"{list}\"\ninclude = [\"+8\", 8]\n"),
    );
    let members = runtime().block_on(p.members()).unwrap();
    assert_eq!(members, vec![("vip".to_string(), int_ids(&[7, 8]))]);

    let out = p
        .cohort(&[
            "run",
            "--customers=customers.parquet",
            "--dry-run",
            "--format=json",
        ])
        .ok();
    let warnings = out.json()["warnings"].to_string();
    assert!(
        warnings.contains("4 static id(s) can't be ids of the int64 column 'customer_id'"),
        "{warnings}"
    );
    let first = format!("'000123' ({list})");
    for example in [first.as_str(), "'5.0'", "'abc'", "'+8' (static.include)"] {
        assert!(warnings.contains(example), "{example}: {warnings}");
    }
}

#[test]
fn parquet_lists_are_read_with_their_own_spelling() {
    let p = int_project();
    let strings = RecordBatch::try_from_iter(vec![(
        "customer_id",
        Arc::new(StringArray::from(vec!["000123", "5", " 7"])) as ArrayRef,
    )])
    .unwrap();
    p.write_parquet("lists/strings.parquet", &strings);
    let floats = RecordBatch::try_from_iter(vec![(
        "customer_id",
        Arc::new(Float64Array::from(vec![8.0, 7.5])) as ArrayRef,
    )])
    .unwrap();
    p.write_parquet("lists/floats.parquet", &floats);
    for (group, list) in [("a", "strings"), ("b", "floats")] {
        let path = p
            .path(&format!("lists/{list}.parquet"))
            .display()
            .to_string();
        p.write(
            &format!("queries/{group}.toml"),
            &format!("[static]\ninclude_from = \"{path}\"\n"),
        );
    }
    let members = runtime().block_on(p.members()).unwrap();
    assert_eq!(
        members,
        vec![
            ("a".to_string(), int_ids(&[5])),
            ("b".to_string(), int_ids(&[])),
        ]
    );
}

#[test]
fn integer_lookups_take_only_the_canonical_spelling() {
    let p = int_project();
    p.write(
        "queries/all.toml",
        "[[include]]\nmatch = \"all\"\nconditions = []\n",
    );
    p.cohort(&["run", "--customers=customers.parquet"]).ok();
    let cases = [
        ("5", true),
        ("123", true),
        ("+5", false),
        (" 5", false),
        ("05", false),
        ("5.0", false),
        ("0123", false),
    ];
    for (id, member) in cases {
        let out = p.cohort(&["check", "all", id, "--format=json"]).ok().json();
        assert_eq!(out["member"], member, "check {id:?}");
        let groups = p.cohort(&["groups-of", id, "--format=json"]).ok().json();
        assert_eq!(
            groups["groups"].as_array().unwrap().is_empty(),
            !member,
            "groups-of {id:?}"
        );
    }
}
