"""The live terminal view fits 80 columns: fields wrap to the next line, never cut; epoch lines stay above."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

import aeqlab
from aeqlab.runs.progress import LiveView, pack_fields

XOR = Path(__file__).resolve().parents[2] / "protocols" / "xor_hopfield_sim.yaml"


def test_fields_wrap_whole_at_the_width():
    fields = ["epoch 3/25", "sample 1234/5000", "ETA 1:12", "loss 0.1234", "acc 0.912", "homeostasis 8.1 it"]
    lines = pack_fields(fields, 30)
    assert all(len(line) <= 30 for line in lines)
    assert "  ".join(lines).split("  ") == fields  # every field whole, in order


def test_a_run_at_80_columns_shows_whole_fields_and_keeps_epoch_lines(tmp_path):
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True, color_system=None, legacy_windows=False)
    protocol = aeqlab.load_protocol(XOR)
    with aeqlab.open_bench(protocol) as bench:
        run = aeqlab.train(protocol, bench, epochs=3, out=tmp_path, callbacks=[LiveView(console)])
    assert run.summary["status"] == "completed"
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())  # the terminal's cursor moves
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    assert all(len(ln) <= 80 for ln in lines)
    assert sum(ln.startswith("epoch ") and "train acc" in ln for ln in lines) == 3  # one per epoch, above
    assert any("ETA " in ln for ln in lines) and any("samples/s" in ln for ln in lines)
    joined = "".join(lines)  # a long run folder path wraps onto the next line
    assert f"aeqlab watch {run.path}" in joined and f"aeqlab report {run.path}" in joined
