"""``safety.on_compliance`` on emulated SMUs whose nudges drive the outputs past a small voltage compliance.

The emulated 2450s measure the voltage of the output node each nudges into and report
their compliance tripped (``:SOUR:CURR:VLIM:TRIP?``) when it reaches the limit; the
drivers read that after every nudge write. With a 0.42 V compliance some XOR samples
trip and others do not (the node voltages after the nudge writes of this seed reach
0.431 V at most, the largest below the limit is 0.403 V).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from clirunner import run_cli

from aeqlab.backends import emulate

OLD_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "run-before-run-engine"

PROTOCOL = """\
name: xor-compliance
seed: 0
instruments:
  qdac: {{driver: qdac2, channels: 24, resource: TCPIP::192.168.1.30::5025::SOCKET}}
  board:
    driver: serial_board
    channels: 86
    resource: /dev/ttyACM0
    options: {{dac_channels: 42, adc_channels: 44}}
  k1:
    driver: keithley2450
    resource: TCPIP::192.168.1.33::5025::SOCKET
    options: {{compliance: {compliance}, off_mode: himp}}
  k2:
    driver: keithley2450
    resource: TCPIP::192.168.1.34::5025::SOCKET
    options: {{compliance: {compliance}, off_mode: himp}}
roles:
  inputs: {{channels: qdac/ch0:1, limits: {{low: -1.5, high: 1.5}}}}
  knobs: {{channels: board/ao0:41, limits: {{low: -5.0, high: 5.0}}}}
  outputs: {{channels: board/ai84:85}}
  params: {{channels: board/ai42:83}}
  nudges:
    channels: [k1/ch0, k2/ch0]
    limits: {{low: -1.0e-5, high: 1.0e-5}}
    calibration: {{scale: 1.0e-6}}
simulation:
  model: hopfield
  layers: [2, 8, 2]
  epsilon: {{weights: [0.05, 0.02], biases: [0.05, 0.02]}}
  init: {{gains: [1.0, 0.6], seed: 0}}
dataset: {{name: xor, input_range: [-1.0, 1.0]}}
method:
  name: aeqprop
  variant: centered
  beta: 0.5
  nudging: linearized
  homeostasis: {{tolerance: 1.0e-6, max_iterations: 100}}
schedule: {{epochs: 2, shuffle: true}}
safety: {{{policy}}}
output: {{dir: runs}}
"""


def write_protocol(folder: Path, compliance: float, policy: str | None) -> Path:
    path = folder / "xor_compliance.yaml"
    path.write_text(
        PROTOCOL.format(compliance=compliance, policy=f"on_compliance: {policy}" if policy else ""), encoding="utf-8"
    )
    return path


@pytest.fixture
def emulators(monkeypatch):
    """The emulator sets the runs of a test started (to read their logs and front panels afterwards)."""
    started = []
    real = emulate.start_emulators

    def start(protocol, twin=None):
        emus = real(protocol, twin)
        started.append(emus)
        return emus

    monkeypatch.setattr(emulate, "start_emulators", start)
    return started


def summary_of(result) -> dict:
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


def journal_rows(run_dir: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def assert_sources_safe(emus) -> None:
    """From the emulators' logs and front panels: every nudge at 0 A with its output off, every voltage at 0."""
    for name in ("k1", "k2"):
        emu = emus.emulators[name]
        log = [r.command for r in emu.log]
        levels = [c for c in log if c.upper().startswith(":SOUR:CURR:LEV ")]
        switches = [c for c in log if c.upper().startswith(":OUTP ")]
        assert any(float(c.split()[-1]) != 0.0 for c in levels), name  # it did nudge
        assert float(levels[-1].split()[-1]) == 0.0 and switches[-1].split()[-1] in ("0", "OFF"), name
        state = emu.output_state()
        assert not state["on"].any() and not state["level"].any(), name
    for name in ("qdac", "board"):
        assert not emus.emulators[name].output_state()["level"].any(), name


def test_fault_stops_the_run_safely_and_it_resumes_once_the_compliance_is_raised(tmp_path, emulators):
    protocol = write_protocol(tmp_path, 0.42, None)  # fault is the default
    result = run_cli("run", str(protocol), "--emulate", "--json", "--out", str(tmp_path / "runs"))
    assert result.returncode == 1, result.stderr
    summary = summary_of(result)
    run_dir = Path(summary["run_dir"])
    committed = summary["samples"]
    assert 0 < committed < 8  # some samples passed before the first that tripped
    line = [x for x in result.stderr.splitlines() if "compliance tripped" in x]
    assert len(line) == 1 and "Traceback" not in result.stderr
    assert "roles.nudges[" in line[0] and "reported its compliance tripped after a nudge write" in line[0]
    assert f"during training sample {committed + 1} of epoch " in line[0] and "which is not committed" in line[0]
    assert "raise instruments.k" in line[0] and "lower method.beta" in line[0] and "on_compliance: flag" in line[0]
    assert f"resume with: aeqlab resume {run_dir}" in line[0]
    assert summary["status"] == "failed" and summary["safe_state"] == "safe"
    assert_sources_safe(emulators[0])
    # the journal: the samples before the trip, none flagged (a fault keeps no tripped sample), the error
    assert journal_rows(run_dir, "SELECT seq, compliance_tripped FROM samples") == [
        (k, 0) for k in range(1, committed + 1)
    ]
    ((status, error, safe),) = journal_rows(run_dir, "SELECT exit_status, error, safe_state FROM sessions")
    assert (status, safe) == ("failed", "safe") and "compliance tripped" in error
    assert journal_rows(run_dir, "SELECT seq FROM checkpoint") == [(committed,)]

    # the fix the line names: a higher compliance; the run goes on from its last committed sample
    text = (run_dir / "protocol.yaml").read_text(encoding="utf-8").replace("compliance: 0.42", "compliance: 5.0")
    (run_dir / "protocol.yaml").write_text(text, encoding="utf-8")
    resumed = run_cli("resume", str(run_dir), "--force", "--json")
    assert resumed.returncode == 0, resumed.stderr
    after = summary_of(resumed)
    assert after["status"] == "completed" and after["samples"] == 8 and after["compliance_tripped_samples"] == 0
    assert_sources_safe(emulators[1])
    sessions = journal_rows(run_dir, "SELECT exit_status, first_sample, last_sample FROM sessions ORDER BY id")
    assert sessions == [("failed", 1, committed), ("completed", committed + 1, 8)]

    # the run's summary page names the fault and where it happened
    report = run_cli("report", str(run_dir), "--no-figures")
    assert report.returncode == 0, report.stderr
    page = (run_dir / "report" / "summary.md").read_text(encoding="utf-8")
    fault = [x for x in page.splitlines() if x.startswith("* **fault**")]
    assert len(fault) == 1 and f"session 1 stopped after sample {committed}: " in fault[0]
    assert f"during training sample {committed + 1} of epoch" in fault[0]
    assert (
        "* compliance tripped (a nudge source at its limit; samples kept under safety.on_compliance: flag): none"
        in page
    )


def test_flag_keeps_the_tripped_samples_and_the_journal_and_summary_name_them(tmp_path, emulators):
    protocol = write_protocol(tmp_path, 0.42, "flag")
    result = run_cli("run", str(protocol), "--emulate", "--json", "--out", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    run_dir = Path(summary["run_dir"])
    assert summary["status"] == "completed" and summary["samples"] == 8 and summary["safe_state"] == "safe"
    assert_sources_safe(emulators[0])
    rows = journal_rows(run_dir, "SELECT seq, epoch, compliance_tripped FROM samples ORDER BY seq")
    flagged = [seq for seq, _, tripped in rows if tripped == 1]
    assert [seq for seq, _, _ in rows] == list(range(1, 9)) and {t for _, _, t in rows} == {0, 1}
    assert 0 < len(flagged) < 8  # per sample: some tripped, others did not
    assert summary["compliance_tripped_samples"] == len(flagged)
    note = [x for x in result.stderr.splitlines() if "samples.compliance_tripped" in x]
    assert len(note) == 1 and note[0].startswith(f"note: {len(flagged)} samples kept with a nudge source")

    report = run_cli("report", str(run_dir), "--no-figures")
    assert report.returncode == 0, report.stderr
    page = (run_dir / "report" / "summary.md").read_text(encoding="utf-8")
    line = [x for x in page.splitlines() if x.startswith("* **compliance tripped")]
    epochs = sorted({epoch for _, epoch, tripped in rows if tripped == 1})
    assert len(line) == 1 and f": {len(flagged)} samples, in epoch(s) {', '.join(map(str, epochs))}; " in line[0]
    spans = line[0].rsplit("; samples ", 1)[1].split(", ")
    listed = []
    for span in spans:
        a, _, b = span.partition("–")
        listed += list(range(int(a), int(b or a) + 1))
    assert listed == flagged
    assert "**fault**" not in page


def test_a_journal_written_before_the_column_reports_not_recorded_and_gains_it_on_resume(tmp_path):
    import aeqlab

    folder = tmp_path / OLD_RUN.name
    shutil.copytree(OLD_RUN, folder)
    old_samples = journal_rows(folder, "SELECT count(*) FROM samples")[0][0]
    assert "compliance_tripped" not in {r[1] for r in journal_rows(folder, "PRAGMA table_info(samples)")}
    run = aeqlab.open_run(folder)
    assert len(run.samples()) == old_samples  # reading never changes the file
    report = run_cli("report", str(folder), "--no-figures", "--out", str(tmp_path / "before"))
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "before" / "summary.md").read_text(encoding="utf-8")
    assert "* compliance trips: not recorded for this run" in page
    assert "compliance_tripped" not in {r[1] for r in journal_rows(folder, "PRAGMA table_info(samples)")}

    done = aeqlab.resume(folder)  # the session that writes adds the column; older rows hold NULL
    assert done.summary["status"] == "completed" and done.summary["compliance_tripped_samples"] == 0
    rows = journal_rows(folder, "SELECT seq, compliance_tripped FROM samples ORDER BY seq")
    assert [t for _, t in rows[:old_samples]] == [None] * old_samples
    assert [t for _, t in rows[old_samples:]] == [0] * (len(rows) - old_samples) and len(rows) > old_samples
    report = run_cli("report", str(folder), "--no-figures", "--out", str(tmp_path / "after"))
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "after" / "summary.md").read_text(encoding="utf-8")
    span = f"1–{old_samples}" if old_samples > 1 else "1"
    assert f"safety.on_compliance: flag): none (not recorded for samples {span}, journaled before it was)" in page
