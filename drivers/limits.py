"""Per-channel limits, checked before any value leaves the process."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from drivers.channels import ChannelCache, compact
from drivers.errors import LimitError


class LimitTable:
    """Lower and upper bounds for each channel of one instrument function.

    Starts at the instrument's own capability range and can only be narrowed
    (by a protocol's role limits or a safety section), never widened.

    Parameters
    ----------
    instrument, quantity, unit
        Used in error messages (``dac: ao3 = 12.5 V is above its limit 10 V``).
    n_channels, low, high
        The channel count and the capability range.
    prefix
        Channel name prefix for messages (``ao`` gives ``ao3``).
    """

    def __init__(
        self,
        instrument: str,
        quantity: str,
        unit: str,
        n_channels: int,
        low: float,
        high: float,
        prefix: str = "ch",
    ):
        if not low < high:
            raise ValueError(f"{instrument}: empty {quantity} range [{low}, {high}]")
        self.instrument = instrument
        self.quantity = quantity
        self.unit = unit
        self.prefix = prefix
        self.low = np.full(n_channels, float(low))
        self.high = np.full(n_channels, float(high))
        # channel arrays already checked against the channel count, with their index: a slice
        # when the channels are consecutive (limits are then compared through views, never copies)
        self._seen = ChannelCache()
        self.version = 0  # counts narrowings: what was derived from the limits is stale when it changes

    @property
    def n_channels(self) -> int:
        return self.low.size

    def restrict(self, channels: ArrayLike, low: ArrayLike, high: ArrayLike, where: str | None = None) -> None:
        """Narrow the limits of some channels. Limits outside the capability range are an error."""
        ch = self._channels(channels)
        lo = np.broadcast_to(np.asarray(low, dtype=float), ch.shape)
        hi = np.broadcast_to(np.asarray(high, dtype=float), ch.shape)
        if np.any(lo > hi):
            raise LimitError(f"{self.quantity} limits have low > high", where=where)
        bad = (lo < self.low[ch]) | (hi > self.high[ch])
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            c = int(ch[i])
            raise LimitError(
                f"{self.instrument}/{self.prefix}{c}: {self.quantity} limits [{lo[i]:g}, {hi[i]:g}] {self.unit} "
                f"exceed the instrument's range [{self.low[c]:g}, {self.high[c]:g}] {self.unit}",
                where=where,
                hint="narrow the limits in the protocol",
            )
        self.low[ch] = lo
        self.high[ch] = hi
        self.version += 1

    def check(self, channels: ArrayLike, values: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Validate values for channels; return them as arrays. Raises :class:`LimitError`."""
        at = self._seen.get(channels) if isinstance(channels, np.ndarray) else None
        if at is not None:
            ch = channels
        else:
            ch = self._channels(channels)
            at = compact(ch)
            if channels is ch:
                self._seen.put(ch, at)
        v = np.asarray(values, dtype=float)
        if v.shape != ch.shape:
            raise LimitError(f"{self.instrument}: {v.size} values for {ch.size} channels")
        ok = (v >= self.low[at]) & (v <= self.high[at])  # NaN fails both comparisons
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            c = int(ch[i])
            raise LimitError(
                f"{self.instrument}/{self.prefix}{c}: {self.quantity} {v[i]:.6g} {self.unit} is outside its limits "
                f"[{self.low[c]:g}, {self.high[c]:g}] {self.unit}; nothing was sent",
                hint="check the calibration and limits of this role in the protocol",
            )
        return ch, v

    def indices(self, channels: ArrayLike) -> np.ndarray:
        """Channel indices as a flat array, checked against the channel count (LimitError if out of range)."""
        return self._channels(channels)

    def _channels(self, channels: ArrayLike) -> np.ndarray:
        ch = np.asarray(channels, dtype=np.intp)
        if ch.ndim != 1:
            ch = ch.reshape(-1)
        if ch.size and (ch.min() < 0 or ch.max() >= self.n_channels):
            raise LimitError(f"{self.instrument}: channel index out of range 0..{self.n_channels - 1}")
        return ch
