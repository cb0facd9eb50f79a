"""Settle waits on the wall clock end on time: sleep most of the wait, spin the rest."""

from __future__ import annotations

import drivers.capabilities as caps


class FakeTime:
    """perf_counter advances 10 µs per look; sleep oversleeps by 0.1 ms, as Linux does."""

    def __init__(self):
        self.t = 0.0
        self.slept: list[float] = []

    def perf_counter(self) -> float:
        self.t += 1e-5
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s + 1e-4


def test_a_long_wait_sleeps_all_but_its_last_stretch_and_ends_at_its_deadline(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(caps, "time", fake)
    caps.precise_sleep(0.5)
    assert fake.slept == [0.5 - caps.SPIN_S]
    # the oversleep of time.sleep is taken out of the spin: it ends within one look of 0.5 s
    assert 0.5 <= fake.t <= 0.5 + 3e-5


def test_a_short_wait_is_spun_whole_and_nothing_is_no_wait(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(caps, "time", fake)
    caps.precise_sleep(caps.SHORT_WAIT_S)
    assert fake.slept == [] and caps.SHORT_WAIT_S <= fake.t <= caps.SHORT_WAIT_S + 3e-5
    before = fake.t
    caps.precise_sleep(0.0)
    caps.precise_sleep(-1.0)
    assert fake.t == before and fake.slept == []
