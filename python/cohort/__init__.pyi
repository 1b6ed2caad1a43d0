# Type stubs of the `cohort` package (the native cohort._cohort and the pure-Python parts).
from __future__ import annotations

import os
from typing import Any, Iterable, Sequence, TypedDict, Union

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__version__: str

CustomerId = Union[int, str]
"""A customer id as in the data: an int, or a str (an int is looked up by its canonical
decimal spelling, so `42` and `"42"` are the same customer)."""

IdBatch = Union[Sequence[CustomerId], npt.NDArray[Any], pa.Array, pa.ChunkedArray, Iterable[CustomerId]]
GroupBatch = Union[str, Sequence[str], npt.NDArray[Any], pa.Array, pa.ChunkedArray, Iterable[str]]

class Group(TypedDict):
    """One group of the run, as the service's `GET /v1/groups` lists it."""

    id: str
    name: str
    members: int

class Snapshot:
    """A published run, loaded and verified: O(1) membership lookups by customer id.

    Immutable and thread-safe; lookups hold no lock, batch calls release the GIL."""

    @staticmethod
    def open(url: Union[str, os.PathLike[str]], run_id: str | None = None) -> Snapshot:
        """Opens the run `LATEST` names under `url` (a path, `file://`, `s3://`, `gs://`,
        `az://`; object stores configured from the standard environment variables such as
        `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_ALLOW_HTTP`), or the run `run_id`.
        Every file is checked against the manifest's checksums before any answer is given.

        Raises `NothingPublished`, `InvalidSnapshot`, `InvalidUrl` or `StorageError`."""
    @property
    def run_id(self) -> str:
        """The run id."""
    @property
    def id_type(self) -> str:
        """The id column's type: "int64", "uint64" or "string"."""
    @property
    def customers(self) -> int:
        """The run's customer count."""
    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed `manifest.json`."""
    def groups(self) -> list[Group]:
        """The groups in manifest order: `{"id", "name", "members"}` dicts."""
    def cardinality(self, group: str) -> int:
        """A group's member count. Raises `UnknownGroup`."""
    def contains(self, group: str, customer_id: CustomerId) -> bool:
        """Whether the customer is in the group; an unknown customer is not a member.
        Raises `UnknownGroup`."""
    def contains_many(self, groups: GroupBatch, ids: IdBatch) -> npt.NDArray[np.bool_] | list[bool]:
        """`contains` for many checks at once (GIL released): `groups` is one group for all
        checks (a str) or one per check. A numpy bool array, or a list of bool when numpy
        is not installed. Raises `UnknownGroup`, or `ValueError` when lengths differ."""
    def groups_of(self, customer_id: CustomerId) -> list[str]:
        """The groups the customer is in, in manifest order ([] for an unknown customer)."""
    def members(self, group: str) -> pa.Array:
        """A group's member ids as a pyarrow array (int64, uint64 or string), in bit order.
        Raises `UnknownGroup`."""

class SnapshotError(Exception):
    """Base of every error the snapshot reader raises; its text is the reader's message."""

class UnknownGroup(SnapshotError, KeyError):
    group: str
    run_id: str

class NothingPublished(SnapshotError, FileNotFoundError): ...
class InvalidSnapshot(SnapshotError, ValueError): ...
class InvalidUrl(SnapshotError, ValueError): ...
class StorageError(SnapshotError, OSError): ...

__all__ = [
    "Snapshot",
    "SnapshotError",
    "UnknownGroup",
    "NothingPublished",
    "InvalidSnapshot",
    "InvalidUrl",
    "StorageError",
    "__version__",
]
