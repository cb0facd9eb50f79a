"""Wire rules seen from the emulators' own logs: windows excluding 0, hold, slew, TSP mode, compliance, hang-up."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.base import DriverSettings, Ramp
from drivers.errors import InstrumentError
from drivers.keithley2450 import Keithley2450
from drivers.qdac2 import QDac2
from drivers.serial_board import SerialBoard

TIMEOUT = 0.5


def board_values(emu) -> list[tuple[float, list[float]]]:
    """(time, values) of every SETM the board emulator received."""
    out = []
    for rec in emu.log:
        if rec.command.startswith("SETM"):
            out.append((rec.time, [float(v) for v in rec.command.split()[-1].split(",")]))
    return out


def test_a_window_excluding_zero_is_entered_at_its_limit_and_left_there(emulator):
    emu = emulator("serial_board")  # DACs as found at 0 V
    b = SerialBoard.open("board", DriverSettings(resource=emu.resource, timeout=TIMEOUT, ramp=Ramp(0.5, 100.0)))
    b.output_limits.restrict([0, 1], 0.5, 5.0)  # the knobs' role limits
    b.write([0, 1], [2.0, 1.0])
    np.testing.assert_allclose(emu.dac[:2], [2.0, 1.0])
    sent = board_values(emu)
    assert sent[0][1] == [0.5, 0.5]  # one jump to the nearest limit, nothing in (0, 0.5)
    assert min(min(v) for _, v in sent) >= 0.5
    assert b.safe_state() == []  # the safe value of [0.5, 5] V is 0.5 V: confirmed there
    sent = board_values(emu)
    assert min(min(v) for _, v in sent) >= 0.5 and emu.dac[0] == 0.5 and emu.dac[1] == 0.5
    for (t0, v0), (t1, v1) in zip(sent, sent[1:]):  # every step within 0.5 V and 100 V/s, by the emulator's clock
        dv = max(abs(a - c) for a, c in zip(v0, v1))
        assert dv <= 0.5 + 1e-12 and dv / (t1 - t0) <= 100.0 * 1.001
    b.close()


def test_hold_leaves_every_level_as_it_is(emulator):
    emu = emulator("qdac2")
    q = QDac2.open("qdac", DriverSettings(resource=emu.resource, timeout=TIMEOUT, channels=4))
    q.write([0, 1], [1.5, -0.5])
    n = len(emu.log)
    assert q.safe_state("hold") == []
    assert not [r.command for r in list(emu.log)[n:] if not r.command.endswith("?")]  # nothing set
    np.testing.assert_allclose(emu.level[:2], [1.5, -0.5])
    assert q.safe_state() == []  # zero: every channel at 0 V, read back
    np.testing.assert_allclose(emu.level, 0.0)
    q.close()


def test_2450_in_tsp_mode_is_refused_before_anything_is_set(emulator):
    emu = emulator("keithley2450")
    emu.lang = "TSP"
    with pytest.raises(InstrumentError, match="TSP command mode, not SCPI.*MENU > System > Settings > Command Set"):
        Keithley2450.open("smu", DriverSettings(resource=emu.resource, timeout=TIMEOUT))
    assert [r.command for r in emu.log] == ["*IDN?", "*LANG?"]


def test_2450_compliance_tripped_after_a_nudge(emulator):
    emu = emulator("keithley2450")
    smu = Keithley2450.open(
        "smu",
        DriverSettings(
            resource=emu.resource, timeout=TIMEOUT, current_range=(-1e-5, 1e-5), options={"compliance": 2.0}
        ),
    )
    smu.set_currents([0], [0.0])
    smu.enable([0], True)
    smu.set_currents([0], [1e-6])
    assert smu.compliance_tripped() == [False]
    emu.measure = lambda k: 2.5  # the load now needs more than the 2 V compliance
    smu.set_currents([0], [2e-6])
    assert smu.compliance_tripped() == [True]
    assert any(r.command == ":SOUR:CURR:VLIM:TRIP?" for r in emu.log)
    assert smu.safe_state() == []
    assert emu.ch[0].on is False and emu.ch[0].level["CURR"] == 0.0
    smu.close()


def test_a_hang_up_then_safe_state_reconnects_once_and_confirms(emulator):
    emu = emulator("keithley2450")
    smu = Keithley2450.open("smu", DriverSettings(resource=emu.resource, timeout=TIMEOUT, current_range=(-1e-5, 1e-5)))
    smu.set_currents([0], [0.0])
    smu.enable([0], True)
    smu.set_currents([0], [3e-6])
    emu.hang_up()
    with pytest.raises(InstrumentError):
        smu.set_currents([0], [4e-6])
    assert smu.safe_state() == []  # the link came back: level and output read back safe
    assert emu.ch[0].on is False and emu.ch[0].level["CURR"] == 0.0
    smu.close()


def test_a_mute_board_still_gets_its_safe_values_and_every_dac_is_reported_unconfirmed(emulator):
    emu = emulator("serial_board")
    b = SerialBoard.open("board", DriverSettings(resource=emu.resource, timeout=0.2))
    b.write([0, 1], [1.0, -1.0])
    emu.scheduled = ("mute", emu._replies + 1, 1)  # from now on commands execute, replies never come
    failures = b.safe_state()
    np.testing.assert_allclose(emu.dac, 0.0)  # the safe values arrived
    assert [f.split(":")[0] for f in failures] == ["board/ao0", "board/ao1", "board/ao2", "board/ao3"]
    assert all("not confirmed" in f for f in failures)
    b.close()
