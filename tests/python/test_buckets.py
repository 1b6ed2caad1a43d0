"""A customer's bucket (SPEC §7) recomputed with an independent XXH64 (Python's xxhash)
for every golden vector of docs/snapshot-format.md, which the Rust implementation
(cohort-snapshot/src/ids/bucket.rs) checks too.

Run: python3 -m pytest tests/python -q
"""

from __future__ import annotations

import re
from pathlib import Path

import xxhash

ROOT = Path(__file__).resolve().parents[2]


def bucket(salt: str, customer_id: str) -> int:
    data = salt.encode("utf-8") + b"\x1f" + customer_id.encode("utf-8")
    return xxhash.xxh64(data, seed=0).intdigest() % 10000


def golden() -> list[tuple[str, str, int]]:
    text = (ROOT / "docs" / "snapshot-format.md").read_text(encoding="utf-8")
    section = text[text.index("## A customer's bucket") :]
    section = section[: section.index("\n## ", 10)]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"\d+", cells[2]):
            salt, cid = (c.strip("`") if c != "(empty)" else "" for c in cells[:2])
            rows.append((salt, cid, int(cells[2])))
    return rows


def test_golden_vectors_are_what_xxh64_gives():
    rows = golden()
    assert len(rows) >= 10
    for salt, cid, expected in rows:
        assert bucket(salt, cid) == expected, (salt, cid)
