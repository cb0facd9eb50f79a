"""``aeqlab runs``: status, reason, protocol file, distinguishing fields; failed starts can be hidden."""

from __future__ import annotations

import json
import sqlite3

import pytest
from reporthelpers import copy_run

from aeqlab.cli import main


@pytest.fixture
def runs_folder(xor_run, tmp_path):
    folder = tmp_path / "runs"
    good = copy_run(xor_run[0], folder / "a-good")
    bad = copy_run(xor_run[0], folder / "b-failed-start")
    con = sqlite3.connect(bad / "journal.sqlite")
    con.execute("DELETE FROM samples")
    con.execute("UPDATE header SET seed = 7")
    con.execute("UPDATE sessions SET exit_status = 'error', error = 'adc: no reply to *IDN? within 2 s'")
    con.commit()
    con.close()
    return folder, good, bad


def table(capsys, *args):
    with pytest.raises(SystemExit) as done:
        main(["runs", *args])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_runs_json_has_reason_protocol_file_and_fields(runs_folder, capsys, xor_run):
    folder, good, bad = runs_folder
    rows = {r["run"]: r for r in json.loads(table(capsys, str(folder), "--json").strip().splitlines()[-1])}
    g, b = rows["a-good"], rows["b-failed-start"]
    assert g["status"] == "completed" and g["reason"] is None and not g["failed_start"]
    assert g["protocol_file"].endswith("xor.yaml") and g["backend"] == "sim" and g["epochs"] == 3
    assert (g["seed"], b["seed"]) == (0, 7)
    assert b["status"] == "error" and b["reason"] == "adc: no reply to *IDN? within 2 s" and b["failed_start"]
    assert g["metric"] == "accuracy" and g["test_accuracy"] == xor_run[1]["test_accuracy"]


def test_runs_table_shows_reason_and_hides_failed_starts(runs_folder, capsys):
    folder, good, bad = runs_folder
    out = table(capsys, str(folder))
    assert "b-failed-start" in out and "no reply to *IDN?" in out and "xor.yaml" in out
    out = table(capsys, str(folder), "--hide-failed")
    assert "a-good" in out and "b-failed-start" not in out
