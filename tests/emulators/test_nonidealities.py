"""The twin's instrument non-idealities in the emulators: noise, DAC resolution, latency, timeouts."""

from __future__ import annotations

import numpy as np

from drivers.base import DriverSettings
from drivers.serial_board import SerialBoard
from sim_backends.emulators import SerialBoardEmulator, TwinChannels


class Latch:
    """A stand-in twin: what is written to 'knobs' reads back from 'params'."""

    def __init__(self, n: int) -> None:
        self.ports = {"inputs": np.zeros(n), "knobs": np.zeros(n), "nudges": np.zeros(n)}

    def write(self, port, index, values):
        self.ports[port][index] = values

    def read(self, port, index):
        return self.ports["knobs"][index].copy()


def test_dac_resolution_and_reading_noise():
    twin = Latch(2)
    ch = TwinChannels(twin, 4, dac_step=20 / 2**8, noise=1e-3, seed=1)
    ch.wire([0, 1], "knobs", [0, 1], [1.0, 1.0], [0.0, 0.0])
    ch.wire([2, 3], "params", [0, 1], [1.0, 1.0], [0.0, 0.0])
    ch.drive([0, 1], [0.1, -0.3])
    np.testing.assert_allclose(twin.ports["knobs"], [0.078125, -0.3125])  # 20 V over 8 bits
    a, b = ch.measure([2, 3]), ch.measure([2, 3])
    assert not np.array_equal(a, b)
    np.testing.assert_allclose(a, [0.078125, -0.3125], atol=5e-3)


def test_timeouts_every_n_replies_are_recovered_by_the_driver():
    emu = SerialBoardEmulator("board", TwinChannels(None, 8), 4, 4)
    emu.drop_every = 4
    with emu:
        b = SerialBoard.open("board", DriverSettings(resource=emu.resource, timeout=0.2))
        for _ in range(4):
            b.read([4, 5])
        b.close()
    log = [r.command for r in emu.log]
    # replies 4 (GETM_DAC at connect, after *IDN?, NCH?, RANGE?), 8 and 12 were dropped
    assert log.count("*IDN?") == 4  # connect, then a re-identification after each of three timeouts
    assert log.count("GETM_DAC 0:3") == 2  # the connect read retried once
    assert log.count("GETM_ADC 0:1") == 6  # four reads, two of them retried once
