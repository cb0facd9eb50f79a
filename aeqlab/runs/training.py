"""A run from start to end of a session: run folder, journal, run engine and its subscribers, summary.

:func:`start` begins a run on an open backend, :func:`resume` continues one from its
last committed sample. Both return the summary (also written to ``summary.json``)
whatever the outcome: its ``status`` is ``completed``, ``interrupted`` (Ctrl-C, a stop
event or a callback) or ``failed`` (an instrument fault, a journal that cannot
write, another runtime error, in ``error``). Bad input (a protocol, a run folder, a
journal) raises :class:`aeqlab.errors.InputError` before anything moves.

This layer knows a backend only by what it offers (:class:`aeqlab.engine.backend.Backend`):
the composition roots that build one live in :mod:`aeqlab.backends`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.datasets import Split, load
from aeqlab.engine.backend import Backend
from aeqlab.engine.records import Checkpoint, r_squared
from aeqlab.engine.trainer import Trainer
from aeqlab.errors import InputError, ProtocolError
from aeqlab.journal import Header, Journal, tracked_indices, utc_now
from aeqlab.protocol import Protocol
from aeqlab.runs.engine import RunEngine, Subscriber
from aeqlab.runs.events import Closed, Opened
from aeqlab.runs.journaling import JournalRecorder, load_checkpoint
from aeqlab.runs.plans import training
from aeqlab.runs.store import RunStore, file_sha256, params_sha256, split_sha256, versions


@dataclass
class Session:
    """How a session is run: where its events go and what may stop it."""

    subscribers: Iterable[Subscriber] = ()
    stop_event: threading.Event | None = None
    handle_signals: bool = True
    notify: Callable[[str], None] | None = None


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
    if backend.stability is None:
        return None
    rho = backend.stability(x_train)
    if rho >= 1.0:
        eps = protocol.simulation.epsilon
        raise ProtocolError(
            f"the twin is unstable at its starting parameters: stability ratio rho = {rho:.2f} >= 1 "
            f"with epsilon weights {eps.weights}, biases {eps.biases}",
            where=f"{where}: simulation.epsilon",
            hint=f"scale every epsilon by {0.6 / rho:.2g} or less",
        )
    return rho


def start(
    protocol: Protocol,
    text: str,
    source: str,
    backend: Backend,
    *,
    epochs: int | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    snapshot_every: int | None = None,
    session: Session | None = None,
) -> dict[str, Any]:
    """Start a run of ``protocol`` on ``backend``; return its summary (also in the run folder).

    Parameters
    ----------
    protocol, text, source
        The protocol, its text as stored in the run folder, and where it came from.
    backend
        The open backend (its bench goes to its safe state at the end of the session).
    epochs, seed, out, snapshot_every
        Overrides of the schedule's epochs, the protocol's seed, ``output.dir`` and the
        snapshot cadence (default: 4 per epoch).
    session
        Subscribers, stop event, signal handling.
    """
    n_epochs = epochs or protocol.schedule.epochs
    run_seed = protocol.seed if seed is None else seed
    data = load(protocol.dataset)
    rho = preflight(protocol, backend, data.x_train, source)
    store = RunStore(out or protocol.output.dir, protocol.name)
    with store.lock():
        protocol_hash = store.write_protocol(text)
        kept = store.keep_data(protocol.dataset.path) if protocol.dataset.path else {"name": protocol.dataset.name}
        kept["split_sha256"] = split_sha256(data)
        started = utc_now()
        n_params = backend.bench.roles["params"].size
        per_epoch = len(data.y_train)
        header = Header(
            protocol_name=protocol.name,
            protocol_path=source,
            protocol_text=text,
            protocol_sha256=protocol_hash,
            backend=backend.kind,
            seed=run_seed,
            epochs=n_epochs,
            samples_per_epoch=per_epoch,
            n_params=n_params,
            tracked_params=tracked_indices(n_params),
            snapshot_every=snapshot_every or max(1, -(-per_epoch // 4)),
            versions=versions(),
            instruments=backend.bench.identities(),
            started=started,
            extra={"preflight_rho": rho, "task": protocol.dataset.task, "data": kept, **linear_baseline(data)},
        )
        store.write_json(
            "run.json",
            {
                "protocol": header.protocol_path,
                "protocol_sha256": protocol_hash,
                "backend": backend.kind,
                "seed": run_seed,
                "epochs": n_epochs,
                "versions": header.versions,
                "instruments": header.instruments,
                "started": started,
                "preflight_rho": rho,
                "data": kept,
            },
        )
        journal = Journal.create(store.journal_path, header, durable=backend.kind == "bench")
        try:
            return _session(store, journal, header, protocol, data, backend, None, "start", session or Session())
        finally:
            journal.close()


def _protocol_changes(store: RunStore, header: Header) -> list[str]:
    """Files whose text no longer matches the protocol the run began with."""
    changed = []
    for path in dict.fromkeys([store.path / "protocol.yaml", Path(header.protocol_path)]):
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() != header.protocol_sha256:
            changed.append(str(path))
    return changed


def resume(
    run_dir: str | Path,
    open_backend: Callable[[Protocol, str], Backend],
    *,
    force: bool = False,
    session: Session | None = None,
) -> dict[str, Any]:
    """Continue a run from its last committed sample, on a backend of the kind it used.

    Parameters
    ----------
    run_dir
        The run folder.
    open_backend
        ``open_backend(protocol, kind)``: the composition root that opens the backend.
    force
        Continue even though the protocol file changed since the run began.
    session
        Subscribers, stop event, signal handling.

    Raises
    ------
    aeqlab.errors.InputError
        Not a run folder, a damaged journal, a changed protocol (without ``force``), a
        complete run, or a folder another process is training in.
    """

    store = RunStore.existing(run_dir)
    with store.lock():
        journal = Journal.open(store.journal_path)
        try:
            header = journal.header()
            if journal.status() == "completed":
                raise InputError(
                    f"the run is already complete ({journal.last_sample()} samples)",
                    where=str(store.path),
                    hint="'aeqlab report' shows it; start a new run to train further",
                )
            saved = load_checkpoint(journal)
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
            protocol, text = _protocol_with_kept_data(store, header, source, changed)
            data = load(protocol.dataset)
            _check_split(header, data, store)
            backend = open_backend(protocol, header.backend)
            try:
                mode = "resume --force" if changed else "resume"
                return _session(
                    store,
                    journal,
                    header,
                    protocol,
                    data,
                    backend,
                    saved,
                    mode,
                    session or Session(),
                    protocol_text=text if changed else None,
                )
            finally:
                backend.close()
        finally:
            journal.close()


def _protocol_with_kept_data(store: RunStore, header: Header, source: Path, changed: list[str]):
    """The run's protocol, its data path pointed at the folder's copy (checked against its SHA-256)."""
    from aeqlab.protocol import load_protocol, parse_protocol

    kept = header.extra.get("data") or {}
    if "file" not in kept or changed:  # built-in data, a run from before data travelled, or a forced new protocol
        return load_protocol(source)
    copy = store.path / kept["file"]
    if not copy.is_file():
        raise InputError(
            "the run folder's copy of its data is missing",
            where=str(copy),
            hint=f"restore it (SHA-256 {kept['sha256'][:12]}…, copied from {kept.get('source', '?')})",
        )
    found = file_sha256(copy)
    if found != kept["sha256"]:
        raise InputError(
            f"the run folder's copy of its data was altered (SHA-256 {found[:12]}… is not the run's "
            f"{kept['sha256'][:12]}…)",
            where=str(copy),
            hint="restore the file the run trained on, or start a new run",
        )
    text = source.read_text(encoding="utf-8")
    return parse_protocol(_with_data_path(text, str(copy.resolve())), str(source)), text


def _with_data_path(text: str, path: str) -> str:
    """The protocol text with ``dataset.path`` replaced (comments and layout kept)."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    doc = yaml.load(text)
    doc["dataset"]["path"] = path
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


def _check_split(header: Header, data: Split, store: RunStore) -> None:
    """Refuse to resume on data that is not what the run trained on (a changed file or data set)."""
    expected = (header.extra.get("data") or {}).get("split_sha256")
    if expected is not None and split_sha256(data) != expected:
        raise InputError(
            "the data differ from those the run trained on (the split's SHA-256 changed)",
            where=str(store.path),
            hint="resume with the same data and aeqlab version, or start a new run",
        )


def _session(
    store: RunStore,
    journal: Journal,
    header: Header,
    protocol: Protocol,
    data: Split,
    backend: Backend,
    resume_from: tuple[Checkpoint, dict | None] | None,
    mode: str,
    session: Session,
    protocol_text: str | None = None,
) -> dict[str, Any]:
    """One session of the run engine, journaled; returns the summary."""
    trainer = Trainer(protocol, backend.bench, data, oracle=backend.oracle)
    engine = RunEngine(
        trainer, stop_event=session.stop_event, handle_signals=session.handle_signals, notify=session.notify
    )
    engine.subscribe(JournalRecorder(journal, store, np.asarray(header.tracked_params), backend.snapshot))
    for fn in session.subscribers:
        engine.subscribe(fn)
    checkpoint, rehome = None, True
    if resume_from is not None:
        checkpoint, snap = resume_from
        if snap is not None and backend.restore is not None:
            backend.restore(snap)
            rehome = False
        if session.notify is not None:
            session.notify(
                f"resuming {store.path} at sample {checkpoint.samples_done} "
                f"(epoch {checkpoint.epoch}, {'twin snapshot restored' if not rehome else 'homeostasis first'})"
            )
    done_before = checkpoint.samples_done if checkpoint else 0
    plan = training(
        trainer, header.epochs, header.seed, resume=checkpoint, rehome=rehome, snapshot_every=header.snapshot_every
    )
    opened = Opened(
        mode=mode,
        run_dir=str(store.path),
        epochs=header.epochs,
        samples_per_epoch=header.samples_per_epoch,
        samples_done=done_before,
        task=data.task,
        protocol_text=protocol_text,
    )
    closed = engine(plan, opened)
    summary = summarize(store, journal, header, closed, backend, trainer.samples_done - done_before)
    store.write_json("summary.json", summary)
    return summary


def summarize(
    store: RunStore, journal: Journal, header: Header, closed: Closed, backend: Backend, here: int
) -> dict[str, Any]:
    """The summary of a run so far, from its journal (a resumed run reports the whole run)."""
    rows = journal.epochs()
    initial = next((r for r in rows if r["epoch"] == 0), None)
    history = [r for r in rows if r["epoch"] > 0]
    tested = [r for r in history if r["test_accuracy"] is not None]
    wall = closed.wall_s
    summary: dict[str, Any] = {
        "run_dir": str(store.path),
        "status": closed.status,
        "wall_s": round(wall, 3),
        "protocol": header.protocol_name,
        "backend": header.backend,
        "epochs": header.epochs,
        "epochs_done": len(history),
        "samples": journal.last_sample(),
        "seed": header.seed,
        "sessions": len(journal.sessions()),
    }
    if initial is not None:
        summary["initial_test_accuracy"] = initial["test_accuracy"]
        summary["initial_test_loss"] = initial["test_loss"]
    if history:
        last = history[-1]
        summary["train_accuracy"] = last["train_accuracy"]
        if tested:
            summary["test_accuracy"] = tested[-1]["test_accuracy"]
            summary["test_loss"] = tested[-1]["test_loss"]
            summary["best_test_accuracy"] = max(r["test_accuracy"] for r in tested)
        summary["homeostasis_iterations_mean"] = float(np.mean([r["homeostasis_iterations"] for r in history]))
        summary["homeostasis_unconverged"] = int(sum(r["homeostasis_unconverged"] for r in history))
        summary["knob_saturations"] = int(sum(r["saturated"] for r in history))
    if closed.targets is not None:
        summary["params_sha256"] = params_sha256(closed.targets)  # of the last committed θ*
    elif (store.path / "params.npy").is_file():
        summary["params_sha256"] = params_sha256(np.load(store.path / "params.npy"))
    summary["samples_per_s"] = round(here / wall, 2) if wall > 0 and here else None
    summary["round_trips_per_sample"] = {k: round(v / max(here, 1), 2) for k, v in backend.bench.round_trips.items()}
    summary.update(backend.diagnostics())
    if header.extra.get("task") == "regression" and "test_accuracy" in summary:
        # a regression's accuracy columns hold R²; name it so, beside the loss
        summary["test_r2"] = summary["test_accuracy"]
        summary["train_r2"] = summary["train_accuracy"]
        if initial is not None:
            summary["initial_test_r2"] = summary["initial_test_accuracy"]
        if "linear_test_r2" in header.extra:
            summary["linear_test_r2"] = header.extra["linear_test_r2"]
    summary["safe_state"] = closed.safe_state
    if closed.error:
        summary["error"] = closed.error
    if closed.status != "completed":
        summary["exit_code"] = closed.exit_code
        if journal.has_checkpoint():
            summary["resume"] = f"aeqlab resume {store.path}"
        else:
            summary["resume"] = f"nothing to resume yet: start again with aeqlab run {header.protocol_path}"
    return summary


def linear_baseline(data: Split) -> dict[str, float]:
    """For a regression, the test R² of an ordinary least-squares fit (what a linear system could do)."""
    if data.task != "regression":
        return {}
    design = np.c_[data.x_train, np.ones(len(data.x_train))]
    coef, *_ = np.linalg.lstsq(design, data.targets(data.y_train), rcond=None)
    pred = np.c_[data.x_test, np.ones(len(data.x_test))] @ coef
    targets = data.targets(data.y_test)
    return {"linear_test_r2": r_squared(0.5 * float(np.sum((pred - targets) ** 2)), targets)}


def run_unjournaled(
    trainer: Trainer, epochs: int, seed: int, *, subscribers: Iterable[Subscriber] = (), handle_signals: bool = False
) -> tuple[Any, list[Any]]:
    """A whole run through the run engine, recorded nowhere (benchmarks, tests); raises what ended it.

    Returns the initial evaluation and the epochs' metrics. Every source still goes to
    its safe state on the way out.
    """
    from aeqlab.runs.events import EpochDone, InitialEvaluation

    initial: list[Any] = []
    history: list[Any] = []

    def collect(ev) -> None:
        if isinstance(ev, InitialEvaluation):
            initial.append(ev.evaluation)
        elif isinstance(ev, EpochDone):
            history.append(ev.metrics)

    engine = RunEngine(trainer, handle_signals=handle_signals)
    engine.subscribe(collect)
    for fn in subscribers:
        engine.subscribe(fn)
    closed = engine(training(trainer, epochs, seed), Opened(epochs=epochs, samples_per_epoch=len(trainer.data.y_train)))
    if closed.exception is not None:
        raise closed.exception
    return (initial[0] if initial else None), history
