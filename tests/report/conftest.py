"""Fixtures for the report tests: a short XOR run, and synthetic journals grown from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from reporthelpers import run_xor


@pytest.fixture(scope="session")
def xor_run(tmp_path_factory) -> tuple[Path, dict]:
    """A finished 3-epoch XOR run on the twin: (run folder, summary)."""
    base = tmp_path_factory.mktemp("xor")
    summary = run_xor(base / "runs")
    assert summary["status"] == "completed"
    return Path(summary["run_dir"]), summary
