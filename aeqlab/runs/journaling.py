"""The journal as a subscriber of the run engine: every committed step becomes one journal transaction.

A sample's transaction holds its row; the full checkpoint (engine state and, on a twin,
the backend's snapshot: 0.4 MB on digits) goes with every ``full_every``-th sample and
every epoch's end. A twin is deterministic, so what lies between two full checkpoints
is recomputed on resume: the samples after the last full checkpoint are *replayed*
(trained again from it, each checked against its journaled row, not recorded twice),
and the run goes on bit for bit. A bench is not: there every sample carries the full
checkpoint (``full_every = 1``), and a resume re-homes to it.

Also keeps the run folder's derived files current (``metrics.jsonl`` per epoch,
``params.npy`` at the end, ``params/epoch-NNNN.npy`` for ``schedule.checkpoint_every``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import numpy as np

from aeqlab.engine import checkpoint as cpcodec
from aeqlab.engine.records import Checkpoint
from aeqlab.errors import InputError, StorageError
from aeqlab.journal import Journal, StoredCheckpoint, pack, unpack
from aeqlab.journal.codec import vec
from aeqlab.runs.events import Closed, EpochDone, InitialEvaluation, Opened, ParamsSaved, Rehomed, RunEvent, SampleDone
from aeqlab.runs.stability import BestParams, StabilityChecked
from aeqlab.runs.store import RunStore

PHASE_COLUMNS = {"free": "free_s", "homeostatic": "homeostatic_s", "clamped": "clamped_s"}


def pack_checkpoint(cp: Checkpoint) -> tuple[str, bytes]:
    """A checkpoint as the journal stores it: JSON scalars and one blob of arrays."""
    scalars, arrays = cpcodec.to_parts(cp)
    scalars["arrays"], blob = pack(arrays)
    return json.dumps(scalars), blob


def unpack_checkpoint(scalars_text: str, blob: bytes, low: np.ndarray, high: np.ndarray) -> Checkpoint:
    """Inverse of :func:`pack_checkpoint`, with the run's knob bounds."""
    s = json.loads(scalars_text)
    return cpcodec.from_parts(s, unpack(s["arrays"], blob), low, high)


def load_checkpoint(journal: Journal) -> tuple[Checkpoint, dict | None] | None:
    """The journal's last committed checkpoint and the backend snapshot saved with it (or None)."""
    stored = journal.checkpoint()
    if stored is None:
        return None
    return unpack_checkpoint(stored.scalars, stored.blob, stored.knob_low, stored.knob_high), stored.backend


class JournalRecorder:
    """Writes a run's events into its journal and run folder.

    Parameters
    ----------
    journal, store
        The run's journal and folder.
    tracked
        Indices of the parameters journaled with every sample.
    backend_snapshot
        The backend's own state (a twin's), saved with every checkpoint for an exact resume.
    """

    def __init__(
        self,
        journal: Journal,
        store: RunStore,
        tracked: np.ndarray,
        backend_snapshot: Callable[[], dict] | None = None,
        full_every: int = 1,
        replay_until: int = 0,
    ) -> None:
        self.journal = journal
        self.store = store
        self.tracked = np.asarray(tracked, dtype=np.intp)
        self.backend_snapshot = backend_snapshot
        self.full_every = max(1, int(full_every))
        self.replay_until = replay_until  # samples already journaled, recomputed from the last full checkpoint

    def _stored(self, cp: Checkpoint) -> StoredCheckpoint:
        scalars, blob = pack_checkpoint(cp)
        mem = cp.state.memory
        snap = self.backend_snapshot() if self.backend_snapshot is not None else None
        return StoredCheckpoint(cp.samples_done, cp.epoch, cp.done, scalars, blob, mem.knob_low, mem.knob_high, snap)

    def _check_replay(self, row: dict[str, Any]) -> None:
        """A replayed sample must be the one the journal holds (a twin is deterministic)."""
        stored = self.journal.sample_row(row["seq"])
        same = (
            stored is not None
            and stored["loss"] == row["loss"]
            and stored["example"] == row["example"]
            and stored["tracked"] == vec(row["tracked"])
        )
        if not same:
            raise InputError(
                f"replaying sample {row['seq']} from the last full checkpoint did not give the journaled sample",
                where=str(self.journal.path),
                hint="the backend is not deterministic; resume it as a bench would, without its snapshot",
            )

    def __call__(self, event: RunEvent) -> None:
        try:
            self._record(event)
        except (sqlite3.Error, OSError) as exc:
            what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise StorageError(
                f"the journal cannot be written: {what}",
                where=str(self.journal.path),
                hint=f"free space, then 'aeqlab resume {self.store.path}': every committed sample is kept",
            ) from None

    def _record(self, event: RunEvent) -> None:
        j = self.journal
        if isinstance(event, SampleDone):
            ev = event.sample
            cp = ev.checkpoint
            row: dict[str, Any] = {
                "seq": ev.samples_done,
                "epoch": ev.epoch,
                "position": ev.index,
                "example": ev.example,
                "label": ev.label,
                "target": ev.target,
                "sample_s": float(ev.seconds),
                "tracked": cp.state.targets[self.tracked],
                "compliance_tripped": None if ev.compliance_tripped is None else int(np.any(ev.compliance_tripped)),
                **ev.record.journal_fields(),
            }
            columns = getattr(ev.record, "JOURNAL_PHASES", PHASE_COLUMNS)
            for phase, seconds in ev.phase_seconds.items():
                if phase in columns:
                    row[columns[phase]] = seconds
            if ev.samples_done <= self.replay_until:
                event.replayed = True
                self._check_replay(row)
                return
            snapshot = (cp.state.targets, cp.state.knobs) if event.snapshot else None
            full = ev.samples_done % self.full_every == 0
            j.record_sample(row, self._stored(cp) if full else None, snapshot)
        elif isinstance(event, EpochDone):
            m = event.metrics
            cp = m.checkpoint
            j.record_epoch(m.as_dict(), self._stored(cp), (cp.state.targets, cp.state.knobs))
            self.store.write_metrics([r for r in j.epochs() if r["epoch"] > 0])
        elif isinstance(event, InitialEvaluation):
            cp = event.evaluation.checkpoint
            j.record_initial(
                event.evaluation.accuracy,
                event.evaluation.loss,
                self._stored(cp),
                (cp.state.targets, cp.state.knobs),
                samples=cp.samples_done,
            )
        elif isinstance(event, Opened):
            j.begin_session(event.mode, event.protocol_text, after=event.samples_done)
        elif isinstance(event, Rehomed):
            j.record_rehome(event.iterations, event.residual)
        elif isinstance(event, StabilityChecked):
            if event.samples_done <= self.replay_until:
                event.replayed = True  # journaled in the session that first ran it
                return
            row = {k: getattr(event, k) for k in ("epoch", "rho", "source", "threshold", "action", "beta")}
            row |= {"seq": event.samples_done, "epsilon_scale": event.epsilon_scale, "detail": event.detail}
            cp = event.checkpoint
            j.record_stability(row, self._stored(cp) if cp is not None else None)
        elif isinstance(event, BestParams):
            self.store.write_best(event.theta, event.epoch, event.samples_done, event.accuracy, event.loss)
        elif isinstance(event, ParamsSaved):
            self.store.write_params(event.theta, epoch=event.epoch)
        elif isinstance(event, Closed):
            try:
                j.end_session(event.status, event.error, event.safe_state)
            finally:
                if event.targets is not None:
                    self.store.write_params(event.targets)
