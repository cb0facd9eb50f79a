"""Data files: a CSV (a header row, columns named) or an NPZ (named arrays), read whole or inspected.

A CSV's inputs are its ``columns`` (default: every column that is not a target); its
targets are the ``label`` column (classification: integer class numbers) or, for a
regression, the ``targets`` columns (default: the ``label`` column), one output each.
An NPZ holds an examples × features array ``features`` and an array ``label``: class
numbers, or a regression's targets (one per example, or examples × targets).

:func:`inspect` is what ``validate`` uses: a CSV's header, and its cells up to
:data:`SCAN_ROWS` rows, so that a missing column, a cell that is not a number and the
class count are found before a run; a larger file is checked whole when it is loaded.
Every problem is a :class:`DataFileError` naming the dataset key to change.
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from aeqlab.protocol import Dataset as DatasetConfig

SCAN_ROWS = 50_000  # rows of a CSV whose cells validate reads; beyond them, the header only


class DataFileError(ValueError):
    """A data file that does not hold what the protocol says; ``key`` is the dataset field to look at."""

    def __init__(self, message: str, key: str = "path") -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class FileShape:
    """What :func:`inspect` found: input width, output width (None: not known without reading more)."""

    features: int
    outputs: int | None
    detail: str  # how the outputs were counted, for messages: "3 classes (labels 0 to 2 in column 'label')"


def target_names(cfg: DatasetConfig) -> list[str]:
    """The CSV columns (or the NPZ array) that hold the targets."""
    if cfg.task == "regression" and cfg.targets:
        return list(cfg.targets)
    return [cfg.label]


def _is_csv(cfg: DatasetConfig) -> bool:
    return Path(cfg.path).suffix.lower() == ".csv"


# ------------------------------------------------------------------ CSV
def _layout(cfg: DatasetConfig, header: list[str]) -> tuple[list[int], list[int]]:
    """Positions of the input and target columns in the header, or the column that is missing."""
    shown = ", ".join(header) or "none"
    name = Path(cfg.path).name
    targets = target_names(cfg)
    target_key = "targets" if cfg.task == "regression" and cfg.targets else "label"
    for t in targets:
        if t not in header:
            what = "target column" if cfg.task == "regression" else "label column"
            raise DataFileError(f"{name} has no {what} {t!r} (its columns: {shown})", target_key)
    columns = cfg.columns if cfg.columns is not None else [h for h in header if h not in targets]
    for c in columns:
        if c not in header:
            raise DataFileError(f"{name} has no column {c!r} (its columns: {shown})", "columns")
    both = sorted(set(columns) & set(targets))
    if both:
        raise DataFileError(f"column {both[0]!r} is both an input and a target (leave it out of columns)", "columns")
    if not columns:
        raise DataFileError(f"{name} has no input column besides the targets (its columns: {shown})", "columns")
    return [header.index(c) for c in columns], [header.index(t) for t in targets]


def _number(cell: str, line: int, column: str, name: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise DataFileError(
            f"{name} line {line}, column {column!r}: {cell.strip()[:40]!r} is not a number (every input and "
            "target cell is a number: fix or remove the row)"
        ) from None
    if not np.isfinite(value):
        raise DataFileError(f"{name} line {line}, column {column!r}: {cell.strip()!r} is not a finite number")
    return value


def _label(cell: str, line: int, column: str, name: str) -> int:
    try:
        value = float(cell)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value == int(value) and value >= 0):
        raise DataFileError(
            f"{name} line {line}, column {column!r}: {cell.strip()[:40]!r} is not a class number (labels are "
            "0, 1, 2, ...; for numeric targets set task: regression)",
            "label",
        )
    return int(value)


def _read_csv(cfg: DatasetConfig, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Inputs, targets (class numbers or values), and whether every row was read (``limit`` caps the rows)."""
    name = Path(cfg.path).name
    regression = cfg.task == "regression"
    cells: list[list[str]] = []
    lines: list[int] = []
    complete = True
    with open(cfg.path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if not header:
            raise DataFileError(f"{name} is empty: a CSV starts with a header row naming its columns")
        ix, it = _layout(cfg, header)
        used = ix + it
        for row in reader:
            if not row:
                continue
            if limit is not None and len(cells) >= limit:
                complete = False
                break
            if len(row) != len(header):
                if not "".join(row).strip():
                    continue  # a blank line
                raise DataFileError(f"{name} line {reader.line_num} has {len(row)} cells, the header {len(header)}")
            cells.append([row[i] for i in used])
            lines.append(reader.line_num)
    if not cells:
        raise DataFileError(f"{name} has a header but no example rows")
    columns = [header[i] for i in used]
    try:
        table = np.array(cells, dtype=float)  # parsed in C; a bad cell is then found cell by cell
    except ValueError:
        table = np.array([[_number(c, line, col, name) for c, col in zip(r, columns)] for r, line in zip(cells, lines)])
    bad = ~np.isfinite(table)
    bad[:, len(ix) :] &= regression  # a label's problem is reported as a label below
    if bad.any():
        r, c = np.argwhere(bad)[0]
        _number(cells[r][c], lines[r], columns[c], name)  # raises, naming the cell
    x, y = table[:, : len(ix)], table[:, len(ix) :]
    if regression:
        return x, (y[:, 0] if y.shape[1] == 1 and not cfg.targets else y), complete  # 'label': one value each
    wrong = ~(np.isfinite(y[:, 0]) & (y[:, 0] >= 0) & (y[:, 0] == np.round(y[:, 0])))
    if wrong.any():
        r = int(np.argmax(wrong))
        _label(cells[r][-1], lines[r], columns[-1], name)  # raises, naming the cell
    return x, y[:, 0].astype(int), complete


# ------------------------------------------------------------------ NPZ
def npz_shapes(path: str | Path) -> dict[str, tuple[tuple[int, ...], int]] | None:
    """Each array of an NPZ file: its shape and item size, from the headers alone (nothing is expanded).

    None when the file is not a readable NPZ (the loader then says why in its own words).
    """
    try:
        with zipfile.ZipFile(path) as z:
            out = {}
            for name in z.namelist():
                with z.open(name) as fh:
                    version = np.lib.format.read_magic(fh)
                    fmt = np.lib.format
                    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                    shape, _, dtype = read(fh)
                    out[name.removesuffix(".npy")] = (tuple(int(n) for n in shape), int(dtype.itemsize))
            return out
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def _read_npz(cfg: DatasetConfig) -> tuple[np.ndarray, np.ndarray]:
    name = Path(cfg.path).name
    if cfg.columns is not None:
        raise DataFileError("'columns' names CSV columns; an NPZ's inputs are the array named by 'features'", "columns")
    if cfg.targets is not None:
        raise DataFileError(
            "'targets' names CSV columns; an NPZ regression's targets are the array named by 'label' "
            "(examples × targets for several)",
            "targets",
        )
    try:
        with np.load(cfg.path, allow_pickle=False) as z:
            for key, array in (("features", cfg.features), ("label", cfg.label)):
                if array not in z:
                    raise DataFileError(f"{name} has no array {array!r} (it has {', '.join(z) or 'none'})", key)
            x = np.asarray(z[cfg.features], dtype=float)
            y = np.asarray(z[cfg.label])
    except (OSError, EOFError, ValueError) as exc:
        if isinstance(exc, DataFileError):
            raise
        raise DataFileError(f"{name} is not a readable .npz file of numbers ({exc})") from None
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataFileError(f"{name}: array {cfg.features!r} must be examples × features, has shape {x.shape}")
    if cfg.task == "regression":
        if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
            raise DataFileError(
                f"{name}: array {cfg.label!r} must hold one target (or a row of targets) per example, has shape "
                f"{y.shape} for {x.shape[0]} examples",
                "label",
            )
        return x, y.astype(float)
    if y.shape != (x.shape[0],):
        raise DataFileError(
            f"{name}: array {cfg.label!r} must hold one class number per example, has shape {y.shape} "
            f"(several targets per example are a regression: set task: regression)",
            "label",
        )
    if y.size and (not np.all(np.isfinite(y)) or np.any(y != np.round(y))):
        raise DataFileError(f"{name}: array {cfg.label!r} holds values that are not class numbers", "label")
    return x, y.astype(int)


# ------------------------------------------------------------------ both
def _check_values(cfg: DatasetConfig, x: np.ndarray, y: np.ndarray) -> None:
    name = Path(cfg.path).name
    if not np.all(np.isfinite(x)):
        raise DataFileError(f"{name}: every input must be a finite number")
    if cfg.task == "regression":
        if not np.all(np.isfinite(y)):
            raise DataFileError(f"{name}: every regression target must be a finite number", "label")
    elif y.size and y.min() < 0:
        raise DataFileError(f"{name}: labels are class numbers 0, 1, 2, ...", "label")


def read_file(cfg: DatasetConfig) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (examples × features) and targets (class numbers, or values: one or examples × targets).

    Raises
    ------
    DataFileError
        When the file does not hold what the protocol says.
    """
    if _is_csv(cfg):
        x, y, _ = _read_csv(cfg)
    else:
        x, y = _read_npz(cfg)
    _check_values(cfg, x, y)
    return x, y


def outputs_of(cfg: DatasetConfig, y: np.ndarray) -> tuple[int, str]:
    """The outputs a network needs for these targets, and how they were counted (for messages)."""
    names = target_names(cfg)
    if cfg.task == "regression":
        width = 1 if y.ndim == 1 else y.shape[1]
        if _is_csv(cfg):
            return width, f"{width} target column{'s' * (width > 1)} ({', '.join(names)})"
        return width, f"{width} target{'s' * (width > 1)} per example (array {names[0]!r})"
    labels = np.unique(y)
    n = int(labels.max()) + 1 if labels.size else 0
    where = f"column {names[0]!r}" if _is_csv(cfg) else f"array {names[0]!r}"
    gap = f"; class {int(np.setdiff1d(np.arange(n), labels)[0])} has no example" if labels.size < n else ""
    return n, f"{n} classes (labels 0 to {n - 1} in {where}{gap})"


def inspect(cfg: DatasetConfig, limit: int = SCAN_ROWS) -> FileShape:
    """Input and output widths of a data file, reading a CSV's header and at most ``limit`` rows.

    The class count of a CSV longer than ``limit`` rows is not known here (``outputs`` is
    None); a regression's target width always is.

    Raises
    ------
    DataFileError
        When the file does not hold what the protocol says.
    """
    if _is_csv(cfg):
        x, y, complete = _read_csv(cfg, limit)
    else:
        (x, y), complete = _read_npz(cfg), True
    _check_values(cfg, x, y)
    outputs, detail = outputs_of(cfg, y)
    if not complete and cfg.task == "classification":
        return FileShape(x.shape[1], None, detail)
    return FileShape(x.shape[1], outputs, detail)
