"""Fixtures: real snapshots published by the repository's `cohort` binary.

The binary is `$COHORT_BIN`, else `$CARGO_TARGET_DIR/debug/cohort` (or `target/debug/cohort`
in the repository); when none exists it is built with `cargo build --bin cohort`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-22"


def _binary() -> Path:
    if os.environ.get("COHORT_BIN"):
        return Path(os.environ["COHORT_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "debug" / "cohort"
    if not binary.exists():
        subprocess.run(["cargo", "build", "--bin", "cohort"], cwd=REPO, check=True)
    return binary


class Cli:
    """The `cohort` binary, run in a folder."""

    def __init__(self, binary: Path):
        self.binary = binary

    def run(self, *args: str, cwd: Path = REPO, env: dict | None = None, check: bool = True):
        result = subprocess.run(
            [str(self.binary), *args],
            cwd=cwd,
            env={**os.environ, **(env or {}), "NO_COLOR": "1"},
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"cohort {' '.join(args)} failed:\n{result.stderr}")
        return result

    def json(self, *args: str, **kwargs) -> dict:
        """`cohort <command> --format json <args...>`, parsed."""
        command, *rest = args
        return json.loads(self.run(command, "--format", "json", *rest, **kwargs).stdout)

    def export(self, publish: Path, group: str, out: Path) -> list[str]:
        """A group's member ids as the CLI exports them (CSV, as text, in file order)."""
        self.run("export", group, "--publish", str(publish), "--out", str(out))
        lines = out.read_text().splitlines()
        return lines[1:]


@pytest.fixture(scope="session")
def cli() -> Cli:
    return Cli(_binary())


@pytest.fixture(scope="session")
def sample(cli: Cli, tmp_path_factory) -> Path:
    """The bundled sample (integer ids, identity mapping), published from the repository
    root with its cohort.toml (events, static lists)."""
    publish = tmp_path_factory.mktemp("sample") / "snapshots"
    cli.run(
        "run",
        "--customers", "data/customers.parquet",
        "--queries", "queries",
        "--publish", str(publish),
        "--as-of", AS_OF,
    )
    return publish


STRING_QUERIES = ["us_adults.toml", "gmail_newsletter.toml", "us_canada_adults.toml"]


@pytest.fixture(scope="session")
def strings(cli: Cli, tmp_path_factory) -> Path:
    """2000 generated customers with string ids (a dictionary mapping)."""
    root = tmp_path_factory.mktemp("strings")
    cli.run("gen", "--customers", "2000", "--id-type", "string", "--out", str(root / "data"), cwd=root)
    (root / "queries").mkdir()
    for name in STRING_QUERIES:
        shutil.copy(REPO / "queries" / name, root / "queries" / name)
    (root / "queries" / "hand_picked.toml").write_text(
        'name = "Hand-picked"\n'
        '[[include]]\nconditions = [{ attribute = "country", op = "is equal", value = "Nowhere" }]\n'
        '[static]\ninclude = ["C00000001", "C00000002", "C00001999"]\n'
    )
    (root / "cohort.toml").write_text("")
    publish = root / "snapshots"
    cli.run(
        "run",
        "--customers", str(root / "data" / "customers.parquet"),
        "--queries", "queries",
        "--publish", str(publish),
        "--as-of", AS_OF,
        cwd=root,
    )
    return publish


@pytest.fixture(scope="session")
def wide_ints(cli: Cli, tmp_path_factory) -> Path:
    """Integer ids beyond u32 and negative ones (a dictionary of int64 ids)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("wide")
    ids = [-7, 0, 5, 2**33, 2**62, -(2**40)]
    table = pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "country": ["United States", "France", "United States", "United States", "Peru", "France"],
        }
    )
    pq.write_table(table, root / "customers.parquet")
    (root / "queries").mkdir()
    (root / "queries" / "americans.toml").write_text(
        'name = "Americans"\n'
        '[[include]]\nconditions = [{ attribute = "country", op = "is equal", value = "United States" }]\n'
    )
    (root / "cohort.toml").write_text('id_column = "customer_id"\n')
    publish = root / "snapshots"
    cli.run(
        "run",
        "--customers", str(root / "customers.parquet"),
        "--queries", "queries",
        "--publish", str(publish),
        "--as-of", AS_OF,
        cwd=root,
    )
    return publish


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto():
    """A real S3-compatible server (moto) on loopback; the environment that points at it."""
    if shutil.which("moto_server") is None:
        pytest.skip("moto_server is not installed (pip install -r tests/requirements.txt)")
    port = free_port()
    process = subprocess.Popen(
        ["moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto_server did not start")
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        yield {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    finally:
        process.terminate()
        process.wait(timeout=10)
