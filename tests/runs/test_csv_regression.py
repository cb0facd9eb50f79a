"""CSV regression end to end: one and several named target columns train on xor-sized twins and report R²."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clirunner import run_cli
from runhelpers import XOR

from aeqlab.datasets import load
from aeqlab.protocol import load_protocol
from aeqlab.report import make_report


def regression_protocol(folder: Path, n_in: int, n_out: int) -> Path:
    """The XOR protocol on an n_in-8-n_out twin, learning the CSV's named target columns y1, y2, ..."""
    columns = ", ".join(f"x{i + 1}" for i in range(n_in))  # 'note' is a column that is neither input nor target
    targets = ", ".join(f"y{j + 1}" for j in range(n_out))
    dataset = f"  path: d.csv\n  task: regression\n  columns: [{columns}]\n  targets: [{targets}]\n  test_size: 12\n"
    n = n_in * 8 + 8 * n_out + 8 + n_out
    span = lambda prefix, first, count: f"{prefix}{first}" if count == 1 else f"{prefix}{first}:{first + count - 1}"  # noqa: E731
    text = (
        XOR.read_text()
        .replace("dataset:\n  name: xor\n", "dataset:\n" + dataset)
        .replace("layers: [2, 8, 2]", f"layers: [{n_in}, 8, {n_out}]")
        .replace("channels: dac/ao0:1", f"channels: {span('dac/ao', 0, n_in)}")
        .replace("channels: dac/ao2:43", f"channels: {span('dac/ao', n_in, n)}")
        .replace("channels: adc/ai0:1", f"channels: {span('adc/ai', 0, n_out)}")
        .replace("channels: adc/ai2:43", f"channels: {span('adc/ai', n_out, n)}")
        .replace("channels: smu/ch0:1", f"channels: {span('smu/ch', 0, n_out)}")
    )
    path = folder / "regression.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def write_data(folder: Path, n_in: int, n_targets: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (48, n_in))
    ys = [0.5 + 0.4 * np.sin(2 * x[:, 0]), 0.5 - 0.3 * x[:, 0] * x[:, -1]][:n_targets]
    header = [f"x{i + 1}" for i in range(n_in)] + ["note"] + [f"y{j + 1}" for j in range(n_targets)]
    cells = np.c_[x, np.zeros(48), np.c_[tuple(ys)]]
    rows = "".join(",".join(f"{v:.6f}" for v in r) + "\n" for r in cells)
    (folder / "d.csv").write_text(",".join(header) + "\n" + rows, encoding="utf-8")


@pytest.mark.parametrize(("n_in", "n_targets"), [(1, 1), (2, 2)], ids=["one target", "two targets"])
def test_a_csv_regression_trains_and_reports_r2(tmp_path, n_in, n_targets):
    write_data(tmp_path, n_in, n_targets)
    path = regression_protocol(tmp_path, n_in, n_targets)
    res = run_cli("run", str(path), "--sim", "--epochs", "4", "--out", str(tmp_path / "runs"), "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    epoch_lines = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("epoch 4/4:")]
    assert "test R²" in epoch_lines[-1] and "test loss" in epoch_lines[-1] and "acc" not in epoch_lines[-1]
    assert summary["status"] == "completed" and summary["homeostasis_unconverged"] == 0
    assert summary["test_loss"] < 0.3 * summary["initial_test_loss"]
    assert summary["test_r2"] > max(0.3, summary["initial_test_r2"]), summary
    # R² is 1 − SSE/SST over every target column: recomputed from the mean loss and the test targets
    protocol, _ = load_protocol(path)
    split = load(protocol.dataset)
    y = split.targets(split.y_test)
    assert y.shape == (12, n_targets)
    sse = 2 * summary["test_loss"] * len(y)
    assert summary["test_r2"] == pytest.approx(1 - sse / np.sum((y - y.mean(axis=0)) ** 2), rel=1e-9)
    report = make_report(Path(summary["run_dir"]), tmp_path / "report", figures=False)
    page = (tmp_path / "report" / "summary.md").read_text()
    assert "test R²" in page and "accuracy" not in page.split("## Flags")[0]
    assert report.data["predictions"]["target"].shape[1] == n_targets
    assert ("R² pools the 2 targets" in page) == (n_targets == 2)
