"""Loading: units, every problem at once, extends and anchors, resolved text, data files."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import PROTOCOLS

from aeqlab.errors import ProtocolError
from aeqlab.protocol import load_protocol, parse_protocol
from aeqlab.protocol.units import AMPERE, OHM, SECOND, VOLT, parse_quantity

XOR = PROTOCOLS / "xor_hopfield_sim.yaml"


@pytest.mark.parametrize(
    ("text", "kind", "si"),
    [
        ("5 ms", SECOND, 5e-3),
        ("2.5 V", VOLT, 2.5),
        ("1 uA", AMPERE, 1e-6),
        ("10 kohm", OHM, 1e4),
        ("1 \u00b5A", AMPERE, 1e-6),
        (3, VOLT, 3.0),
        ("250 mV", VOLT, 0.25),
    ],
)
def test_quantities_are_normalised_to_si(text, kind, si):
    assert parse_quantity(text, kind) == pytest.approx(si)


@pytest.mark.parametrize(
    ("text", "kind", "fragment"),
    [
        ("1 uA", VOLT, "is a current (A), but this field is a voltage (V)"),
        ("2 V", AMPERE, "is a voltage (V), but this field is a current (A)"),
        ("1e999 V", VOLT, "not a finite voltage"),
        (float("nan"), SECOND, "not a finite time"),
        ("five volts", VOLT, "is not a voltage"),
        (True, VOLT, "expected a voltage"),
    ],
)
def test_wrong_quantities_name_both_dimensions_or_the_problem(text, kind, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_quantity(text, kind)


def test_units_in_a_protocol_become_si_floats(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        XOR.read_text()
        .replace("limits: {low: -1.0e-5, high: 1.0e-5}", "limits: {low: -10 uA, high: 10 uA}")
        .replace("homeostasis:", "settle: 5 ms\n  homeostasis:")
    )
    protocol, _ = load_protocol(path)
    assert protocol.roles.nudges.limits.low == pytest.approx(-1e-5)
    assert protocol.method.settle == pytest.approx(5e-3)


def test_until_stable_settle_keeps_a_float_settle():
    text = XOR.read_text().replace(
        "homeostasis:", "settle: {mode: until_stable, tolerance: 1e-4, timeout: 50 ms}\n  homeostasis:"
    )
    method = parse_protocol(text, str(XOR)).method
    assert method.settle_policy.mode == "until_stable" and method.settle == pytest.approx(0.05)


def test_every_problem_is_reported_at_once(tmp_path):
    text = (
        XOR.read_text()
        .replace("epochs: 100", "epochs: -3")
        .replace("beta: 0.5", "beta: 2 V")
        .replace("name: xor\n", "name: xorr\n")
    )
    with pytest.raises(ProtocolError) as info:
        parse_protocol(text, "p.yaml")
    lines = info.value.message.splitlines()
    assert len(lines) == 3, lines
    assert [line.split(": ")[1] for line in lines] == ["dataset.name", "method.beta", "schedule.epochs"]
    assert "did you mean 'xor'?" in lines[0]


def test_extends_shares_sections_and_the_run_records_the_resolved_text(tmp_path):
    (tmp_path / "base.yaml").write_text(XOR.read_text())
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nname: child\nmethod: {beta: 0.25}\n")
    protocol, text = load_protocol(child)
    assert protocol.name == "child" and protocol.method.beta == 0.25
    assert protocol.method.nudging == "linearized"  # merged from the base's method section
    assert "extends:" not in text and "\nname: child\n" in text and str(tmp_path) not in text
    again = tmp_path / "resolved.yaml"
    again.write_text(text)
    assert load_protocol(again)[0] == protocol  # the recorded text alone reproduces the protocol


def test_an_error_in_the_base_names_the_base_file(tmp_path):
    (tmp_path / "base.yaml").write_text(XOR.read_text().replace("epochs: 100", "epochs: zero"))
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nname: child\n")
    with pytest.raises(ProtocolError) as info:
        load_protocol(child)
    assert info.value.message.startswith(f"{tmp_path / 'base.yaml'}:")


def test_anchors_and_merge_keys_work():
    text = (
        XOR.read_text()
        .replace("instruments:\n  dac: {driver: sim}", "instruments:\n  dac: &simulated {driver: sim}")
        .replace("adc: {driver: sim}", "adc: *simulated")
        .replace("smu: {driver: sim}", "smu: {<<: *simulated, timeout: 1 s}")
    )
    protocol = parse_protocol(text, "a.yaml")
    assert protocol.instruments["adc"].driver == "sim" and protocol.instruments["smu"].timeout == 1.0


def test_csv_and_npz_data_files(tmp_path):
    from aeqlab.datasets import load

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5, (40, 2))
    y = (x[:, 0] > x[:, 1]).astype(int)
    (tmp_path / "d.csv").write_text("a,b,label\n" + "".join(f"{p},{q},{c}\n" for (p, q), c in zip(x, y)))
    np.savez(tmp_path / "d.npz", x=x, label=y)
    for name in ("d.csv", "d.npz"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(XOR.read_text().replace("name: xor\n", f"path: {name}\n  test_size: 10\n"))
        protocol, _ = load_protocol(path)
        split = load(protocol.dataset)
        assert split.x_train.shape == (30, 2) and split.n_classes == 2
        assert split.x_train.min() >= -1.0 and split.x_train.max() <= 1.0


def test_data_file_width_must_match_the_inputs(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,c,label\n1,2,3,0\n")
    path = tmp_path / "p.yaml"
    path.write_text(XOR.read_text().replace("name: xor\n", "path: d.csv\n"))
    with pytest.raises(ProtocolError, match="2 inputs, but data set d.csv has 3 features"):
        load_protocol(path)


def test_driver_options_are_checked_by_the_driver_model(tmp_path):
    text = XOR.read_text().replace("smu: {driver: sim}", "smu: {driver: sim, options: {speed: 3}}")
    with pytest.raises(ProtocolError, match=r"instruments.smu.options: driver 'sim' takes no options"):
        parse_protocol(text, "p.yaml")


def test_a_data_path_in_a_base_file_is_relative_to_that_file(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "d.csv").write_text("a,b,label\n0,1,0\n1,0,1\n0,0,0\n1,1,1\n")
    base = XOR.read_text().replace("name: xor\n", "path: d.csv\n  test_size: 2\n  stratify: false\n")
    (tmp_path / "shared" / "base.yaml").write_text(base)
    child = tmp_path / "child.yaml"
    child.write_text("extends: shared/base.yaml\nname: child\n")
    protocol, text = load_protocol(child)
    assert protocol.dataset.path == str(tmp_path / "shared" / "d.csv")
    assert "path: shared/d.csv" in text  # the resolved text works from the child's folder


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ("test_size: 0.2", "dataset.test_size: iris has 150 examples in 3 classes"),
        ("seed: 0\n\ninstruments", "seed: Input should be less than or equal to 4294967295"),
    ],
)
def test_values_that_would_fail_at_run_time_fail_at_validation(change, fragment):
    iris = (PROTOCOLS / "iris_hopfield_sim.yaml").read_text()
    bad = change.replace("0.2", "149").replace("seed: 0", "seed: 99999999999")
    with pytest.raises(ProtocolError, match=fragment):
        parse_protocol(iris.replace(change, bad), "p.yaml")


def test_driver_options_are_validated_by_the_model_the_driver_declares(monkeypatch):
    from pydantic import BaseModel, ConfigDict, Field

    import aeqlab.protocol.instruments as model
    from drivers import registry

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        source: str = "current"
        nplc: float = Field(1.0, gt=0)

    monkeypatch.setattr(registry, "options_model", lambda name: Options if name == "keithley2450" else None)
    model._options_model.cache_clear()
    try:
        smu = "smu: {driver: keithley2450, resource: 'TCPIP0::10.0.0.5::5025::SOCKET', options: %s}"
        good = XOR.read_text().replace("smu: {driver: sim}", smu % "{source: current, nplc: 10}")
        assert parse_protocol(good, "p.yaml").instruments["smu"].options == {"source": "current", "nplc": 10}
        bad = XOR.read_text().replace("smu: {driver: sim}", smu % "{sorce: current, nplc: -1}")
        with pytest.raises(ProtocolError) as info:
            parse_protocol(bad, "p.yaml")
        lines = info.value.message.splitlines()
        assert any(":10:" in s and "instruments.smu.options.nplc: Input should be greater than 0" in s for s in lines)
        assert any("unknown option 'sorce' for driver 'keithley2450' (did you mean 'source'?)" in s for s in lines)
    finally:
        model._options_model.cache_clear()
