"""Anderson acceleration with its history in row buffers mixes exactly as a least-squares solve says."""

from __future__ import annotations

import numpy as np
import pytest

from aeqlab.engine.feedback import Anderson


def reference_step(history_dz, history_df, z, f):
    """Type-II Anderson from the last steps, by a plain least-squares solve (columns: the steps)."""
    if not history_dz:
        return z + f
    DF = np.stack(history_df, axis=1)
    DZ = np.stack(history_dz, axis=1)
    gamma = np.linalg.lstsq(DF, f, rcond=None)[0]
    return z + f - DZ @ gamma - DF @ gamma


@pytest.mark.parametrize("memory", [1, 3, 5])
def test_iterates_agree_with_a_least_squares_reference(memory):
    rng = np.random.default_rng(memory)
    n = 200
    A = np.eye(n) * 0.5 + 0.02 * rng.standard_normal((n, n))  # z <- z + f(z), f = b - A z: a linear fixed point
    b = rng.standard_normal(n)
    accel = Anderson(memory)
    dzs, dfs, prev = [], [], None
    z = np.zeros(n)
    for it in range(12):
        f = b - A @ z
        if it == 6:
            f = f * 10.0  # a step whose residual grew: the history is dropped
        if prev is not None:
            pz, pf = prev
            if np.linalg.norm(f) > 2.0 * np.linalg.norm(pf):
                dzs.clear(), dfs.clear()
            else:
                dzs.append(z - pz), dfs.append(f - pf)
                del dzs[:-memory], dfs[:-memory]
        prev = (z.copy(), f.copy())
        expected = reference_step(dzs, dfs, z, f)
        got = accel.step(z, f)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * float(np.abs(expected).max()))
        z = got
    assert accel._k == min(memory, 5)  # the ring wrapped around and stayed full


def test_zero_memory_is_the_plain_iteration():
    accel = Anderson(0)
    z, f = np.arange(4.0), np.ones(4)
    for _ in range(3):
        np.testing.assert_array_equal(accel.step(z, f), z + f)
