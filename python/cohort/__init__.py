"""Cohort's published snapshots from Python: verified loading and O(1) membership lookups.

>>> import cohort
>>> snapshot = cohort.Snapshot.open("snapshots")          # or file://, s3://, gs://, az://
>>> snapshot.contains("us_adults", 42)
True
>>> snapshot.contains_many("us_adults", [42, 43])           # a numpy bool array
array([ True, False])

See ``python/README.md`` for the whole API and the choices behind it.
"""

from __future__ import annotations

from ._cohort import Snapshot, __version__
from ._errors import (
    InvalidSnapshot,
    InvalidUrl,
    NothingPublished,
    SnapshotError,
    StorageError,
    UnknownGroup,
)

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
