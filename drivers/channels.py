"""Channel index arrays: what hot paths derive from them, found again without recomputing it."""

from __future__ import annotations

from typing import Any

import numpy as np


def compact(index: np.ndarray) -> np.ndarray | slice:
    """A run of consecutive indices as a slice (indexing with it is a view, and cheaper), else the array."""
    if index.size > 1 and index[-1] - index[0] == index.size - 1 and np.all(np.diff(index) == 1):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


class ChannelCache:
    """Values derived from channel arrays, found by the array's identity and checked against its content.

    Callers such as a bench's roles pass the same array on every call: the lookup costs a
    dictionary hit and one comparison of the indices, not the derivation again. An array
    whose content changed since (a reused buffer, a view of one) is a miss. Entries hold
    their array, so its identity cannot be reused by another meanwhile.

    A read-only array that owns its data (a bench's role arrays) cannot change unless it is
    made writeable again, which nothing in the project does: such an array, read-only when
    it was put and still, is found by identity alone (its content compared otherwise).
    """

    def __init__(self, size: int = 64):
        self._entries: dict[tuple[int, str], tuple[np.ndarray, bytes, Any, np.dtype, bool]] = {}
        self._size = size

    def get(self, ch: np.ndarray, kind: str = "") -> Any:
        hit = self._entries.get((id(ch), kind))
        if hit is None or hit[0] is not ch or ch.dtype != hit[3]:
            return None
        flags = ch.flags
        if hit[4] and not flags.writeable and flags.owndata:
            return hit[2]
        # the content compared as bytes: a fraction of np.array_equal's cost on a few indices
        return hit[2] if hit[1] == ch.tobytes() else None

    def put(self, ch: np.ndarray, value: Any, kind: str = "") -> None:
        if len(self._entries) >= self._size:
            self._entries.clear()
        frozen = not ch.flags.writeable and ch.flags.owndata  # read-only since it was put
        self._entries[(id(ch), kind)] = (ch, ch.tobytes(), value, ch.dtype, frozen)

    def clear(self) -> None:
        self._entries.clear()
