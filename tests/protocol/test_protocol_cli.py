"""Authoring commands: schema, init, plan (on the twin, no instrument opened, limits checked)."""

from __future__ import annotations

import pytest
from helpers import EXAMPLES, PROTOCOLS, TEMPLATES, aeqlab
from typer.testing import CliRunner

from aeqlab.cli.app import app
from aeqlab.cli.authoring import TEMPLATES as TEMPLATE_NAMES
from aeqlab.protocol import load_protocol
from aeqlab.protocol.schema import schema_text

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_schema_command_prints_the_checked_in_schema(tmp_path):
    proc = aeqlab("schema")
    assert proc.returncode == 0 and proc.stdout == (PROTOCOLS / "aeqlab.schema.json").read_text(encoding="utf-8")
    assert invoke("schema", "-o", str(tmp_path / "s.json")).exit_code == 0
    assert (tmp_path / "s.json").read_text(encoding="utf-8") == schema_text()


@pytest.mark.parametrize("name", list(TEMPLATE_NAMES))
def test_init_writes_a_template_that_validates_with_its_schema(tmp_path, name):
    out = tmp_path / f"{name}.yaml"
    result = invoke("init", name, "-o", str(out))
    assert result.exit_code == 0, result.output
    protocol, text = load_protocol(out)
    assert text.startswith("# yaml-language-server: $schema=aeqlab.schema.json\n")
    assert (tmp_path / "aeqlab.schema.json").read_text(encoding="utf-8") == schema_text()
    assert protocol.simulation is not None  # every template can be previewed with 'aeqlab plan'
    assert invoke("init", name, "-o", str(out)).exit_code == 2  # never overwrites without --force


def test_init_templates_cover_the_twin_and_two_benches():
    drivers = {
        name: {cfg.driver for cfg in load_protocol(path)[0].instruments.values()}
        for name, path in zip(sorted(TEMPLATE_NAMES.values()), TEMPLATES)
    }
    assert drivers["twin.yaml"] == {"sim"}
    assert {"nidaq_ao", "nidaq_ai", "keithley2450"} <= drivers["nidaq_keithley2450.yaml"]
    assert {"serial_board", "keysight_344xx"} <= drivers["serial_dac_dmm.yaml"]


def test_unknown_template_is_one_line_and_exit_2():
    proc = aeqlab("init", "nosuch")
    assert proc.returncode == 2 and "unknown template 'nosuch'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture
def backends_opened(monkeypatch):
    """The kinds of backend the preview opens; real drivers cannot even be looked up."""
    import aeqlab.backends
    from drivers import registry

    kinds: list[str] = []
    real = aeqlab.backends.open_backend

    def spy(protocol, kind, **options):
        kinds.append(kind)
        return real(protocol, kind, **options)

    def no_drivers(name):
        raise AssertionError(f"the preview looked up the real driver {name!r}")

    monkeypatch.setattr(aeqlab.backends, "open_backend", spy)
    monkeypatch.setattr(registry, "get", no_drivers)
    return kinds


@pytest.mark.parametrize("path", EXAMPLES + TEMPLATES, ids=lambda p: p.name)
def test_plan_shows_the_first_sample_on_the_twin(path, backends_opened):
    result = invoke("plan", str(path))
    assert result.exit_code == 0, result.output
    assert backends_opened == ["sim"]
    out = result.output
    for fragment in ("set", "read", "settle", "inputs", "knobs", "params", "outputs", "nudges", "sample 1:"):
        assert fragment in out
    assert "BEYOND LIMIT" not in out


def test_plan_of_two_samples_lists_both():
    result = invoke("plan", str(PROTOCOLS / "xor_hopfield_sim.yaml"), "--samples", "2")
    assert result.exit_code == 0 and "sample 1:" in result.output and "sample 2:" in result.output


def test_plan_value_beyond_a_limit_is_reported_at_the_limit_line(tmp_path):
    # the nudging current depends on the twin's measured output: only the plan can see it exceed the limit
    text = (PROTOCOLS / "xor_hopfield_sim.yaml").read_text(encoding="utf-8")
    text = text.replace("limits: {low: -1.0e-5, high: 1.0e-5}", "limits: {low: -100 nA, high: 100 nA}")
    path = tmp_path / "tight.yaml"
    path.write_text(text, encoding="utf-8")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "-100 nA" in s)
    col = text.splitlines()[line - 1].index("limits") + 1
    proc = aeqlab("plan", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [s for s in proc.stderr.splitlines() if s.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: {path}:{line}:{col}: roles.nudges.limits: roles.nudges[")
    assert "outside the role's limits [-1e-07, 1e-07] A" in errors[0]
    assert "BEYOND LIMIT" in proc.stdout


def _bench_without_twin(tmp_path, **replace):
    text = next(p for p in TEMPLATES if p.name == "nidaq_keithley2450.yaml").read_text(encoding="utf-8")
    text = text[: text.index("\nsimulation:")] + text[text.index("\ndataset:") :]
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "notwin.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_plan_without_a_twin_previews_what_is_known_and_says_what_is_not(tmp_path, backends_opened):
    result = invoke("plan", str(_bench_without_twin(tmp_path)))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "no twin: placeholder readings" in out and "NOT predicted" in out and "placeholder" in out
    assert "from readings" in out and "feedback iterations and loss not predicted" in out
    rows = [r for r in out.splitlines() if r.startswith("│")]
    kinds = [r.split("│")[4].strip() for r in rows]
    # the order: nudges zeroed and switched on, the first input, feedback, then the safe state at the end
    assert kinds[:2] == ["set", "switch"] and kinds[-4:] == ["safe", "safe", "safe", "switch"]
    first_input = next(r for r in rows if "│ inputs" in r and "│ set" in r)
    assert "-1 V, -1 V" in first_input  # XOR's first point, scaled into input_range: known from the data
    assert "1 s" in first_input  # 1 V from 0 at safety.voltage_ramp_rate = 1 V/s
    assert all("?" in r for r in rows if "│ read" in r)  # no reading is presented as a prediction
    assert backends_opened == []  # no backend of real (or emulated) instruments, and no driver looked up


def test_plan_without_a_twin_refuses_inputs_beyond_their_limits(tmp_path):
    path = _bench_without_twin(tmp_path, **{"limits: {low: -1.5 V, high: 1.5 V}": "limits: {low: -0.5 V, high: 0.5 V}"})
    proc = aeqlab("plan", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "roles.inputs" in proc.stderr or "input_range" in proc.stderr


def test_plan_reading_beyond_a_limit_is_reported_at_the_limit_line(tmp_path):
    text = (PROTOCOLS / "xor_hopfield_sim.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "    channels: adc/ai0:1\n", "    channels: adc/ai0:1\n    limits: {low: -10 mV, high: 10 mV}\n"
    )
    path = tmp_path / "narrow.yaml"
    path.write_text(text, encoding="utf-8")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "-10 mV" in s)
    proc = aeqlab("plan", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{path}:{line}:5: roles.outputs.limits: roles.outputs[0] reads" in proc.stderr


@pytest.mark.parametrize("method", ["spsa", "exact"])
def test_plan_previews_the_protocols_own_method(tmp_path, method):
    from aeqlab.tools.planview import preview

    protocol, _ = load_protocol(PROTOCOLS / "xor_hopfield_sim.yaml")
    m = protocol.method.model_copy(update={"name": method})
    pv = preview(protocol.model_copy(update={"method": type(m).model_validate(m.model_dump(by_alias=True))}), None)
    assert pv.error is None
    # neither baseline nudges: every current it sets is zero (Aeqprop's plan sets nonzero ones)
    nudges = [a for a in pv.actions if a.role == "nudges" and a.kind == "set"]
    assert all(not a.model.any() for a in nudges)
    aeq = preview(protocol, None)
    assert any(a.model.any() for a in aeq.actions if a.role == "nudges" and a.kind == "set")
