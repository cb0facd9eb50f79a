"""The twin's relaxation as it was before the speed work (issue 13), frozen as a reference.

``reference_relax`` is the solver of ``sim_backends/hopfield.py`` at 72e430d, written as a
function of its inputs: exact block-coordinate sweeps on the reduced state energy, with a
Newton polish (block elimination, clipped units held) when the active set changed and
every fourth sweep, accepted only when it lowers the energy. Tests compare the present
solver's states with it; nothing outside the tests uses it.
"""

from __future__ import annotations

import numpy as np

from sim_backends.hopfield import HopfieldSpec, split_params


def reference_relax(
    spec: HopfieldSpec,
    states: list[np.ndarray],
    x: np.ndarray,
    u: np.ndarray,
    currents: np.ndarray,
    tol: float,
    cap: int = 10_000,
) -> tuple[list[np.ndarray], int, bool]:
    """(states reached, sweeps, converged) from ``states`` at inputs x, knobs u, currents I."""
    L = spec.n_layers
    lo = [spec.clip_bounds(l + 1)[0] for l in range(L)]
    hi = [spec.clip_bounds(l + 1)[1] for l in range(L)]
    uw, ub = split_params(spec, np.asarray(u, float))
    ew, eb = spec.eps_weights, spec.eps_biases
    s = [np.array(v, float) for v in states]
    x = np.asarray(x, dtype=float)
    currents = np.asarray(currents, dtype=float)
    x_sq = float(x @ x)
    drive0 = x @ uw[0]
    order = list(range(0, L, 2)) + list(range(1, L, 2))
    converged, sweeps = False, 0
    last_active = None
    for sweeps in range(1, cap + 1):
        change = 0.0
        for l in order:
            prev_sq = x_sq if l == 0 else float(s[l - 1] @ s[l - 1])
            a = 1.0 - eb[l] - ew[l] * prev_sq
            c = ub[l] + (drive0 if l == 0 else s[l - 1] @ uw[l])
            if l + 1 < L:
                a -= ew[l + 1] * float(s[l + 1] @ s[l + 1])
                c = c + uw[l + 1] @ s[l + 1]
            else:
                c = c + currents
            new = _box_argmin(a, c, lo[l], hi[l])
            change = max(change, float(np.abs(new - s[l]).max()))
            s[l] = new
        if change <= tol:
            converged = True
            break
        key = tuple(((v <= a) | (v >= b)).tobytes() for v, a, b in zip(s, lo, hi))
        if key != last_active or sweeps % 4 == 0:
            last_active = key
            proposal = _polish(spec, lo, hi, x_sq, drive0, uw, ub, currents, s, tol)
            if proposal is not None:
                e_old = _energy(spec, drive0, x_sq, uw, ub, currents, s)
                e_new = _energy(spec, drive0, x_sq, uw, ub, currents, proposal)
                if e_new <= e_old + 1e-15 * abs(e_old):
                    s = proposal
    return s, sweeps, converged


def _energy(spec, drive0, x_sq, uw, ub, currents, states) -> float:
    ew, eb = spec.eps_weights, spec.eps_biases
    e, prev_sq = 0.0, x_sq
    for l, s in enumerate(states):
        sq = float(s @ s)
        drive = drive0 if l == 0 else states[l - 1] @ uw[l]
        e += 0.5 * sq - float((ub[l] + drive) @ s) - 0.5 * (ew[l] * prev_sq * sq + eb[l] * sq)
        prev_sq = sq
    return float(e - currents @ states[-1])


def _polish(spec, lo, hi, x_sq, drive0, uw, ub, currents, s, tol):
    L = spec.n_layers
    ew, eb = spec.eps_weights, spec.eps_biases
    idx = [np.flatnonzero((v > a) & (v < b)) for v, a, b in zip(s, lo, hi)]
    if not any(i.size for i in idx):
        return None
    trial = [v.copy() for v in s]
    last_step = 0.0
    for _ in range(4):
        sq = [float(v @ v) for v in trial]
        curv = np.empty(L)
        rhs = []
        for l in range(L):
            prev_sq = x_sq if l == 0 else sq[l - 1]
            a = 1.0 - eb[l] - ew[l] * prev_sq
            c = ub[l] + (drive0 if l == 0 else trial[l - 1] @ uw[l])
            if l + 1 < L:
                a -= ew[l + 1] * sq[l + 1]
                c = c + uw[l + 1] @ trial[l + 1]
            else:
                c = c + currents
            curv[l] = a
            rhs.append((c - a * trial[l])[idx[l]])
        coupling = [
            -uw[l + 1][idx[l]][:, idx[l + 1]] - 2.0 * ew[l + 1] * np.outer(trial[l][idx[l]], trial[l + 1][idx[l + 1]])
            for l in range(L - 1)
        ]
        delta = _tridiagonal(curv, coupling, rhs)
        if delta is None:
            return None
        step = 0.0
        for l in range(L):
            if idx[l].size:
                trial[l][idx[l]] += delta[l]
                step = max(step, float(np.abs(delta[l]).max()))
        rate = min(1.0, step / last_step**2) if last_step > 0.0 else 1.0
        if step <= 0.01 * tol or rate * step * step <= 0.01 * tol:
            break
        last_step = step
    return [np.clip(v, a, b) for v, a, b in zip(trial, lo, hi)]


def _box_argmin(a, c, lo, hi):
    if a > 0.0:
        return np.clip(c / a, lo, hi)
    e_lo = 0.5 * a * lo * lo - c * lo
    e_hi = 0.5 * a * hi * hi - c * hi
    return np.where(e_lo <= e_hi, lo, hi)


def _tridiagonal(curv, coupling, rhs):
    L = len(curv)
    ys, zs = [], []
    D = None
    r = rhs[0]
    try:
        for l in range(L):
            if l > 0:
                B = coupling[l - 1]
                D = -(B.T @ ys[-1])
                D.flat[:: D.shape[0] + 1] += curv[l]
                r = rhs[l] - B.T @ zs[-1]
            if l + 1 < L:
                B = coupling[l]
                if D is None:
                    if curv[0] == 0.0 and r.size:
                        return None
                    a0 = curv[0] if curv[0] != 0.0 else 1.0
                    ys.append(B / a0)
                    zs.append(r / a0)
                else:
                    ys.append(_solve(D, B))
                    zs.append(_solve(D, r))
        if D is None:
            if curv[0] == 0.0 and r.size:
                return None
            last = r / (curv[0] if curv[0] != 0.0 else 1.0)
        else:
            last = _solve(D, r)
    except np.linalg.LinAlgError:
        return None
    out = [last]
    for l in range(L - 2, -1, -1):
        out.append(zs[l] - ys[l] @ out[-1])
    out.reverse()
    return out


def _solve(D, b):
    return b.copy() if D.size == 0 else np.linalg.solve(D, b)
