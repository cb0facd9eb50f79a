"""Safety rules that validation can prove: ramps, limits that exclude 0, hardware ranges; warnings; --json."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from helpers import PROTOCOLS
from typer.testing import CliRunner

from aeqlab.cli.app import app
from aeqlab.errors import ProtocolError
from aeqlab.protocol import parse_protocol

XOR = (PROTOCOLS / "xor_hopfield_sim.yaml").read_text(encoding="utf-8")
SMU = "smu: {driver: keithley2450, resource: 'TCPIP0::10.0.0.5::5025::SOCKET'%s}"


def problems(text: str) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        parse_protocol(text, "p.yaml")
    return info.value.message.splitlines()


# ------------------------------------------------------------------ ramps
def test_an_instrument_ramp_faster_than_the_safety_rate_is_refused_at_its_line():
    text = XOR.replace("dac: {driver: sim}", "dac: {driver: sim, ramp: {step: 0.1 V, rate: 5 V/s}}")
    assert parse_protocol(text, "p.yaml").instruments["dac"].ramp.rate == 5.0  # no safety rate: nothing to exceed
    (line,) = problems(text + "\nsafety: {voltage_ramp_rate: 1 V/s}\n")
    assert line.startswith("p.yaml:8:48: instruments.dac.ramp.rate: 5 V/s is faster than safety.voltage_ramp_rate")
    assert parse_protocol(text + "\nsafety: {voltage_ramp_rate: 5 V/s}\n", "p.yaml")  # equal is allowed


def test_a_current_ramp_is_compared_with_the_current_rate():
    text = XOR.replace("smu: {driver: sim}", "smu: {driver: sim, ramp: {rate: 50 uA/s}}")
    (line,) = problems(text + "\nsafety: {current_ramp_rate: 10 uA/s}\n")
    assert "instruments.smu.ramp.rate: 5e-05 A/s is faster than safety.current_ramp_rate = 1e-05 A/s" in line
    assert parse_protocol(text + "\nsafety: {voltage_ramp_rate: 1 V/s}\n", "p.yaml")  # the smu sources currents


# ------------------------------------------------------------------ limits that exclude the safe value
@pytest.mark.parametrize(
    "old, new, where",
    [
        (
            "{low: -5.0, high: 5.0}",
            "{low: 0.5 V, high: 5 V}",
            "p.yaml:18:5: roles.knobs.limits: [0.5, 5] V excludes 0 V",
        ),
        (
            "{low: -1.0e-5, high: 1.0e-5}",
            "{low: 1 uA, high: 10 uA}",
            "p.yaml:25:5: roles.nudges.limits: [1e-06, 1e-05] A",
        ),
    ],
)
def test_source_limits_that_exclude_zero_are_refused_unless_the_safe_state_holds(old, new, where):
    text = XOR.replace(old, new)
    (line,) = problems(text)
    assert line.startswith(where) and "or set safety.safe_state: hold" in line, line
    assert parse_protocol(text + "\nsafety: {safe_state: hold}\n", "p.yaml")


def test_readback_limits_may_exclude_zero():
    text = XOR.replace("    channels: adc/ai0:1\n", "    channels: adc/ai0:1\n    limits: {low: 0.5, high: 2}\n")
    assert parse_protocol(text, "p.yaml").roles.outputs.limits.low == 0.5


# ------------------------------------------------------------------ compliance policy
def test_on_compliance_is_fault_by_default_and_may_flag():
    assert parse_protocol(XOR, "p.yaml").safety.on_compliance == "fault"
    assert parse_protocol(XOR + "\nsafety: {on_compliance: flag}\n", "p.yaml").safety.on_compliance == "flag"
    (line,) = problems(XOR + "\nsafety: {on_compliance: flagg}\n")
    assert "safety.on_compliance" in line and "did you mean 'flag'?" in line


# ------------------------------------------------------------------ hardware ranges from the drivers' registry
def test_instrument_ranges_beyond_the_hardware_are_refused_at_their_line(monkeypatch):
    from drivers import registry

    spans = {"keithley2450": SimpleNamespace(voltage=(-210.0, 210.0), current=(-1.05, 1.05), source="2450 manual")}
    monkeypatch.setattr(registry, "hardware_range", spans.get, raising=False)
    bad = XOR.replace("smu: {driver: sim}", SMU % ", current_range: [-5 A, 5 A]")
    (line,) = problems(bad)
    assert (
        line.startswith("p.yaml:10:")
        and "instruments.smu.current_range: [-5, 5] A is beyond what a keithley2450" in line
    )
    assert "[-1.05, 1.05] A, from 2450 manual" in line
    good = XOR.replace("smu: {driver: sim}", SMU % ", current_range: [-1 A, 1 A]")
    assert parse_protocol(good, "p.yaml").instruments["smu"].current_range == (-1.0, 1.0)
    monkeypatch.setattr(registry, "hardware_range", lambda name: None)  # a family it does not know: no check
    assert parse_protocol(bad, "p.yaml")
    monkeypatch.delattr(registry, "hardware_range")  # a registry without the lookup: no check, no error
    assert parse_protocol(bad, "p.yaml")


# ------------------------------------------------------------------ warnings and --json
def test_validate_warns_about_unitless_times_and_still_exits_0(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(XOR.replace("  beta: 0.5\n", "  beta: 0.5\n  settle: 1\n"), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"warning: {path}:42:11: method.settle: a number without a unit is read as seconds; write '1 s'" in (
        result.output
    )
    path.write_text(XOR.replace("  beta: 0.5\n", "  beta: 0.5\n  settle: 1 ms\n"), encoding="utf-8")
    assert "warning" not in CliRunner().invoke(app, ["validate", str(path)]).output


def test_validate_json_lists_problems_and_warnings_per_file(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(XOR.replace("  beta: 0.5\n", "  beta: 0.5\n  settle: {mode: fixed, time: 2}\n"), encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(XOR.replace("epochs: 100", "epochs: true"), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", "--json", str(good), str(bad)])
    assert result.exit_code == 2
    out = json.loads(result.stdout)
    assert [r["ok"] for r in out] == [True, False]
    (warning,) = out[0]["warnings"]
    assert warning == {
        "file": str(good),
        "line": 42,
        "col": 31,
        "key": "method.settle.time",
        "message": "a number without a unit is read as seconds; write '2 s'",
        "hint": "",
    }
    (problem,) = out[1]["problems"]
    assert problem == {
        "file": str(bad),
        "line": 46,
        "col": 11,
        "key": "schedule.epochs",
        "message": "true/false is a boolean, not a number",
        "hint": "write a number",
    }
