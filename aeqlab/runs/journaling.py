"""The journal as a subscriber of the run engine: every committed step becomes one journal transaction.

Also keeps the run folder's derived files current (``metrics.jsonl`` per epoch,
``params.npy`` at the end, ``params/epoch-NNNN.npy`` for ``schedule.checkpoint_every``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from aeqlab.engine import checkpoint as cpcodec
from aeqlab.engine.records import Checkpoint
from aeqlab.journal import Journal, StoredCheckpoint, pack, unpack
from aeqlab.runs.events import Closed, EpochDone, InitialEvaluation, Opened, ParamsSaved, Rehomed, RunEvent, SampleDone
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
    ) -> None:
        self.journal = journal
        self.store = store
        self.tracked = np.asarray(tracked, dtype=np.intp)
        self.backend_snapshot = backend_snapshot

    def _stored(self, cp: Checkpoint) -> StoredCheckpoint:
        scalars, blob = pack_checkpoint(cp)
        mem = cp.state.memory
        snap = self.backend_snapshot() if self.backend_snapshot is not None else None
        return StoredCheckpoint(cp.samples_done, cp.epoch, cp.done, scalars, blob, mem.knob_low, mem.knob_high, snap)

    def __call__(self, event: RunEvent) -> None:
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
                **ev.record.journal_fields(),
            }
            columns = getattr(ev.record, "JOURNAL_PHASES", PHASE_COLUMNS)
            for phase, seconds in ev.phase_seconds.items():
                if phase in columns:
                    row[columns[phase]] = seconds
            snapshot = (cp.state.targets, cp.state.knobs) if event.snapshot else None
            j.record_sample(row, self._stored(cp), snapshot)
        elif isinstance(event, EpochDone):
            m = event.metrics
            cp = m.checkpoint
            j.record_epoch(m.as_dict(), self._stored(cp), (cp.state.targets, cp.state.knobs))
            self.store.write_metrics([r for r in j.epochs() if r["epoch"] > 0])
        elif isinstance(event, InitialEvaluation):
            cp = event.evaluation.checkpoint
            j.record_initial(
                event.evaluation.accuracy, event.evaluation.loss, self._stored(cp), (cp.state.targets, cp.state.knobs)
            )
        elif isinstance(event, Opened):
            j.begin_session(event.mode, event.protocol_text)
        elif isinstance(event, Rehomed):
            j.record_rehome(event.iterations, event.residual)
        elif isinstance(event, ParamsSaved):
            self.store.write_params(event.theta, epoch=event.epoch)
        elif isinstance(event, Closed):
            try:
                j.end_session(event.status, event.error, event.safe_state)
            finally:
                if event.targets is not None:
                    self.store.write_params(event.targets)
