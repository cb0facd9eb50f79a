"""Methods come from a registry: the built-ins in code, plug-ins by the entry-point group aeqlab.methods."""

from __future__ import annotations

import sys
import textwrap

import pytest

from aeqlab.engine.methods import registry
from aeqlab.engine.methods.base import TrainingMethod
from aeqlab.errors import InputError


def test_the_built_in_methods_have_their_own_record_types():
    from aeqlab.engine.methods.aeqprop import SampleRecord
    from aeqlab.engine.methods.exact import ExactRecord
    from aeqlab.engine.methods.spsa import SpsaRecord

    assert registry.names()[:3] == ["aeqprop", "spsa", "exact"]
    assert len({SampleRecord, SpsaRecord, ExactRecord}) == 3
    assert registry.get("exact").needs_oracle and not registry.get("spsa").needs_oracle


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A tiny installed distribution (a dist-info on sys.path) with an aeqlab.methods entry point."""
    (tmp_path / "mymethods.py").write_text(
        textwrap.dedent(
            """
            from aeqlab.engine.methods.aeqprop import Aeqprop

            class Doubled(Aeqprop):
                name = "doubled"  # Aeqprop at twice the protocol's beta

                def sample(self, state, x, y, beta, ctx):
                    return super().sample(state, x, y, 2 * beta, ctx)

            class NotAMethod:
                pass
            """
        )
    )
    info = tmp_path / "mymethods-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mymethods\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[aeqlab.methods]\ndoubled = mymethods:Doubled\nbroken = mymethods:NotAMethod\nmissing = nosuchmodule:X\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("mymethods", None)


def test_a_plugin_method_is_found_by_its_entry_point(plugin):
    assert "doubled" in registry.names()
    method = registry.get("doubled")
    assert isinstance(method, TrainingMethod) and method.name == "doubled"


@pytest.mark.parametrize("name", ["broken", "missing", "nosuch"])
def test_a_bad_plugin_or_an_unknown_name_is_one_line(plugin, name):
    with pytest.raises(InputError) as err:
        registry.get(name)
    assert "\n" not in err.value.one_line() and "method.name" in err.value.one_line()


def test_a_protocol_names_a_plugin_method_and_it_trains(plugin, tmp_path):
    from pathlib import Path

    import aeqlab
    from aeqlab.protocol import parse_protocol

    xor = Path(__file__).resolve().parents[2] / "protocols" / "xor_hopfield_sim.yaml"
    text = xor.read_text().replace("  name: aeqprop\n", "  name: doubled\n", 1)
    protocol = parse_protocol(text, str(xor))
    assert protocol.method.name == "doubled"
    with aeqlab.open_bench(protocol) as bench:
        run = aeqlab.train(protocol, bench, epochs=2, out=tmp_path)
    assert run.summary["status"] == "completed" and run.summary["samples"] == 8
    with pytest.raises(Exception) as err:
        parse_protocol(text.replace("name: doubled", "name: nosuchmethod"), str(xor))
    assert "unknown method 'nosuchmethod'" in str(err.value)
