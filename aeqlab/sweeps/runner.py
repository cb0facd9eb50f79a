"""Running a sweep: the plan, the Dask cluster, the points, Ctrl-C.

Sim and emulate points are Dask tasks: on a ``LocalCluster`` (worker processes, one
thread each, BLAS threads pinned to 1, everything on 127.0.0.1) unless a scheduler
address is given. Bench points never go to a worker: the client runs them one at a
time, in order. Finished points are read, not run; interrupted ones resume. A worker
that dies mid-point is survived: Dask runs the task again elsewhere and it resumes the
point's journal. Ctrl-C writes the sweep's stop file, which every task watches (the run
engine's stop event, never a signal: tasks run in threads); every running point stops after
the sample in flight, ends ``interrupted``, and a rerun resumes it.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aeqlab.errors import InputError
from aeqlab.sweeps.loader import Sweep
from aeqlab.sweeps.points import Point, shown
from aeqlab.sweeps.progress import Progress
from aeqlab.sweeps.worker import BLAS_ENV, execute, ignore_sigint, point_result, point_state, restore_sigint, run_point


@dataclass
class Outcome:
    """What a sweep did: every point's result (in point order) and how the sweep ended."""

    results: list[dict[str, Any]]
    status: str  # completed, interrupted, failed (some point failed)
    dashboard: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


def sweep_folder(sweep: Sweep, out: str | Path | None) -> Path:
    """The sweep's folder: ``out``, else the file's ``out``, else ``runs/sweeps/<name>`` (from the cwd)."""
    chosen = out or sweep.spec.out
    return Path(chosen) if chosen else Path(sweep.protocol.output.dir) / "sweeps" / sweep.spec.name


def task_of(point: Point, folder: Path, sweep: Sweep) -> dict[str, Any]:
    target = sweep.spec.target.value if sweep.spec.target else None
    return {
        "key": point.key,
        "dir": str((folder / "points" / point.key[:16]).resolve()),
        "text": point.text,
        "seed": point.seed,
        "backend": sweep.spec.backend,
        "target": target,
        "label": ", ".join(f"{k}={shown(v)}" for k, v in point.coords.items()) + f", seed {point.seed}",
    }


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def plan_lines(sweep: Sweep, points: list[Point], states: list[str], folder: Path, where: str) -> list[str]:
    """What the sweep will do, said before it starts."""
    spec = sweep.spec
    shape = (
        " × ".join(f"{len(v)} {k}" for k, v in spec.axes.items())
        if spec.random is None
        else f"{spec.random.samples} random draws (seed {spec.random.seed}) over {', '.join(spec.axes)}"
    )
    epochs = spec.epochs or sweep.protocol.schedule.epochs
    count = {s: states.count(s) for s in ("completed", "resumable", "new")}
    return [
        f"sweep {spec.name}: {len(points)} points ({shape} × {len(spec.seeds)} seeds), "
        f"{epochs} epochs each, backend {spec.backend}, base {sweep.protocol_path.name}",
        f"  where: {where}",
        f"  folder: {folder} ({count['completed']} finished: skipped; {count['resumable']} to resume; "
        f"{count['new']} to start)",
    ]


def _client(scheduler: str | None, workers: int | None) -> tuple[Any, ExitStack, str]:
    """A Dask client: to ``scheduler``, else to a new LocalCluster on 127.0.0.1."""
    import dask
    from distributed import Client, LocalCluster

    stack = ExitStack()
    stack.enter_context(
        dask.config.set({"distributed.worker.daemon": False, "distributed.scheduler.work-stealing": True})
    )
    if scheduler:
        try:
            client = stack.enter_context(Client(scheduler, timeout="10s"))
        except (OSError, TimeoutError) as exc:
            stack.close()
            raise InputError(
                f"cannot reach the Dask scheduler: {exc}",
                where=f"--scheduler {scheduler}",
                hint="start one ('dask scheduler') or leave --scheduler out for a local cluster",
            ) from None
        n = len(client.scheduler_info().get("workers", {}))
        return client, stack, f"the Dask scheduler at {scheduler} ({n} workers now)"
    n = workers or default_workers()
    try:
        import bokeh  # noqa: F401

        dashboard = "127.0.0.1:0"
    except ImportError:  # the dashboard is optional (aeqlab[sweep] brings it)
        dashboard = None
    try:
        cluster = stack.enter_context(
            LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=dashboard,
                env={**BLAS_ENV, **QUIET_WORKER_ENV},
                silence_logs=logging.CRITICAL,
            )
        )
    except RuntimeError as exc:  # a worker process that could not start (Dask says "Nanny failed to start")
        stack.close()
        raise InputError(
            f"the sweep's local Dask workers could not start ({' '.join(str(exc).split())[:120]})",
            where=_caller_script() or "aeqlab.sweep",
            hint='in a script, call aeqlab.sweep under `if __name__ == "__main__":`: workers import the script anew',
        ) from None
    client = stack.enter_context(Client(cluster))
    return client, stack, f"a LocalCluster of {n} worker processes × 1 thread (BLAS threads 1), on 127.0.0.1"


# a local worker does not sample its task's stack every 10 ms (Dask's statistical profiler, for the
# dashboard's profile page): on a machine with as many workers as cores it costs a point a few per cent
QUIET_WORKER_ENV = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}


def _caller_script() -> str | None:
    """The script run as ``__main__``, when there is one (not the console script, not a notebook)."""
    import sys

    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return str(path) if path and Path(path).suffix == ".py" else None


def in_worker_bootstrap() -> bool:
    """True while a freshly spawned process imports its parent's script (``__mp_main__``).

    A script that calls ``aeqlab.sweep`` at its top level, without the ``__main__`` guard, is imported
    anew by each worker Dask spawns; the sweep must not start again there.
    """
    import multiprocessing

    # the flag multiprocessing's own "bootstrapping phase" check reads (set only during that import)
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def run(
    sweep: Sweep,
    points: list[Point],
    folder: Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    stop: threading.Event | None = None,
    say: Callable[[str], None] = lambda _: None,
    progress: Progress | None = None,
) -> Outcome:
    """Run every point that is not finished; return every point's result."""
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [task_of(p, folder, sweep) for p in points]
    states = [point_state(Path(t["dir"])) for t in tasks]
    target = tasks[0]["target"] if tasks else None
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    for i, (t, s) in enumerate(zip(tasks, states)):
        if s == "completed":
            results[i] = {
                **point_result(Path(t["dir"]), target),
                "key": t["key"],
                "label": t["label"],
                "did": "skipped",
            }
    todo = [i for i, s in enumerate(states) if s != "completed"]
    scheduler = scheduler or sweep.spec.scheduler
    stop = stop or threading.Event()
    bench = sweep.spec.backend == "bench"
    if bench and scheduler:
        raise InputError(
            "bench points never run on a remote worker",
            where="--scheduler",
            hint="leave --scheduler out: the bench points run here, one at a time",
        )
    progress = progress or Progress(None)
    progress.start(len(tasks), done=len(tasks) - len(todo))
    if not todo:
        for line in plan_lines(sweep, points, states, folder, "nothing to run: every point is finished"):
            say(line)
        progress.stop()
        return _outcome(results, "completed", None)
    if bench:
        for line in plan_lines(
            sweep,
            points,
            states,
            folder,
            "bench: one point at a time, in order, in this process (never in parallel, never on a remote worker)",
        ):
            say(line)
        return _run_here(tasks, todo, results, stop, progress)
    # a local cluster never has more workers than points to run (an idle worker is a process for nothing)
    client, stack, where = _client(scheduler, min(workers or default_workers(), len(todo)))
    with stack:
        dashboard = client.dashboard_link if getattr(client, "dashboard_link", None) else None
        if dashboard and "127.0.0.1" not in dashboard and not scheduler:
            dashboard = None
        for line in plan_lines(sweep, points, states, folder, f"in parallel ({sweep.spec.backend}) on {where}"):
            say(line)
        if dashboard:
            say(f"  dashboard: {dashboard}")
        progress.dashboard = dashboard
        return _run_on(client, tasks, todo, results, stop, progress, dashboard)


def _outcome(results: list, status: str, dashboard: str | None) -> Outcome:
    done = [r for r in results if r is not None]
    if status == "completed" and any(r["status"] != "completed" for r in done):
        status = "failed"
    counts = {s: sum(1 for r in done if r["status"] == s) for s in ("completed", "interrupted", "failed")}
    filled = [r if r is not None else {"status": "pending"} for r in results]
    return Outcome(filled, status, dashboard, counts)


def _run_here(tasks, todo, results, stop, progress) -> Outcome:
    on_main = threading.current_thread() is threading.main_thread()
    progress.running_fn = lambda: 1
    try:
        for i in todo:
            results[i] = execute(tasks[i], stop, handle_signals=on_main)
            progress.finished(results[i])
            if results[i]["status"] == "interrupted" or stop.is_set():
                return _outcome(results, "interrupted", None)
    finally:
        progress.stop()
    return _outcome(results, "completed", None)


def _run_on(client, tasks, todo, results, stop, progress, dashboard) -> Outcome:
    from distributed import as_completed

    stop_file = Path(tasks[todo[0]]["dir"]).parents[1] / ".stop"  # <sweep>/.stop: every worker sees it
    stop_file.unlink(missing_ok=True)
    name = str(stop_file)
    stop_event = _StopFile(stop_file)
    try:
        client.run(ignore_sigint)
    except Exception:  # noqa: BLE001 - a worker that cannot: it may die of a Ctrl-C and its point resumes
        pass
    futures = {
        client.submit(
            run_point, tasks[i], name, key=f"point-{tasks[i]['key'][:16]}-{uuid.uuid4().hex[:6]}", retries=2, pure=False
        ): i
        for i in todo
    }
    index = {f.key: i for f, i in futures.items()}
    pending = set(futures)
    watcher = threading.Thread(target=_relay_stop, args=(stop, stop_event), daemon=True)
    watcher.start()
    progress.running_fn = lambda: min(len(pending), _worker_count(client))
    status = "completed"
    try:
        for future in _completed(as_completed(list(futures)), pending):
            i = index[future.key]
            results[i] = _result_of(future, tasks[i])
            progress.finished(results[i])
    except KeyboardInterrupt:
        status = "interrupted"
        progress.note("interrupted: each running point stops after its sample in flight (Ctrl-C again: at once)")
        stop.set()
        stop_event.set()
        try:
            for future in as_completed(list(pending)):
                pending.discard(future)
                i = index[future.key]
                results[i] = _result_of(future, tasks[i])
                progress.finished(results[i])
        except KeyboardInterrupt:
            client.cancel(list(pending))
    finally:
        progress.stop()
        stop_file.unlink(missing_ok=True)
        try:
            client.run(restore_sigint)  # the workers as they were: a user's scheduler outlives the sweep
        except Exception:  # noqa: BLE001 - a worker gone (killed, or the cluster closing) has nothing to restore
            pass
    if stop.is_set():
        status = "interrupted"
    return _outcome(results, status, dashboard)


def _completed(iterator, pending: set):
    """The futures as they finish (``pending`` keeps those still out)."""
    for future in iterator:
        pending.discard(future)
        yield future
        if not pending:
            return


def _result_of(future, task: dict[str, Any]) -> dict[str, Any]:
    if future.status == "finished":
        return future.result()
    if future.status == "cancelled":
        return {
            **point_result(Path(task["dir"]), task["target"]),
            "key": task["key"],
            "label": task["label"],
            "did": "cancelled",
        }
    try:
        exc = future.exception()
        text = f"{type(exc).__name__}: {exc}"
    except Exception as e:  # noqa: BLE001
        text = str(e)
    return {
        **point_result(Path(task["dir"]), task["target"]),
        "key": task["key"],
        "label": task["label"],
        "did": "failed",
        "status": "failed",
        "error": " ".join(text.split())[:300],
    }


class _StopFile:
    """The sweep's stop, as a file the workers watch."""

    def __init__(self, path: Path):
        self.path = path

    def set(self) -> None:
        self.path.touch()


def _worker_count(client) -> int:
    try:
        return len(client.scheduler_info().get("workers", {}))
    except Exception:  # noqa: BLE001 - a scheduler busy restarting a worker
        return 0


def _relay_stop(stop: threading.Event, event) -> None:
    """A stop asked of the sweep (the API's ``stop``) reaches every worker through the Dask event."""
    stop.wait()
    try:
        event.set()
    except Exception:  # noqa: BLE001 - the cluster already closed
        pass
