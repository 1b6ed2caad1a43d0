"""The exceptions of ``cohort``: each carries the Rust reader's message as its text."""

from __future__ import annotations


class SnapshotError(Exception):
    """Base of every error the snapshot reader raises."""


class UnknownGroup(SnapshotError, KeyError):
    """The run has no group of that id (a ``KeyError``: ``except KeyError`` catches it).

    Attributes ``group`` and ``run_id`` name what was asked for and where."""

    group: str
    run_id: str

    # KeyError would show the message quoted, as a key.
    __str__ = BaseException.__str__


class NothingPublished(SnapshotError, FileNotFoundError):
    """Nothing is published at the URL (no ``LATEST``), or the run asked for is not there."""


class InvalidSnapshot(SnapshotError, ValueError):
    """A published file is corrupt, truncated, of another format version or not Cohort's:
    the run was refused whole (no answer is ever given from a damaged run)."""


class InvalidUrl(SnapshotError, ValueError):
    """The URL or path names no location (an unsupported scheme, a malformed URL)."""


class StorageError(SnapshotError, OSError):
    """Reading from local disk or an object store failed (permissions, network,
    credentials, a file of the run missing)."""


for _class in (SnapshotError, UnknownGroup, NothingPublished, InvalidSnapshot, InvalidUrl, StorageError):
    _class.__module__ = "cohort"
del _class
