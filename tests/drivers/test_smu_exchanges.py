"""Exact command/response exchanges of the SMU drivers (Keithley 2450, 2400, Keysight B2900)."""

from __future__ import annotations

import numpy as np
import pytest
from expected import NO_ERROR, Expected, Instrument, ok

from drivers.base import DriverSettings, Ramp
from drivers.errors import InstrumentError, LimitError
from drivers.keithley2400 import Keithley2400
from drivers.keithley2450 import Keithley2450
from drivers.keysight_b2900 import KeysightB2900
from drivers.scpi import ScpiLink

LANG = ("q", "*LANG?", "SCPI")


def make(cls, steps, n=1, **settings):
    fake = Expected([LANG, *steps] if cls is Keithley2450 else steps)
    link = ScpiLink("smu", fake, expect=cls.expect, address="FAKE")
    link.identity = "KEITHLEY INSTRUMENTS,MODEL 2450,1,1"
    return cls("smu", link, n, DriverSettings(**settings)), fake


def test_2450_connect_only_reads_state():
    smu, fake = make(Keithley2450, [("q", ":OUTP?", "1"), ("q", ":SOUR:CURR:LEV?", "2.5E-06")])
    fake.assert_done()
    assert smu.state() == {"output_on": [True], "level_A": [2.5e-06]}


def test_2450_nudge_sets_limit_then_range_then_level_then_output():
    smu, fake = make(Keithley2450, [("q", ":OUTP?", "0"), ("q", ":SOUR:CURR:LEV?", "0")])
    smu.current_limits.restrict([0], -1e-5, 1e-5)
    fake.steps += [
        ok(":SOUR:FUNC CURR"),
        ok(":SOUR:CURR:VLIM 10"),
        ok(":SOUR:CURR:RANG 1e-05"),
        ok(':SENS:FUNC "VOLT"'),
        ok(":SENS:VOLT:NPLC 1"),
        ok(":SENS:VOLT:RANG:AUTO 1"),
        ok(":OUTP:CURR:SMOD HIMP"),
        NO_ERROR,
        ok(":SOUR:CURR:LEV 1e-06"),
        ok(":OUTP ON"),
    ]
    smu.set_currents([0], [1e-6])
    smu.enable([0], True)
    fake.assert_done()


def test_2450_safe_state_ramps_to_zero_then_turns_off():
    smu, fake = make(
        Keithley2450, [("q", ":OUTP?", "1"), ("q", ":SOUR:CURR:LEV?", "4e-06")], ramp=Ramp(step=2e-6, rate=1e6)
    )
    fake.steps += [  # every exchange so far completed: no device clear first
        ok(":SOUR:CURR:LEV 2e-06"),
        ok(":SOUR:CURR:LEV 0"),
        ("q", ":SOUR:CURR:LEV?", "0"),  # the level confirmed
        ok(":OUTP OFF"),
        ("q", ":OUTP?", "0"),  # the output confirmed
    ]
    assert smu.safe_state() == []
    fake.assert_done()
    assert smu.state() == {"output_on": [False], "level_A": [0.0]}


def test_2450_safe_state_after_an_exchange_cut_short_clears_the_session_first():
    smu, fake = make(
        Keithley2450, [("q", ":OUTP?", "1"), ("q", ":SOUR:CURR:LEV?", "4e-06")], ramp=Ramp(step=2e-6, rate=1e6)
    )
    fake.steps += [("q", ":MEAS:VOLT?", KeyboardInterrupt())]  # Ctrl-C while the reply is on its way
    with pytest.raises(KeyboardInterrupt):
        smu.link.query(":MEAS:VOLT?")
    assert not smu.link.settled
    fake.steps += [
        ("clear",),  # the late reply must not be taken for the answer to the safe state's first query
        ok(":SOUR:CURR:LEV 2e-06"),
        ok(":SOUR:CURR:LEV 0"),
        ("q", ":SOUR:CURR:LEV?", "0"),
        ok(":OUTP OFF"),
        ("q", ":OUTP?", "0"),
    ]
    assert smu.safe_state() == []
    fake.assert_done()
    assert smu.link.settled


def test_2450_limit_violation_sends_nothing():
    smu, fake = make(Keithley2450, [("q", ":OUTP?", "0"), ("q", ":SOUR:CURR:LEV?", "0")])
    smu.current_limits.restrict([0], -1e-5, 1e-5)
    with pytest.raises(LimitError, match="outside its limits"):
        smu.set_currents([0], [2e-5])
    with pytest.raises(LimitError):
        smu.set_currents([0], [float("nan")])
    fake.assert_done()  # the script had nothing more: any byte sent would have failed


def test_2450_voltage_source_with_current_limit_and_off_mode():
    smu, fake = make(
        Keithley2450,
        [("q", ":OUTP?", "0"), ("q", ":SOUR:VOLT:LEV?", "0")],
        voltage_range=(-2.0, 2.0),
        options={"source": "voltage", "compliance": 1e-3, "off_mode": "zero", "nplc": 0.1},
    )
    fake.steps += [
        ok(":SOUR:FUNC VOLT"),
        ok(":SOUR:VOLT:ILIM 0.001"),
        ok(":SOUR:VOLT:RANG 2"),
        ok(':SENS:FUNC "CURR"'),
        ok(":SENS:CURR:NPLC 0.1"),
        ok(":SENS:CURR:RANG:AUTO 1"),
        ok(":OUTP:VOLT:SMOD ZERO"),
        NO_ERROR,
        ok(":SOUR:VOLT:LEV 0.5"),
        ("q", ":READ?", "1.5E-04"),
    ]
    smu.write([0], [0.5])
    assert smu.read([0]) == pytest.approx([1.5e-4])
    fake.assert_done()


def test_2400_compliance_under_sense_and_single_element_readings():
    smu, fake = make(Keithley2400, [("q", ":OUTP?", "0"), ("q", ":SOUR:CURR:LEV?", "+0.000000E+00")])
    smu.current_limits.restrict([0], -1e-4, 1e-4)
    fake.steps += [
        ok(":SOUR:FUNC CURR"),
        ok(":SOUR:CURR:MODE FIX"),
        ok(":SENS:VOLT:PROT 10"),
        ok(":SOUR:CURR:RANG 0.0001"),
        ok(":SENS:FUNC 'VOLT'"),
        ok(":SENS:VOLT:NPLC 1"),
        ok(":FORM:ELEM VOLT"),
        ok(":OUTP:SMOD HIMP"),
        NO_ERROR,
        ok(":SOUR:CURR:LEV -5e-05"),
        ok(":OUTP ON"),
        ("q", ":READ?", "-1.234500E+00"),
    ]
    smu.set_currents([0], [-5e-5])
    smu.enable([0], True)
    assert smu.read([0]) == pytest.approx([-1.2345])
    fake.assert_done()


def test_b2900_channels_on_each_subsystem_and_lists_for_measure():
    steps = [("q", ":OUTP1?", "0"), ("q", ":OUTP2?", "0"), ("q", ":SOUR1:CURR?", "0"), ("q", ":SOUR2:CURR?", "0")]
    smu, fake = make(KeysightB2900, steps, n=2)
    smu.current_limits.restrict([0, 1], -1e-5, 1e-5)
    for c in (1, 2):
        fake.steps += [
            ok(f":SOUR{c}:FUNC:MODE CURR"),
            ok(f":SENS{c}:VOLT:PROT 10"),
            ok(f":SOUR{c}:CURR:RANG 1e-05"),
            ok(f":SENS{c}:VOLT:NPLC 1"),
            ok(f":OUTP{c}:OFF:MODE HIZ"),
        ]
    fake.steps += [
        NO_ERROR,
        ok(":SOUR1:CURR 1e-06;:SOUR2:CURR -2e-06"),
        ok(":OUTP1 1;:OUTP2 1"),
        ("q", ":MEAS:VOLT? (@1,2)", "+1.0E-01,-2.0E-01"),
        ok(":SOUR1:CURR 0;:SOUR2:CURR 0"),
        ("q", ":SOUR1:CURR?", "0"),
        ("q", ":SOUR2:CURR?", "0"),
        ok(":OUTP1 0;:OUTP2 0"),
        ("q", ":OUTP1?", "0"),
        ("q", ":OUTP2?", "0"),
    ]
    smu.set_currents([0, 1], [1e-6, -2e-6])
    smu.enable([0, 1], True)
    np.testing.assert_allclose(smu.read([0, 1]), [0.1, -0.2])
    smu.safe_state()
    fake.assert_done()


def test_smu_options_are_validated():
    from aeqlab.errors import InputError

    with pytest.raises(InputError, match="nplc"):
        make(Keithley2450, [], options={"nplc": 100})
    with pytest.raises(InputError, match="bogus"):
        make(Keithley2450, [], options={"bogus": 1})


# ------------------------------------------------------------ safe state from knowledge
IDN_2450 = "KEITHLEY INSTRUMENTS,MODEL 2450,1,1"


def live_2450(**settings):
    fake = Instrument(IDN_2450, {"*LANG": "SCPI", ":OUTP": "1", ":SOUR:CURR:LEV": "4e-06"})
    link = ScpiLink("smu", fake, expect=Keithley2450.expect, address="FAKE")
    link.identity = IDN_2450
    smu = Keithley2450("smu", link, 1, DriverSettings(**settings))
    smu.current_limits.restrict([0], -1e-5, 1e-5)
    smu._configured = True  # configured earlier in the run
    return smu, fake


@pytest.mark.parametrize("fault", ["lose", "garble"])
def test_a_lost_reply_then_safe_state_still_sends_level_and_output_off(fault):
    smu, fake = live_2450()
    fake.reply_fault = fault  # commands still arrive and execute; their replies are lost or garbled
    with pytest.raises(InstrumentError, match="^smu: "):
        smu.set_currents([0], [2e-6])
    assert smu.source_guard.unknown([0]).tolist() == [0]  # not confirmed: unknown, not the cached 4 uA
    failures = smu.safe_state()
    assert fake.sent(":SOUR:CURR:LEV 0")  # the level went out although nothing could be confirmed
    assert fake.sent(":OUTP OFF")  # and output-off after it, although the level write failed
    assert fake.state[":OUTP"] == "OFF" and float(fake.state[":SOUR:CURR:LEV"]) == 0.0
    assert failures and all(f.startswith("smu/ch0: ") for f in failures)  # reported: not confirmed


def test_safe_state_confirms_by_reading_back_once_replies_return():
    smu, fake = live_2450()
    fake.reply_fault = "lose"
    with pytest.raises(InstrumentError):
        smu.set_currents([0], [2e-6])
    fake.reply_fault = None
    assert smu.safe_state() == []  # level read back (2 uA, not the cached 4 uA), ramped to 0, output off, confirmed
    assert fake.state[":OUTP"] == "OFF" and float(fake.state[":SOUR:CURR:LEV"]) == 0.0


def test_an_interrupt_while_the_reply_is_on_its_way_leaves_nothing_to_a_cache():
    smu, fake = live_2450(ramp=Ramp(step=1e-6, rate=1e6))
    fake.reply_fault = KeyboardInterrupt()  # the instrument executed the level, the driver never saw "1"
    with pytest.raises(KeyboardInterrupt):
        smu.set_currents([0], [-3e-6])
    assert smu.source_guard.unknown([0]).tolist() == [0]
    assert smu.safe_state() == []
    levels = [float(c.split()[-1]) for c in fake.sent(":SOUR:CURR:LEV ")]
    # the safe-state ramp started from what the instrument reported, not from the last confirmed 4 uA
    assert levels[-1] == 0.0 and all(abs(b - a) <= 1e-6 + 1e-18 for a, b in zip(levels[4:], levels[5:]))
    assert float(fake.state[":SOUR:CURR:LEV"]) == 0.0 and fake.state[":OUTP"] == "OFF"


def test_hold_keeps_a_voltage_source_and_turns_a_current_source_off():
    smu, fake = live_2450()
    assert smu.safe_state("hold") == []
    assert fake.state[":OUTP"] == "OFF" and float(fake.state[":SOUR:CURR:LEV"]) == 0.0
    fake = Instrument(IDN_2450, {"*LANG": "SCPI", ":OUTP": "1", ":SOUR:VOLT:LEV": "1.5"})
    link = ScpiLink("smu", fake, expect=Keithley2450.expect)
    link.identity = IDN_2450
    vsrc = Keithley2450("smu", link, 1, DriverSettings(options={"source": "voltage"}))
    before = list(fake.received)
    assert vsrc.safe_state("hold") == []
    assert not [c for c in fake.received[len(before):] if not c.endswith("?")]  # nothing set: the voltage holds
    assert fake.state[":OUTP"] == "1" and fake.state[":SOUR:VOLT:LEV"] == "1.5"


# ------------------------------------------------------------ command language and compliance
def test_2450_in_tsp_mode_is_refused_with_the_fix():
    fake = Expected([("q", "*LANG?", "TSP")])
    link = ScpiLink("smu", fake, expect=Keithley2450.expect)
    link.identity = IDN_2450
    with pytest.raises(InstrumentError, match=r"TSP command mode, not SCPI .*Command Set, or send \*LANG SCPI"):
        Keithley2450("smu", link, 1, DriverSettings())
    fake.assert_done()  # nothing else was sent


@pytest.mark.parametrize(
    ("cls", "query"),
    [
        (Keithley2450, ":SOUR:CURR:VLIM:TRIP?"),
        (Keithley2400, ":SENS:VOLT:PROT:TRIP?"),
        (KeysightB2900, ":SENS1:VOLT:PROT:TRIP?"),
    ],
)
def test_compliance_tripped_is_read_after_each_nudge(cls, query):
    state = {"*LANG": "SCPI", ":OUTP": "1", ":OUTP1": "1", ":SOUR:CURR:LEV": "0", ":SOUR1:CURR": "0"}
    fake = Instrument("X,MODEL 2450 2400 B2901A,1,1", state)
    link = ScpiLink("smu", fake, expect=cls.expect)
    link.identity = "X,MODEL 2450 2400 B2901A,1,1"
    smu = cls("smu", link, 1, DriverSettings())
    smu._configured = True
    smu.set_currents([0], [1e-6])
    assert smu.compliance_tripped() == [False] and fake.sent(query)
    fake.state[query[:-1]] = "1"  # the load needs more than the compliance allows
    smu.set_currents([0], [2e-6])
    assert smu.compliance_tripped() == [True]
