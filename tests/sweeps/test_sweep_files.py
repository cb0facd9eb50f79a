"""Sweep files: file:line:col errors, every bad point at once, the grid and the draw, keys, the schema."""

from __future__ import annotations

import json

import jsonschema
import pytest
from conftest import ROOT, write_sweep

from aeqlab.errors import InputError
from aeqlab.protocol.yamlio import parse_located
from aeqlab.sweeps.loader import load_sweep
from aeqlab.sweeps.model import schema_text
from aeqlab.sweeps.points import expand, parse_path


def problems(path) -> list[str]:
    with pytest.raises(InputError) as got:
        expand(load_sweep(path))
    return got.value.message.splitlines()


def test_an_unknown_key_and_a_bad_seed_list_are_named_with_their_lines(tmp_path):
    path = write_sweep(tmp_path, "seeds: [1, 1]\nepochz: 3\naxes:\n  method.beta: [0.5]\n")
    lines = problems(path)
    assert lines == [f"{path}:3:1: seeds: each seed once", f"{path}:4:1: epochz: unknown key"]


def test_a_range_outside_a_random_sweep_and_a_bad_path_are_refused(tmp_path):
    path = write_sweep(tmp_path, "axes:\n  method.beta: {low: 0.1, high: 1}\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:1:1: (top level): axis 'method.beta' is a range") and "random" in line
    path = write_sweep(tmp_path, "axes:\n  method..beta: [1]\n", "b.yaml")
    (line,) = problems(path)
    assert line.startswith(f"{path}:4:3: axes.method..beta: ") and "is not a field path" in line


def test_a_missing_base_protocol_is_one_line_at_its_key(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nprotocol: nowhere.yaml\naxes: {method.beta: [1]}\n")
    (line,) = problems(path)
    assert line == f"{path}:2:11: protocol: no such protocol file 'nowhere.yaml' (relative to the sweep file)"


def test_every_bad_point_is_reported_at_once_before_anything_runs(tmp_path):
    path = write_sweep(
        tmp_path,
        "axes:\n  method.beta: [0.5, -1.0]\n  simulation.epsilon.weights[7]: [0.01]\n  method.betta: [1]\n",
    )
    lines = problems(path)
    assert f"{path}:5:3: axes.simulation.epsilon.weights[7]: simulation.epsilon.weights has no item [7]" in lines
    beta = [line for line in lines if "method.beta = -1.0" in line]
    assert len(beta) == 1 and beta[0].startswith(f"{path}:4:22: ")  # the bad value itself, once
    assert any(line.startswith(f"{path}:6:18: axes.method.betta = 1") and "no such field" in line for line in lines)


def test_the_grid_writes_each_value_at_its_path_and_keys_tell_points_apart(tmp_path):
    path = write_sweep(
        tmp_path,
        "epochs: 2\nseeds: [0, 5]\naxes:\n"
        "  method.beta: [0.3, 0.6]\n"
        "  simulation.epsilon.weights[0]: [0.01, 0.04]\n"
        "  method.settle: ['1 ms', '2 ms']\n",
    )
    points = expand(load_sweep(path))
    assert len(points) == 2 * 2 * 2 * 2
    p = next(p for p in points if p.coords["method.beta"] == 0.6 and p.coords["method.settle"] == "2 ms")
    assert p.protocol.method.beta == 0.6
    assert p.protocol.method.settle == pytest.approx(2e-3)  # a value with a unit, as in a protocol
    assert p.protocol.simulation.epsilon.weights[0] in (0.01, 0.04)
    assert p.protocol.schedule.epochs == 2
    assert len({q.key for q in points}) == len(points)
    # the key is a function of the resolved protocol, the data and the seed: the same file gives the same keys
    assert [q.key for q in expand(load_sweep(path))] == [q.key for q in points]
    # the point's text is a protocol that says the same
    from aeqlab.protocol import parse_protocol

    assert parse_protocol(p.text, str(ROOT / "protocols" / "x.yaml")) == p.protocol


def test_a_seeded_draw_repeats_and_stays_in_its_ranges(tmp_path):
    body = (
        "random: {samples: 6, seed: 3}\nseeds: [0]\naxes:\n"
        "  method.beta: {low: 0.1, high: 1.0, log: true}\n"
        "  method.settle: {low: '1 ms', high: '3000 us'}\n"
        "  method.variant: [centered, optimistic]\n"
    )
    a = expand(load_sweep(write_sweep(tmp_path, body, "a.yaml")))
    b = expand(load_sweep(write_sweep(tmp_path, body, "b.yaml")))
    c = expand(load_sweep(write_sweep(tmp_path, body.replace("seed: 3", "seed: 4"), "c.yaml")))
    assert [p.coords for p in a] == [p.coords for p in b] != [p.coords for p in c]
    assert len(a) == 6
    for p in a:
        assert 0.1 <= p.protocol.method.beta <= 1.0
        assert 1e-3 <= p.protocol.method.settle <= 3e-3
        assert p.protocol.method.variant in ("centered", "optimistic")


def test_paths_with_list_indices():
    assert parse_path("simulation.epsilon.weights[0]") == ["simulation", "epsilon", "weights", 0]
    assert parse_path("a[1][2].b") == ["a", 1, 2, "b"]


def test_the_checked_in_schema_is_current_and_the_example_sweep_follows_it():
    checked_in = ROOT / "protocols" / "sweeps" / "aeqlab.sweep.schema.json"
    assert checked_in.read_text(encoding="utf-8") == schema_text(), "regenerate: see docs/sweeps.md"
    schema = json.loads(schema_text())
    example = ROOT / "protocols" / "sweeps" / "iris_beta_eps.yaml"
    jsonschema.validate(parse_located(example.read_text(), str(example)).data, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "protocol": "p.yaml", "axes": {}, "bogus": 1}, schema)
    assert len(expand(load_sweep(example))) == 18


def test_a_linked_axis_sets_several_fields_per_value_and_names_them_by_label(tmp_path):
    path = write_sweep(
        tmp_path,
        "axes:\n  bench:\n"
        "    - {label: ideal, simulation.adc_noise: 0.0}\n"
        "    - {label: noisy, simulation.adc_noise: 0.001, method.homeostasis.averages: 4}\n"
        "    - {label: bad, method.homeostasis.averages: 0}\n",
    )
    (line,) = problems(path)
    assert line.startswith(f"{path}:7:7: axes.bench = bad: method.homeostasis.averages: ")
    path.write_text(path.read_text().replace("    - {label: bad, method.homeostasis.averages: 0}\n", ""))
    points = expand(load_sweep(path))
    noisy = next(p for p in points if p.coords["bench"]["label"] == "noisy")
    assert noisy.protocol.simulation.adc_noise == 0.001 and noisy.protocol.method.homeostasis.averages == 4
    assert "bench = noisy" in noisy.text
    mixed = write_sweep(tmp_path, "axes:\n  bench: [{label: a, method.beta: 0.1}, 0.5]\n", "m.yaml")
    (line,) = problems(mixed)
    assert "a linked axis has a mapping of fields for every value" in line


def test_a_worker_gets_its_sigint_handler_back_after_a_sweep():
    import signal

    from aeqlab.sweeps.worker import ignore_sigint, restore_sigint

    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGINT, mine)
    try:
        ignore_sigint()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        ignore_sigint()  # a second sweep on the same worker keeps the first handler to restore
        restore_sigint()
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "protocols" / "sweeps").glob("*.yaml")))
def test_every_checked_in_sweep_follows_the_schema_and_every_point_validates(name):
    path = ROOT / "protocols" / "sweeps" / name
    jsonschema.validate(parse_located(path.read_text(), str(path)).data, json.loads(schema_text()))
    points = expand(load_sweep(path))  # each point's protocol is validated here, all at once
    assert points
