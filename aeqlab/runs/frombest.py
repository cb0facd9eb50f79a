"""``resume --from-best``: a child run that trains on from another run's best parameters.

The parent's folder is only read: its journal stays the record of what it did. The
child is a new run folder with the parent's protocol (the folder's copy, on the
folder's copy of the data), seed and backend kind. It takes the bench as found, sets
the knobs the parent's journal holds for the best sample, brings the parameters to
``best.npz``'s θ* by homeostasis, evaluates them (its epoch 0, numbered at the best
sample), and trains from the epoch after the best one, in the order the seed gives
that epoch, with the β the parent would have used there (its rollbacks' lowered β
and, on a twin, ε included). Its samples are numbered on from the best sample; its
header, ``run.json``, opening session and summary name the parent and the best
(``parent``). Like any run it is journaled and resumes (bit for bit on a twin).
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.datasets import load
from aeqlab.engine.backend import Backend
from aeqlab.errors import InputError
from aeqlab.journal import Header, Journal
from aeqlab.journal.check import check_file
from aeqlab.protocol import Protocol
from aeqlab.runs.data import check_split, protocol_with_kept_data
from aeqlab.runs.plans import Origin, beta_of_epoch
from aeqlab.runs.store import RunStore, params_sha256
from aeqlab.runs.training import Session, begin


def _best(store: RunStore, protocol: Protocol) -> dict[str, Any]:
    where = str(store.path / "best.npz")
    try:
        best = store.read_best()
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"the run's best parameters cannot be read ({type(exc).__name__})",
            where=where,
            hint=f"restore the file, or continue from the last sample: aeqlab resume {store.path}",
        ) from None
    if best is None:
        if protocol.dataset.validation is None:
            raise InputError(
                "the run kept no best parameters (no best.npz): its protocol has no validation split",
                where=str(store.path),
                hint="add dataset.validation (e.g. 'validation: 0.1') to the protocol and train again; "
                f"'aeqlab resume {store.path}' continues from the last sample",
            )
        raise InputError(
            "the run kept no best parameters yet (no best.npz): it stopped before its first validation",
            where=str(store.path),
            hint=f"continue it from the last sample: aeqlab resume {store.path}",
        )
    return best


def _origin(store: RunStore, journal: Journal, header: Header, protocol: Protocol, best: dict) -> tuple[Origin, float]:
    """The child's start (θ*, knobs, β at the next epoch) and the ε scale of the twin there."""
    where = str(store.path / "best.npz")
    theta, epoch, samples = np.asarray(best["theta"], dtype=float), best["epoch"], best["samples"]
    if theta.shape != (header.n_params,):
        raise InputError(
            f"best.npz holds {theta.size} parameters, the run's network has {header.n_params}",
            where=where,
            hint="restore the run's own best.npz, or resume without --from-best",
        )
    seqs, thetas = journal.snapshots()
    at = np.flatnonzero(seqs == samples)
    if samples != epoch * header.samples_per_epoch or not at.size or not np.array_equal(thetas[at[0]], theta):
        raise InputError(
            f"best.npz (epoch {epoch}, sample {samples}) is not the parameters the run's journal holds there",
            where=where,
            hint="restore the run's own best.npz, or resume without --from-best",
        )
    knobs = None
    found = journal.knob_snapshots()
    if found is not None and samples in set(found[0].tolist()):
        knobs = found[1][list(found[0]).index(samples)]
    parent = header.extra.get("parent") or {}
    beta0 = protocol.method.beta
    row = next((r for r in journal.epochs() if r["epoch"] == epoch and r["epoch"] > 0 and r["beta"] is not None), None)
    if row is not None:
        beta = beta_of_epoch(protocol.schedule, beta0, epoch + 1, float(row["beta"]))
    elif parent.get("samples") == samples:  # the parent's own start (a child's child)
        beta = float(parent["beta"])
    else:
        beta = beta_of_epoch(protocol.schedule, beta0, epoch + 1)
    rollbacks = [r for r in journal.stability() if r["action"] == "rollback" and r["seq"] <= samples]
    eps = float(rollbacks[-1]["epsilon_scale"]) if rollbacks else float(parent.get("epsilon_scale", 1.0))
    return Origin(theta, knobs, epoch, samples, beta), eps


def from_best(
    run_dir: str | Path,
    open_backend: Callable[[Protocol, str], Backend],
    *,
    epochs: int | None = None,
    out: str | Path | None = None,
    session: Session | None = None,
) -> dict[str, Any]:
    """Start a child run from ``run_dir``'s best parameters; return its summary.

    Parameters
    ----------
    run_dir
        The parent run folder (only read).
    open_backend
        ``open_backend(protocol, kind)``: the composition root that opens the backend.
    epochs
        The child's last epoch (default: the parent's planned epochs).
    out
        Folder for the child's run folder (default: the parent's folder's folder).
    session
        Subscribers, stop event, signal handling.
    """
    store = RunStore.existing(run_dir)
    check_file(store.journal_path)
    # nobody trains in the parent while it is read (best.npz and the journal agree); a read-only folder is at rest
    with store.lock() if os.access(store.path, os.W_OK) else contextlib.nullcontext():
        journal = Journal.open_untouched(store.journal_path)
        try:
            header = journal.header()
            source = store.path / "protocol.yaml"
            protocol, text = protocol_with_kept_data(store.path, header, source, [], text=header.protocol_text)
            best = _best(store, protocol)
            origin, eps_scale = _origin(store, journal, header, protocol, best)
        finally:
            journal.close()
    last = epochs or header.epochs
    if origin.epoch >= last:
        raise InputError(
            f"the best parameters are from epoch {origin.epoch}, the run's last ({last}): nothing is left to train",
            where=str(store.path / "best.npz"),
            hint=f"give --epochs N with N > {origin.epoch} to train on from them",
        )
    data = load(protocol.dataset)
    check_split(header, data, store)
    parent = {
        "run_dir": str(store.path.resolve()),
        "epoch": origin.epoch,
        "samples": origin.samples_done,
        "validation_accuracy": best["accuracy"],
        "validation_loss": best["loss"],
        "params_sha256": params_sha256(origin.targets),
        "beta": origin.beta,
        "epsilon_scale": eps_scale,
    }
    backend = open_backend(protocol, header.backend)
    try:
        if eps_scale != 1.0 and getattr(backend, "scale_epsilon", None) is not None:
            backend.scale_epsilon(1.0, to=eps_scale)
        return begin(
            protocol,
            text,
            str(source.resolve()),
            backend,
            data,
            last,
            header.seed,
            out or store.path.parent,
            header.snapshot_every,
            session,
            {"parent": parent},
            origin,
        )
    finally:
        backend.__exit__(None, None, None)
