"""How the journal stores values: JSON for small vectors, a JSON skeleton plus raw bytes for arrays."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def vec(a: np.ndarray | None) -> str:
    """A small vector as a JSON array (shortest round-trip floats)."""
    if a is None:
        return "[]"
    return json.dumps([float(v) for v in np.ravel(a)])


def pack(obj: Any) -> tuple[str, bytes]:
    """Nested dicts/lists of numpy arrays and scalars → (JSON skeleton, the arrays' raw bytes).

    An array becomes ``{"__array__": [offset, dtype, shape]}`` in the skeleton, its
    bytes (C order, the dtype's own byte order, e.g. ``<f8``) at ``offset`` in the blob.
    """
    chunks: list[bytes] = []
    size = 0

    def walk(o: Any) -> Any:
        nonlocal size
        if isinstance(o, np.ndarray):
            if o.dtype.kind not in "biuf":
                raise TypeError(f"cannot journal an array of {o.dtype}")
            a = np.ascontiguousarray(o).astype(o.dtype.newbyteorder("<"), copy=False)
            data = a.tobytes()
            ref = [size, a.dtype.str, list(a.shape)]
            chunks.append(data)
            size += len(data)
            return {"__array__": ref}
        if isinstance(o, dict):
            return {"__dict__": [[k, walk(v)] for k, v in o.items()]}
        if isinstance(o, (list, tuple)):
            return [walk(v) for v in o]
        if isinstance(o, np.bool_ | bool):
            return bool(o)
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
        return o

    skeleton = json.dumps(walk(obj))
    return skeleton, b"".join(chunks)


def unpack(skeleton: str, blob: bytes) -> Any:
    """Inverse of :func:`pack`."""

    def walk(o: Any) -> Any:
        if isinstance(o, dict):
            if "__array__" in o:
                offset, dtype, shape = o["__array__"]
                n = int(np.prod(shape)) if shape else 1
                return np.frombuffer(blob, dtype=dtype, count=n, offset=offset).reshape(shape).copy()
            return {k: walk(v) for k, v in o["__dict__"]}
        if isinstance(o, list):
            return [walk(v) for v in o]
        return o

    return walk(json.loads(skeleton))


def digest(*parts: str | bytes | None) -> str:
    """SHA-256 over a checkpoint's columns (SQLite checks its pages' structure, not their contents)."""
    h = hashlib.sha256()
    for part in parts:
        data = b"" if part is None else (part.encode() if isinstance(part, str) else part)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()
