"""Hostile or absurd protocol input is refused cheaply, at its line, without echoing what it read."""

from __future__ import annotations

import os
import re

import pytest
from helpers import PROTOCOLS

from aeqlab.errors import ProtocolError
from aeqlab.protocol import Protocol, load_protocol, loader, parse_protocol, yamlio
from aeqlab.protocol.fields import MAX_CHANNELS, MAX_LAYER, MAX_PARAMS
from aeqlab.protocol.yamlio import Located, Place, parse_located

XOR = (PROTOCOLS / "xor_hopfield_sim.yaml").read_text(encoding="utf-8")
PLACED = re.compile(r"^.+:\d+:\d+: \S")


def problems(text: str, name: str = "p.yaml") -> list[str]:
    with pytest.raises(ProtocolError) as info:
        parse_protocol(text, name)
    lines = info.value.message.splitlines()
    assert all(PLACED.match(line) for line in lines), lines  # every one is file:line:col
    return lines


def write_base(tmp_path, target_line: str):
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {target_line}\nname: child\n", encoding="utf-8")
    return child


# ------------------------------------------------------------------ extends: regular protocol files only
def test_extends_refuses_a_non_protocol_file_before_reading_it(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$SECRETHASH:19000:0:99999:7:::\n", encoding="utf-8")
    with pytest.raises(ProtocolError) as info:
        load_protocol(write_base(tmp_path, str(secret)))
    text = info.value.message
    assert "child.yaml:1:10: extends:" in text and "is not a protocol file" in text
    assert "SECRETHASH" not in text
    with pytest.raises(ProtocolError) as info:
        load_protocol(write_base(tmp_path, "/etc/shadow"))
    assert "is not a protocol file (a base protocol is a .yaml or .yml file)" in info.value.message


def test_extends_refuses_a_fifo_without_opening_it(tmp_path):
    fifo = tmp_path / "base.yaml"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came: the check must not open it
    with pytest.raises(ProtocolError) as info:
        load_protocol(write_base(tmp_path, "base.yaml"))
    assert "child.yaml:1:10: extends: base.yaml: is not a regular file" in info.value.message


def test_extends_refuses_a_folder_and_a_protocol_file_that_is_a_fifo(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ProtocolError, match=r"child.yaml:1:10: extends: dir.yaml: is a folder"):
        load_protocol(write_base(tmp_path, "dir.yaml"))
    fifo = tmp_path / "p.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ProtocolError, match="is not a regular file"):
        load_protocol(fifo)


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"name: x\n" + b"#" * yamlio.MAX_BYTES)
    with pytest.raises(ProtocolError, match=f"more than a protocol may have \\({yamlio.MAX_BYTES} bytes\\)"):
        load_protocol(big)
    base = tmp_path / "base.yaml"
    base.write_bytes(big.read_bytes())
    with pytest.raises(ProtocolError, match=r"child.yaml:1:10: extends: base.yaml: .*more than a protocol may have"):
        load_protocol(write_base(tmp_path, "base.yaml"))


# ------------------------------------------------------------------ long keys and values are cut
def test_errors_cut_long_keys_and_values():
    key = "k" * 5000
    lines = problems(XOR.replace("output:\n", f"output:\n  {key[:1000]}: 1\n"))
    assert all(len(line) < 500 for line in lines), [len(x) for x in lines]
    assert any("unknown key 'kkkk" in line and "..." in line for line in lines)
    assert not any("k" * 100 in line for line in lines)
    lines = problems(XOR.replace("name: aeqprop", "name: " + "z" * 100_000))
    assert all(len(line) < 500 for line in lines) and any("method.name" in line for line in lines)


# ------------------------------------------------------------------ unknown keys: linear, bounded report
def _unknown_key_report(n: int, monkeypatch) -> tuple[list[str], int]:
    """The report for ``n`` unknown keys in 'output', and how often a did-you-mean was computed."""
    data = parse_located(XOR, "p.yaml")
    extra = {f"k{i}": 1 for i in range(n)}
    data.data["output"] = {**data.data["output"], **extra}
    for i in range(n):
        data.keys[("output", f"k{i}")] = data.values[("output", f"k{i}")] = Place("p.yaml", 60 + i, 3)
    calls = [0]
    real = loader._close

    def counted(word, allowed):
        calls[0] += 1
        return real(word, allowed)

    monkeypatch.setattr(loader, "_close", counted)
    with pytest.raises(Exception) as info:
        Protocol.model_validate(data.data)
    return [str(p) for p in loader.collect_problems(info.value, data)], calls[0]


def test_unknown_keys_are_reported_in_bounded_work(monkeypatch):
    small, small_calls = _unknown_key_report(5_000, monkeypatch)
    large, large_calls = _unknown_key_report(50_000, monkeypatch)
    # the same number of lines and of did-you-mean computations for 10x the keys: the rest is only counted
    assert len(small) == len(large) == loader.MAX_UNKNOWN + 1
    assert small_calls == large_calls == loader.MAX_UNKNOWN
    assert small[-1].endswith("output: and 4990 more unknown keys (see 'aeqlab schema' for the keys allowed here)")
    assert "and 49990 more unknown keys" in large[-1]


def test_did_you_mean_still_works_for_a_few_unknown_keys():
    lines = problems(XOR.replace("output:\n  dir: runs", "output:\n  dirr: runs"))
    assert any("output.dirr: unknown key 'dirr' (did you mean 'dir'?)" in line for line in lines)


# ------------------------------------------------------------------ aliases
def billion_laughs(levels: int = 10, width: int = 10) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_any_expansion(monkeypatch):
    expanded = [0]
    real = yamlio._plain

    def counting(*args, **kw):
        expanded[0] += 1
        return real(*args, **kw)

    monkeypatch.setattr(yamlio, "_plain", counting)  # where the values would be copied out
    with pytest.raises(ProtocolError) as info:
        parse_protocol(billion_laughs(), "bomb.yaml")
    (line,) = info.value.message.splitlines()
    assert re.match(r"^bomb.yaml:\d+:\d+: aliases repeat \d+ values, more than the 10000", line), line
    assert expanded[0] == 0


def test_a_few_aliases_still_work():
    text = XOR.replace("  input_range: [-1.0, 1.0]", "  input_range: &r [-1.0, 1.0]\n  target_range: *r")
    assert parse_protocol(text, "p.yaml").dataset.target_range == (-1.0, 1.0)


def test_a_recursive_alias_is_refused_at_its_line():
    lines = problems(XOR + "extra: &x [1, *x]\n")
    assert any("a recursive alias" in line for line in lines)


# ------------------------------------------------------------------ tags and parser errors
@pytest.mark.parametrize(
    "value, fragment",
    [
        ("!!bool maybe", "'maybe' is not a valid bool"),
        ("!!int x", "'x' is not a valid int"),
        ("!!float zz", "'zz' is not a valid float"),
        ("!!binary aGVsbG8=", "the tag !!binary has no use in a protocol"),
        ("!!python/object:os.system {}", "the tag !!python/object:os.system has no use"),
        ("!local 3", "the tag !local has no use in a protocol"),
        ("*nowhere", "found undefined alias"),
    ],
)
def test_tag_and_constructor_errors_are_one_line_at_their_place(value, fragment):
    (line,) = problems(XOR.replace("  epochs: 100", f"  epochs: {value}"))
    assert line.startswith("p.yaml:46:11: ") and fragment in line, line


# ------------------------------------------------------------------ booleans are not numbers
@pytest.mark.parametrize(
    "old, new, key",
    [
        ("tolerance: 1.0e-6", "tolerance: true", "method.homeostasis.tolerance"),
        ("epochs: 100", "epochs: false", "schedule.epochs"),
        ("layers: [2, 8, 2]", "layers: [2, true, 2]", "simulation.layers"),
        ("{low: -1.5, high: 1.5}", "{low: true, high: 1.5}", "roles.inputs.limits.low"),
        ("seed: 0\n\ninstruments", "seed: true\n\ninstruments", "seed"),
    ],
)
def test_booleans_are_refused_where_numbers_belong(old, new, key):
    assert old in XOR
    lines = problems(XOR.replace(old, new, 1))
    assert any(f": {key}: true/false is a boolean, not a number" in line for line in lines), lines


def test_booleans_still_work_where_booleans_belong():
    assert parse_protocol(XOR.replace("shuffle: true", "shuffle: false"), "p.yaml").schedule.shuffle is False


# ------------------------------------------------------------------ sizes
def test_huge_channel_counts_are_refused_at_their_line():
    (line,) = problems(XOR.replace("dac: {driver: sim}", "dac: {driver: sim, channels: 2147483648}"))
    assert line.startswith("p.yaml:8:") and "instruments.dac.channels" in line and str(MAX_CHANNELS) in line
    lines = problems(XOR.replace("channels: dac/ao2:43", "channels: dac/ao2:2147483648"))
    assert any(x.startswith("p.yaml:17:15: roles.knobs.channels") and "more than" in x for x in lines), lines


def test_huge_layers_are_refused_at_their_line():
    (line,) = problems(XOR.replace("layers: [2, 8, 2]", "layers: [4, 100000, 3]"))
    assert line.startswith("p.yaml:30:") and "simulation.layers[1]" in line and str(MAX_LAYER) in line
    wide = f"layers: [2, {MAX_LAYER}, {MAX_LAYER}, {MAX_LAYER}, 2]"
    lines = problems(XOR.replace("layers: [2, 8, 2]", wide).replace("weights: [0.05, 0.02]", "weights: [1, 1, 1, 1]"))
    assert any(x.startswith("p.yaml:30:") and f"more than {MAX_PARAMS}" in x for x in lines), lines


def test_a_csv_with_too_many_rows_is_refused_at_the_data_path(tmp_path, monkeypatch):
    import aeqlab.protocol.dataset as dataset

    monkeypatch.setattr(dataset, "MAX_ROWS", 3)
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,label\n" + "0,1,0\n1,0,1\n" * 2, encoding="utf-8")
    text = XOR.replace("  name: xor\n", "  path: d.csv\n")
    proto = tmp_path / "p.yaml"
    proto.write_text(text, encoding="utf-8")
    with pytest.raises(ProtocolError, match=r"p.yaml:35:9: dataset.path: .*has 4 rows, more than 3 examples"):
        load_protocol(proto)
    csv.write_text("a,b,label\n0,1,0\n1,0,1\n", encoding="utf-8")
    assert load_protocol(proto)[0].dataset.path.endswith("d.csv")


def test_an_npz_that_expands_beyond_the_cap_is_refused_from_its_headers_before_loading(tmp_path, monkeypatch):
    import numpy as np

    import aeqlab.protocol.dataset as dataset

    x = np.zeros((2_000, 2))  # zeros compress to almost nothing: the file is small, the arrays are not
    np.savez_compressed(tmp_path / "d.npz", x=x, label=np.zeros(2_000, dtype=np.int64))
    assert (tmp_path / "d.npz").stat().st_size < 2_000
    text = XOR.replace("  name: xor\n", "  path: d.npz\n")
    proto = tmp_path / "p.yaml"
    proto.write_text(text, encoding="utf-8")

    def no_load(*_a, **_k):
        raise AssertionError("an array was loaded before its size was checked")

    monkeypatch.setattr(dataset, "MAX_NPZ_BYTES", 30_000)  # 2,000 × 3 values × 8 bytes = 48,000 expanded
    monkeypatch.setattr(np, "load", no_load)
    with pytest.raises(ProtocolError, match=r"p.yaml:35:9: dataset.path: .*expands to 48000 bytes of arrays"):
        load_protocol(proto)
    monkeypatch.setattr(dataset, "MAX_NPZ_BYTES", 10**9)
    monkeypatch.setattr(dataset, "MAX_ROWS", 1_000)
    with pytest.raises(ProtocolError, match=r"dataset.path: .*array 'x' has 2000 rows, more than 1000 examples"):
        load_protocol(proto)


def test_located_is_unchanged_for_plain_files():
    # the node checks do not change what is read
    located = parse_located("a: &x {b: 1}\nc: *x\nd: 2024-01-02\n", "f.yaml")
    assert isinstance(located, Located) and located.data == {"a": {"b": 1}, "c": {"b": 1}, "d": "2024-01-02"}
