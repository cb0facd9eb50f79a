"""Ctrl-C and instrument faults: the sample in flight finishes, sources go safe, resume completes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import runhelpers
from runhelpers import EPOCHS, aeqlab, copy_protocol, resume_inprocess, run_inprocess, table

from aeqlab.runs.summary import exit_code


@pytest.fixture
def captured():
    """The backends the sessions of a test open (to look at their simulated instruments)."""
    runhelpers.OPENED.clear()
    return runhelpers.OPENED


def assert_safe(backend) -> None:
    for inst in backend.bench.instruments.values():
        assert any(rec.op == "safe_state" for rec in inst.log), inst.name
        state = inst.output_state()
        assert not state["on"].any() and not state["level"].any() and not state["setpoint"].any(), inst.name


def test_sigint_subprocess_exits_130_records_interrupted_and_resumes(tmp_path, reference):
    protocol = copy_protocol(tmp_path)
    out = tmp_path / "runs"
    # a real SIGINT to the process at its 1500th instrument message (in the middle of a sample)
    first = aeqlab("run", str(protocol), "--epochs", str(EPOCHS), "--out", str(out), "--json", hook="sigint@1500")
    assert first.returncode == 130
    (run_dir,) = out.iterdir()
    last = first.stderr.strip().splitlines()[-1]
    assert "interrupted" in last and f"aeqlab resume {run_dir}" in last
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["status"] == "interrupted" and summary["safe_state"] == "safe"
    sessions = table(run_dir / "journal.sqlite", "sessions", "id")
    assert sessions[-1]["exit_status"] == "interrupted" and sessions[-1]["safe_state"] == "safe"
    assert sessions[-1]["ended"] is not None
    committed = len(table(run_dir / "journal.sqlite", "samples", "seq"))
    assert 0 < committed == summary["samples"] < EPOCHS * 4
    done = aeqlab("resume", str(run_dir), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["params_sha256"] == reference[1]["params_sha256"]


def test_first_ctrl_c_finishes_the_sample_second_stops_at_once(tmp_path, monkeypatch, captured, reference):
    protocol = copy_protocol(tmp_path)
    first = run_inprocess(protocol, tmp_path / "runs", hook="sigint@1500")
    assert first["status"] == "interrupted" and exit_code(first) == 130
    assert first["error"].startswith("stopped after training sample")
    assert_safe(captured[-1])
    run_dir = first["run_dir"]
    # the first Ctrl-C is deferred: every message of the sample in flight was applied, and it was committed
    assert len(table(f"{run_dir}/journal.sqlite", "samples", "seq")) == first["samples"]
    second = resume_inprocess(run_dir, hook="sigint@500,sigint@501")
    assert second["status"] == "interrupted" and second["error"] == "stopped at once (second Ctrl-C)"
    assert_safe(captured[-1])
    done = resume_inprocess(run_dir)
    assert done["status"] == "completed" and done["params_sha256"] == reference[1]["params_sha256"]


def test_instrument_fault_goes_safe_exits_1_and_resumes(tmp_path, monkeypatch, captured, reference):
    protocol = copy_protocol(tmp_path)
    failed = run_inprocess(protocol, tmp_path / "runs", hook="fault@1200")
    assert failed["status"] == "failed" and exit_code(failed) == 1
    assert "injected fault" in failed["error"] and failed["resume"].startswith("aeqlab resume ")
    assert_safe(captured[-1])
    sessions = table(f"{failed['run_dir']}/journal.sqlite", "sessions", "id")
    assert sessions[-1]["exit_status"] == "failed" and "injected fault" in sessions[-1]["error"]
    # params.npy holds the last committed θ*, not the one of the sample the fault cut short
    last = table(f"{failed['run_dir']}/journal.sqlite", "samples", "seq")[-1]
    header = table(f"{failed['run_dir']}/journal.sqlite", "header", "id")[0]
    theta = np.load(f"{failed['run_dir']}/params.npy")
    assert theta[json.loads(header["tracked_params"])].tolist() == json.loads(last["tracked"])
    done = resume_inprocess(failed["run_dir"])
    assert done["params_sha256"] == reference[1]["params_sha256"]


def test_resume_on_a_bench_rehomes_to_the_checkpointed_targets(tmp_path, monkeypatch, captured):
    """Without a backend snapshot (a bench), homeostasis brings θ back to the checkpoint's θ* first."""
    protocol = copy_protocol(tmp_path)

    def bench_like(*args, **kwargs):
        backend = runhelpers._open_backend(*args, **kwargs)
        backend.snapshot = backend.restore = None
        return backend

    first = run_inprocess(protocol, tmp_path / "runs", hook="stop@1200", open_backend=bench_like)
    assert first["status"] == "interrupted"
    done = resume_inprocess(first["run_dir"], open_backend=bench_like)
    assert done["status"] == "completed"
    sessions = table(f"{first['run_dir']}/journal.sqlite", "sessions", "id")
    tol = 1e-6  # the protocol's homeostasis tolerance
    assert sessions[-1]["rehome_iterations"] > 0 and sessions[-1]["rehome_residual"] <= tol
    first_resumed = table(f"{first['run_dir']}/journal.sqlite", "samples", "seq")[first["samples"]]
    assert first_resumed["free_residual"] <= tol


def test_a_twin_replays_the_samples_after_its_last_full_checkpoint(tmp_path, reference):
    """Full checkpoints go with every 64th sample on a twin; a resume recomputes the rest, records nothing twice."""
    import runhelpers

    protocol = copy_protocol(tmp_path)
    first = run_inprocess(protocol, tmp_path / "runs", hook="stop@3000")
    journal = f"{first['run_dir']}/journal.sqlite"
    (cp,) = table(journal, "checkpoint", "id")
    assert first["samples"] > cp["seq"]  # samples beyond the last full checkpoint, to be replayed
    replayed = []
    session, remove = runhelpers._session(None)
    session.subscribers = [*session.subscribers, lambda ev: ev.kind == "sample" and replayed.append(ev.replayed)]
    from aeqlab.runs import training

    try:
        done = training.resume(first["run_dir"], runhelpers._open_backend, session=session)
    finally:
        remove()
    assert replayed[: first["samples"] - cp["seq"]] == [True] * (first["samples"] - cp["seq"])
    assert not any(replayed[first["samples"] - cp["seq"] :])
    seqs = [r["seq"] for r in table(journal, "samples", "seq")]
    assert seqs == list(range(1, EPOCHS * 4 + 1))  # each sample journaled once
    assert done["params_sha256"] == reference[1]["params_sha256"]
