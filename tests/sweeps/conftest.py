"""Sweep files for the tests: xor on the twin, a few epochs, written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
XOR = ROOT / "protocols" / "xor_hopfield_sim.yaml"


def write_sweep(folder: Path, body: str, name: str = "sweep.yaml") -> Path:
    path = folder / name
    path.write_text(f"name: t\nprotocol: {XOR}\n" + body, encoding="utf-8")
    return path


@pytest.fixture
def xor_sweep(tmp_path) -> Path:
    return write_sweep(
        tmp_path,
        "epochs: 3\nseeds: [0, 1]\naxes:\n  method.beta: [0.3, 0.6]\ntarget: {value: 0.75}\n",
    )
