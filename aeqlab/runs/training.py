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
from aeqlab.engine.records import Checkpoint
from aeqlab.engine.trainer import Trainer
from aeqlab.errors import InputError, ProtocolError
from aeqlab.journal import Header, Journal, tracked_indices, utc_now
from aeqlab.protocol import Protocol
from aeqlab.runs.data import check_split, protocol_with_kept_data
from aeqlab.runs.engine import RunEngine, Subscriber
from aeqlab.runs.events import Opened
from aeqlab.runs.journaling import JournalRecorder, load_checkpoint
from aeqlab.runs.plans import Origin, training
from aeqlab.runs.stability import StabilityMonitor, restore_monitor
from aeqlab.runs.store import RunStore, split_sha256, versions
from aeqlab.runs.summary import linear_baseline, summarize

FULL_CHECKPOINT_EVERY = 64  # samples between a twin's full checkpoints (a resume replays at most 63)


@dataclass
class Session:
    """How a session is run: where its events go and what may stop it."""

    subscribers: Iterable[Subscriber] = ()
    stop_event: threading.Event | None = None
    handle_signals: bool = True
    notify: Callable[[str], None] | None = None


def preflight(protocol: Protocol, backend: Backend, x_train: np.ndarray, where: str) -> float | None:
    """On a twin, refuse to start when the joint equilibrium is already unstable."""
    if backend.stability is None:
        return None
    rho = backend.stability(x_train)
    if rho >= 1.0:
        sim = protocol.simulation
        raise ProtocolError(
            f"the twin is unstable at its starting parameters: stability ratio rho = {rho:.2f} >= 1 "
            f"with {sim.coupling_text()}",
            where=f"{where}: {sim.epsilon_place}",
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
    return begin(
        protocol, text, source, backend, data, n_epochs, run_seed, out, snapshot_every, session, {"preflight_rho": rho}
    )


def begin(
    protocol: Protocol,
    text: str,
    source: str,
    backend: Backend,
    data: Split,
    n_epochs: int,
    run_seed: int,
    out: str | Path | None,
    snapshot_every: int | None,
    session: Session | None,
    extra: dict[str, Any],
    origin: Origin | None = None,
) -> dict[str, Any]:
    """A new run folder and journal (``extra`` goes into the header and ``run.json``), and its first session."""
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
            extra={**extra, "task": protocol.dataset.task, "data": kept, **linear_baseline(data)},
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
                **extra,
                "data": kept,
            },
        )
        journal = Journal.create(store.journal_path, header, durable=backend.kind == "bench")
        mode = "start" if origin is None else "from-best"
        try:
            return _session(
                store, journal, header, protocol, data, backend, None, mode, session or Session(), origin=origin
            )
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
            protocol, text = protocol_with_kept_data(store.path, header, source, changed)
            data = load(protocol.dataset)
            check_split(header, data, store)
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
    origin: Origin | None = None,
) -> dict[str, Any]:
    """One session of the run engine, journaled; returns the summary."""
    trainer = Trainer(protocol, backend.bench, data, oracle=backend.oracle)
    scale_epsilon = getattr(backend, "scale_epsilon", None)
    engine = RunEngine(
        trainer,
        stop_event=session.stop_event,
        handle_signals=session.handle_signals,
        notify=session.notify,
        # the twin's own ρ only on the twin itself: an emulated bench is read as a bench would be
        stability=backend.stability if backend.kind == "sim" else None,
        scale_epsilon=scale_epsilon,
        unstable_jumps=backend.unstable_jumps if backend.kind == "sim" else None,
    )
    # a twin replays what lies between full checkpoints; a bench carries one with every sample
    full_every = FULL_CHECKPOINT_EVERY if backend.snapshot is not None and backend.restore is not None else 1
    replay_until = journal.last_sample() if resume_from is not None and backend.restore is not None else 0
    engine.subscribe(
        JournalRecorder(
            journal,
            store,
            np.asarray(header.tracked_params),
            backend.snapshot,
            full_every=full_every,
            replay_until=replay_until,
        )
    )
    for fn in session.subscribers:
        engine.subscribe(fn)
    checkpoint, rehome = None, True
    if resume_from is not None:
        checkpoint, snap = resume_from
        behind = journal.last_sample() - checkpoint.samples_done
        if behind > 0 and (snap is None or backend.restore is None):
            raise InputError(
                f"the journal's last full checkpoint is {behind} samples before its last sample, and only a twin "
                "can replay them from it",
                where=str(store.journal_path),
                hint=f"resume on the backend the run used, {header.backend}, with its snapshot",
            )
        if snap is not None and backend.restore is not None:
            backend.restore(snap)
            rehome = False
        if session.notify is not None:
            session.notify(
                f"resuming {store.path} at sample {checkpoint.samples_done} "
                f"(epoch {checkpoint.epoch}, {'twin snapshot restored' if not rehome else 'homeostasis first'})"
            )
    done_before = checkpoint.samples_done if checkpoint else origin.samples_done if origin else 0
    parent = header.extra.get("parent")
    monitor = None
    if protocol.stability is not None:
        monitor = StabilityMonitor(
            protocol.stability, protocol.method.homeostasis.tolerance, scale_epsilon, quiet_until=replay_until
        )
        monitor.epsilon_scale = float((parent or {}).get("epsilon_scale", 1.0))  # a child run's ε, from its parent
        restore_monitor(monitor, store, journal, done_before)
    plan = training(
        trainer,
        header.epochs,
        header.seed,
        resume=checkpoint,
        rehome=rehome,
        snapshot_every=header.snapshot_every,
        monitor=monitor,
        origin=origin,
    )
    opened = Opened(
        mode=mode,
        run_dir=str(store.path),
        epochs=header.epochs,
        samples_per_epoch=header.samples_per_epoch,
        samples_done=done_before,
        task=data.task,
        protocol_text=protocol_text,
        parent=parent,
    )
    closed = engine(plan, opened)
    summary = summarize(store, journal, header, closed, backend, trainer.samples_done - done_before)
    try:
        store.write_json("summary.json", summary)
    except OSError as exc:  # a full disk: the journal holds everything; the summary is derived from it
        summary["summary_file"] = f"not written: {exc.strerror}"
    return summary


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
