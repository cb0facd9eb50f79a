"""One point, wherever it runs (a Dask worker, or the client for bench points): start, resume or skip.

A point's folder ``<sweep>/points/<key>/`` holds its protocol (``protocol.yaml``) and
its run folder (a normal one, from the run engine). :func:`run_point` finds what is
there: a completed run is only read; an interrupted or killed one is resumed from its
journal (no sample trained twice); one that stopped before its first checkpoint is
started again. Wall and CPU time add up over the sessions in ``timing.json``. The run
stops through the run engine's stop event, never a signal: on a worker the task runs
in a thread.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.errors import AeqlabError
from aeqlab.journal import Journal
from aeqlab.signals import put_back

BLAS_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def find_run(point_dir: Path) -> Path | None:
    """The point's run folder (the newest that has a journal), or None."""
    runs = sorted(p.parent for p in point_dir.glob("*/journal.sqlite"))
    return runs[-1] if runs else None


def journal_state(run_dir: Path) -> str:
    """``completed``, ``resumable`` or ``empty`` (nothing committed to resume from)."""
    try:
        journal = Journal.open(run_dir / "journal.sqlite")
    except AeqlabError:
        return "empty"
    try:
        if journal.status() == "completed":
            return "completed"
        return "resumable" if journal.has_checkpoint() else "empty"
    finally:
        journal.close()


def point_state(point_dir: Path) -> str:
    """``completed``, ``resumable`` or ``new``."""
    run = find_run(point_dir)
    if run is None:
        return "new"
    state = journal_state(run)
    return "new" if state == "empty" else state


def _rho_end(run_dir: Path, protocol) -> float:
    """ρ at the last committed parameters, on a twin restored from the journal's snapshot (NaN without one)."""
    from aeqlab.backends import open_backend
    from aeqlab.datasets import load
    from aeqlab.runs.journaling import load_checkpoint

    journal = Journal.open(run_dir / "journal.sqlite")
    try:
        if journal.header().backend != "sim":
            return float("nan")
        saved = load_checkpoint(journal)
    finally:
        journal.close()
    if saved is None or saved[1] is None:
        return float("nan")
    backend = open_backend(protocol, "sim")
    try:
        if backend.restore is None or backend.stability is None:
            return float("nan")
        backend.restore(saved[1])
        return float(backend.stability(load(protocol.dataset).x_train))
    finally:
        backend.close()


def point_result(point_dir: Path, target: float | None) -> dict[str, Any]:
    """What the sweep's results hold of a point, read from its folder."""
    from aeqlab.runs.run import Run

    out: dict[str, Any] = {"status": "pending", "run_dir": None}
    run_dir = find_run(point_dir)
    timing = _timing(point_dir)
    out.update(wall_s=timing["wall_s"], cpu_s=timing["cpu_s"], sessions=timing["sessions"])
    if run_dir is None:
        return out
    run = Run(run_dir)
    summary = run.summary
    out["run_dir"] = str(run_dir)
    out["status"] = summary.get("status", "pending")
    out["params_sha256"] = summary.get("params_sha256")
    out["error"] = summary.get("error")
    # the journal's rows as they are, not Run.epochs: a worker process need not import pandas for this
    journal = Journal.open_live(run_dir / "journal.sqlite")
    try:
        rows = journal.epochs()
    finally:
        journal.close()
    tested = [(int(r["epoch"]), float(r["test_accuracy"])) for r in rows if r.get("test_accuracy") is not None]
    tested = [(e, a) for e, a in tested if a == a]  # NaN: not tested either
    trained = [a for e, a in tested if e > 0]
    out["final_test"] = trained[-1] if trained else float("nan")
    out["best_test"] = max(trained) if trained else float("nan")
    out["samples_to_target"] = float("nan")
    reached = [e for e, a in tested if target is not None and a >= target]
    if reached:
        out["samples_to_target"] = float(reached[0] * run.header.samples_per_epoch)
    out["rho_end"] = timing.get("rho_end", float("nan"))
    return out


def _timing(point_dir: Path) -> dict[str, Any]:
    f = point_dir / "timing.json"
    if f.is_file():
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except ValueError:
            pass
    return {"wall_s": 0.0, "cpu_s": 0.0, "sessions": 0}


def _add_timing(point_dir: Path, wall: float, cpu: float, **extra: Any) -> None:
    t = _timing(point_dir)
    t.update(wall_s=t["wall_s"] + wall, cpu_s=t["cpu_s"] + cpu, sessions=t["sessions"] + 1, **extra)
    tmp = point_dir / "timing.json.tmp"
    tmp.write_text(json.dumps(t), encoding="utf-8")
    tmp.replace(point_dir / "timing.json")


def execute(task: dict[str, Any], stop: threading.Event, handle_signals: bool = False) -> dict[str, Any]:
    """Run one point to its end (or until ``stop``); return :func:`point_result` plus what this call did."""
    from aeqlab.protocol import parse_protocol
    from aeqlab.runs import training

    point_dir = Path(task["dir"])
    point_dir.mkdir(parents=True, exist_ok=True)
    source = point_dir / "protocol.yaml"
    if not source.is_file() or source.read_text(encoding="utf-8") != task["text"]:
        source.write_text(task["text"], encoding="utf-8")
    state = point_state(point_dir)
    did = "skipped" if state == "completed" else "stopped before starting"
    if state != "completed" and not stop.is_set():
        protocol = parse_protocol(task["text"], str(source))
        session = training.Session((), stop, handle_signals, None)
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        try:
            did = _train(task, state, protocol, point_dir, source, session)
        except AeqlabError as exc:  # bad input found only here (an unstable twin...): a failed point, not a crash
            _add_timing(point_dir, time.perf_counter() - wall0, time.thread_time() - cpu0)
            return {
                **point_result(point_dir, task.get("target")),
                "key": task["key"],
                "label": task.get("label"),
                "did": "failed",
                "status": "failed",
                "error": exc.one_line(),
            }
        run_dir = find_run(point_dir)
        rho = _rho_end(run_dir, protocol) if run_dir and journal_state(run_dir) == "completed" else np.nan
        _add_timing(point_dir, time.perf_counter() - wall0, time.thread_time() - cpu0, rho_end=rho)
    result = point_result(point_dir, task.get("target"))
    return {**result, "key": task["key"], "label": task.get("label"), "did": did}


def _train(task: dict[str, Any], state: str, protocol, point_dir: Path, source: Path, session) -> str:
    from threadpoolctl import threadpool_limits

    from aeqlab.backends import open_backend
    from aeqlab.runs import training

    with threadpool_limits(limits=1, user_api="blas"):
        if state == "resumable":
            did = "resumed"
            training.resume(find_run(point_dir), open_backend, session=session)
        else:
            for old in point_dir.iterdir():  # a run that committed nothing: start it again
                if old.is_dir():
                    shutil.rmtree(old)
            did = "started"
            backend = open_backend(protocol, task["backend"])
            try:
                training.start(
                    protocol, task["text"], str(source), backend, seed=task["seed"], out=point_dir, session=session
                )
            finally:
                backend.close()
    return did


class _StopWatcher:
    """Sets a local stop event when the sweep's stop file appears (the sweep's folder is shared by its workers)."""

    def __init__(self, stop_file: str | None, stop: threading.Event):
        self.stop, self.done = stop, threading.Event()
        self.thread = None
        if stop_file is None:
            return
        self.path = Path(stop_file)
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.done.wait(0.2):
            if self.path.exists():
                self.stop.set()
                return

    def close(self) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join(timeout=2)


def run_point(task: dict[str, Any], stop_file: str | None = None) -> dict[str, Any]:
    """The Dask task of a point: :func:`execute`, stopped when the sweep's stop file appears."""
    stop = threading.Event()
    watcher = _StopWatcher(stop_file, stop)
    try:
        return execute(task, stop)
    finally:
        watcher.close()


_PREVIOUS_SIGINT: list = []  # the worker's own handler while a sweep runs on it


def ignore_sigint() -> None:
    """On a worker process: Ctrl-C in the terminal reaches the whole process group; the client stops the
    points through their stop event, so the workers let it pass (a worker killed by it would only resume).

    Only a worker's main thread can change its handler: a worker thread inside the client's own
    process (an in-process cluster, a notebook) is left alone. :func:`restore_sigint` puts it back.
    """
    if threading.current_thread() is threading.main_thread() and not _PREVIOUS_SIGINT:
        _PREVIOUS_SIGINT.append(signal.signal(signal.SIGINT, signal.SIG_IGN))


def restore_sigint() -> None:
    """The worker's SIGINT handler as it was before the sweep (a user's scheduler keeps its workers as found)."""
    if threading.current_thread() is threading.main_thread() and _PREVIOUS_SIGINT:
        put_back(signal.SIGINT, _PREVIOUS_SIGINT.pop())
