"""Real-hardware checks (opt-in: ``pytest --bench``). Resources come from environment variables.

``AEQLAB_BENCH_2450`` (VISA resource of a Keithley 2450 with nothing connected or a
1 kOhm load), ``AEQLAB_BENCH_DMM`` (a 34465A/34461A), ``AEQLAB_BENCH_BOARD`` (the
serial board's port). A missing variable fails the test: asking for --bench means
the bench is there.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from drivers.base import DriverSettings
from drivers.keithley2450 import Keithley2450
from drivers.keysight_344xx import Keysight344xx
from drivers.serial_board import SerialBoard

pytestmark = pytest.mark.bench


def resource(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        pytest.fail(f"--bench needs {var} (the instrument's resource)")
    return value


def test_2450_identify_small_nudge_and_safe_state():
    smu = Keithley2450.open("smu", DriverSettings(resource=resource("AEQLAB_BENCH_2450"), voltage_range=(-1, 1)))
    try:
        assert "2450" in smu.identify()
        smu.current_limits.restrict([0], -1e-6, 1e-6)
        smu.set_currents([0], [1e-7])
        smu.enable([0], True)
        v = smu.read([0])
        assert np.all(np.abs(v) <= 1.0)
    finally:
        smu.safe_state()
        assert smu.state()["output_on"] == [False]
        assert smu.link.query(":OUTP?") in ("0", "OFF")
        smu.close()


def test_dmm_reads_a_finite_voltage():
    dmm = Keysight344xx.open("dmm", DriverSettings(resource=resource("AEQLAB_BENCH_DMM")))
    try:
        assert np.isfinite(dmm.read([0])).all()
    finally:
        dmm.close()


def test_board_round_trip_and_safe_state():
    board = SerialBoard.open("board", DriverSettings(resource=resource("AEQLAB_BENCH_BOARD")))
    try:
        board.write([0], [0.1])
        assert board.setpoints([0])[0] == pytest.approx(0.1)
        board.read([board.n_dac])
    finally:
        board.safe_state()
        board.close()
