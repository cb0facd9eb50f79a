"""Built-in data sets: offline, split as the reference measurements, scaled into the input range."""

from __future__ import annotations

import numpy as np

from aeqlab.datasets import load
from aeqlab.protocol import Dataset


def test_digits_uses_the_reference_split_and_pixels_over_16():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    split = load(Dataset(name="digits", test_size=360, seed=0, input_range=(0.0, 1.0)))
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=360, random_state=0, stratify=y)
    assert split.x_train.shape == (1437, 64) and split.x_test.shape == (360, 64)
    np.testing.assert_array_equal(split.x_test, x_te / 16)
    np.testing.assert_array_equal(split.y_train, y_tr)


def test_iris_split_is_stratified_and_inputs_fill_the_range():
    split = load(Dataset(name="iris", test_size=0.2, seed=0, input_range=(-1.0, 1.0)))
    assert len(split.y_test) == 30 and np.bincount(split.y_test).tolist() == [10, 10, 10]
    both = np.vstack([split.x_train, split.x_test])
    np.testing.assert_allclose(both.min(axis=0), -1.0)
    np.testing.assert_allclose(both.max(axis=0), 1.0)


def test_xor_points_are_train_and_test_and_targets_are_one_hot():
    split = load(Dataset(name="xor", input_range=(-1.0, 1.0), target_range=(0.0, 1.0)))
    np.testing.assert_array_equal(split.x_train, split.x_test)
    assert split.y_train.tolist() == [0, 1, 1, 0]
    np.testing.assert_array_equal(split.targets(np.array([1])), [[0.0, 1.0]])
