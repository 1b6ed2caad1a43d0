#!/usr/bin/env python3
"""Reads every group of the run that LATEST names with pyroaring (CRoaring), using only the
manifest, as a Java, Go or Python service would (docs/snapshot-format.md).

Usage: read_snapshot.py <publish-dir>   prints {"<group>": ["<external id>", ...]} as JSON.
"""
import hashlib
import json
import pathlib
import sys

import pyroaring


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def main(publish: pathlib.Path) -> None:
    run_id = (publish / "LATEST").read_text().strip()
    run = publish / "runs" / run_id
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["format_version"] == 1, manifest["format_version"]

    mapping = manifest["id_mapping"]
    if mapping == "identity":
        def external(bit: int) -> str:
            return str(bit)
    else:
        import pyarrow.parquet as pq

        path = run / mapping["path"]
        assert sha256(path.read_bytes()) == mapping["checksum"], "dictionary checksum"
        table = pq.read_table(path)
        assert table.num_columns == 1
        ids = table.column(0).to_pylist()

        def external(bit: int) -> str:
            return str(ids[bit])

    groups = {}
    for group in manifest["groups"]:
        ref = group["bitmap"]
        with open(run / ref["path"], "rb") as f:
            f.seek(ref["offset"])
            data = f.read(ref["length"])
        assert len(data) == ref["length"], f"{group['id']}: short read"
        assert sha256(data) == ref["checksum"], f"{group['id']}: checksum"
        bitmap = pyroaring.BitMap.deserialize(data)
        assert len(bitmap) == group["members"], f"{group['id']}: member count"
        groups[group["id"]] = sorted(external(bit) for bit in bitmap)
    json.dump(groups, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
