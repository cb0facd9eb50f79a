"""Data travel with the run: the run folder keeps a copy and its hash; resume uses the copy from anywhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from runhelpers import resume_inprocess, run_inprocess

from aeqlab.errors import InputError

XOR = Path(__file__).resolve().parents[2] / "protocols" / "xor_hopfield_sim.yaml"


@pytest.fixture
def csv_protocol(tmp_path):
    """A protocol of a user's own: a CSV beside it, named by a relative path."""
    folder = tmp_path / "mine"
    folder.mkdir()
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (40, 2))
    label = (x[:, 0] * x[:, 1] > 0).astype(int)
    rows = "\n".join(f"{a:.6f},{b:.6f},{c}" for (a, b), c in zip(x, label))
    (folder / "points.csv").write_text("x1,x2,label\n" + rows + "\n")
    text = XOR.read_text().replace("dataset:\n  name: xor\n", "dataset:\n  path: points.csv\n  test_size: 0.25\n")
    path = folder / "points.yaml"
    path.write_text(text)
    return path


def test_a_run_on_a_csv_resumes_from_anywhere_on_its_copy(csv_protocol, tmp_path, monkeypatch):
    straight = run_inprocess(csv_protocol, tmp_path / "a", epochs=3)
    assert straight["status"] == "completed", straight.get("error")
    run_dir = Path(straight["run_dir"])
    kept = json.loads((run_dir / "run.json").read_text())["data"]
    assert kept["file"] == "data/points.csv" and (run_dir / kept["file"]).read_bytes() == (
        csv_protocol.parent / "points.csv"
    ).read_bytes()

    cut = run_inprocess(csv_protocol, tmp_path / "b", epochs=3, hook="stop@400")
    assert cut["status"] == "interrupted"
    (csv_protocol.parent / "points.csv").unlink()  # the original is gone; the run's copy remains
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    done = resume_inprocess(cut["run_dir"])
    assert done["status"] == "completed", done.get("error")
    assert done["params_sha256"] == straight["params_sha256"]


def test_an_altered_copy_is_refused_naming_the_hashes(csv_protocol, tmp_path):
    cut = run_inprocess(csv_protocol, tmp_path / "b", epochs=3, hook="stop@400")
    copy = Path(cut["run_dir"]) / "data" / "points.csv"
    copy.write_text(copy.read_text().replace("0.", "0.1", 1))
    with pytest.raises(InputError) as err:
        resume_inprocess(cut["run_dir"])
    line = err.value.one_line()
    assert "altered" in line and "SHA-256" in line and str(copy) in line and "\n" not in line


def test_a_built_in_data_set_is_recorded_by_the_hash_of_its_split(tmp_path):
    run = run_inprocess(XOR, tmp_path, epochs=1)
    kept = json.loads((Path(run["run_dir"]) / "run.json").read_text())["data"]
    assert kept["name"] == "xor" and len(kept["split_sha256"]) == 64
    again = run_inprocess(XOR, tmp_path / "2", epochs=1)
    assert json.loads((Path(again["run_dir"]) / "run.json").read_text())["data"] == kept
    shutil.rmtree(tmp_path / "2")


def test_an_opened_runs_protocol_reads_the_folders_copy_whatever_its_data_path(csv_protocol, tmp_path):
    """A path that leaves the protocol's folder (advise's --write gives '../points.csv') does not resolve
    from the run folder; the opened run's protocol still loads, on the copy, as resume does."""
    import aeqlab

    advised = csv_protocol.parent / "advised" / "points.yaml"
    advised.parent.mkdir()
    advised.write_text(csv_protocol.read_text().replace("path: points.csv", "path: ../points.csv"))
    done = run_inprocess(advised, tmp_path / "runs", epochs=1)
    assert done["status"] == "completed", done.get("error")
    run_dir = Path(done["run_dir"])
    assert "path: ../points.csv" in (run_dir / "protocol.yaml").read_text()  # the recorded text is the user's
    protocol = aeqlab.open_run(run_dir).protocol()
    assert Path(protocol.dataset.path) == (run_dir / "data" / "points.csv").resolve()
    (csv_protocol.parent / "points.csv").write_text("x1,x2,label\n9,9,0\n")  # the original may change: the copy counts
    assert aeqlab.open_run(run_dir).protocol() == protocol
