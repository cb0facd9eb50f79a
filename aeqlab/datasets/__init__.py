"""Data sets: built-in (offline: scikit-learn's bundled files, or made here) or files.

A file is a CSV (a header row, one example per row, columns named) or an NPZ (named
arrays), for a classification (integer labels) or a regression (one or several
targets): see :mod:`aeqlab.datasets.files`. Inputs are scaled into the protocol's input
range; a classification's targets are one-hot vectors with the protocol's off/on
values, a regression's the file's values themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aeqlab.datasets.files import DataFileError, FileShape, inspect, outputs_of, read_file
from aeqlab.errors import InputError

if TYPE_CHECKING:  # the protocol's dataset section; the protocol reads data through this module
    from aeqlab.protocol import Dataset as DatasetConfig


__all__ = ["DataFileError", "FileShape", "Split", "hold_out_validation", "inspect", "load", "read_file"]


@dataclass(frozen=True)
class Split:
    """A train/test split, inputs in model units, integer labels and one-hot targets."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int  # classification: classes; regression: target dimensions
    target_range: tuple[float, float]
    task: str = "classification"
    x_val: np.ndarray | None = None  # dataset.validation: held out of the training examples
    y_val: np.ndarray | None = None

    def targets(self, labels: np.ndarray) -> np.ndarray:
        """Output targets (model units): one-hot vectors, or the regression targets themselves."""
        if self.task == "regression":
            return np.asarray(labels, dtype=float).reshape(len(labels), -1)
        lo, hi = self.target_range
        t = np.full((labels.size, self.n_classes), lo)
        t[np.arange(labels.size), labels] = hi
        return t


def load(cfg: DatasetConfig) -> Split:
    """Load, split and scale the data set a protocol names."""
    if cfg.path is not None:
        try:
            x, y = read_file(cfg)
        except DataFileError as exc:
            raise InputError(str(exc), where=f"dataset.{exc.key} ({cfg.path})") from None
        test_size = cfg.test_size if cfg.test_size is not None else 0.2
        if test_size >= 1:
            test_size = int(test_size)
        stratify = y if cfg.stratify and cfg.task == "classification" else None
        from sklearn.model_selection import train_test_split  # here: scikit-learn takes seconds to import

        try:
            x_tr, x_te, y_tr, y_te = train_test_split(
                x, y, test_size=test_size, random_state=cfg.seed, stratify=stratify
            )
        except ValueError as exc:
            raise InputError(f"cannot split the data: {exc}", where="dataset.test_size") from None
        n_classes = outputs_of(cfg, y)[0]
        if cfg.feature_range is not None:
            x_lo, x_hi = cfg.feature_range
        else:
            x_lo, x_hi = x_tr.min(axis=0), x_tr.max(axis=0)
            x_hi = np.where(x_hi > x_lo, x_hi, x_lo + 1.0)  # a constant feature maps to the range's low end
    elif cfg.name == "xor":
        x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        y = np.array([0, 1, 1, 0])
        x_tr, y_tr, x_te, y_te = x, y, x, y  # four points: they are both train and test
        n_classes = 2
        x_lo, x_hi = 0.0, 1.0
    else:
        from sklearn import datasets as skd
        from sklearn.model_selection import train_test_split

        if cfg.name == "iris":
            x, y = skd.load_iris(return_X_y=True)
            test_size = cfg.test_size if cfg.test_size is not None else 0.2
            x_lo, x_hi = x.min(axis=0), x.max(axis=0)  # per feature, from the whole (tiny, fixed) set
        else:  # digits: the split of the reference measurements, pixels / 16
            x, y = skd.load_digits(return_X_y=True)
            test_size = cfg.test_size if cfg.test_size is not None else 360
            x_lo, x_hi = 0.0, 16.0
        if test_size >= 1:
            test_size = int(test_size)
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=cfg.seed, stratify=y)
        n_classes = int(y.max()) + 1
    lo, hi = cfg.input_range

    def scale(a: np.ndarray) -> np.ndarray:
        return lo + (hi - lo) * (a - x_lo) / (np.asarray(x_hi) - np.asarray(x_lo))

    split = Split(
        cfg.name or Path(cfg.path).stem, scale(x_tr), y_tr, scale(x_te), y_te, n_classes, cfg.target_range, cfg.task
    )
    return hold_out_validation(split, cfg.validation, cfg.seed) if cfg.validation else split


def hold_out_validation(split: Split, fraction: float, seed: int) -> Split:
    """Move ``fraction`` of the training examples (at least one) into a validation set; the test set is untouched.

    XOR's four points are its whole training set: they are its validation set too, as they are its test set.
    """
    n = len(split.y_train)
    if split.name == "xor":
        return replace(split, x_val=split.x_train, y_val=split.y_train)
    k = max(1, round(fraction * n))
    if k >= n:
        raise InputError(
            f"a validation fraction of {fraction:g} leaves no training example ({n} in all)",
            where="dataset.validation",
            hint="give a smaller fraction",
        )
    order = np.random.default_rng(seed).permutation(n)
    val, train = np.sort(order[:k]), np.sort(order[k:])
    return replace(
        split,
        x_train=split.x_train[train],
        y_train=split.y_train[train],
        x_val=split.x_train[val],
        y_val=split.y_train[val],
    )
