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
        if not ok.any():
            return 0.0
        ratio = dq[ok] / dz[ok]
        old = self.gain[ok]
        # a sign flip or a wild ratio is more likely coupling or noise than a real gain
        ratio = np.clip(ratio, np.maximum(old / 4, self.bounds[0]), np.minimum(old * 4, self.bounds[1]))
        new = np.sqrt(old * ratio)  # geometric mean: steady, scale-free
        self.gain[ok] = new
        return float(np.max(np.abs(new / old - 1.0)))


class Anderson:
    """Anderson acceleration (type II) of a fixed-point iteration z ← z + f(z).

    Parameters
    ----------
    memory
        How many past steps to mix.
    """

    def __init__(self, memory: int = 5):
        self.memory = memory
        self.reset()

    def reset(self) -> None:
        self._dz: list[np.ndarray] = []
        self._df: list[np.ndarray] = []
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def step(self, z: np.ndarray, f: np.ndarray) -> np.ndarray:
        """Next iterate from the present one and its (preconditioned) residual step f."""
        if self._prev is not None:
            pz, pf = self._prev
            if np.linalg.norm(f) > 2.0 * np.linalg.norm(pf):
                self._dz.clear()
                self._df.clear()
            else:
                self._dz.append(z - pz)
                self._df.append(f - pf)
                if len(self._dz) > self.memory:
                    self._dz.pop(0)
                    self._df.pop(0)
        self._prev = (z.copy(), f.copy())
        if not self._dz or self.memory == 0:
            return z + f
        DF = np.stack(self._df, axis=1)
        DZ = np.stack(self._dz, axis=1)
        # least squares min ‖f − DF·γ‖ through the few-by-few normal equations of the column-scaled
        # DF (an SVD of the tall DF costs far more). Directions whose eigenvalue is below 1e-13 of the
        # largest (singular value below 3e-7: lstsq's rcond was 1e-10) are dropped: with a history
        # that ill-conditioned the mixing is regularised, not exact, which a fixed-point step tolerates
        gram = DF.T @ DF
        norms = np.sqrt(np.diag(gram))
        norms[norms == 0] = 1.0
        w, V = np.linalg.eigh(gram / np.outer(norms, norms))
        keep = w > 1e-13 * max(float(w[-1]), 1e-300)
        Vk = V[:, keep]
        gamma = (Vk @ ((Vk.T @ ((DF.T @ f) / norms)) / w[keep])) / norms
        return z + f - DZ @ gamma - DF @ gamma


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
