"""CLI points of the first-use review without a test elsewhere: hints, output.dir, a resumed run's summary."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "runs"))

from runhelpers import copy_protocol, resume_inprocess, run_inprocess  # noqa: E402


def _hints() -> list[tuple[str, int, str]]:
    """Every literal ``hint=`` text in aeqlab and drivers (f-strings by their literal parts)."""
    out = []
    for path in [*ROOT.glob("aeqlab/**/*.py"), *ROOT.glob("drivers/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "hint":
                v = node.value
                if isinstance(v, ast.Constant) and isinstance(v.value, str):
                    out.append((str(path.relative_to(ROOT)), node.lineno, v.value))
                elif isinstance(v, ast.JoinedStr):
                    text = "".join(p.value for p in v.values if isinstance(p, ast.Constant))
                    out.append((str(path.relative_to(ROOT)), node.lineno, text))
    return out


def test_hints_name_no_repository_path_and_bring_no_parentheses_of_their_own():
    hints = _hints()
    assert len(hints) > 30  # the scan sees the hints
    for where, line, text in hints:
        assert not any(p in text for p in ("protocols/", "docs/", "tests/", "sim_backends/")), (where, line, text)
        # one_line() wraps the hint in parentheses: a hint in its own would print doubled ones
        assert not (text.startswith("(") or text.endswith(")")), (where, line, text)


def test_a_hint_prints_once_in_single_parentheses():
    from aeqlab.errors import InputError

    line = InputError("bad value", where="--x", hint="give a number").one_line()
    assert line == "--x: bad value (give a number)" and "((" not in line and "))" not in line


def test_output_dir_resolves_from_the_working_directory(tmp_path, monkeypatch):
    """`output.dir: runs` is relative to where the run starts, not to the protocol file."""
    protocol = copy_protocol(tmp_path / "protocols")  # output.dir is 'runs'
    here = tmp_path / "work"
    here.mkdir()
    monkeypatch.chdir(here)
    summary = run_inprocess(protocol, None, epochs=1)
    assert Path(summary["run_dir"]).resolve().parent == here / "runs"
    assert not (tmp_path / "protocols" / "runs").exists()


def test_a_resumed_runs_summary_separates_this_session_from_the_whole_run(tmp_path):
    protocol = copy_protocol(tmp_path)
    cut = run_inprocess(protocol, tmp_path / "runs", hook="stop@1200")  # about sample 15 of 60
    assert cut["status"] == "interrupted" and 0 < cut["samples"] < 60
    done = resume_inprocess(cut["run_dir"])
    assert done["status"] == "completed" and done["samples"] == 60
    session = done["this_session"]
    # this session trained the rest, and replayed the few after the last full checkpoint: not the whole run
    assert session["mode"] == "resume" and done["samples"] - cut["samples"] <= session["samples"] < done["samples"]
    assert done["sessions"] == 2 and session["wall_s"] == done["wall_s"]
    summary = json.loads((Path(done["run_dir"]) / "summary.json").read_text())
    assert summary["this_session"] == session
