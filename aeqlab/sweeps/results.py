"""A sweep's results: one xarray Dataset over its axes, NetCDF, a table, a figure per axis pair.

A grid sweep's Dataset has one dimension per axis and ``seed``; a random sweep's has
``point`` and ``seed``, the axes' values as coordinates along ``point``. Axis values
with units become numbers in the first value's unit (its ``units`` attribute).
Figures are drawn with matplotlib's ``Figure`` API: the process's backend is never set.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.sweeps.loader import Sweep
from aeqlab.sweeps.points import Point, shown

METRICS = {
    "final_test": ("final test metric (accuracy, or R² for a regression)", "1"),
    "best_test": ("best test metric over the evaluations", "1"),
    "samples_to_target": ("training samples until the test metric first reached the target", "samples"),
    "rho_end": ("stability ratio ρ of the twin at the end (NaN off the twin)", "1"),
    "wall_s": ("wall time of the point's sessions in this sweep", "s"),
    "cpu_s": ("CPU time of the point's sessions in this sweep", "s"),
}
TEXT = ("status", "params_sha256", "run_dir")


def _coordinate(values: list[Any]) -> tuple[np.ndarray, dict[str, str]]:
    """Axis values as a numeric coordinate when they are numbers or quantities of one unit, else text."""
    if any(isinstance(v, dict) for v in values):  # a linked axis: its labels
        return np.asarray([shown(v) for v in values], dtype=object), {}
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=float), {}
    import pint

    ureg = pint.UnitRegistry()
    try:
        qs = [ureg.Quantity(v) for v in values]
        unit = next(q.units for q in qs if hasattr(q, "units"))
        return np.asarray([float(q.to(unit).magnitude) for q in qs]), {"units": f"{unit:~}"}
    except Exception:  # noqa: BLE001 - text values (a method's name...): a text coordinate
        return np.asarray([str(v) for v in values], dtype=object), {}


def to_dataset(sweep: Sweep, points: list[Point], results: list[dict[str, Any]]):
    """The results as an :class:`xarray.Dataset` (see the module's docstring)."""
    import xarray as xr

    spec = sweep.spec
    seeds = list(spec.seeds)
    names = spec.axis_names()
    if spec.random is None:
        dims = (*names, "seed")
        axis_values = {n: list(spec.axes[n]) for n in names}
        coords: dict[str, Any] = {}
        for n in names:
            values, attrs = _coordinate(axis_values[n])
            coords[n] = xr.Variable((n,), values, attrs)
        shape = tuple(len(axis_values[n]) for n in names) + (len(seeds),)

        def at(p: Point) -> tuple[int, ...]:
            return tuple(axis_values[n].index(p.coords[n]) for n in names) + (seeds.index(p.seed),)

    else:
        dims = ("point", "seed")
        n_points = len(points) // len(seeds)
        shape = (n_points, len(seeds))
        coords = {"point": np.arange(n_points)}
        for n in names:
            values, attrs = _coordinate([points[k * len(seeds)].coords[n] for k in range(n_points)])
            coords[n] = xr.Variable(("point",), values, attrs)

        def at(p: Point) -> tuple[int, ...]:
            return p.index // len(seeds), seeds.index(p.seed)

    coords["seed"] = np.asarray(seeds)
    data: dict[str, Any] = {}
    arrays = {m: np.full(shape, np.nan) for m in METRICS}
    texts = {t: np.full(shape, "", dtype=object) for t in TEXT}
    for p, r in zip(points, results):
        for m in METRICS:
            v = r.get(m)
            arrays[m][at(p)] = float(v) if v is not None else np.nan
        for t in TEXT:
            texts[t][at(p)] = str(r.get(t) or "")
    for m, (long_name, unit) in METRICS.items():
        data[m] = xr.Variable(dims, arrays[m], {"long_name": long_name, "units": unit})
    for t in TEXT:
        data[t] = xr.Variable(dims, texts[t].astype(str))
    target = spec.target
    return xr.Dataset(
        data,
        coords=coords,
        attrs={
            "sweep": spec.name,
            "protocol": str(sweep.protocol_path),
            "backend": spec.backend,
            "epochs": spec.epochs or sweep.protocol.schedule.epochs,
            "kind": "grid" if spec.random is None else "random",
            "target_metric": target.metric if target else "",
            "target_value": target.value if target else np.nan,
        },
    )


def save_netcdf(ds, path: Path) -> Path:
    """Write the Dataset as NetCDF-4 (a new file put in place: a reader of the old one is not disturbed)."""
    tmp = path.with_name(path.name + ".tmp")
    ds.to_netcdf(tmp, engine="h5netcdf")
    tmp.replace(path)
    return path


def table(ds):
    """A rich Table: one row per combination of the axes, the seeds summarised (mean ± sd)."""
    from rich.table import Table

    axes = [d for d in ds.final_test.dims if d != "seed"]
    t = Table(
        title=f"sweep {ds.attrs['sweep']}: mean±sd over {ds.sizes['seed']} seeds "
        "(*: some seeds never reached the target)"
    )
    names = [a for a in axes if a != "point"] + [c for c in ds.coords if c not in ds.dims and "point" in ds[c].dims]
    for name in names:
        t.add_column(name)
    for col in ("final test", "best test", "samples to target", "ρ end", "wall s", "status"):
        t.add_column(col, justify="right")
    stacked = ds.stack(row=axes) if axes else ds.expand_dims(row=[0])
    for k in range(stacked.sizes["row"]):
        row = stacked.isel(row=k)
        cells = [_fmt(row[n].values) for n in names]
        final, best = row.final_test.values, row.best_test.values
        stt = row.samples_to_target.values
        reached = stt[np.isfinite(stt)]
        statuses = [str(s) or "pending" for s in row.status.values]
        cells += [
            _mean_sd(final),
            _mean_sd(best),
            "never"
            if not len(reached)
            else f"{reached.mean():.0f}" + ("" if len(reached) == len(stt) else " (some never)"),
            _mean_sd(row.rho_end.values, "{:.3f}"),
            _mean_sd(row.wall_s.values, "{:.1f}"),
            "ok"
            if set(statuses) == {"completed"}
            else ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses)),
        ]
        t.add_row(*cells)
    return t


def _fmt(v: Any) -> str:
    v = v.item() if hasattr(v, "item") else v
    return f"{v:g}" if isinstance(v, float) else str(v)


def _mean_sd(values: np.ndarray, fmt: str = "{:.3f}") -> str:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return "–"
    return fmt.format(v.mean()) + (f"±{fmt.format(v.std())}" if len(v) > 1 else "")


def _label(ds, name: str) -> str:
    unit = ds[name].attrs.get("units")
    return f"{name} [{unit}]" if unit else name


def figures(ds, folder: Path) -> list[Path]:
    """A PNG per axis pair (heat map of the seeds' mean, and lines with the seeds' spread); one per axis alone."""
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    grid = ds.attrs["kind"] == "grid"
    axes = (
        [d for d in ds.final_test.dims if d != "seed"]
        if grid
        else [c for c in ds.coords if c not in ds.dims and "point" in ds[c].dims]
    )
    pairs = list(itertools.combinations(axes, 2)) or [(axes[0], None)]
    for a, b in pairs:
        fig = Figure(figsize=(10, 4) if b else (5.5, 4), layout="constrained")
        if not grid:
            ax = fig.add_subplot()
            mean = ds.final_test.mean("seed", skipna=True)
            x = ds[a].values
            y = ds[b].values if b else mean.values
            sc = ax.scatter(x, y, c=mean.values if b else None, cmap="viridis", vmin=0, vmax=1)
            if b:
                fig.colorbar(sc, ax=ax, label="final test (mean over seeds)")
            ax.set_xlabel(_label(ds, a))
            ax.set_ylabel(_label(ds, b) if b else "final test (mean over seeds)")
        else:
            others = [d for d in axes if d not in (a, b)]
            reduced = ds.final_test.mean(others) if others else ds.final_test
            if b:
                heat = fig.add_subplot(1, 2, 1)
                mean = reduced.mean("seed", skipna=True).transpose(b, a)
                im = heat.imshow(mean.values, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1)
                heat.set_xticks(range(ds.sizes[a]), [_fmt(v) for v in ds[a].values])
                heat.set_yticks(range(ds.sizes[b]), [_fmt(v) for v in ds[b].values])
                for (j, i), v in np.ndenumerate(mean.values):
                    if np.isfinite(v):
                        heat.text(i, j, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k")
                heat.set_xlabel(_label(ds, a))
                heat.set_ylabel(_label(ds, b))
                fig.colorbar(im, ax=heat, label="final test (mean over seeds)")
                lines = fig.add_subplot(1, 2, 2)
            else:
                lines = fig.add_subplot()
            x = ds[a].values
            xs = x if np.issubdtype(np.asarray(x).dtype, np.number) else np.arange(len(x))
            for k in range(ds.sizes[b]) if b else [None]:
                sel = reduced.isel({b: k}) if b is not None else reduced
                sel = sel.transpose(a, "seed").values
                with np.errstate(all="ignore"):
                    m, lo, hi = np.nanmean(sel, 1), np.nanmin(sel, 1), np.nanmax(sel, 1)
                label = f"{b} = {_fmt(ds[b].values[k])}" if b else "mean over seeds"
                lines.plot(xs, m, "o-", label=label)
                lines.fill_between(xs, lo, hi, alpha=0.2)
            if xs is not x:
                lines.set_xticks(xs, [str(v) for v in x])
            lines.set_xlabel(_label(ds, a))
            lines.set_ylabel("final test (band: seeds' min–max)")
            lines.set_ylim(0, 1.02)
            lines.grid(alpha=0.3)
            lines.legend(fontsize="small")
        fig.suptitle(f"sweep {ds.attrs['sweep']}: {ds.attrs['epochs']} epochs, {ds.sizes['seed']} seeds")
        name = f"{_safe(a)}__{_safe(b)}.png" if b else f"{_safe(a)}.png"
        path = folder / name
        fig.savefig(path, dpi=110)
        out.append(path)
    return out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
