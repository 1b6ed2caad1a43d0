//! The real `cohort` binary on temp dirs: exit codes, JSON shapes, every validation error.

use serde_json::json;

use super::harness::{sample_project, Project};

const AS_OF: &str = "--as-of=2026-11-22T00:00:00Z";

#[test]
fn run_publishes_and_lookups_read_the_snapshot() {
    let p = sample_project("int");
    let run = p
        .cohort(&["run", AS_OF, "--format", "json", "--report", "report.json"])
        .ok();
    let report = run.json();
    assert!(report["run_id"].is_string());
    assert_eq!(report["customers"], 3000);
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 10);
    assert!(groups
        .iter()
        .all(|g| g["group"].is_string() && g["members"].is_u64()));
    assert!(p.path("report.json").exists());
    assert!(
        run.stderr.contains("999999999"),
        "missing static id is reported: {}",
        run.stderr
    );

    // The two forms of the seed example are the same group.
    let count = |id: &str| groups.iter().find(|g| g["group"] == id).unwrap()["members"].clone();
    assert_eq!(
        count("us_canada_adults"),
        count("us_canada_adults_canonical")
    );

    let latest = std::fs::read_to_string(p.path("snapshots/LATEST")).unwrap();
    assert_eq!(latest.trim(), report["run_id"].as_str().unwrap());
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            p.path(&format!("snapshots/runs/{}/manifest.json", latest.trim())),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["id_mapping"], "identity");
    for key in [
        "run_id",
        "created_at",
        "as_of",
        "tool_version",
        "sources",
        "customers",
        "id_type",
        "warnings",
        "groups",
    ] {
        assert!(manifest.get(key).is_some(), "manifest has {key}");
    }
    let bitmap = &manifest["groups"][0]["bitmap"];
    for key in ["path", "offset", "length", "checksum"] {
        assert!(bitmap.get(key).is_some(), "bitmap has {key}");
    }

    // VIP static overrides: 7 and 11 included inline, 3 and 8 excluded (exclude wins).
    let check = |group: &str, id: &str| {
        p.cohort(&["check", group, id, "--format", "json"])
            .ok()
            .json()
    };
    assert_eq!(
        check("vip", "7"),
        json!({"group": "vip", "customer_id": "7", "member": true, "run_id": latest.trim()})
    );
    assert_eq!(check("vip", "8")["member"], false);
    assert_eq!(check("vip", "3")["member"], false);
    assert_eq!(check("vip", "123456789")["member"], false);
    let unknown = p.cohort(&["check", "vipp", "7"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("unknown group 'vipp'"),
        "{}",
        unknown.stderr
    );

    let groups_of = p
        .cohort(&["groups-of", "7", "--format", "json"])
        .ok()
        .json();
    assert_eq!(groups_of["customer_id"], "7");
    assert!(groups_of["groups"]
        .as_array()
        .unwrap()
        .contains(&json!("vip")));

    // A rerun with the same inputs publishes the same run.
    let rerun = p.cohort(&["run", AS_OF, "--format", "json"]).ok().json();
    assert_eq!(rerun["run_id"], report["run_id"]);
    assert_eq!(
        std::fs::read_dir(p.path("snapshots/runs")).unwrap().count(),
        1
    );

    p.cohort(&["export", "vip", "--out", "vip_out.csv"]).ok();
    let csv = std::fs::read_to_string(p.path("vip_out.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("customer_id"));
    assert_eq!(lines.count() as u64, count("vip").as_u64().unwrap());
    p.cohort(&["export", "vip", "--out", "vip_out.jsonl"]).ok();
    let first = std::fs::read_to_string(p.path("vip_out.jsonl")).unwrap();
    assert!(first
        .lines()
        .next()
        .unwrap()
        .starts_with("{\"customer_id\":"));
    p.cohort(&["export", "vip", "--out", "vip_out.parquet"])
        .ok();
    assert!(p.path("vip_out.parquet").exists());
}

#[test]
fn size_where_by_and_overlap() {
    let p = sample_project("int");
    let out = p
        .cohort(&[
            "size",
            "us_adults",
            "vip",
            "--where",
            "age >= 65",
            "--by",
            "country",
            "--overlap",
            "--format",
            "json",
            AS_OF,
        ])
        .ok()
        .json();
    assert_eq!(out["customers"], 3000);
    let groups = out["groups"].as_array().unwrap();
    assert_eq!(
        groups
            .iter()
            .map(|g| g["group"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["us_adults", "vip", "where"]
    );
    for g in groups {
        let by_total: u64 = g["by"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["members"].as_u64().unwrap())
            .sum();
        assert_eq!(by_total, g["members"].as_u64().unwrap());
    }
    let matrix = out["overlap"]["matrix"].as_array().unwrap();
    assert_eq!(matrix[0][0], groups[0]["members"]);
    assert_eq!(matrix[0][1], matrix[1][0]);

    // `--where` alone is counted by an aggregate query, not bitmaps: same answers,
    // including rows whose age is missing (never members).
    for sql in [
        "age >= 65",
        "age < 30 OR age IS NULL",
        "NOT (age >= 30)",
        "false",
    ] {
        let counted = p
            .cohort(&["size", "--where", sql, "--format=json", AS_OF])
            .ok()
            .json();
        let scanned = p
            .cohort(&["size", "--where", sql, "--overlap", "--format=json", AS_OF])
            .ok()
            .json();
        assert_eq!(counted["customers"], 3000, "{sql}");
        assert_eq!(counted["groups"], scanned["groups"], "{sql}");
    }

    let missing = p.cohort(&["size", "us_adult", AS_OF]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("did you mean 'us_adults'?"),
        "{}",
        missing.stderr
    );
    let bad_where = p.cohort(&["size", "--where", "agee > 3", AS_OF]);
    assert_eq!(bad_where.code, 2, "{}", bad_where.stderr);
}

#[test]
fn string_ids_use_a_dictionary() {
    let p = sample_project("string");
    // The VIP lists name integer ids, which are not customers here: warnings, not errors.
    p.cohort(&["run", AS_OF]).ok();
    let latest = std::fs::read_to_string(p.path("snapshots/LATEST")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            p.path(&format!("snapshots/runs/{}/manifest.json", latest.trim())),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["id_mapping"]["kind"], "dictionary");
    assert_eq!(manifest["id_type"], "string");
    let groups = p
        .cohort(&["groups-of", "C00000001", "--format", "json"])
        .ok()
        .json();
    assert_eq!(groups["customer_id"], "C00000001");
    let all = p
        .cohort(&["size", "us_adults", "--format", "json", AS_OF])
        .ok()
        .json();
    let n = all["groups"][0]["members"].as_u64().unwrap();
    p.cohort(&["export", "us_adults", "--out", "out.csv"]).ok();
    let csv = std::fs::read_to_string(p.path("out.csv")).unwrap();
    assert_eq!(csv.lines().count() as u64, n + 1);
    assert!(csv.lines().nth(1).unwrap().starts_with('C'));
}

/// Every validation error of SPEC §2.3, reported at once, before any data is scanned.
#[test]
fn validate_reports_every_problem_at_once() {
    let p = sample_project("int");
    let broken = [
        ("typo.toml", "[[include]]\nconditions = [\n  { attribute = \"agee\", op = \"gt\", value = 3 },\n]\n"),
        ("badop.toml", "[[include]]\nconditions = [{ attribute = \"age\", op = \"starts with\", value = \"1\" }]\n"),
        ("badtype.toml", "[[include]]\nconditions = [{ attribute = \"age\", op = \"equals\", value = \"old\" }]\n"),
        ("badwindow.toml", "[[include]]\nconditions = [{ attribute = \"last_visit_at\", op = \"is in the last\", value = \"30x\" }]\n"),
        ("badref.toml", "[[include]]\nconditions = [{ op = \"in group\", value = \"us_adultz\" }]\n"),
        ("cycle_a.toml", "[[include]]\nconditions = [{ op = \"in group\", value = \"cycle_b\" }]\n"),
        ("cycle_b.toml", "[[include]]\nconditions = [{ op = \"not in group\", value = \"cycle_a\" }]\n"),
        ("Bad Name.toml", "[[include]]\nconditions = []\n"),
        ("unparsable.toml", "[[include]\nconditions = \n"),
        ("nolist.toml", "[[include]]\nconditions = []\n[static]\ninclude_from = \"data/nope.csv\"\n"),
        ("unknownop.toml", "[[include]]\nconditions = [{ attribute = \"age\", op = \"is greather than\", value = 3 }]\n"),
    ];
    for (name, text) in broken {
        p.write(&format!("queries/{name}"), text);
    }
    let out = p.cohort(&["validate", AS_OF]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let expected = [
        "unknown attribute 'agee' in group 'typo' (include[0].conditions[0])",
        "queries/typo.toml:3:3",
        "did you mean 'age'?",
        "operator 'starts_with' is not valid for 'age' of type integer",
        "value 'old' is a string but 'age' is integer",
        "bad window '30x'",
        "unknown group 'us_adultz'",
        "did you mean 'us_adults'?",
        "group references form a cycle: cycle_a -> cycle_b -> cycle_a",
        "invalid group id 'Bad Name'",
        "unparsable file",
        "unknown operator 'is greather than'",
        "static id file 'data/nope.csv' does not exist",
        "did you mean 'is greater than'?",
    ];
    for e in expected {
        assert!(out.stderr.contains(e), "missing {e:?} in:\n{}", out.stderr);
    }
    let json = p.cohort(&["validate", "--format", "json", AS_OF]);
    assert_eq!(json.code, 2);
    assert!(json.json()["errors"].as_array().unwrap().len() >= 10);

    // A run refuses before scanning and publishes nothing.
    let run = p.cohort(&["run", AS_OF]);
    assert_eq!(run.code, 2);
    assert!(!p.path("snapshots").exists());
}

#[test]
fn lints_warn_but_pass() {
    let p = sample_project("int");
    p.write(
        "queries/seed_mistake.toml",
        "[[include]]\nconditions = []\n[[exclude]]\nmatch = \"all\"\nconditions = [\n  { attribute = \"age\", op = \"is less than\", value = 18 },\n  { attribute = \"age\", op = \"doesn't exist\" },\n  { attribute = \"age\", op = \"doesn't exist\" },\n]\n[static]\ninclude = [1]\nexclude = [1]\n",
    );
    p.write(
        "queries/empty_in.toml",
        "[[include]]\nconditions = [{ attribute = \"state\", op = \"in\", values = [] }]\n",
    );
    let out = p.cohort(&["validate", AS_OF]).ok();
    for w in [
        "clause can never match",
        "duplicate condition",
        "empty value list",
        "in both static include and exclude",
    ] {
        assert!(out.stderr.contains(w), "missing {w:?} in:\n{}", out.stderr);
    }
}

/// `validate` with both errors and lints printed each lint twice (once by the command,
/// once with the errors).
#[test]
fn validate_prints_each_lint_once_even_beside_errors() {
    let p = sample_project("int");
    p.write(
        "queries/empty_in.toml",
        "[[include]]\nconditions = [{ attribute = \"state\", op = \"in\", values = [] }]\n",
    );
    p.write(
        "queries/typo.toml",
        "[[include]]\nconditions = [{ attribute = \"agee\", op = \"gte\", value = 18 }]\n",
    );
    let out = p.cohort(&["validate", AS_OF]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("empty value list").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("did you mean 'age'"), "{}", out.stderr);
}

/// An unsupported URL scheme reached DataFusion and came back as a runtime error (exit 1).
#[test]
fn unsupported_url_scheme_is_a_usage_error_and_publishes_nothing() {
    let p = sample_project("int");
    let out = p.cohort(&["run", AS_OF, "--customers", "ftp://host/customers.parquet"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("unsupported scheme 'ftp'"),
        "{}",
        out.stderr
    );
    assert!(!p.path("snapshots").exists());
}

#[test]
fn duplicate_ids_fail_the_run_with_examples() {
    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use std::sync::Arc;
    let p = Project::new();
    let ids: ArrayRef = Arc::new(Int64Array::from(vec![
        Some(1),
        Some(2),
        Some(2),
        None,
        Some(5),
        Some(5),
        Some(5),
    ]));
    let batch =
        datafusion::arrow::record_batch::RecordBatch::try_from_iter(vec![("customer_id", ids)])
            .unwrap();
    p.write_parquet("customers.parquet", &batch);
    p.write("queries/all.toml", "[[include]]\nconditions = []\n");
    let out = p.cohort(&["run", "--customers", "customers.parquet", AS_OF]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "duplicate customer ids in column 'customer_id': 3 extra row(s), e.g. '2', '5'"
        ),
        "{}",
        out.stderr
    );
    assert!(!p.path("snapshots/LATEST").exists());
}

#[test]
fn usage_errors_exit_2() {
    let p = Project::new();
    p.write("queries/all.toml", "[[include]]\nconditions = []\n");
    let out = p.cohort(&["run"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no customers table"), "{}", out.stderr);
    let out = p.cohort(&["run", "--customers", "x.parquet", "--as-of", "yesterday"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("invalid --as-of 'yesterday'"),
        "{}",
        out.stderr
    );
    let out = p.cohort(&["check", "g", "1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no published run"), "{}", out.stderr);
}

/// Regression guard for the parallel scan: many batches over several partitions must
/// give the same members, mapped to the same ids, as a plain SQL query.
#[test]
fn parallel_scan_matches_plain_sql_on_many_batches() {
    let p = Project::new();
    p.cohort(&["gen", "--customers", "50000", "--seed", "3", "--out", "."])
        .ok();
    p.write(
        "queries/adults.json",
        r#"{"include": [{"conditions": [{"attribute": "age", "op": ">=", "value": 18}]}]}"#,
    );
    // Small batches, so 50,000 rows arrive as many batches over both partitions.
    let small_batches = [(
        "DATAFUSION_EXECUTION_BATCH_SIZE".to_string(),
        "1000".to_string(),
    )];
    p.cohort_with_env(
        &["run", "--customers=customers.parquet", AS_OF],
        &small_batches,
    )
    .ok();
    p.cohort(&["export", "adults", "--out", "adults.csv"]).ok();
    let exported: std::collections::BTreeSet<i64> = std::fs::read_to_string(p.path("adults.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.parse().unwrap())
        .collect();
    let expected = super::harness::runtime().block_on(async {
        let ctx = datafusion::prelude::SessionContext::new();
        let path = p.path("customers.parquet").display().to_string();
        ctx.register_parquet("c", &path, Default::default())
            .await
            .unwrap();
        let batches = ctx
            .sql("SELECT customer_id FROM c WHERE age >= 18")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for b in batches {
            let column = b.column(0);
            let column = datafusion::arrow::array::AsArray::as_primitive::<
                datafusion::arrow::datatypes::Int64Type,
            >(column);
            ids.extend(column.values().iter().copied());
        }
        ids
    });
    assert!(expected.len() > 40_000);
    assert_eq!(exported, expected);
}

/// Each problem shows its line of the file with a caret under the condition, and
/// `file:line:column`; JSON has `column`.
#[test]
fn problems_point_into_the_file_with_a_caret() {
    let p = sample_project("int");
    p.write(
        "queries/typo.toml",
        "name = \"typo\"\n[[include]]\nconditions = [\n  { attribute = \"agee\", op = \"gte\", value = 18 },\n]\n",
    );
    let out = p.cohort(&["validate", AS_OF]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let shown = "  { attribute = \"agee\", op = \"gte\", value = 18 },";
    assert!(
        out.stderr.contains("queries/typo.toml:4:3"),
        "{}",
        out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with(shown))
        .unwrap_or_else(|| panic!("the line is shown:\n{}", out.stderr));
    let caret = lines[at + 1];
    let text_start = lines[at].len() - shown.len();
    assert_eq!(
        caret.find('^'),
        Some(text_start + 2),
        "caret under the condition:\n{}",
        out.stderr
    );
    assert!(caret.contains("did you mean 'age'?"), "{}", out.stderr);
    assert!(
        !out.stderr.contains('\u{1b}'),
        "no ANSI colour when stderr is not a terminal"
    );
    let json = p.cohort(&["validate", AS_OF, "--format", "json"]).json();
    let problem = &json["errors"][0];
    assert_eq!(
        (problem["line"].as_u64(), problem["column"].as_u64()),
        (Some(4), Some(3))
    );
}

/// cohort.toml problems name the file, line and column, all at once.
#[test]
fn config_problems_carry_their_location_all_at_once() {
    let p = sample_project("int");
    p.write(
        "cohort.toml",
        "customers = \"data/customers.parquet\"\nidcolumn = \"customer_id\"\nqueries = 3\npublsh = \"x\"\n",
    );
    let out = p.cohort(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for e in [
        "error: unknown key 'idcolumn'",
        "--> cohort.toml:2:1",
        "did you mean 'id_column'?",
        "error: unknown key 'publsh'",
        "--> cohort.toml:4:1",
        "did you mean 'publish'?",
        "--> cohort.toml:3:11",
        "3 error(s) in config 'cohort.toml'",
    ] {
        assert!(out.stderr.contains(e), "missing {e:?} in:\n{}", out.stderr);
    }
    assert_eq!(
        out.stderr.matches("cohort.toml:").count(),
        3,
        "{}",
        out.stderr
    );
}

/// Nightly-job conventions: COHORT_* variables (flags > environment > cohort.toml),
/// JSON logs, completions and a man page, a closed pipe.
#[test]
fn environment_variables_logs_completions_and_pipes() {
    let p = sample_project("int");
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // The environment's publish beats cohort.toml's; a flag beats the environment.
    let out = p.cohort_with_env(&["run", AS_OF], &env(&[("COHORT_PUBLISH", "from-env")]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(p.path("from-env/LATEST").exists());
    let out = p.cohort_with_env(
        &["run", AS_OF, "--publish", "from-flag"],
        &env(&[("COHORT_PUBLISH", "from-env-2")]),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(p.path("from-flag/LATEST").exists() && !p.path("from-env-2").exists());
    let out = p.cohort_with_env(
        &["size", "us_adults", AS_OF],
        &env(&[("COHORT_CUSTOMERS", "nope.parquet")]),
    );
    assert_ne!(out.code, 0, "COHORT_CUSTOMERS is read");

    // JSON log lines.
    let out = p.cohort_with_env(
        &["run", AS_OF, "--log-format", "json", "--publish", "logs"],
        &env(&[("RUST_LOG", "info")]),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let first = out
        .stderr
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("a JSON log line:\n{}", out.stderr));
    let line: serde_json::Value = serde_json::from_str(first).unwrap();
    assert!(
        line["level"].is_string() && line["fields"].is_object(),
        "{line}"
    );

    for shell in ["bash", "zsh", "fish"] {
        let out = p.cohort(&["completions", shell]).ok();
        assert!(out.stdout.contains("cohort"), "{shell}");
    }
    let man = p.cohort(&["man"]).ok();
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH cohort"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );

    // `| head`: the reader goes away; cohort ends quietly (no panic message).
    let mut child = p
        .command(&["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A typo in a condition's key was an "unparsable file" that hid every other problem of
/// the file; now it is that condition's problem, with "did you mean".
#[test]
fn an_unknown_condition_key_gets_did_you_mean_and_hides_nothing() {
    let p = sample_project("int");
    p.write(
        "queries/typos.toml",
        "[[include]]\nconditions = [\n  { attribute = \"email\", op = \"ends with\", value = \"@gmail.com\", ignorecase = true },\n  { attribute = \"agee\", op = \">\", value = 3 },\n]\n",
    );
    let out = p.cohort(&["validate", AS_OF]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for e in [
        "unknown key 'ignorecase' in a condition in group 'typos' (include[0].conditions[0])",
        "did you mean 'ignore_case'?",
        "unknown attribute 'agee'",
        "did you mean 'age'?",
    ] {
        assert!(out.stderr.contains(e), "missing {e:?} in:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("unparsable"), "{}", out.stderr);
}
