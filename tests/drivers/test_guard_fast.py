"""The float transports' fast path admits exactly what the general path admits, and refuses what it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.channels import ChannelCache
from drivers.errors import LimitError
from drivers.guard import ULPS, SourceGuard
from drivers.limits import LimitTable


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def float_guard(low, high, n, quantum=0.0):
    g = SourceGuard(LimitTable("dac", "voltage", "V", n, -10, 10, prefix="ao"), clock=FakeClock(), text=False,
                    quantum=quantum)
    g.table.restrict(np.arange(n), low, high)
    g.know(np.arange(n), 0.0)
    return g


def frozen(a):
    a = np.array(a, np.intp)
    a.flags.writeable = False
    return a


def general(g, ch, v):
    """The general path (a list of channels never takes the fast one)."""
    try:
        return g.admit(ch.tolist(), v)[1]
    except LimitError:
        return None


@pytest.mark.parametrize("quantum", [0.0, 0.25])
@pytest.mark.parametrize("flat", [True, False])
def test_fast_admit_agrees_with_the_general_path(flat, quantum):
    n = 40
    low = -1.0 if flat else np.linspace(-1.0, -0.5, n)
    high = 1.0 if flat else np.linspace(0.5, 1.0, n)
    g = float_guard(low, high, n, quantum)
    ch = frozen(np.arange(n))
    lo, hi = g.table.low, g.table.high
    slack = ULPS * np.spacing(1.0)
    rng = np.random.default_rng(0)
    cases = [
        rng.uniform(-0.5, 0.5, n),  # inside
        np.where(np.arange(n) % 3 == 0, hi + slack / 2, rng.uniform(-0.5, 0.5, n)),  # ulps over: onto the limit
        np.where(np.arange(n) % 5 == 0, lo - slack / 2, rng.uniform(-0.5, 0.5, n)),
        np.r_[rng.uniform(-0.5, 0.5, n - 1), 1.0 + 1e-6],  # beyond: refused
        np.r_[np.nan, rng.uniform(-0.5, 0.5, n - 1)],  # NaN: refused
        np.r_[rng.uniform(-0.5, 0.5, n - 1), -np.inf],
    ]
    for values in cases:
        expected = general(g, ch, values)
        if expected is None:
            with pytest.raises(LimitError):
                g.admit(ch, values)
            continue
        got_ch, got, texts = g.admit(ch, values)
        assert got_ch is ch and texts is None
        np.testing.assert_array_equal(got, expected)
        assert np.all((got >= lo) & (got <= hi))


def test_admitted_move_puts_the_admitted_values_on_the_wire_and_confirms_them():
    g = float_guard(-1.0, 1.0, 4)
    ch = frozen([0, 1, 2, 3])
    sent = []
    over = 1.0 + 2 * np.spacing(1.0)
    _, v, _ = g.admit(ch, np.array([0.5, over, -0.25, 0.0]))
    g.move(ch, v, lambda c, x, _t: sent.append((c, x.copy(), np.isnan(g.present[c]).all())), admitted=True)
    (c, x, unknown_while_sent), = sent
    assert c is ch and unknown_while_sent  # unknown until the send returned
    np.testing.assert_array_equal(x, [0.5, 1.0, -0.25, 0.0])
    np.testing.assert_array_equal(g.present, x)


def test_a_failed_send_leaves_the_channels_unknown():
    g = float_guard(-1.0, 1.0, 3)
    ch = frozen([0, 1, 2])

    def lost(c, x, _t):
        raise OSError("no answer")

    with pytest.raises(OSError):
        g.move(ch, np.array([0.1, 0.2, 0.3]), lost)
    assert np.isnan(g.present).all()
    # the next move starts from the commanded values (not from unknown) and confirms them
    g.move(ch, np.array([0.1, 0.2, 0.3]), lambda c, x, _t: None)
    np.testing.assert_array_equal(g.present, [0.1, 0.2, 0.3])


def test_channel_cache_trusts_only_read_only_arrays_that_own_their_data():
    cache = ChannelCache()
    ro = frozen([1, 2, 3])
    cache.put(ro, "ro")
    assert cache.get(ro) == "ro"
    rw = np.array([1, 2, 3], np.intp)
    cache.put(rw, "rw")
    assert cache.get(rw) == "rw"
    rw[0] = 7  # a writeable array whose content changed is a miss
    assert cache.get(rw) is None
    base = np.array([1, 2, 3, 4], np.intp)
    view = base[:3]
    view.flags.writeable = False  # read-only, but a view of a writeable array
    cache.put(view, "view")
    base[0] = 9
    assert cache.get(view) is None
    ro2 = frozen([4, 5])
    cache.put(ro2, "ro2")
    ro2.flags.writeable = True  # made writeable again: compared by content from then on
    ro2[0] = 6
    assert cache.get(ro2) is None
