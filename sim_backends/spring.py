"""An elastic spring network whose rest lengths are the trainable parameters.

A second physical system, of a different kind from the Hopfield network, that the
engine trains without knowing anything about it.

* States: positions r of the free nodes (2-D). Some nodes are pinned (at least three
  degrees of freedom, so the network cannot move as a whole); input nodes are driven:
  input x_k displaces its node along a fixed direction.
* Parameters: the rest length ℓ_e of every edge. Each edge is an actuator (the knob
  u_e) in series with a compliance ε: the coupling energy (ℓ_e − u_e)²/2ε *is* that
  compliance.
* Outputs: distances between pairs of nodes (displacement sensors).
* Nudges: a force I_k pulling the two nodes of output pair k apart (a voice coil),
  energy −I_k·d_k.

Energy: E = Σ_e ½k_e(‖r_i − r_j‖ − ℓ_e)² + Σ_e (ℓ_e − u_e)²/2ε − Σ_k I_k d_k.
Eliminating ℓ exactly gives springs of stiffness k_e/(1 + k_eε) with rest length u_e
(two springs in series), so the joint relaxation is a Newton minimisation over the
free positions; then ℓ_e = (k_eε d_e + u_e)/(1 + k_eε).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim_backends.hopfield import RelaxInfo


@dataclass(frozen=True)
class SpringSpec:
    """Geometry and material of a spring network.

    Parameters
    ----------
    positions
        Node positions at rest (N × 2).
    edges
        Pairs of node indices (E × 2).
    stiffness
        Spring constant of every edge (E,).
    pinned
        Nodes held in place.
    input_nodes, input_directions
        Node driven by each input and the unit direction of its displacement.
    output_pairs
        Node pairs whose distance is each output.
    eps
        Compliance in series with every rest-length actuator.
    """

    positions: np.ndarray
    edges: np.ndarray
    stiffness: np.ndarray
    pinned: tuple[int, ...]
    input_nodes: tuple[int, ...]
    input_directions: np.ndarray
    output_pairs: tuple[tuple[int, int], ...]
    eps: float

    @property
    def n_inputs(self) -> int:
        return len(self.input_nodes)

    @property
    def n_outputs(self) -> int:
        return len(self.output_pairs)

    @property
    def n_params(self) -> int:
        return len(self.edges)

    def eps_vector(self) -> np.ndarray:
        return np.full(self.n_params, self.eps)

    @property
    def free_nodes(self) -> np.ndarray:
        fixed = set(self.pinned) | set(self.input_nodes)
        return np.array([i for i in range(len(self.positions)) if i not in fixed], dtype=np.intp)

    def rest_lengths(self) -> np.ndarray:
        p = self.positions
        return np.linalg.norm(p[self.edges[:, 0]] - p[self.edges[:, 1]], axis=1)


def triangular_network(
    rows: int,
    cols: int,
    *,
    eps: float,
    stiffness_spread: float = 0.2,
    seed: int = 0,
    inputs: int = 2,
    outputs: int = 1,
) -> SpringSpec:
    """A rigid triangulated strip: the bottom row pinned, inputs on the left edge, outputs at the top.

    Stiffnesses are 1 ± ``stiffness_spread`` (uniform), standing for device mismatch.
    """
    if rows < 3 or cols < 3:
        raise ValueError("a spring network needs at least 3 rows and 3 columns")
    rng = np.random.default_rng(seed)
    pos, index = [], {}
    for r in range(rows):
        for c in range(cols):
            index[r, c] = len(pos)
            pos.append((c + 0.5 * (r % 2), r * np.sqrt(3) / 2))
    edges = set()
    for (r, c), i in index.items():
        for dr, dc in ((0, 1), (1, 0), (1, -1 if r % 2 == 0 else 1)):
            j = index.get((r + dr, c + dc))
            if j is not None:
                edges.add((min(i, j), max(i, j)))
    edges_arr = np.array(sorted(edges), dtype=np.intp)
    stiffness = 1.0 + stiffness_spread * rng.uniform(-1, 1, len(edges_arr))
    pinned = tuple(index[0, c] for c in range(cols))
    left = [index[r, 0] for r in range(1, rows)]
    input_nodes = tuple(left[:inputs])
    directions = np.tile([1.0, 0.0], (len(input_nodes), 1))
    top = [index[rows - 1, c] for c in range(cols)]
    mid = [index[rows // 2, c] for c in range(cols)]
    pairs = tuple((top[-1 - k], mid[-1 - k]) for k in range(outputs))
    return SpringSpec(np.array(pos, float), edges_arr, stiffness, pinned, input_nodes, directions, pairs, eps)


@dataclass
class SpringNetwork:
    """The physics: free node positions and floating rest lengths relaxing jointly."""

    spec: SpringSpec
    tolerance: float = 1e-10
    max_sweeps: int = 200
    r: np.ndarray = field(init=False)
    theta: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.r = self.spec.positions.copy()
        self.theta = self.spec.rest_lengths()
        self._free = self.spec.free_nodes
        k, e = self.spec.stiffness, self.spec.eps
        self._k_series = k / (1.0 + k * e)
        self._assembly: dict[int, tuple] = {}
        self._pairs = np.array(self.spec.output_pairs)

    # ------------------------------------------------------------- geometry
    def place_inputs(self, x: np.ndarray) -> None:
        s = self.spec
        for node, d, v in zip(s.input_nodes, s.input_directions, x):
            self.r[node] = s.positions[node] + v * d

    def distances(self, r: np.ndarray | None = None) -> np.ndarray:
        r = self.r if r is None else r
        e = self.spec.edges
        return np.linalg.norm(r[e[:, 0]] - r[e[:, 1]], axis=1)

    @property
    def outputs(self) -> np.ndarray:
        p = np.array(self.spec.output_pairs)
        return np.linalg.norm(self.r[p[:, 0]] - self.r[p[:, 1]], axis=1)

    # --------------------------------------------------------------- energy
    def _energy_grad_hess(self, r, k, rest, currents, need_hess=True):
        """Energy Σ½k(d − rest)² − Σ I·d_out, its gradient and Hessian over all coordinates."""
        n = len(r)
        e = self.spec.edges
        delta = r[e[:, 0]] - r[e[:, 1]]
        d = np.linalg.norm(delta, axis=1)
        nvec = delta / d[:, None]
        stretch = d - rest
        energy = 0.5 * float(np.sum(k * stretch**2))
        g_edge = (k * stretch)[:, None] * nvec
        grad = np.zeros((n, 2))
        np.add.at(grad, e[:, 0], g_edge)
        np.add.at(grad, e[:, 1], -g_edge)
        pairs = self._pairs
        dp = r[pairs[:, 0]] - r[pairs[:, 1]]
        dd = np.linalg.norm(dp, axis=1)
        npair = dp / dd[:, None]
        energy -= float(currents @ dd)
        np.add.at(grad, pairs[:, 0], -currents[:, None] * npair)
        np.add.at(grad, pairs[:, 1], currents[:, None] * npair)
        if not need_hess:
            return energy, grad, None
        H = np.zeros((2 * n, 2 * n))
        eye = np.eye(2)
        outer = nvec[:, :, None] * nvec[:, None, :]
        blocks = k[:, None, None] * (outer + (stretch / d)[:, None, None] * (eye - outer))
        self._scatter(H, e, blocks)
        outer_p = npair[:, :, None] * npair[:, None, :]
        pblocks = -(currents / dd)[:, None, None] * (eye - outer_p)
        self._scatter(H, pairs, pblocks)
        return energy, grad, H

    def _scatter(self, H, pairs, blocks):
        """Add each pair's 2×2 block B as [[B, −B], [−B, B]] at its nodes' coordinates (one bincount)."""
        key = id(pairs)
        cached = self._assembly.get(key)
        if cached is None:
            pairs = np.asarray(pairs)
            n = H.shape[0]
            c = np.arange(2)
            ri = 2 * pairs[:, 0, None] + c  # (m, 2) coordinates of node i
            rj = 2 * pairs[:, 1, None] + c
            flat, sign = [], []
            for a, b, s in ((ri, ri, 1.0), (rj, rj, 1.0), (ri, rj, -1.0), (rj, ri, -1.0)):
                flat.append((a[:, :, None] * n + b[:, None, :]).ravel())
                sign.append(np.full(flat[-1].size, s))
            cached = (np.concatenate(flat), np.concatenate(sign), pairs)
            self._assembly[key] = cached
        flat, sign, _ = cached
        vals = np.tile(blocks.ravel(), 4) * sign
        H += np.bincount(flat, weights=vals, minlength=H.size).reshape(H.shape)

    def _free_coords(self) -> np.ndarray:
        return np.concatenate([[2 * i, 2 * i + 1] for i in self._free]).astype(np.intp)

    # ----------------------------------------------------------- relaxation
    def relax(
        self,
        x: np.ndarray,
        u: np.ndarray,
        currents: np.ndarray,
        *,
        tolerance: float | None = None,
        max_sweeps: int | None = None,
    ) -> RelaxInfo:
        """Relax node positions and rest lengths jointly (Newton with backtracking) from the present state."""
        tol = self.tolerance if tolerance is None else tolerance
        cap = self.max_sweeps if max_sweeps is None else max_sweeps
        self.place_inputs(np.asarray(x, float))
        k, I = self._k_series, np.asarray(currents, float)
        idx = self._free_coords()
        converged, step_max, sweeps = False, np.inf, 0
        energy, grad, H = self._energy_grad_hess(self.r, k, u, I)
        while sweeps < cap:
            sweeps += 1
            g = grad.ravel()[idx]
            if np.max(np.abs(g)) <= tol:
                converged = True
                break
            Hf = H[np.ix_(idx, idx)]
            shift = 0.0
            while True:  # a Hessian that is not positive definite gets a Levenberg shift
                try:
                    L = np.linalg.cholesky(Hf + shift * np.eye(len(idx)))
                    break
                except np.linalg.LinAlgError:
                    shift = max(2 * shift, 1e-6)
            step = -np.linalg.solve(L.T, np.linalg.solve(L, g))
            t = 1.0
            while True:
                trial = self.r.copy()
                trial.ravel()[idx] += t * step
                e_new, g_new, _ = self._energy_grad_hess(trial, k, u, I, need_hess=False)
                # near the minimum the energy changes below its rounding: judge by the gradient there
                tiny = -float(g @ step) < 1e-12 * (1.0 + abs(energy))
                if e_new <= energy + 1e-4 * t * float(g @ step) or tiny or t < 1e-10:
                    break
                t *= 0.5
            step_max = float(np.max(np.abs(t * step)))
            self.r = trial
            energy, grad, H = self._energy_grad_hess(self.r, k, u, I)
        ke = self.spec.stiffness * self.spec.eps
        self.theta = (ke * self.distances() + u) / (1.0 + ke)
        return RelaxInfo(sweeps, converged, step_max, energy)

    # ---------------------------------------------------------- diagnostics
    @property
    def states(self) -> list[np.ndarray]:
        """Free node positions, as a list (the twin's jump check compares them)."""
        return [self.r[self._free].ravel()]

    @states.setter
    def states(self, value: list[np.ndarray]) -> None:
        self.r[self._free] = np.asarray(value[0]).reshape(-1, 2)

    def stability_ratio(self, x: np.ndarray) -> float:
        """Series compliances soften the springs but never destabilise them: always 0 here.

        (Eliminating the rest lengths leaves springs of positive stiffness k/(1 + kε).)
        """
        return 0.0

    def held_stability_ratio(self, x: np.ndarray, theta: np.ndarray) -> float:
        """Always 0: see :meth:`stability_ratio`."""
        return 0.0

    def coupling_summary(self) -> str:
        return f"epsilon {self.spec.eps}"

    def linear_response(self, x: np.ndarray, pulled_from: np.ndarray, target: np.ndarray):
        """(dθ/dβ at fixed knobs, ∇L at fixed θ, ε) by implicit differentiation at the present equilibrium.

        ``pulled_from`` is the output whose error the nudge pulls along (C_s = ∂d/∂r·(ŷ − y)).
        """
        s = self.spec
        idx = self._free_coords()
        k = s.stiffness
        # state Hessian at fixed rest lengths θ, and the mixed derivatives ∂²E/∂r∂ℓ = −k ∂d/∂r
        _, _, H = self._energy_grad_hess(self.r, k, self.theta, np.zeros(s.n_outputs))
        Hf = H[np.ix_(idx, idx)]
        e = s.edges
        delta = self.r[e[:, 0]] - self.r[e[:, 1]]
        nvec = delta / np.linalg.norm(delta, axis=1)[:, None]
        B = np.zeros((2 * len(self.r), s.n_params))
        cols = np.arange(s.n_params)
        for c in range(2):
            B[2 * e[:, 0] + c, cols] = -k * nvec[:, c]
            B[2 * e[:, 1] + c, cols] = k * nvec[:, c]
        Bf = B[idx]
        pairs = np.array(s.output_pairs)
        dp = self.r[pairs[:, 0]] - self.r[pairs[:, 1]]
        npair = dp / np.linalg.norm(dp, axis=1)[:, None]
        D = np.zeros((2 * len(self.r), s.n_outputs))  # ∂d_out/∂r
        for c in range(2):
            D[2 * pairs[:, 0] + c, np.arange(s.n_outputs)] = npair[:, c]
            D[2 * pairs[:, 1] + c, np.arange(s.n_outputs)] = -npair[:, c]
        Df = D[idx]
        dC_pull = Df @ (pulled_from - target)
        dC_true = Df @ (self.outputs - target)
        grad = -Bf.T @ np.linalg.solve(Hf, dC_true)
        # joint system [[H, B], [Bᵀ, diag(k) + 1/ε]] at fixed knobs
        Dll = np.diag(k + 1.0 / s.eps)
        schur = Hf - Bf @ np.linalg.solve(Dll, Bf.T)
        dr = -np.linalg.solve(schur, dC_pull)
        dtheta = -np.linalg.solve(Dll, Bf.T @ dr)
        return dtheta, grad, s.eps_vector()
