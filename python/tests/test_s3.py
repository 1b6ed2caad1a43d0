"""`Snapshot.open("s3://...")` against a real S3 server (moto) on loopback, configured
from the same environment variables as the CLI."""

from __future__ import annotations

import urllib.request

import pytest

import cohort


@pytest.fixture
def s3_env(moto, monkeypatch):
    for key, value in moto.items():
        monkeypatch.setenv(key, value)
    return moto


def create_bucket(endpoint: str, bucket: str) -> None:
    request = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")
    with urllib.request.urlopen(request) as response:
        assert response.status == 200


def test_open_from_s3(cli, s3_env, sample):
    create_bucket(s3_env["AWS_ENDPOINT_URL"], "cohort-py")
    url = "s3://cohort-py/audiences"
    cli.run(
        "run",
        "--customers", "data/customers.parquet",
        "--queries", "queries",
        "--publish", url,
        "--as-of", "2026-11-22",
        env=s3_env,
    )
    remote = cohort.Snapshot.open(url)
    local = cohort.Snapshot.open(sample)
    assert remote.run_id == local.run_id
    assert remote.groups() == local.groups()
    ids = list(range(0, 20000, 7))
    for group in [g["id"] for g in local.groups()]:
        assert remote.contains_many(group, ids).tolist() == local.contains_many(group, ids).tolist()
        assert remote.members(group) == local.members(group)
    with pytest.raises(cohort.NothingPublished, match="s3://cohort-py/elsewhere"):
        cohort.Snapshot.open("s3://cohort-py/elsewhere")


def test_a_missing_bucket_has_nothing_published(s3_env):
    # S3 answers 404 for the missing bucket's LATEST, as for a missing LATEST.
    with pytest.raises(cohort.NothingPublished, match="s3://no-such-bucket-here/x"):
        cohort.Snapshot.open("s3://no-such-bucket-here/x")
