"""Run folders: what a run used and what it measured.

``<out>/<protocol name>-<UTC time>/`` holds

* ``protocol.yaml``: the protocol exactly as run (with its SHA-256 in ``run.json``);
* ``run.json``: versions, seed, backend, instrument identities, start time;
* ``journal.sqlite``: the run journal (``aeqlab.journal``, ``docs/journal.md``): every
  sample, every epoch, the checkpoint to resume from, parameter snapshots, exit statuses;
* ``metrics.jsonl``: one JSON object per epoch (rewritten from the journal as epochs end);
* ``data/<file>``: a copy of the data file the run trained on (its SHA-256 in ``run.json``
  and the journal's header), so a run resumes, reports and reproduces anywhere;
* ``params.npy``: the last committed parameter targets θ* (float64, role order);
* ``params/epoch-NNNN.npy``: θ* at the end of every N-th epoch (``schedule.checkpoint_every``);
* ``.lock``: held (with :mod:`filelock`, on every platform) while a process trains in the folder;
* ``summary.json``: the summary of the last session (also printed by ``--json``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from aeqlab.errors import InputError


def params_sha256(theta: np.ndarray) -> str:
    """SHA-256 of parameters as little-endian float64 in role order (W1..WL row-major, then b1..bL)."""
    return hashlib.sha256(np.ascontiguousarray(theta, dtype="<f8").tobytes()).hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split_sha256(split) -> str:
    """SHA-256 of a loaded split (inputs and labels as little-endian float64, in order): the data a run saw."""
    h = hashlib.sha256()
    for a in (split.x_train, split.y_train, split.x_test, split.y_test):
        h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
    return h.hexdigest()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("aeqlab", "numpy", "pydantic", "pyvisa", "pyvisa-py", "pyserial", "nidaqmx", "scikit-learn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


class RunStore:
    """A run folder, written as the run goes so that nothing recorded is lost.

    ``RunStore(out, name)`` makes a new folder; :meth:`existing` reopens one.
    """

    def __init__(self, out_dir: str | Path, name: str):
        base = Path(out_dir)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "run"
        try:
            base.mkdir(parents=True, exist_ok=True)
            for k in range(1000):
                path = base / (f"{safe}-{stamp}" + (f"-{k}" if k else ""))
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    continue
        except OSError as exc:
            raise InputError(
                f"cannot create the run folder: {exc.strerror}", where=str(base), hint="choose another --out"
            ) from None
        self.path = path

    @classmethod
    def existing(cls, path: str | Path) -> RunStore:
        """An existing run folder (for resume, report, export)."""
        p = Path(path)
        if not p.is_dir():
            raise InputError(
                "no such run folder", where=str(p), hint="give a folder made by 'aeqlab run'; 'aeqlab runs' lists them"
            )
        store = cls.__new__(cls)
        store.path = p
        return store

    @property
    def journal_path(self) -> Path:
        return self.path / "journal.sqlite"

    def write_protocol(self, text: str) -> str:
        (self.path / "protocol.yaml").write_text(text, encoding="utf-8")
        return hashlib.sha256(text.encode()).hexdigest()

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        tmp = self.path / (name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n", encoding="utf-8")
        tmp.replace(self.path / name)

    def append_metrics(self, data: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(data, default=_jsonable) + "\n")
            fh.flush()

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Replace metrics.jsonl (one line per epoch) atomically."""
        tmp = self.path / "metrics.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r, default=_jsonable) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(self.path / "metrics.jsonl")

    def write_params(self, theta: np.ndarray, epoch: int | None = None) -> None:
        """θ* as ``params.npy`` (the last committed), or as ``params/epoch-NNNN.npy`` for an epoch."""
        folder = self.path if epoch is None else self.path / "params"
        folder.mkdir(exist_ok=True)
        name = "params.npy" if epoch is None else f"epoch-{epoch:04d}.npy"
        tmp = folder / ("tmp-" + name)
        np.save(tmp, np.asarray(theta, dtype="<f8"))
        tmp.replace(folder / name)

    def write_best(self, theta: np.ndarray, epoch: int, samples_done: int, accuracy: float, loss: float) -> None:
        """The best parameters by the validation split as ``best.npz`` (θ*, its sample, epoch and metric)."""
        tmp = self.path / "tmp-best.npz"
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                theta=np.asarray(theta, dtype="<f8"),
                epoch=epoch,
                samples=samples_done,
                validation_accuracy=accuracy,
                validation_loss=loss,
            )
        tmp.replace(self.path / "best.npz")

    def read_best(self) -> dict[str, Any] | None:
        """``best.npz`` as written by :meth:`write_best`, or None when the run has none."""
        path = self.path / "best.npz"
        if not path.is_file():
            return None
        with np.load(path) as f:
            return {
                "theta": f["theta"].copy(),
                "epoch": int(f["epoch"]),
                "samples": int(f["samples"]),
                "accuracy": float(f["validation_accuracy"]),
                "loss": float(f["validation_loss"]),
            }

    def keep_data(self, source: str | Path) -> dict[str, str]:
        """Copy a data file into ``data/``; returns its place in the folder, its SHA-256 and where it came from."""
        import shutil

        src = Path(source)
        folder = self.path / "data"
        folder.mkdir(exist_ok=True)
        dst = folder / src.name
        try:
            shutil.copyfile(src, dst)
        except OSError as exc:
            raise InputError(f"cannot copy the data file: {exc.strerror}", where=str(src)) from None
        return {"file": f"data/{src.name}", "sha256": file_sha256(dst), "source": str(src.resolve())}

    def lock(self) -> RunLock:
        return RunLock(self.path)


class RunLock:
    """An exclusive lock on a run folder while a process trains in it (released on any exit, even a kill)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = FileLock(path / ".lock", timeout=0)

    def __enter__(self) -> RunLock:
        try:
            self._lock.acquire()
        except Timeout:
            raise InputError(
                "another aeqlab process is training in this run folder",
                where=str(self.path),
                hint="wait for it to end, or stop it with Ctrl-C",
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


def lock_held(folder: Path) -> bool | None:
    """Whether a process trains in ``folder`` now (holds its ``.lock``); None when that cannot be told.

    In a folder this process may not write (a read-only mount), the lock file is neither
    created nor taken: an existing ``.lock`` is probed with a shared ``flock`` on a
    read-only descriptor, which a training process's exclusive lock refuses.
    """
    from aeqlab.journal.reading import folder_writable

    folder = Path(folder)
    if folder_writable(folder):
        try:
            with RunLock(folder):
                return False
        except InputError:
            return True
    lock = folder / ".lock"
    if not lock.is_file():
        return False  # a training process always creates it
    try:
        import fcntl
    except ImportError:  # no flock here: cannot tell without writing
        return None
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # releases the probe's lock


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
