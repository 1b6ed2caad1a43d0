"""`cohort.Snapshot` against the CLI's answers on real published snapshots."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import cohort


def only_run(publish: Path) -> Path:
    (run,) = (publish / "runs").iterdir()
    return run


# --- open, run id, groups, cardinality -------------------------------------------------


def test_open_reads_the_run_latest_names(sample: Path):
    snapshot = cohort.Snapshot.open(str(sample))
    assert snapshot.run_id == (sample / "LATEST").read_text().strip()
    assert cohort.Snapshot.open(sample).run_id == snapshot.run_id  # os.PathLike
    assert cohort.Snapshot.open(f"file://{sample}").run_id == snapshot.run_id
    assert cohort.Snapshot.open(sample, run_id=snapshot.run_id).run_id == snapshot.run_id
    assert snapshot.id_type == "int64"
    assert snapshot.customers == 20000
    assert snapshot.manifest["run_id"] == snapshot.run_id
    assert repr(snapshot).startswith("<cohort.Snapshot run_id=")


def test_groups_and_cardinality_match_the_manifest(sample: Path):
    snapshot = cohort.Snapshot.open(sample)
    manifest = json.loads((only_run(sample) / "manifest.json").read_text())
    expected = [{"id": g["id"], "name": g["name"], "members": g["members"]} for g in manifest["groups"]]
    assert snapshot.groups() == expected
    for g in expected:
        assert snapshot.cardinality(g["id"]) == g["members"]


# --- lookups against the CLI -------------------------------------------------------------


def exported(cli, publish: Path, tmp_path: Path) -> dict[str, list[str]]:
    """Every group's members as `cohort export` writes them."""
    snapshot = cohort.Snapshot.open(publish)
    return {
        g["id"]: cli.export(publish, g["id"], tmp_path / f"{g['id']}.csv") for g in snapshot.groups()
    }


def test_members_match_cohort_export(cli, sample: Path, tmp_path: Path):
    snapshot = cohort.Snapshot.open(sample)
    for group, ids in exported(cli, sample, tmp_path).items():
        members = snapshot.members(group)
        assert members.type == pa.int64()
        assert [str(i) for i in members.to_pylist()] == ids
        assert len(members) == snapshot.cardinality(group)


def test_contains_and_groups_of_match_the_cli(cli, sample: Path, tmp_path: Path):
    snapshot = cohort.Snapshot.open(sample)
    members = {g: set(ids) for g, ids in exported(cli, sample, tmp_path).items()}
    # Every customer, every group: contains agrees with export; groups_of with both.
    for customer in range(0, 20010):
        in_groups = [g["id"] for g in snapshot.groups() if str(customer) in members[g["id"]]]
        assert snapshot.groups_of(customer) == in_groups
        assert snapshot.groups_of(str(customer)) == in_groups
    for group, ids in members.items():
        answers = snapshot.contains_many(group, list(range(-5, 20010)))
        assert {str(i) for i, a in zip(range(-5, 20010), answers) if a} == ids
    # A sample straight from `cohort check` and `cohort groups-of`.
    for group in ["vip", "us_adults", "lapsed"]:
        for customer in ["5", "7", "11", "3", "19999", "999999999", "abc"]:
            answer = cli.json("check", "--publish", str(sample), "--", group, customer)
            assert snapshot.contains(group, customer) == answer["member"], (group, customer)
            if customer.isdigit():
                assert snapshot.contains(group, int(customer)) == answer["member"]
    for customer in ["5", "7", "42", "19999", "20000", "-1"]:
        answer = cli.json("groups-of", "--publish", str(sample), "--", customer)
        assert snapshot.groups_of(customer) == answer["groups"]


def test_integer_ids_are_read_in_their_canonical_spelling(sample: Path):
    snapshot = cohort.Snapshot.open(sample)
    assert snapshot.contains("vip", 5) and snapshot.contains("vip", "5")
    assert snapshot.contains("vip", np.int64(5))
    # Not canonical, not an integer, out of range: no customer.
    for spelling in ["05", "+5", " 5", "5.0", "", "five", "-0", 2**70, -(2**70)]:
        assert not snapshot.contains("vip", spelling)
    assert snapshot.groups_of(2**70) == []


# --- contains_many: inputs and outputs ----------------------------------------------------


@pytest.fixture(scope="module")
def checks(sample: Path):
    snapshot = cohort.Snapshot.open(sample)
    groups = [g["id"] for g in snapshot.groups()]
    rng = np.random.default_rng(7)
    group_list = [groups[i] for i in rng.integers(0, len(groups), 5000)]
    id_list = [int(i) for i in rng.integers(-10, 20100, 5000)]
    expected = [snapshot.contains(g, i) for g, i in zip(group_list, id_list)]
    return snapshot, group_list, id_list, expected


def test_contains_many_takes_lists_tuples_and_strings(checks):
    snapshot, groups, ids, expected = checks
    out = snapshot.contains_many(groups, ids)
    assert isinstance(out, np.ndarray) and out.dtype == np.bool_
    assert out.tolist() == expected
    assert snapshot.contains_many(tuple(groups), tuple(ids)).tolist() == expected
    assert snapshot.contains_many(groups, [str(i) for i in ids]).tolist() == expected
    assert snapshot.contains_many(iter(groups), (i for i in ids)).tolist() == expected
    out[0] = not out[0]  # a writable array of its own


def test_contains_many_takes_numpy_arrays(checks):
    snapshot, groups, ids, expected = checks
    for dtype in [np.int64, np.int32, np.int16]:
        small = [i for i in ids if -(2**15) <= i < 2**15]
        want = [snapshot.contains("vip", i) for i in small]
        assert snapshot.contains_many("vip", np.array(small, dtype=dtype)).tolist() == want
    assert snapshot.contains_many(np.array(groups), np.array(ids)).tolist() == expected
    assert snapshot.contains_many(np.array(groups, dtype=object), np.array(ids, dtype=object)).tolist() == expected
    assert snapshot.contains_many(groups, np.array([str(i) for i in ids])).tolist() == expected
    unsigned = [i for i in ids if i >= 0]
    want = [snapshot.contains("us_adults", i) for i in unsigned]
    assert snapshot.contains_many("us_adults", np.array(unsigned, dtype=np.uint64)).tolist() == want
    # A strided view, not a contiguous array.
    strided = np.array(ids)[::2]
    assert snapshot.contains_many(groups[::2], strided).tolist() == expected[::2]
    with pytest.raises(TypeError, match="not numpy float64"):
        snapshot.contains_many("vip", np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="one-dimensional"):
        snapshot.contains_many("vip", np.array([[1, 2]]))


def test_contains_many_takes_pyarrow_arrays(checks):
    snapshot, groups, ids, expected = checks
    assert snapshot.contains_many(pa.array(groups), pa.array(ids)).tolist() == expected
    assert snapshot.contains_many(groups, pa.array(ids, pa.int32())).tolist() == expected
    assert snapshot.contains_many(groups, pa.array([str(i) for i in ids])).tolist() == expected
    assert snapshot.contains_many(groups, pa.array([str(i) for i in ids], pa.large_string())).tolist() == expected
    assert (
        snapshot.contains_many(pa.array(groups).dictionary_encode(), pa.array(ids)).tolist() == expected
    )
    chunked = pa.chunked_array([ids[:100], ids[100:2000], ids[2000:]])
    assert snapshot.contains_many(groups, chunked).tolist() == expected
    # Slices keep their offset.
    sliced = pa.array([str(i) for i in ids]).slice(1000, 50)
    assert snapshot.contains_many(groups[1000:1050], sliced).tolist() == expected[1000:1050]
    sliced = pa.array(ids).slice(17, 300)
    assert snapshot.contains_many(groups[17:317], sliced).tolist() == expected[17:317]
    with pytest.raises(ValueError, match="null"):
        snapshot.contains_many("vip", pa.array([1, None]))


def test_contains_many_edge_cases(checks):
    snapshot, *_ = checks
    assert snapshot.contains_many("vip", []).tolist() == []
    assert snapshot.contains_many([], []).tolist() == []
    with pytest.raises(ValueError, match="differ in length: 1 groups, 2 ids"):
        snapshot.contains_many(["vip"], [1, 2])
    with pytest.raises(TypeError, match="not float"):
        snapshot.contains_many("vip", [1, 2.5])
    with pytest.raises(TypeError, match="not bool"):
        snapshot.contains_many("vip", [True])
    with pytest.raises(TypeError, match="single str"):
        snapshot.contains_many("vip", "42")
    with pytest.raises(TypeError, match="group id is a str"):
        snapshot.contains_many([1], [1])
    with pytest.raises(cohort.UnknownGroup, match="unknown group 'nope'"):
        snapshot.contains_many(["vip", "nope"], [1, 2])


def test_contains_many_without_numpy_returns_a_list(checks, monkeypatch):
    snapshot, groups, ids, expected = checks
    import builtins

    real_import = builtins.__import__

    def no_numpy(name, *args, **kwargs):
        if name == "numpy":
            raise ImportError("no numpy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_numpy)
    out = snapshot.contains_many(groups, ids)
    assert out == expected and isinstance(out, list)


# --- string ids, wide integer ids ---------------------------------------------------------


def test_string_ids_match_the_cli(cli, strings: Path, tmp_path: Path):
    snapshot = cohort.Snapshot.open(strings)
    assert snapshot.id_type == "string"
    members = exported(cli, strings, tmp_path)
    assert set(members) == {"us_adults", "gmail_newsletter", "us_canada_adults", "hand_picked"}
    assert set(members["hand_picked"]) == {"C00000001", "C00000002", "C00001999"}
    everyone = [f"C{i:08d}" for i in range(0, 2002)]
    for group, ids in members.items():
        array = snapshot.members(group)
        assert array.type == pa.string()
        assert array.to_pylist() == ids
        answers = snapshot.contains_many(group, everyone)
        assert {c for c, a in zip(everyone, answers) if a} == set(ids)
        assert snapshot.contains_many(group, pa.array(everyone)).tolist() == answers.tolist()
        assert snapshot.contains_many(group, np.array(everyone)).tolist() == answers.tolist()
    for customer in ["C00000001", "C00000470", "C00001145", "C00009999", "1"]:
        answer = cli.json("groups-of", "--publish", str(strings), "--", customer)
        assert snapshot.groups_of(customer) == answer["groups"]
        for group in members:
            answer = cli.json("check", "--publish", str(strings), "--", group, customer)
            assert snapshot.contains(group, customer) == answer["member"]
    # An int is looked up by its decimal spelling: no string customer is called "1".
    assert snapshot.groups_of(1) == []


def test_wide_integer_ids_use_the_dictionary(cli, wide_ints: Path, tmp_path: Path):
    snapshot = cohort.Snapshot.open(wide_ints)
    assert snapshot.manifest["id_mapping"]["kind"] == "dictionary"
    americans = snapshot.members("americans")
    assert americans.type == pa.int64()
    assert sorted(americans.to_pylist()) == [-7, 5, 2**33]
    assert [str(i) for i in americans.to_pylist()] == cli.export(wide_ints, "americans", tmp_path / "a.csv")
    ids = [-7, 0, 5, 2**33, 2**62, -(2**40), 6, 2**64 - 1]
    want = [True, False, True, True, False, False, False, False]
    assert snapshot.contains_many("americans", ids).tolist() == want
    assert snapshot.contains_many("americans", np.array(ids[:-1], dtype=np.int64)).tolist() == want[:-1]
    assert snapshot.contains_many("americans", pa.array(ids[:-1])).tolist() == want[:-1]
    assert snapshot.groups_of(2**33) == ["americans"] and snapshot.groups_of("8589934592") == ["americans"]


# --- errors ------------------------------------------------------------------------------------


def test_unknown_group_raises_unknown_group(sample: Path):
    snapshot = cohort.Snapshot.open(sample)
    for call in [
        lambda: snapshot.contains("nope", 1),
        lambda: snapshot.cardinality("nope"),
        lambda: snapshot.members("nope"),
        lambda: snapshot.contains_many("nope", [1]),
    ]:
        with pytest.raises(cohort.UnknownGroup) as raised:
            call()
        assert str(raised.value) == f"unknown group 'nope' in run '{snapshot.run_id}'"
        assert raised.value.group == "nope" and raised.value.run_id == snapshot.run_id
        assert isinstance(raised.value, KeyError) and isinstance(raised.value, cohort.SnapshotError)
    # An unknown customer is no error.
    assert snapshot.contains("vip", "no-such-customer") is False
    assert snapshot.groups_of("no-such-customer") == []


def test_nothing_published(tmp_path: Path):
    with pytest.raises(cohort.NothingPublished, match="no published run at .* \\(no LATEST file\\)"):
        cohort.Snapshot.open(tmp_path)
    with pytest.raises(FileNotFoundError):
        cohort.Snapshot.open(tmp_path)


def test_bad_urls(tmp_path: Path):
    with pytest.raises(cohort.InvalidUrl, match="unsupported scheme 'ftp'"):
        cohort.Snapshot.open("ftp://example.com/x")
    with pytest.raises(TypeError):
        cohort.Snapshot.open(42)


@pytest.fixture
def copy(sample: Path, tmp_path: Path):
    """A copy of the sample snapshot to damage, and its run folder."""
    target = tmp_path / "snapshots"
    shutil.copytree(sample, target)
    return target, only_run(target)


def test_a_flipped_byte_is_refused_with_the_readers_message(copy):
    publish, run = copy
    bitmaps = run / "groups.bin"
    data = bytearray(bitmaps.read_bytes())
    data[len(data) // 2] ^= 0x40
    bitmaps.write_bytes(bytes(data))
    with pytest.raises(cohort.InvalidSnapshot, match="checksum mismatch in 'groups.bin' \\(corrupt file\\)") as raised:
        cohort.Snapshot.open(publish)
    assert str(publish) in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_a_truncated_file_is_refused(copy):
    publish, run = copy
    bitmaps = run / "groups.bin"
    bitmaps.write_bytes(bitmaps.read_bytes()[:100])
    with pytest.raises(cohort.InvalidSnapshot, match="truncated"):
        cohort.Snapshot.open(publish)


def test_a_foreign_manifest_is_refused(copy):
    publish, run = copy
    (run / "manifest.json").write_text('{"hello": "world"}')
    with pytest.raises(cohort.InvalidSnapshot, match="not a Cohort manifest"):
        cohort.Snapshot.open(publish)


def test_another_format_version_is_refused(copy):
    publish, run = copy
    text = (run / "manifest.json").read_text()
    (run / "manifest.json").write_text(text.replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(cohort.InvalidSnapshot, match="format version 99 is not supported"):
        cohort.Snapshot.open(publish)


def test_a_missing_file_is_a_storage_error(copy):
    publish, run = copy
    (run / "groups.bin").unlink()
    with pytest.raises(cohort.StorageError) as raised:
        cohort.Snapshot.open(publish)
    assert "groups.bin" in str(raised.value)
    assert isinstance(raised.value, OSError)


def test_a_corrupt_string_dictionary_is_refused(strings: Path, tmp_path: Path):
    target = tmp_path / "snapshots"
    shutil.copytree(strings, target)
    ids = only_run(target) / "ids.parquet"
    data = bytearray(ids.read_bytes())
    data[len(data) // 3] ^= 0x01
    ids.write_bytes(bytes(data))
    with pytest.raises(cohort.InvalidSnapshot, match="checksum mismatch"):
        cohort.Snapshot.open(target)


# --- threads ------------------------------------------------------------------------------------


def test_lookups_from_many_threads(checks):
    from concurrent.futures import ThreadPoolExecutor

    snapshot, groups, ids, expected = checks
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: snapshot.contains_many(groups, ids).tolist(), range(16)))
    assert all(r == expected for r in results)


def test_exceptions_are_exported():
    assert cohort.UnknownGroup.__module__ == "cohort"
    assert issubclass(cohort.InvalidSnapshot, cohort.SnapshotError)
    assert cohort.__version__


def test_every_input_form_reads_the_same_strings(strings: Path):
    snapshot = cohort.Snapshot.open(strings)
    ids = ["C00000001", "", "C00000002", "Ç0000001", "C00000001\u00e9", "日本", "C00001999"]
    want = snapshot.contains_many("hand_picked", ids).tolist()
    assert want == [True, False, True, False, False, False, True]
    forms = [
        np.array(ids),
        np.array(ids, dtype=">U12"),  # big-endian
        np.array(ids, dtype=object),
        pa.array(ids),
        pa.array(ids, pa.large_string()),
        pa.array(ids, pa.string_view()),
        pa.array(ids).dictionary_encode(),
    ]
    for form in forms:
        assert snapshot.contains_many("hand_picked", form).tolist() == want, form
        assert snapshot.contains_many(np.array(["hand_picked"] * len(ids)), form).tolist() == want
    assert snapshot.contains_many("hand_picked", np.array(["", ""])).tolist() == [False, False]
    with pytest.raises(TypeError, match="a group id is a str, not an integer"):
        snapshot.contains_many(np.array([1]), ["C00000001"])
