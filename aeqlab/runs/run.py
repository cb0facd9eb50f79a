"""A run as an object: opened from its folder, read as pandas and xarray.

:class:`Run` reads a run folder (``aeqlab run``'s, or one written by the API) without
writing to it: its summary, its journal's samples, epochs and sessions as pandas
DataFrames, and an xarray Dataset with the per-sample scalars and the tracked
parameters over time, with units. Run folders written by earlier versions open too.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.errors import InputError
from aeqlab.journal import Header, Journal
from aeqlab.journal.check import check_file
from aeqlab.journal.database import VECTOR_COLUMNS

# units of the journal's per-sample columns (model units are those of the twin / the calibrated roles)
SAMPLE_UNITS = {
    "loss": "model units²",
    "nudge_norm": "model units",
    "step_norm": "model units",
    "free_residual": "model units",
    "residual": "model units",
    "tracking_residual": "model units",
    "free_s": "s",
    "homeostatic_s": "s",
    "clamped_s": "s",
    "sample_s": "s",
}


class Run:
    """A run folder, read-only.

    Parameters
    ----------
    path
        The run folder (``runs/<name>-<time>``).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError(
                "no such run folder",
                where=str(self.path),
                hint="give a folder made by 'aeqlab run'; 'aeqlab runs' lists them",
            )
        check_file(self.path / "journal.sqlite")

    def __repr__(self) -> str:
        s = self.summary
        return f"Run({str(self.path)!r}, status={s.get('status')!r}, samples={s.get('samples')})"

    def _journal(self) -> Journal:
        return Journal.open_live(self.path / "journal.sqlite")

    def _read(self, fn):
        j = self._journal()
        try:
            return fn(j)
        finally:
            j.close()

    @cached_property
    def header(self) -> Header:
        return self._read(lambda j: j.header())

    @property
    def summary(self) -> dict[str, Any]:
        """The summary of the last session (as ``aeqlab run --json`` prints it), or the journal's status."""
        f = self.path / "summary.json"
        if f.is_file():
            try:
                return json.loads(f.read_text(encoding="utf-8"))
            except ValueError:
                pass
        return self._read(lambda j: {"run_dir": str(self.path), "status": j.status(), "samples": j.last_sample()})

    @property
    def status(self) -> str:
        return self._read(lambda j: j.status())

    @property
    def params(self) -> np.ndarray | None:
        """The last committed parameter targets θ* (role order), or None before the first commit."""
        f = self.path / "params.npy"
        return np.load(f) if f.is_file() else None

    def best_params(self) -> dict[str, Any] | None:
        """The best parameters by the validation split (``best.npz``): ``theta``, ``epoch``, ``samples``,
        ``accuracy`` and ``loss`` of the validation; None when the run keeps none (no ``dataset.validation``)."""
        from aeqlab.runs.store import RunStore

        return RunStore.existing(self.path).read_best()

    def stability(self):
        """The stability monitor's readings (the journal's ``stability`` table): ρ, source, action, β."""
        import pandas as pd

        return pd.DataFrame(self._read(lambda j: j.stability()))

    @property
    def protocol_text(self) -> str:
        return self.header.protocol_text

    def protocol(self):
        """The protocol the run used (from the run folder's copy), its data the folder's copy of its data."""
        from aeqlab.runs.data import protocol_with_kept_data

        f = self.path / "protocol.yaml"
        text = None if f.is_file() else self.header.protocol_text
        return protocol_with_kept_data(self.path, self.header, f, [], text=text)[0]

    # ------------------------------------------------------------------ pandas
    def samples(self):
        """One row per training sample (the journal's ``samples`` table); vector columns hold arrays."""
        import pandas as pd

        rows = self._read(lambda j: j.samples())
        for r in rows:
            for col in VECTOR_COLUMNS:
                if col in r and isinstance(r[col], str):
                    r[col] = np.asarray(json.loads(r[col]), dtype=float)
        df = pd.DataFrame(rows)
        return df.set_index("seq") if "seq" in df else df

    def epochs(self):
        """One row per evaluation: epoch 0 (before training) and each epoch's end."""
        import pandas as pd

        df = pd.DataFrame(self._read(lambda j: j.epochs()))
        return df.set_index("epoch") if "epoch" in df else df

    def sessions(self):
        """One row per session (start, resumes): status, error, safe state."""
        import pandas as pd

        df = pd.DataFrame(self._read(lambda j: j.sessions()))
        return df.set_index("id") if "id" in df else df

    # ------------------------------------------------------------------ xarray
    def to_xarray(self):
        """The run as an :class:`xarray.Dataset`.

        Dimensions ``sample`` (training samples, numbered from 1), ``param`` (the tracked
        parameters, by their index in role order), ``output`` and ``epoch``. Variables:
        every per-sample scalar of the journal (the sample's epoch as ``sample_epoch``),
        ``tracked`` (θ* of the tracked parameters after each sample), ``free_output`` and
        ``target``, and the per-epoch figures (``epoch_*``). Units are in each variable's ``units`` attribute.
        """
        import xarray as xr

        df = self.samples()
        header = self.header
        tracked_idx = np.asarray(header.tracked_params, dtype=int)
        seq = df.index.to_numpy(dtype=int) if len(df) else np.zeros(0, dtype=int)
        data_vars: dict[str, Any] = {}
        for col in df.columns:
            if col in VECTOR_COLUMNS or col == "session":
                continue
            values = df[col].to_numpy()
            if values.dtype == object:
                values = values.astype(float)
            name = "sample_epoch" if col == "epoch" else col  # "epoch" is the dimension of the epoch figures
            data_vars[name] = xr.Variable(("sample",), values, {"units": SAMPLE_UNITS.get(col, "1")})
        n_out = 0

        def stack(col: str, width: int) -> np.ndarray:
            if not len(df):
                return np.zeros((0, width))
            return np.vstack(
                [np.resize(np.asarray(v, float), width) if len(v) else np.full(width, np.nan) for v in df[col]]
            )

        if len(df):
            n_out = max(len(v) for v in df["free_output"])
        data_vars["tracked"] = xr.Variable(
            ("sample", "param"), stack("tracked", len(tracked_idx)), {"units": "model units", "long_name": "θ*"}
        )
        data_vars["free_output"] = xr.Variable(
            ("sample", "output"), stack("free_output", n_out), {"units": "model units"}
        )
        data_vars["target"] = xr.Variable(("sample", "output"), stack("target", n_out), {"units": "model units"})
        ep = self.epochs()
        for col in ep.columns:
            values = ep[col].to_numpy(dtype=float)
            data_vars[f"epoch_{col}"] = xr.Variable(("epoch",), values, {"units": "s" if col == "wall_s" else "1"})
        ds = xr.Dataset(
            data_vars,
            coords={
                "sample": seq,
                "param": tracked_idx,
                "output": np.arange(n_out),
                "epoch": ep.index.to_numpy(dtype=int) if len(ep) else np.zeros(0, dtype=int),
            },
            attrs={
                "protocol": header.protocol_name,
                "protocol_sha256": header.protocol_sha256,
                "backend": header.backend,
                "seed": header.seed,
                "epochs": header.epochs,
                "samples_per_epoch": header.samples_per_epoch,
                "started": header.started,
                "task": str(header.extra.get("task", "classification")),
                "run_dir": str(self.path),
            },
        )
        return ds

    def export_netcdf(self, path: str | Path) -> Path:
        """Write :meth:`to_xarray` as a NetCDF-4 file (``xarray.open_dataset`` reads it back)."""
        path = Path(path)
        ds = self.to_xarray()
        try:
            ds.to_netcdf(path, engine="h5netcdf")
        except OSError as exc:
            raise InputError(
                f"cannot write the NetCDF file: {exc}", where=str(path), hint="choose another --out"
            ) from None
        return path


def writable_folder(
    run_dir: Path, out: str | Path | None, *, inside: str | None = None, suffix: str = "export"
) -> tuple[Path, str | None]:
    """Where to write what is derived from a run: ``out``, else in the run folder, else ``./<run>-<suffix>``.

    ``inside`` names a subfolder of the run folder (the report's ``report/``). A run folder
    this process may not write (a read-only mount, another user's archive) is never
    written: the files go to ``<run name>-<suffix>`` in the current directory instead.
    Returns the folder (created) and a note for a person when the run folder was read-only.
    """
    from aeqlab.journal.reading import folder_writable

    note = None
    if out is not None:
        folder = Path(out)
    elif folder_writable(run_dir):
        folder = run_dir / inside if inside else run_dir
    else:
        folder = Path.cwd() / f"{run_dir.name}-{suffix}"
        note = f"the run folder is read-only: writing to {folder}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create the folder: {exc.strerror}", where=str(folder), hint="give another --out"
        ) from None
    return folder, note
