"""The wire guard: limits after rounding, slew on every path, entry into a window that excludes 0."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.errors import LimitError
from drivers.guard import SourceGuard, text_inside
from drivers.limits import LimitTable


class FakeClock:
    """Simulated time: sleeping advances it (no wall-clock waits in tests)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def guard(low=-1.0, high=1.0, n=2, step=np.inf, rate=np.inf, **kw):
    clock = FakeClock()
    g = SourceGuard(LimitTable("dac", "voltage", "V", n, -10, 10, prefix="ao"), step, rate, clock=clock, **kw)
    g.table.restrict(np.arange(n), low, high)
    return g, clock


def record(log, clock):
    return lambda ch, v, texts: log.append((clock.now(), ch.copy(), v.copy(), texts))


def test_text_is_checked_as_formatted_and_rounded_toward_the_inside():
    lim = 0.09999999999999
    assert float(text_inside(lim, -lim, lim)) <= lim
    assert float(text_inside(-lim, -lim, lim)) >= -lim
    g, _ = guard(-lim, lim, n=1)
    _, v, texts = g.admit([0], [lim])
    assert float(texts[0]) == v[0] <= lim and texts[0] != "0.1"
    with pytest.raises(LimitError, match="outside its limits"):
        g.admit([0], [0.1])


def test_calibration_round_trip_at_saturation_is_pulled_onto_the_limit():
    scale = 4.577
    g, _ = guard(-0.8, 0.8, n=1)
    model = -0.8 / scale  # the saturated knob in model units
    si = model * scale
    assert si < -0.8  # the round trip overshoots by an ulp
    _, v, texts = g.admit([0], [si])
    assert v[0] == -0.8 and texts == ["-0.8"]
    with pytest.raises(LimitError):
        g.admit([0], [-0.8 - 1e-9])  # further out is a real violation


def test_simulated_dac_grid_rounds_toward_the_inside():
    g, _ = guard(-0.3, 0.3, n=2, text=False, quantum=0.25)
    _, v, texts = g.admit([0, 1], [0.3, -0.3])  # nearest grid points 0.25 / -0.25 are inside; 0.3 -> 0.25
    assert texts is None
    np.testing.assert_array_equal(v, [0.25, -0.25])
    g, _ = guard(-0.4, 0.4, n=1, text=False, quantum=0.25)
    _, v, _ = g.admit([0], [0.4])  # nearest is 0.5, outside: floor to 0.25
    assert v[0] == 0.25


def slews(log, start, rate_tol=1e-9):
    """Largest |Δ|/Δt between consecutive sends (from the start value at t=0)."""
    t0, v0, worst = 0.0, np.asarray(start, float), 0.0
    for t, _, v, _ in log:
        dt = t - t0
        dv = float(np.max(np.abs(v - v0)))
        if dv:
            worst = max(worst, np.inf if dt <= 0 else dv / dt)
        t0, v0 = t, v
    return worst


def test_slew_holds_on_the_first_move_a_sample_and_the_way_to_safe():
    g, clock = guard(-5, 5, n=2, step=0.5, rate=2.0)
    g.limit_rate([0, 1], 1.0)  # the safety rate is tighter than the ramp's: it wins
    g.know([0, 1], [0.0, 0.0])  # as found at t=0
    log: list = []
    g.move([0, 1], [2.0, -1.0], record(log, clock))  # the first move from the as-found state
    assert len(log) == 4 and np.allclose(log[-1][2], [2.0, -1.0])
    assert slews(log, [0, 0]) <= 1.0 + 1e-9
    n = len(log)
    g.move([0], [2.1], record(log, clock))  # a sample: one small step, still slew-timed
    assert len(log) == n + 1
    from drivers.safe import levels_to_safe

    failures = levels_to_safe(g, np.arange(2), record(log, clock), None, lambda c: f"ao{c}")
    assert failures == []
    # every step of every path, first move and safe state included, respected 1 V/s
    values = [np.full(2, np.nan)]
    for _, ch, v, _ in log:
        full = values[-1].copy()
        full[ch] = v
        values.append(full)
    times = [0.0] + [t for t, *_ in log]
    vals = np.nan_to_num(np.array(values), nan=0.0)
    for k in range(1, len(times)):
        dv = np.max(np.abs(vals[k] - vals[k - 1]))
        if dv:
            assert dv / (times[k] - times[k - 1]) <= 1.0 + 1e-9
            assert dv <= 0.5 + 1e-12
    np.testing.assert_allclose(g.present, [0.0, 0.0])


def test_a_window_excluding_zero_is_entered_by_one_jump_to_its_nearest_limit():
    g, clock = guard(0.5, 5.0, n=1, step=0.5, rate=10.0)
    g.know([0], [0.0])
    log: list = []
    g.move([0], [2.0], record(log, clock))
    sent = [float(v[0]) for _, _, v, _ in log]
    assert sent[0] == 0.5  # straight to the nearest limit: nothing between 0 and 0.5 was ever sent
    assert min(sent) >= 0.5 and sent[-1] == 2.0
    assert clock.slept[0] == pytest.approx(0.05)  # the jump waited its slew time (0.5 V at 10 V/s)
    np.testing.assert_allclose(g.safe_values([0]), [0.5])  # the safe value is the window's point nearest 0


def test_a_jump_into_the_window_larger_than_the_ramp_step_is_refused():
    g, clock = guard(0.5, 5.0, n=1, step=0.1, rate=10.0)
    g.know([0], [0.0])
    log: list = []
    with pytest.raises(LimitError, match="outside its limits .* more than its ramp step"):
        g.move([0], [2.0], record(log, clock))
    assert log == []


def test_a_failed_send_leaves_the_channel_unknown():
    g, clock = guard(n=1)
    g.know([0], [0.0])

    def lost(ch, v, texts):
        raise OSError("reply lost")

    with pytest.raises(OSError):
        g.move([0], [0.5], lost)
    assert g.unknown([0]).tolist() == [0]
    assert g.pending[0] == 0.5  # what was in flight: the ramp start when the level cannot be read back
