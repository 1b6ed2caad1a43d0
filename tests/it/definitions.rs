//! Definition problems as a user sees them: every problem of a file at once, each where
//! it is written (TOML and JSON alike), with "did you mean" and without serde's words.
//! One table of cases, validated in one project; each case is named after what broke.

use super::harness::sample_project;

const AS_OF: &str = "--as-of=2026-11-22T00:00:00Z";

/// A problem a case must report: a piece of its message, of its hint, and the first
/// occurrence in the file of the text it must point at.
struct Expect {
    message: &'static str,
    hint: &'static str,
    at: &'static str,
}

const fn expect(message: &'static str, hint: &'static str, at: &'static str) -> Expect {
    Expect { message, hint, at }
}

/// (file, text, problems). Most files also hold an unrelated typo (`agee`), which must
/// still be reported: one problem does not hide the others.
fn cases() -> Vec<(&'static str, &'static str, Vec<Expect>)> {
    let agee = expect(
        "unknown attribute 'agee'",
        "did you mean 'age'?",
        "{ attribute = \"agee\"",
    );
    let agee_json = || {
        expect(
            "unknown attribute 'agee'",
            "did you mean 'age'?",
            "{\"attribute\": \"agee\"",
        )
    };
    vec![
        (
            "unknown_group_key_nmae.toml",
            "nmae = \"VIP\"\n[[include]]\nconditions = [{ attribute = \"agee\", op = \">\", value = 3 }]\n",
            vec![expect("unknown key 'nmae'", "did you mean 'name'?", "nmae"), agee],
        ),
        (
            "misspelled_include_table.toml",
            "[[includ]]\nconditions = []\n[[exclude]]\nconditions = [{ attribute = \"agee\", op = \">\", value = 3 }]\n",
            vec![
                expect("unknown key 'includ'", "did you mean 'include'?", "includ"),
                expect("unknown attribute 'agee'", "did you mean 'age'?", "{ attribute = \"agee\""),
            ],
        ),
        (
            "unknown_clause_key_mtch.toml",
            "[[include]]\nmtch = \"any\"\nconditions = [{ attribute = \"agee\", op = \">\", value = 3 }]\n",
            vec![
                expect("unknown key 'mtch' in a clause", "did you mean 'match'?", "mtch"),
                expect("unknown attribute 'agee'", "did you mean 'age'?", "{ attribute = \"agee\""),
            ],
        ),
        (
            "unknown_static_key_includ.toml",
            "[[include]]\nconditions = [{ attribute = \"agee\", op = \">\", value = 3 }]\n[static]\nincLude = [1]\n",
            vec![
                expect("unknown key 'incLude' in [static]", "did you mean 'include'?", "incLude"),
                expect("unknown attribute 'agee'", "did you mean 'age'?", "{ attribute = \"agee\""),
            ],
        ),
        (
            "unknown_condition_key_and_wrong_value.toml",
            "[[include]]\nconditions = [\n  { attribute = \"age\", op = \"gt\", value = \"old\", ignorecase = true },\n]\n",
            vec![
                expect("unknown key 'ignorecase' in a condition", "did you mean 'ignore_case'?", "ignorecase"),
                expect("value 'old' is a string but 'age' is integer", "", "{ attribute = \"age\""),
            ],
        ),
        (
            "unknown_key_in_where.toml",
            "[[include]]\nconditions = [\n  { events = \"orders\", aggregate = \"count\", where = [{ atribute = \"category\", op = \"=\", value = \"books\" }], op = \">\", value = 0 },\n]\n",
            vec![
                expect("unknown key 'atribute' in a condition", "did you mean 'attribute'?", "atribute"),
                expect("condition with op 'equals' has no 'attribute'", "", "{ events"),
            ],
        ),
        (
            "empty_value_list_with_in.toml",
            "[[include]]\nconditions = [\n  { attribute = \"state\", op = \"in\", value = [] },\n  { attribute = \"agee\", op = \">\", value = 3 },\n]\n",
            vec![
                expect("'value' takes one value, not the list []", "for several values use 'values = [...]'", "[]"),
                expect("unknown attribute 'agee'", "did you mean 'age'?", "{ attribute = \"agee\""),
            ],
        ),
        (
            "values_not_a_list.toml",
            "[[include]]\nconditions = [{ attribute = \"state\", op = \"in\", values = \"Alaska\" }]\n",
            vec![expect("'values' takes a list, not \"Alaska\"", "values = [\"Alaska\"]", "\"Alaska\"")],
        ),
        (
            "value_is_a_table.toml",
            "[[include]]\nconditions = [{ attribute = \"state\", op = \"=\", value = { a = 1 } }]\n",
            vec![expect("'value' must be a string, number, boolean or date, not { a = 1 }", "", "{ a = 1 }")],
        ),
        (
            "json_unknown_keys_and_attribute.json",
            "{\n  \"nmae\": \"x\",\n  \"include\": [\n    {\"mtch\": \"any\",\n     \"conditions\": [{\"attribute\": \"agee\", \"op\": \">\", \"value\": 3}]}\n  ],\n  \"static\": {\"exclud\": [1]}\n}\n",
            vec![
                expect("unknown key 'nmae'", "did you mean 'name'?", "\"nmae\""),
                expect("unknown key 'mtch' in a clause", "did you mean 'match'?", "\"mtch\""),
                expect("unknown key 'exclud' in [static]", "did you mean 'exclude'?", "\"exclud\""),
                agee_json(),
            ],
        ),
        (
            "json_empty_value_list.json",
            "{\"include\": [{\"conditions\": [\n  {\"attribute\": \"state\", \"op\": \"in\", \"value\": []},\n  {\"attribute\": \"agee\", \"op\": \">\", \"value\": 3}\n]}]}\n",
            vec![
                expect("'value' takes one value, not the list []", "values", "[]"),
                agee_json(),
            ],
        ),
    ]
}

/// 1-based line and column (in characters) of the first occurrence of `needle`.
fn line_column(text: &str, needle: &str) -> (u64, u64) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {text:?}"));
    let line = text[..at].matches('\n').count() + 1;
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    (line as u64, text[line_start..at].chars().count() as u64 + 1)
}

#[test]
fn every_problem_of_a_definition_is_located_and_none_hides_another() {
    let p = sample_project("int");
    let cases = cases();
    for (file, text, _) in &cases {
        p.write(&format!("queries/{file}"), text);
    }
    let json = p.cohort(&["validate", "--format", "json", AS_OF]);
    assert_eq!(json.code, 2, "{}", json.stderr);
    let errors = json.json()["errors"].as_array().unwrap().clone();
    let text_out = p.cohort(&["validate", AS_OF]);
    assert_eq!(text_out.code, 2);
    assert!(
        !text_out.stderr.contains("unparsable"),
        "{}",
        text_out.stderr
    );
    assert!(!text_out.stderr.contains("untagged"), "{}", text_out.stderr);

    for (file, text, expected) in &cases {
        let stem = file.rsplit_once('.').unwrap().0;
        let mine: Vec<_> = errors.iter().filter(|e| e["group"] == *stem).collect();
        assert_eq!(
            mine.len(),
            expected.len(),
            "{file}: {}",
            serde_json::to_string_pretty(&mine).unwrap()
        );
        for e in expected {
            let (line, column) = line_column(text, e.at);
            let found = mine.iter().find(|p| {
                p["message"].as_str().unwrap().contains(e.message)
                    && p["hint"].as_str().unwrap_or("").contains(e.hint)
            });
            let found = found.unwrap_or_else(|| {
                panic!(
                    "{file}: no problem {:?} / {:?} in {}",
                    e.message,
                    e.hint,
                    serde_json::to_string_pretty(&mine).unwrap()
                )
            });
            assert_eq!(
                (found["line"].as_u64(), found["column"].as_u64()),
                (Some(line), Some(column)),
                "{file}: {:?} should point at {:?}",
                e.message,
                e.at
            );
            let origin = format!("queries/{file}:{line}:{column}");
            assert!(
                text_out.stderr.contains(&origin),
                "{file}: the caret snippet names {origin}:\n{}",
                text_out.stderr
            );
        }
    }
}

/// A JSON definition's problem is shown in its file, with the line and a caret, as a
/// TOML one is.
#[test]
fn json_definition_problems_show_the_line_with_a_caret() {
    let p = sample_project("int");
    let line = "  {\"attribute\": \"agee\", \"op\": \">=\", \"value\": 18}";
    p.write(
        "queries/adults_json.json",
        &format!("{{\"include\": [{{\"conditions\": [\n{line}\n]}}]}}\n"),
    );
    let out = p.cohort(&["validate", AS_OF]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("queries/adults_json.json:2:3"),
        "{}",
        out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with(line))
        .unwrap_or_else(|| panic!("the line is shown:\n{}", out.stderr));
    let caret = lines[at + 1];
    assert_eq!(
        caret.find('^'),
        Some(lines[at].len() - line.len() + 2),
        "{}",
        out.stderr
    );
    assert!(caret.contains("did you mean 'age'?"), "{}", out.stderr);
}

/// `validate --format json` said `"groups": 0` as soon as one file had an error, however
/// many others were valid.
#[test]
fn validate_json_counts_the_valid_groups_beside_the_broken_ones() {
    let p = sample_project("int");
    let examples = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/queries"))
        .unwrap()
        .filter(|e| {
            let path = e.as_ref().unwrap().path();
            matches!(
                path.extension().and_then(|x| x.to_str()),
                Some("toml" | "json")
            )
        })
        .count() as u64;
    let ok = p
        .cohort(&["validate", "--format", "json", AS_OF])
        .ok()
        .json();
    assert_eq!(ok["groups"].as_u64(), Some(examples), "{ok:#}");
    p.write(
        "queries/broken.toml",
        "[[include]]\nconditions = [{ attribute = \"agee\", op = \">\", value = 3 }]\n",
    );
    let out = p.cohort(&["validate", "--format", "json", AS_OF]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let report = out.json();
    assert_eq!(report["valid"], false);
    assert_eq!(report["groups"].as_u64(), Some(examples), "{report:#}");
    assert_eq!(report["groups_with_errors"].as_u64(), Some(1), "{report:#}");
}
