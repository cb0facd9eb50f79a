"""Sweeps on Dask: every point as a plain run would give it, reruns that run nothing, a killed worker
survived, Ctrl-C then rerun, an existing scheduler. Points are xor runs of a few epochs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr
from conftest import ROOT, write_sweep

import aeqlab
from aeqlab.protocol import parse_protocol
from aeqlab.sweeps import sweep
from aeqlab.sweeps.loader import load_sweep
from aeqlab.sweeps.points import expand

EPOCHS = 40  # points long enough to be killed or interrupted mid-run (160 samples, about 2 s each)
LONG = f"epochs: {EPOCHS}\nseeds: [0, 1]\naxes:\n  method.beta: [0.5]\ntarget: {{value: 0.75}}\n"


def plain_runs(sweep_file: Path, out: Path) -> dict[str, str]:
    """Each point run by a plain aeqlab.train in this process: key -> params_sha256."""
    loaded = load_sweep(sweep_file)
    found = {}
    for p in expand(loaded):
        protocol = parse_protocol(p.text, str(loaded.protocol_path))
        with aeqlab.open_bench(protocol, backend="sim") as bench:
            run = aeqlab.train(protocol, bench, seed=p.seed, out=out)
        found[p.key] = run.summary["params_sha256"]
    return found


def committed(folder: Path) -> int:
    """Samples committed so far by the points' journals (read-only)."""
    total = 0
    for journal in folder.glob("points/*/*/journal.sqlite"):
        try:
            with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1) as db:
                total += db.execute("select count(*) from samples").fetchone()[0]
        except sqlite3.Error:
            pass
    return total


def points_mid_run(folder: Path, at_least: int = 5) -> int:
    """Points whose journal holds at least ``at_least`` samples and whose run has not completed."""
    n = 0
    for journal in folder.glob("points/*/*/journal.sqlite"):
        try:
            with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1) as db:
                done = db.execute("select count(*) from samples").fetchone()[0]
                status = db.execute("select exit_status from sessions order by id desc limit 1").fetchone()
        except sqlite3.Error:
            continue
        n += done >= at_least and (status is None or status[0] != "completed")
    return n


def wait_for(predicate, what: str, limit: float = 240.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def sessions(result) -> list[int]:
    return [len(aeqlab.open_run(p["run_dir"]).sessions()) for p in result.points]


@pytest.fixture(scope="session")  # with the group below: one reference for the two tests that use it
def long_sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    path = write_sweep(folder, LONG)
    return path, plain_runs(path, folder / "plain")


def test_every_point_runs_as_a_plain_run_would_and_a_rerun_runs_none(xor_sweep, tmp_path):
    result = sweep(xor_sweep, out=tmp_path / "s", workers=2)
    assert result.status == "completed"
    with xr.open_dataset(result.netcdf, engine="h5netcdf") as opened:
        ds = opened.load()
    assert dict(ds.sizes) == {"method.beta": 2, "seed": 2}
    assert list(ds["method.beta"].values) == [0.3, 0.6] and list(ds.seed.values) == [0, 1]
    assert (ds.status.values == "completed").all()
    assert ((ds.final_test >= 0) & (ds.final_test <= 1)).all() and (ds.best_test >= ds.final_test).all()
    assert (ds.cpu_s > 0).all() and (ds.rho_end < 1).all()
    reference = plain_runs(xor_sweep, tmp_path / "plain")
    assert {p["key"]: p["params_sha256"] for p in result.points} == reference
    assert [f.read_bytes()[:8] for f in result.figures] == [b"\x89PNG\r\n\x1a\n"]
    before = sessions(result)
    again = sweep(xor_sweep, out=tmp_path / "s", workers=2)
    assert [p["did"] for p in again.points] == ["skipped"] * 4
    assert sessions(again) == before  # nothing trained
    assert again.dataset.final_test.equals(result.dataset.final_test)


@pytest.mark.xdist_group("long_sweep")
def test_a_worker_killed_mid_point_is_survived_on_an_existing_scheduler(long_sweep, tmp_path):
    from distributed import Client, LocalCluster

    path, reference = long_sweep
    out = tmp_path / "s"
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        import threading

        box = {}
        runner = threading.Thread(
            target=lambda: box.update(r=sweep(path, out=out, scheduler=cluster.scheduler_address))
        )
        runner.start()
        # both workers mid-point, each point with samples committed: whichever is killed has a journal to resume
        wait_for(lambda: points_mid_run(out) >= 2, "two points under way")
        with Client(cluster) as client:
            busy = [w for w, keys in client.processing().items() if keys]
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
        os.kill(pid, signal.SIGKILL)
        runner.join(timeout=300)
    result = box["r"]
    assert result.status == "completed"
    assert {p["key"]: p["params_sha256"] for p in result.points} == reference
    assert max(sessions(result)) == 2  # the killed point resumed from its journal


@pytest.mark.xdist_group("long_sweep")
def test_ctrl_c_stops_the_sweep_with_130_and_a_rerun_completes_it_the_same(long_sweep, tmp_path):
    path, reference = long_sweep
    out = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aeqlab", "sweep", str(path), "--out", str(out), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: committed(out) >= 10, "the first samples")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "every point is resumable" in stderr
    assert 0 < committed(out) < 2 * EPOCHS * 4
    result = sweep(path, out=out)
    assert result.status == "completed"
    assert {p["key"]: p["params_sha256"] for p in result.points} == reference
    assert "resumed" in [p["did"] for p in result.points]


def test_a_local_cluster_never_has_more_workers_than_points_to_run(xor_sweep, tmp_path, monkeypatch):
    from aeqlab.sweeps import runner

    asked = []

    class Enough(Exception):
        pass

    def client(scheduler, workers):
        asked.append(workers)
        raise Enough

    monkeypatch.setattr(runner, "_client", client)
    with pytest.raises(Enough):
        sweep(xor_sweep, out=tmp_path / "s", workers=8)
    assert asked == [4]  # 2 β × 2 seeds to run, 8 asked


def test_a_script_without_its_main_guard_gets_the_fix_in_one_error_and_no_sweep_in_its_workers(xor_sweep, tmp_path):
    script = tmp_path / "study.py"
    out = tmp_path / "s"
    script.write_text(f"import aeqlab\naeqlab.sweep({str(xor_sweep)!r}, out={str(out)!r}, workers=1)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1
    assert 'if __name__ == "__main__":' in proc.stderr
    assert proc.stderr.count("Traceback") == 1  # the parent's error only: the worker stopped quietly
    assert "bootstrapping phase" not in proc.stderr
    assert not any(out.glob("points/*/journal.sqlite"))  # nothing trained, in the script or in a worker
