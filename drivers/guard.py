"""The one place that decides what reaches a source: limits after rounding, slew, entry, safe values.

Every driver's writes, ramps and safe state go through a :class:`SourceGuard` (one per
source function of an instrument). For each value it

1. pulls a value beyond the window by a few ulps (a calibration's SI → model → SI
   round trip) onto the limit, and refuses anything further out (:class:`LimitError`);
2. rounds it to what goes on the wire, toward the inside of the window: on a text
   transport the formatted number is parsed back and checked (12 significant digits
   would make 0.09999999999999 V read 0.1); on a simulated DAC the float64 grid value;
3. moves the channel there in steps no larger than ``step`` and no faster than
   ``rate`` (the tighter of the instrument's ramp and the protocol's safety rate),
   timed on the clock from the last *confirmed* change, so a step may not follow a
   step sooner than ``|Δ| / rate``;
4. marks the channel unknown from the moment a command is sent until the driver's
   send returns (confirmed), so nothing trusts a value the instrument never confirmed.

A channel whose present value is outside its window (as found before the run, say 0 V
under limits [0.5, 5] V) is never ramped through the excluded region: its first move
goes straight to the nearest limit, and only when that jump is within ``step`` and its
slew wait has passed; otherwise the move is refused with the fix named. The safe value
of a channel is the point of its window nearest 0 (0 when the window holds 0).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from drivers.capabilities import Clock, WallClock
from drivers.channels import ChannelCache, compact
from drivers.errors import LimitError
from drivers.limits import LimitTable

DIGITS = 12  # significant digits on text transports
ULPS = 16  # how far (in ulps of the limit) a value may overshoot and be pulled onto it
TICK = 0.01  # seconds per ramp step when only a rate is declared

Send = Callable[[np.ndarray, np.ndarray, list[str] | None], None]


def text_inside(value: float, low: float, high: float, digits: int = DIGITS) -> str:
    """``value`` formatted with ``digits`` significant digits, rounded toward the inside of [low, high]."""
    text = f"{value:.{digits}g}"
    parsed = float(text)
    if low <= parsed <= high:
        return text
    mode = decimal.ROUND_FLOOR if parsed > high else decimal.ROUND_CEILING
    ctx = decimal.Context(prec=digits, rounding=mode)
    return format(ctx.create_decimal(repr(float(value))).normalize(ctx), "g")


class _Lane:
    """What the checks need for one channel array, derived once (the bench passes the same arrays every call)."""

    __slots__ = ("ch", "at", "lo", "hi", "lo_s", "hi_s", "free", "version", "flat")

    def __init__(self, guard: SourceGuard, ch: np.ndarray):
        t = guard.table
        self.ch = ch
        self.at = compact(ch)  # a slice for consecutive channels: views, no copies
        self.lo, self.hi = t.low[ch], t.high[ch]
        slack = ULPS * np.spacing(np.maximum(np.abs(self.lo), np.abs(self.hi)))
        self.lo_s, self.hi_s = self.lo - slack, self.hi + slack
        # no step and no slew limit: a move inside the window is one step with no wait
        self.free = bool(np.all(np.isinf(guard.step[ch])) and np.all(np.isinf(guard.rate[ch])))
        self.version = (t.version, guard._version)
        # one window for every channel (the common case): its bounds as numbers, so that a check is
        # two reductions (min and max, NaN propagating) instead of elementwise comparisons
        self.flat: tuple[float, float, float, float] | None = None
        if ch.size and np.all(self.lo == self.lo[0]) and np.all(self.hi == self.hi[0]):
            self.flat = (float(self.lo[0]), float(self.hi[0]), float(self.lo_s[0]), float(self.hi_s[0]))

    def inside(self, v: np.ndarray) -> bool:
        """Every value within the limits (NaN is not)."""
        if self.flat is not None:
            return bool(v.min() >= self.flat[0]) and bool(v.max() <= self.flat[1])
        return bool(((v >= self.lo) & (v <= self.hi)).all())


class SourceGuard:
    """What one source function of an instrument may send, and what it is known to hold.

    Parameters
    ----------
    table
        The channel limits (instrument range narrowed by the role limits).
    step, rate
        Largest move per write and largest slew (unit and unit/s); ``math.inf`` for none.
    clock
        The clock slews are timed on (the bench sets its own).
    text
        True for text transports (SCPI, serial): values are checked as formatted.
    quantum
        Output resolution of a simulated DAC (values snap to multiples of it), 0 for none.
    """

    def __init__(
        self,
        table: LimitTable,
        step: float = math.inf,
        rate: float = math.inf,
        *,
        clock: Clock | None = None,
        text: bool = True,
        quantum: float = 0.0,
    ) -> None:
        n = table.n_channels
        self.table = table
        self.step = np.full(n, float(step))
        self.rate = np.full(n, float(rate))
        self.clock: Clock = clock or WallClock()
        self.text = text
        self.quantum = float(quantum)
        self.present = np.full(n, np.nan)  # confirmed values; NaN: unknown
        self.pending = np.zeros(n)  # the last value commanded (the best guess when unknown and unreadable)
        self.changed = np.full(n, -np.inf)  # clock time of the last confirmed change (or of learning the value)
        self.sent = 0
        self._lanes = ChannelCache()
        self._version = 0  # counts slew changes (lanes derived before are stale)

    # ------------------------------------------------------------ knowledge
    def know(self, channels: ArrayLike, values: ArrayLike) -> None:
        """Record values read back from the instrument (connect, confirmation); times them now."""
        ch = self.table.indices(channels)
        v = np.broadcast_to(np.asarray(values, float), ch.shape)
        self.present[ch] = v
        self.pending[ch] = v
        self.changed[ch] = np.maximum(self.changed[ch], self.clock.now())

    def forget(self, channels: ArrayLike) -> None:
        """The instrument's value on these channels is no longer known (a failed exchange)."""
        self.present[self.table.indices(channels)] = np.nan

    def unknown(self, channels: ArrayLike) -> np.ndarray:
        """Channels (of ``channels``) whose value is not confirmed."""
        ch = self.table.indices(channels)
        return ch[np.isnan(self.present[ch])]

    def limit_rate(self, channels: ArrayLike, rate: float) -> None:
        """Tighten the slew limit of some channels (the tighter of ramp and safety wins)."""
        ch = self.table.indices(channels)
        self.rate[ch] = np.minimum(self.rate[ch], float(rate))
        self._version += 1

    def safe_values(self, channels: ArrayLike) -> np.ndarray:
        """The point of each channel's window nearest 0."""
        ch = self.table.indices(channels)
        return np.clip(0.0, self.table.low[ch], self.table.high[ch])

    # --------------------------------------------------------------- values
    def admit(self, channels: ArrayLike, values: ArrayLike) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
        """Values as they go on the wire, rounded toward the inside; LimitError if any is outside.

        Returns the channels, the exact values the instrument will hold and, on text
        transports, their text.
        """
        if not self.text and isinstance(channels, np.ndarray):
            fast = self._admit_float(channels, values)
            if fast is not None:
                return fast
        ch = self.table.indices(channels)
        v = np.array(values, dtype=float).reshape(-1)
        if v.shape != ch.shape:
            raise LimitError(f"{self.table.instrument}: {v.size} values for {ch.size} channels")
        lo, hi = self.table.low[ch], self.table.high[ch]
        slack = ULPS * np.spacing(np.maximum(np.abs(lo), np.abs(hi)))
        v = np.where((v < lo) & (v >= lo - slack), lo, v)  # NaN stays NaN and fails the check
        v = np.where((v > hi) & (v <= hi + slack), hi, v)
        if self.quantum:
            q = self.quantum
            snapped = np.round(v / q) * q
            snapped = np.where(snapped > hi, np.floor(v / q) * q, snapped)
            v = np.where(snapped < lo, np.ceil(v / q) * q, snapped)
        texts = None
        if self.text:
            texts = [text_inside(float(x), float(a), float(b)) if math.isfinite(x) else "nan" for x, a, b in
                     zip(v, lo, hi)]
            v = np.array([float(t) for t in texts])
        self.table.check(ch, v)
        return ch, v, texts

    def _lane(self, ch: np.ndarray) -> _Lane:
        lane = self._lanes.get(ch)
        if lane is None or lane.version != (self.table.version, self._version):
            lane = _Lane(self, self.table.indices(ch))
            if lane.ch is ch:
                self._lanes.put(ch, lane)
        return lane

    def _admit_float(self, channels: np.ndarray, values: ArrayLike) -> tuple[np.ndarray, np.ndarray, None] | None:
        """:meth:`admit` on a float transport in a few vectorised steps; None when a value fails (the
        general path then names it). The values come back as a new array only when some had to be
        pulled onto a limit or rounded to the DAC grid; otherwise they are the caller's own."""
        lane = self._lane(channels)
        v = np.asarray(values, dtype=float)
        if v.shape != lane.ch.shape:
            return None
        if lane.flat is not None and v.size:
            lo, hi, lo_s, hi_s = lane.flat
            low, high = v.min(), v.max()  # NaN propagates: it fails both tests below
            if not (low >= lo_s and high <= hi_s):
                return None
            if low < lo or high > hi:
                v = np.minimum(np.maximum(v, lo), hi)  # an overshoot of a few ulps onto the limit
        else:
            if not ((v >= lane.lo_s) & (v <= lane.hi_s)).all():  # NaN fails too
                return None
            v = np.minimum(np.maximum(v, lane.lo), lane.hi)
        if self.quantum:
            q = self.quantum
            snapped = np.round(v / q) * q
            snapped = np.where(snapped > lane.hi, np.floor(v / q) * q, snapped)
            v = np.where(snapped < lane.lo, np.ceil(v / q) * q, snapped)
            if not lane.inside(v):
                return None
        return lane.ch, v, None

    def path(
        self, channels: ArrayLike, target: ArrayLike, start: np.ndarray | None = None, admitted: bool = False
    ) -> list[np.ndarray]:
        """The steps from the present values to ``target`` (each to be admitted), entry jump first.

        The last step is ``target`` as admitted (the very array when ``admitted``).
        """
        ch = self.table.indices(channels)
        goal = np.asarray(target, float) if admitted else self.admit(ch, target)[1]
        here = self.present[ch].copy() if start is None else np.array(start, float)
        here = np.where(np.isnan(here), self.pending[ch], here)
        lo, hi = self.table.low[ch], self.table.high[ch]
        steps: list[np.ndarray] = []
        outside = (here < lo) | (here > hi)
        if outside.any():
            entry = np.clip(here, lo, hi)
            jump = np.abs(entry - here)
            bad = outside & (jump > self.step[ch])
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                c = int(ch[i])
                t = self.table
                raise LimitError(
                    f"{t.instrument}/{t.prefix}{c} is at {here[i]:.6g} {t.unit}, outside its limits "
                    f"[{lo[i]:g}, {hi[i]:g}] {t.unit}, and reaching them takes a jump of {jump[i]:.6g} {t.unit}, "
                    f"more than its ramp step {self.step[c]:g} {t.unit}; nothing was sent",
                    hint="set the channel inside its limits before the run, or allow a ramp step that covers the jump",
                )
            here = np.where(outside, entry, here)
            steps.append(here.copy())
        step = np.where(np.isfinite(self.step[ch]), self.step[ch], self.rate[ch] * TICK)
        span = np.abs(goal - here)
        with np.errstate(divide="ignore", invalid="ignore"):
            counts = np.where(span > 0, np.ceil(span / step), 0)
        counts = np.where(np.isfinite(counts), counts, 1)
        n = int(counts.max()) if counts.size else 0
        for k in range(1, n + 1):
            steps.append(goal if k == n else here + (goal - here) * (k / n))
        if not steps:
            steps.append(goal)  # nothing moves: the value is still sent (and confirmed) once
        return steps

    # ------------------------------------------------------------- sending
    def move(
        self,
        channels: ArrayLike,
        target: ArrayLike,
        send: Send,
        start: np.ndarray | None = None,
        *,
        admitted: bool = False,
    ) -> None:
        """Bring channels to ``target`` through :meth:`path`, each step admitted, slew-timed and confirmed.

        ``send(channels, values, texts)`` puts one step on the wire and returns only once
        the instrument confirmed it; if it raises, the channels stay unknown. ``admitted``
        says that ``channels`` and ``target`` are what :meth:`admit` just returned on a float
        transport (they are not admitted again).
        """
        if admitted and not self.text and isinstance(channels, np.ndarray):
            ch, goal, texts = channels, np.asarray(target, float), None
        else:
            ch, goal, texts = self.admit(channels, target)
        if start is None and not self.text:
            lane = self._lane(ch)
            if lane.free:
                here = self.present[lane.at]
                if lane.inside(here):  # known (not NaN) and inside: one step
                    self._send_free(lane, goal, send, here != goal)
                    return
        for raw in self.path(ch, goal, start, admitted=True):
            if raw is goal:  # admitted above (the common case: one step)
                self._send(ch, goal, texts, send)
            else:
                ch, v, t = self.admit(ch, raw)
                self._send(ch, v, t, send)

    def _send(self, ch: np.ndarray, v: np.ndarray, texts: list[str] | None, send: Send) -> None:
        before = self.present[ch]
        before = np.where(np.isnan(before), self.pending[ch], before)
        delta = np.abs(v - before)
        moving = delta > 0
        if moving.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                need = np.where(moving, delta / self.rate[ch], 0.0)
            wait = float(np.max(need - (self.clock.now() - self.changed[ch])))
            if wait > 0:
                self.clock.sleep(wait)
        self.present[ch] = np.nan  # unknown until confirmed
        self.pending[ch] = v
        self.sent += 1
        try:
            send(ch, v, texts)
        except BaseException:
            self.changed[ch[moving]] = self.clock.now()
            raise
        self.present[ch] = v
        self.changed[ch[moving]] = self.clock.now()  # after the confirmation: the instrument had it by then

    def _send_free(self, lane: _Lane, v: np.ndarray, send: Send, moving: np.ndarray) -> None:
        """:meth:`_send` of one step on channels without step or slew limits (nothing to wait for)."""
        at = lane.at
        self.present[at] = np.nan  # unknown until confirmed
        self.pending[at] = v
        self.sent += 1
        try:
            send(lane.ch, v, None)
        except BaseException:
            self._mark_changed(at, moving)
            raise
        self.present[at] = v
        self._mark_changed(at, moving)

    def _mark_changed(self, at: np.ndarray | slice, moving: np.ndarray) -> None:
        """The moving channels of ``at`` changed now (in place through a view when ``at`` is a slice)."""
        if isinstance(at, slice):
            np.copyto(self.changed[at], self.clock.now(), where=moving)
        else:
            self.changed[at] = np.where(moving, self.clock.now(), self.changed[at])
