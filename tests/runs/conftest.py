"""Fixtures for the run-store tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from runhelpers import copy_protocol, run_inprocess


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> tuple[Path, dict]:
    """One uninterrupted XOR run: (run folder, summary)."""
    base = tmp_path_factory.mktemp("reference")
    summary = run_inprocess(copy_protocol(base), base / "runs")
    assert summary["status"] == "completed"
    return Path(summary["run_dir"]), summary
