"""Run folders: what a run used and what it measured.

``<out>/<protocol name>-<UTC time>/`` holds

* ``protocol.yaml``: the protocol exactly as run (with its SHA-256 in ``run.json``);
* ``run.json``: versions, seed, backend, instrument identities, start time;
* ``metrics.jsonl``: one JSON object per epoch, appended and flushed as each ends;
* ``params.npy``: the final parameter targets θ* (float64, role order);
* ``summary.json``: the final summary (also printed by ``--json``), with the exit status.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.errors import InputError


def params_sha256(theta: np.ndarray) -> str:
    """SHA-256 of parameters as little-endian float64 in role order (W1..WL row-major, then b1..bL)."""
    return hashlib.sha256(np.ascontiguousarray(theta, dtype="<f8").tobytes()).hexdigest()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("aeqlab", "numpy", "pydantic", "pyvisa", "pyvisa-py", "pyserial", "nidaqmx", "scikit-learn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


class RunStore:
    """A new run folder, written as the run goes so that nothing recorded is lost."""

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

    def write_params(self, theta: np.ndarray) -> None:
        np.save(self.path / "params.npy", np.asarray(theta, dtype="<f8"))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
