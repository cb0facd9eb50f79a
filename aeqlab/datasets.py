"""Built-in data sets, all offline (scikit-learn's bundled files, or made here).

Inputs are scaled into the protocol's input range; targets are one-hot vectors
with the protocol's off/on values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aeqlab.protocol import Dataset as DatasetConfig


@dataclass(frozen=True)
class Split:
    """A train/test split, inputs in model units, integer labels and one-hot targets."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    target_range: tuple[float, float]

    def targets(self, labels: np.ndarray) -> np.ndarray:
        lo, hi = self.target_range
        t = np.full((labels.size, self.n_classes), lo)
        t[np.arange(labels.size), labels] = hi
        return t


def load(cfg: DatasetConfig) -> Split:
    """Load, split and scale the data set a protocol names."""
    from sklearn.model_selection import train_test_split

    if cfg.name == "xor":
        x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        y = np.array([0, 1, 1, 0])
        x_tr, y_tr, x_te, y_te = x, y, x, y  # four points: they are both train and test
        n_classes = 2
        x_lo, x_hi = 0.0, 1.0
    else:
        from sklearn import datasets as skd

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

    return Split(cfg.name, scale(x_tr), y_tr, scale(x_te), y_te, n_classes, cfg.target_range)
