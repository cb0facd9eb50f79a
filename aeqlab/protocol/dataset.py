"""What to learn: a built-in data set or a CSV/NPZ file, its split and scaling."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from aeqlab.protocol.clip import clip
from aeqlab.protocol.fields import MAX_DATA_BYTES, MAX_NPZ_BYTES, MAX_ROWS, Finite, Seed, Strict, _f, _problems

BUILTIN_DATASETS = {"iris": (4, 3), "digits": (64, 10), "xor": (2, 2)}  # (features, classes)
BUILTIN_SIZES = {"iris": 150, "digits": 1797}  # examples (xor's four points are train and test)


class Dataset(Strict):
    """A built-in data set, or a CSV/NPZ file; split, and scaled into the inputs' model range."""

    name: Literal["iris", "digits", "xor"] | None = _f(None, "built-in data set (or give 'path')")
    path: str | None = _f(
        None, "a .csv (a header row naming the columns, one example per row) or .npz (named arrays) file, relative to "
        "the protocol"
    )
    columns: list[str] | None = _f(
        None, "CSV: the input columns, in input order (default: every column that is not a target)", min_length=1
    )
    label: str = _f(
        "label",
        "classification: the column (CSV) or array (NPZ) of integer class labels 0, 1, ...; regression: the "
        "target column (CSV, unless 'targets' names several) or the targets array (NPZ: one per example, or "
        "examples × targets)",
    )
    targets: list[str] | None = _f(
        None, "CSV regression: the target columns, in output order, one output each (default: [label])", min_length=1
    )
    features: str = _f("x", "NPZ: the array of inputs (examples × features)")
    feature_range: tuple[Finite, Finite] | None = _f(
        None, "raw feature values mapped to input_range (default: each feature's min and max)", "data units"
    )
    test_size: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = _f(
        None, "held-out examples: a count, or a fraction when below 1", "1"
    )
    validation: Annotated[float, Field(gt=0, lt=0.5, allow_inf_nan=False)] | None = _f(
        None, "fraction of the training examples held out to pick the best parameters (never the test set)", "1"
    )
    seed: Seed = _f(0, "seed of the split", "1")
    stratify: bool = _f(True, "keep class proportions in the split (classification)")
    task: Literal["classification", "regression"] = _f(
        "classification",
        "classification: integer labels, one-hot targets (one output per class); regression: the targets "
        "themselves (one output per target)",
    )
    input_range: tuple[Finite, Finite] = _f((0.0, 1.0), "inputs are scaled into this range", "model units")
    target_range: tuple[Finite, Finite] = _f((0.0, 1.0), "one-hot off/on values", "model units")

    @field_validator("path")
    @classmethod
    def _resolve(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        p = Path(v)
        if p.suffix.lower() not in (".csv", ".npz"):
            raise ValueError(f"{v!r}: a data file is .csv or .npz")
        base = (info.context or {}).get("base_dir")
        if not p.is_absolute() and base is not None:
            p = Path(base) / p
        if base is not None:
            _check_data_file(p)
        return str(p)

    @model_validator(mode="after")
    def _source(self) -> Dataset:
        problems: list[tuple[tuple, str]] = []
        if (self.name is None) == (self.path is None):
            problems.append((("name",), "give either a built-in 'name' (iris, digits, xor) or a 'path', not both"))
        if self.name is not None and self.task == "regression":
            problems.append(
                (("task",), f"the built-in {self.name} is a classification (a regression reads a CSV or NPZ 'path')")
            )
        if self.targets is not None and self.task != "regression":
            problems.append(
                (
                    ("targets",),
                    "names the target columns of a regression (set task: regression, or name a classification's "
                    "label column with 'label')",
                )
            )
        for key in ("columns", "targets"):
            names = getattr(self, key) or []
            twice = sorted({c for c in names if names.count(c) > 1})
            if twice:
                problems.append(((key,), f"column {twice[0]!r} is named twice"))
        for key in ("input_range", "target_range", "feature_range"):
            box = getattr(self, key)
            if box is not None and not box[0] < box[1]:
                problems.append(((key,), f"must be [low, high] with low < high, got [{box[0]:g}, {box[1]:g}]"))
        n = BUILTIN_SIZES.get(self.name or "")
        if n is not None and self.test_size is not None:
            classes = BUILTIN_DATASETS[self.name][1]
            count = int(self.test_size) if self.test_size >= 1 else math.ceil(self.test_size * n)
            if not classes <= count <= n - classes:
                problems.append(
                    (
                        ("test_size",),
                        f"{self.name} has {n} examples in {classes} classes: hold out between {classes} and "
                        f"{n - classes} (a count), or a fraction that gives that many",
                    )
                )
        _problems("Dataset", problems)
        return self

    def shape(self) -> tuple[int, int] | None:
        """(features, classes) when known without loading (built-in sets), else None."""
        return BUILTIN_DATASETS.get(self.name) if self.name else None


def _check_data_file(path: Path) -> None:
    """A data file is a regular file of at most MAX_DATA_BYTES; a CSV has at most MAX_ROWS rows (counted)."""
    shown = clip(str(path))
    try:
        info = os.stat(path)
    except OSError:
        raise ValueError(f"no such data file {shown!r} (paths are relative to the protocol file)") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{shown!r} is not a regular file (a data file is a .csv or .npz file)")
    if info.st_size > MAX_DATA_BYTES:
        raise ValueError(f"{shown!r} has {info.st_size} bytes, more than a data file may have ({MAX_DATA_BYTES})")
    if path.suffix.lower() == ".npz":
        _check_npz(path, shown)
    if path.suffix.lower() != ".csv":
        return
    rows = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                rows += chunk.count(b"\n")
    except OSError as exc:
        raise ValueError(f"cannot read {shown!r}: {exc.strerror or exc}") from None
    if rows - 1 > MAX_ROWS:  # the header is not an example
        raise ValueError(f"{shown!r} has {rows - 1} rows, more than {MAX_ROWS} examples (use a sample of the data)")


def _check_npz(path: Path, shown: str) -> None:
    """An NPZ's arrays, from their headers: at most MAX_ROWS examples, and at most MAX_NPZ_BYTES expanded.

    A compressed file of a few megabytes can expand to gigabytes: nothing is loaded before this.
    """
    from aeqlab.datasets.files import npz_shapes

    arrays = npz_shapes(path)
    if arrays is None:
        return  # not a readable NPZ: the loader says so
    total = 0
    for name, (shape, itemsize) in arrays.items():
        if shape and shape[0] > MAX_ROWS:
            raise ValueError(
                f"{shown!r}: array {name!r} has {shape[0]} rows, more than {MAX_ROWS} examples "
                "(use a sample of the data)"
            )
        total += math.prod(shape) * itemsize
    if total > MAX_NPZ_BYTES:
        raise ValueError(
            f"{shown!r} expands to {total} bytes of arrays, more than a data file may ({MAX_NPZ_BYTES}); "
            "use a sample of the data"
        )
