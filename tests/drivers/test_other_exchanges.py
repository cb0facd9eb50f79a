"""Exact exchanges of the DMM, QDAC-II and serial-board drivers, and the SCPI link's recovery."""

from __future__ import annotations

import numpy as np
import pytest
from expected import NO_ERROR, TIMEOUT, Expected, ExpectedSerial, ok

from aeqlab.errors import InstrumentError, LimitError
from drivers.base import DriverSettings, Ramp
from drivers.keysight_344xx import Keysight344xx
from drivers.qdac2 import QDac2
from drivers.scpi import ScpiLink
from drivers.serial_board import LineLink, SerialBoard, channel_list

IDN = "Keysight Technologies,34465A,MY1,A.03"


def dmm(steps, **options):
    fake = Expected(steps)
    link = ScpiLink("dmm", fake, expect=Keysight344xx.expect)
    link.identity = IDN
    return Keysight344xx("dmm", link, DriverSettings(options=options)), fake


def test_dmm_configures_once_then_reads():
    d, fake = dmm([ok("CONF:VOLT:DC AUTO"), ok("VOLT:DC:NPLC 10"), NO_ERROR, ("q", "READ?", "+1.25E-01")], nplc=10)
    fake.steps.append(("q", "READ?", "-3.0E-02"))
    assert d.read([0])[0] == pytest.approx(0.125)
    assert d.read([0])[0] == pytest.approx(-0.03)
    fake.assert_done()


def test_dmm_init_fetch_and_fixed_range():
    d, fake = dmm(
        [ok("CONF:VOLT:DC 1"), ok("VOLT:DC:NPLC 1"), NO_ERROR, ok("INIT"), ("q", "FETC?", "5.0E-01")],
        trigger="init_fetch",
        range=1.0,
    )
    assert d.read([0])[0] == 0.5
    fake.assert_done()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("+9.90000000E+37", "overload"),
        ("nan", "overload or non-finite"),
        ("volts", "not numbers"),
        ("1.0,2.0", "has 2 values, expected 1"),
        ("12.5", "outside the range"),
    ],
)
def test_dmm_overload_garbage_and_out_of_range_replies_are_errors(reply, message):
    d, fake = dmm([ok("CONF:VOLT:DC AUTO"), ok("VOLT:DC:NPLC 1"), NO_ERROR, ("q", "READ?", reply)])
    if message.startswith("overload"):
        fake.steps.append(NO_ERROR)  # a bad reading: the driver looks for the instrument's reason
    if message.startswith(("not numbers", "has 2")):  # garbled: retried once like a timeout, then a fault
        fake.steps += [("clear",), ("w", "*IDN?"), ("r", IDN), ("q", "READ?", reply)]
        message += ".*twice in a row"
    with pytest.raises(InstrumentError, match=f"dmm: .*{message}"):
        d.read([0])
    fake.assert_done()


def test_dmm_not_a_number_reading_reports_the_instruments_reason():
    d, fake = dmm([ok("CONF:VOLT:DC AUTO"), ok("VOLT:DC:NPLC 1"), NO_ERROR, ("q", "READ?", "9.91E37")])
    fake.steps.append(("q", "SYST:ERR?", '-240,"Hardware error"'))
    with pytest.raises(InstrumentError, match='no valid reading; the instrument reports -240,"Hardware error"'):
        d.read([0])
    fake.assert_done()


def test_dmm_refuses_nplc_its_model_lacks():
    fake = Expected([])
    link = ScpiLink("dmm", fake, expect=Keysight344xx.expect)
    link.identity = "Keysight Technologies,34461A,MY1,A.03"
    with pytest.raises(InstrumentError, match="does not offer NPLC 0.06"):
        Keysight344xx("dmm", link, DriverSettings(options={"nplc": 0.06}))


def test_dmm_instrument_error_queue_is_reported():
    d, fake = dmm([ok("CONF:VOLT:DC AUTO"), ok("VOLT:DC:NPLC 1"), ("q", "SYST:ERR?", '-222,"Data out of range"')])
    with pytest.raises(InstrumentError, match="Data out of range"):
        d.read([0])
    fake.assert_done()


def test_qdac_reads_levels_on_connect_sets_fixed_mode_once_and_ramps():
    fake = Expected([("q", ":sour1:volt?;:sour2:volt?;:sour3:volt?", "0.5;0;0")])
    link = ScpiLink("qdac", fake, expect=QDac2.expect)
    q = QDac2("qdac", link, 3, DriverSettings(ramp=Ramp(step=0.3, rate=1e6)))
    np.testing.assert_allclose(q.setpoints([0, 1, 2]), [0.5, 0, 0])
    fake.steps += [
        ok(":sour1:volt:mode fix;:sour3:volt:mode fix"),
        ok(":sour1:volt 0.4;:sour3:volt -0.25"),
        ok(":sour1:volt 0.3;:sour3:volt -0.5"),
        ok(":sour3:volt -0.25"),
        ok(":sour3:volt 0"),
    ]
    q.write([0, 2], [0.3, -0.5])
    q.write([2], [0.0])
    fake.assert_done()
    with pytest.raises(LimitError):
        q.write([1], [11.0])


def test_scpi_timeout_clears_reidentifies_skips_a_stale_reply_and_retries_once():
    fake = Expected(
        [
            ("q", "READ?", TIMEOUT),
            ("clear",),
            ("w", "*IDN?"),
            ("r", "+1.0E-01"),  # the late reply to READ?, stale
            ("r", IDN),
            ("q", "READ?", "+2.0E-01"),
        ]
    )
    link = ScpiLink("dmm", fake, expect=("34465A",))
    link.identity = IDN
    assert link.query_floats("READ?", 1)[0] == 0.2
    fake.assert_done()


def test_scpi_second_timeout_in_a_row_is_a_fault():
    fake = Expected([("q", "READ?", TIMEOUT), ("clear",), ("w", "*IDN?"), ("r", IDN), ("q", "READ?", TIMEOUT)])
    link = ScpiLink("dmm", fake, expect=("34465A",))
    link.identity = IDN
    with pytest.raises(InstrumentError, match="no reply to 'READ\\?'.*twice in a row"):
        link.query("READ?")
    fake.assert_done()


def test_scpi_retries_are_configurable():
    fake = Expected([("q", "READ?", TIMEOUT)])
    link = ScpiLink("dmm", fake, expect=("34465A",), retries=0)
    link.identity = IDN
    with pytest.raises(InstrumentError, match="no reply"):
        link.query("READ?")
    fake.assert_done()


def test_scpi_refused_connection_and_wrong_identity_are_clear_errors():
    link = ScpiLink("dmm", Expected([("q", "*IDN?", ConnectionRefusedError(111, "Connection refused"))]), expect=("x",))
    with pytest.raises(InstrumentError, match="dmm: cannot talk to .*Connection refused"):
        link.identify()
    link = ScpiLink("dmm", Expected([("q", "*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,1,1")]), expect=("34465A",))
    with pytest.raises(InstrumentError, match="not a 34465A"):
        link.identify()


def board(steps, n_dac=4, n_adc=3, **settings):
    port = ExpectedSerial(
        [("NCH?", f"{n_dac},{n_adc}"), ("RANGE?", "-10,10"), (f"GETM_DAC 0:{n_dac - 1}", "0,0.5,0,0"), *steps]
    )
    link = LineLink("board", port, address="FAKE")
    link.identity = "aeqlab,DACADC-4x3,1,1.0"
    return SerialBoard("board", link, DriverSettings(**settings)), port


def test_channel_lists_compress_runs():
    assert channel_list(np.array([0, 1, 2, 3, 7, 9, 10])) == "0:3,7,9:10"


def test_board_sets_and_reads_many_channels_in_one_line():
    b, port = board([("SETM 0:1,3 0.25,0.5,-1", "OK 3"), ("GETM_ADC 0,2", "0.125,-0.5")])
    np.testing.assert_allclose(b.setpoints([0, 1, 2, 3]), [0, 0.5, 0, 0])
    b.write([0, 1, 3], [0.25, 0.5, -1.0])
    np.testing.assert_allclose(b.read([4, 6]), [0.125, -0.5])
    port.assert_done()


def test_board_safe_state_ramps_dacs_to_zero_and_confirms_by_reading_back():
    b, port = board(
        [("SETM 1 0.25", "OK 1"), ("SETM 1 0", "OK 1"), ("GETM_DAC 0:3", "0,0,0,0")], ramp=Ramp(step=0.25, rate=1e6)
    )
    assert b.safe_state() == []
    port.assert_done()


def test_board_safe_state_reports_a_dac_that_reads_back_wrong():
    b, port = board([("SETM 1 0", "OK 1"), ("GETM_DAC 0:3", "0,0.5,0,0")])
    failures = b.safe_state()
    assert len(failures) == 1 and failures[0].startswith("board/ao1: reads 0.5")
    port.assert_done()


def test_board_error_reply_garbage_and_limits():
    idn = "aeqlab,DACADC-4x3,1,1.0"
    b, port = board([("SETM 0 0.5", "ERR 4 value out of range"), ("GETM_ADC 0", "abc")])
    port.steps += [("*IDN?", idn), ("GETM_ADC 0", "abc")]  # garbled: retried once after a resync
    with pytest.raises(InstrumentError, match="refused 'SETM 0 0.5': ERR 4 value out of range"):
        b.write([0], [0.5])
    with pytest.raises(InstrumentError, match="not numbers.*twice in a row"):
        b.read([4])
    with pytest.raises(LimitError):
        b.write([0], [20.0])
    with pytest.raises(LimitError):  # an ADC channel cannot be driven
        b.write([5], [0.1])
    port.assert_done()


def test_board_timeout_then_recovery():
    b, port = board([("GETM_ADC 0", None), ("*IDN?", "aeqlab,DACADC-4x3,1,1.0"), ("GETM_ADC 0", "0.5")])
    assert b.read([4])[0] == 0.5
    port.assert_done()
