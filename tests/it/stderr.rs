//! What the binary writes besides results: JSON lines on stderr, no colour unless asked
//! for, man pages, and `explain` (text and JSON).

use super::harness::sample_project;

const AS_OF: &str = "--as-of=2026-11-22T00:00:00Z";

/// Every line of `stderr` is a JSON object (tracing's shape: `level`, `fields.message`).
fn assert_json_lines(stderr: &str) -> Vec<serde_json::Value> {
    assert!(!stderr.trim().is_empty(), "nothing on stderr");
    stderr
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{stderr}"));
            assert!(value["level"].is_string(), "{line}");
            assert!(value["fields"]["message"].is_string(), "{line}");
            value
        })
        .collect()
}

fn messages(lines: &[serde_json::Value]) -> String {
    lines
        .iter()
        .map(|l| l["fields"]["message"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `--log-format json` made the logs JSON, but lints, `published run ...` and the final
/// `error: ...` stayed plain text: a JSON-lines reader failed on them.
#[test]
fn log_format_json_makes_every_stderr_line_json() {
    let p = sample_project("int");
    // A lint (warning) on a run that publishes.
    p.write(
        "queries/empty_in.toml",
        "[[include]]\nconditions = [{ attribute = \"state\", op = \"in\", values = [] }]\n",
    );
    let out = p.cohort(&["run", AS_OF, "--log-format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = assert_json_lines(&out.stderr);
    let text = messages(&lines);
    assert!(text.contains("empty value list"), "{text}");
    assert!(text.contains("published run"), "{text}");
    let lint = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .unwrap()
                .contains("empty value list")
        })
        .unwrap();
    assert_eq!(lint["level"], "WARN");
    assert_eq!(lint["fields"]["group"], "empty_in");
    assert_eq!(lint["fields"]["line"], 2);
    // Results stay on stdout, as text.
    assert!(out.stdout.contains("empty_in"), "{}", out.stdout);

    // A failing run: definition errors and the final error; through the environment and
    // through cohort.toml too.
    p.write(
        "queries/typo.toml",
        "[[include]]\nconditions = [{ attribute = \"agee\", op = \">\", value = 3 }]\n",
    );
    let env = [("COHORT_LOG_FORMAT".to_string(), "json".to_string())];
    for out in [
        p.cohort(&["run", AS_OF, "--log-format=json"]),
        p.cohort_with_env(&["run", AS_OF], &env),
    ] {
        assert_eq!(out.code, 2, "{}", out.stderr);
        let lines = assert_json_lines(&out.stderr);
        let text = messages(&lines);
        assert!(text.contains("unknown attribute 'agee'"), "{text}");
        assert!(text.contains("error(s) in definitions"), "{text}");
        assert!(lines.iter().any(|l| l["level"] == "ERROR"), "{text}");
    }
    let config = std::fs::read_to_string(p.path("cohort.toml")).unwrap();
    p.write("cohort.toml", &format!("log_format = \"json\"\n{config}"));
    let out = p.cohort(&["run", AS_OF, "--customers", "missing.parquet"]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert_json_lines(&out.stderr);
    // A flag beats the file.
    let out = p.cohort(&["run", AS_OF, "--log-format", "text"]);
    assert!(out.stderr.contains("error: "), "{}", out.stderr);
    // A command line clap refuses, too.
    let out = p.cohort(&["run", "--log-format", "json", "--no-such-flag"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_json_lines(&out.stderr);
}

/// `NO_COLOR` holds even on a terminal: no escape sequence on stderr (run under a pty
/// with `script`, so stderr is a terminal).
#[test]
fn no_color_means_no_escape_sequences_even_on_a_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no `script` to run cohort under a pseudo-terminal");
        return;
    }
    let p = sample_project("int");
    p.write(
        "queries/typo.toml",
        "[[include]]\nconditions = [{ attribute = \"agee\", op = \">\", value = 3 }]\n",
    );
    let under_pty = |no_color: Option<&str>| {
        let command = format!(
            "{} validate {AS_OF} 2>&1 >/dev/null",
            env!("CARGO_BIN_EXE_cohort")
        );
        let mut script = std::process::Command::new("script");
        script
            .args(["-qec", &command, "/dev/null"])
            .current_dir(p.path("."))
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR");
        if let Some(value) = no_color {
            script.env("NO_COLOR", value);
        }
        let out = script.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = under_pty(None);
    assert!(coloured.contains("unknown attribute 'agee'"), "{coloured}");
    assert!(
        coloured.contains("\u{1b}["),
        "on a terminal, problems are coloured (else this test proves nothing):\n{coloured}"
    );
    let plain = under_pty(Some("1"));
    assert!(plain.contains("unknown attribute 'agee'"), "{plain}");
    assert!(!plain.contains("\u{1b}["), "NO_COLOR=1:\n{plain:?}");
}

/// `cohort man` printed one page listing the subcommands without their flags.
#[test]
fn man_writes_a_page_per_subcommand_with_its_flags() {
    let p = sample_project("int");
    let top = p.cohort(&["man"]).ok();
    assert!(top.stdout.contains(".TH cohort"), "{}", &top.stdout[..200]);
    p.cohort(&["man", "--out-dir", "man"]).ok();
    let page = |name: &str| {
        std::fs::read_to_string(p.path(&format!("man/{name}.1")))
            .unwrap_or_else(|e| panic!("man/{name}.1: {e}"))
    };
    assert!(
        page("cohort").contains("cohort\\-run"),
        "the top page lists the subcommands"
    );
    for (subcommand, flags) in [
        (
            "run",
            &[
                "\\-\\-dry\\-run",
                "\\-\\-only",
                "\\-\\-engine",
                "\\-\\-as\\-of",
            ][..],
        ),
        ("size", &["\\-\\-where", "\\-\\-overlap", "\\-\\-by"]),
        ("validate", &["\\-\\-format", "\\-\\-queries"]),
        ("explain", &["\\-\\-format"]),
        ("gc", &["\\-\\-keep"]),
        ("export", &["\\-\\-out"]),
        ("gen", &["\\-\\-customers", "\\-\\-seed"]),
        ("man", &["\\-\\-out\\-dir"]),
    ] {
        let text = page(&format!("cohort-{subcommand}"));
        for flag in flags {
            assert!(
                text.contains(flag),
                "cohort-{subcommand}.1 lacks {flag}:\n{text}"
            );
        }
    }
    let pages = std::fs::read_dir(p.path("man")).unwrap().count();
    assert!(pages >= 15, "{pages} pages");
}

/// `cohort explain`: the compiled expression, the plan and its pruning, as text and JSON.
#[test]
fn explain_shows_the_expression_plan_and_pruning() {
    let p = sample_project("int");
    let text = p.cohort(&["explain", "us_adults", AS_OF]).ok();
    for piece in [
        "group 'us_adults'",
        "name: US adults",
        "compiled expression",
        "country",
        "age",
        "distinct conditions: ",
        "plan (executed",
        "pruned",
    ] {
        assert!(
            text.stdout.contains(piece),
            "missing {piece:?}:\n{}",
            text.stdout
        );
    }
    let json = p
        .cohort(&["explain", "us_adults", "--format", "json", AS_OF])
        .ok()
        .json();
    assert_eq!(json["group"], "us_adults");
    assert_eq!(json["name"], "US adults");
    assert!(json["file"].as_str().unwrap().ends_with("us_adults.toml"));
    let sql = json["sql"].as_str().unwrap();
    assert!(sql.contains("country") && sql.contains("age"), "{sql}");
    assert!(json["conditions"].as_u64().unwrap() >= 2, "{json:#}");
    assert_eq!(json["has_statics"], false);
    assert!(json["event_aggregates"].as_array().unwrap().is_empty());
    let plan = json["plan"].as_array().unwrap();
    assert!(
        plan.iter().any(|l| l.as_str().unwrap().contains("pruned")),
        "{json:#}"
    );
    let missing = p.cohort(&["explain", "nope", AS_OF]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("unknown group 'nope'"),
        "{}",
        missing.stderr
    );
}
