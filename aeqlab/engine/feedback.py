"""Feedback loops that drive measured readings to targets by moving setpoints.

Homeostasis moves knobs until every measured parameter sits at its target;
tracking nudging moves the nudge currents until they equal β(y − ŷ) for the output
they themselves produce. Both are the same problem: find setpoints z with
reading(z) = target, where the engine knows neither the reading's gain nor its
offset. The loop here measures them as it goes:

* a per-channel *secant* estimate of d reading / d setpoint (kept across calls, as a
  bench's gains do not change from sample to sample) gives a diagonal Newton step;
* Anderson acceleration over the last few steps removes what the diagonal model
  misses (the physics couples channels).

Nothing here knows any physics.
"""

from __future__ import annotations

import numpy as np


class SecantGains:
    """Per-channel estimates of d reading / d setpoint, learnt from observed steps.

    Parameters
    ----------
    n
        Channel count.
    initial
        The first guess (1 for a calibrated bench).
    min_step
        Steps smaller than this say nothing reliable about the gain.
    bounds
        Plausible range of a gain; estimates are kept inside it.
    """

    def __init__(self, n: int, initial: float = 1.0, min_step: float = 1e-6, bounds=(0.05, 20.0)):
        self.gain = np.full(n, float(initial))
        self.min_step = min_step
        self.bounds = bounds

    def observe(self, dz: np.ndarray, dq: np.ndarray) -> float:
        """Update from a setpoint step dz and the reading change dq; returns the largest relative change."""
        ok = np.abs(dz) > self.min_step
        every = bool(ok.all())
        if every:  # every channel stepped: whole vectors (the same arithmetic, no gathering)
            ratio, old = dq / dz, self.gain
        elif not ok.any():
            return 0.0
        else:
            ratio, old = dq[ok] / dz[ok], self.gain[ok]
        # a sign flip or a wild ratio is more likely coupling or noise than a real gain
        lo, hi = self.bounds
        ratio = np.minimum(np.maximum(ratio, np.maximum(old / 4, lo)), np.minimum(old * 4, hi))
        new = np.sqrt(old * ratio)  # geometric mean: steady, scale-free
        change = float(np.abs(new / old - 1.0).max())
        if every:
            self.gain[:] = new
        else:
            self.gain[ok] = new
        return change


class Anderson:
    """Anderson acceleration (type II) of a fixed-point iteration z ← z + f(z).

    The past steps are kept as the rows of two buffers (steps of z, steps of f), and the
    Gram matrix of the f steps is updated by one row per step: a step costs a few passes
    over the vectors, not a copy of the history into a new matrix.

    Parameters
    ----------
    memory
        How many past steps to mix.
    """

    def __init__(self, memory: int = 5):
        self.memory = memory
        self._DZ: np.ndarray | None = None  # rows: past steps of z (the first ``_k`` rows are in use)
        self._DF: np.ndarray | None = None  # rows: past steps of f
        self._gram: np.ndarray | None = None  # DF·DFᵀ over the rows in use
        self.reset()

    def reset(self) -> None:
        self._k = 0  # rows in use
        self._next = 0  # the row the next step goes to (the oldest, once every row is in use)
        self._prev: tuple[np.ndarray, np.ndarray, float] | None = None  # z, f and ‖f‖ of the last step

    def _push(self, dz: np.ndarray, df: np.ndarray) -> None:
        if self._DZ is None or self._DZ.shape[1] != dz.size:
            self._DZ = np.empty((self.memory, dz.size))
            self._DF = np.empty((self.memory, dz.size))
            self._gram = np.zeros((self.memory, self.memory))
        r = self._next
        self._DZ[r] = dz
        self._DF[r] = df
        self._k = min(self._k + 1, self.memory)
        self._next = (r + 1) % self.memory
        row = self._DF[: self._k] @ self._DF[r]
        self._gram[r, : self._k] = row
        self._gram[: self._k, r] = row

    def step(self, z: np.ndarray, f: np.ndarray) -> np.ndarray:
        """Next iterate from the present one and its (preconditioned) residual step f."""
        norm_f = float(np.linalg.norm(f))
        if self._prev is not None:
            pz, pf, norm_pf = self._prev
            if norm_f > 2.0 * norm_pf:
                self._k = self._next = 0
            elif self.memory > 0:
                self._push(z - pz, f - pf)
        self._prev = (z.copy(), f.copy(), norm_f)
        k = self._k
        if k == 0:
            return z + f
        DF, DZ = self._DF[:k], self._DZ[:k]
        # least squares min ‖f − DFᵀ·γ‖ through the few-by-few normal equations of the row-scaled
        # DF (an SVD of the long DF costs far more). Directions whose eigenvalue is below 1e-13 of the
        # largest (singular value below 3e-7: lstsq's rcond was 1e-10) are dropped: with a history
        # that ill-conditioned the mixing is regularised, not exact, which a fixed-point step tolerates
        gram = self._gram[:k, :k]
        norms = np.sqrt(np.diag(gram))
        norms[norms == 0] = 1.0
        w, V = np.linalg.eigh(gram / np.outer(norms, norms))
        keep = w > 1e-13 * max(float(w[-1]), 1e-300)
        Vk = V[:, keep]
        gamma = (Vk @ ((Vk.T @ ((DF @ f) / norms)) / w[keep])) / norms
        return z + f - gamma @ DZ - gamma @ DF


class Broyden:
    """Root finding for a few coupled channels by Broyden's ("good") rank-one updates.

    Solves q(z) = target where the Jacobian dq/dz is estimated from the steps taken,
    starting from a given guess. Suits the nudge currents: few channels, strong
    coupling through the physics, and a Jacobian that may be indefinite.
    """

    def __init__(self, jacobian: np.ndarray, max_step: float = np.inf):
        self.J = np.array(jacobian, dtype=float)
        self.max_step = max_step
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def step(self, z: np.ndarray, q: np.ndarray, target: np.ndarray) -> np.ndarray:
        if self._prev is not None:
            dz = z - self._prev[0]
            dq = q - self._prev[1]
            nn = float(dz @ dz)
            if nn > 0:
                self.J += np.outer(dq - self.J @ dz, dz) / nn
        self._prev = (z.copy(), q.copy())
        try:
            dz = np.linalg.solve(self.J, target - q)
        except np.linalg.LinAlgError:
            dz = target - q
        if not np.all(np.isfinite(dz)):
            dz = target - q
        big = float(np.max(np.abs(dz))) if dz.size else 0.0
        if big > self.max_step:
            dz *= self.max_step / big
        return z + dz
