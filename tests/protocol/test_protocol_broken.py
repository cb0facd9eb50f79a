"""Hand-written broken protocols: each names its problem at the expected line and column."""

from __future__ import annotations

import pytest
from helpers import BROKEN, PROBLEM

from aeqlab.errors import ProtocolError
from aeqlab.protocol import load_protocol

CASES = sorted(BROKEN.glob("*.yaml"))


def expectations(path):
    """``# expect: LINE:COL text`` (or ``# expect: - text`` for a problem without a line)."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("# expect: "):
            where, _, text = line.removeprefix("# expect: ").partition(" ")
            out.append((where, text))
    return out


def test_at_least_twenty_broken_protocols():
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_problem_is_reported_at_its_line(path):
    expected = expectations(path)
    assert expected, f"{path.name} has no '# expect:' line"
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    lines = info.value.message.splitlines()
    assert all(PROBLEM.match(line) for line in lines), lines
    for where, text in expected:
        prefix = f"{path}: " if where == "-" else f"{path}:{where}: "
        assert any(line.startswith(prefix) and text in line for line in lines), (prefix + text, lines)
