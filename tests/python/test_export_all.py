"""`cohort export --all --out memberships.parquet`: one long-format file (id, group) that
DuckDB reads back with exactly the published members of every group."""
import json
import os
import pathlib
import shutil
import subprocess

import duckdb
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def cohort_binary():
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "debug" / "cohort"
    if not binary.exists():
        pytest.fail(f"{binary} not found: run `cargo test` (or `cargo build`) first")
    return str(binary)


@pytest.mark.parametrize("id_type", ["int", "string"])
def test_export_all_is_long_format_that_duckdb_reads(tmp_path, id_type):
    cohort = cohort_binary()

    def run(*args):
        out = subprocess.run([cohort, *args], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr
        return out.stdout

    run("gen", "--customers", "3000", "--orders", "15000", "--id-type", id_type,
        "--seed", "7", "--out", "data")
    shutil.copytree(REPO / "queries", tmp_path / "queries")
    for name in ["vip.csv", "suppressed.csv"]:
        shutil.copy(REPO / "data" / name, tmp_path / "data" / name)
    shutil.copy(REPO / "cohort.toml", tmp_path / "cohort.toml")
    report = json.loads(run("run", "--as-of", "2026-11-22T00:00:00Z", "--format", "json"))
    run("export", "--all", "--out", "memberships.parquet")

    con = duckdb.connect()
    path = str(tmp_path / "memberships.parquet")
    columns = con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()
    assert [c[0] for c in columns] == ["customer_id", "group"]
    assert columns[0][1] == ("BIGINT" if id_type == "int" else "VARCHAR")
    counts = dict(con.execute(
        f'SELECT "group", count(*) FROM \'{path}\' GROUP BY 1').fetchall())
    expected = {g["group"]: g["members"] for g in report["groups"] if g["members"]}
    assert counts == expected
    # One row per (member, group): no duplicates.
    dupes = con.execute(
        f'SELECT count(*) FROM (SELECT customer_id, "group" FROM \'{path}\' '
        'GROUP BY ALL HAVING count(*) > 1)').fetchone()[0]
    assert dupes == 0
