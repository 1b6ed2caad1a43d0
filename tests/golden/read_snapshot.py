#!/usr/bin/env python3
"""Reads every group of the run that LATEST names with pyroaring (CRoaring), using only the
manifest, as a Java, Go or Python service would (docs/snapshot-format.md).

Usage: read_snapshot.py <publish-dir>   prints {"<group>": ["<external id>", ...]} as JSON.
"""
import hashlib
import json
import pathlib
import struct
import sys

import pyroaring

MASK = (1 << 64) - 1


def perfect_hash(data: bytes):
    """The row function of an ids.phf file (docs/snapshot-format.md)."""
    import xxhash

    assert data[:8] == b"COHPHF01", "magic"
    seed, keys, slots, buckets = struct.unpack_from("<4Q", data, 8)
    assert len(data) == 40 + 2 * buckets + 4 * (slots - keys), "length"
    pilots = struct.unpack_from(f"<{buckets}H", data, 40)
    remap = struct.unpack_from(f"<{slots - keys}I", data, 40 + 2 * buckets)

    def mulhi(a: int, b: int) -> int:
        return (a * b) >> 64

    def row(key: bytes) -> int:
        h = xxhash.xxh64_intdigest(key, seed=seed)
        x = h ^ ((pilots[mulhi(h, buckets)] * 0x517CC1B727220A95) & MASK)
        x ^= x >> 33
        x = (x * 0xFF51AFD7ED558CCD) & MASK
        x ^= x >> 33
        x = (x * 0xC4CEB9FE1A85EC53) & MASK
        x ^= x >> 33
        slot = mulhi(x, slots)
        return slot if slot < keys else remap[slot - keys]

    return row


def key_bytes(value) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return struct.pack("<q" if value < 0 else "<Q", value)


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
        if "hash_index" in mapping:
            # Every row's id must hash to that row (the documented lookup, reimplemented).
            ref = mapping["hash_index"]
            data = (run / ref["path"]).read_bytes()
            assert sha256(data) == ref["checksum"], "hash index checksum"
            row = perfect_hash(data)
            for n, value in enumerate(ids):
                assert row(key_bytes(value)) == n, f"{value!r} does not hash to row {n}"

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
