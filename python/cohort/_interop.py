"""numpy / pyarrow on the Python side of the native module: arrays come in and go out as
plain ``bytes`` so that the extension links neither numpy nor Arrow. Neither package is
imported unless the caller already uses it (or asks for a pyarrow result)."""

from __future__ import annotations

import sys
from typing import Any


def _numpy_array(obj: Any) -> Any:
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(obj, numpy.ndarray):
        return obj
    return None


def _arrow_array(obj: Any) -> Any:
    """A pyarrow Array (a ChunkedArray combined), or None for anything else."""
    pa = sys.modules.get("pyarrow")
    if pa is None:
        return None
    if isinstance(obj, pa.ChunkedArray):
        obj = obj.combine_chunks()
    if isinstance(obj, pa.Array):
        if pa.types.is_dictionary(obj.type):
            obj = obj.dictionary_decode()
        return obj
    return None


def _numpy_payload(array: Any) -> tuple:
    import numpy as np

    if array.ndim != 1:
        raise ValueError(f"a batch is one-dimensional, not a {array.ndim}-d array")
    kind = array.dtype.kind
    if kind == "i":
        return ("int64", np.ascontiguousarray(array, dtype=np.int64).tobytes(), None)
    if kind == "u":
        return ("uint64", np.ascontiguousarray(array, dtype=np.uint64).tobytes(), None)
    if kind == "U" and array.dtype.itemsize:
        width = array.dtype.itemsize // 4
        return ("ucs4", np.ascontiguousarray(array, dtype=f"=U{width}").tobytes(), width)
    if kind in ("U", "O", "T"):
        return ("objects", array.tolist(), None)
    raise TypeError(f"a customer id is an int or a str, not numpy {array.dtype}")


def batch_payload(ids: Any) -> tuple:
    """A batch of ids (or group ids) as ``(kind, first, second)`` for the native module:

    - ``("objects", list, None)``: Python ints and strs;
    - ``("int64" | "uint64", bytes, None)``: native-endian 64-bit integers;
    - ``("utf8", offsets, data)``: native-endian int64 offsets (n + 1) into UTF-8 bytes;
    - ``("ucs4", bytes, width)``: a numpy str array, ``width`` code points per item.
    """
    array = _numpy_array(ids)
    if array is not None:
        return _numpy_payload(array)
    arrow = _arrow_array(ids)
    if arrow is not None:
        import pyarrow as pa

        if arrow.null_count:
            raise ValueError(f"the array holds {arrow.null_count} null(s): no id is null")
        t = arrow.type
        n = len(arrow)
        if pa.types.is_integer(t):
            kind = "uint64" if pa.types.is_unsigned_integer(t) else "int64"
            wide = arrow.cast(pa.uint64() if kind == "uint64" else pa.int64())
            values = wide.buffers()[1]
            start = wide.offset
            return (kind, values[8 * start : 8 * (start + n)].to_pybytes(), None)
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
            large = arrow.cast(pa.large_string())
            _validity, offsets, data = large.buffers()
            start = large.offset
            return (
                "utf8",
                offsets[8 * start : 8 * (start + n + 1)].to_pybytes(),
                data.to_pybytes() if data is not None else b"",
            )
        raise TypeError(f"a customer id is an int or a str, not pyarrow {t}")
    if hasattr(ids, "__array__") and not isinstance(ids, (str, bytes)):
        # pandas Series, other array-likes.
        import numpy as np

        return _numpy_payload(np.asarray(ids))
    return ("objects", list(ids), None)


def bool_array(answers: bytearray) -> Any:
    """One answer per check: a numpy bool array when numpy is installed, else a list."""
    try:
        import numpy as np
    except ImportError:
        return [bool(b) for b in answers]
    return np.frombuffer(answers, dtype=np.bool_)


def members_array(payload: tuple) -> Any:
    """A pyarrow array of member ids from the native `members` buffers: ``(kind, values,
    data)``, data empty unless the ids are strings."""
    try:
        import pyarrow as pa
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Snapshot.members() returns a pyarrow array: pip install pyarrow"
        ) from e
    kind = payload[0]
    values = pa.py_buffer(payload[1])
    if kind == "int64":
        return pa.Array.from_buffers(pa.int64(), len(payload[1]) // 8, [None, values])
    if kind == "uint64":
        return pa.Array.from_buffers(pa.uint64(), len(payload[1]) // 8, [None, values])
    count = len(payload[1]) // 8 - 1
    data = pa.py_buffer(payload[2])
    strings = pa.Array.from_buffers(pa.large_string(), count, [None, values, data])
    if len(payload[2]) < 2**31:
        return strings.cast(pa.string())
    return strings
