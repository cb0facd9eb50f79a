"""One training session from start to finish: backend, run folder, journal, progress, summary.

:func:`run_training` starts a run, :func:`resume_training` continues one from its
last committed sample. Both return the summary (also written to ``summary.json``)
whatever the outcome: its ``status`` is ``completed``, ``interrupted`` (Ctrl-C) or
``failed`` (an instrument fault or another runtime error, in ``error``); the caller
turns that into an exit code with :func:`exit_code`. Bad input (a protocol, a run
folder, a journal) raises :class:`aeqlab.errors.InputError` before anything moves.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from aeqlab.backends import Backend, open_backend
from aeqlab.datasets import Split, load
from aeqlab.engine.plan import Message
from aeqlab.engine.trainer import Checkpoint, EpochMetrics, Evaluation, SampleEvent, Trainer
from aeqlab.errors import AeqlabError, InputError, InstrumentError, Interrupted, ProtocolError
from aeqlab.journal import Header, Journal, tracked_indices, utc_now
from aeqlab.protocol import Protocol
from aeqlab.runs.interrupts import StopRequest, deferred_interrupts
from aeqlab.runs.progress import Progress
from aeqlab.runs.store import RunStore, params_sha256, versions

TEST_HOOK = "AEQLAB_TEST_HOOK"  # see _TestHook


@dataclass
class RunRequest:
    protocol_path: Path
    protocol: Protocol
    text: str
    kind: str
    epochs: int | None = None
    seed: int | None = None
    out: Path | None = None
    snapshot_every: int | None = None  # full θ* snapshot every N samples (default: 4 per epoch)
    realtime: bool = False  # twin only: settle waits and latencies take wall-clock time


def exit_code(summary: dict[str, Any]) -> int:
    """The CLI exit code of a session's summary: 0, 130 when interrupted, else the error's code."""
    status = summary.get("status")
    if status == "completed":
        return 0
    if status == "interrupted":
        return 130
    return int(summary.get("exit_code", 1))


def preflight(protocol: Protocol, backend: Backend, x_train: np.ndarray, where: str) -> float | None:
    """On a twin, refuse to start when the joint equilibrium is already unstable."""
    if backend.twin is None:
        return None
    from aeqlab.backends.sim import stability_preflight

    rho = stability_preflight(backend.twin, x_train)
    if rho >= 1.0:
        eps = protocol.simulation.epsilon
        raise ProtocolError(
            f"the twin is unstable at its starting parameters: stability ratio rho = {rho:.2f} >= 1 "
            f"with epsilon weights {eps.weights}, biases {eps.biases}",
            where=f"{where}: simulation.epsilon",
            hint=f"scale every epsilon by {0.6 / rho:.2g} or less",
        )
    return rho


def run_training(req: RunRequest, console: Console, stop: StopRequest | None = None) -> dict[str, Any]:
    """Start a run as the protocol says; return its summary (also written to the run folder).

    Parameters
    ----------
    req
        The protocol, its text, the backend kind and the command-line overrides.
    console
        Where progress and messages go.
    stop
        Set by the first Ctrl-C (installed here); pass one to stop the run from code.

    Returns
    -------
    dict
        The summary; ``status`` is ``completed``, ``interrupted`` or ``failed``.

    Raises
    ------
    aeqlab.errors.InputError
        Bad input found before training starts (nothing is journaled then).
    """
    protocol = req.protocol
    n_epochs = req.epochs or protocol.schedule.epochs
    run_seed = protocol.seed if req.seed is None else req.seed
    data = load(protocol.dataset)
    backend = open_backend(protocol, req.kind, **({"realtime": True} if req.realtime else {}))
    try:
        rho = preflight(protocol, backend, data.x_train, str(req.protocol_path))
        store = RunStore(req.out or protocol.output.dir, protocol.name)
        with store.lock():
            protocol_hash = store.write_protocol(req.text)
            started = utc_now()
            n_params = backend.bench.roles["params"].size
            per_epoch = len(data.y_train)
            header = Header(
                protocol_name=protocol.name,
                protocol_path=str(Path(req.protocol_path).resolve()),
                protocol_text=req.text,
                protocol_sha256=protocol_hash,
                backend=req.kind,
                seed=run_seed,
                epochs=n_epochs,
                samples_per_epoch=per_epoch,
                n_params=n_params,
                tracked_params=tracked_indices(n_params),
                snapshot_every=req.snapshot_every or max(1, -(-per_epoch // 4)),
                versions=versions(),
                instruments=backend.bench.identities(),
                started=started,
                extra={"preflight_rho": rho, "task": protocol.dataset.task, **linear_baseline(data)},
            )
            store.write_json(
                "run.json",
                {
                    "protocol": header.protocol_path,
                    "protocol_sha256": protocol_hash,
                    "backend": req.kind,
                    "seed": run_seed,
                    "epochs": n_epochs,
                    "versions": header.versions,
                    "instruments": header.instruments,
                    "started": started,
                    "preflight_rho": rho,
                },
            )
            journal = Journal.create(store.journal_path, header, durable=req.kind == "bench")
            try:
                return _session(store, journal, header, protocol, data, backend, None, "start", console, stop)
            finally:
                journal.close()
    finally:
        _close(backend)


def _protocol_changes(store: RunStore, header: Header) -> list[str]:
    """Files whose text no longer matches the protocol the run began with."""
    changed = []
    for path in dict.fromkeys([store.path / "protocol.yaml", Path(header.protocol_path)]):
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() != header.protocol_sha256:
            changed.append(str(path))
    return changed


def resume_training(
    run_dir: Path, console: Console, force: bool = False, stop: StopRequest | None = None
) -> dict[str, Any]:
    """Continue a run from its last committed sample, on the backend it used.

    Parameters
    ----------
    run_dir
        The run folder.
    console
        Where progress and messages go.
    force
        Continue even though the protocol file changed since the run began.
    stop
        As for :func:`run_training`.

    Raises
    ------
    aeqlab.errors.InputError
        Not a run folder, a damaged journal, a changed protocol (without ``force``), a
        complete run, or a folder another process is training in.
    """
    from aeqlab.protocol import load_protocol

    store = RunStore.existing(run_dir)
    with store.lock():
        journal = Journal.open(store.journal_path)
        try:
            header = journal.header()
            status = journal.status()
            if status == "completed":
                raise InputError(
                    f"the run is already complete ({journal.last_sample()} samples)",
                    where=str(store.path),
                    hint="'aeqlab report' shows it; start a new run to train further",
                )
            saved = journal.checkpoint()
            if saved is None:
                raise InputError(
                    "the run stopped before its first checkpoint; there is nothing to resume",
                    where=str(store.journal_path),
                    hint="start the run again with 'aeqlab run'",
                )
            changed = _protocol_changes(store, header)
            source = store.path / "protocol.yaml"
            if changed and not force:
                raise InputError(
                    "the protocol changed since the run began (SHA-256 differs from the journal's)",
                    where=changed[0],
                    hint="restore the file, or add --force to continue with the changed protocol",
                )
            if changed:
                source = Path(changed[-1])
            elif not source.is_file():
                source.write_text(header.protocol_text, encoding="utf-8")
            protocol, text = load_protocol(source)
            data = load(protocol.dataset)
            backend = open_backend(protocol, header.backend)
            try:
                checkpoint, snap = saved
                kind = "resume --force" if changed else "resume"
                return _session(
                    store,
                    journal,
                    header,
                    protocol,
                    data,
                    backend,
                    (checkpoint, snap),
                    kind,
                    console,
                    stop,
                    protocol_text=text if changed else None,
                )
            finally:
                _close(backend)
        finally:
            journal.close()


def _close(backend: Backend) -> None:
    """Sources safe (again: also when training never started, e.g. a refused protocol), then close."""
    try:
        backend.bench.safe_state()
    finally:
        backend.close()


class _TestHook:
    """A target in front of the bench for tests: after the N-th message of this process, act.

    ``AEQLAB_TEST_HOOK`` holds comma-separated ``ACTION@N``: ``kill`` (SIGKILL to this
    process), ``sigint`` (a real SIGINT to this process), ``fault`` (an
    :class:`InstrumentError` from the instrument), ``stop`` (a stop request).
    """

    def __init__(self, bench: Any, spec: str, stop: StopRequest):
        self.bench, self.stop, self.count = bench, stop, 0
        self.actions: dict[int, list[str]] = {}
        for item in spec.split(","):
            action, _, n = item.strip().partition("@")
            self.actions.setdefault(int(n), []).append(action)

    def apply(self, msg: Message) -> Any:
        self.count += 1
        for action in self.actions.get(self.count, []):
            if action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif action == "sigint":
                os.kill(os.getpid(), signal.SIGINT)
            elif action == "fault":
                raise InstrumentError("injected fault (test hook)", where="test hook")
            elif action == "stop":
                self.stop.request("test hook")
        return self.bench.apply(msg)


def _session(
    store: RunStore,
    journal: Journal,
    header: Header,
    protocol: Protocol,
    data: Split,
    backend: Backend,
    resume: tuple[Checkpoint, dict | None] | None,
    kind: str,
    console: Console,
    stop: StopRequest | None,
    protocol_text: str | None = None,
) -> dict[str, Any]:
    """Train (from the start or a checkpoint), journaling every step; always ends the session."""
    stop = stop or StopRequest()
    tracked = np.asarray(header.tracked_params, dtype=np.intp)
    every = header.snapshot_every
    snapshot = backend.snapshot

    def backend_state() -> dict | None:
        return snapshot() if snapshot is not None else None

    committed: dict[str, np.ndarray] = {}  # θ* of the last committed checkpoint

    def on_sample(ev: SampleEvent) -> None:
        journal.record_sample(ev, tracked, backend_state(), ev.samples_done % every == 0)
        committed["targets"] = ev.checkpoint.state.targets.copy()
        progress.sample(ev)

    def on_epoch(m: EpochMetrics) -> None:
        journal.record_epoch(m, backend_state())
        committed["targets"] = m.checkpoint.state.targets.copy()
        store.write_metrics([r for r in journal.epochs() if r["epoch"] > 0])
        progress.epoch(m)

    def on_evaluation(ev: Evaluation) -> None:
        journal.record_initial(ev, backend_state())
        committed["targets"] = ev.checkpoint.state.targets.copy()

    hook = os.environ.get(TEST_HOOK)
    trainer = Trainer(
        protocol,
        backend.bench,
        data,
        on_sample=on_sample,
        on_epoch=on_epoch,
        on_evaluation=on_evaluation,
        stop=stop,
        target=_TestHook(backend.bench, hook, stop) if hook else None,
        oracle=backend.oracle,
    )
    checkpoint, rehome = None, True
    if resume is not None:
        checkpoint, snap = resume
        committed["targets"] = checkpoint.state.targets.copy()
        if snap is not None and backend.restore is not None:
            backend.restore(snap)
            rehome = False
    journal.begin_session(kind, protocol_text)
    done_before = checkpoint.samples_done if checkpoint else 0
    progress = Progress(console, header.epochs, header.samples_per_epoch, start=done_before)
    status, error, code = "failed", None, 1
    t0 = time.perf_counter()
    try:
        with deferred_interrupts(stop, notify=lambda msg: console.print(msg)), progress:
            if checkpoint is not None:
                console.print(
                    f"resuming {store.path} at sample {done_before} "
                    f"(epoch {checkpoint.epoch}, {'twin snapshot restored' if not rehome else 'homeostasis first'})"
                )
            trainer.run(header.epochs, header.seed, resume=checkpoint, rehome=rehome)
        status, code = "completed", 0
    except (Interrupted, KeyboardInterrupt) as exc:
        status, code = "interrupted", 130
        error = exc.one_line() if isinstance(exc, AeqlabError) else "stopped at once (second Ctrl-C)"
    except AeqlabError as exc:
        error, code = exc.one_line(), exc.exit_code
    except Exception as exc:  # noqa: BLE001 - recorded in the journal, then reported as one line
        error = f"{type(exc).__name__}: {exc}"
    finally:
        wall = time.perf_counter() - t0
        failures = trainer.safe_state_failures
        safe = "ok" if failures == [] else ("; ".join(failures) if failures else "unknown")
        if trainer.rehome_result is not None:
            journal.record_rehome(trainer.rehome_result.iterations, trainer.rehome_result.residual)
        journal.end_session(status, error, safe)
        if "targets" in committed:
            store.write_params(committed["targets"])
    here = trainer.samples_done - done_before
    summary = _summary(store, journal, header, committed.get("targets"), backend, status, wall, here)
    summary["safe_state"] = safe
    if error:
        summary["error"] = error
    if status != "completed":
        summary["exit_code"] = code
        if journal.has_checkpoint():
            summary["resume"] = f"aeqlab resume {store.path}"
        else:
            summary["resume"] = f"nothing to resume yet: start again with aeqlab run {header.protocol_path}"
    store.write_json("summary.json", summary)
    if status == "completed":
        metric = "R²" if "test_r2" in summary else "accuracy"
        console.print(
            f"done: test {metric} {summary['initial_test_accuracy']:.3f} -> {summary['test_accuracy']:.3f}, "
            f"{summary['samples']} samples in {wall:.1f} s; run folder {store.path}"
        )
        flagged = {
            "samples whose homeostasis did not reach its tolerance": summary.get("homeostasis_unconverged", 0),
            "samples with a knob held at its limit": summary.get("knob_saturations", 0),
            "jumps of the twin from unstable states": summary.get("twin_unstable_jumps", 0),
        }
        for what, count in flagged.items():
            if count:
                console.print(f"[yellow]note:[/yellow] {count} {what} (journaled per sample; see aeqlab report)")
    return summary


def linear_baseline(data) -> dict[str, float]:
    """For a regression, the test R² of an ordinary least-squares fit (what a linear system could do)."""
    if data.task != "regression":
        return {}
    from aeqlab.engine.trainer import r_squared

    design = np.c_[data.x_train, np.ones(len(data.x_train))]
    coef, *_ = np.linalg.lstsq(design, data.targets(data.y_train), rcond=None)
    pred = np.c_[data.x_test, np.ones(len(data.x_test))] @ coef
    targets = data.targets(data.y_test)
    return {"linear_test_r2": r_squared(0.5 * float(np.sum((pred - targets) ** 2)), targets)}


def _summary(
    store: RunStore,
    journal: Journal,
    header: Header,
    targets: np.ndarray | None,
    backend: Backend,
    status: str,
    wall: float,
    here: int,
) -> dict[str, Any]:
    """The summary of a run so far, from its journal (so a resumed run reports the whole run)."""
    rows = journal.epochs()
    initial = next((r for r in rows if r["epoch"] == 0), None)
    history = [r for r in rows if r["epoch"] > 0]
    samples = journal.last_sample()
    summary: dict[str, Any] = {
        "run_dir": str(store.path),
        "status": status,
        "wall_s": round(wall, 3),
        "protocol": header.protocol_name,
        "backend": header.backend,
        "epochs": header.epochs,
        "epochs_done": len(history),
        "samples": samples,
        "seed": header.seed,
        "sessions": len(journal.sessions()),
    }
    if initial is not None:
        summary["initial_test_accuracy"] = initial["test_accuracy"]
        summary["initial_test_loss"] = initial["test_loss"]
    if history:
        last = history[-1]
        summary.update(
            {
                "train_accuracy": last["train_accuracy"],
                "test_accuracy": last["test_accuracy"],
                "test_loss": last["test_loss"],
                "best_test_accuracy": max(r["test_accuracy"] for r in history),
                "homeostasis_iterations_mean": float(np.mean([r["homeostasis_iterations"] for r in history])),
                "homeostasis_unconverged": int(sum(r["homeostasis_unconverged"] for r in history)),
                "knob_saturations": int(sum(r["saturated"] for r in history)),
            }
        )
    if targets is not None:
        summary["params_sha256"] = params_sha256(targets)  # of the last committed θ*
    summary["samples_per_s"] = round(here / wall, 2) if wall > 0 and here else None
    summary["round_trips_per_sample"] = {k: round(v / max(here, 1), 2) for k, v in backend.bench.round_trips.items()}
    summary.update(backend.diagnostics())
    if header.extra.get("task") == "regression" and history:
        # a regression's accuracy columns hold R²; name it so, beside the loss
        summary["test_r2"] = summary["test_accuracy"]
        summary["train_r2"] = summary["train_accuracy"]
        if initial is not None:
            summary["initial_test_r2"] = summary["initial_test_accuracy"]
        if "linear_test_r2" in header.extra:
            summary["linear_test_r2"] = header.extra["linear_test_r2"]
    return summary
