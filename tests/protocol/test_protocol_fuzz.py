"""Mutated example protocols: every outcome is a valid model or one line per problem, never a crash."""

from __future__ import annotations

import pytest
from helpers import BROKEN, EXAMPLES, PROBLEM, TEMPLATES, aeqlab
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aeqlab.errors import ProtocolError
from aeqlab.protocol import Protocol, parse_protocol

SOURCES = [(p.name, p.read_text(encoding="utf-8")) for p in EXAMPLES + TEMPLATES]
TRICKY = [
    "",
    "~",
    ".nan",
    "-.inf",
    ".inf",
    "1e999",
    "-1e999",
    "1e-999",
    "-5 ms",
    "5 ms",
    "1 uA",
    "2.5 V",
    "10 kohm",
    "3 parsecs",
    "1/0 V",
    "nan V",
    "[]",
    "{}",
    "[1, 2]",
    "[1, 2, 3]",
    "'x'",
    "true",
    "0",
    "-1",
    "0.0",
    "99999999999999999999999999",
    "-99999999999999999999",
    "*nowhere",
    "&a x",
    "!!binary AAAA",
    "2026-11-28",
    "0x1F",
    '"\\x00"',
    "dac/ao0:1",
    "dac/ao5:2",
    "adc/ai0:999999",
    "{low: 1, high: 0}",
    "[-1 V, 1 A]",
    "{mode: until_stable}",
    "{mode: fixed, time: -1 s}",
    "sim",
    "keithley2450",
    "!!python/object:os.system x",
    "'\t'",
    "|\n  block",
    "? complex\n: key",
    "{a: 1, a: 2}",
    "[[[[[[[[[[1]]]]]]]]]]",
    "\u00b5A",
    "1 \u00b5A",
]
CHARS = st.sampled_from(list(":-{}[],'\"&*!|>#%@`\t\n \x00\\e.0129aZ\u00b5\u2212"))


@st.composite
def mutated(draw):
    name, text = draw(st.sampled_from(SOURCES))
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["value", "value", "char", "delete", "line", "key", "truncate", "indent"]))
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        if op == "value" and ":" in line:
            head = line.split(":", 1)[0]
            lines[i] = f"{head}: {draw(st.sampled_from(TRICKY))}\n"
        elif op == "char":
            j = draw(st.integers(0, len(line)))
            lines[i] = line[:j] + draw(st.text(CHARS, min_size=1, max_size=3)) + line[j:]
        elif op == "delete" and lines:
            del lines[i]
        elif op == "line" and lines:
            lines.insert(i, line)
        elif op == "key" and ":" in line:
            head, rest = line.split(":", 1)
            stripped = head.lstrip()
            lines[i] = (
                head[: len(head) - len(stripped)]
                + draw(st.sampled_from(["nmae", "limit", "extends", "x"]))
                + ":"
                + rest
            )
        elif op == "truncate":
            lines = lines[:i]
        elif op == "indent" and lines:
            lines[i] = draw(st.sampled_from([" ", "  ", "\t", "    "])) + line
    return name, "".join(lines)


def check(text: str, source: str) -> None:
    try:
        model = parse_protocol(text, source)
    except ProtocolError as exc:
        lines = exc.message.splitlines()
        assert lines, "an error with no message"
        for line in lines:
            assert PROBLEM.match(line) and line.startswith(source), line
            assert "Traceback" not in line
    else:
        assert isinstance(model, Protocol)


@settings(max_examples=600, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutated_protocols_load_or_say_what_is_wrong(case):
    name, text = case
    check(text, f"/tmp/fuzz/{name}")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00\x01\x02binary",
        b"\xff\xfe\xfd not utf-8",
        b"name: [unclosed\n",
        b"\tname: x\n",
        b"- a list\n",
        b"a: &x [*x]\n",
        b"roles: 1e999\n",
    ],
    ids=["empty", "binary", "latin", "syntax", "tab", "list", "recursive", "huge"],
)
def test_cli_says_what_is_wrong_in_one_line_per_problem(tmp_path, content):
    path = tmp_path / "p.yaml"
    path.write_bytes(content)
    proc = aeqlab("validate", str(path))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"error: {path}") for line in lines), lines


def test_cli_validate_exits_0_for_valid_and_2_when_any_is_broken():
    good = [str(p) for p in EXAMPLES]
    assert aeqlab("validate", *good).returncode == 0
    proc = aeqlab("validate", *good, str(BROKEN / "several_at_once.yaml"), "missing.yaml")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4 and "missing.yaml: no such file" in errors[-1]
