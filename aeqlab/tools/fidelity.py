"""Gradient fidelity from a run's journal: gradcheck at its parameter snapshots.

:func:`pick` finds the snapshot ``aeqlab gradcheck RUN_DIR --at S | --epoch E`` starts
from; :func:`over_run` checks the Aeqprop step against the twin's oracle at up to
``points`` snapshots spread over the run, each on the same first training examples, for
the report's "gradient fidelity over the run" figure. Both work on the protocol's twin:
a run without a ``simulation:`` section cannot be checked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aeqlab.datasets import load
from aeqlab.errors import AeqlabError, InputError, ProtocolError
from aeqlab.journal import Journal
from aeqlab.protocol import Protocol
from aeqlab.tools.gradcheck import Start, gradcheck

MAX_POINTS = 20  # snapshots checked for the figure, at most
MAX_STEPS = 5  # steps checked per snapshot, at most (the report's work is points × steps Aeqprop cycles)


@dataclass
class Snapshot:
    """One row of the journal's ``snapshots``: θ* (and the knobs, when journaled) after ``seq`` samples."""

    seq: int
    epoch: int
    theta: np.ndarray
    knobs: np.ndarray | None

    def start(self) -> Start:
        return Start(self.theta, self.knobs, f"the snapshot of sample {self.seq}")


def snapshots(journal: Journal) -> list[Snapshot]:
    """Every parameter snapshot of a journal, in sample order."""
    cols = {r["name"] for r in journal.rows("PRAGMA table_info(snapshots)")}
    knobs = ", knobs" if "knobs" in cols else ""
    out = []
    for r in journal.rows(f"SELECT seq, epoch, theta{knobs} FROM snapshots ORDER BY seq"):
        kb = r.get("knobs")
        out.append(
            Snapshot(
                int(r["seq"]),
                int(r["epoch"]),
                np.frombuffer(r["theta"], dtype="<f8").copy(),
                None if kb is None else np.frombuffer(kb, dtype="<f8").copy(),
            )
        )
    return out


def pick(journal: Journal, at: int | None = None, epoch: int | None = None) -> Snapshot:
    """The snapshot at sample ``at`` (the last one at or before it), at the end of ``epoch`` (0: before
    training), or the last one; a one-line error for a value the run does not have."""
    if at is not None and epoch is not None:
        raise InputError("--at and --epoch exclude each other", where="--at", hint="give one of them")
    snaps = snapshots(journal)
    if not snaps:
        raise InputError("the run's journal holds no parameter snapshot yet", where=str(journal.path))
    last = journal.last_sample()
    if at is not None:
        if not 0 <= at <= last:
            raise InputError(
                f"sample {at} is not in the run, which has samples 0–{last} (0: before training)",
                where="--at",
            )
        return [s for s in snaps if s.seq <= at][-1]
    if epoch is not None:
        ended = {int(r["epoch"]): int(r["samples"]) for r in journal.rows("SELECT epoch, samples FROM epochs")}
        if epoch not in ended:
            top = max(ended, default=0)
            raise InputError(
                f"epoch {epoch} has not ended in this run, which ended epochs 0–{top} (0: before training)",
                where="--epoch",
            )
        match = [s for s in snaps if s.seq == ended[epoch]]
        if not match:
            raise InputError(f"the journal has no snapshot at the end of epoch {epoch}", where=str(journal.path))
        return match[0]
    return snaps[-1]


def run_protocol(run_dir: Path, source: str | None, n_params: int) -> Protocol:
    """The protocol of a run: the file it started from when that is still there (its relative data
    paths resolve from it) and has the run's parameter count, else the run folder's copy."""
    from aeqlab.protocol import load_protocol

    candidates = [Path(source)] if source and Path(source).is_file() else []
    candidates.append(Path(run_dir) / "protocol.yaml")
    problem = "no protocol file"
    for path in candidates:
        try:
            protocol, _ = load_protocol(path)
        except AeqlabError as exc:
            problem = exc.one_line()
            continue
        if protocol.simulation is None:
            raise ProtocolError(
                "the run's protocol has no twin ('simulation:' section): the exact gradient cannot be computed",
                where=str(path),
            )
        if _n_params(protocol) == n_params:
            return protocol
        problem = f"{path}: has {_n_params(protocol)} parameters, the run {n_params}"
    raise InputError(f"the run's protocol does not load ({problem})", where=str(run_dir))


def _n_params(protocol: Protocol) -> int:
    return sum(ref.last - ref.first + 1 for ref in protocol.roles.params.refs())


def spread(n: int, points: int) -> np.ndarray:
    """At most ``points`` indices into ``n`` items, evenly spread, first and last included."""
    if n == 0 or points <= 0:
        return np.zeros(0, dtype=int)
    return np.unique(np.round(np.linspace(0, n - 1, min(points, n))).astype(int))


def over_run(
    protocol: Protocol, snaps: list[Snapshot], steps: int = 3, points: int = MAX_POINTS
) -> dict[str, np.ndarray]:
    """Relative error and cosines of the Aeqprop step against the oracle at snapshots spread over the run.

    At each of at most ``points`` (≤ ``MAX_POINTS``) snapshots, ``steps`` (≤ ``MAX_STEPS``)
    Aeqprop steps on the first training examples at the protocol's β, from that snapshot's
    θ*. Per point: the worst relative error, the lowest cosines, and every step's relative
    error; a snapshot the twin cannot take up gives NaN and its reason in ``notes``.
    """
    steps = max(1, min(steps, MAX_STEPS))
    chosen = [snaps[i] for i in spread(len(snaps), min(points, MAX_POINTS))]
    data = load(protocol.dataset)
    beta = protocol.method.beta
    per_step = np.full((len(chosen), steps), np.nan)
    worst, cos, cos_g = (np.full(len(chosen), np.nan) for _ in range(3))
    notes: list[str] = []
    t0 = time.perf_counter()
    for i, snap in enumerate(chosen):
        try:
            results = gradcheck(protocol, beta=beta, samples=steps, start=snap.start(), data=data)
        except AeqlabError as exc:
            notes.append(f"sample {snap.seq}: {exc.one_line()}")
            continue
        rel = np.array([r.relative_error for r in results])
        per_step[i, : rel.size] = rel
        worst[i] = rel.max()
        cos[i] = min(r.cosine for r in results)
        cos_g[i] = min(r.cosine_to_gradient for r in results)
    return {
        "sample": np.array([s.seq for s in chosen], dtype=float),
        "epoch": np.array([s.epoch for s in chosen], dtype=float),
        "relative_error": worst,
        "cosine": cos,
        "cosine_to_gradient": cos_g,
        "step_relative_error": per_step,
        "beta": np.full(len(chosen), beta),
        "steps": np.array([steps]),
        "seconds": np.array([time.perf_counter() - t0]),
        "notes": np.array(notes, dtype=object),
    }
