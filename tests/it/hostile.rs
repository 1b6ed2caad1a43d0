//! Hostile and mistaken input gets a clear error and the right exit code — never a panic,
//! an abort, a hang or a wrong answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::record_batch::RecordBatch;

use super::harness::Project;

const AS_OF_FLAG: &str = "--as-of=2026-11-22T00:00:00Z";

fn project_with(ids: Vec<Option<i64>>) -> Project {
    let p = Project::new();
    let ages: Vec<Option<i64>> = ids.iter().map(|_| Some(30)).collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("customer_id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("age", Arc::new(Int64Array::from(ages)) as ArrayRef),
    ])
    .unwrap();
    p.write_parquet("customers.parquet", &batch);
    p.write("cohort.toml", "customers = \"customers.parquet\"\n");
    p
}

/// Definition files a user or an attacker might write: each is a definitions problem
/// (exit 2) naming the file, never a panic.
#[test]
fn hostile_definitions_are_problems_not_panics() {
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "window_unit_not_ascii",
            "[[include]]\nconditions = [{ events = \"orders\", aggregate = \"count\", within_last = \"3é\", op = \">\", value = 1 }]\n".as_bytes(),
            "bad window within_last = '3é'",
        ),
        (
            "window_huge",
            b"[[include]]\nconditions = [{ events = \"orders\", aggregate = \"count\", within_last = \"99999999999999999999999d\", op = \">\", value = 1 }]\n",
            "bad window",
        ),
        (
            "not_a_number",
            b"[[include]]\nconditions = [{ attribute = \"age\", op = \">\", value = nan }]\n",
            "is not a number a condition can compare with",
        ),
        (
            "infinite",
            b"[[include]]\nconditions = [{ attribute = \"age\", op = \"<\", value = inf }]\n",
            "is not a number a condition can compare with",
        ),
        (
            "control_character",
            b"[[include]]\nconditions = [{ attribute = \"age\", op = \"=\", value = \"a\\u001b[31mb\" }]\n",
            "control character U+001B",
        ),
        (
            "not_utf8",
            b"name = \"caf\xe9\"\n[[include]]\nconditions = []\n",
            "not UTF-8 text",
        ),
    ];
    for (name, text, want) in cases {
        let p = project_with(vec![Some(1), Some(2)]);
        let path = p.path(&format!("queries/{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = p.cohort(&["validate", AS_OF_FLAG]);
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains(want),
            "{name}: want {want:?} in {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!("{name}.toml")),
            "{name}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{name}: {}", out.stderr);
    }
}

#[test]
fn size_and_dry_run_refuse_duplicate_ids_like_a_run() {
    let p = project_with(vec![Some(1), Some(2), Some(2), None]);
    p.write("queries/all.toml", "[[include]]\nconditions = []\n");
    for args in [
        &["run", AS_OF_FLAG][..],
        &["run", "--dry-run", AS_OF_FLAG],
        &["size", "all", AS_OF_FLAG],
        &["size", "--where", "age > 1", AS_OF_FLAG],
    ] {
        let out = p.cohort(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(
                "duplicate customer ids in column 'customer_id': 1 extra row(s), e.g. '2'"
            ),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(!p.path("snapshots").exists());
}

#[test]
fn writing_where_nothing_can_be_written_fails_fast_naming_the_path() {
    let p = project_with(vec![Some(1), Some(2)]);
    p.write("queries/all.toml", "[[include]]\nconditions = []\n");
    p.cohort(&["run", AS_OF_FLAG]).ok();
    let started = Instant::now();
    let out = p.cohort(&["export", "all", "--out", "/proc/cohort-test/out.csv"]);
    assert!(started.elapsed() < Duration::from_secs(20), "export hung");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("/proc/cohort-test/out.csv"),
        "{}",
        out.stderr
    );
}

/// Usage mistakes exit 2 with a message that says what to do.
#[test]
fn usage_mistakes_say_what_to_do() {
    let outside = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
            .args(args)
            .current_dir(outside.path())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--customers=c.parquet"],
            "no definitions folder 'queries'",
        ),
        (
            &["validate", "--config=nope.toml"],
            "config file 'nope.toml' does not exist",
        ),
        (
            &["check", "--customers=c.parquet", "g", "1"],
            "unexpected argument '--customers'",
        ),
        (&["runs", AS_OF_FLAG], "unexpected argument '--as-of'"),
        (&["serve", "--listen=nowhere"], "--listen"),
        (
            &["serve", "--token-file=nope.txt"],
            "token file 'nope.txt' does not exist",
        ),
    ];
    for (args, want) in cases {
        let (code, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
    }
}

#[test]
fn diff_of_an_unknown_run_is_a_usage_error() {
    let p = project_with(vec![Some(1), Some(2)]);
    p.write("queries/all.toml", "[[include]]\nconditions = []\n");
    p.cohort(&["run", AS_OF_FLAG]).ok();
    let run = std::fs::read_to_string(p.path("snapshots/LATEST")).unwrap();
    let out = p.cohort(&["diff", "20200101T000000Z-000000000000", run.trim()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("unknown run '20200101T000000Z-000000000000'"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("cohort runs"), "{}", out.stderr);
}

#[test]
fn s3_without_credentials_says_so() {
    let p = project_with(vec![Some(1)]);
    p.write("queries/all.toml", "[[include]]\nconditions = []\n");
    // No credentials, and the instance-metadata endpoint pointed at a closed loopback port.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
        .args(["runs", "--publish=s3://bucket/snap"])
        .current_dir(p.dir.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://127.0.0.1:{}", super::harness::free_port()),
        )
        .env(
            "AWS_METADATA_ENDPOINT",
            format!("http://127.0.0.1:{}", super::harness::free_port()),
        )
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", super::harness::free_port()),
        )
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no AWS credentials found"), "{stderr}");
}
