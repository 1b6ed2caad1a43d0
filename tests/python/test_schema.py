"""The editor schemas (schema/*.schema.json) agree with what Cohort accepts.

- every definition in queries/ and the project's cohort.toml validate;
- every file in schema_cases/broken/ (and broken_config/) is rejected, every file in
  schema_cases/valid/ is accepted, by the standard validator (Draft 2020-12);
- the operator and aggregate vocabularies, arities and ignore_case rules in the schema
  are exactly those of the registry (schema/vocabulary.json, which a Rust test keeps
  equal to cohort/src/definition/ops.rs and aggregates.rs);
- the window pattern agrees with a port of parse_window over edge cases and random text;
- when a cohort binary exists, `cohort validate` agrees: broken files exit 2, valid ones
  exit 0, and every operator spelling (in odd case) is known to it.

Run: python3 -m pytest tests/python -q
"""

from __future__ import annotations

import datetime
import json
import os
import random
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).resolve().parent / "schema_cases"
QUERIES = ROOT / "queries"


def _load(name: str) -> dict:
    return json.loads((ROOT / "schema" / f"{name}.schema.json").read_text(encoding="utf-8"))


GROUP_SCHEMA = _load("group")
CONFIG_SCHEMA = _load("cohort")
GROUP = Draft202012Validator(GROUP_SCHEMA)
CONFIG = Draft202012Validator(CONFIG_SCHEMA)
DEFS = GROUP_SCHEMA["$defs"]


def json_view(value):
    """A TOML document as editors validate it: dates and times become their text."""
    if isinstance(value, dict):
        return {k: json_view(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_view(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    return value


def load_document(path: Path):
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return json_view(tomllib.loads(text))


def errors(validator: Draft202012Validator, document) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def files(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.iterdir() if p.suffix in (".toml", ".json"))
    assert found, f"no cases in {folder}"
    return found


def ids(paths):
    return [p.name for p in paths]


# ---------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("schema", [GROUP_SCHEMA, CONFIG_SCHEMA], ids=["group", "cohort"])
def test_schemas_are_valid_draft_2020_12(schema):
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", files(QUERIES), ids=ids(files(QUERIES)))
def test_examples_in_queries_validate(path):
    assert errors(GROUP, load_document(path)) == []


def test_project_config_validates():
    assert errors(CONFIG, load_document(ROOT / "cohort.toml")) == []


@pytest.mark.parametrize("path", files(CASES / "valid"), ids=ids(files(CASES / "valid")))
def test_tricky_but_valid_cases_validate(path):
    assert errors(GROUP, load_document(path)) == []


# Where (and, for some, why) the schema rejects each broken case: a substring of one of the
# "path: message" lines, so a case cannot pass by failing for an unrelated reason.
BROKEN_BECAUSE = {
    "bad_match.toml": "include/0/match: 'every'",
    "bad_window_events.toml": "conditions/0/within_last: '3 months'",
    "bad_window_value.toml": "conditions/0/value: '30 days'",
    "before_op_number.toml": "conditions/0/value: 20260101",
    "before_op_words.toml": "conditions/0/value: 'Jan 31st'",
    "behavioural_key_without_events.toml": "conditions/0/within_last: '30d' is not of type 'null'",
    "between_single_value.toml": "'values' is a required property",
    "between_three_values.toml": "conditions/0/values: [18, 30, 65] is too long",
    "between_values_string.toml": "conditions/0/values: '18' is not of type 'array'",
    "conditions_not_list.toml": "include/0/conditions: {",
    "control_char_value.toml": "conditions/0/value: 'Can\\x07ada' does not match",
    "events_bad_before.toml": "conditions/0/before: 'last week'",
    "events_count_with_column.toml": "conditions/0/column: 'category' is not of type 'null'",
    "events_group_ref.toml": "conditions/0/op: 'in group' should not be valid",
    "events_sum_without_column.toml": "'column' is a required property",
    "events_unknown_aggregate.toml": "conditions/0/aggregate: 'total'",
    "events_with_attribute.toml": "conditions/0/attribute: 'amount' is not of type 'null'",
    "events_without_aggregate.toml": "'aggregate' is a required property",
    "events_without_op.toml": "'op' is a required property",
    "exists_with_value.toml": "conditions/0/value: True is not of type 'null'",
    "gt_without_value.toml": "'value' is a required property",
    "ignore_case_on_gt.toml": "conditions/0/ignore_case: True",
    "in_group_bad_id.toml": "conditions/0/value: 'US Adults' does not match",
    "in_group_integer.toml": "conditions/0/value: 5 is not of type",
    "in_group_two_values.toml": "conditions/0/values: ['vip', 'us_adults'] is too long",
    "in_group_without_value.toml": "'value' is a required property",
    "include_as_table.toml": "include: {",
    "is_true_with_values.toml": "conditions/0/values: [True] is expected to be empty",
    "json_dollar_schema.json": "('$schema' was unexpected)",
    "json_null_include.json": "include: None is not of type 'array'",
    "json_null_value_in_list.json": "conditions/0/values/1: None",
    "json_op_number.json": "conditions/0/op: 5",
    "no_attribute.toml": "'attribute' is a required property",
    "no_op.toml": "'op' is a required property",
    "one_value_given_two.toml": "conditions/0/values: [18, 21] is too long",
    "sql_with_attribute.toml": "conditions/0/attribute: 'age' is not of type 'null'",
    "static_float_id.toml": "static/include/0: 1.5",
    "static_include_not_list.toml": "static/include: 7 is not of type 'array'",
    "unknown_key_ignorecase.toml": "('ignorecase' was unexpected)",
    "unknown_operator.toml": "conditions/0/op: 'is equal to'",
    "unknown_static_key.toml": "('include_file' was unexpected)",
    "unknown_top_key.toml": "('title' was unexpected)",
    "value_and_values.toml": "conditions/0/values: ['United States'] is not of type 'null'",
    "value_is_list.toml": "conditions/0/value: ['Canada', 'United States'] is not of type",
    "where_with_sql.toml": "where/0/sql: 'amount > 10' is not of type 'null'",
    "window_as_number.toml": "conditions/0/value: 30",
    "window_too_long.toml": "conditions/0/value: '73201d'",
}


def test_every_broken_case_says_why():
    assert sorted(BROKEN_BECAUSE) == ids(files(CASES / "broken"))


@pytest.mark.parametrize("path", files(CASES / "broken"), ids=ids(files(CASES / "broken")))
def test_broken_cases_are_rejected(path):
    try:
        document = load_document(path)
    except tomllib.TOMLDecodeError as e:  # pragma: no cover - the cases are valid TOML
        pytest.fail(f"{path.name} must be valid TOML, broken only for Cohort: {e}")
    found = errors(GROUP, document)
    assert found, f"{path.name} should be rejected by the group schema"
    assert any(BROKEN_BECAUSE.get(path.name, "?") in line for line in found), found


@pytest.mark.parametrize(
    "path", files(CASES / "broken_config"), ids=ids(files(CASES / "broken_config"))
)
def test_broken_configs_are_rejected(path):
    assert errors(CONFIG, load_document(path)), f"{path.name} should be rejected"


def test_schema_directives_point_at_the_schemas():
    for path in sorted(QUERIES.glob("*.toml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "#:schema ../schema/group.schema.json", path.name
        assert (path.parent / first.split(None, 1)[1]).resolve() == ROOT / "schema" / "group.schema.json"
    first = (ROOT / "cohort.toml").read_text(encoding="utf-8").splitlines()[0]
    assert first == "#:schema ./schema/cohort.schema.json"
    for path in sorted(QUERIES.glob("*.json")):
        # Cohort rejects unknown keys, "$schema" included (see broken/json_dollar_schema.json).
        assert "$schema" not in json.loads(path.read_text(encoding="utf-8")), path.name


# ------------------------------------------------------------- agreement with the Rust

# The registry (cohort/src/definition/ops.rs, aggregates.rs) as JSON; a Rust test
# (tests/it/operators.rs, vocabulary_json_is_the_registry) keeps the file equal to it.
VOCABULARY = json.loads((ROOT / "schema" / "vocabulary.json").read_text(encoding="utf-8"))
OPERATORS = [(o["op"], o["op"], o["aliases"]) for o in VOCABULARY["operators"]]
CANONICAL = {o["op"]: o["op"] for o in VOCABULARY["operators"]}
SPELLINGS = {s: c for _, c, aliases in OPERATORS for s in [c, *aliases]}


def arity_classes() -> dict[str, list[str]]:
    """{arity: [canonical names]}, arities named as Rust's Arity (None, One, Two, List)."""
    classes: dict[str, list[str]] = {}
    for o in VOCABULARY["operators"]:
        classes.setdefault(o["arity"].title(), []).append(o["op"])
    return classes


def rust_ignore_case_ops() -> list[str]:
    return [o["op"] for o in VOCABULARY["operators"] if o["ignore_case"]]


def rust_aggregates() -> list[str]:
    return [a["aggregate"] for a in VOCABULARY["aggregates"]]


def spellings_of(canonicals) -> set[str]:
    return {s for s, c in SPELLINGS.items() if c in set(canonicals)}


def variants(text: str) -> list[str]:
    """How a user may write a spelling and still be understood (Op::parse)."""
    out = [text, text.upper(), text.title(), text.swapcase(), f"  {text}\t", f"\u00a0{text} "]
    if "'" in text:
        out.append(text.replace("'", "\u2019"))
    return out


def test_operator_enum_lists_exactly_the_rust_spellings():
    enum = GROUP_SCHEMA["$defs"]["condition"]["properties"]["op"]["anyOf"][0]
    expected = [s for _, c, aliases in OPERATORS for s in [c, *aliases]]
    assert enum["enum"] == expected
    for key in ("enumDescriptions", "markdownEnumDescriptions"):
        assert len(enum[key]) == len(expected), key
    assert len(enum["x-taplo"]["docs"]["enumValues"]) == len(expected)
    for spelling, description in zip(expected, enum["markdownEnumDescriptions"]):
        assert f"`{SPELLINGS[spelling]}`" in description, spelling


def test_descriptions_say_what_the_registry_says():
    op = GROUP_SCHEMA["$defs"]["condition"]["properties"]["op"]["anyOf"][0]
    described = dict(zip(op["enum"], op["enumDescriptions"]))
    for o in VOCABULARY["operators"]:
        assert described[o["op"]].startswith(f'{o["op"]} (canonical). {o["meaning"]}'), o["op"]
    aggregate = DEFS["condition"]["properties"]["aggregate"]["anyOf"][0]
    described = dict(zip(aggregate["enum"], aggregate["enumDescriptions"]))
    for a in VOCABULARY["aggregates"]:
        assert a["meaning"] in described[a["aggregate"]], a["aggregate"]


def test_aggregate_enum_lists_exactly_the_rust_aggregates():
    enum = DEFS["condition"]["properties"]["aggregate"]["anyOf"][0]
    assert enum["enum"] == rust_aggregates()
    assert len(enum["markdownEnumDescriptions"]) == len(enum["enum"])


def _matches(def_name: str, text: str) -> bool:
    return Draft202012Validator({"$defs": DEFS, "$ref": f"#/$defs/{def_name}"}).is_valid(text)


def test_operator_classes_agree_with_arity_and_ignore_case():
    arity = arity_classes()
    assert set(arity) == {"None", "One", "Two", "List"}
    group_refs = [o["op"] for o in VOCABULARY["operators"] if o["evaluator"] == "bitmaps"]
    assert group_refs == ["in_group", "not_in_group"]
    classes = {
        "opTakesNoValue": arity["None"],
        "opTakesOneValue": [c for c in arity["One"] if c not in group_refs],
        "opTakesTwoValues": arity["Two"],
        "opTakesList": arity["List"],
        "opGroupRef": group_refs,
        "opWindow": ["within_last", "not_within_last"],
        "opInstant": ["before", "after", "on"],
        "opIgnoreCase": rust_ignore_case_ops(),
    }
    assert set(arity["One"]) >= {"within_last", "before", "on", "in_group"}
    for def_name, canonicals in classes.items():
        members = spellings_of(canonicals)
        for spelling in SPELLINGS:
            for written in variants(spelling):
                assert _matches(def_name, written) == (spelling in members), (def_name, written)


def test_operator_property_accepts_every_spelling_in_any_case_and_nothing_else():
    op = DEFS["condition"]["properties"]["op"]
    check = Draft202012Validator(op)
    for spelling in SPELLINGS:
        for written in variants(spelling):
            assert check.is_valid(written), written
    for wrong in ["", "equal", "is equal to", "==", "<>", "in_groups", "is  equal", "not exists",
                  "doesnt exist", "\u000bequals", "gt\u0085"]:
        assert not check.is_valid(wrong), wrong


def test_match_and_aggregate_are_case_insensitive():
    match = Draft202012Validator(DEFS["clause"]["properties"]["match"])
    for ok in ["all", "ANY", " Any ", "\u000ball\u0085", None]:
        assert match.is_valid(ok), ok
    for bad in ["every", "al", "", "all any"]:
        assert not match.is_valid(bad), bad
    aggregate = Draft202012Validator(DEFS["condition"]["properties"]["aggregate"])
    for name in rust_aggregates():
        for written in variants(name):
            assert aggregate.is_valid(written), written
    assert not aggregate.is_valid("total")


def test_aggregate_column_rules_agree_with_needs_column():
    needs_column = {a["aggregate"] for a in VOCABULARY["aggregates"] if a["column"] == "required"}
    assert needs_column == {"count_distinct", "sum", "min", "max", "avg"}
    for name in rust_aggregates():
        for written in variants(name):
            without = event_condition(aggregate=written)
            with_column = event_condition(aggregate=written, column="amount")
            assert GROUP.is_valid(without) == (name not in needs_column), written
            assert GROUP.is_valid(with_column) == (name != "count"), written


# --------------------------------------------------------------------------- windows

RUST_WHITE_SPACE = "\t\n\u000b\u000c\r \u0085\u00a0\u1680" + "".join(
    chr(c) for c in range(0x2000, 0x200B)
) + "\u2028\u2029\u202f\u205f\u3000"


def rust_control(c: str) -> bool:
    return ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F


def rust_accepts_within_last(text: str) -> bool:
    """typing.rs: hostile text (controls but \\t \\n \\r), then parse_window."""
    if any(rust_control(c) and c not in "\t\n\r" for c in text):
        return False
    text = text.strip(RUST_WHITE_SPACE)
    if not text:
        return False
    number, unit = text[:-1], text[-1]
    if not number or len(number.encode()) > 12 or not all("0" <= c <= "9" for c in number):
        return False
    hours = {"h": 1, "d": 24, "w": 24 * 7}.get(unit)
    return hours is not None and int(number) * hours <= 200 * 366 * 24


def event_condition(**keys):
    return {"include": [{"conditions": [{"events": "orders", "aggregate": "count",
                                         "op": ">=", "value": 1, **keys}]}]}


WINDOW_CASES = [
    "30d", "12h", "2w", "0d", "0h", " 30d ", "\t30d\n", "\u00a030d\u3000", "\u000b30d", "30d\u0085",
    "73200d", "73201d", "1756800h", "1756801h", "10457w", "10458w", "99999w", "000000000001d",
    "0000000000001d", "999999999999h", "30D", "30", "d", "", " ", "3.5d", "-3d", "+3d", "30 d",
    "\u0663d", "３０d", "30dd", "30days", "1e3d", "0x1Ad",
]


@pytest.mark.parametrize("text", WINDOW_CASES, ids=[repr(t) for t in WINDOW_CASES])
def test_window_pattern_agrees_with_parse_window(text):
    assert GROUP.is_valid(event_condition(within_last=text)) == rust_accepts_within_last(text)


def test_window_pattern_agrees_with_parse_window_on_random_text():
    rng = random.Random(21)
    alphabet = "0123456789hdwHDW \t\u000b.-"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 15)))
        assert GROUP.is_valid(event_condition(within_last=text)) == rust_accepts_within_last(text), repr(text)
    for n in range(0, 2_000_000, 997):
        for unit in "hdw":
            text = f"{n}{unit}"
            assert GROUP.is_valid(event_condition(within_last=text)) == rust_accepts_within_last(text), text


def test_window_values_refuse_every_control_character():
    # A value (unlike the within_last key) is a literal: no control character at all.
    condition = {"attribute": "last_visit_at", "op": "within_last"}
    assert GROUP.is_valid({"include": [{"conditions": [{**condition, "value": " 30d"}]}]})
    assert not GROUP.is_valid({"include": [{"conditions": [{**condition, "value": "\t30d"}]}]})


# ------------------------------------------------------------------ the cohort binary


def find_cohort() -> Path | None:
    candidates = [os.environ.get("COHORT_BIN")]
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(os.path.join(os.environ["CARGO_TARGET_DIR"], "debug", "cohort"))
    candidates += [str(ROOT / "target" / "debug" / "cohort"),
                   os.path.expanduser("~/.cache/cohort-target/debug/cohort")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


COHORT = find_cohort()
needs_cohort = pytest.mark.skipif(
    COHORT is None,
    reason="no cohort binary (set COHORT_BIN, or build target/debug/cohort): "
    "the schema-vs-`cohort validate` agreement checks are skipped",
)


def cohort_validate(queries: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORT_")}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [str(COHORT), "validate", "--queries", str(queries), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def folder_with(tmp_path: Path, *cases: Path) -> Path:
    """queries/ (so group references resolve) plus the given case files."""
    folder = tmp_path / "queries"
    shutil.copytree(QUERIES, folder)
    for case in cases:
        assert not (folder / case.name).exists(), f"{case.name} collides with queries/"
        shutil.copy(case, folder / case.name)
    return folder


def shown(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@needs_cohort
def test_cohort_accepts_the_examples(tmp_path):
    result = cohort_validate(folder_with(tmp_path))
    assert result.returncode == 0, shown(result)


@needs_cohort
@pytest.mark.parametrize("path", files(CASES / "broken"), ids=ids(files(CASES / "broken")))
def test_cohort_rejects_what_the_schema_rejects(tmp_path, path):
    assert errors(GROUP, load_document(path))
    result = cohort_validate(folder_with(tmp_path, path))
    assert result.returncode == 2, shown(result)
    assert path.stem in result.stdout + result.stderr, shown(result)


@needs_cohort
@pytest.mark.parametrize("path", files(CASES / "valid"), ids=ids(files(CASES / "valid")))
def test_cohort_accepts_what_the_schema_accepts(tmp_path, path):
    assert errors(GROUP, load_document(path)) == []
    result = cohort_validate(folder_with(tmp_path, path))
    assert result.returncode == 0, shown(result)


@needs_cohort
@pytest.mark.parametrize(
    "path", files(CASES / "broken_config"), ids=ids(files(CASES / "broken_config"))
)
def test_cohort_rejects_the_broken_configs(path):
    result = cohort_validate(QUERIES, "--config", str(path))
    assert result.returncode == 2, shown(result)


@needs_cohort
def test_cohort_knows_every_spelling_the_schema_offers(tmp_path):
    folder = tmp_path / "ops"
    folder.mkdir()
    enum = DEFS["condition"]["properties"]["op"]["anyOf"][0]["enum"]
    for i, spelling in enumerate(enum):
        for j, written in enumerate([spelling.upper(), spelling.title()]):
            text = json.dumps({"include": [{"conditions": [{"attribute": "age", "op": written}]}]})
            (folder / f"op{i}_{j}.json").write_text(text, encoding="utf-8")
    (folder / "control.json").write_text(
        json.dumps({"include": [{"conditions": [{"attribute": "age", "op": "equalz"}]}]})
    )
    result = cohort_validate(folder)
    output = result.stdout + result.stderr
    assert "unknown operator 'equalz'" in output, shown(result)
    assert output.count("unknown operator") == 1, shown(result)


# ------------------------------------------------------- the config schema and config.rs

CONFIG_RS = (ROOT / "src" / "cli" / "config.rs").read_text(encoding="utf-8")


def rust_config_keys() -> list[str]:
    """The KEYS table of src/cli/config.rs: the keys cohort.toml may have."""
    block = CONFIG_RS[CONFIG_RS.index("const KEYS") :]
    block = block[block.index("[") : block.index("];")]
    keys = re.findall(r'"([^"]*)"', block)
    assert keys, "could not parse KEYS in config.rs"
    return keys


def test_config_schema_has_exactly_the_rust_config_keys():
    # They drifted once: engine and engine_timeout were accepted but not in the schema.
    assert sorted(CONFIG_SCHEMA["properties"]) == sorted(rust_config_keys())


@pytest.mark.parametrize(
    "text",
    [
        'engine = "df://h:1"',
        'engine = "local"',
        'engine = "df://scheduler.internal:50050"\nengine_timeout = "10m"',
    ],
)
def test_engine_settings_validate(text):
    assert errors(CONFIG, tomllib.loads(text)) == []


@pytest.mark.parametrize(
    "text", ['engine = "ballista"', 'engine = "df://"', "engine_timeout = 90"]
)
def test_bad_engine_settings_are_rejected(text):
    assert errors(CONFIG, tomllib.loads(text))


@needs_cohort
def test_cohort_accepts_an_engine_in_cohort_toml(tmp_path):
    config = tmp_path / "cohort.toml"
    project = (ROOT / "cohort.toml").read_text(encoding="utf-8")
    engine = 'engine = "df://h:1"\nengine_timeout = "90s"\n'
    config.write_text(engine + project, encoding="utf-8")
    assert errors(CONFIG, load_document(config)) == []
    result = cohort_validate(folder_with(tmp_path), "--config", str(config))
    assert result.returncode == 0, shown(result)
