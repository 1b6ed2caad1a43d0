//! `cohort.toml` and where settings come from: its problems shown as definition problems
//! are (caret, `--format json`), and a bad value naming where it was set.

use super::harness::sample_project;

const AS_OF: &str = "--as-of=2026-11-22T00:00:00Z";

/// 1-based line and column of the first occurrence of `needle`.
fn line_column(text: &str, needle: &str) -> (u64, u64) {
    let at = text.find(needle).unwrap();
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    (
        text[..at].matches('\n').count() as u64 + 1,
        text[line_start..at].chars().count() as u64 + 1,
    )
}

/// A typo inside `[events.orders]` was serde's "unknown field" at the table's header;
/// now it is at the key, with "did you mean", shown with a caret and in `--format json`.
#[test]
fn config_problems_are_shown_and_reported_like_definition_problems() {
    let p = sample_project("int");
    let config = "customers = \"data/customers.parquet\"\nqueries = 3\n\n[events.orders]\nurl = \"data/orders.parquet\"\ntme_column = \"ordered_at\"\n\n[events.refunds]\nid_column = 7\n";
    p.write("cohort.toml", config);
    let out = p.cohort(&["validate", AS_OF]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let expected = [
        ("'queries': invalid type: integer `3`", "3"),
        ("unknown key 'tme_column' in [events.orders]", "tme_column"),
        (
            "'id_column' of [events.refunds] must be a string, not 7",
            "7\n",
        ),
        ("event table 'refunds' has no 'url'", "refunds"),
    ];
    assert!(!out.stderr.contains("unknown field"), "{}", out.stderr);
    for (message, at) in expected {
        let (line, column) = line_column(config, at);
        assert!(
            out.stderr.contains(&format!("error: {message}")),
            "missing {message:?}:\n{}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains(&format!("--> cohort.toml:{line}:{column}")),
            "{message:?} at {line}:{column}:\n{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("did you mean 'time_column'?"),
        "{}",
        out.stderr
    );
    // The caret is under the key.
    let lines: Vec<&str> = out.stderr.lines().collect();
    let shown = lines
        .iter()
        .position(|l| l.ends_with("tme_column = \"ordered_at\""))
        .unwrap();
    let caret = lines[shown + 1];
    assert_eq!(
        caret.find('^'),
        Some(lines[shown].len() - "tme_column = \"ordered_at\"".len())
    );

    let json = p.cohort(&["validate", "--format", "json", AS_OF]);
    assert_eq!(json.code, 2, "{}", json.stderr);
    let report = json.json();
    assert_eq!(report["valid"], false);
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), expected.len(), "{report:#}");
    let typo = errors
        .iter()
        .find(|e| e["message"] == "unknown key 'tme_column' in [events.orders]")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(typo["hint"], "did you mean 'time_column'?");
    assert_eq!(
        (typo["line"].as_u64(), typo["column"].as_u64()),
        (Some(6), Some(1))
    );
    assert_eq!(typo["file"], "cohort.toml");
    assert_eq!(typo["severity"], "error");
}

/// `COHORT_AS_OF=garbage` was reported as "invalid --as-of", a flag nobody passed.
#[test]
fn a_bad_as_of_names_where_it_was_set() {
    let p = sample_project("int");
    let env = [("COHORT_AS_OF".to_string(), "garbage".to_string())];
    let out = p.cohort_with_env(&["validate"], &env);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("invalid COHORT_AS_OF 'garbage'"),
        "{}",
        out.stderr
    );
    let out = p.cohort_with_env(&["validate", "--as-of", "junk"], &env);
    assert!(
        out.stderr.contains("invalid --as-of 'junk'"),
        "{}",
        out.stderr
    );
    let out = p.cohort_with_env(&["validate", "--as-of=junk"], &env);
    assert!(
        out.stderr.contains("invalid --as-of 'junk'"),
        "{}",
        out.stderr
    );
    let config = std::fs::read_to_string(p.path("cohort.toml")).unwrap();
    p.write("cohort.toml", &format!("as_of = \"someday\"\n{config}"));
    let out = p.cohort(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("invalid as_of in cohort.toml 'someday'"),
        "{}",
        out.stderr
    );
}

/// Bad environment values were blamed on flags nobody typed (`COHORT_ENGINE_TIMEOUT=soon`
/// reported as `--engine-timeout`): every `COHORT_*` error names its variable.
#[test]
fn every_cohort_variable_is_named_in_its_error() {
    let p = sample_project("int");
    let cases: &[(&str, &str, &[&str], &str)] = &[
        (
            "COHORT_ENGINE_TIMEOUT",
            "soon",
            &["run", "--dry-run"],
            "invalid COHORT_ENGINE_TIMEOUT 'soon'",
        ),
        (
            "COHORT_ENGINE",
            "warp",
            &["run", "--dry-run"],
            "invalid COHORT_ENGINE",
        ),
        (
            "COHORT_LOG_FORMAT",
            "yaml",
            &["validate"],
            "invalid COHORT_LOG_FORMAT 'yaml'",
        ),
        (
            "COHORT_EVENTS",
            "orders",
            &["validate"],
            "invalid COHORT_EVENTS 'orders': expected name=url",
        ),
        (
            "COHORT_AS_OF",
            "garbage",
            &["validate"],
            "invalid COHORT_AS_OF 'garbage'",
        ),
        (
            "COHORT_CONFIG",
            "nowhere.toml",
            &["validate"],
            "set COHORT_CONFIG to an existing file",
        ),
        (
            "COHORT_CUSTOMERS",
            "nowhere.parquet",
            &["validate"],
            "COHORT_CUSTOMERS='nowhere.parquet'",
        ),
        (
            "COHORT_ID_COLUMN",
            "no_such_id",
            &["validate"],
            "COHORT_ID_COLUMN='no_such_id'",
        ),
        (
            "COHORT_QUERIES",
            "no_such_folder",
            &["validate"],
            "COHORT_QUERIES='no_such_folder'",
        ),
        (
            "COHORT_PUBLISH",
            "no_such_snapshots",
            &["check", "vip", "1"],
            "COHORT_PUBLISH='no_such_snapshots'",
        ),
    ];
    for (variable, value, args, want) in cases {
        let env = [(variable.to_string(), value.to_string())];
        let out = p.cohort_with_env(args, &env);
        assert_ne!(out.code, 0, "{variable}: {}", out.stderr);
        assert!(
            out.stderr.contains(want),
            "{variable}: want {want:?} in {}",
            out.stderr
        );
        let flag = format!(
            "--{}",
            variable["COHORT_".len()..].to_lowercase().replace('_', "-")
        );
        assert!(
            !out.stderr.contains(&format!("invalid {flag}")),
            "{variable} blamed on {flag}: {}",
            out.stderr
        );
    }
    // The flag, when given, is what the message names.
    let out = p.cohort_with_env(
        &["run", "--dry-run", "--engine-timeout", "later"],
        &[("COHORT_ENGINE_TIMEOUT".into(), "soon".into())],
    );
    assert!(
        out.stderr.contains("invalid --engine-timeout 'later'"),
        "{}",
        out.stderr
    );
}

/// `--as-of` outside the range timestamps can hold was clamped, so "not in the last 30d"
/// became true for everyone: refused, naming where it came from.
#[test]
fn an_as_of_beyond_the_timestamp_range_is_refused_not_clamped() {
    let p = sample_project("int");
    for (args, env, want) in [
        (
            vec!["validate", "--as-of", "2300-01-01"],
            vec![],
            "invalid --as-of '2300-01-01'",
        ),
        (
            vec!["run", "--dry-run"],
            vec![(
                "COHORT_AS_OF".to_string(),
                "1600-01-01T00:00:00Z".to_string(),
            )],
            "invalid COHORT_AS_OF '1600-01-01T00:00:00Z'",
        ),
    ] {
        let out = p.cohort_with_env(&args, &env);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("outside the range"), "{}", out.stderr);
    }
    let config = std::fs::read_to_string(p.path("cohort.toml")).unwrap();
    p.write("cohort.toml", &format!("as_of = \"9999-12-31\"\n{config}"));
    let out = p.cohort(&["size", "vip"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("invalid as_of in cohort.toml '9999-12-31'"),
        "{}",
        out.stderr
    );
}

/// A window whose start leaves the range (`as_of` near 1677) is a definition error at the
/// condition, not a clamped comparison.
#[test]
fn a_window_reaching_before_the_timestamp_range_is_a_definition_error() {
    let p = sample_project("int");
    p.write(
        "queries/ancient.toml",
        "[[include]]\nconditions = [\n  { attribute = \"signup_date\", op = \"is not in the last\", value = \"30d\" },\n]\n",
    );
    let out = p.cohort(&["validate", "--as-of", "1677-10-01T00:00:00Z"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("ancient.toml"), "{}", out.stderr);
    assert!(out.stderr.contains("window '30d'"), "{}", out.stderr);
}
