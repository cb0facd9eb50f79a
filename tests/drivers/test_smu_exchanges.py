"""Exact command/response exchanges of the SMU drivers (Keithley 2450, 2400, Keysight B2900)."""

from __future__ import annotations

import numpy as np
import pytest
from expected import NO_ERROR, Expected, ok

from aeqlab.errors import LimitError
from drivers.base import DriverSettings, Ramp
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
    fake.steps += [
        ("clear",),
        ok(":SOUR:CURR:LEV 2e-06"),
        ok(":SOUR:CURR:LEV 0"),
        ("q", ":SOUR:CURR:LEV?", "0"),  # the level confirmed
        ok(":OUTP OFF"),
        ("q", ":OUTP?", "0"),  # the output confirmed
    ]
    assert smu.safe_state() == []
    fake.assert_done()
    assert smu.state() == {"output_on": [False], "level_A": [0.0]}


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
        ("clear",),
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
